//! AWS Signature Version 4 checks for the `@connections` API, as API Gateway makes them:
//! the signature is recomputed with `aws-sigv4`, the SDKs' own signer, over exactly the
//! headers the caller says it signed, so this side never hand-rolls a canonical request.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http::HeaderMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The service name every management API signature is scoped to.
pub const SERVICE: &str = "execute-api";
/// How far `x-amz-date` may be from the server's clock, as on AWS.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_mins(15);
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The one key pair the management API accepts.
#[derive(Clone)]
pub struct AccessKey {
    /// The access key id a signature must name.
    pub access_key_id: String,
    /// The secret the signature is checked with.
    pub secret_access_key: String,
    /// Sent by the in-process handlers when set; any token a caller signs is accepted.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// The pair used when the environment has none: fixed, printed at start, and only
    /// ever meaningful to a gateway on this machine.
    pub fn development() -> AccessKey {
        AccessKey {
            access_key_id: "AKIAWEBCHATLOCALDEV0".to_string(),
            secret_access_key: "webchat-local-development-secret-key-0000".to_string(),
            session_token: None,
        }
    }

    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) when both
    /// are set and not empty.
    pub fn from_env() -> Option<AccessKey> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Some(AccessKey {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }

    /// The same pair as SDK credentials, for the handlers' own management client.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "webchat-local",
        )
    }
}

/// Why a request was refused, with the error type and message API Gateway answers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    #[error("Missing Authentication Token")]
    /// No `Authorization` header.
    Missing,
    #[error("{0}")]
    /// An `Authorization` header without every part a signature needs.
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    /// Signed with another access key.
    UnknownKey,
    #[error("{0}")]
    /// The signature does not match: wrong secret, service, region or date, or altered since.
    Invalid(String),
    /// The request's parts cannot be signed again to compare (e.g. a path `aws-sigv4`
    /// will not take), so no signature of them can be right.
    #[error("cannot check this signature")]
    Unverifiable(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl Refusal {
    fn unverifiable(cause: impl std::error::Error + Send + Sync + 'static) -> Refusal {
        Refusal::Unverifiable(Arc::new(cause))
    }

    /// The `x-amzn-ErrorType` AWS SDKs read the error's kind from.
    pub fn error_type(&self) -> &'static str {
        match self {
            Refusal::Missing => "MissingAuthenticationTokenException",
            Refusal::Incomplete(_) => "IncompleteSignatureException",
            Refusal::UnknownKey => "UnrecognizedClientException",
            Refusal::Invalid(_) | Refusal::Unverifiable(_) => "InvalidSignatureException",
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Refusal> {
    let incomplete = |what: &str| {
        Refusal::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={}",
            value.split("Signature=").next().unwrap_or(value)
        ))
    };
    let Some(fields) = value.strip_prefix(ALGORITHM) else {
        return Err(Refusal::Incomplete(format!(
            "Authorization header must use the {ALGORITHM} algorithm"
        )));
    };
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
    };
    let credential = field("Credential").ok_or_else(|| incomplete("Credential"))?;
    let signed_headers = field("SignedHeaders").ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = field("Signature").ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(Refusal::Incomplete(format!(
            "Credential must be KEY/YYYYMMDD/REGION/SERVICE/aws4_request, not {credential}"
        )));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed_headers.split(';').collect(),
        signature,
    })
}

/// `20261128T221834Z` as a time.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

/// One request as it reached the management API.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The path and query exactly as received (still percent-encoded).
    pub path_and_query: &'a str,
    /// The headers as received.
    pub headers: &'a HeaderMap,
    /// The body as received.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A request as an HTTP server received it: `uri` as the client sent it (before any
    /// nesting under a path took a prefix off).
    pub fn new(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method: method.as_str(),
            path_and_query: uri
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str),
            headers,
            body,
        }
    }
}

/// Checks the request's `SigV4` signature against `key`, for `region` and the management
/// API's service, at time `now`.
pub fn verify(
    request: &Request<'_>,
    key: &AccessKey,
    region: &str,
    now: SystemTime,
) -> Result<(), Refusal> {
    verify_for(request, key, region, SERVICE, now)
}

/// The access key id a request's `Authorization` header names, to pick the key it must
/// be verified with when several are accepted.
pub fn access_key_id(headers: &HeaderMap) -> Result<&str, Refusal> {
    let header = headers
        .get("authorization")
        .ok_or(Refusal::Missing)?
        .to_str()
        .map_err(|_| Refusal::Incomplete("Authorization header is not visible ASCII".into()))?;
    Ok(parse_authorization(header)?.access_key_id)
}

/// [`verify`] for another service's signatures (e.g. `dynamodb`).
pub fn verify_for(
    request: &Request<'_>,
    key: &AccessKey,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<(), Refusal> {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let authorization = parse_authorization(header("authorization").ok_or(Refusal::Missing)?)?;
    let amz_date = header("x-amz-date").ok_or_else(|| {
        Refusal::Incomplete(
            "Authorization header requires existence of a 'X-Amz-Date' header".to_string(),
        )
    })?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        Refusal::Incomplete(format!("X-Amz-Date {amz_date} is not YYYYMMDDTHHMMSSZ"))
    })?;
    if authorization.access_key_id != key.access_key_id {
        return Err(Refusal::UnknownKey);
    }
    if authorization.service != service {
        return Err(Refusal::Invalid(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    if authorization.region != region {
        return Err(Refusal::Invalid(format!(
            "Credential should be scoped to a valid region, not '{}'; this gateway's region is '{region}'.",
            authorization.region
        )));
    }
    if !amz_date.starts_with(authorization.date) || authorization.date.len() != 8 {
        return Err(Refusal::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            authorization.date,
            &amz_date[..8]
        )));
    }
    if signed_at + MAX_CLOCK_SKEW < now {
        return Err(Refusal::Invalid(format!(
            "Signature expired: {amz_date} is now earlier than the server's clock minus 15 min."
        )));
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(Refusal::Invalid(format!(
            "Signature not yet current: {amz_date} is still later than the server's clock plus 15 min."
        )));
    }

    // Sign again over exactly what the caller signed. `aws-sigv4` adds `host` and
    // `x-amz-date` itself and the session token from the identity, so the token is
    // given only when the caller signed it.
    let signs = |name: &str| authorization.signed_headers.contains(&name);
    let mut signed_headers = Vec::new();
    for name in &authorization.signed_headers {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        for value in request.headers.get_all(*name) {
            let value = value.to_str().map_err(|_| {
                Refusal::Invalid(format!("signed header {name} is not visible ASCII"))
            })?;
            signed_headers.push((*name, value));
        }
    }
    let session_token = if signs("x-amz-security-token") {
        Some(header("x-amz-security-token").ok_or_else(|| {
            Refusal::Invalid("x-amz-security-token is signed but not sent".to_string())
        })?)
    } else {
        None
    };
    let identity = Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        session_token.map(str::to_string),
        None,
        "signature check",
    )
    .into();
    let mut settings = SigningSettings::default();
    // The caller chose what to sign; leave nothing of it out.
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(Refusal::unverifiable)?
        .into();
    // The authority is only a fallback for a request that did not sign `host`, which
    // then cannot match.
    let uri = format!("http://unsigned-host{}", request.path_and_query);
    let signable = SignableRequest::new(
        request.method,
        uri,
        signed_headers.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(Refusal::unverifiable)?;
    let expected = sign(signable, &params).map_err(Refusal::unverifiable)?;
    if constant_time_eq(
        expected.signature().as_bytes(),
        authorization.signature.as_bytes(),
    ) {
        Ok(())
    } else {
        Err(Refusal::Invalid(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
                .to_string(),
        ))
    }
}

/// Compares without stopping at the first difference, so timing says nothing about how
/// much of a guessed signature was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse_and_junk_does_not() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2015-08-30T12:36:00Z"
        );
        for junk in [
            "",
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "2015083XT123600Z",
        ] {
            assert!(parse_amz_date(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn authorization_headers_parse_into_their_scope() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.date, "20150830");
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.service, "execute-api");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(a.signature, "abc");
        for bad in [
            "Basic dXNlcjpwYXNz",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1, SignedHeaders=host, Signature=abc",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/execute-api/aws4_request, Signature=abc",
        ] {
            assert!(
                matches!(parse_authorization(bad), Err(Refusal::Incomplete(_))),
                "{bad}"
            );
        }
    }

    /// A request as a test vector writes it: `Name:value` header lines.
    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(
                http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    /// The key of AWS's `SigV4` test suite.
    fn suite_key(token: Option<&str>) -> AccessKey {
        AccessKey {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
        }
    }

    /// Requests signed by AWS's own `SigV4` test suite (`get-vanilla`,
    /// `get-vanilla-with-session-token`, `post-x-www-form-urlencoded`), signatures as
    /// published there.
    #[test]
    fn aws_test_suite_signatures_verify() {
        let now = at("2015-08-30T12:40:00Z");
        let vanilla = headers(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ]);
        let request = Request {
            method: "GET",
            path_and_query: "/",
            headers: &vanilla,
            body: b"",
        };
        verify_for(&request, &suite_key(None), "us-east-1", "service", now)
            .expect("the suite's signature verifies");

        let with_token = headers(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Security-Token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"),
        ]);
        let request = Request {
            method: "GET",
            path_and_query: "/",
            headers: &with_token,
            body: b"",
        };
        verify_for(&request, &suite_key(None), "us-east-1", "service", now)
            .expect("the suite's signature verifies");

        let form = headers(&[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("Content-Length", "13"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("x-amz-content-sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"),
        ]);
        let request = Request {
            method: "POST",
            path_and_query: "/",
            headers: &form,
            body: b"Param1=value1",
        };
        verify_for(&request, &suite_key(None), "us-east-1", "service", now)
            .expect("the suite's signature verifies");
        let tampered = Request {
            body: b"Param1=value2",
            ..request
        };
        assert!(matches!(
            verify_for(&tampered, &suite_key(None), "us-east-1", "service", now),
            Err(Refusal::Invalid(_))
        ));
    }

    /// A management API request signed by Python's botocore 1.44.8 (`SigV4Auth` for
    /// `execute-api`, clock fixed at 2026-11-28T22:18:34Z), captured verbatim: another
    /// implementation's canonical request, double-encoded connection id and session token
    /// included.
    #[test]
    fn a_request_signed_by_botocore_verifies_and_its_tampered_copies_do_not() {
        let botocore = headers(&[
            ("Host", "127.0.0.1:8080"),
            ("Content-Type", "application/json"),
            ("X-Amz-Date", "20261128T221834Z"),
            ("X-Amz-Security-Token", "botocore-session-token"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAWEBCHATLOCALDEV0/20261128/us-east-1/execute-api/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=b4792be126af0341f1d0fb2bae3a6dcf1454ef1ce878ce6885030aa9f7888cd6"),
        ]);
        let request = Request {
            method: "POST",
            path_and_query: "/Prod/@connections/L0SM9cOFvHcCIhw%3D",
            headers: &botocore,
            body: br#"{"action":"message","message":"signed by botocore"}"#,
        };
        let key = AccessKey::development();
        let now = at("2026-11-28T22:20:00Z");
        verify(&request, &key, "us-east-1", now).expect("botocore's signature verifies");

        let other_path = Request {
            path_and_query: "/Prod/@connections/K1a2b3c4d5e6f7g%3D",
            ..request
        };
        let other_body = Request {
            body: br#"{"action":"message","message":"signed by somebody else"}"#,
            ..request
        };
        let other_method = Request {
            method: "DELETE",
            ..request
        };
        for tampered in [other_path, other_body, other_method] {
            assert!(
                matches!(
                    verify(&tampered, &key, "us-east-1", now),
                    Err(Refusal::Invalid(_))
                ),
                "{} {}",
                tampered.method,
                tampered.path_and_query
            );
        }
        let wrong_secret = AccessKey {
            secret_access_key: "not-the-secret".into(),
            ..AccessKey::development()
        };
        assert!(matches!(
            verify(&request, &wrong_secret, "us-east-1", now),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            verify(&request, &key, "eu-west-1", now),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            verify(&request, &suite_key(None), "us-east-1", now),
            Err(Refusal::UnknownKey)
        ));
        let late = at("2026-11-28T22:34:00Z");
        assert!(
            matches!(verify(&request, &key, "us-east-1", late), Err(Refusal::Invalid(m)) if m.starts_with("Signature expired")),
        );
        let early = at("2026-11-28T22:03:00Z");
        assert!(
            matches!(verify(&request, &key, "us-east-1", early), Err(Refusal::Invalid(m)) if m.starts_with("Signature not yet current")),
        );
        let unsigned = headers(&[("Host", "127.0.0.1:8080")]);
        let unsigned = Request {
            headers: &unsigned,
            ..request
        };
        assert!(matches!(
            verify(&unsigned, &key, "us-east-1", now),
            Err(Refusal::Missing)
        ));
    }
}
