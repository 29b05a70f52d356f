//! The composer: To (everyone, or a lobby member for a private message), the message
//! field with its length counter, and Send (Enter sends, Shift+Enter breaks the line).

use leptos::{ev, html, prelude::*};
use webchat_shared_types::{User, MAX_MESSAGE_CHARS};

use super::{flag, text, ui, Ui};
use crate::shell::{self, timers};
use crate::state::{counter_text, enter_sends, ChatState, Recipient};

#[component]
pub(super) fn Composer() -> impl IntoView {
    let Ui {
        chat,
        draft,
        following,
        ..
    } = ui();
    let field: NodeRef<html::Textarea> = NodeRef::new();
    field.on_load(|field| {
        let _ = field.focus();
    });
    // The options of To: everyone, the lobby's members, and a chosen person who left.
    let options =
        move || chat.with(|c| recipient_options(&c.people(c.lobby()), c.recipient.as_ref()));
    let blocker = move || draft.with(|d| chat.with(|c| c.send_blocker(d)));
    let send = move || {
        let text = draft.get_untracked();
        let mut taken = false;
        shell::dispatch(&mut |c| {
            let (commands, ok) = c.send_message(&text, timers::now_ms());
            taken = ok;
            commands
        });
        if taken {
            draft.set(String::new());
            // Your own message always brings the transcript to its end.
            following.set(true);
        }
    };
    let on_keydown = move |event: ev::KeyboardEvent| {
        if enter_sends(&event.key(), event.shift_key(), event.is_composing()) {
            event.prevent_default();
            send();
        }
    };
    let on_submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        send();
    };
    let on_recipient = move |event: ev::Event| {
        let value = event_target_value(&event);
        shell::dispatch(&mut |c| {
            if !value.starts_with('~') {
                c.set_recipient((!value.is_empty()).then_some(value.as_str()));
            }
            Vec::new()
        });
    };
    view! {
        <form class="composer" data-testid="composer" on:submit=on_submit>
            <div class="to">
                <label for="recipient">"To"</label>
                // Private messages are written in the lobby.
                <select
                    id="recipient"
                    data-testid="recipient"
                    disabled=flag(move || chat.with(|c| c.current > 0))
                    on:change=on_recipient
                >
                    {options}
                </select>
            </div>
            <div class="write">
                <label for="message-input" class="visually-hidden">"Message"</label>
                <textarea
                    id="message-input"
                    data-testid="message-input"
                    node_ref=field
                    rows="2"
                    placeholder=text(move || chat.with(ChatState::composer_placeholder))
                    aria-describedby="composer-hint message-counter"
                    prop:value=draft
                    on:input=move |event| draft.set(event_target_value(&event))
                    on:keydown=on_keydown
                ></textarea>
                <button
                    type="submit"
                    data-testid="send-button"
                    disabled=flag(move || blocker().is_some())
                    title=text(move || blocker().unwrap_or_else(|| "Send (Enter)".into()))
                >
                    "Send"
                </button>
            </div>
            <div class="under">
                <span id="composer-hint" class="hint" data-testid="composer-hint">
                    {text(move || {
                        if chat.with(ChatState::online) {
                            String::new()
                        } else {
                            "Offline: your text is kept and can be sent once the chat is back.".into()
                        }
                    })}
                </span>
                <span
                    id="message-counter"
                    class=text(move || {
                        let over = draft.with(|d| d.trim().chars().count() > MAX_MESSAGE_CHARS);
                        if over { "counter over" } else { "counter" }.to_string()
                    })
                    data-testid="counter"
                    aria-live="polite"
                >
                    {text(move || draft.with(|d| counter_text(d)).unwrap_or_default())}
                </span>
            </div>
        </form>
    }
}

/// Everyone, each lobby member, and a chosen person who is offline (still selectable:
/// what is sent to them is kept for them).
fn recipient_options(people: &[User], to: Option<&Recipient>) -> impl IntoView {
    let chosen = to.and_then(|r| r.connection_id.as_deref());
    let offline = to
        .filter(|r| r.connection_id.is_none())
        .map(|r| format!("{} (offline)", r.user_name));
    view! {
        <option value="" prop:selected=to.is_none()>"Everyone"</option>
        {people
            .iter()
            .map(|user| {
                let selected = chosen == Some(user.connection_id.as_str());
                view! {
                    <option value=user.connection_id.clone() prop:selected=selected>
                        {format!("{} (private)", user.user_name)}
                    </option>
                }
            })
            .collect_view()}
        {offline.map(|label| view! { <option value="~offline" disabled selected>{label}</option> })}
    }
}
