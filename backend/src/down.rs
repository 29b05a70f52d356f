//! A connection store that is always down, for tests of how the chat behaves in an outage.

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::{Connection, ConnectionStore, Registration, StoreError};

/// A store whose backend is down, as when DynamoDB is unreachable: every call fails.
pub struct DownStore;

impl ConnectionStore for DownStore {
    async fn add(&self, _: Connection) -> Result<(), StoreError> {
        Err(down())
    }
    async fn get(&self, _: &str) -> Result<Option<Connection>, StoreError> {
        Err(down())
    }
    async fn get_many(&self, _: &[String]) -> Result<Vec<Connection>, StoreError> {
        Err(down())
    }
    async fn register(&self, _: &str, _: &str) -> Result<Registration, StoreError> {
        Err(down())
    }
    async fn remove(&self, _: &str) -> Result<Option<Connection>, StoreError> {
        Err(down())
    }
    async fn registered(&self) -> Result<Vec<Connection>, StoreError> {
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

fn down() -> StoreError {
    StoreError::Unavailable("connection refused".into())
}
