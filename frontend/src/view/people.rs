//! The people in the room shown; a click starts (or stops) a private message to one.

use leptos::prelude::*;
use webchat_shared_types::User;

use super::{flag, text, ui, yes, Ui};
use crate::shell;
use crate::state::ChatState;

#[component]
pub(super) fn People() -> impl IntoView {
    let Ui { chat, .. } = ui();
    let people = move || {
        chat.with(|c| {
            let to = c.recipient.as_ref().and_then(|r| r.connection_id.clone());
            c.people(c.room())
                .into_iter()
                .map(|user| {
                    let pressed = to.as_deref() == Some(user.connection_id.as_str());
                    (user, pressed)
                })
                .collect::<Vec<_>>()
        })
    };
    view! {
        <h2 id="users-title">
            {text(move || chat.with(|c| {
                if c.current == 0 { "Online".to_string() } else { format!("In #{}", c.room().name) }
            }))}
            " ("
            <span data-testid="user-count">{text(move || chat.with(|c| c.people_count(c.room()).to_string()))}</span>
            ")"
        </h2>
        <p class="hint" hidden=flag(move || !people().is_empty())>
            "Nobody else is here yet."
        </p>
        <ul data-testid="user-list" aria-labelledby="users-title">
            {move || people().into_iter().map(person_row).collect_view()}
        </ul>
        // A big room lists its members a page at a time.
        <button type="button" data-testid="more-people"
            hidden=flag(move || chat.with(|c| c.room().more_people.is_none()))
            on:click=move |_| shell::dispatch(&mut ChatState::more_people)>
            "Show more"
        </button>
    }
}

fn person_row((user, pressed): (User, bool)) -> impl IntoView {
    let label = format!("Send a private message to {}", user.user_name);
    let id = user.connection_id;
    let name = user.user_name.clone();
    let on_click = move |_| {
        shell::dispatch(&mut |c| {
            c.toggle_recipient(&id);
            Vec::new()
        });
    };
    view! {
        <li data-testid="user" data-name=name>
            <button type="button" title=label.clone() aria-label=label aria-pressed=yes(pressed) on:click=on_click>
                {user.user_name}
            </button>
        </li>
    }
}
