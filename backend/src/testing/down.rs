//! A store that is always down, for tests of how the chat behaves in an outage.

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::{
    Claim, Connection, ConnectionStore, ConversationNote, HistorySlice, HistoryStore, Joined,
    Person, Registration, StoreError, StoredMessage,
};
use webchat_shared_types::{Conversation, HistoryPage, User};

/// A store whose backend is down, as when DynamoDB is unreachable: every call fails.
pub struct DownStore;

impl ConnectionStore for DownStore {
    async fn add(&self, _: Connection) -> Result<(), StoreError> {
        Err(down())
    }
    async fn get(&self, _: &str) -> Result<Option<Connection>, StoreError> {
        Err(down())
    }
    async fn register(&self, _: &str, _: Claim<'_>) -> Result<Registration, StoreError> {
        Err(down())
    }
    async fn holder(&self, _: &str) -> Result<Option<String>, StoreError> {
        Err(down())
    }
    async fn person(&self, _: &str) -> Result<Option<Person>, StoreError> {
        Err(down())
    }
    async fn remove(&self, _: &str) -> Result<Option<Connection>, StoreError> {
        Err(down())
    }
    async fn join(&self, _: &str, _: &str, _: &str) -> Result<Joined, StoreError> {
        Err(down())
    }
    async fn leave(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn members(&self, _: &str) -> Result<Vec<User>, StoreError> {
        Err(down())
    }
    async fn members_among(&self, _: &str, _: &[String]) -> Result<Vec<User>, StoreError> {
        Err(down())
    }
    async fn admit(
        &self,
        _: &str,
        _: Bucket,
        _: RateLimit,
        _: Micros,
    ) -> Result<Admission, StoreError> {
        Err(down())
    }
}

impl HistoryStore for DownStore {
    async fn append(&self, _: &StoredMessage) -> Result<(), StoreError> {
        Err(down())
    }
    async fn history(
        &self,
        _: &str,
        _: &HistoryPage,
        _: usize,
        _: i64,
    ) -> Result<HistorySlice, StoreError> {
        Err(down())
    }
    async fn note_conversation(&self, _: ConversationNote<'_>) -> Result<(), StoreError> {
        Err(down())
    }
    async fn conversations(
        &self,
        _: &str,
        _: usize,
        _: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        Err(down())
    }
}

fn down() -> StoreError {
    StoreError::unavailable("every call", "connection refused")
}
