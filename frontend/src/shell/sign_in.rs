//! Sign-in (only when `config.json` has `auth`): the authorization code flow with PKCE,
//! the token requests (gloo-net), the tokens kept in this tab's sessionStorage and their
//! renewal. What to send and what an answer means is decided in `state`.

use std::cell::RefCell;
use wasm_bindgen::prelude::*;

use super::{dispatch, storage, timers, window};
use crate::state::{
    authorize_url, base64url, claims_name, code_exchange_form, logout_url, refresh_form, same_name,
    sign_in_callback, without_sign_in_params, AuthConfig, ChatState, Tokens, SIGN_IN_STORAGE_KEY,
    TOKENS_STORAGE_KEY,
};

#[derive(Default)]
struct SignIn {
    /// Sign-in settings, when `config.json` has them.
    auth: Option<AuthConfig>,
    /// The ID token sockets open with (`?token=`).
    token: Option<String>,
    renew_timer: Option<timers::Timer>,
}

thread_local! {
    static SIGN_IN: RefCell<SignIn> = RefCell::new(SignIn::default());
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
pub fn auth_config(config: &str) -> Option<AuthConfig> {
    let auth = js_sys::Reflect::get(&parse_json(config)?, &"auth".into()).ok()?;
    AuthConfig::from_fields(
        json_string(&auth, "issuer"),
        json_string(&auth, "clientId"),
        json_string(&auth, "authorizeUrl"),
        json_string(&auth, "tokenUrl"),
    )
    .map(|config| config.with_logout_url(json_string(&auth, "logoutUrl")))
}

/// `url` with the ID token, when signed in: API Gateway's authorizer reads `?token=`
/// (browsers cannot set headers on a WebSocket).
pub fn with_token(mut url: String) -> String {
    if let Some(token) = SIGN_IN.with_borrow(|sign_in| sign_in.token.clone()) {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("token=");
        url.push_str(&token);
    }
    url
}

/// With sign-in on: the tokens this page load signs in with, then the chat told who
/// that is. Sockets wait: the caller sets the URL only once this is settled.
pub async fn load(auth: AuthConfig) {
    SIGN_IN.with_borrow_mut(|sign_in| sign_in.auth = Some(auth.clone()));
    dispatch(&mut |c| {
        c.auth = true;
        c.joining = true;
        Vec::new()
    });
    let (name, failed) = match sign_in_on_load(&auth).await {
        Ok(tokens) => (tokens.and_then(use_tokens), None),
        Err(reason) => (None, Some(reason)),
    };
    dispatch(&mut |c| {
        let mut commands = c.signed_in(name.as_deref());
        if let Some(reason) = &failed {
            commands.extend(c.sign_in_failed(reason.clone()));
        }
        commands
    });
}

/// Sign in pressed: join as the ID token's name if this tab has one (back on the join
/// screen after a refusal), else off to the issuer.
pub fn sign_in() {
    if let Some(name) = load_tokens().and_then(|tokens| token_name(&tokens)) {
        dispatch(&mut |c| c.join(&name));
    } else {
        wasm_bindgen_futures::spawn_local(redirect_to_sign_in());
    }
}

/// Sign out pressed: the tokens are forgotten and the socket closed.
pub fn sign_out() {
    storage::save(TOKENS_STORAGE_KEY, "");
    SIGN_IN.with_borrow_mut(|sign_in| {
        sign_in.token = None;
        if let Some(timer) = sign_in.renew_timer.take() {
            timer.clear();
        }
    });
    dispatch(&mut ChatState::leave);
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
    dispatch(&mut |c| {
        c.joining = true;
        Vec::new()
    });
    if redirect().await.is_none() {
        // `crypto.subtle` is only there on secure pages (https, or localhost).
        dispatch(&mut |c| {
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
    storage::save(SIGN_IN_STORAGE_KEY, &(state.clone() + "\n" + &verifier));
    window()
        .location()
        .set_href(&authorize_url(&auth, &redirect_uri(), &state, &challenge))
        .ok()
}

/// POSTs a form to the token endpoint; its tokens, or `None`.
async fn token_request(auth: &AuthConfig, form: &str, refresh: Option<String>) -> Option<Tokens> {
    // A URLSearchParams body goes as application/x-www-form-urlencoded, which needs no
    // CORS preflight.
    let body = web_sys::UrlSearchParams::new_with_str(form).ok()?;
    let request = gloo_net::http::Request::post(&auth.token_url)
        .body(body)
        .ok()?;
    let text = super::response_text(request.send().await.ok()?).await?;
    let answer = parse_json(&text)?;
    Tokens::from_answer(
        json_string(&answer, "id_token"),
        json_string(&answer, "refresh_token"),
        js_sys::Reflect::get(&answer, &"expires_in".into())
            .ok()?
            .as_f64(),
        timers::now_ms() as u64,
        refresh,
    )
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
    Tokens::from_storage(&storage::load(TOKENS_STORAGE_KEY)?)
}

/// The tokens this tab signs in with, once the page has loaded: from the issuer's
/// answer in the URL (exchanged for tokens, the URL cleaned), else from sessionStorage,
/// renewed first when they have expired.
async fn sign_in_on_load(auth: &AuthConfig) -> Result<Option<Tokens>, String> {
    let location = window().location();
    let search = location.search().unwrap_or_default();
    let saved = storage::load(SIGN_IN_STORAGE_KEY);
    let Some(answer) = sign_in_callback(&search, saved.as_deref()) else {
        return Ok(match load_tokens() {
            Some(tokens) if tokens.expires_ms > timers::now_ms() as u64 => Some(tokens),
            Some(Tokens {
                refresh_token: Some(refresh),
                ..
            }) => token_request(auth, &refresh_form(auth, &refresh), Some(refresh)).await,
            _ => None,
        });
    };
    storage::save(SIGN_IN_STORAGE_KEY, "");
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
    storage::save(TOKENS_STORAGE_KEY, &tokens.to_storage());
    let timer = timers::timer(
        Box::new(|| wasm_bindgen_futures::spawn_local(renew())),
        tokens.renew_delay_ms(timers::now_ms() as u64),
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
            dispatch(&mut |c| {
                if c.name.as_deref().is_some_and(|n| same_name(n, &name)) {
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
