//! The chat itself: one method per route, as docs/protocol.md describes them.
//!
//! The rules speak of connections, frames and replies, not of any transport: the reply
//! to a frame is returned (API Gateway sends it back on two-way routes, see
//! [`crate::apigw`]), and everything for other connections goes through the gateway.

use crate::gateway::ConnectionGateway;
use crate::limits::{Admission, Bucket, Clock, Limits, SystemClock};
use crate::push::fan_out;
use crate::store::{Connection, ConnectionStore, StoreError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use webchat_shared_types::{
    decode_client_frame, unknown_action, ErrorCode, Refusal, Request, Route, ServerEvent,
    ServerFrame, User, ValidFrame,
};

/// Gone connections found while announcing gone connections: stop after a few rounds.
const CLEANUP_ROUNDS: usize = 4;

/// One frame as a client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Text(&'a str),
    /// The protocol is JSON text; a binary frame is only ever refused.
    Binary,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// A ULID: sortable by time, unique without coordination between Lambdas.
pub fn new_message_id(timestamp_ms: u64) -> String {
    ulid::Ulid::from_parts(timestamp_ms, rand::random()).to_string()
}

fn internal(err: &StoreError) -> Refusal {
    tracing::error!(error = %err, "connection store failed");
    Refusal::new(
        ErrorCode::Internal,
        "the chat service could not complete this request; try again shortly",
    )
}

/// The chat rules over one store and one gateway.
pub struct Chat<'a, S, G> {
    store: &'a S,
    gateway: &'a G,
    limits: Limits,
    clock: &'a dyn Clock,
}

impl<'a, S: ConnectionStore, G: ConnectionGateway> Chat<'a, S, G> {
    /// The rules with the default [`Limits`] on the system clock.
    pub fn new(store: &'a S, gateway: &'a G) -> Self {
        Chat {
            store,
            gateway,
            limits: Limits::DEFAULT,
            clock: &SystemClock,
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Measures the rate limits against `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: &'a dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Records a new connection (`$connect`). An error means the handshake should be
    /// refused: a connection that cannot register is worse than none.
    pub async fn connect(
        &self,
        connection_id: &str,
        connected_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let connection = Connection {
            connection_id: connection_id.to_string(),
            connected_at: connected_at_ms.unwrap_or_else(|| now_ms() as i64),
            user_name: None,
        };
        self.store.add(connection).await
    }

    /// Forgets a connection that ended (`$disconnect`) and tells the others it left.
    /// Forgetting one that is already gone is not an error.
    pub async fn disconnect(&self, connection_id: &str) -> Result<(), StoreError> {
        if let Some(user) = self
            .store
            .remove(connection_id)
            .await?
            .and_then(|c| c.user())
        {
            let gone = self.announce(vec![user_exit(user)], None).await;
            self.remove_gone(gone).await;
        }
        Ok(())
    }

    /// Answers one client frame that arrived on `route`; `None` means no reply is due.
    pub async fn frame(
        &self,
        route: Route,
        connection_id: &str,
        frame: Frame<'_>,
    ) -> Option<ServerFrame> {
        if let Some(refusal) = self.limit(route, connection_id, frame).await {
            return Some(refusal);
        }
        let Frame::Text(text) = frame else {
            return Some(
                Refusal::new(
                    ErrorCode::BadJson,
                    "binary frames are not supported; send JSON text frames",
                )
                .to_frame(),
            );
        };
        let ValidFrame {
            request,
            request_id,
        } = match decode_client_frame(text) {
            Ok(frame) => frame,
            Err(refusal) => return Some(refusal.to_frame()),
        };
        // API Gateway chose the route from the frame; a frame the decoder reads
        // differently (on `$default` because of duplicate keys, say) changes nothing.
        if route != request.route() {
            return Some(
                unknown_action("frame has no usable \"action\"")
                    .with_request_id(request_id)
                    .to_frame(),
            );
        }
        let always_reply = matches!(request, Request::List);
        let outcome = match request {
            Request::Register { user_name } => self.register(connection_id, user_name).await,
            Request::List => self.list(connection_id).await,
            Request::Message { message, receivers } => {
                self.message(connection_id, message, receivers).await
            }
            Request::Ping => Ok(ServerEvent::Pong {}),
        };
        match outcome {
            // Without a requestId the original protocol stays silent on success.
            Ok(event) if request_id.is_some() || always_reply => {
                Some(ServerFrame { event, request_id })
            }
            Ok(_) => None,
            Err(refusal) => Some(ServerFrame {
                request_id,
                ..refusal.to_frame()
            }),
        }
    }

    /// The `rate_limited` error when the connection's bucket for `route` is empty. It
    /// comes before any other work of the frame, so a flood costs one store update per
    /// frame. A store that cannot be reached limits nothing: the frame then fails on its
    /// own store calls, or (`ping`) needs none.
    async fn limit(
        &self,
        route: Route,
        connection_id: &str,
        frame: Frame<'_>,
    ) -> Option<ServerFrame> {
        let bucket = Bucket::of(route)?;
        let now = self.clock.now();
        let admission = self
            .store
            .admit(connection_id, bucket, self.limits.of(bucket), now)
            .await;
        let retry_after = match admission {
            Ok(Admission::Limited { retry_after }) => retry_after,
            Ok(Admission::Allowed | Admission::Gone) => return None,
            Err(err) => {
                tracing::error!(connection_id, error = %err, "could not apply the rate limit; frame allowed");
                return None;
            }
        };
        // Debug, not info: a flood would otherwise write one log line per frame.
        tracing::debug!(connection_id, ?bucket, ?retry_after, "rate limited");
        // The error carries the frame's requestId, which takes reading the frame.
        let request_id = match frame {
            Frame::Text(text) => match decode_client_frame(text) {
                Ok(valid) => valid.request_id,
                Err(refusal) => refusal.request_id,
            },
            Frame::Binary => None,
        };
        Some(self.limits.refusal(bucket, retry_after, request_id))
    }

    async fn register(
        &self,
        connection_id: &str,
        user_name: String,
    ) -> Result<ServerEvent, Refusal> {
        let registration = match self.store.register(connection_id, &user_name).await {
            Ok(registration) => registration,
            Err(StoreError::NameTaken) => {
                return Err(Refusal::new(
                    ErrorCode::NameTaken,
                    format!("the name \"{user_name}\" is taken; choose another"),
                ))
            }
            Err(err) => return Err(internal(&err)),
        };
        if registration.previous.as_deref() != Some(user_name.as_str()) {
            let mut events = Vec::new();
            if let Some(old) = registration.previous {
                events.push(ServerEvent::UserExit {
                    user_name: old,
                    connection_id: connection_id.to_string(),
                });
            }
            events.push(ServerEvent::NewUser {
                user_name: user_name.clone(),
                connection_id: connection_id.to_string(),
            });
            let gone = self.announce(events, Some(connection_id)).await;
            self.remove_gone(gone).await;
        }
        Ok(ServerEvent::Registered {
            user_name,
            connection_id: connection_id.to_string(),
        })
    }

    async fn list(&self, connection_id: &str) -> Result<ServerEvent, Refusal> {
        let connections = self.store.registered().await.map_err(|e| internal(&e))?;
        let mut users: Vec<User> = connections
            .iter()
            .filter(|c| c.connection_id != connection_id)
            .filter_map(Connection::user)
            .collect();
        users.sort_by_key(|user| user.user_name.to_lowercase());
        Ok(ServerEvent::List { users })
    }

    async fn message(
        &self,
        connection_id: &str,
        message: String,
        receivers: Option<Vec<String>>,
    ) -> Result<ServerEvent, Refusal> {
        let sender = self
            .store
            .get(connection_id)
            .await
            .map_err(|e| internal(&e))?;
        let Some(sender_name) = sender.and_then(|c| c.user_name) else {
            return Err(Refusal::new(
                ErrorCode::NotRegistered,
                "register a userName before sending messages",
            ));
        };
        let private = receivers.is_some();
        let recipients = match receivers {
            None => self.store.registered().await,
            Some(ids) => {
                let ids: Vec<String> = ids.into_iter().filter(|id| id != connection_id).collect();
                self.store.get_many(&ids).await
            }
        }
        .map_err(|e| internal(&e))?;

        let timestamp = now_ms();
        let message_id = new_message_id(timestamp);
        let deliveries = recipients
            .into_iter()
            .filter(|c| c.connection_id != connection_id)
            .filter_map(|c| c.user())
            .map(|receiver| {
                let id = receiver.connection_id.clone();
                let frame = ServerFrame::push(ServerEvent::Message {
                    sender: sender_name.clone(),
                    sender_id: connection_id.to_string(),
                    receiver,
                    message: message.clone(),
                    message_id: message_id.clone(),
                    timestamp,
                    private,
                });
                (id, frame.to_json())
            })
            .collect();
        let outcome = fan_out(self.gateway, deliveries).await;
        self.remove_gone(outcome.gone).await;
        Ok(ServerEvent::Sent {
            message_id,
            timestamp,
            delivered: outcome.delivered,
        })
    }

    /// Tells every registered connection but `except` about `events`, in order, and
    /// returns the recipients API Gateway reported gone.
    async fn announce(&self, events: Vec<ServerEvent>, except: Option<&str>) -> Vec<String> {
        let recipients = match self.store.registered().await {
            Ok(connections) => connections,
            Err(err) => {
                tracing::error!(error = %err, "could not list connections to announce to");
                return Vec::new();
            }
        };
        let mut gone: Vec<String> = Vec::new();
        for event in events {
            let payload = ServerFrame::push(event).to_json();
            let deliveries = recipients
                .iter()
                .filter(|c| {
                    Some(c.connection_id.as_str()) != except && !gone.contains(&c.connection_id)
                })
                .map(|c| (c.connection_id.clone(), payload.clone()))
                .collect();
            let outcome = fan_out(self.gateway, deliveries).await;
            gone.extend(outcome.gone);
        }
        gone
    }

    /// Deletes connections API Gateway reported gone, frees their names and tells the
    /// others they left. Announcing can find more gone connections, so this repeats a
    /// bounded number of rounds.
    async fn remove_gone(&self, mut gone: Vec<String>) {
        for _ in 0..CLEANUP_ROUNDS {
            if gone.is_empty() {
                return;
            }
            let mut exits = Vec::new();
            for connection_id in gone.drain(..) {
                tracing::info!(
                    connection_id,
                    "removing a connection API Gateway reports gone"
                );
                match self.store.remove(&connection_id).await {
                    Ok(Some(connection)) => exits.extend(connection.user().map(user_exit)),
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(connection_id, error = %err, "could not remove a gone connection")
                    }
                }
            }
            if exits.is_empty() {
                return;
            }
            gone = self.announce(exits, None).await;
        }
    }
}

fn user_exit(user: User) -> ServerEvent {
    ServerEvent::UserExit {
        user_name: user.user_name,
        connection_id: user.connection_id,
    }
}
