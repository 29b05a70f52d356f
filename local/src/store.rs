//! The store the local gateway runs the handlers on, chosen at start-up.

use webchat_backend::limits::Micros;
use webchat_backend::{
    Admission, Bucket, Connection, ConnectionStore, DynamoStore, MemoryStore, RateLimit,
    Registration, StoreError,
};

pub enum AnyStore {
    Memory(MemoryStore),
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

    async fn get_many(&self, ids: &[String]) -> Result<Vec<Connection>, StoreError> {
        delegate!(self, s => s.get_many(ids))
    }

    async fn register(
        &self,
        connection_id: &str,
        user_name: &str,
    ) -> Result<Registration, StoreError> {
        delegate!(self, s => s.register(connection_id, user_name))
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        delegate!(self, s => s.remove(connection_id))
    }

    async fn registered(&self) -> Result<Vec<Connection>, StoreError> {
        delegate!(self, s => s.registered())
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
}
