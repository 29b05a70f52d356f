//! The issuer's signing keys: discovered, fetched over HTTP(S), and kept.

use crate::config::url_allowed;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::Arc;
use std::time::Duration;

/// One fetch (discovery or JWKS), connect to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS or discovery document larger than this is refused.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A key the verifier may use: RSA for RS256, P-256 for ES256.
#[derive(Clone)]
pub(crate) struct Key {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

#[derive(Clone, Default)]
pub(crate) struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// The key for `kid` and `alg`; without a `kid`, the only key for `alg`, if there is one.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        if let Some(kid) = kid {
            self.keys
                .iter()
                .find(|key| key.alg == alg && key.kid.as_deref() == Some(kid))
        } else {
            let mut usable = self.keys.iter().filter(|key| key.alg == alg);
            match (usable.next(), usable.next()) {
                (Some(key), None) => Some(key),
                _ => None,
            }
        }
    }

    /// Reads a JWKS, keeping the signing keys it can use and skipping the rest (other
    /// key types, other curves, encryption keys, symmetric keys).
    pub(crate) fn parse(document: &[u8]) -> Result<KeySet, FetchError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        #[derive(serde::Deserialize)]
        struct RawJwk {
            kty: String,
            kid: Option<String>,
            alg: Option<String>,
            #[serde(rename = "use")]
            use_: Option<String>,
            n: Option<String>,
            e: Option<String>,
            crv: Option<String>,
            x: Option<String>,
            y: Option<String>,
        }
        let document: Document = serde_json::from_slice(document)
            .map_err(|_| FetchError::Invalid("JWKS is not a JSON object with `keys`"))?;
        let mut keys = Vec::new();
        for value in document.keys {
            let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
                continue;
            };
            if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let (alg, key) = match (jwk.kty.as_str(), &jwk) {
                (
                    "RSA",
                    RawJwk {
                        n: Some(n),
                        e: Some(e),
                        ..
                    },
                ) => (Algorithm::RS256, DecodingKey::from_rsa_components(n, e)),
                (
                    "EC",
                    RawJwk {
                        crv: Some(crv),
                        x: Some(x),
                        y: Some(y),
                        ..
                    },
                ) if crv == "P-256" => (Algorithm::ES256, DecodingKey::from_ec_components(x, y)),
                _ => continue,
            };
            if jwk
                .alg
                .as_deref()
                .is_some_and(|declared| declared != alg_name(alg))
            {
                continue;
            }
            let Ok(key) = key else { continue };
            keys.push(Key {
                kid: jwk.kid,
                alg,
                decoding: key,
            });
        }
        Ok(KeySet { keys })
    }
}

pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "other",
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{0}")]
    Invalid(&'static str),
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// Fetches the issuer's documents.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: HttpsClient,
}

impl Fetcher {
    pub(crate) fn new() -> Result<Fetcher, rustls::Error> {
        use hyper_rustls::ConfigBuilderExt;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_native_roots()
            .map_err(|err| rustls::Error::General(format!("no CA certificates: {err}")))?
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// GETs `url` (https, or http to this machine) and returns its JSON body.
    pub(crate) async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
        let fail = |reason: String| FetchError::Http {
            url: url.to_string(),
            reason,
        };
        if !url_allowed(url) {
            return Err(fail("not an https URL".into()));
        }
        let uri: http::Uri = url.parse().map_err(|_| fail("not a URL".into()))?;
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|err| fail(err.to_string()))?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| fail(err.to_string()))?;
            if response.status() != http::StatusCode::OK {
                return Err(fail(format!("answered {}", response.status())));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|err| fail(err.to_string()))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| fail(format!("no answer within {FETCH_TIMEOUT:?}")))?
    }

    /// The JWKS URL that `{issuer}/.well-known/openid-configuration` names; its `issuer`
    /// must be the one configured.
    pub(crate) async fn discover(
        &self,
        discovery_url: &str,
        issuer: &str,
    ) -> Result<String, FetchError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let body = self.get(discovery_url).await?;
        let discovery: Discovery = serde_json::from_slice(&body).map_err(|_| {
            FetchError::Invalid("openid-configuration lacks `issuer` or `jwks_uri`")
        })?;
        if discovery.issuer != issuer {
            return Err(FetchError::Invalid(
                "openid-configuration names another issuer",
            ));
        }
        if !url_allowed(&discovery.jwks_uri) {
            return Err(FetchError::Invalid(
                "openid-configuration's jwks_uri is not an https URL",
            ));
        }
        Ok(discovery.jwks_uri)
    }
}
