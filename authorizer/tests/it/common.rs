//! A test issuer: keys made here, a JWKS and discovery document served over real HTTP
//! on 127.0.0.1, and tokens signed with those keys.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use getrandom::rand_core::UnwrapErr;
use getrandom::SysRng;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use webchat_authorizer::{AuthConfig, Verifier};

pub(crate) const AUDIENCE: &str = "webchat-test-client";

/// A signing key and its public JWK.
#[derive(Clone)]
pub(crate) struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// The public key's bytes (for forging an HS256 token "signed" with it).
    pub public_bytes: Vec<u8>,
}

/// One 2048-bit RSA key per test binary: generating it is the slow part.
pub(crate) fn rsa_key(kid: &str) -> TestKey {
    static RSA: OnceLock<rsa::PrivateKey> = OnceLock::new();
    static RSA2: OnceLock<rsa::PrivateKey> = OnceLock::new();
    let cell = if kid.ends_with("-2") { &RSA2 } else { &RSA };
    let private =
        cell.get_or_init(|| rsa::PrivateKey::new(&mut UnwrapErr(SysRng), 2048).expect("RSA key"));
    let der = private.to_pkcs1_der().expect("PKCS#1");
    let n = private.n_bytes();
    let e = private.e_bytes();
    TestKey {
        kid: kid.to_string(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({
            "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e),
        }),
        public_bytes: n.to_vec(),
    }
}

pub(crate) fn ec_key(kid: &str) -> TestKey {
    use p256::pkcs8::EncodePrivateKey;
    let signing: p256::ecdsa::SigningKey = rsa::Generate::generate_from_rng(&mut UnwrapErr(SysRng));
    let der = signing.to_pkcs8_der().expect("PKCS#8");
    let point = signing.verifying_key().to_sec1_point(false);
    let (x, y) = (point.x().expect("x"), point.y().expect("y"));
    TestKey {
        kid: kid.to_string(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        jwk: json!({
            "kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }),
        public_bytes: point.as_bytes().to_vec(),
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

/// A token of the given header and claims, with `signature` as its third part.
pub(crate) fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[derive(Clone)]
struct IssuerState {
    issuer: Arc<OnceLock<String>>,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicU64>,
}

/// An issuer on 127.0.0.1 whose JWKS can change under the verifier.
pub(crate) struct TestIssuer {
    pub url: String,
    state: IssuerState,
}

impl TestIssuer {
    pub(crate) async fn start(keys: &[&TestKey]) -> TestIssuer {
        let state = IssuerState {
            issuer: Arc::new(OnceLock::new()),
            keys: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            jwks_fetches: Arc::new(AtomicU64::new(0)),
        };
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(s): State<IssuerState>| async move {
                    let issuer = s.issuer.get().cloned().unwrap_or_default();
                    Json(json!({
                        "issuer": issuer,
                        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
                    }))
                }),
            )
            .route(
                "/.well-known/jwks.json",
                get(|State(s): State<IssuerState>| async move {
                    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    let keys = s.keys.lock().unwrap().clone();
                    Json(json!({ "keys": keys }))
                }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        state.issuer.set(url.clone()).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestIssuer { url, state }
    }

    pub(crate) fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub(crate) fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn verifier(&self) -> Verifier {
        Verifier::new(AuthConfig::new(&self.url, AUDIENCE, None).unwrap()).unwrap()
    }

    /// Claims that pass every check.
    pub(crate) fn claims(&self, name: &str) -> Value {
        let now = now();
        json!({
            "iss": self.url, "aud": AUDIENCE, "sub": format!("sub-{name}"),
            "iat": now, "nbf": now, "exp": now + 600, "token_use": "id",
            "preferred_username": name,
        })
    }
}
