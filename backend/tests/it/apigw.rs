//! The API Gateway edge: proxy events in, proxy responses out, as the Lambda runtime and
//! `webchat-local` hand them over.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::Value;
use webchat_backend::{handle, ConnectionStore, DownStore, Limits, MemoryStore, RecordingGateway};

const CONNECTED_AT_MS: i64 = 1_764_316_800_000;

fn event(route: &str, connection_id: &str, body: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some(route.to_string());
    event.request_context.connection_id = Some(connection_id.to_string());
    event.request_context.connected_at = CONNECTED_AT_MS;
    event.request_context.domain_name = Some("abc.execute-api.eu-west-1.amazonaws.com".into());
    event.request_context.stage = Some("Prod".into());
    event.body = body.map(str::to_string);
    event
}

fn body_json(response: &ApiGatewayProxyResponse) -> Option<Value> {
    match &response.body {
        Some(Body::Text(text)) => Some(serde_json::from_str(text).expect("reply is JSON")),
        None => None,
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn connect_records_the_connection_with_api_gateways_connected_at() {
    let (store, gateway) = (MemoryStore::new(), RecordingGateway::new());
    let response = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("$connect", "A", None),
    )
    .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(response.body, None);
    let connection = store.get("A").await.unwrap().expect("recorded");
    assert_eq!(connection.connected_at, CONNECTED_AT_MS);
    let response = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("$disconnect", "A", None),
    )
    .await;
    assert_eq!(response.status_code, 200);
    assert!(store.get("A").await.unwrap().is_none());
}

#[tokio::test]
async fn a_reply_is_the_response_body_and_silence_is_none() {
    let (store, gateway) = (MemoryStore::new(), RecordingGateway::new());
    handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("$connect", "A", None),
    )
    .await;
    let asked = r#"{"action":"register","userName":"ana","requestId":"r1"}"#;
    let response = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("register", "A", Some(asked)),
    )
    .await;
    assert_eq!(response.status_code, 200);
    let reply = body_json(&response).expect("a reply");
    assert_eq!(reply["action"], "registered");
    assert_eq!(reply["requestId"], "r1");
    let silent = r#"{"action":"ping"}"#;
    let response = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("ping", "A", Some(silent)),
    )
    .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(response.body, None);
}

#[tokio::test]
async fn binary_frames_arrive_base64_encoded_and_answer_bad_json() {
    let (store, gateway) = (MemoryStore::new(), RecordingGateway::new());
    let mut binary = event("$default", "A", Some("AAEC"));
    binary.is_base64_encoded = true;
    let reply =
        body_json(&handle(&store, &gateway, &Limits::DEFAULT, &binary).await).expect("a reply");
    assert_eq!(reply["code"], "bad_json");
}

#[tokio::test]
async fn an_unknown_route_key_is_refused_like_default() {
    let (store, gateway) = (MemoryStore::new(), RecordingGateway::new());
    handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("$connect", "A", None),
    )
    .await;
    let body = r#"{"action":"register","userName":"ana","requestId":"r"}"#;
    let response = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("shout", "A", Some(body)),
    )
    .await;
    let reply = body_json(&response).expect("a reply");
    assert_eq!(reply["code"], "unknown_action");
    assert_eq!(store.get("A").await.unwrap().unwrap().user_name, None);
}

#[tokio::test]
async fn an_event_without_a_connection_id_is_a_bad_request() {
    let (store, gateway) = (MemoryStore::new(), RecordingGateway::new());
    let mut orphan = event("ping", "A", Some(r#"{"action":"ping"}"#));
    orphan.request_context.connection_id = None;
    assert_eq!(
        handle(&store, &gateway, &Limits::DEFAULT, &orphan)
            .await
            .status_code,
        400
    );
}

#[tokio::test]
async fn a_store_outage_refuses_the_handshake_and_fails_the_disconnect() {
    let gateway = RecordingGateway::new();
    let connect = handle(
        &DownStore,
        &gateway,
        &Limits::DEFAULT,
        &event("$connect", "A", None),
    )
    .await;
    assert_eq!(connect.status_code, 500);
    let disconnect = handle(
        &DownStore,
        &gateway,
        &Limits::DEFAULT,
        &event("$disconnect", "A", None),
    )
    .await;
    assert_eq!(disconnect.status_code, 500);
}

/// A `register` event as API Gateway sends it for a connection whose `$connect` a Lambda
/// authorizer accepted: the authorizer's context sits flat in `requestContext.authorizer`.
fn signed_in_register(connection_id: &str, user_name: &str) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(serde_json::json!({
        "requestContext": {
            "routeKey": "register",
            "eventType": "MESSAGE",
            "connectionId": connection_id,
            "connectedAt": CONNECTED_AT_MS,
            "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
            "stage": "Prod",
            "apiId": "abc",
            "requestId": "r",
            "requestTimeEpoch": CONNECTED_AT_MS,
            "identity": {"sourceIp": "203.0.113.7"},
            "authorizer": {"principalId": "sub-ana", "sub": "sub-ana", "userName": "Ana"}
        },
        "body": serde_json::json!({"action":"register","userName":user_name,"requestId":"r"}).to_string(),
        "isBase64Encoded": false
    }))
    .expect("an API Gateway event")
}

#[tokio::test]
async fn a_signed_in_connection_may_register_only_the_name_its_authorizer_gave() {
    let (store, gateway) = (MemoryStore::new(), RecordingGateway::new());
    handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("$connect", "A", None),
    )
    .await;
    let refused = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &signed_in_register("A", "mallory"),
    )
    .await;
    let reply = body_json(&refused).expect("a reply");
    assert_eq!(reply["code"], "forbidden", "{reply}");
    let accepted = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &signed_in_register("A", "ana"),
    )
    .await;
    let reply = body_json(&accepted).expect("a reply");
    assert_eq!(reply["action"], "registered", "{reply}");
    assert_eq!(reply["userName"], "Ana");
    // Without the authorizer's context (sign-in off) any free name goes, as before.
    handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event("$connect", "B", None),
    )
    .await;
    let anonymous = handle(
        &store,
        &gateway,
        &Limits::DEFAULT,
        &event(
            "register",
            "B",
            Some(r#"{"action":"register","userName":"mallory","requestId":"r"}"#),
        ),
    )
    .await;
    assert_eq!(body_json(&anonymous).unwrap()["action"], "registered");
}
