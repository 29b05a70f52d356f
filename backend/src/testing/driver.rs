//! A test driver for the chat rules: drives them the way the API Gateway edge does
//! (connect, frames on the route API Gateway would pick, disconnect) over any store and
//! any gateway, wrapped in the same retrying push the Lambda uses, with time (rate
//! limits, message ids, history expiry) measured on a clock that moves only when the
//! test says. It panics on anything a test did not expect.

use super::RecordingGateway;
use crate::delivery::{ConnectionGateway, Retrying};
use crate::limits::{Limits, ManualClock, Micros};
use crate::rules::{Frame, Identity, Rules};
use crate::store::{ConnectionStore, HistoryStore, MemoryStore};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use webchat_shared_types::{Route, ServerEvent, ServerFrame};

/// Where the clock of [`Driver::new`] starts: 2025-11-28T08:00:00Z.
pub const CONNECTED_AT_MS: i64 = 1_764_316_800_000;

/// The chat rules over one store and one gateway, as tests drive them.
pub struct Driver<S = MemoryStore, G = RecordingGateway> {
    /// The store the rules run over, for tests to inspect.
    pub store: S,
    /// The gateway pushes go to, for tests to inspect.
    pub gateway: G,
    /// The time the rules see.
    pub clock: ManualClock,
    /// The limits the rules apply.
    pub limits: Limits,
    /// Signed-in connections and who they are.
    identities: Mutex<HashMap<String, Identity>>,
    /// Whatever the store needs running for as long as it is used (a local DynamoDB).
    _keep: Option<Box<dyn std::any::Any>>,
}

fn as_json(reply: Option<ServerFrame>) -> Option<Value> {
    reply.map(|frame| serde_json::from_str(&frame.to_json()).expect("reply is JSON"))
}

impl Default for Driver {
    fn default() -> Self {
        Driver::new()
    }
}

impl Driver {
    /// The in-memory store and a recording gateway, with the default limits, at
    /// [`CONNECTED_AT_MS`].
    pub fn new() -> Self {
        Driver::with_gateway(RecordingGateway::new())
    }

    /// [`Driver::new`] with these users connected and registered, in order, and what
    /// their arriving pushed forgotten.
    pub async fn with_users(users: &[(&str, &str)]) -> Self {
        let driver = Driver::new();
        for (id, name) in users {
            driver.arrive(id, name).await;
        }
        driver.forget_events();
        driver
    }
}

impl<G: ConnectionGateway> Driver<MemoryStore, G> {
    /// The in-memory store and `gateway`, with the default limits, at [`CONNECTED_AT_MS`].
    pub fn with_gateway(gateway: G) -> Self {
        Driver::over(MemoryStore::new(), gateway)
    }
}

impl<S, G> Driver<S, G> {
    /// `store` and `gateway`, with the default limits, at [`CONNECTED_AT_MS`].
    pub fn over(store: S, gateway: G) -> Self {
        Driver {
            store,
            gateway,
            clock: ManualClock::new(CONNECTED_AT_MS * 1000),
            limits: Limits::DEFAULT,
            identities: Mutex::default(),
            _keep: None,
        }
    }

    /// Applies `limits` instead of [`Limits::DEFAULT`].
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Starts the clock at `now` instead (a store that checks expiry against the system
    /// clock needs the system's time).
    #[must_use]
    pub fn with_clock_at(mut self, now: Micros) -> Self {
        self.clock = ManualClock::new(now);
        self
    }

    /// Keeps `running` (a local DynamoDB, say) for as long as the driver lives.
    #[must_use]
    #[allow(
        clippy::used_underscore_binding,
        reason = "held for its lifetime, never read"
    )]
    pub fn keeping(mut self, running: impl std::any::Any) -> Self {
        self._keep = Some(Box::new(running));
        self
    }
}

impl<S: ConnectionStore + HistoryStore, G: ConnectionGateway> Driver<S, G> {
    fn rules<'a>(
        &'a self,
        gateway: &'a Retrying<&'a G>,
        identity: Option<&'a Identity>,
    ) -> Rules<'a, S, Retrying<&'a G>> {
        Rules::new(&self.store, gateway)
            .with_limits(self.limits)
            .with_clock(&self.clock)
            .with_identity(identity)
    }

    /// Opens connection `id` (`$connect`), anonymous.
    pub async fn connect(&self, id: &str) {
        let gateway = Retrying::new(&self.gateway);
        self.rules(&gateway, None)
            .connect(id, None)
            .await
            .expect("$connect succeeds");
    }

    /// Connects `id` as signed in by the person `sub` named `name`.
    pub async fn connect_as(&self, id: &str, sub: &str, name: &str) {
        self.identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                id.to_string(),
                Identity {
                    sub: sub.to_string(),
                    user_name: name.to_string(),
                },
            );
        self.connect(id).await;
    }

    /// Ends connection `id` (`$disconnect`).
    pub async fn disconnect(&self, id: &str) {
        let gateway = Retrying::new(&self.gateway);
        self.rules(&gateway, None)
            .disconnect(id)
            .await
            .expect("$disconnect succeeds");
    }

    /// The reply to `frame` arriving on `route`, whatever route the frame names.
    pub async fn frame_on(&self, route: Route, id: &str, frame: Frame<'_>) -> Option<Value> {
        let gateway = Retrying::new(&self.gateway);
        let identity = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned();
        as_json(
            self.rules(&gateway, identity.as_ref())
                .frame(route, id, frame)
                .await,
        )
    }

    /// Sends raw text on the route API Gateway would select and returns the reply.
    pub async fn send_text(&self, id: &str, text: &str) -> Option<Value> {
        self.frame_on(Route::of_frame(text), id, Frame::Text(text))
            .await
    }

    /// Sends `frame` as JSON on its route and returns the reply.
    pub async fn send(&self, id: &str, frame: Value) -> Option<Value> {
        self.send_text(id, &frame.to_string()).await
    }

    /// Sends `frame` with a `requestId` and returns the reply it is owed.
    pub async fn ask(&self, id: &str, mut frame: Value) -> Value {
        frame["requestId"] = json!("q");
        self.send(id, frame).await.expect("a reply")
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

    /// Connects and registers `id` as `name`; returns the resume token.
    pub async fn arrive(&self, id: &str, name: &str) -> String {
        self.connect(id).await;
        let reply = self.register(id, name).await;
        assert_eq!(reply["action"], "registered", "{reply}");
        reply["resumeToken"].as_str().expect("a token").to_string()
    }

    /// Connects `id` signed in as the person `sub` named `name`, and registers it.
    pub async fn sign_in(&self, id: &str, sub: &str, name: &str) -> Value {
        self.connect_as(id, sub, name).await;
        let reply = self.register(id, name).await;
        assert_eq!(reply["action"], "registered", "{reply}");
        reply
    }

    /// Joins `room` and returns the `joined` reply; panics on any other.
    pub async fn join(&self, id: &str, room: &str) -> Value {
        let reply = self.ask(id, json!({"action":"join","room":room})).await;
        assert_eq!(reply["action"], "joined", "{reply}");
        reply
    }

    /// Sends `text` to `room` from `id`; returns the `sent` reply. Messages are a
    /// millisecond apart, as people type: their ids then sort as sent.
    pub async fn say(&self, id: &str, room: &str, text: &str) -> Value {
        let reply = self
            .ask(id, json!({"action":"message","room":room,"message":text}))
            .await;
        assert_eq!(reply["action"], "sent", "{reply}");
        self.clock.advance(Duration::from_millis(1));
        reply
    }

    /// Sends `text` from `id` to the person named `to`; returns the `sent` reply.
    pub async fn tell(&self, id: &str, to: &str, text: &str) -> Value {
        let reply = self
            .ask(id, json!({"action":"message","to":to,"message":text}))
            .await;
        assert_eq!(reply["action"], "sent", "{reply}");
        self.clock.advance(Duration::from_millis(1));
        reply
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

impl<S> Driver<S, RecordingGateway> {
    /// Every event pushed to `id` since the last [`Driver::forget_events`], oldest first.
    pub fn events(&self, id: &str) -> Vec<ServerEvent> {
        self.gateway.events_for(id)
    }

    /// Drops the events recorded so far, so a test reads only what follows.
    pub fn forget_events(&self) {
        self.gateway.clear();
    }
}
