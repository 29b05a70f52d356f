//! The rooms this tab is in (the one shown marked, the others with their unread
//! counts), the field to join another and the button to leave the one shown.

use leptos::{ev, html, prelude::*};
use webchat_shared_types::MAX_ROOM_CHARS;

use super::{flag, text, ui, yes, Ui};
use crate::shell;

#[component]
pub(super) fn Rooms() -> impl IntoView {
    let Ui {
        chat, following, ..
    } = ui();
    let input: NodeRef<html::Input> = NodeRef::new();
    let rooms = move || {
        chat.with(|c| {
            c.rooms
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name.clone(), r.unread, i == c.current))
                .collect::<Vec<_>>()
        })
    };
    let on_submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        let Some(input) = input.get_untracked() else {
            return;
        };
        let raw = input.value();
        let mut joined = false;
        shell::dispatch(&mut |c| {
            let (commands, ok) = c.join_room(&raw);
            joined = ok;
            commands
        });
        if joined {
            input.set_value("");
            following.set(true);
        }
    };
    // The lobby cannot be left.
    let on_leave = move |_| {
        shell::dispatch(&mut |c| {
            let name = c.room().name.clone();
            c.leave_room(&name)
        });
    };
    view! {
        <nav class="rooms" aria-labelledby="rooms-title">
            <h2 id="rooms-title">"Rooms"</h2>
            <ul data-testid="room-list">
                {move || rooms().into_iter().map(room_row).collect_view()}
            </ul>
            <form class="join-room" data-testid="join-room-form" novalidate on:submit=on_submit>
                <label for="room-input" class="visually-hidden">"Room to join"</label>
                <input
                    id="room-input"
                    data-testid="room-input"
                    node_ref=input
                    type="text"
                    placeholder="room name"
                    maxlength=MAX_ROOM_CHARS
                    aria-describedby="room-error"
                />
                <button type="submit" data-testid="join-room-button">"Join"</button>
            </form>
            <p id="room-error" class="error" role="alert" data-testid="room-error">
                {text(move || chat.with(|c| c.room_error.clone().unwrap_or_default()))}
            </p>
            <button
                type="button"
                class="leave-room"
                data-testid="leave-room"
                hidden=flag(move || chat.with(|c| c.current == 0))
                on:click=on_leave
            >
                {text(move || chat.with(|c| format!("Leave #{}", c.room().name)))}
            </button>
        </nav>
    }
}

/// One room: a button showing it, its unread count in its label.
fn room_row((name, unread, shown): (String, u32, bool)) -> impl IntoView {
    let label = if unread > 0 {
        format!("#{name} ({unread})")
    } else {
        format!("#{name}")
    };
    let following = ui().following;
    let to_show = name.clone();
    let on_click = move |_| {
        following.set(true);
        shell::dispatch(&mut |c| {
            c.show_room(&to_show);
            Vec::new()
        });
    };
    view! {
        <li data-testid="room" data-room=name data-unread=unread>
            <button type="button" aria-current=yes(shown) on:click=on_click>
                {label}
            </button>
        </li>
    }
}
