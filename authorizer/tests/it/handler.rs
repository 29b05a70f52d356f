//! The Lambda handler: API Gateway's REQUEST authorizer event in, a policy or a refusal out.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use webchat_authorizer::{authorize, AuthorizerError};

const METHOD_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/Prod/$connect";

fn event(
    token: Option<&str>,
) -> aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest {
    let mut event = json!({
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": {"Host": "abcdef123.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "L0SM9cOFvHcCIhw=",
            "stage": "Prod", "apiId": "abcdef123", "domainName": "abcdef123.execute-api.us-east-1.amazonaws.com",
        },
    });
    if let Some(token) = token {
        event["queryStringParameters"] = json!({ "token": token });
        event["multiValueQueryStringParameters"] = json!({ "token": [token] });
    }
    serde_json::from_value(event).expect("an API Gateway authorizer event")
}

#[tokio::test]
async fn a_valid_token_is_allowed_with_its_identity_as_context() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let token = sign(&ec, &issuer.claims("Ann"));
    let response = authorize(&verifier, &event(Some(&token))).await.unwrap();
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["principalId"], "sub-Ann");
    assert_eq!(json["policyDocument"]["Version"], "2012-10-17");
    let statement = &json["policyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], json!(["execute-api:Invoke"]));
    assert_eq!(statement["Resource"], json!([METHOD_ARN]));
    assert_eq!(
        json["context"],
        json!({"sub": "sub-Ann", "userName": "Ann"})
    );
}

#[tokio::test]
async fn no_token_and_bad_tokens_are_unauthorized() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    assert_eq!(
        authorize(&verifier, &event(None)).await.unwrap_err(),
        AuthorizerError::Unauthorized
    );
    assert_eq!(
        authorize(&verifier, &event(Some(""))).await.unwrap_err(),
        AuthorizerError::Unauthorized
    );
    assert_eq!(
        authorize(&verifier, &event(Some("not.a.token")))
            .await
            .unwrap_err(),
        AuthorizerError::Unauthorized
    );
    // API Gateway answers 401 only for this exact message.
    assert_eq!(AuthorizerError::Unauthorized.to_string(), "Unauthorized");
}

#[tokio::test]
async fn a_valid_token_without_a_usable_name_is_denied() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let mut claims = issuer.claims("x");
    claims["preferred_username"] = json!("bad\u{1}name");
    let response = authorize(&verifier, &event(Some(&sign(&ec, &claims))))
        .await
        .unwrap();
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["policyDocument"]["Statement"][0]["Effect"], "Deny");
}

/// Everything the tracing subscriber writes during `run`.
async fn captured_logs<F: std::future::Future<Output = ()>>(run: F) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    run.await;
    drop(guard);
    let bytes = sink.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn refusals_and_logs_never_contain_the_token() {
    let (ec, stranger) = (ec_key("ec-1"), ec_key("ec-stranger"));
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let mut expired = issuer.claims("Ann");
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = issuer.claims("Ann");
    wrong_aud["aud"] = json!("other");
    let mut bad_name = issuer.claims("Ann");
    bad_name["preferred_username"] = json!("");
    let good = sign(&ec, &issuer.claims("Ann"));
    let tokens: Vec<String> = vec![
        good.clone(),
        sign(&ec, &expired),
        sign(&ec, &wrong_aud),
        sign(&ec, &bad_name),
        sign(&stranger, &issuer.claims("Ann")),
        format!("{}x", &good[..good.len() - 1]),
        raw_token(
            &json!({"alg": "none", "kid": "ec-1"}),
            &issuer.claims("Ann"),
            b"zz",
        ),
        format!("{}.{}", good, "extra"),
        good.repeat(8),
    ];
    let mut answers = Vec::new();
    let logs = captured_logs(async {
        for token in &tokens {
            answers.push(format!(
                "{:?}",
                authorize(&verifier, &event(Some(token))).await
            ));
        }
    })
    .await;
    assert!(logs.contains("sign-in refused"), "{logs}");
    assert!(logs.contains("sign-in accepted"), "{logs}");
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        let payload = token.split('.').nth(1).unwrap_or(token);
        for secret in [token.as_str(), signature, payload] {
            if secret.len() < 16 {
                continue;
            }
            assert!(!logs.contains(secret), "a log line quotes a token:\n{logs}");
            for answer in &answers {
                assert!(
                    !answer.contains(secret),
                    "an answer quotes a token: {answer}"
                );
            }
        }
    }
    // The answers themselves: the identity, or a fixed message.
    let value: Vec<Value> = answers.iter().map(|a| json!(a)).collect();
    assert_eq!(value.len(), tokens.len());
}

#[test]
fn the_lambda_fails_its_cold_start_naming_a_missing_setting() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-authorizer"))
        .env_remove("AUTH_ISSUER")
        .env_remove("AUTH_AUDIENCE")
        .env_remove("AUTH_JWKS_URL")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("AUTH_ISSUER"), "{all}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-authorizer"))
        .env("AUTH_ISSUER", "http://issuer.example")
        .env("AUTH_AUDIENCE", "client")
        .env_remove("AUTH_JWKS_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        all.contains("AUTH_ISSUER") && all.contains("https"),
        "{all}"
    );
}
