//! The chat itself: one method per route, as docs/protocol.md describes them.
//!
//! The rules speak of connections, frames and replies, not of any transport: the reply
//! to a frame is returned (API Gateway sends it back on two-way routes, see
//! [`crate::apigw`]), and everything for other connections goes through the gateway.
//!
//! This module reads a frame and sends it to its route's method; the routes live by
//! group: `register`, `rooms` (join, leave, list), `history` and `messages`.

use crate::delivery::fan_out;
use crate::delivery::{ConnectionGateway, Fanout};
use crate::limits::{Admission, Bucket, Clock, Limits, SystemClock};
use crate::store::{
    conversation_key, person_partition, Claim, Connection, ConnectionStore, ConversationNote,
    HistoryStore, Joined, Person, Registration, StoreError, StoredMessage,
};
use sha2::{Digest, Sha256};
use webchat_shared_types::{
    decode_client_frame, name_key, unknown_action, ErrorCode, HistoryPage, Refusal, Request, Route,
    ServerEvent, ServerFrame, User, ValidFrame, LOBBY, MAX_CONVERSATIONS, MAX_ROOMS_PER_CONNECTION,
};
use webchat_telemetry::metrics as m;
use webchat_telemetry::Causes;

mod history;
mod messages;
mod presence;
mod register;
mod rooms;

/// Gone connections found while announcing gone connections: stop after a few rounds.
const CLEANUP_ROUNDS: usize = 4;

/// One frame as a client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text frame, as the client sent it (JSON, if the client keeps to the protocol).
    Text(&'a str),
    /// The protocol is JSON text; a binary frame is only ever refused.
    Binary,
}

/// Conditional writes one message may take to get an id past its sender's last one
/// while other Lambdas handle the same sender.
const MESSAGE_ID_ATTEMPTS: usize = 4;

/// The newest message id this process gave: every id it gives is greater.
static LAST_MESSAGE_ID: std::sync::Mutex<ulid::Ulid> = std::sync::Mutex::new(ulid::Ulid::nil());

/// Makes `id` this process's newest, or the next after it when it is not newer.
fn advance_past(id: ulid::Ulid) -> ulid::Ulid {
    let mut last = LAST_MESSAGE_ID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let next = if id > *last {
        id
    } else {
        // The random part's 80 bits never run out within one millisecond in practice;
        // if they did, the id drawn is still unique.
        last.increment().unwrap_or(id)
    };
    *last = next;
    next
}

/// A ULID for `timestamp_ms`: sortable by time, unique without coordination between
/// Lambdas. Two drawn in one millisecond sort at random; messages take
/// [`next_message_id`].
pub fn new_message_id(timestamp_ms: u64) -> String {
    ulid::Ulid::from_parts(timestamp_ms, rand::random()).to_string()
}

/// A ULID for `timestamp_ms` greater than every id this process gave before (the next
/// after the newest, when that is not older), so one sender's messages sort as sent even
/// within one millisecond.
pub fn next_message_id(timestamp_ms: u64) -> String {
    advance_past(ulid::Ulid::from_parts(timestamp_ms, rand::random())).to_string()
}

fn not_registered(what: &str) -> Refusal {
    Refusal::new(
        ErrorCode::NotRegistered,
        format!("register a userName before {what}"),
    )
}

fn not_a_member(room: &str) -> Refusal {
    Refusal::new(
        ErrorCode::NotAMember,
        format!("this connection is not in room \"{room}\"; join it first"),
    )
}

/// The `message` event `receiver` gets for `message`, pushed or in history.
fn message_event(message: &StoredMessage, receiver: User, private: bool) -> ServerEvent {
    ServerEvent::Message {
        room: message.room.clone(),
        sender: message.sender.clone(),
        sender_id: message.sender_id.clone(),
        receiver,
        message: message.message.clone(),
        message_id: message.message_id.clone(),
        timestamp: message.timestamp,
        private,
        to: message.to.clone(),
    }
}

fn unknown_user(name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::UnknownUser,
        format!("no signed-in person goes by \"{name}\""),
    )
}

fn internal(err: &StoreError) -> Refusal {
    tracing::error!(error = %Causes(err), "connection store failed");
    Refusal::new(
        ErrorCode::Internal,
        "the chat service could not complete this request; try again shortly",
    )
}

/// Who a connection is, when sign-in is on: what the authorizer accepted on `$connect`
/// (API Gateway hands its context to every route of the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer's stable id of the person.
    pub sub: String,
    /// The name the person chats under, from the token.
    pub user_name: String,
}

/// The chat rules over one store and one gateway.
pub struct Rules<'a, S, G> {
    store: &'a S,
    gateway: &'a G,
    limits: Limits,
    clock: &'a dyn Clock,
    identity: Option<&'a Identity>,
    /// Where pushes to big rooms go; without it every room is pushed to inline.
    fanout: Option<Fanout<'a>>,
}

impl<'a, S: ConnectionStore + HistoryStore, G: ConnectionGateway> Rules<'a, S, G> {
    /// The rules with the default [`Limits`] on the system clock.
    pub fn new(store: &'a S, gateway: &'a G) -> Self {
        Rules {
            store,
            gateway,
            limits: Limits::DEFAULT,
            clock: &SystemClock,
            identity: None,
            fanout: None,
        }
    }

    /// Hands pushes to rooms above `fanout.inline_limit` members to its queue's workers.
    #[must_use]
    pub fn with_fanout(mut self, fanout: Option<Fanout<'a>>) -> Self {
        self.fanout = fanout;
        self
    }

    /// The frames come from a signed-in connection: its name is the identity's.
    #[must_use]
    pub fn with_identity(mut self, identity: Option<&'a Identity>) -> Self {
        self.identity = identity;
        self
    }

    /// Applies `limits` instead of [`Limits::DEFAULT`].
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Measures time (rate limits, message timestamps, history expiry) on `clock`
    /// instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: &'a dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> u64 {
        // Before 1970 only on a broken clock; such a clock reads as the epoch.
        u64::try_from(self.clock.now().div_euclid(1000)).unwrap_or(0)
    }

    fn now_secs(&self) -> i64 {
        self.clock.now().div_euclid(1_000_000).max(0)
    }

    /// An id for a message `sender_id` sends at `timestamp_ms` that is greater than any
    /// it sent before, whichever Lambda handled those (their clocks may differ, or agree
    /// to the millisecond): the sender's newest id is kept with its connection.
    async fn ordered_message_id(
        &self,
        sender_id: &str,
        timestamp_ms: u64,
    ) -> Result<String, Refusal> {
        let mut id = next_message_id(timestamp_ms);
        for _ in 0..MESSAGE_ID_ATTEMPTS {
            match self.store.record_message_id(sender_id, &id).await {
                Ok(None) => return Ok(id),
                Ok(Some(last)) => {
                    if let Ok(last) = last.parse::<ulid::Ulid>() {
                        id = advance_past(last).to_string();
                    }
                }
                Err(err) => return Err(internal(&err)),
            }
        }
        Err(internal(&StoreError::unavailable(
            "recording a message id",
            "the sender's newest message id kept changing",
        )))
    }

    /// A message `sender` sends now, to be stored: an id after every one it sent before.
    async fn new_stored_message(
        &self,
        room: String,
        sender: &Connection,
        message: String,
        to: Option<String>,
    ) -> Result<StoredMessage, Refusal> {
        let mut stored = self.new_message(room, sender, message, to);
        stored.message_id = self
            .ordered_message_id(&sender.connection_id, stored.timestamp)
            .await?;
        Ok(stored)
    }

    /// A message `sender` sends now: its id and time, and when it expires from history.
    fn new_message(
        &self,
        room: String,
        sender: &Connection,
        message: String,
        to: Option<String>,
    ) -> StoredMessage {
        let timestamp = self.now_ms();
        StoredMessage {
            room,
            message_id: next_message_id(timestamp),
            sender: sender.user_name.clone().unwrap_or_default(),
            sender_id: sender.connection_id.clone(),
            message,
            timestamp,
            // Milliseconds in a u64 are seconds well inside an i64.
            expires_at: i64::try_from(timestamp / 1000).unwrap_or(i64::MAX)
                + i64::from(self.limits.history_days) * 24 * 60 * 60,
            to,
        }
    }

    /// Records a new connection (`$connect`). An error means the handshake should be
    /// refused: a connection that cannot register is worse than none.
    pub async fn connect(
        &self,
        connection_id: &str,
        connected_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let connected_at =
            connected_at_ms.unwrap_or_else(|| i64::try_from(self.now_ms()).unwrap_or(i64::MAX));
        self.store
            .add(Connection::new(connection_id, connected_at))
            .await
    }

    /// Forgets a connection that ended (`$disconnect`) and tells each of its rooms it
    /// left. Forgetting one that is already gone is not an error.
    pub async fn disconnect(&self, connection_id: &str) -> Result<(), StoreError> {
        if let Some(connection) = self.store.remove(connection_id).await? {
            let gone = self.announce_exit(&connection).await;
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
        // v1 answered `list` even without a requestId; the v2 actions always answer.
        let always_reply = !matches!(
            request,
            Request::Register { .. }
                | Request::Message { .. }
                | Request::MessageTo { .. }
                | Request::Ping
        );
        let outcome = match request {
            Request::Register {
                user_name,
                resume_token,
            } => {
                self.register(connection_id, user_name, resume_token.as_deref())
                    .await
            }
            Request::List { room, cursor } => self.list(connection_id, room, cursor).await,
            Request::Message {
                room,
                message,
                receivers,
            } => self.message(connection_id, room, message, receivers).await,
            Request::MessageTo { to, message } => self.message_to(connection_id, to, message).await,
            Request::Ping => Ok(ServerEvent::Pong {}),
            Request::Join { room } => self.join(connection_id, room).await,
            Request::Leave { room } => self.leave(connection_id, room).await,
            Request::History { room, page, limit } => {
                self.history(connection_id, room, page, limit).await
            }
            Request::HistoryWith { with, page, limit } => {
                self.history_with(connection_id, with, page, limit).await
            }
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
                tracing::error!(connection_id, error = %Causes(&err), "could not apply the rate limit; frame allowed");
                return None;
            }
        };
        // Debug, not info: a flood would otherwise write one log line per frame.
        tracing::debug!(connection_id, ?bucket, ?retry_after, "rate limited");
        metrics::counter!(m::RATE_LIMITED, m::ROUTE => route.key()).increment(1);
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

    /// The connection, when it has registered; `what` names the refused action.
    async fn registered(&self, connection_id: &str, what: &str) -> Result<Connection, Refusal> {
        match self.store.get(connection_id).await {
            Ok(Some(connection)) if connection.user_name.is_some() => Ok(connection),
            Ok(_) => Err(not_registered(what)),
            Err(err) => Err(internal(&err)),
        }
    }

    /// Tells every member of `room` but `except` about `events`, in order, and returns
    /// the recipients API Gateway reported gone.
    async fn announce(
        &self,
        room: &str,
        events: Vec<ServerEvent>,
        except: Option<&str>,
    ) -> Vec<String> {
        let recipients = match self.store.members(room).await {
            Ok(members) => members,
            Err(err) => {
                tracing::error!(room, error = %Causes(&err), "could not list a room's members to announce to");
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

    /// Tells each room of a removed connection that it left; returns the recipients
    /// API Gateway reported gone.
    async fn announce_exit(&self, connection: &Connection) -> Vec<String> {
        let Some(user) = connection.user() else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        for room in &connection.rooms {
            gone.extend(
                self.announce_presence(room, vec![user_exit(room, user.clone())], None)
                    .await,
            );
        }
        gone
    }

    /// Deletes connections API Gateway reported gone, frees their names and tells their
    /// rooms they left. Announcing can find more gone connections, so this repeats a
    /// bounded number of rounds.
    async fn remove_gone(&self, mut gone: Vec<String>) {
        for _ in 0..CLEANUP_ROUNDS {
            if gone.is_empty() {
                return;
            }
            let mut removed = Vec::new();
            for connection_id in gone.drain(..) {
                tracing::info!(
                    connection_id,
                    "removing a connection API Gateway reports gone"
                );
                match self.store.remove(&connection_id).await {
                    Ok(Some(connection)) => {
                        metrics::counter!(m::STALE_CONNECTIONS).increment(1);
                        removed.push(connection);
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(connection_id, error = %Causes(&err), "could not remove a gone connection");
                    }
                }
            }
            for connection in removed {
                gone.extend(self.announce_exit(&connection).await);
            }
            gone.sort();
            gone.dedup();
        }
    }
}

fn user_exit(room: &str, user: User) -> ServerEvent {
    ServerEvent::UserExit {
        room: room.to_string(),
        user_name: user.user_name,
        connection_id: user.connection_id,
    }
}
