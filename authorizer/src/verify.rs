//! The token check itself.

use crate::config::AuthConfig;
use crate::jwks::{alg_name, Fetcher, Key, KeySet};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tokens longer than this are refused unread. Cognito's are 1 to 2 KB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// After a failed fetch with no keys at all, the next may come this soon.
const RETRY_WITHOUT_KEYS: Duration = Duration::from_secs(5);

/// Who a valid token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer's stable id for the user.
    pub sub: String,
    /// The display name, already a valid `userName`.
    pub name: String,
}

/// Why a token was refused. The messages are fixed: they never quote the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Over [`MAX_TOKEN_BYTES`]; refused before any parsing.
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    Oversize,
    /// Not a JWT: the part named could not be read.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Signed with an algorithm other than RS256 or ES256 (`none` and HMAC among them).
    #[error("algorithm not allowed (only RS256 and ES256)")]
    Algorithm,
    /// No key of the issuer has this `kid` (a rotation not fetched yet, or a forged token).
    #[error("no issuer key with this kid")]
    UnknownKey,
    /// The signature does not match the key.
    #[error("bad signature")]
    BadSignature,
    /// Past `exp`, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// Before `nbf`, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Issued for another app client (`aud` or `client_id`).
    #[error("wrong audience")]
    WrongAudience,
    /// `token_use` says the token is for something other than signing in here.
    #[error("token_use is neither id nor access")]
    TokenUse,
    /// The token carries no claim to take a name from.
    #[error("no name claim (preferred_username, cognito:username, username or email)")]
    NoName,
    /// The name claim breaks the protocol's rules for `userName`.
    #[error("the name claim is not a valid userName")]
    InvalidName,
    /// Not the token's fault: the issuer's keys could not be fetched.
    #[error("issuer keys unavailable")]
    KeysUnavailable,
}

impl Refusal {
    /// True when the token itself was checked and found wanting; false when the keys
    /// to check it with could not be had.
    pub fn is_token_fault(self) -> bool {
        self != Refusal::KeysUnavailable
    }
}

/// Verifies tokens of one issuer, keeping its keys between calls.
pub struct Verifier {
    config: AuthConfig,
    fetcher: Fetcher,
    state: tokio::sync::Mutex<KeyState>,
}

#[derive(Default)]
struct KeyState {
    jwks_url: Option<String>,
    keys: Option<Arc<KeySet>>,
    /// Any fetch: paces retries while there are no keys at all.
    last_fetch: Option<Instant>,
    /// The last fetch for an unknown key: paces those (the first fetch is not one).
    last_refetch: Option<Instant>,
    fetches: u64,
}

/// The header fields read before any key is touched.
#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The claims read besides those jsonwebtoken checks (`exp`, `nbf`, `iss`).
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default, rename = "cognito:username")]
    cognito_username: Option<String>,
    /// What Cognito access tokens carry instead of `cognito:username`.
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl Verifier {
    /// A verifier for `config`. No request is made until [`Verifier::prefetch`] or the
    /// first token.
    pub fn new(config: AuthConfig) -> Result<Verifier, String> {
        // Installed rather than inferred, so a build that also enables jsonwebtoken's
        // aws_lc_rs feature elsewhere cannot turn the first decode into a panic.
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        }
        let fetcher = Fetcher::new().map_err(|err| format!("TLS setup failed: {err}"))?;
        Ok(Verifier {
            state: tokio::sync::Mutex::new(KeyState {
                jwks_url: config.jwks_url.clone(),
                ..KeyState::default()
            }),
            config,
            fetcher,
        })
    }

    /// The settings this verifier was built with.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Fetches the keys now (at a cold start), so the first client does not wait for them.
    pub async fn prefetch(&self) -> Result<(), String> {
        let mut state = self.state.lock().await;
        self.fetch(&mut state).await
    }

    /// How many JWKS fetches were attempted (for tests and logs).
    pub async fn fetches(&self) -> u64 {
        self.state.lock().await.fetches
    }

    /// The identity `token` proves, or why it proves none.
    pub async fn verify(&self, token: &str) -> Result<Identity, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Oversize);
        }
        let (header, claims) = split(token)?;
        let header: RawHeader = decode_part(header).ok_or(Refusal::Malformed("header"))?;
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(Refusal::Algorithm),
        };
        if header.crit.is_some() {
            return Err(Refusal::Malformed("unsupported crit header"));
        }
        // Read unverified only to refuse early: tokens of other issuers (and garbage)
        // never cause a JWKS fetch. Everything is checked again after the signature.
        let unverified: serde_json::Map<String, serde_json::Value> =
            decode_part(claims).ok_or(Refusal::Malformed("claims"))?;
        if unverified.get("iss").and_then(|v| v.as_str()) != Some(self.config.issuer.as_str()) {
            return Err(Refusal::WrongIssuer);
        }
        let key = self.key(header.kid.as_deref(), alg).await?;

        let mut validation = Validation::new(alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false; // `aud` or `client_id`: checked below
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|err| refusal_for(err.kind()))?
            .claims;
        if claims.iss != self.config.issuer {
            return Err(Refusal::WrongIssuer);
        }
        if claims.sub.is_empty() {
            return Err(Refusal::Malformed("empty sub"));
        }
        let audience_ok = match &claims.aud {
            Some(serde_json::Value::String(aud)) => *aud == self.config.audience,
            Some(serde_json::Value::Array(auds)) => auds
                .iter()
                .any(|aud| aud.as_str() == Some(self.config.audience.as_str())),
            Some(_) => false,
            None => claims.client_id.as_deref() == Some(self.config.audience.as_str()),
        };
        if !audience_ok {
            return Err(Refusal::WrongAudience);
        }
        if claims
            .token_use
            .as_deref()
            .is_some_and(|use_| use_ != "id" && use_ != "access")
        {
            return Err(Refusal::TokenUse);
        }
        let name = display_name(&claims)?;
        Ok(Identity {
            sub: claims.sub,
            name,
        })
    }

    /// The key for this `kid`, fetching the JWKS again (at most once per
    /// `refetch_interval`) when it is not known.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Key, Refusal> {
        let mut state = self.state.lock().await;
        if let Some(key) = state.keys.as_ref().and_then(|keys| keys.find(kid, alg)) {
            return Ok(key.clone());
        }
        let may_fetch = if state.keys.is_some() {
            state
                .last_refetch
                .is_none_or(|at| at.elapsed() >= self.config.refetch_interval)
        } else {
            let wait = RETRY_WITHOUT_KEYS.min(self.config.refetch_interval);
            state.last_fetch.is_none_or(|at| at.elapsed() >= wait)
        };
        if may_fetch {
            if state.keys.is_some() {
                state.last_refetch = Some(Instant::now());
                tracing::info!(
                    kid = kid.unwrap_or("-"),
                    alg = alg_name(alg),
                    "unknown signing key: fetching the issuer's keys again"
                );
            }
            if let Err(err) = self.fetch(&mut state).await {
                tracing::warn!(issuer = %self.config.issuer, error = %err, "could not fetch the issuer's keys");
            }
        }
        match &state.keys {
            None => Err(Refusal::KeysUnavailable),
            Some(keys) => keys.find(kid, alg).cloned().ok_or(Refusal::UnknownKey),
        }
    }

    async fn fetch(&self, state: &mut KeyState) -> Result<(), String> {
        state.last_fetch = Some(Instant::now());
        state.fetches += 1;
        let jwks_url = if let Some(url) = &state.jwks_url {
            url.clone()
        } else {
            let url = self
                .fetcher
                .discover(&self.config.discovery_url(), &self.config.issuer)
                .await
                .map_err(|err| err.to_string())?;
            state.jwks_url = Some(url.clone());
            url
        };
        let body = self
            .fetcher
            .get(&jwks_url)
            .await
            .map_err(|err| err.to_string())?;
        let keys = KeySet::parse(&body).map_err(|err| err.to_string())?;
        tracing::info!(issuer = %self.config.issuer, keys = keys.keys.len(), "fetched the issuer's signing keys");
        state.keys = Some(Arc::new(keys));
        Ok(())
    }
}

/// The three parts' shape, before anything is decoded.
fn split(token: &str) -> Result<(&str, &str), Refusal> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed("not three parts"));
    };
    let base64url = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(base64url(header) && base64url(claims) && base64url(signature)) {
        return Err(Refusal::Malformed("not base64url"));
    }
    Ok((header, claims))
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn refusal_for(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => Refusal::BadSignature,
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::ImmatureSignature => Refusal::NotYetValid,
        ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
        ErrorKind::InvalidAudience => Refusal::WrongAudience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => Refusal::Algorithm,
        ErrorKind::MissingRequiredClaim(_) => Refusal::Malformed("missing exp, iss or sub"),
        ErrorKind::InvalidClaimFormat(_) => Refusal::Malformed("claim of the wrong type"),
        _ => Refusal::Malformed("undecodable"),
    }
}

/// `preferred_username`, else `cognito:username` (Cognito ID tokens), else `username`
/// (Cognito access tokens), else the e-mail's local part; it
/// must be a valid `userName` as it stands (a bad one is refused, not skipped).
fn display_name(claims: &Claims) -> Result<String, Refusal> {
    let candidate = claims
        .preferred_username
        .as_deref()
        .or(claims.cognito_username.as_deref())
        .or(claims.username.as_deref())
        .or_else(|| {
            claims
                .email
                .as_deref()
                .and_then(|email| email.split_once('@'))
                .map(|(local, _)| local)
                .filter(|local| !local.is_empty())
        })
        .ok_or(Refusal::NoName)?;
    webchat_shared_types::validate_user_name(candidate).map_err(|_| Refusal::InvalidName)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_refused_before_decoding() {
        assert_eq!(split("a.b"), Err(Refusal::Malformed("not three parts")));
        assert_eq!(split("a.b.c.d"), Err(Refusal::Malformed("not three parts")));
        assert_eq!(split("a..c"), Err(Refusal::Malformed("not base64url")));
        assert_eq!(split("a.b+/.c"), Err(Refusal::Malformed("not base64url")));
        assert_eq!(split("a.b.c"), Ok(("a", "b")));
    }

    #[test]
    fn the_name_comes_from_the_first_claim_present() {
        let claims = |p: Option<&str>, c: Option<&str>, e: Option<&str>| Claims {
            sub: "s".into(),
            iss: "i".into(),
            aud: None,
            client_id: None,
            token_use: None,
            preferred_username: p.map(Into::into),
            cognito_username: c.map(Into::into),
            username: None,
            email: e.map(Into::into),
        };
        assert_eq!(
            display_name(&claims(Some("Ann"), Some("x"), Some("y@z"))),
            Ok("Ann".into())
        );
        assert_eq!(
            display_name(&claims(None, Some("bob"), Some("y@z"))),
            Ok("bob".into())
        );
        assert_eq!(
            display_name(&claims(None, None, Some("carol@example.com"))),
            Ok("carol".into())
        );
        assert_eq!(
            display_name(&claims(None, None, Some("@example.com"))),
            Err(Refusal::NoName)
        );
        assert_eq!(
            display_name(&claims(None, None, None)),
            Err(Refusal::NoName)
        );
        assert_eq!(
            display_name(&claims(Some("bad\u{7}name"), Some("ok"), None)),
            Err(Refusal::InvalidName)
        );
    }
}
