//! Where connections and their names live. The chat logic sees only this trait, so the
//! same handlers run on DynamoDB (AWS, local gateway with `--dynamodb-endpoint`) and in
//! memory (local gateway default, unit tests).

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use std::future::Future;
use webchat_shared_types::User;

/// Rows outlive a lost `$disconnect` by at most this long: API Gateway closes every
/// connection after 2 hours, so a 3-hour TTL only ever removes dead rows.
pub const CONNECTION_TTL_SECS: i64 = 3 * 60 * 60;

/// One open WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    /// Milliseconds since the epoch, from API Gateway's `connectedAt`.
    pub connected_at: i64,
    pub user_name: Option<String>,
}

impl Connection {
    /// The connection as other users see it, when it has registered.
    pub fn user(&self) -> Option<User> {
        self.user_name.as_ref().map(|name| User {
            user_name: name.clone(),
            connection_id: self.connection_id.clone(),
        })
    }

    /// Epoch seconds after which the row may be expired by DynamoDB's TTL.
    pub fn expires_at(&self) -> i64 {
        self.connected_at.div_euclid(1000) + CONNECTION_TTL_SECS
    }
}

/// What a successful `register` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The name the connection had before, if any.
    pub previous: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the name is held by another live connection")]
    NameTaken,
    #[error("connection {0} is not open")]
    NoSuchConnection(String),
    #[error("connection store unavailable: {0}")]
    Unavailable(String),
}

/// The connection store. Name uniqueness (case-insensitive) must be enforced by the
/// store itself, atomically: handlers never read-then-write to check a name.
pub trait ConnectionStore: Send + Sync {
    /// Records a new connection (on `$connect`).
    fn add(&self, connection: Connection) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One connection, if it is open.
    fn get(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;

    /// The open connections among `ids` (at most 100), in no particular order.
    fn get_many(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Connection>, StoreError>> + Send;

    /// Names (or renames) a connection. Fails with `NameTaken` when another open
    /// connection holds the name in any letter case.
    fn register(
        &self,
        connection_id: &str,
        user_name: &str,
    ) -> impl Future<Output = Result<Registration, StoreError>> + Send;

    /// Forgets a connection and frees its name; returns it if it was there.
    /// Removing a connection that is already gone is not an error.
    fn remove(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;

    /// Every open connection that has registered a name.
    fn registered(&self) -> impl Future<Output = Result<Vec<Connection>, StoreError>> + Send;

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
}
