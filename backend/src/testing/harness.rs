//! A test harness for the chat rules: drives them the way the API Gateway edge does
//! (connect, frames on the route API Gateway would pick, disconnect) over the in-memory
//! store and a gateway the test chooses, wrapped in the same retrying push the Lambda
//! uses, with the rate limits measured against a clock that moves only when the test
//! says. It panics on anything a test did not expect.

use super::RecordingGateway;
use crate::delivery::{ConnectionGateway, Retrying};
use crate::limits::{Limits, ManualClock};
use crate::rules::{Frame, Rules};
use crate::store::MemoryStore;
use serde_json::{json, Value};
use webchat_shared_types::{Route, ServerEvent, ServerFrame};

/// `connectedAt` of every connection the harness opens.
pub const CONNECTED_AT_MS: i64 = 1_764_316_800_000;

pub struct Harness<G = RecordingGateway> {
    pub store: MemoryStore,
    pub gateway: G,
    /// The time the rate limits see; it starts at [`CONNECTED_AT_MS`].
    pub clock: ManualClock,
    pub limits: Limits,
}

fn as_json(reply: Option<ServerFrame>) -> Option<Value> {
    reply.map(|frame| serde_json::from_str(&frame.to_json()).expect("reply is JSON"))
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
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
            clock: ManualClock::new(CONNECTED_AT_MS * 1000),
            limits: Limits::DEFAULT,
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn chat<'a>(&'a self, gateway: &'a Retrying<&'a G>) -> Rules<'a, MemoryStore, Retrying<&'a G>> {
        Rules::new(&self.store, gateway)
            .with_limits(self.limits)
            .with_clock(&self.clock)
    }

    pub async fn connect(&self, id: &str) {
        let gateway = Retrying::new(&self.gateway);
        self.chat(&gateway)
            .connect(id, Some(CONNECTED_AT_MS))
            .await
            .expect("$connect succeeds");
    }

    pub async fn disconnect(&self, id: &str) {
        let gateway = Retrying::new(&self.gateway);
        self.chat(&gateway)
            .disconnect(id)
            .await
            .expect("$disconnect succeeds");
    }

    /// The reply to `frame` arriving on `route`, whatever route the frame names.
    pub async fn frame_on(&self, route: Route, id: &str, frame: Frame<'_>) -> Option<Value> {
        let gateway = Retrying::new(&self.gateway);
        as_json(self.chat(&gateway).frame(route, id, frame).await)
    }

    /// Sends raw text on the route API Gateway would select and returns the reply.
    pub async fn send_text(&self, id: &str, text: &str) -> Option<Value> {
        self.frame_on(Route::of_frame(text), id, Frame::Text(text))
            .await
    }

    pub async fn send(&self, id: &str, frame: Value) -> Option<Value> {
        self.send_text(id, &frame.to_string()).await
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
