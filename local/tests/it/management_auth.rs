//! The `@connections` API checks `SigV4` signatures as API Gateway's does: the real SDK
//! client with the gateway's key works, and every request that is unsigned, signed with
//! the wrong secret, service, region, date or key, or altered after signing is refused
//! with API Gateway's error type, delivering and deleting nothing.

use crate::common;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};
use webchat_local::{AccessKey, Config, ManagementAuth, Running, DEFAULT_REGION};
use webchat_testkit::http::{self, Response};
use webchat_testkit::{management_client, Client};

const QUIET: Duration = Duration::from_millis(300);

fn message(answer: &Response) -> String {
    serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A request as a client outside the project would send it, signed or not.
struct Raw {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn new(method: &'static str, path: String, body: &[u8]) -> Raw {
        Raw {
            method,
            path,
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }

    /// Signs with `aws-sigv4` as an SDK would, for `service` and `region` at `time`.
    fn signed(
        mut self,
        host: &str,
        key: &AccessKey,
        service: &str,
        region: &str,
        time: SystemTime,
    ) -> Raw {
        let identity = key.credentials().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let host_header = [("host", host)];
        let signable = SignableRequest::new(
            self.method,
            format!("http://{host}{}", self.path),
            host_header.into_iter(),
            SignableBody::Bytes(&self.body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        for (name, value) in instructions.headers() {
            self.headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    async fn send(&self, gateway: &Running) -> Response {
        http::request(
            gateway.addr(),
            self.method,
            &self.path,
            &self.headers,
            &self.body,
        )
        .await
        .expect("an answer")
    }
}

fn post_path(gateway: &Running, connection_id: &str) -> String {
    // As the SDKs send it: the id's `=` percent-encoded.
    let stage = gateway
        .management_endpoint()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    format!(
        "/{stage}/@connections/{}",
        connection_id.replace('=', "%3D")
    )
}

fn assert_refused(answer: &Response, error_type: &str) {
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(
        answer.header("x-amzn-errortype"),
        Some(error_type),
        "{answer:?}"
    );
    assert!(!message(answer).is_empty(), "{answer:?}");
}

#[tokio::test]
async fn the_sdk_with_the_gateways_key_posts_gets_and_deletes() {
    let gateway = common::start(Config::default()).await;
    let mut ana = Client::join(&gateway.websocket_url(), "ana").await.unwrap();
    let client = management_client(
        &gateway.management_endpoint(),
        AccessKey::development().credentials(),
        DEFAULT_REGION,
    );
    client
        .post_to_connection()
        .connection_id(&ana.connection_id)
        .data(Blob::new(r#"{"action":"pong"}"#))
        .send()
        .await
        .expect("a signed POST is delivered");
    assert_eq!(ana.recv().await.unwrap(), json!({"action":"pong"}));
    let info = client
        .get_connection()
        .connection_id(&ana.connection_id)
        .send()
        .await
        .expect("a signed GET answers");
    assert!(info.connected_at().is_some());
    client
        .delete_connection()
        .connection_id(&ana.connection_id)
        .send()
        .await
        .expect("a signed DELETE closes");
    assert_eq!(ana.expect_close().await.unwrap(), 1000);
}

#[tokio::test]
async fn sdk_requests_with_a_wrong_secret_region_or_key_are_refused_and_deliver_nothing() {
    let gateway = common::start(Config::default()).await;
    let mut ana = Client::join(&gateway.websocket_url(), "ana").await.unwrap();
    let wrong_secret = AccessKey {
        secret_access_key: "a-guess".into(),
        ..AccessKey::development()
    };
    let unknown_key = AccessKey {
        access_key_id: "AKIAUNKNOWNUNKNOWN00".into(),
        ..AccessKey::development()
    };
    let cases = [
        (wrong_secret, DEFAULT_REGION, "InvalidSignatureException"),
        (
            AccessKey::development(),
            "eu-west-1",
            "InvalidSignatureException",
        ),
        (unknown_key, DEFAULT_REGION, "UnrecognizedClientException"),
    ];
    for (key, region, error_type) in cases {
        let client = management_client(&gateway.management_endpoint(), key.credentials(), region);
        let err = client
            .post_to_connection()
            .connection_id(&ana.connection_id)
            .data(Blob::new(r#"{"action":"message","message":"forged"}"#))
            .send()
            .await
            .expect_err("refused");
        let raw = err.raw_response().expect("an HTTP answer");
        assert_eq!(raw.status().as_u16(), 403, "{error_type}: {err:?}");
        assert_eq!(
            aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata::code(&err),
            Some(error_type),
            "{err:?}"
        );
        let deleted = client
            .delete_connection()
            .connection_id(&ana.connection_id)
            .send()
            .await;
        assert!(deleted.is_err(), "{error_type}: DELETE refused too");
    }
    ana.expect_silence(QUIET).await.unwrap();
    // Still open and still ana's.
    let pong = ana
        .request(json!({"action":"ping","requestId":"p"}))
        .await
        .unwrap();
    assert_eq!(pong["action"], "pong");
}

#[tokio::test]
async fn unsigned_and_altered_requests_are_refused_with_api_gateways_error_types() {
    let gateway = common::start(Config::default()).await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await.unwrap();
    let mut bia = Client::join(&url, "bia").await.unwrap();
    assert_eq!(ana.recv_action("newUser").await.unwrap()["userName"], "bia");
    let host = gateway.addr().to_string();
    let key = AccessKey::development();
    let now = SystemTime::now();
    let to_ana = post_path(&gateway, &ana.connection_id);
    let to_bia = post_path(&gateway, &bia.connection_id);
    let body = br#"{"action":"message","message":"for ana only"}"#;
    let signed = |method, path: &str, service, region, time| {
        Raw::new(method, path.to_string(), body).signed(&host, &key, service, region, time)
    };

    // A request signed right is delivered: the refusals below are about the signature.
    let good = signed("POST", &to_ana, "execute-api", DEFAULT_REGION, now)
        .send(&gateway)
        .await;
    assert_eq!(good.status, 200, "{good:?}");
    assert_eq!(ana.recv().await.unwrap()["message"], "for ana only");

    let unsigned = Raw::new("POST", to_ana.clone(), body).send(&gateway).await;
    assert_refused(&unsigned, "MissingAuthenticationTokenException");
    assert_eq!(message(&unsigned), "Missing Authentication Token");
    let unsigned_delete = Raw::new("DELETE", to_ana.clone(), b"").send(&gateway).await;
    assert_refused(&unsigned_delete, "MissingAuthenticationTokenException");
    let unsigned_get = Raw::new("GET", to_ana.clone(), b"").send(&gateway).await;
    assert_refused(&unsigned_get, "MissingAuthenticationTokenException");

    let wrong_service = signed("POST", &to_ana, "lambda", DEFAULT_REGION, now)
        .send(&gateway)
        .await;
    assert_refused(&wrong_service, "InvalidSignatureException");

    let wrong_region = signed("POST", &to_ana, "execute-api", "ap-south-1", now)
        .send(&gateway)
        .await;
    assert_refused(&wrong_region, "InvalidSignatureException");

    let expired = signed(
        "POST",
        &to_ana,
        "execute-api",
        DEFAULT_REGION,
        now - Duration::from_mins(20),
    )
    .send(&gateway)
    .await;
    assert_refused(&expired, "InvalidSignatureException");
    assert!(message(&expired).contains("expired"), "{expired:?}");

    let mut tampered = signed("POST", &to_ana, "execute-api", DEFAULT_REGION, now);
    tampered.body = br#"{"action":"message","message":"for ana only!"}"#.to_vec();
    assert_refused(&tampered.send(&gateway).await, "InvalidSignatureException");

    // The same signed request replayed against another connection.
    let mut replayed = signed("POST", &to_ana, "execute-api", DEFAULT_REGION, now);
    replayed.path = to_bia.clone();
    assert_refused(&replayed.send(&gateway).await, "InvalidSignatureException");

    // A signed POST replayed as a DELETE of the same connection.
    let mut as_delete = signed("POST", &to_ana, "execute-api", DEFAULT_REGION, now);
    as_delete.method = "DELETE";
    assert_refused(&as_delete.send(&gateway).await, "InvalidSignatureException");

    ana.expect_silence(QUIET).await.unwrap();
    bia.expect_silence(QUIET).await.unwrap();
    let list = ana
        .request(json!({"action":"list","requestId":"l"}))
        .await
        .unwrap();
    assert_eq!(list["users"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn with_the_check_off_an_unsigned_post_is_delivered() {
    let gateway = common::start(Config {
        management_auth: ManagementAuth::Off,
        ..Config::default()
    })
    .await;
    let mut ana = Client::join(&gateway.websocket_url(), "ana").await.unwrap();
    let answer = Raw::new(
        "POST",
        post_path(&gateway, &ana.connection_id),
        br#"{"action":"pong"}"#,
    )
    .send(&gateway)
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(ana.recv().await.unwrap(), json!({"action":"pong"}));
}

#[tokio::test]
async fn the_chat_still_works_because_the_handlers_sign_with_the_gateways_key() {
    let key = AccessKey {
        access_key_id: "AKIAOTHERKEYOTHERKEY".into(),
        secret_access_key: "another-secret".into(),
        session_token: Some("a-session-token".into()),
    };
    let gateway = common::start(Config {
        management_auth: ManagementAuth::SigV4(key),
        region: "eu-central-1".into(),
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await.unwrap();
    let mut bia = Client::join(&url, "bia").await.unwrap();
    assert_eq!(ana.recv_action("newUser").await.unwrap()["userName"], "bia");
    bia.send(json!({"action":"message","message":"hi ana"}))
        .await
        .unwrap();
    assert_eq!(
        ana.recv_action("message").await.unwrap()["message"],
        "hi ana"
    );
}
