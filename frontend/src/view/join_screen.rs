//! The join screen: the name form, or with sign-in on (`config.json`'s `auth`) the
//! Sign in button, the name then being the ID token's. Both are always there, one hidden.

use leptos::{ev, html, prelude::*};
use webchat_shared_types::MAX_NAME_CHARS;

use super::{flag, text, ui, yes, Ui};
use crate::shell::{self, sign_in};

// The form's changing words; `index.html`'s placeholder form shows them as the form
// first reads, and a test below keeps the two alike. (The static ones stay literals in
// `view!`, which builds them into its template: as constants they cost the download.)
const PICK_A_NAME: &str = "Pick a name to join the chat.";
const JOIN: &str = "Join";
const JOINING: &str = "Joining…";

#[component]
pub(super) fn JoinScreen() -> impl IntoView {
    let Ui {
        chat, name_draft, ..
    } = ui();
    let auth = move || chat.with(|c| c.auth);
    let joining = move || chat.with(|c| c.joining);
    let error = move || chat.with(|c| c.join_error.clone().unwrap_or_default());
    let input: NodeRef<html::Input> = NodeRef::new();
    input.on_load(|input| {
        let _ = input.focus();
    });
    let on_submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        let name = name_draft.get_untracked();
        shell::dispatch(&mut |c| c.join(&name));
    };
    view! {
        <section class="join" data-testid="join-screen" aria-labelledby="join-title">
            <h1 id="join-title">"Webchat"</h1>
            <p class="lead">
                {text(move || {
                    if auth() { "Sign in to join the chat." } else { PICK_A_NAME }
                        .to_string()
                })}
            </p>
            <div class="sign-in" hidden=flag(move || !auth())>
                <button
                    type="button"
                    data-testid="sign-in-button"
                    disabled=flag(joining)
                    on:click=|_| sign_in::sign_in()
                >
                    {text(move || if joining() { "Signing in…" } else { "Sign in" }.to_string())}
                </button>
                <p class="error" role="alert" data-testid="sign-in-error">
                    {text(error)}
                </p>
            </div>
            <form data-testid="join-form" hidden=flag(auth) novalidate on:submit=on_submit>
                <label for="name-input">"Your name"</label>
                <div class="row">
                    <input
                        id="name-input"
                        data-testid="name-input"
                        node_ref=input
                        type="text"
                        autocomplete="nickname"
                        maxlength=MAX_NAME_CHARS
                        aria-describedby="join-error"
                        aria-invalid=text(move || yes(!error().is_empty()).to_string())
                        prop:value=name_draft.get_untracked()
                        on:input=move |event| name_draft.set(event_target_value(&event))
                    />
                    <button type="submit" data-testid="join-button" disabled=flag(joining)>
                        {text(move || if joining() { JOINING } else { JOIN }.to_string())}
                    </button>
                </div>
                <p id="join-error" class="error" role="alert" data-testid="join-error">
                    {text(error)}
                </p>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::{JOIN, JOINING, PICK_A_NAME};

    const INDEX_HTML: &str = include_str!("../../../index.html");

    #[test]
    fn the_placeholder_form_in_index_html_reads_as_the_apps_join_form() {
        for text in [PICK_A_NAME, JOIN] {
            assert!(INDEX_HTML.contains(&format!(">{text}<")), "{text}");
        }
        assert!(INDEX_HTML.contains(&format!("\"{JOINING}\"")), "{JOINING}");
    }
}
