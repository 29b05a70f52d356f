//! The browser side of the app, by concern: the WebSocket ([`socket`]), timers and the
//! clock ([`timers`]), localStorage and sessionStorage ([`storage`]) and the sign-in's
//! redirects, crypto and token requests ([`sign_in`]), and the join form `index.html`
//! shows before the app runs ([`placeholder`]). It feeds events into the state
//! through the update function the app hands to [`start`], and carries out the
//! [`Command`]s the state returns. It decides nothing and never touches the view.

pub mod placeholder;
pub mod sign_in;
pub mod socket;
pub mod storage;
pub mod timers;

use std::cell::OnceCell;
use wasm_bindgen::prelude::*;

use crate::state::{ws_url, ChatState, Command, PING_INTERVAL_MS, SESSION_STORAGE_KEY};

/// A change to the state: an event or a user action, returning what to do next.
pub type Update<'a> = &'a mut dyn FnMut(&mut ChatState) -> Vec<Command>;

/// How the shell changes the app's state: applies an [`Update`] and returns its commands.
/// The app owns the state; the shell only gets this.
pub type Apply = Box<dyn Fn(Update) -> Vec<Command>>;

thread_local! {
    static APPLY: OnceCell<Apply> = const { OnceCell::new() };
}

/// The page's window; a page always has one.
pub fn window() -> web_sys::Window {
    web_sys::window().expect_throw("no window")
}

/// Starts the shell with the function that applies updates to the app's state: resumes
/// this tab's session, finds the WebSocket URL (and with sign-in on, who is signed in),
/// then calls `configured`, and starts the ping and the online/offline listeners. Called
/// once.
pub fn start(apply: Apply, configured: Box<dyn FnOnce()>) {
    APPLY.with(|cell| {
        let _ = cell.set(apply);
    });
    if let Some(saved) = storage::load(SESSION_STORAGE_KEY) {
        dispatch(&mut |c| c.resume(&saved));
    }
    wasm_bindgen_futures::spawn_local(async move {
        let location = window().location();
        let config = fetch_text("config.json").await;
        let url = ws_url(
            &location.search().unwrap_or_default(),
            config.as_deref(),
            &location.protocol().unwrap_or_default(),
            &location.host().unwrap_or_default(),
        );
        if let Some(auth) = config.as_deref().and_then(sign_in::auth_config) {
            sign_in::load(auth).await;
        }
        socket::set_url(url);
        configured();
    });
    timers::every(
        Box::new(|| dispatch(&mut ChatState::ping)),
        PING_INTERVAL_MS,
    );
    timers::on_window(
        "online",
        Box::new(|| dispatch(&mut |c| c.browser_online_changed(true))),
    );
    timers::on_window(
        "offline",
        Box::new(|| dispatch(&mut |c| c.browser_online_changed(false))),
    );
    if !window().navigator().on_line() {
        dispatch(&mut |c| c.browser_online_changed(false));
    }
}

/// Applies a user action or event to the state, then runs the commands it returns.
pub fn dispatch(update: Update) {
    let commands = APPLY.with(|apply| apply.get().map(|apply| apply(update)));
    for command in commands.unwrap_or_default() {
        run(command);
    }
}

fn run(command: Command) {
    match command {
        Command::Connect => socket::connect(),
        Command::Send(text) => socket::send(&text),
        Command::Close => socket::close(),
        Command::ScheduleReconnect { delay_ms } => socket::reconnect_in(delay_ms),
        Command::AnswerDue {
            request_id,
            delay_ms,
        } => timers::after(
            Box::new(move || dispatch(&mut |c| c.answer_overdue(&request_id))),
            delay_ms,
        ),
        // Not cancelled on reconnect: `resend_due` sends nothing for a message the
        // dropped connection already failed.
        Command::ResendLater {
            request_id,
            delay_ms,
        } => timers::after(
            Box::new(move || dispatch(&mut |c| c.resend_due(&request_id))),
            delay_ms,
        ),
        Command::SaveSession(text) => storage::save(SESSION_STORAGE_KEY, &text),
        Command::SaveName(name) => storage::save_name(&name),
    }
}

/// A GET's body, when the answer is a 2xx.
async fn fetch_text(url: &str) -> Option<String> {
    response_text(gloo_net::http::Request::get(url).send().await.ok()?).await
}

/// The body of an answer, when it is a 2xx.
async fn response_text(response: gloo_net::http::Response) -> Option<String> {
    if !response.ok() {
        return None;
    }
    response.text().await.ok()
}
