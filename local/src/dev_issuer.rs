//! `--auth dev`: a development `OpenID` Connect issuer on the gateway's own port, shaped
//! like Cognito's hosted UI (authorization code with PKCE), so the UI's sign-in and
//! the authorizer run for real without an AWS account. Anyone may sign in as any name:
//! it is for this machine only, and webchat-local refuses to serve it beyond loopback.
//!
//! - `/.well-known/openid-configuration` and `/.well-known/jwks.json` (one P-256 key
//!   made at start);
//! - `GET /oauth2/authorize`: a page asking for a name; `POST /oauth2/authorize`
//!   redirects to `redirect_uri` with `code` and `state`;
//! - `POST /oauth2/token`: the code and its PKCE verifier (S256) for
//!   `{id_token, access_token, refresh_token, token_type, expires_in}`, or a refresh
//!   token for new ID and access tokens (as Cognito, no new refresh token);
//! - `GET /oauth2/logout`: Sign out's stop, as Cognito's `/logout` (`client_id`,
//!   `logout_uri`) or an `OpenID` Connect `end_session_endpoint`
//!   (`post_logout_redirect_uri`): there is no session to end here, so it sends the
//!   browser back.

use axum::extract::{Form, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The client id tokens are issued for when none is given.
pub const DEFAULT_CLIENT_ID: &str = "webchat-local";
/// How long tokens last unless told otherwise, as Cognito's default ID token.
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;
/// How long a code waits for its exchange.
const CODE_LIFETIME: Duration = Duration::from_mins(5);
/// Codes waiting at once; the oldest are dropped past this.
const MAX_PENDING_CODES: usize = 1000;
/// How long a refresh token is good for (Cognito's default is 30 days).
const REFRESH_LIFETIME: Duration = Duration::from_hours(720);
/// Refresh tokens kept at once; the oldest are dropped past this.
const MAX_REFRESH_TOKENS: usize = 10_000;

/// The login page: an authorization-code request lands here.
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
/// The token endpoint: codes (with their PKCE verifier) and refresh tokens are exchanged here.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Ends the issuer's session, as Cognito's `/logout` does.
pub const LOGOUT_PATH: &str = "/oauth2/logout";
/// What the log says when a browser signs out through [`LOGOUT_PATH`].
pub const SIGN_OUT_LOG: &str = "development sign-out";
/// The public keys the authorizer verifies tokens with.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The OpenID Connect discovery document, which names the other paths.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

struct Pending {
    name: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    issued: Instant,
}

/// Who a refresh token signs in again.
struct Refresh {
    name: String,
    client_id: String,
    issued: Instant,
}

/// What the development issuer could not do.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// The key made at start could not be written as PKCS#8.
    #[error("cannot encode the development signing key")]
    EncodeKey(#[source] p256::pkcs8::Error),
    /// The key made at start has no public point to publish in the JWKS.
    #[error("the development signing key has no affine coordinates")]
    NoAffinePoint,
    /// The signer refused the key.
    #[error("cannot sign the development tokens")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The issuer: its URL, its key, the codes not yet exchanged and the refresh tokens.
pub struct DevIssuer {
    issuer: String,
    client_id: String,
    /// Seconds the ID and access tokens last.
    token_lifetime: u64,
    kid: String,
    key: EncodingKey,
    jwk: Value,
    codes: Mutex<HashMap<String, Pending>>,
    refresh: Mutex<HashMap<String, Refresh>>,
}

impl DevIssuer {
    /// An issuer at `issuer` (`http://127.0.0.1:PORT`) for `client_id`, with a new key,
    /// whose tokens last `token_lifetime` seconds.
    pub fn new(
        issuer: String,
        client_id: String,
        token_lifetime: u64,
    ) -> Result<DevIssuer, DevIssuerError> {
        use getrandom::rand_core::UnwrapErr;
        use p256::elliptic_curve::Generate;
        use p256::pkcs8::EncodePrivateKey;
        let signing: p256::ecdsa::SigningKey =
            Generate::generate_from_rng(&mut UnwrapErr(getrandom::SysRng));
        let der = signing.to_pkcs8_der().map_err(DevIssuerError::EncodeKey)?;
        let point = signing.verifying_key().to_sec1_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(DevIssuerError::NoAffinePoint);
        };
        let kid = format!("dev-{}", random_token(6));
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        });
        Ok(DevIssuer {
            issuer,
            client_id,
            token_lifetime,
            kid,
            key: EncodingKey::from_ec_der(der.as_bytes()),
            jwk,
            codes: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer URL: tokens' `iss`, and the base of every path above.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The one client id tokens are issued for (their `aud`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Where the public keys are served.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.issuer)
    }

    /// The issuer's HTTP routes, to serve beside the gateway on the same port.
    pub fn routes<S: Clone + Send + Sync + 'static>(self: &Arc<Self>) -> Router<S> {
        Router::new()
            .route(DISCOVERY_PATH, get(discovery))
            .route(JWKS_PATH, get(jwks))
            .route(AUTHORIZE_PATH, get(login_page).post(login))
            .route(TOKEN_PATH, axum::routing::post(token).options(preflight))
            .route(LOGOUT_PATH, get(logout))
            .with_state(self.clone())
    }

    fn lock_codes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_refresh(&self) -> std::sync::MutexGuard<'_, HashMap<String, Refresh>> {
        self.refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new refresh token for `name`.
    fn new_refresh_token(&self, name: &str, client_id: &str) -> String {
        let token = random_token(32);
        let mut tokens = self.lock_refresh();
        tokens.retain(|_, grant| grant.issued.elapsed() < REFRESH_LIFETIME);
        if tokens.len() >= MAX_REFRESH_TOKENS {
            if let Some(oldest) = tokens
                .iter()
                .min_by_key(|(_, grant)| grant.issued)
                .map(|(token, _)| token.clone())
            {
                tokens.remove(&oldest);
            }
        }
        tokens.insert(
            token.clone(),
            Refresh {
                name: name.to_string(),
                client_id: client_id.to_string(),
                issued: Instant::now(),
            },
        );
        token
    }

    /// The same name always gets the same `sub` (names are compared case-insensitively,
    /// as `register` compares them).
    fn sub_for(name: &str) -> String {
        let digest = Sha256::digest(name.to_lowercase().as_bytes());
        let hex = hex::encode(&digest[..16]);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    /// ID and access tokens for `name`, signed now.
    pub(crate) fn tokens(
        &self,
        name: &str,
        client_id: &str,
        nonce: Option<&str>,
    ) -> Result<Value, DevIssuerError> {
        let now = jsonwebtoken::get_current_timestamp();
        let sub = Self::sub_for(name);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let mut id_claims = json!({
            "iss": self.issuer, "aud": client_id, "sub": sub,
            "token_use": "id", "auth_time": now, "iat": now, "exp": now + self.token_lifetime,
            "preferred_username": name, "cognito:username": name,
        });
        if let Some(nonce) = nonce {
            id_claims["nonce"] = json!(nonce);
        }
        // Cognito's access token shape: `client_id` instead of `aud`, `username`.
        let access_claims = json!({
            "iss": self.issuer, "client_id": client_id, "sub": sub,
            "token_use": "access", "scope": "openid", "auth_time": now, "iat": now,
            "exp": now + self.token_lifetime, "username": name,
        });
        let sign = |claims: &Value| {
            jsonwebtoken::encode(&header, claims, &self.key).map_err(DevIssuerError::Sign)
        };
        Ok(json!({
            "id_token": sign(&id_claims)?,
            "access_token": sign(&access_claims)?,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
        }))
    }
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Readable from any page: the UI may be served from another port than the gateway.
fn cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

async fn discovery(State(dev): State<Arc<DevIssuer>>) -> Response {
    let issuer = &dev.issuer;
    cors(
        Json(json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "end_session_endpoint": format!("{issuer}{LOGOUT_PATH}"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile"],
        }))
        .into_response(),
    )
}

async fn jwks(State(dev): State<Arc<DevIssuer>>) -> Response {
    cors(Json(json!({ "keys": [dev.jwk] })).into_response())
}

/// Sign out's stop, as Cognito's `/logout` and `OpenID` Connect's `end_session_endpoint`
/// take it.
#[derive(Debug, Default, serde::Deserialize)]
struct LogoutParams {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    logout_uri: Option<String>,
    #[serde(default)]
    post_logout_redirect_uri: Option<String>,
}

/// Ends nothing (the development issuer keeps no session) and sends the browser back to
/// where it asked, as Cognito does.
async fn logout(State(dev): State<Arc<DevIssuer>>, Query(params): Query<LogoutParams>) -> Response {
    if params.client_id != dev.client_id {
        return page(
            StatusCode::BAD_REQUEST,
            &format!(
                "<p>Cannot sign out: client_id must be {}.</p>",
                escape(&format!("{:?}", dev.client_id))
            ),
        );
    }
    let back = params.logout_uri.or(params.post_logout_redirect_uri);
    match back.filter(|uri| is_http_url(uri)) {
        Some(uri) => {
            tracing::info!(target: "webchat_local::auth", "{SIGN_OUT_LOG}");
            Redirect::to(&uri).into_response()
        }
        None => page(
            StatusCode::BAD_REQUEST,
            "<p>Cannot sign out: logout_uri must be an http(s) URL.</p>",
        ),
    }
}

fn is_http_url(text: &str) -> bool {
    text.parse::<http::Uri>()
        .is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
}

/// The authorization request, as the hosted UI takes it.
#[derive(Debug, Default, serde::Deserialize)]
struct AuthorizeParams {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    /// Only in the form's POST.
    #[serde(default)]
    name: Option<String>,
}

impl AuthorizeParams {
    /// What makes the request unusable, before any name is asked.
    fn problem(&self, dev: &DevIssuer) -> Option<String> {
        if self.client_id != dev.client_id {
            return Some(format!(
                "client_id must be {:?} (webchat-local --auth-client-id)",
                dev.client_id
            ));
        }
        if !is_http_url(&self.redirect_uri) {
            return Some("redirect_uri must be an http(s) URL".into());
        }
        if self.response_type != "code" {
            return Some("response_type must be code".into());
        }
        if self.code_challenge_method != "S256" || self.code_challenge.len() != 43 {
            return Some(
                "PKCE is required: code_challenge (43 characters) with code_challenge_method=S256"
                    .into(),
            );
        }
        None
    }
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>webchat-local development sign-in</title></head>\
         <body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">\
         <h1>Development sign-in</h1>\
         <p><strong>This is webchat-local's development sign-in, not a real one.</strong> \
         There is no password: anyone on this machine can sign in as any name. \
         Deployments sign in with Amazon Cognito instead.</p>{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn form(params: &AuthorizeParams, error: Option<&str>) -> String {
    let hidden = [
        ("response_type", params.response_type.as_str()),
        ("client_id", &params.client_id),
        ("redirect_uri", &params.redirect_uri),
        ("state", params.state.as_deref().unwrap_or("")),
        ("code_challenge", &params.code_challenge),
        ("code_challenge_method", &params.code_challenge_method),
        ("nonce", params.nonce.as_deref().unwrap_or("")),
        ("scope", params.scope.as_deref().unwrap_or("")),
    ]
    .iter()
    .fold(String::new(), |mut html, (name, value)| {
        let _ = write!(
            html,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        );
        html
    });
    let error = error
        .map(|e| format!("<p style=\"color:#b00\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"{AUTHORIZE_PATH}\">{hidden}\
         <label>Name <input name=\"name\" maxlength=\"32\" required autofocus value=\"{}\"></label> \
         <button type=\"submit\">Sign in</button></form>",
        escape(params.name.as_deref().unwrap_or(""))
    )
}

async fn login_page(
    State(dev): State<Arc<DevIssuer>>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    if let Some(problem) = params.problem(&dev) {
        return page(
            StatusCode::BAD_REQUEST,
            &format!("<p>{}</p>", escape(&problem)),
        );
    }
    page(StatusCode::OK, &form(&params, None))
}

async fn login(State(dev): State<Arc<DevIssuer>>, Form(params): Form<AuthorizeParams>) -> Response {
    if let Some(problem) = params.problem(&dev) {
        return page(
            StatusCode::BAD_REQUEST,
            &format!("<p>{}</p>", escape(&problem)),
        );
    }
    let name = match webchat_shared_types::validate_user_name(params.name.as_deref().unwrap_or(""))
    {
        Ok(name) => name,
        Err(refusal) => {
            return page(
                StatusCode::BAD_REQUEST,
                &form(&params, Some(&refusal.message)),
            )
        }
    };
    let code = random_token(32);
    {
        let mut codes = dev.lock_codes();
        codes.retain(|_, pending| pending.issued.elapsed() < CODE_LIFETIME);
        if codes.len() >= MAX_PENDING_CODES {
            if let Some(oldest) = codes
                .iter()
                .min_by_key(|(_, p)| p.issued)
                .map(|(c, _)| c.clone())
            {
                codes.remove(&oldest);
            }
        }
        codes.insert(
            code.clone(),
            Pending {
                name: name.clone(),
                client_id: params.client_id.clone(),
                redirect_uri: params.redirect_uri.clone(),
                code_challenge: params.code_challenge.clone(),
                nonce: params.nonce.clone().filter(|n| !n.is_empty()),
                issued: Instant::now(),
            },
        );
    }
    tracing::info!(target: "webchat_local::auth", "development sign-in as {name:?}");
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("code", &code);
    if let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) {
        query.append_pair("state", state);
    }
    let mut target = params.redirect_uri.clone();
    target.push(if target.contains('?') { '&' } else { '?' });
    target.push_str(&query.finish());
    Redirect::to(&target).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
struct TokenParams {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    refresh_token: String,
}

fn token_error(error: &str, description: &str) -> Response {
    cors(
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": error, "error_description": description })),
        )
            .into_response(),
    )
}

async fn token(State(dev): State<Arc<DevIssuer>>, Form(params): Form<TokenParams>) -> Response {
    match params.grant_type.as_str() {
        "authorization_code" => exchange_code(&dev, &params),
        "refresh_token" => refresh(&dev, &params),
        _ => token_error(
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        ),
    }
}

/// The token answer: no caching, readable from any page.
fn token_answer(tokens: Result<Value, DevIssuerError>) -> Response {
    match tokens {
        Ok(tokens) => {
            let mut response = cors(Json(tokens).into_response());
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(err) => {
            tracing::error!(
                error = &err as &dyn std::error::Error,
                "token request failed"
            );
            token_error("server_error", "could not sign the tokens")
        }
    }
}

/// `grant_type=refresh_token`: new ID and access tokens for the refresh token's name,
/// as Cognito answers it (the refresh token itself stays the same and is not repeated).
fn refresh(dev: &DevIssuer, params: &TokenParams) -> Response {
    let grant = {
        let tokens = dev.lock_refresh();
        tokens
            .get(&params.refresh_token)
            .filter(|grant| grant.issued.elapsed() < REFRESH_LIFETIME)
            .map(|grant| (grant.name.clone(), grant.client_id.clone()))
    };
    let Some((name, client_id)) = grant else {
        return token_error("invalid_grant", "unknown or expired refresh token");
    };
    if params.client_id != client_id {
        return token_error(
            "invalid_client",
            "client_id does not match the refresh token",
        );
    }
    token_answer(dev.tokens(&name, &client_id, None))
}

fn exchange_code(dev: &DevIssuer, params: &TokenParams) -> Response {
    // A code is used once, whatever the outcome, as OAuth requires.
    let Some(pending) = dev.lock_codes().remove(&params.code) else {
        return token_error("invalid_grant", "unknown or used code");
    };
    if pending.issued.elapsed() >= CODE_LIFETIME {
        return token_error("invalid_grant", "code expired");
    }
    if params.client_id != pending.client_id {
        return token_error("invalid_client", "client_id does not match the code");
    }
    if params.redirect_uri != pending.redirect_uri {
        return token_error("invalid_grant", "redirect_uri does not match the code");
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(params.code_verifier.as_bytes()));
    if params.code_verifier.len() < 43 || challenge != pending.code_challenge {
        return token_error("invalid_grant", "code_verifier does not match");
    }
    let tokens = dev
        .tokens(&pending.name, &pending.client_id, pending.nonce.as_deref())
        .map(|mut tokens| {
            tokens["refresh_token"] =
                json!(dev.new_refresh_token(&pending.name, &pending.client_id));
            tokens
        });
    token_answer(tokens)
}

/// A browser asks before a cross-origin POST with other headers than a form's.
async fn preflight() -> Response {
    let mut response = cors(StatusCode::NO_CONTENT.into_response());
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_gets_the_same_sub_whatever_its_case() {
        assert_eq!(DevIssuer::sub_for("Ann"), DevIssuer::sub_for("ann"));
        assert_ne!(DevIssuer::sub_for("Ann"), DevIssuer::sub_for("Bob"));
        assert_eq!(DevIssuer::sub_for("Ann").len(), 36);
    }

    #[test]
    fn the_form_escapes_what_it_echoes() {
        let params = AuthorizeParams {
            state: Some("\"><script>".into()),
            ..Default::default()
        };
        let html = form(&params, Some("<b>"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
    }
}
