//! The in-memory connection store: one process, one lock, so every operation is atomic.

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::{Connection, ConnectionStore, Registration, StoreError};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use webchat_shared_types::name_key;

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    connections: HashMap<String, Connection>,
    /// Lower-cased name → the connection holding it.
    names: HashMap<String, String>,
    /// Each open connection's bucket state (see [`crate::limits`]).
    buckets: HashMap<String, HashMap<Bucket, Micros>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated (each
        // operation mutates after all its checks), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ConnectionStore for MemoryStore {
    async fn add(&self, connection: Connection) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = connection.connection_id.clone();
        inner.buckets.remove(&id);
        inner.connections.insert(id, connection);
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.lock().connections.get(connection_id).cloned())
    }

    async fn get_many(&self, ids: &[String]) -> Result<Vec<Connection>, StoreError> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| inner.connections.get(id).cloned())
            .collect())
    }

    async fn register(
        &self,
        connection_id: &str,
        user_name: &str,
    ) -> Result<Registration, StoreError> {
        let mut inner = self.lock();
        let Some(previous) = inner
            .connections
            .get(connection_id)
            .map(|c| c.user_name.clone())
        else {
            return Err(StoreError::NoSuchConnection(connection_id.to_string()));
        };
        let key = name_key(user_name);
        if inner
            .names
            .get(&key)
            .is_some_and(|holder| holder != connection_id)
        {
            return Err(StoreError::NameTaken);
        }
        if let Some(old) = &previous {
            inner.names.remove(&name_key(old));
        }
        inner.names.insert(key, connection_id.to_string());
        if let Some(connection) = inner.connections.get_mut(connection_id) {
            connection.user_name = Some(user_name.to_string());
        }
        Ok(Registration { previous })
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let mut inner = self.lock();
        let removed = inner.connections.remove(connection_id);
        inner.buckets.remove(connection_id);
        if let Some(name) = removed.as_ref().and_then(|c| c.user_name.as_ref()) {
            let key = name_key(name);
            if inner
                .names
                .get(&key)
                .is_some_and(|holder| holder == connection_id)
            {
                inner.names.remove(&key);
            }
        }
        Ok(removed)
    }

    async fn registered(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(self
            .lock()
            .connections
            .values()
            .filter(|c| c.user_name.is_some())
            .cloned()
            .collect())
    }

    async fn admit(
        &self,
        connection_id: &str,
        bucket: Bucket,
        limit: RateLimit,
        now: Micros,
    ) -> Result<Admission, StoreError> {
        let mut inner = self.lock();
        if !inner.connections.contains_key(connection_id) {
            return Ok(Admission::Gone);
        }
        let buckets = inner.buckets.entry(connection_id.to_string()).or_default();
        Ok(match limit.decide(buckets.get(&bucket).copied(), now) {
            Ok(tat) => {
                buckets.insert(bucket, tat);
                Admission::Allowed
            }
            Err(retry_after) => Admission::Limited { retry_after },
        })
    }
}
