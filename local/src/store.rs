//! The store the local gateway runs the handlers on, chosen at start-up.

use webchat_backend::limits::Micros;
use webchat_backend::{
    Admission, Bucket, Claim, Connection, ConnectionStore, ConversationNote, DynamoStore,
    HistorySlice, HistoryStore, Joined, MembersPage, MemoryStore, Person, RateLimit, Registration,
    Shard, StoreError, StoredMessage,
};
use webchat_shared_types::{Conversation, HistoryPage, User};

/// The store chosen at start: in memory, or DynamoDB at `--dynamodb-endpoint`.
pub enum AnyStore {
    /// Everything in this process; gone when it stops (boxed: its maps make it several
    /// times the size of the DynamoDB client).
    Memory(Box<MemoryStore>),
    /// The same tables the Lambdas use.
    Dynamo(DynamoStore),
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($store) => $call.await,
            AnyStore::Dynamo($store) => $call.await,
        }
    };
}

impl ConnectionStore for AnyStore {
    async fn add(&self, connection: Connection) -> Result<(), StoreError> {
        delegate!(self, s => s.add(connection))
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        delegate!(self, s => s.get(connection_id))
    }

    async fn register(
        &self,
        connection_id: &str,
        claim: Claim<'_>,
    ) -> Result<Registration, StoreError> {
        delegate!(self, s => s.register(connection_id, claim))
    }

    async fn holder(&self, user_name: &str) -> Result<Option<String>, StoreError> {
        delegate!(self, s => s.holder(user_name))
    }

    async fn person(&self, user_name: &str) -> Result<Option<Person>, StoreError> {
        delegate!(self, s => s.person(user_name))
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        delegate!(self, s => s.remove(connection_id))
    }

    async fn join(
        &self,
        connection_id: &str,
        user_name: &str,
        room: &str,
    ) -> Result<Joined, StoreError> {
        delegate!(self, s => s.join(connection_id, user_name, room))
    }

    async fn leave(&self, connection_id: &str, room: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.leave(connection_id, room))
    }

    async fn members(&self, room: &str) -> Result<Vec<User>, StoreError> {
        delegate!(self, s => s.members(room))
    }

    async fn members_among(&self, room: &str, ids: &[String]) -> Result<Vec<User>, StoreError> {
        delegate!(self, s => s.members_among(room, ids))
    }

    async fn members_up_to(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Option<Vec<User>>, StoreError> {
        delegate!(self, s => s.members_up_to(room, limit))
    }

    async fn shard_members(&self, room: &str, shard: Shard) -> Result<Vec<User>, StoreError> {
        delegate!(self, s => s.shard_members(room, shard))
    }

    async fn admit(
        &self,
        connection_id: &str,
        bucket: Bucket,
        limit: RateLimit,
        now: Micros,
    ) -> Result<Admission, StoreError> {
        delegate!(self, s => s.admit(connection_id, bucket, limit, now))
    }

    async fn member_count(&self, room: &str) -> Result<u64, StoreError> {
        delegate!(self, s => s.member_count(room))
    }

    async fn members_page(
        &self,
        room: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MembersPage, StoreError> {
        delegate!(self, s => s.members_page(room, after, limit))
    }

    async fn claim_count_push(
        &self,
        room: &str,
        count: u64,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.claim_count_push(room, count, now_ms, due_ms))
    }

    async fn record_message_id(
        &self,
        connection_id: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        delegate!(self, s => s.record_message_id(connection_id, message_id))
    }
}

impl HistoryStore for AnyStore {
    async fn append(&self, message: &StoredMessage) -> Result<(), StoreError> {
        delegate!(self, s => s.append(message))
    }

    async fn history(
        &self,
        room: &str,
        page: &HistoryPage,
        limit: usize,
        now_secs: i64,
    ) -> Result<HistorySlice, StoreError> {
        delegate!(self, s => s.history(room, page, limit, now_secs))
    }

    async fn note_conversation(&self, note: ConversationNote<'_>) -> Result<(), StoreError> {
        delegate!(self, s => s.note_conversation(note))
    }

    async fn conversations(
        &self,
        sub: &str,
        limit: usize,
        now_secs: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        delegate!(self, s => s.conversations(sub, limit, now_secs))
    }
}
