//! Drives `handle` the way API Gateway would: one event per route, over a store and a
//! gateway the test chooses.
#![allow(dead_code)] // each test file uses its own part of it

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::{json, Value};
use webchat_backend::{handle, ConnectionGateway, MemoryStore, RecordingGateway};
use webchat_shared_types::ServerEvent;

pub struct Harness<G = RecordingGateway> {
    pub store: MemoryStore,
    pub gateway: G,
}

pub fn event(
    route: &str,
    connection_id: &str,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some(route.to_string());
    event.request_context.connection_id = Some(connection_id.to_string());
    event.request_context.connected_at = 1_764_316_800_000;
    event.request_context.domain_name = Some("abc.execute-api.eu-west-1.amazonaws.com".into());
    event.request_context.stage = Some("Prod".into());
    event.body = body.map(str::to_string);
    event
}

pub fn body_json(response: &ApiGatewayProxyResponse) -> Option<Value> {
    match &response.body {
        Some(Body::Text(text)) => Some(serde_json::from_str(text).expect("reply is JSON")),
        None => None,
        other => panic!("unexpected body {other:?}"),
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness::with_gateway(RecordingGateway::new())
    }

    /// These users joined, in order, and what their joining pushed is forgotten.
    pub async fn with_users(users: &[(&str, &str)]) -> Self {
        let harness = Harness::new();
        for (id, name) in users {
            harness.join(id, name).await;
        }
        harness.gateway.clear();
        harness
    }

    pub fn events(&self, id: &str) -> Vec<ServerEvent> {
        self.gateway.events_for(id)
    }
}

impl<G: ConnectionGateway> Harness<G> {
    pub fn with_gateway(gateway: G) -> Self {
        Harness {
            store: MemoryStore::new(),
            gateway,
        }
    }

    pub async fn route(
        &self,
        route: &str,
        id: &str,
        body: Option<&str>,
    ) -> ApiGatewayProxyResponse {
        handle(&self.store, &self.gateway, &event(route, id, body)).await
    }

    pub async fn connect(&self, id: &str) {
        assert_eq!(self.route("$connect", id, None).await.status_code, 200);
    }

    /// Sends a frame on the route API Gateway would select and returns the reply body.
    pub async fn send(&self, id: &str, frame: Value) -> Option<Value> {
        let route = frame
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("$default")
            .to_string();
        let response = self.route(&route, id, Some(&frame.to_string())).await;
        assert_eq!(response.status_code, 200);
        body_json(&response)
    }

    /// Registers `id` as `name` and returns the reply.
    pub async fn register(&self, id: &str, name: &str) -> Value {
        self.send(
            id,
            json!({"action":"register","userName":name,"requestId":"r"}),
        )
        .await
        .expect("a reply to register with a requestId")
    }

    pub async fn join(&self, id: &str, name: &str) {
        self.connect(id).await;
        let reply = self.register(id, name).await;
        assert_eq!(reply["action"], "registered", "{reply}");
    }

    /// Broadcasts `text` from `id` and returns how many the `sent` reply says got it.
    pub async fn broadcast(&self, id: &str, text: &str) -> u64 {
        let reply = self
            .send(
                id,
                json!({"action":"message","message":text,"requestId":"m"}),
            )
            .await
            .expect("a reply to message");
        assert_eq!(reply["action"], "sent", "{reply}");
        reply["delivered"].as_u64().expect("delivered count")
    }
}
