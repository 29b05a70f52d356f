//! The chat screen: who you are, the link's status and Leave (Sign out with sign-in on)
//! over the side panel (rooms, people) and the conversation (transcript, composer).

use leptos::prelude::*;

use super::composer::Composer;
use super::{people::People, rooms::Rooms, text, transcript::Transcript, ui, Ui};
use crate::shell::{self, sign_in};
use crate::state::ChatState;

#[component]
pub(super) fn ChatScreen() -> impl IntoView {
    let Ui { chat, now, .. } = ui();
    let auth = move || chat.with(|c| c.auth);
    let status = move || chat.with(|c| c.status(now.get()));
    let on_leave = move |_| {
        if auth() {
            sign_in::sign_out();
        } else {
            shell::dispatch(&mut ChatState::leave);
        }
    };
    view! {
        <div class="chat" data-testid="chat-screen">
            <header class="top">
                <h1>"Webchat"</h1>
                <p class="me" data-testid="me">
                    "online as "
                    <strong>{text(move || chat.with(|c| c.name.clone().unwrap_or_default()))}</strong>
                </p>
                <p
                    class=text(move || format!("status status-{}", status().key()))
                    data-testid="status"
                    data-status=text(move || status().key().to_string())
                >
                    // The countdown changes every second: show it, announce only the state.
                    <span aria-hidden="true">{text(move || status().label())}</span>
                    <span class="visually-hidden" role="status">
                        {text(move || chat.with(|c| c.status(0.0).key().to_string()))}
                    </span>
                </p>
                <button
                    type="button"
                    class="leave"
                    data-testid=text(move || if auth() { "sign-out-button" } else { "leave-button" }.to_string())
                    on:click=on_leave
                >
                    {text(move || if auth() { "Sign out" } else { "Leave" }.to_string())}
                </button>
            </header>
            <div class="panes">
                <aside class="users" aria-label="Rooms and people">
                    <Rooms />
                    <People />
                </aside>
                <section class="conversation" aria-label="Conversation">
                    <Transcript />
                    <Composer />
                </section>
            </div>
        </div>
    }
}
