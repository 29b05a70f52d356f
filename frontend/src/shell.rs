//! The browser side of the app: one WebSocket at a time, the reconnect and ping timers,
//! localStorage and sessionStorage, finding the WebSocket URL, and the sign-in's
//! redirects, crypto and token requests. It feeds events into [`Chat`] and carries out
//! the [`Command`]s it returns; the decisions are made there and in `state`'s sign-in
//! functions.

use crate::state::{
    authorize_url, base64url, claims_name, code_exchange_form, logout_url, refresh_form,
    sign_in_callback, without_sign_in_params, ws_url, AuthConfig, Chat, Command, Tokens,
    NAME_STORAGE_KEY, PING_INTERVAL_MS, SESSION_STORAGE_KEY, SIGN_IN_STORAGE_KEY,
    TOKENS_STORAGE_KEY,
};
use std::cell::RefCell;
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
        set_timeout(Box::new(move || drop(self)), 0);
    }
}

#[derive(Default)]
struct Shell {
    /// The WebSocket URL, once found.
    url: Option<String>,
    /// A `Connect` came before the URL was known.
    connect_when_ready: bool,
    socket: Option<Socket>,
    /// Bumped for every socket, so events of an older one are ignored.
    generation: u32,
    reconnect_timer: Option<Timer>,
}

/// The sign-in's part of the shell (used only when `config.json` has `auth`).
#[derive(Default)]
struct SignIn {
    /// Sign-in settings, when `config.json` has them.
    auth: Option<AuthConfig>,
    /// The ID token sockets open with (`?token=`).
    token: Option<String>,
    renew_timer: Option<Timer>,
}

thread_local! {
    static CHAT: RefCell<Chat> = RefCell::new(Chat::new());
    static SHELL: RefCell<Shell> = RefCell::new(Shell::default());
    static SIGN_IN: RefCell<SignIn> = RefCell::new(SignIn::default());
}

pub fn window() -> web_sys::Window {
    web_sys::window().expect_throw("no window")
}

pub fn document() -> web_sys::Document {
    window().document().expect_throw("no document")
}

/// A pending `setTimeout`, and its callback (freed with it).
struct Timer {
    id: i32,
    _callback: Closure<dyn FnMut()>,
}

impl Timer {
    fn clear(self) {
        window().clear_timeout_with_handle(self.id);
    }
}

/// Runs `f` once after `delay_ms`; dropping the returned [`Timer`] before then leaks
/// nothing but the callback, [`Timer::clear`] cancels it.
fn set_timeout_with_handle(f: Box<dyn FnOnce()>, delay_ms: u32) -> Option<Timer> {
    let mut f = Some(f);
    let callback = Closure::wrap(Box::new(move || {
        if let Some(f) = f.take() {
            f()
        }
    }) as Box<dyn FnMut()>);
    let id = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            delay_ms.min(i32::MAX as u32) as i32,
        )
        .ok()?;
    Some(Timer {
        id,
        _callback: callback,
    })
}

/// Runs `f` once after `delay_ms`, for sure.
fn set_timeout(f: Box<dyn FnOnce()>, delay_ms: u32) {
    // The callback must outlive the wait: it frees itself once it has run.
    let callback = Closure::once_into_js(f);
    let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(
        callback.unchecked_ref(),
        delay_ms.min(i32::MAX as u32) as i32,
    );
}

/// Runs `f` every `period_ms`, for the page's lifetime.
fn set_interval(f: Box<dyn FnMut()>, period_ms: u32) {
    let callback = Closure::wrap(f);
    let _ = window().set_interval_with_callback_and_timeout_and_arguments_0(
        callback.as_ref().unchecked_ref(),
        period_ms as i32,
    );
    callback.forget();
}

/// Runs `f` before the next repaint, once the page's layout is up to date.
pub fn next_frame(f: Box<dyn FnOnce()>) {
    let _ = window().request_animation_frame(Closure::once_into_js(f).unchecked_ref());
}

/// Calls `f` on each `event` at the window, for the page's lifetime.
fn on_window(event: &str, f: Box<dyn FnMut()>) {
    let callback = Closure::wrap(f);
    let _ = window().add_event_listener_with_callback(event, callback.as_ref().unchecked_ref());
    callback.forget();
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
pub fn start() {
    if let Some(saved) =
        session_storage().and_then(|s| s.get_item(SESSION_STORAGE_KEY).ok().flatten())
    {
        dispatch(|c| c.resume(&saved));
    }
    wasm_bindgen_futures::spawn_local(async {
        let location = window().location();
        let config = fetch_text("config.json").await;
        let url = ws_url(
            &location.search().unwrap_or_default(),
            config.as_deref(),
            &location.protocol().unwrap_or_default(),
            &location.host().unwrap_or_default(),
        );
        if let Some(auth) = config.as_deref().and_then(auth_config) {
            load_sign_in(auth).await;
        }
        let connect = SHELL.with_borrow_mut(|shell| {
            shell.url = Some(url);
            std::mem::take(&mut shell.connect_when_ready)
        });
        if connect {
            run(Command::Connect);
        }
    });
    // The reconnect countdown.
    set_interval(Box::new(|| with_chat(crate::render)), 1000);
    set_interval(Box::new(|| dispatch(Chat::ping)), PING_INTERVAL_MS);
    on_window(
        "online",
        Box::new(|| dispatch(|c| c.browser_online_changed(true))),
    );
    on_window(
        "offline",
        Box::new(|| dispatch(|c| c.browser_online_changed(false))),
    );
    if !window().navigator().on_line() {
        dispatch(|c| c.browser_online_changed(false));
    }
}

/// With sign-in on: the tokens this page load signs in with, then the chat told who
/// that is. Sockets wait: the URL is set only once this is settled.
async fn load_sign_in(auth: AuthConfig) {
    SIGN_IN.with_borrow_mut(|sign_in| sign_in.auth = Some(auth.clone()));
    dispatch(|c| {
        c.auth = true;
        c.joining = true;
        Vec::new()
    });
    // Sockets wait for the sign-in: the URL is set only once it is settled.
    let (name, failed) = match sign_in_on_load(&auth).await {
        Ok(tokens) => (tokens.and_then(use_tokens), None),
        Err(reason) => (None, Some(reason)),
    };
    dispatch(|c| {
        let mut commands = c.signed_in(name.as_deref());
        if let Some(reason) = failed {
            commands.extend(c.sign_in_failed(reason));
        }
        commands
    });
}

/// Applies a user action or event to the state, then runs the commands it returns.
pub fn dispatch(f: impl FnOnce(&mut Chat) -> Vec<Command>) {
    dispatch_with(|chat| (f(chat), ()));
}

/// Like [`dispatch`], for updates that also return a value. The page shows the new
/// state before the commands run.
pub fn dispatch_with<R>(f: impl FnOnce(&mut Chat) -> (Vec<Command>, R)) -> R {
    let (commands, result) = CHAT.with_borrow_mut(f);
    with_chat(crate::render);
    for command in commands {
        run(command);
    }
    result
}

/// Reads the chat state.
pub fn with_chat<R>(f: impl FnOnce(&Chat) -> R) -> R {
    CHAT.with_borrow(f)
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
            let timer =
                set_timeout_with_handle(Box::new(|| dispatch(Chat::reconnect_due)), delay_ms);
            SHELL.with_borrow_mut(|shell| {
                if let Some(old) = std::mem::replace(&mut shell.reconnect_timer, timer) {
                    old.clear();
                }
            });
        }
        Command::AnswerDue {
            request_id,
            delay_ms,
        } => set_timeout(
            Box::new(move || dispatch(|chat| chat.answer_overdue(&request_id))),
            delay_ms,
        ),
        Command::ResendLater {
            request_id,
            delay_ms,
        } => {
            // Not cancelled on reconnect: `resend_due` sends nothing for a message the
            // dropped connection already failed.
            set_timeout(
                Box::new(move || dispatch(|chat| chat.resend_due(&request_id))),
                delay_ms,
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
    let url = with_token(url);
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            // An unusable URL fails like a refused connection: back off and retry.
            set_timeout(
                Box::new(move || {
                    on_event(generation, |c| {
                        c.socket_closed(now_ms(), js_sys::Math::random())
                    })
                }),
                0,
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

/// `url` with the ID token, when signed in: API Gateway's authorizer reads `?token=`
/// (browsers cannot set headers on a WebSocket).
fn with_token(mut url: String) -> String {
    if let Some(token) = SIGN_IN.with_borrow(|sign_in| sign_in.token.clone()) {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("token=");
        url.push_str(&token);
    }
    url
}

/// Dispatches an event of socket `generation`, unless a newer socket replaced it.
fn on_event(generation: u32, f: impl FnOnce(&mut Chat) -> Vec<Command>) {
    if SHELL.with_borrow(|shell| shell.generation) == generation {
        dispatch(f);
    }
}

async fn fetch_text(path: &str) -> Option<String> {
    response_text(window().fetch_with_str(path)).await
}

/// The body of a fetch's answer, when it is a 2xx.
async fn response_text(fetch: js_sys::Promise) -> Option<String> {
    let response = wasm_bindgen_futures::JsFuture::from(fetch)
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

/// Sign in pressed: join as the ID token's name if this tab has one (back on the join
/// screen after a refusal), else off to the issuer.
pub fn sign_in() {
    if let Some(name) = load_tokens().and_then(|tokens| token_name(&tokens)) {
        dispatch(move |c| c.join(&name));
    } else {
        wasm_bindgen_futures::spawn_local(redirect_to_sign_in());
    }
}

/// Sign out pressed: the tokens are forgotten and the socket closed.
pub fn sign_out() {
    if let Some(storage) = session_storage() {
        let _ = storage.remove_item(TOKENS_STORAGE_KEY);
    }
    SIGN_IN.with_borrow_mut(|sign_in| {
        sign_in.token = None;
        if let Some(timer) = sign_in.renew_timer.take() {
            timer.clear();
        }
    });
    dispatch(Chat::leave);
    // The issuer's session ends too, when it says where: otherwise the next Sign in on
    // this browser would pass straight through as the same person.
    let logout = SIGN_IN.with_borrow(|sign_in| {
        sign_in
            .auth
            .as_ref()
            .and_then(|auth| logout_url(auth, &redirect_uri()))
    });
    if let Some(url) = logout {
        let _ = window().location().set_href(&url);
    }
}

/// The page's own URL without its query: where the issuer sends the browser back.
fn redirect_uri() -> String {
    let location = window().location();
    location.origin().unwrap_or_default() + &location.pathname().unwrap_or_default()
}

/// Starts the authorization code flow with PKCE: a random verifier and state kept in
/// this tab's sessionStorage, the verifier's SHA-256 as the challenge, and the browser
/// sent to the issuer's authorization endpoint.
async fn redirect_to_sign_in() {
    dispatch(|c| {
        c.joining = true;
        Vec::new()
    });
    if redirect().await.is_none() {
        // `crypto.subtle` is only there on secure pages (https, or localhost).
        dispatch(|c| {
            c.sign_in_failed(
                "Cannot sign in here: this browser or page has no Web Crypto (it needs https)."
                    .into(),
            )
        });
    }
}

async fn redirect() -> Option<()> {
    let auth = SIGN_IN.with_borrow(|sign_in| sign_in.auth.clone())?;
    let crypto = window().crypto().ok()?;
    let mut random = [0u8; 48];
    crypto.get_random_values_with_u8_array(&mut random).ok()?;
    // 32 bytes make a 43-character verifier; 16 make the state.
    let verifier = base64url(&random[..32]);
    let state = base64url(&random[32..]);
    let digest = crypto
        .subtle()
        .digest_with_str_and_u8_array("SHA-256", verifier.as_bytes())
        .ok()?;
    let digest = wasm_bindgen_futures::JsFuture::from(digest).await.ok()?;
    let challenge = base64url(&js_sys::Uint8Array::new(&digest).to_vec());
    if let Some(storage) = session_storage() {
        let _ = storage.set_item(SIGN_IN_STORAGE_KEY, &(state.clone() + "\n" + &verifier));
    }
    window()
        .location()
        .set_href(&authorize_url(&auth, &redirect_uri(), &state, &challenge))
        .ok()
}

/// POSTs a form to the token endpoint; its tokens, or `None`.
async fn token_request(auth: &AuthConfig, form: &str, refresh: Option<String>) -> Option<Tokens> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    // A URLSearchParams body goes as application/x-www-form-urlencoded, which needs no
    // CORS preflight.
    init.set_body(&web_sys::UrlSearchParams::new_with_str(form).ok()?.into());
    let text = response_text(window().fetch_with_str_and_init(&auth.token_url, &init)).await?;
    let answer = parse_json(&text)?;
    Tokens::from_answer(
        json_string(&answer, "id_token"),
        json_string(&answer, "refresh_token"),
        js_sys::Reflect::get(&answer, &"expires_in".into())
            .ok()?
            .as_f64(),
        now_ms() as u64,
        refresh,
    )
}

/// `JSON.parse`: the sign-in's JSON is read by the browser (see [`AuthConfig`]).
fn parse_json(text: &str) -> Option<JsValue> {
    js_sys::JSON::parse(text).ok().filter(JsValue::is_object)
}

/// The string at `object[key]`.
fn json_string(object: &JsValue, key: &str) -> Option<String> {
    js_sys::Reflect::get(object, &key.into()).ok()?.as_string()
}

/// `config.json`'s `auth`, when it has a usable one.
fn auth_config(config: &str) -> Option<AuthConfig> {
    let auth = js_sys::Reflect::get(&parse_json(config)?, &"auth".into()).ok()?;
    AuthConfig::from_fields(
        json_string(&auth, "issuer"),
        json_string(&auth, "clientId"),
        json_string(&auth, "authorizeUrl"),
        json_string(&auth, "tokenUrl"),
    )
    .map(|config| config.with_logout_url(json_string(&auth, "logoutUrl")))
}

/// The name the ID token's claims give.
fn token_name(tokens: &Tokens) -> Option<String> {
    let claims = parse_json(&tokens.claims()?)?;
    claims_name(
        json_string(&claims, "preferred_username"),
        json_string(&claims, "cognito:username"),
    )
}

fn load_tokens() -> Option<Tokens> {
    Tokens::from_storage(&session_storage()?.get_item(TOKENS_STORAGE_KEY).ok()??)
}

/// The tokens this tab signs in with, once the page has loaded: from the issuer's
/// answer in the URL (exchanged for tokens, the URL cleaned), else from sessionStorage,
/// renewed first when they have expired.
async fn sign_in_on_load(auth: &AuthConfig) -> Result<Option<Tokens>, String> {
    let location = window().location();
    let search = location.search().unwrap_or_default();
    let storage = session_storage();
    let saved = storage
        .as_ref()
        .and_then(|s| s.get_item(SIGN_IN_STORAGE_KEY).ok().flatten());
    let Some(answer) = sign_in_callback(&search, saved.as_deref()) else {
        return Ok(match load_tokens() {
            Some(tokens) if tokens.expires_ms > now_ms() as u64 => Some(tokens),
            Some(Tokens {
                refresh_token: Some(refresh),
                ..
            }) => token_request(auth, &refresh_form(auth, &refresh), Some(refresh)).await,
            _ => None,
        });
    };
    if let Some(storage) = &storage {
        let _ = storage.remove_item(SIGN_IN_STORAGE_KEY);
    }
    if let Ok(history) = window().history() {
        let clean = location.pathname().unwrap_or_default()
            + &without_sign_in_params(&search)
            + &location.hash().unwrap_or_default();
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&clean));
    }
    let (code, verifier) = answer?;
    let form = code_exchange_form(auth, &code, &redirect_uri(), &verifier);
    token_request(auth, &form, None)
        .await
        .map(Some)
        .ok_or_else(|| "Sign-in failed: the issuer gave no usable tokens. Try again.".into())
}

/// Keeps `tokens` (sessionStorage, and the token sockets open with) and plans their
/// renewal; the name they carry, if usable.
fn use_tokens(tokens: Tokens) -> Option<String> {
    let name = token_name(&tokens)?;
    if let Some(storage) = session_storage() {
        let _ = storage.set_item(TOKENS_STORAGE_KEY, &tokens.to_storage());
    }
    let timer = set_timeout_with_handle(
        Box::new(|| wasm_bindgen_futures::spawn_local(renew())),
        tokens.renew_delay_ms(now_ms() as u64),
    );
    SIGN_IN.with_borrow_mut(|sign_in| {
        sign_in.token = Some(tokens.id_token);
        if let Some(old) = std::mem::replace(&mut sign_in.renew_timer, timer) {
            old.clear();
        }
    });
    Some(name)
}

/// The ID token is about to expire: renewed with the refresh token when there is one
/// (the socket then reconnects with the new token), else the browser signs in again.
async fn renew() {
    let Some(auth) = SIGN_IN.with_borrow(|sign_in| sign_in.auth.clone()) else {
        return;
    };
    if let Some(refresh) = load_tokens().and_then(|tokens| tokens.refresh_token) {
        let form = refresh_form(&auth, &refresh);
        if let Some(name) = token_request(&auth, &form, Some(refresh))
            .await
            .and_then(use_tokens)
        {
            dispatch(move |c| {
                if c.name
                    .as_deref()
                    .is_some_and(|n| crate::state::same_name(n, &name))
                {
                    c.token_renewed()
                } else {
                    c.signed_in(Some(&name))
                }
            });
            return;
        }
    }
    redirect_to_sign_in().await;
}
