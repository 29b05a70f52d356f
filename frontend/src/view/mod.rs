//! The page: Leptos components, one per file, over one `RwSignal<ChatState>`. Each part
//! reads what it shows from the state through derived signals; each user action is an
//! update of the state through [`shell::dispatch`], which also runs the commands it
//! returns. The view keeps only its own state: the drafts and the transcript's scrolling.

// `#[component]` gives each component's props struct `pub` whatever the function's
// visibility; the modules are private, so nothing leaves the crate.
#![allow(unreachable_pub)]

mod chat_screen;
mod composer;
mod entry_row;
mod join_screen;
mod people;
mod rooms;
mod transcript;

use leptos::either::Either;
use leptos::prelude::*;

use crate::shell::{self, timers};
use crate::state::{ChatState, Command, Screen};

/// Signals shared by the components.
#[derive(Clone, Copy)]
pub(crate) struct Ui {
    chat: RwSignal<ChatState>,
    /// `Date.now()`, refreshed every second for the reconnect countdown.
    now: RwSignal<f64>,
    /// The name field's text, kept while the chat screen is shown.
    name_draft: RwSignal<String>,
    /// The composer's text.
    draft: RwSignal<String>,
    /// The transcript sticks to its end (false once the reader scrolls up).
    following: RwSignal<bool>,
}

fn ui() -> Ui {
    expect_context::<Ui>()
}

/// The whole app: the state, the shell started on it, and the screen it is on.
#[component]
pub fn App() -> impl IntoView {
    let chat = RwSignal::new(ChatState::new());
    let now = RwSignal::new(timers::now_ms());
    let placeholder = shell::placeholder::take();
    let name_draft = RwSignal::new(match &placeholder {
        Some(placeholder) => placeholder.name.clone(),
        None => shell::storage::load_name().unwrap_or_default(),
    });
    provide_context(Ui {
        chat,
        now,
        name_draft,
        draft: RwSignal::new(String::new()),
        following: RwSignal::new(true),
    });
    let join_requested = placeholder.is_some_and(|p| p.join_requested);
    shell::start(
        Box::new(move |update| {
            let mut commands = Vec::<Command>::new();
            chat.update(|c| commands = update(c));
            commands
        }),
        // A Join pressed on the placeholder form goes through once sign-in is known to
        // be off (with the name field as it is then, as the form's own Join would); with
        // sign-in on, the name form was never the way in.
        Box::new(move || {
            if join_requested && !chat.with_untracked(|c| c.auth) {
                let name = name_draft.get_untracked();
                shell::dispatch(&mut |c| c.join(&name));
            }
        }),
    );
    timers::every(Box::new(move || now.set(timers::now_ms())), 1000);
    let on_join = Memo::new(move |_| chat.with(|c| c.screen == Screen::Join));
    view! {
        <main class="app">
            {move || {
                if on_join.get() {
                    Either::Left(join_screen::JoinScreen())
                } else {
                    Either::Right(chat_screen::ChatScreen())
                }
            }}
        </main>
    }
}

/// Text derived from the state. Every binding is a `Signal<String>`, so they all share
/// one copy of the rendering code, where a closure per binding would compile its own.
fn text(f: impl Fn() -> String + Send + Sync + 'static) -> Signal<String> {
    Signal::derive(f)
}

/// [`text`] for boolean attributes (`hidden`, `disabled`).
fn flag(f: impl Fn() -> bool + Send + Sync + 'static) -> Signal<bool> {
    Signal::derive(f)
}

/// `"true"` or `"false"`, for ARIA states and data attributes.
fn yes(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}
