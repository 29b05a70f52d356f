//! The browser side of the app: one WebSocket at a time, the reconnect and ping timers,
//! localStorage and sessionStorage, and finding the WebSocket URL. It feeds events into
//! [`Chat`] and carries out the [`Command`]s it returns; all decisions are made there.

use crate::state::{
    ws_url, Chat, Command, NAME_STORAGE_KEY, PING_INTERVAL_MS, SESSION_STORAGE_KEY,
};
use leptos::prelude::*;
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// One socket and the handlers that keep it alive.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Detaches the handlers and closes the socket: it sends no more events.
    fn shut(self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close_with_code(1000);
        // A handler of this socket may be running right now: drop the closures later.
        set_timeout(move || drop(self), Duration::ZERO);
    }
}

#[derive(Default)]
struct Shell {
    chat: Option<RwSignal<Chat>>,
    /// The WebSocket URL, once found.
    url: Option<String>,
    /// A `Connect` came before the URL was known.
    connect_when_ready: bool,
    socket: Option<Socket>,
    /// Bumped for every socket, so events of an older one are ignored.
    generation: u32,
    reconnect_timer: Option<TimeoutHandle>,
}

thread_local! {
    static SHELL: RefCell<Shell> = RefCell::new(Shell::default());
}

/// Milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// The local time of day and the ISO form of a timestamp.
pub fn local_time(timestamp_ms: f64) -> (String, String) {
    let date = js_sys::Date::new(&JsValue::from_f64(timestamp_ms));
    (
        crate::state::clock(date.get_hours(), date.get_minutes()),
        date.to_iso_string().as_string().unwrap_or_default(),
    )
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// This tab's own storage: it survives reloads, and a new tab starts without it.
fn session_storage() -> Option<web_sys::Storage> {
    window().session_storage().ok().flatten()
}

/// The last name used, from localStorage.
pub fn load_name() -> Option<String> {
    storage()?.get_item(NAME_STORAGE_KEY).ok().flatten()
}

/// Starts the shell: finds the WebSocket URL and starts the clock, ping and
/// online/offline listeners. Called once, by the app.
pub fn start(chat: RwSignal<Chat>, now: RwSignal<f64>) {
    SHELL.with_borrow_mut(|shell| shell.chat = Some(chat));
    if let Some(saved) =
        session_storage().and_then(|s| s.get_item(SESSION_STORAGE_KEY).ok().flatten())
    {
        dispatch(|c| c.resume(&saved));
    }
    leptos::task::spawn_local(async {
        let url = find_ws_url().await;
        let connect = SHELL.with_borrow_mut(|shell| {
            shell.url = Some(url);
            std::mem::take(&mut shell.connect_when_ready)
        });
        if connect {
            run(Command::Connect);
        }
    });
    let _ = set_interval_with_handle(move || now.set(now_ms()), Duration::from_secs(1));
    let _ = set_interval_with_handle(
        || dispatch(Chat::ping),
        Duration::from_millis(PING_INTERVAL_MS.into()),
    );
    std::mem::forget(window_event_listener_untyped("online", |_| {
        dispatch(|c| c.browser_online_changed(true))
    }));
    std::mem::forget(window_event_listener_untyped("offline", |_| {
        dispatch(|c| c.browser_online_changed(false))
    }));
    if !window().navigator().on_line() {
        dispatch(|c| c.browser_online_changed(false));
    }
}

/// Applies a user action or event to the state, then runs the commands it returns.
pub fn dispatch(f: impl FnOnce(&mut Chat) -> Vec<Command>) {
    dispatch_with(|chat| (f(chat), ()));
}

/// Like [`dispatch`], for updates that also return a value.
pub fn dispatch_with<R: Default>(f: impl FnOnce(&mut Chat) -> (Vec<Command>, R)) -> R {
    let Some(chat) = SHELL.with_borrow(|shell| shell.chat) else {
        return R::default();
    };
    let (commands, result) = chat.try_update(f).unwrap_or_default();
    for command in commands {
        run(command);
    }
    result
}

fn run(command: Command) {
    match command {
        Command::Connect => connect(),
        Command::Send(text) => SHELL.with_borrow(|shell| {
            if let Some(socket) = &shell.socket {
                if socket.ws.ready_state() == WebSocket::OPEN {
                    let _ = socket.ws.send_with_str(&text);
                }
            }
        }),
        Command::Close => {
            let old = SHELL.with_borrow_mut(|shell| {
                shell.generation = shell.generation.wrapping_add(1);
                shell.connect_when_ready = false;
                if let Some(timer) = shell.reconnect_timer.take() {
                    timer.clear();
                }
                shell.socket.take()
            });
            if let Some(socket) = old {
                socket.shut();
            }
        }
        Command::ScheduleReconnect { delay_ms } => {
            let timer = set_timeout_with_handle(
                || dispatch(Chat::reconnect_due),
                Duration::from_millis(delay_ms.into()),
            )
            .ok();
            SHELL.with_borrow_mut(|shell| {
                if let Some(old) = std::mem::replace(&mut shell.reconnect_timer, timer) {
                    old.clear();
                }
            });
        }
        Command::ResendLater {
            request_id,
            delay_ms,
        } => {
            // Not cancelled on reconnect: `resend_due` sends nothing for a message the
            // dropped connection already failed.
            let _ = set_timeout_with_handle(
                move || dispatch(|chat| chat.resend_due(&request_id)),
                Duration::from_millis(delay_ms.into()),
            );
        }
        Command::SaveSession(text) => {
            if let Some(storage) = session_storage() {
                let _ = if text.is_empty() {
                    storage.remove_item(SESSION_STORAGE_KEY)
                } else {
                    storage.set_item(SESSION_STORAGE_KEY, &text)
                };
            }
        }
        Command::SaveName(name) => {
            if let Some(storage) = storage() {
                let _ = storage.set_item(NAME_STORAGE_KEY, &name);
            }
        }
    }
}

/// Opens a new socket, closing any existing one first: there is never more than one.
fn connect() {
    let (old, url, generation) = SHELL.with_borrow_mut(|shell| {
        shell.generation = shell.generation.wrapping_add(1);
        if let Some(timer) = shell.reconnect_timer.take() {
            timer.clear();
        }
        if shell.url.is_none() {
            shell.connect_when_ready = true;
        }
        (shell.socket.take(), shell.url.clone(), shell.generation)
    });
    if let Some(old) = old {
        old.shut();
    }
    let Some(url) = url else {
        return;
    };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            // An unusable URL fails like a refused connection: back off and retry.
            set_timeout(
                move || {
                    on_event(generation, |c| {
                        c.socket_closed(now_ms(), js_sys::Math::random())
                    })
                },
                Duration::ZERO,
            );
            return;
        }
    };
    let on_open = Closure::<dyn FnMut()>::new(move || on_event(generation, Chat::socket_opened));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string() {
            on_event(generation, move |c| c.frame(&text));
        }
    });
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
        on_event(generation, |c| {
            c.socket_closed(now_ms(), js_sys::Math::random())
        });
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    SHELL.with_borrow_mut(|shell| {
        shell.socket = Some(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        });
    });
}

/// Dispatches an event of socket `generation`, unless a newer socket replaced it.
fn on_event(generation: u32, f: impl FnOnce(&mut Chat) -> Vec<Command>) {
    if SHELL.with_borrow(|shell| shell.generation) == generation {
        dispatch(f);
    }
}

/// The WebSocket URL, from the page URL, `config.json` next to the page and the page's
/// host; [`ws_url`] decides.
async fn find_ws_url() -> String {
    let location = window().location();
    let config = fetch_text("config.json").await;
    ws_url(
        &location.search().unwrap_or_default(),
        config.as_deref(),
        &location.protocol().unwrap_or_default(),
        &location.host().unwrap_or_default(),
    )
}

async fn fetch_text(path: &str) -> Option<String> {
    let response = wasm_bindgen_futures::JsFuture::from(window().fetch_with_str(path))
        .await
        .ok()?
        .dyn_into::<web_sys::Response>()
        .ok()?;
    if !response.ok() {
        return None;
    }
    let text = wasm_bindgen_futures::JsFuture::from(response.text().ok()?)
        .await
        .ok()?;
    text.as_string()
}
