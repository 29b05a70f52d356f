//! The chat itself: one method per route, as docs/protocol.md describes them.
//!
//! The rules speak of connections, frames and replies, not of any transport: the reply
//! to a frame is returned (API Gateway sends it back on two-way routes, see
//! [`crate::apigw`]), and everything for other connections goes through the gateway.

use crate::delivery::fan_out;
use crate::delivery::ConnectionGateway;
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

/// Gone connections found while announcing gone connections: stop after a few rounds.
const CLEANUP_ROUNDS: usize = 4;

/// One frame as a client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Text(&'a str),
    /// The protocol is JSON text; a binary frame is only ever refused.
    Binary,
}

/// A ULID: sortable by time, unique without coordination between Lambdas.
pub fn new_message_id(timestamp_ms: u64) -> String {
    ulid::Ulid::from_parts(timestamp_ms, rand::random()).to_string()
}

/// A resume token: 128 random bits, as 32 hex digits. Only its hash is stored, so a
/// copy of the table does not let anyone take names over.
fn new_resume_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    tracing::error!(error = %err, "connection store failed");
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
pub struct Chat<'a, S, G> {
    store: &'a S,
    gateway: &'a G,
    limits: Limits,
    clock: &'a dyn Clock,
    identity: Option<&'a Identity>,
}

impl<'a, S: ConnectionStore + HistoryStore, G: ConnectionGateway> Chat<'a, S, G> {
    /// The rules with the default [`Limits`] on the system clock.
    pub fn new(store: &'a S, gateway: &'a G) -> Self {
        Chat {
            store,
            gateway,
            limits: Limits::DEFAULT,
            clock: &SystemClock,
            identity: None,
        }
    }

    /// The frames come from a signed-in connection: its name is the identity's.
    pub fn with_identity(mut self, identity: Option<&'a Identity>) -> Self {
        self.identity = identity;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Measures time (rate limits, message timestamps, history expiry) on `clock`
    /// instead of the system clock.
    pub fn with_clock(mut self, clock: &'a dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> u64 {
        self.clock.now().div_euclid(1000).max(0) as u64
    }

    fn now_secs(&self) -> i64 {
        (self.now_ms() / 1000) as i64
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
            message_id: new_message_id(timestamp),
            sender: sender.user_name.clone().unwrap_or_default(),
            sender_id: sender.connection_id.clone(),
            message,
            timestamp,
            expires_at: (timestamp / 1000) as i64
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
        let connected_at = connected_at_ms.unwrap_or_else(|| self.now_ms() as i64);
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
            Request::List { room } => self.list(connection_id, room).await,
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
                tracing::error!(connection_id, error = %err, "could not apply the rate limit; frame allowed");
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

    async fn register(
        &self,
        connection_id: &str,
        user_name: String,
        resume_token: Option<&str>,
    ) -> Result<ServerEvent, Refusal> {
        let user_name = match self.identity {
            None => user_name,
            // Signed in: the name is the identity's, in the letter case the issuer gave.
            Some(identity) if name_key(&identity.user_name) == name_key(&user_name) => {
                identity.user_name.clone()
            }
            Some(identity) => {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!(
                        "this connection is signed in as \"{}\" and can only register that name",
                        identity.user_name
                    ),
                ))
            }
        };
        let token = new_resume_token();
        let token_hash = hash_token(&token);
        let resume_hash = resume_token.map(hash_token);
        let claim = Claim {
            user_name: &user_name,
            token_hash: &token_hash,
            resume_hash: resume_hash.as_deref(),
            owner: self.identity.map(|identity| identity.sub.as_str()),
        };
        let registration = match self.store.register(connection_id, claim).await {
            Err(StoreError::NameTaken) if self.free_if_ghost(connection_id, &user_name).await => {
                self.store.register(connection_id, claim).await
            }
            other => other,
        };
        let registration = match registration {
            Ok(registration) => registration,
            Err(StoreError::NameTaken) => {
                return Err(Refusal::new(
                    ErrorCode::NameTaken,
                    format!("the name \"{user_name}\" is taken; choose another"),
                ))
            }
            Err(err) => return Err(internal(&err)),
        };
        if let Some(dead) = &registration.evicted {
            let gone = self.announce_exit(dead).await;
            self.remove_gone(gone).await;
        }
        self.announce_registration(connection_id, &user_name, &registration)
            .await;
        if let Some(old) = &registration.taken_over {
            // The old socket may still be open (a page that lost its network); the name
            // and rooms are no longer its. Its `$disconnect` then finds nothing to announce.
            if let Err(err) = self.gateway.delete(&old.connection_id).await {
                tracing::warn!(connection_id = %old.connection_id, error = %err, "could not close a connection whose name was taken over");
            }
        }
        // Read after the connection joined its person's partition: a message stored
        // after this read is pushed to it, one stored before is listed here.
        let conversations = match self.identity {
            Some(identity) => Some(
                self.store
                    .conversations(&identity.sub, MAX_CONVERSATIONS, self.now_secs())
                    .await
                    .map_err(|e| internal(&e))?,
            ),
            None => None,
        };
        Ok(ServerEvent::Registered {
            user_name,
            connection_id: connection_id.to_string(),
            resume_token: Some(token),
            conversations,
        })
    }

    /// When the name's holder is a connection API Gateway reports gone (its
    /// `$disconnect` was lost), removes it and says the name may be claimed again.
    async fn free_if_ghost(&self, connection_id: &str, user_name: &str) -> bool {
        let holder = match self.store.holder(user_name).await {
            Ok(Some(holder)) if holder != connection_id => holder,
            Ok(_) => return false,
            Err(err) => {
                tracing::error!(error = %err, "could not read who holds a name");
                return false;
            }
        };
        match self.gateway.is_open(&holder).await {
            Ok(false) => {
                tracing::info!(connection_id = %holder, "a name's holder is gone; freeing the name");
                self.remove_gone(vec![holder]).await;
                true
            }
            Ok(true) => false,
            Err(err) => {
                tracing::warn!(connection_id = %holder, error = %err, "could not check whether a name's holder is open");
                false
            }
        }
    }

    /// Tells each room of a connection that registered what changed there: a connection
    /// taken over left it, the old name left it, the new name arrived.
    async fn announce_registration(
        &self,
        connection_id: &str,
        user_name: &str,
        registration: &Registration,
    ) {
        let renamed = registration.previous.as_deref() != Some(user_name);
        let old = registration.taken_over.as_ref();
        for room in &registration.rooms {
            let inherited = old.is_some_and(|old| old.is_in(room));
            let mut events = Vec::new();
            if let Some(old) = old.filter(|_| inherited) {
                events.extend(old.user().map(|user| user_exit(room, user)));
            }
            if let Some(previous) = registration.previous.as_ref().filter(|_| renamed) {
                // Rooms that came only with the takeover never saw the old name.
                if !inherited || room == LOBBY {
                    events.push(user_exit(
                        room,
                        User {
                            user_name: previous.clone(),
                            connection_id: connection_id.to_string(),
                        },
                    ));
                }
            }
            if renamed || inherited {
                events.push(ServerEvent::NewUser {
                    room: room.clone(),
                    user_name: user_name.to_string(),
                    connection_id: connection_id.to_string(),
                });
            }
            if !events.is_empty() {
                let gone = self.announce(room, events, Some(connection_id)).await;
                self.remove_gone(gone).await;
            }
        }
    }

    /// The connection, when it has registered; `what` names the refused action.
    async fn registered(&self, connection_id: &str, what: &str) -> Result<Connection, Refusal> {
        match self.store.get(connection_id).await {
            Ok(Some(connection)) if connection.user_name.is_some() => Ok(connection),
            Ok(_) => Err(not_registered(what)),
            Err(err) => Err(internal(&err)),
        }
    }

    async fn list(&self, connection_id: &str, room: String) -> Result<ServerEvent, Refusal> {
        // The lobby's list is v1's `list`, answered for any connection.
        if room != LOBBY {
            let connection = self
                .store
                .get(connection_id)
                .await
                .map_err(|e| internal(&e))?;
            if !connection.is_some_and(|c| c.is_in(&room)) {
                return Err(not_a_member(&room));
            }
        }
        let users = self.others_in(&room, connection_id).await?;
        Ok(ServerEvent::List { room, users })
    }

    /// The members of a room but one, sorted by name as people read them.
    async fn others_in(&self, room: &str, connection_id: &str) -> Result<Vec<User>, Refusal> {
        let mut users: Vec<User> = self
            .store
            .members(room)
            .await
            .map_err(|e| internal(&e))?
            .into_iter()
            .filter(|user| user.connection_id != connection_id)
            .collect();
        users.sort_by_key(|user| user.user_name.to_lowercase());
        Ok(users)
    }

    async fn join(&self, connection_id: &str, room: String) -> Result<ServerEvent, Refusal> {
        let connection = self.registered(connection_id, "joining rooms").await?;
        let user_name = connection.user_name.clone().unwrap_or_default();
        let joined = match self.store.join(connection_id, &user_name, &room).await {
            Ok(joined) => joined,
            Err(StoreError::RoomLimit) => {
                return Err(Refusal::new(
                    ErrorCode::LimitReached,
                    format!(
                        "a connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms, the lobby included; leave one first"
                    ),
                ))
            }
            Err(StoreError::NoSuchConnection(_)) => return Err(not_registered("joining rooms")),
            Err(err) => return Err(internal(&err)),
        };
        if joined == Joined::Added {
            let event = ServerEvent::NewUser {
                room: room.clone(),
                user_name,
                connection_id: connection_id.to_string(),
            };
            let gone = self.announce(&room, vec![event], Some(connection_id)).await;
            self.remove_gone(gone).await;
        }
        let users = self.others_in(&room, connection_id).await?;
        Ok(ServerEvent::Joined { room, users })
    }

    async fn leave(&self, connection_id: &str, room: String) -> Result<ServerEvent, Refusal> {
        let connection = self.registered(connection_id, "leaving rooms").await?;
        if !self
            .store
            .leave(connection_id, &room)
            .await
            .map_err(|e| internal(&e))?
        {
            return Err(not_a_member(&room));
        }
        if let Some(user) = connection.user() {
            let gone = self
                .announce(&room, vec![user_exit(&room, user)], None)
                .await;
            self.remove_gone(gone).await;
        }
        Ok(ServerEvent::Left { room })
    }

    async fn history(
        &self,
        connection_id: &str,
        room: String,
        page: HistoryPage,
        limit: usize,
    ) -> Result<ServerEvent, Refusal> {
        let connection = self.registered(connection_id, "reading history").await?;
        if !connection.is_in(&room) {
            return Err(not_a_member(&room));
        }
        let (messages, more) = self.stored_page(&connection, &room, &page, limit).await?;
        Ok(ServerEvent::History {
            room,
            with: None,
            messages,
            more,
        })
    }

    /// One page of a room's or a conversation's stored messages, as the `message` events
    /// `connection` got or would have got; and whether more follow.
    async fn stored_page(
        &self,
        connection: &Connection,
        room: &str,
        page: &HistoryPage,
        limit: usize,
    ) -> Result<(Vec<ServerEvent>, bool), Refusal> {
        let slice = self
            .store
            .history(room, page, limit, self.now_secs())
            .await
            .map_err(|e| internal(&e))?;
        metrics::counter!(m::HISTORY_PAGES).increment(1);
        let receiver = connection.user();
        let messages = slice
            .messages
            .into_iter()
            .filter_map(|stored| {
                Some(message_event(
                    &stored,
                    receiver.clone()?,
                    stored.to.is_some(),
                ))
            })
            .collect();
        Ok((messages, slice.more))
    }

    /// The signed-in person sending a frame about a conversation, and the other person,
    /// named by `name`: `forbidden` for an anonymous connection, `not_registered` before
    /// `register`, `unknown_user` for a name no signed-in person owns.
    async fn conversation_partners(
        &self,
        connection_id: &str,
        name: &str,
        what: &str,
    ) -> Result<(&'a Identity, Connection, Person), Refusal> {
        let Some(identity) = self.identity else {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("{what} needs a signed-in connection"),
            ));
        };
        let connection = self.registered(connection_id, what).await?;
        let person = self
            .store
            .person(name)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| unknown_user(name))?;
        Ok((identity, connection, person))
    }

    /// `history {with}`: the asking person's conversation with `with`, paged as a room's.
    async fn history_with(
        &self,
        connection_id: &str,
        with: String,
        page: HistoryPage,
        limit: usize,
    ) -> Result<ServerEvent, Refusal> {
        let (me, connection, other) = self
            .conversation_partners(connection_id, &with, "reading a conversation")
            .await?;
        let room = conversation_key(&me.sub, &other.sub);
        let (messages, more) = self.stored_page(&connection, &room, &page, limit).await?;
        Ok(ServerEvent::History {
            room,
            with: Some(other.user_name),
            messages,
            more,
        })
    }

    /// `message {to}`: kept in the pair's conversation and noted in both people's
    /// conversation indexes, then pushed to every open connection of the addressed
    /// person and every other one of the sender.
    async fn message_to(
        &self,
        connection_id: &str,
        to: String,
        message: String,
    ) -> Result<ServerEvent, Refusal> {
        let (me, sender, other) = self
            .conversation_partners(connection_id, &to, "sending a message to a person")
            .await?;
        let stored = self.new_message(
            conversation_key(&me.sub, &other.sub),
            &sender,
            message,
            Some(other.user_name.clone()),
        );
        self.store.append(&stored).await.map_err(|e| internal(&e))?;
        metrics::counter!(m::MESSAGES_STORED).increment(1);
        let note = |sub, with| ConversationNote {
            sub,
            conversation: &stored.room,
            with,
            message_id: &stored.message_id,
            expires_at: stored.expires_at,
        };
        let mut notes = vec![note(&me.sub, &other.user_name)];
        if other.sub != me.sub {
            notes.push(note(&other.sub, &stored.sender));
        }
        for note in notes {
            self.store
                .note_conversation(note)
                .await
                .map_err(|e| internal(&e))?;
        }

        // A connection is one person's, so the two partitions never share one.
        let mut recipients = self
            .store
            .members(&person_partition(&other.sub))
            .await
            .map_err(|e| internal(&e))?;
        if other.sub != me.sub {
            recipients.extend(
                self.store
                    .members(&person_partition(&me.sub))
                    .await
                    .map_err(|e| internal(&e))?,
            );
        }
        Ok(self.deliver(&stored, true, recipients).await)
    }

    async fn message(
        &self,
        connection_id: &str,
        room: String,
        message: String,
        receivers: Option<Vec<String>>,
    ) -> Result<ServerEvent, Refusal> {
        let sender = self.registered(connection_id, "sending messages").await?;
        if !sender.is_in(&room) {
            return Err(not_a_member(&room));
        }
        let private = receivers.is_some();
        let sent = self.new_message(room, &sender, message, None);
        let recipients = match receivers {
            None => {
                // Stored before any push, so whoever gets the push (or reconnects
                // while it is under way) finds it in history.
                self.store.append(&sent).await.map_err(|e| internal(&e))?;
                metrics::counter!(m::MESSAGES_STORED).increment(1);
                self.store.members(&sent.room).await
            }
            Some(ids) => {
                let ids: Vec<String> = ids.into_iter().filter(|id| id != connection_id).collect();
                self.store.members_among(&sent.room, &ids).await
            }
        }
        .map_err(|e| internal(&e))?;
        Ok(self.deliver(&sent, private, recipients).await)
    }

    /// Pushes `message` to each of `recipients` but its sender, and answers the sender
    /// with what was delivered.
    async fn deliver(
        &self,
        message: &StoredMessage,
        private: bool,
        recipients: Vec<User>,
    ) -> ServerEvent {
        let deliveries = recipients
            .into_iter()
            .filter(|receiver| receiver.connection_id != message.sender_id)
            .map(|receiver| {
                let id = receiver.connection_id.clone();
                (
                    id,
                    ServerFrame::push(message_event(message, receiver, private)).to_json(),
                )
            })
            .collect();
        let outcome = fan_out(self.gateway, deliveries).await;
        self.remove_gone(outcome.gone).await;
        ServerEvent::Sent {
            message_id: message.message_id.clone(),
            timestamp: message.timestamp,
            delivered: outcome.delivered,
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
                tracing::error!(room, error = %err, "could not list a room's members to announce to");
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
                self.announce(room, vec![user_exit(room, user.clone())], None)
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
                        removed.push(connection)
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(connection_id, error = %err, "could not remove a gone connection")
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
