//! Where connections, their names, their rooms and the rooms' messages live. The chat
//! logic sees only these traits, so the same handlers run on DynamoDB (AWS, local gateway
//! with `--dynamodb-endpoint`) and in memory (local gateway default, unit tests).

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::Shard;
use sha2::{Digest, Sha256};
use std::future::Future;
use webchat_shared_types::{Conversation, HistoryPage, User};

/// Rows outlive a lost `$disconnect` by at most this long: API Gateway closes every
/// connection after 2 hours, so a 3-hour TTL only ever removes dead rows.
pub const CONNECTION_TTL_SECS: i64 = 3 * 60 * 60;

/// One open WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// API Gateway's id for it: what pushes address.
    pub connection_id: String,
    /// Milliseconds since the epoch, from API Gateway's `connectedAt`.
    pub connected_at: i64,
    /// Its registered name; `None` before `register`.
    pub user_name: Option<String>,
    /// The rooms it is in, sorted: none before `register`, the lobby from then on.
    pub rooms: Vec<String>,
    /// The signed-in person (`sub`) it registered as, with sign-in on: it is then also
    /// in that person's partition ([`person_partition`]), which is not a room.
    pub owner: Option<String>,
}

impl Connection {
    /// A connection that has just opened.
    pub fn new(connection_id: &str, connected_at: i64) -> Self {
        Connection {
            connection_id: connection_id.to_string(),
            connected_at,
            user_name: None,
            rooms: Vec::new(),
            owner: None,
        }
    }

    /// Every member partition it has a row in: its rooms, and its person's partition
    /// when it is signed in.
    pub fn partitions(&self) -> Vec<String> {
        let mut partitions = self.rooms.clone();
        partitions.extend(self.owner.as_deref().map(person_partition));
        partitions
    }

    /// The connection as other users see it, when it has registered.
    pub fn user(&self) -> Option<User> {
        self.user_name.as_ref().map(|name| User {
            user_name: name.clone(),
            connection_id: self.connection_id.clone(),
        })
    }

    /// Whether it is a member of `room`.
    pub fn is_in(&self, room: &str) -> bool {
        self.rooms.iter().any(|r| r == room)
    }

    /// Epoch seconds after which the row may be expired by DynamoDB's TTL.
    pub fn expires_at(&self) -> i64 {
        self.connected_at.div_euclid(1000) + CONNECTION_TTL_SECS
    }
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Each part length-prefixed: ("ab", "c") and ("a", "bc") hash apart.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The key a conversation between two people (`sub`s) is kept under, in place of a room:
/// `dm:` and the SHA-256 (hex) of both subs, sorted and length-prefixed. The same for
/// either order, different for any other pair, and never a room name (rooms have no
/// `:`). Clients see it as the `room` of the conversation's messages.
pub fn conversation_key(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("dm:{}", sha256_hex(&[first, second]))
}

/// The member partition holding every open connection of a signed-in person (`sub`):
/// written at `register`, removed with the connection like a room membership, but not
/// a room (no room has a `:`), so it counts toward no room limit and no `list` shows it.
pub fn person_partition(sub: &str) -> String {
    format!("person:{}", sha256_hex(&[sub]))
}

/// The partition holding a person's conversation index (see
/// [`HistoryStore::note_conversation`]).
pub fn conversations_partition(sub: &str) -> String {
    format!("conversations:{}", sha256_hex(&[sub]))
}

/// A signed-in person, as the name they own says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Their stable id from the identity provider.
    pub sub: String,
    /// Their name, spelled as they registered it.
    pub user_name: String,
}

/// One entry of a person's conversation index: the newest message with someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationNote<'a> {
    /// The person whose index it is.
    pub sub: &'a str,
    /// The conversation ([`conversation_key`]).
    pub conversation: &'a str,
    /// The other person's name (the person's own for notes to self).
    pub with: &'a str,
    /// The newest message of the conversation.
    pub message_id: &'a str,
    /// When the entry may expire: with the message it points at.
    pub expires_at: i64,
}

/// What `register` asks the store to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The name to register, as the client wrote it (trimmed).
    pub user_name: &'a str,
    /// The hash of the resume token this registration issues; it replaces the claim's.
    pub token_hash: &'a str,
    /// The hash of the resume token the client presented: when it is the claim's, the
    /// name is taken over from whichever connection holds it.
    pub resume_hash: Option<&'a str>,
    /// The signed-in identity (`sub`) registering, with sign-in on. A name claimed by an
    /// identity is bound to it: every connection of that identity shares it, no other
    /// identity or anonymous connection may take it, and it is never released.
    pub owner: Option<&'a str>,
}

/// What a successful `register` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The name the connection had before, if any.
    pub previous: Option<String>,
    /// The rooms the connection is in now, sorted (the lobby, and any taken over).
    pub rooms: Vec<String>,
    /// The connection the name was taken from with its resume token, as it was: it is
    /// gone from the store and its rooms are the new connection's.
    pub taken_over: Option<Connection>,
    /// A dead connection whose claim on the name had expired, as it was: it is gone from
    /// the store, and its rooms stay its own (they hear it leave).
    pub evicted: Option<Connection>,
}

/// What `join` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The connection is in the room now, and was not before: the room hears `newUser`.
    Added,
    /// The connection was in the room already.
    Already,
}

/// One stored message, of a room or of a conversation between two people. It travels
/// in fan-out jobs as JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    /// The room, or the conversation's key ([`conversation_key`]).
    pub room: String,
    /// A ULID: history is sorted by it.
    pub message_id: String,
    /// The sender's registered name then.
    pub sender: String,
    /// The sender's connection id.
    pub sender_id: String,
    /// The text, trimmed.
    pub message: String,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// Epoch seconds after which it may be expired (DynamoDB TTL); reads skip it after.
    pub expires_at: i64,
    /// In a conversation: the name of the person it was addressed to.
    pub to: Option<String>,
}

/// One page of a room's stored messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistorySlice {
    /// Oldest first.
    pub messages: Vec<StoredMessage>,
    /// Whether more messages follow in the direction asked for.
    pub more: bool,
}

impl HistorySlice {
    /// The page from what a store read for it: at most `limit + 1` rows in reading order
    /// (newest first, except for `After` pages); the extra row only says whether `more`
    /// follow.
    pub fn from_read(mut rows: Vec<StoredMessage>, limit: usize, page: &HistoryPage) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        if !matches!(page, HistoryPage::After(_)) {
            rows.reverse();
        }
        HistorySlice {
            messages: rows,
            more,
        }
    }
}

/// Why a store refused or failed; the rules turn each into the protocol's error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The name is held by another live connection, or bound to another person.
    #[error("the name is held by another live connection")]
    NameTaken,
    /// The connection has no row: closed, or never recorded.
    #[error("connection {0} is not open")]
    NoSuchConnection(String),
    /// A `join` beyond [`webchat_shared_types::MAX_ROOMS_PER_CONNECTION`] rooms.
    #[error("the connection is in as many rooms as it may be")]
    RoomLimit,
    /// The store could not do what was asked: it did not answer, refused, or kept
    /// racing other writers. Whether anything changed is not known.
    #[error("connection store unavailable: {operation} failed")]
    Unavailable {
        /// What was asked of the store.
        operation: String,
        /// The error underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// [`StoreError::Unavailable`]: `operation` failed because of `cause` (an error, or
    /// a sentence when nothing underneath failed).
    pub fn unavailable(
        operation: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Unavailable {
            operation: operation.into(),
            source: cause.into(),
        }
    }
}

/// The connection store. Name uniqueness (case-insensitive), the room limit and resume
/// tokens must be enforced by the store itself, atomically: handlers never
/// read-then-write to check them.
pub trait ConnectionStore: Send + Sync {
    /// Records a new connection (on `$connect`).
    fn add(&self, connection: Connection) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One connection, if it is open.
    fn get(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;

    /// Names (or renames) a connection and puts it in the lobby. Fails with `NameTaken`
    /// when another open connection holds the name in any letter case and the claim's
    /// resume token is not `claim.resume_hash`. On success the name's resume token is
    /// `claim.token_hash`. Rooms taken over keep their member rows under the new
    /// connection (at most [`webchat_shared_types::MAX_ROOMS_PER_CONNECTION`] in all).
    fn register(
        &self,
        connection_id: &str,
        claim: Claim<'_>,
    ) -> impl Future<Output = Result<Registration, StoreError>> + Send;

    /// The connection holding a name (any letter case), if it is claimed.
    fn holder(
        &self,
        user_name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The signed-in person who owns a name (any letter case); `None` when the name is
    /// free or held by an anonymous connection. One read of the name's claim.
    fn person(
        &self,
        user_name: &str,
    ) -> impl Future<Output = Result<Option<Person>, StoreError>> + Send;

    /// Forgets a connection, frees its name and takes it out of its rooms; returns it as
    /// it was, if it was there. Removing a connection that is already gone is not an error.
    fn remove(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;

    /// Puts a registered connection in a room. `RoomLimit` when it is in
    /// [`webchat_shared_types::MAX_ROOMS_PER_CONNECTION`] rooms already.
    fn join(
        &self,
        connection_id: &str,
        user_name: &str,
        room: &str,
    ) -> impl Future<Output = Result<Joined, StoreError>> + Send;

    /// Takes a connection out of a room; false when it was not in it.
    fn leave(
        &self,
        connection_id: &str,
        room: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every member of a room (read from the room alone, whatever else is open); also
    /// every open connection of a person, from their [`person_partition`].
    fn members(&self, room: &str) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;

    /// The members of a room among `ids` (at most 100), in no particular order.
    fn members_among(
        &self,
        room: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;

    /// The members of a room when it has at most `limit`, `None` when it has more: how
    /// the message route tells a room it pushes to itself from one it hands to the
    /// fan-out workers, without reading a big room whole.
    fn members_up_to(
        &self,
        room: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Option<Vec<User>>, StoreError>> + Send {
        async move {
            let members = self.members(room).await?;
            Ok((members.len() <= limit).then_some(members))
        }
    }

    /// The members of a room in one of its shards ([`Shard`]).
    fn shard_members(
        &self,
        room: &str,
        shard: Shard,
    ) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send {
        async move {
            let mut members = self.members(room).await?;
            members.retain(|member| shard.contains(&member.connection_id));
            Ok(members)
        }
    }

    /// Takes one frame arriving at `now` from the connection's `bucket` under `limit`
    /// ([`RateLimit::decide`]), atomically: concurrent calls for one connection (several
    /// Lambdas at once) never allow more than the limit. The bucket lives with the
    /// connection and goes with it.
    fn admit(
        &self,
        connection_id: &str,
        bucket: Bucket,
        limit: RateLimit,
        now: Micros,
    ) -> impl Future<Output = Result<Admission, StoreError>> + Send;

    /// How many connections are in `room`. The stores keep the count as members come
    /// and go, so it is one read whatever the room's size; this default counts them.
    fn member_count(&self, room: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move { Ok(self.members(room).await?.len() as u64) }
    }

    /// At most `limit` members of `room` after connection id `after` (from the first
    /// when `None`), in connection id order. The stores read only the page; this
    /// default reads the room.
    fn members_page(
        &self,
        room: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<MembersPage, StoreError>> + Send {
        async move {
            let mut users = self.members(room).await?;
            users.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
            users.retain(|user| after.is_none_or(|after| user.connection_id.as_str() > after));
            Ok(MembersPage::from_read(users, limit))
        }
    }

    /// Records that `room`'s member count `count` is pushed at `now_ms`, atomically,
    /// only if the last push was at or before `due_ms` and pushed another count: true
    /// when this caller is to push it, and concurrent callers never both get true. This
    /// default always says push.
    fn claim_count_push(
        &self,
        room: &str,
        count: u64,
        now_ms: i64,
        due_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (room, count, now_ms, due_ms);
        async { Ok(true) }
    }

    /// Records `message_id` as the newest id `connection_id` sent, atomically, if it is
    /// greater than the one recorded. `Ok(None)` when it was recorded (or the connection
    /// is gone); `Ok(Some(last))` when `last`, recorded already, is not smaller: the
    /// sender's next id must be greater. This default records nothing.
    fn record_message_id(
        &self,
        connection_id: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        let _ = (connection_id, message_id);
        async { Ok(None) }
    }
}

/// One page of a room's members, in the store's order (by connection id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MembersPage {
    /// At most the page size asked for.
    pub users: Vec<User>,
    /// The last connection id of this page, when another page follows: the next page
    /// starts after it.
    pub next: Option<String>,
}

impl MembersPage {
    /// The page from what a store read for it: at most `limit + 1` members in order; the
    /// extra one only says that another page follows.
    pub fn from_read(mut users: Vec<User>, limit: usize) -> Self {
        let more = users.len() > limit;
        users.truncate(limit);
        let next = if more {
            users.last().map(|user| user.connection_id.clone())
        } else {
            None
        };
        MembersPage { users, next }
    }
}

/// Where room and conversation messages are kept for `history`.
pub trait HistoryStore: Send + Sync {
    /// Keeps one message (before it is pushed, so history never lags a delivery).
    fn append(
        &self,
        message: &StoredMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// At most `limit` messages of `room` that have not expired by `now_secs`: the newest,
    /// or the ones just before or just after a message id, as `page` says.
    fn history(
        &self,
        room: &str,
        page: &HistoryPage,
        limit: usize,
        now_secs: i64,
    ) -> impl Future<Output = Result<HistorySlice, StoreError>> + Send;

    /// Records in `note.sub`'s conversation index that the conversation's newest message
    /// is `note.message_id`, unless a newer one is recorded already.
    fn note_conversation(
        &self,
        note: ConversationNote<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A person's conversations not expired by `now_secs`, newest first, at most `limit`.
    fn conversations(
        &self,
        sub: &str,
        limit: usize,
        now_secs: i64,
    ) -> impl Future<Output = Result<Vec<Conversation>, StoreError>> + Send;
}
