//! `PostToConnection` without the SDK's orchestrator: the same request the SDK sends,
//! signed by the SDK's own signer (`aws-sigv4`, with the settings the generated client
//! uses) with credentials from the client's own provider, over the SDK's own HTTP client.
//!
//! Why: a fan-out is thousands of these, and the orchestrator (config bags, interceptors,
//! endpoint rules, retry and stalled-stream machinery) cost more CPU than the request
//! itself. GET and DELETE stay on the SDK client.

use super::{classify_failure, PostError};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http::label::{fmt_string, EncodingStrategy};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

/// The service management API signatures are scoped to.
const SERVICE: &str = "execute-api";
/// What the generated client sends for the blob payload.
const CONTENT_TYPE: &str = "application/octet-stream";
/// Credentials without an expiry are fetched again after this long, as the SDK's
/// identity cache does.
const NO_EXPIRY_REFRESH: Duration = Duration::from_mins(15);
/// Credentials are renewed this long before they expire, as the SDK's identity cache does.
const EXPIRY_BUFFER: Duration = Duration::from_secs(10);

/// Posts to connections of one management endpoint.
pub(crate) struct SignedPost {
    connector: aws_smithy_http_client::Connector,
    /// `https://{api}.execute-api.{region}.amazonaws.com/{stage}`, no trailing slash.
    base: String,
    region: String,
    provider: Option<SharedCredentialsProvider>,
    credentials: RwLock<Option<Fetched>>,
    fetching: tokio::sync::Mutex<()>,
    /// One attempt's budget; a push that outlives it may have arrived.
    attempt_timeout: Duration,
}

impl std::fmt::Debug for SignedPost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedPost")
            .field("base", &self.base)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Fetched {
    credentials: Credentials,
    renew_at: SystemTime,
}

/// The parts of a management API answer that decide what a push achieved.
struct Answer {
    status: u16,
    headers: Headers,
    body: bytes::Bytes,
}

impl SignedPost {
    /// Posts to `endpoint` for the client `config` describes (its region and timeouts),
    /// as `provider`'s credentials: the SDK's `Config` does not give its provider back.
    pub(crate) fn new(
        endpoint: &str,
        config: &aws_sdk_apigatewaymanagement::Config,
        provider: Option<SharedCredentialsProvider>,
    ) -> Self {
        let timeouts = config.timeout_config();
        let mut settings = HttpConnectorSettings::builder();
        settings.set_connect_timeout(
            timeouts.and_then(aws_smithy_types::timeout::TimeoutConfig::connect_timeout),
        );
        let connector = aws_smithy_http_client::Connector::builder()
            .connector_settings(settings.build())
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build();
        // With retries off, one attempt is the whole operation: the shorter budget rules.
        let attempt_timeout = timeouts
            .into_iter()
            .flat_map(|t| [t.operation_attempt_timeout(), t.operation_timeout()])
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(5));
        SignedPost {
            connector,
            base: endpoint.trim_end_matches('/').to_string(),
            region: config
                .region()
                .map(|r| r.as_ref().to_string())
                .unwrap_or_default(),
            provider,
            credentials: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            attempt_timeout,
        }
    }

    pub(crate) async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        // As in the SDK, the attempt's budget covers loading credentials too.
        let attempt = async {
            let credentials = self.credentials().await?;
            let request = self.signed(connection_id, data, &credentials, SystemTime::now())?;
            self.send(request).await
        };
        let answer = tokio::time::timeout(self.attempt_timeout, attempt)
            .await
            .map_err(|_| {
                classify_failure(None, None, false, || {
                    let context = format!(
                        "no answer from {} within {:?}; the push may have arrived, so it is \
                         not sent again",
                        self.base, self.attempt_timeout
                    );
                    (context, None)
                })
            })??;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        let code = error_code(&answer.headers, &answer.body);
        Err(classify_failure(
            Some(answer.status),
            code.as_deref(),
            false,
            || {
                let context = format!(
                    "PostToConnection answered {} ({}): {}",
                    answer.status,
                    code.as_deref().unwrap_or("no error type"),
                    String::from_utf8_lossy(&answer.body)
                );
                (context, None)
            },
        ))
    }

    /// The request the SDK would send, signed at `now`.
    fn signed(
        &self,
        connection_id: &str,
        data: &str,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<HttpRequest, PostError> {
        let failed =
            |what: &str, err: Box<dyn std::error::Error + Send + Sync>| PostError::Failed {
                context: format!("cannot build PostToConnection for {connection_id:?}: {what}"),
                source: Some(err),
            };
        let id = fmt_string(connection_id, EncodingStrategy::Default);
        if id.is_empty() {
            return Err(PostError::failed(
                "cannot build PostToConnection: the connection id is empty",
            ));
        }
        let uri = format!("{}/@connections/{id}", self.base);
        let length = data.len().to_string();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("content-length", length.as_str()),
        ];
        let identity = credentials.clone().into();
        // The generated client's settings: double-encoded, normalised path, payload
        // hashed into the signature but not sent as a header, session token signed.
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|err| failed("signing parameters", err.into()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &uri,
            headers.iter().copied(),
            SignableBody::Bytes(data.as_bytes()),
        )
        .map_err(|err| failed("request to sign", err.into()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|err| failed("signing", err.into()))?
            .into_parts();
        let mut builder = http::Request::builder().method("POST").uri(&uri);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let mut request = builder
            .body(SdkBody::from(data))
            .map_err(|err| failed("request", err.into()))?;
        instructions.apply_to_request_http1x(&mut request);
        HttpRequest::try_from(request).map_err(|err| failed("request", err.into()))
    }

    async fn send(&self, request: HttpRequest) -> Result<Answer, PostError> {
        let response = self.connector.call(request).await.map_err(|err| {
            // What the SDK reports as a dispatch failure: nothing reached the API.
            classify_failure(None, None, true, || {
                let context = format!("cannot reach the management API at {}", self.base);
                (context, Some(Box::new(err)))
            })
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| {
                classify_failure(None, None, false, || {
                    let context = format!("reading the management API's answer ({status}) failed");
                    (context, Some(err))
                })
            })?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The provider's credentials, fetched again shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, PostError> {
        if let Some(credentials) = self.cached_credentials() {
            return Ok(credentials);
        }
        // One fetch at a time: a fan-out's 64 pushes must not each ask the provider.
        let _fetching = self.fetching.lock().await;
        if let Some(credentials) = self.cached_credentials() {
            return Ok(credentials);
        }
        let now = SystemTime::now();
        let Some(provider) = &self.provider else {
            return Err(PostError::failed(
                "no credentials provider for the management API: set AWS credentials",
            ));
        };
        let credentials =
            provider
                .provide_credentials()
                .await
                .map_err(|err| PostError::Failed {
                    context: "cannot load credentials for the management API".to_string(),
                    source: Some(Box::new(err)),
                })?;
        let renew_at = match credentials.expiry() {
            Some(expiry) => expiry.checked_sub(EXPIRY_BUFFER).unwrap_or(expiry),
            None => now + NO_EXPIRY_REFRESH,
        };
        *self
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Fetched {
            credentials: credentials.clone(),
            renew_at,
        });
        Ok(credentials)
    }

    fn cached_credentials(&self) -> Option<Credentials> {
        let now = SystemTime::now();
        self.credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|f| now < f.renew_at)
            .map(|f| f.credentials.clone())
    }
}

/// The error's type as restJson APIs state it: `x-amzn-ErrorType`, else the body's
/// `code` or `__type`, without a namespace (`…#`) or a trailing URL (`:…`).
/// A body that is not JSON hides the header too, as in the generated client.
fn error_code(headers: &Headers, body: &[u8]) -> Option<String> {
    let from_body = if body.trim_ascii().is_empty() {
        None
    } else {
        let body: serde_json::Value = serde_json::from_slice(body).ok()?;
        ["code", "__type"]
            .iter()
            .find_map(|key| body.get(key)?.as_str().map(str::to_string))
    };
    let raw = headers
        .get("x-amzn-errortype")
        .map(str::to_string)
        .or(from_body)?;
    let without_url = raw.split(':').next().unwrap_or(&raw);
    let code = without_url
        .split_once('#')
        .map_or(without_url, |(_, code)| code);
    Some(code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Region};

    /// 2026-11-28T22:18:34Z, the clock botocore was given.
    fn signing_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_904_314)
    }

    fn poster(endpoint: &str) -> SignedPost {
        let config = aws_sdk_apigatewaymanagement::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .timeout_config(crate::sdk::timeouts())
            .build();
        SignedPost::new(endpoint, &config, None)
    }

    fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
        request.headers().get(name)
    }

    /// Expected values are what Python's botocore 1.44.8 (`SigV4Auth(credentials,
    /// "execute-api", "eu-west-1").add_auth`, its clock fixed at 2026-11-28T22:18:34Z)
    /// sent for the same URL, body, `Content-Type`, `Content-Length` and key: another
    /// implementation's canonical request, with the double-encoded connection id and the
    /// session token.
    #[test]
    fn pushes_are_signed_as_botocore_signs_them_with_a_session_token() {
        let credentials = Credentials::new(
            "AKIAWEBCHATLOCALDEV0",
            "webchat-local-development-secret-key-0000",
            Some("botocore-session-token".to_string()),
            None,
            "test",
        );
        let body = r#"{"action":"message","message":"signed by botocore"}"#;
        let request = poster("http://127.0.0.1:8080/Prod/")
            .signed("L0SM9cOFvHcCIhw=", body, &credentials, signing_time())
            .unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.uri(),
            "http://127.0.0.1:8080/Prod/@connections/L0SM9cOFvHcCIhw%3D"
        );
        assert_eq!(request.body().bytes(), Some(body.as_bytes()));
        assert_eq!(
            header(&request, "content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(header(&request, "content-length"), Some("51"));
        assert_eq!(header(&request, "x-amz-date"), Some("20261128T221834Z"));
        assert_eq!(
            header(&request, "x-amz-security-token"),
            Some("botocore-session-token")
        );
        assert_eq!(
            header(&request, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIAWEBCHATLOCALDEV0/20261128/eu-west-1/execute-api/aws4_request, \
                 SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token, \
                 Signature=6f0b5117a6840bdf803931cbf95bfb48011f060b20d7ac53b53a805986c78801"
            )
        );
    }

    /// The same check over HTTPS on the default port (so `host` carries no port), without
    /// a session token, and with a body that is not ASCII.
    #[test]
    fn pushes_are_signed_as_botocore_signs_them_without_a_session_token() {
        let credentials = Credentials::new(
            "AKIAWEBCHATLOCALDEV0",
            "webchat-local-development-secret-key-0000",
            None,
            None,
            "test",
        );
        let body = r#"{"action":"message","message":"héllo, wörld"}"#;
        let request = poster("https://abc123defg.execute-api.eu-west-1.amazonaws.com/Prod")
            .signed("K1a2b3c4d5e6f7g=", body, &credentials, signing_time())
            .unwrap();
        assert_eq!(
            request.uri(),
            "https://abc123defg.execute-api.eu-west-1.amazonaws.com/Prod/@connections/K1a2b3c4d5e6f7g%3D"
        );
        assert_eq!(header(&request, "content-length"), Some("47"));
        assert_eq!(header(&request, "x-amz-security-token"), None);
        assert_eq!(
            header(&request, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIAWEBCHATLOCALDEV0/20261128/eu-west-1/execute-api/aws4_request, \
                 SignedHeaders=content-length;content-type;host;x-amz-date, \
                 Signature=4062dce52db918665fd836ec54d22ea1a040a44a4c334821b55619d5c23c4f10"
            )
        );
    }

    /// Hands out credentials expiring `lifetime` from now and counts the requests.
    #[derive(Debug)]
    struct Counting {
        lifetime: Option<Duration>,
        asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let expiry = self.lifetime.map(|lifetime| SystemTime::now() + lifetime);
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                None,
                expiry,
                "test",
            )))
        }
    }

    async fn asked_after_three_pushes(lifetime: Option<Duration>) -> usize {
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let provider = Counting {
            lifetime,
            asked: asked.clone(),
        };
        let config = aws_sdk_apigatewaymanagement::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let poster = SignedPost::new(
            "http://127.0.0.1:8080/Prod",
            &config,
            Some(SharedCredentialsProvider::new(provider)),
        );
        let (a, b, c) = tokio::join!(
            poster.credentials(),
            poster.credentials(),
            poster.credentials()
        );
        for credentials in [a, b, c] {
            credentials.unwrap();
        }
        asked.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn credentials_are_fetched_once_and_again_only_when_about_to_expire() {
        assert_eq!(
            asked_after_three_pushes(Some(Duration::from_hours(1))).await,
            1
        );
        assert_eq!(asked_after_three_pushes(None).await, 1);
        assert_eq!(
            asked_after_three_pushes(Some(Duration::from_secs(5))).await,
            3,
            "credentials inside the renewal margin are fetched again"
        );
    }

    #[tokio::test]
    async fn without_credentials_a_push_fails_and_says_why() {
        let err = poster("http://127.0.0.1:8080/Prod")
            .post("L0SM9cOFvHcCIhw=", "{}")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PostError::Failed { context, .. } if context.contains("credentials")),
            "{err:?}"
        );
    }

    #[test]
    fn an_empty_connection_id_is_refused_before_sending() {
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let err = poster("http://127.0.0.1:8080/Prod")
            .signed("", "{}", &credentials, signing_time())
            .unwrap_err();
        assert!(matches!(err, PostError::Failed { .. }), "{err:?}");
    }

    #[test]
    fn error_types_are_read_as_the_generated_client_reads_them() {
        let headers = |value: Option<&str>| {
            let mut headers = Headers::new();
            if let Some(value) = value {
                headers.insert("x-amzn-ErrorType", value.to_string());
            }
            headers
        };
        let code = |header: Option<&str>, body: &str| error_code(&headers(header), body.as_bytes());
        assert_eq!(
            code(Some("GoneException"), "").as_deref(),
            Some("GoneException")
        );
        assert_eq!(
            code(
                Some("GoneException:http://internal.amazon.com/coral/com.amazon.coral.service/"),
                "{}"
            )
            .as_deref(),
            Some("GoneException")
        );
        assert_eq!(
            code(
                None,
                r#"{"__type":"com.amazonaws#LimitExceededException","message":"slow down"}"#
            )
            .as_deref(),
            Some("LimitExceededException")
        );
        assert_eq!(
            code(None, r#"{"code":"ForbiddenException","__type":"Other"}"#).as_deref(),
            Some("ForbiddenException")
        );
        assert_eq!(
            code(Some("GoneException"), r#"{"code":"Other"}"#).as_deref(),
            Some("GoneException"),
            "the header wins"
        );
        assert_eq!(code(None, r#"{"message":"no type"}"#), None);
        assert_eq!(
            code(Some("GoneException"), "<html>Bad Gateway</html>"),
            None,
            "a body that is not JSON hides the header, as in the SDK"
        );
    }
}
