//! The one WebSocket: opened for `Connect`, written to for `Send`, closed for `Close`,
//! its events fed back into the state. Events of a replaced socket are ignored.

use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, WebSocket};

use super::{dispatch, sign_in, timers};
use crate::state::ChatState;

/// One socket and the handlers that keep it alive.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut()>,
}

impl Socket {
    /// Detaches the handlers and closes the socket: it sends no more events.
    fn shut(self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close_with_code(1000);
        // A handler of this socket may be running right now: drop the closures later.
        timers::after(Box::new(move || drop(self)), 0);
    }
}

#[derive(Default)]
struct Link {
    /// The WebSocket URL, once found.
    url: Option<String>,
    /// A `Connect` came before the URL was known.
    connect_when_ready: bool,
    socket: Option<Socket>,
    /// Bumped for every socket, so events of an older one are ignored.
    generation: u32,
    reconnect_timer: Option<timers::Timer>,
}

thread_local! {
    static LINK: RefCell<Link> = RefCell::new(Link::default());
}

/// The URL is known: a `Connect` that waited for it goes now.
pub fn set_url(url: String) {
    let waiting = LINK.with_borrow_mut(|link| {
        link.url = Some(url);
        std::mem::take(&mut link.connect_when_ready)
    });
    if waiting {
        connect();
    }
}

/// Opens a new socket, closing any existing one first: there is never more than one.
pub fn connect() {
    let (old, url, generation) = LINK.with_borrow_mut(|link| {
        link.generation = link.generation.wrapping_add(1);
        if let Some(timer) = link.reconnect_timer.take() {
            timer.clear();
        }
        if link.url.is_none() {
            link.connect_when_ready = true;
        }
        (link.socket.take(), link.url.clone(), link.generation)
    });
    if let Some(old) = old {
        old.shut();
    }
    let Some(url) = url else {
        return;
    };
    let closed = move || {
        on_event(generation, &mut |c| {
            c.socket_closed(timers::now_ms(), js_sys::Math::random())
        });
    };
    let Ok(ws) = WebSocket::new(&sign_in::with_token(url)) else {
        // An unusable URL fails like a refused connection: back off and retry.
        timers::after(Box::new(closed), 0);
        return;
    };
    let on_open =
        Closure::<dyn FnMut()>::new(move || on_event(generation, &mut ChatState::socket_opened));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string() {
            on_event(generation, &mut |c| c.frame(&text));
        }
    });
    let on_close = Closure::<dyn FnMut()>::new(closed);
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    LINK.with_borrow_mut(|link| {
        link.socket = Some(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        });
    });
}

/// Sends a frame if the socket is open; the state resends what it must after a reconnect.
pub fn send(text: &str) {
    LINK.with_borrow(|link| {
        if let Some(socket) = &link.socket {
            if socket.ws.ready_state() == WebSocket::OPEN {
                let _ = socket.ws.send_with_str(text);
            }
        }
    });
}

/// Closes the socket and cancels a planned reconnect.
pub fn close() {
    let old = LINK.with_borrow_mut(|link| {
        link.generation = link.generation.wrapping_add(1);
        link.connect_when_ready = false;
        if let Some(timer) = link.reconnect_timer.take() {
            timer.clear();
        }
        link.socket.take()
    });
    if let Some(socket) = old {
        socket.shut();
    }
}

/// Plans the next connection attempt, replacing any planned before.
pub fn reconnect_in(delay_ms: u32) {
    let timer = timers::timer(
        Box::new(|| dispatch(&mut ChatState::reconnect_due)),
        delay_ms,
    );
    LINK.with_borrow_mut(|link| {
        if let Some(old) = std::mem::replace(&mut link.reconnect_timer, timer) {
            old.clear();
        }
    });
}

/// Dispatches an event of socket `generation`, unless a newer socket replaced it.
fn on_event(generation: u32, f: super::Update) {
    if LINK.with_borrow(|link| link.generation) == generation {
        dispatch(f);
    }
}
