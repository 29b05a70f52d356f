//! The webchat browser UI: Leptos components over the plain-Rust state machine in
//! [`state`], and the browser shell ([`shell`]) that carries out its commands with a
//! WebSocket, timers and localStorage.
//!
//! Everything from the network is rendered as text nodes; nothing is ever inserted as HTML.

pub mod shell;
pub mod state;

use leptos::either::Either;
use leptos::ev;
use leptos::html;
use leptos::prelude::*;
use state::{counter_text, enter_sends, Chat, Delivery, Entry, EntryKind, Screen};
use webchat_shared_types::{MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_ROOM_CHARS};

/// Signals shared by the components.
#[derive(Clone, Copy)]
struct Ui {
    chat: RwSignal<Chat>,
    /// `Date.now()`, refreshed every second for the reconnect countdown.
    now: RwSignal<f64>,
    name_draft: RwSignal<String>,
    draft: RwSignal<String>,
    /// The transcript sticks to its end (false once the reader scrolls up).
    following: RwSignal<bool>,
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let chat = RwSignal::new(Chat::new());
    let ui = Ui {
        chat,
        now: RwSignal::new(shell::now_ms()),
        name_draft: RwSignal::new(shell::load_name().unwrap_or_default()),
        draft: RwSignal::new(String::new()),
        following: RwSignal::new(true),
    };
    shell::start(chat, ui.now);
    provide_context(ui);

    let screen = Memo::new(move |_| chat.with(|c| c.screen));
    view! {
        <main class="app">
            {move || match screen.get() {
                Screen::Join => Either::Left(view! { <JoinScreen /> }),
                Screen::Chat => Either::Right(view! { <ChatScreen /> }),
            }}
        </main>
    }
}

fn ui() -> Ui {
    expect_context::<Ui>()
}

/// A derived text, attribute or property value as a type-erased signal: every binding of
/// a `Signal<String>` shares one copy of the rendering code, where a closure per binding
/// compiles its own (docs/frontend.md has the measured difference).
fn text(f: impl Fn() -> String + Send + Sync + 'static) -> Signal<String> {
    Signal::derive(f)
}

/// [`text`] for boolean attributes and properties.
fn flag(f: impl Fn() -> bool + Send + Sync + 'static) -> Signal<bool> {
    Signal::derive(f)
}

/// `"true"` or `"false"`, for ARIA states.
fn aria(value: bool) -> String {
    if value { "true" } else { "false" }.to_string()
}

/// The join screen: the name form, or with sign-in on (`config.json`'s `auth`) the
/// Sign in button, the name being the ID token's. Both are always there, one hidden:
/// two views behind an `Either` would cost the download more.
#[component]
fn JoinScreen() -> impl IntoView {
    let Ui {
        chat, name_draft, ..
    } = ui();
    let joining = move || chat.with(|c| c.joining);
    let error = move || chat.with(|c| c.join_error.clone());
    // Only in builds with the `sign-in` feature: without it the button would be
    // download for nothing.
    #[cfg(feature = "sign-in")]
    let auth = move || chat.with(|c| c.auth);
    #[cfg(feature = "sign-in")]
    let (lead, form_hidden, sign_in_button) = (
        text(move || {
            if auth() {
                "Sign in to join the chat."
            } else {
                "Pick a name to join the chat."
            }
            .to_string()
        }),
        flag(auth),
        view! {
            <div class="sign-in" hidden=flag(move || !auth())>
                <button
                    type="button"
                    data-testid="sign-in-button"
                    disabled=flag(joining)
                    on:click=move |_| shell::sign_in()
                >
                    {text(move || if joining() { "Signing in…" } else { "Sign in" }.to_string())}
                </button>
                <p class="error" role="alert" data-testid="sign-in-error">
                    {text(move || error().unwrap_or_default())}
                </p>
            </div>
        },
    );
    #[cfg(not(feature = "sign-in"))]
    let (lead, form_hidden, sign_in_button) = ("Pick a name to join the chat.", false, ());
    let input_ref: NodeRef<html::Input> = NodeRef::new();
    Effect::new(move |_| {
        if let Some(input) = input_ref.get() {
            let _ = input.focus();
        }
    });
    let on_submit = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        let name = name_draft.get_untracked();
        shell::dispatch(move |c| c.join(&name));
    };
    view! {
        <section class="join" data-testid="join-screen" aria-labelledby="join-title">
            <h1 id="join-title">"Webchat"</h1>
            <p class="lead">{lead}</p>
            {sign_in_button}
            <form on:submit=on_submit data-testid="join-form" hidden=form_hidden novalidate>
                <label for="name-input">"Your name"</label>
                <div class="row">
                    <input
                        id="name-input"
                        data-testid="name-input"
                        node_ref=input_ref
                        type="text"
                        autocomplete="nickname"
                        maxlength=MAX_NAME_CHARS.to_string()
                        aria-describedby="join-error"
                        aria-invalid=text(move || aria(error().is_some()))
                        prop:value=name_draft
                        on:input=move |ev| name_draft.set(event_target_value(&ev))
                    />
                    <button type="submit" data-testid="join-button" disabled=flag(joining)>
                        {text(move || if joining() { "Joining…" } else { "Join" }.to_string())}
                    </button>
                </div>
                <p id="join-error" class="error" role="alert" data-testid="join-error">
                    {text(move || error().unwrap_or_default())}
                </p>
            </form>
        </section>
    }
}

#[component]
fn ChatScreen() -> impl IntoView {
    let Ui { chat, now, .. } = ui();
    let name = move || chat.with(|c| c.name.clone().unwrap_or_default());
    let status = move || chat.with(|c| c.status(now.get()));
    // With sign-in on, leaving signs out.
    #[cfg(feature = "sign-in")]
    let (on_leave, leave_id, leave_label) = {
        let auth = move || chat.with(|c| c.auth);
        (
            move |_| {
                if auth() {
                    shell::sign_out()
                } else {
                    shell::dispatch(|c| c.leave())
                }
            },
            text(move || {
                if auth() {
                    "sign-out-button"
                } else {
                    "leave-button"
                }
                .to_string()
            }),
            text(move || if auth() { "Sign out" } else { "Leave" }.to_string()),
        )
    };
    #[cfg(not(feature = "sign-in"))]
    let (on_leave, leave_id, leave_label) = (
        move |_| shell::dispatch(|c| c.leave()),
        "leave-button",
        "Leave",
    );
    view! {
        <div class="chat" data-testid="chat-screen">
            <header class="top">
                <h1>"Webchat"</h1>
                <p class="me" data-testid="me">"online as " <strong>{text(name)}</strong></p>
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
                    data-testid=leave_id
                    on:click=on_leave
                >
                    {leave_label}
                </button>
            </header>
            <div class="panes">
                <UserList />
                <section class="conversation" aria-label="Conversation">
                    <Transcript />
                    <Composer />
                </section>
            </div>
        </div>
    }
}

#[component]
fn UserList() -> impl IntoView {
    let Ui { chat, .. } = ui();
    let users = move || chat.with(|c| c.room().users.clone());
    let recipient =
        move || chat.with(|c| c.recipient.as_ref().and_then(|r| r.connection_id.clone()));
    view! {
        <aside class="users" aria-labelledby="users-title">
            <Rooms />
            <h2 id="users-title">
                {text(move || chat.with(|c| if c.current == 0 { "Online".into() } else { format!("In #{}", c.room().name) }))}
                " ("
                <span data-testid="user-count">
                    {text(move || chat.with(|c| c.room().users.len()).to_string())}
                </span>
                ")"
            </h2>
            {move || {
                chat.with(|c| c.room().users.is_empty())
                    .then(|| view! { <p class="hint">"Nobody else is here yet."</p> })
            }}
            <ul data-testid="user-list">
                {move || {
                    users()
                        .into_iter()
                        .map(|user| {
                        let id = user.connection_id.clone();
                        let id_for_click = id.clone();
                        let label = format!("Send a private message to {}", user.user_name);
                        view! {
                            <li data-testid="user" data-name=user.user_name.clone()>
                                <button
                                    type="button"
                                    title=label.clone()
                                    aria-label=label
                                    aria-pressed=text(move || aria(recipient().as_deref() == Some(id.as_str())))
                                    on:click=move |_| {
                                        let id = id_for_click.clone();
                                        shell::dispatch(move |c| {
                                            c.toggle_recipient(&id);
                                            Vec::new()
                                        });
                                    }
                                >
                                    {user.user_name.clone()}
                                </button>
                            </li>
                        }
                        })
                        .collect::<Vec<_>>()
                }}
            </ul>
        </aside>
    }
}

/// The rooms this tab is in (the one shown marked, the others with their unread
/// counts), the field to join another and the button to leave the one shown.
///
/// Kept to one button per room with its count in its label: every element and
/// attribute of a row adds rendering code to the download.
#[component]
fn Rooms() -> impl IntoView {
    let Ui {
        chat, following, ..
    } = ui();
    let input_ref: NodeRef<html::Input> = NodeRef::new();
    let rooms = move || {
        chat.with(|c| {
            c.rooms
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name.clone(), r.unread, i == c.current))
                .collect::<Vec<_>>()
        })
    };
    let on_submit = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        // Read when submitted: a signal bound to the field would add to the download.
        let Some(input) = input_ref.get_untracked() else {
            return;
        };
        let raw = input.value();
        if shell::dispatch_with(move |c| c.join_room(&raw)) {
            input.set_value("");
            following.set(true);
        }
    };
    let on_leave = move |_| {
        shell::dispatch(|c| {
            let name = c.room().name.clone();
            c.leave_room(&name)
        })
    };
    view! {
        <nav class="rooms" aria-labelledby="rooms-title">
            <h2 id="rooms-title">"Rooms"</h2>
            <ul data-testid="room-list">
                {move || {
                    rooms()
                        .into_iter()
                        .map(|(name, unread, shown)| {
                            let label = if unread > 0 {
                                format!("#{name} ({unread})")
                            } else {
                                format!("#{name}")
                            };
                            let to_show = name.clone();
                            view! {
                                <li data-testid="room" data-room=name data-unread=unread.to_string()>
                                    <button
                                        type="button"
                                        aria-current=if shown { "true" } else { "false" }
                                        on:click=move |_| {
                                            following.set(true);
                                            let name = to_show.clone();
                                            shell::dispatch(move |c| {
                                                c.show_room(&name);
                                                Vec::new()
                                            });
                                        }
                                    >
                                        {label}
                                    </button>
                                </li>
                            }
                        })
                        .collect::<Vec<_>>()
                }}
            </ul>
            <form class="join-room" data-testid="join-room-form" on:submit=on_submit novalidate>
                <label for="room-input" class="visually-hidden">"Room to join"</label>
                <input
                    id="room-input"
                    data-testid="room-input"
                    node_ref=input_ref
                    type="text"
                    placeholder="room name"
                    maxlength=MAX_ROOM_CHARS.to_string()
                    aria-describedby="room-error"
                />
                <button type="submit" data-testid="join-room-button">"Join"</button>
            </form>
            <p id="room-error" class="error" role="alert" data-testid="room-error">
                {text(move || chat.with(|c| c.room_error.clone().unwrap_or_default()))}
            </p>
            // The lobby cannot be left.
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

#[component]
fn Transcript() -> impl IntoView {
    let Ui {
        chat, following, ..
    } = ui();
    let list_ref: NodeRef<html::Ol> = NodeRef::new();
    let unseen = RwSignal::new(0usize);
    // The transcript's height when an older page was asked for: once it is in, the lines
    // being read are put back where they were.
    let height_before = StoredValue::new(0);

    let scroll_to_end = move || {
        request_animation_frame(move || {
            if let Some(list) = list_ref.get_untracked() {
                list.set_scroll_top(list.scroll_height());
            }
        });
    };
    // Follow new lines unless the reader scrolled up; then count them instead.
    Effect::new(move |previous: Option<(Option<u64>, Option<u64>)>| {
        let ends = chat.with(|c| {
            let entries = &c.room().entries;
            (entries.first().map(|e| e.id), entries.last().map(|e| e.id))
        });
        let (first, last) = previous.unwrap_or_default();
        if following.get() {
            unseen.set(0);
            scroll_to_end();
        } else if ends.1 == last && ends.0 != first {
            let before = height_before.get_value();
            request_animation_frame(move || {
                if let Some(list) = list_ref.get_untracked() {
                    list.set_scroll_top(list.scroll_height() - before);
                }
            });
        } else {
            let added = chat.with_untracked(|c| {
                c.room()
                    .entries
                    .iter()
                    .rev()
                    .take_while(|e| Some(e.id) > last)
                    .count()
            });
            unseen.update(|n| *n += added);
        }
        ends
    });
    let on_scroll = move |_| {
        if let Some(list) = list_ref.get_untracked() {
            let at_end = list.scroll_height() - list.scroll_top() - list.client_height() <= 24;
            if following.get_untracked() != at_end {
                following.set(at_end);
            }
            if list.scroll_top() <= 0 {
                height_before.set_value(list.scroll_height());
                shell::dispatch(Chat::load_older);
            }
        }
    };

    view! {
        <div class="transcript-wrap">
            <ol
                class="transcript"
                data-testid="transcript"
                node_ref=list_ref
                role="log"
                aria-live="polite"
                aria-label="Messages"
                tabindex="0"
                on:scroll=on_scroll
            >
                // Unkeyed: rows are updated in place by position, which leaves a keyed
                // diff (and its hash map) out of the download. An older page or a
                // reconnect's gap going in above re-renders the rows below it.
                {move || {
                    chat.with(|c| {
                        c.room().entries.iter().cloned().map(|entry| view! { <EntryRow entry /> }).collect::<Vec<_>>()
                    })
                }}
            </ol>
            {move || {
                (unseen.get() > 0)
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="jump"
                                data-testid="jump-to-latest"
                                on:click=move |_| following.set(true)
                            >
                                {text(move || format!("{} new ↓", unseen.get()))}
                            </button>
                        }
                    })
            }}
        </div>
    }
}

#[component]
fn EntryRow(entry: Entry) -> impl IntoView {
    let title = entry.title();
    match entry.kind {
        EntryKind::System { text, divider } => Either::Left(view! {
            <li
                class=if divider { "system divider" } else { "system" }
                data-testid=if divider { "away-divider" } else { "system-line" }
            >
                {text}
            </li>
        }),
        EntryKind::Message {
            sender,
            text,
            timestamp_ms,
            private,
            own,
            to,
            delivery,
        } => {
            let (delivery_key, delivery_label) = match &delivery {
                Delivery::Received => ("received", ""),
                Delivery::Pending => ("pending", "sending…"),
                Delivery::Sent { .. } => ("sent", "sent"),
                Delivery::Failed { .. } => ("failed", "not sent"),
            };
            let mut class = String::from("msg");
            if own {
                class.push_str(" own");
            }
            if private {
                class.push_str(" private");
            }
            class.push(' ');
            class.push_str(delivery_key);
            let (time, iso) = shell::local_time(timestamp_ms);
            let sender_attr = sender.clone();
            let private_label = match (private, to) {
                (false, _) => None,
                (true, Some(to)) => Some(format!("private to {to}")),
                (true, None) => Some("private".to_string()),
            };
            Either::Right(view! {
                <li
                    class=class
                    data-testid="message"
                    data-sender=sender_attr
                    data-own=own.to_string()
                    data-private=private.to_string()
                    data-delivery=delivery_key
                    title=title
                >
                    <div class="meta">
                        <span class="sender" data-testid="message-sender">{sender}</span>
                        {private_label.map(|label| view! {
                            <span class="tag" data-testid="private-tag">{label}</span>
                        })}
                        <time datetime=iso>{time}</time>
                        {own.then(|| view! {
                            <span class="delivery" data-testid="delivery">{delivery_label}</span>
                        })}
                    </div>
                    <p class="text" data-testid="message-text">{text}</p>
                </li>
            })
        }
    }
}

#[component]
fn Composer() -> impl IntoView {
    let Ui {
        chat,
        draft,
        following,
        ..
    } = ui();
    let textarea_ref: NodeRef<html::Textarea> = NodeRef::new();
    let users = move || chat.with(|c| c.lobby().users.clone());
    let recipient = move || chat.with(|c| c.recipient.clone());
    let blocker = move || draft.with(|d| chat.with(|c| c.send_blocker(d)));
    let online = move || chat.with(Chat::online);
    let counter = move || draft.with(|d| counter_text(d));
    let over_limit = move || draft.with(|d| d.trim().chars().count() > MAX_MESSAGE_CHARS);

    Effect::new(move |_| {
        if let Some(textarea) = textarea_ref.get() {
            let _ = textarea.focus();
        }
    });

    let send = move || {
        let text = draft.get_untracked();
        let taken = shell::dispatch_with(move |c| c.send_message(&text, shell::now_ms()));
        if taken {
            draft.set(String::new());
            // Your own message always brings the transcript to its end.
            following.set(true);
        }
    };
    let on_keydown = move |ev: ev::KeyboardEvent| {
        if enter_sends(&ev.key(), ev.shift_key(), ev.is_composing()) {
            ev.prevent_default();
            send();
        }
    };
    let on_submit = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        send();
    };
    let on_recipient = move |ev: ev::Event| {
        let value = event_target_value(&ev);
        shell::dispatch(move |c| {
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
                    <option value="" prop:selected=flag(move || recipient().is_none())>
                        "Everyone"
                    </option>
                    {move || {
                        users()
                            .into_iter()
                            .map(|user| {
                            let id = user.connection_id.clone();
                            let selected = move || {
                                recipient()
                                    .and_then(|r| r.connection_id)
                                    .is_some_and(|selected| selected == id)
                            };
                            view! {
                                <option value=user.connection_id.clone() prop:selected=flag(selected)>
                                    {format!("{} (private)", user.user_name)}
                                </option>
                            }
                            })
                            .collect::<Vec<_>>()
                    }}
                    {move || {
                        recipient()
                            .filter(|r| r.connection_id.is_none())
                            .map(|r| view! {
                                <option value="~offline" disabled=true selected=true>
                                    {format!("{} (offline)", r.user_name)}
                                </option>
                            })
                    }}
                </select>
            </div>
            <div class="write">
                <label for="message-input" class="visually-hidden">"Message"</label>
                <textarea
                    id="message-input"
                    data-testid="message-input"
                    node_ref=textarea_ref
                    rows="2"
                    placeholder=text(move || chat.with(Chat::composer_placeholder))
                    aria-describedby="composer-hint message-counter"
                    prop:value=draft
                    on:input=move |ev| draft.set(event_target_value(&ev))
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
                        if online() {
                            String::new()
                        } else {
                            "Offline: your text is kept and can be sent once the chat is back.".into()
                        }
                    })}
                </span>
                <span
                    id="message-counter"
                    class=text(move || if over_limit() { "counter over" } else { "counter" }.to_string())
                    data-testid="counter"
                    aria-live="polite"
                >
                    {text(move || counter().unwrap_or_default())}
                </span>
            </div>
        </form>
    }
}
