//! The in-memory store: one process, one lock, so every operation is atomic.

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::{
    person_partition, Claim, Connection, ConnectionStore, ConversationNote, HistorySlice,
    HistoryStore, Joined, MembersPage, Person, Registration, StoreError, StoredMessage,
};
use crate::store::{shards::shard_hash, Shard};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use webchat_shared_types::{
    name_key, Conversation, HistoryPage, User, LOBBY, MAX_ROOMS_PER_CONNECTION,
};

/// The stores in one process's memory: for `webchat-local` and tests. Nothing outlives
/// the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Boxed: a store is passed and kept by value (beside the DynamoDB store, in one
    /// enum, in `webchat-local`), and its maps need not move with it.
    inner: Mutex<Box<Inner>>,
}

/// Who holds a name, and the hash of the resume token that may take it over.
#[derive(Debug)]
struct NameClaim {
    connection_id: String,
    /// The name as it was claimed.
    user_name: String,
    token_hash: String,
    /// The identity the name is bound to (see [`Claim::owner`]).
    owner: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    connections: HashMap<String, Connection>,
    /// Lower-cased name → its claim.
    names: HashMap<String, NameClaim>,
    /// Room (or person partition) → its members' connection ids → their names.
    rooms: HashMap<String, BTreeMap<String, String>>,
    /// Room → its members by [`shard_hash`], so a shard is one range of it.
    shards: HashMap<String, BTreeSet<(u32, String)>>,
    /// Room → message id → message; ULIDs sort by time.
    history: HashMap<String, BTreeMap<String, StoredMessage>>,
    /// Each open connection's bucket state (see [`crate::limits`]).
    buckets: HashMap<String, HashMap<Bucket, Micros>>,
    /// Person (`sub`) → conversation key → (other's name, newest message id, expiry).
    conversations: HashMap<String, HashMap<String, (String, String, i64)>>,
    /// Room → when its member count was last pushed (ms) and which count.
    count_pushes: HashMap<String, (i64, u64)>,
    /// Connection → the newest message id it sent.
    last_message_ids: HashMap<String, String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Box<Inner>> {
        // A panic while holding the lock cannot leave the maps half-updated (each
        // operation mutates after all its checks), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn add_member(&mut self, room: &str, connection_id: &str, user_name: &str) {
        self.rooms
            .entry(room.to_string())
            .or_default()
            .insert(connection_id.to_string(), user_name.to_string());
        self.shards
            .entry(room.to_string())
            .or_default()
            .insert((shard_hash(connection_id), connection_id.to_string()));
    }

    fn remove_member(&mut self, room: &str, connection_id: &str) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(connection_id);
            if members.is_empty() {
                self.rooms.remove(room);
                self.count_pushes.remove(room);
            }
        }
        if let Some(shards) = self.shards.get_mut(room) {
            shards.remove(&(shard_hash(connection_id), connection_id.to_string()));
            if shards.is_empty() {
                self.shards.remove(room);
            }
        }
    }

    /// Removes a connection, its name claim (if it still holds it) and its memberships.
    fn remove(&mut self, connection_id: &str) -> Option<Connection> {
        let removed = self.connections.remove(connection_id)?;
        self.buckets.remove(connection_id);
        self.last_message_ids.remove(connection_id);
        if let Some(name) = &removed.user_name {
            let key = name_key(name);
            // A name bound to an identity stays bound when its connections end.
            if self
                .names
                .get(&key)
                .is_some_and(|claim| claim.connection_id == connection_id && claim.owner.is_none())
            {
                self.names.remove(&key);
            }
        }
        for partition in removed.partitions() {
            self.remove_member(&partition, connection_id);
        }
        Some(removed)
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

    async fn register(
        &self,
        connection_id: &str,
        claim: Claim<'_>,
    ) -> Result<Registration, StoreError> {
        let mut inner = self.lock();
        let Some(me) = inner.connections.get(connection_id).cloned() else {
            return Err(StoreError::NoSuchConnection(connection_id.to_string()));
        };
        let key = name_key(claim.user_name);
        let holder = match inner.names.get(&key) {
            // Another connection of the same identity: both keep the name.
            Some(held) if held.owner.is_some() && held.owner.as_deref() == claim.owner => None,
            Some(held) if held.owner.is_some() => return Err(StoreError::NameTaken),
            Some(held) if held.connection_id != connection_id => {
                if Some(held.token_hash.as_str()) != claim.resume_hash {
                    return Err(StoreError::NameTaken);
                }
                Some(held.connection_id.clone())
            }
            _ => None,
        };
        let taken_over = holder.and_then(|id| inner.remove(&id));
        if let Some(old) = &me.user_name {
            let old_key = name_key(old);
            if old_key != key
                && inner
                    .names
                    .get(&old_key)
                    .is_some_and(|held| held.connection_id == connection_id && held.owner.is_none())
            {
                inner.names.remove(&old_key);
            }
        }
        inner.names.insert(
            key,
            NameClaim {
                connection_id: connection_id.to_string(),
                user_name: claim.user_name.to_string(),
                token_hash: claim.token_hash.to_string(),
                owner: claim.owner.map(str::to_string),
            },
        );
        let mut rooms = me.rooms.clone();
        let inherited = taken_over.iter().flat_map(|old| old.rooms.iter());
        for room in std::iter::once(&LOBBY.to_string()).chain(inherited) {
            if !rooms.contains(room) && rooms.len() < MAX_ROOMS_PER_CONNECTION {
                rooms.push(room.clone());
            }
        }
        rooms.sort();
        let owner = claim.owner.map(str::to_string).or(me.owner.clone());
        let person = owner.as_deref().map(person_partition);
        for partition in rooms.iter().chain(person.as_ref()) {
            inner.add_member(partition, connection_id, claim.user_name);
        }
        if let Some(connection) = inner.connections.get_mut(connection_id) {
            connection.user_name = Some(claim.user_name.to_string());
            connection.rooms.clone_from(&rooms);
            connection.owner = owner;
        }
        Ok(Registration {
            previous: me.user_name,
            rooms,
            taken_over,
            evicted: None,
        })
    }

    async fn holder(&self, user_name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .names
            .get(&name_key(user_name))
            .map(|claim| claim.connection_id.clone()))
    }

    async fn person(&self, user_name: &str) -> Result<Option<Person>, StoreError> {
        Ok(self
            .lock()
            .names
            .get(&name_key(user_name))
            .and_then(|claim| {
                Some(Person {
                    sub: claim.owner.clone()?,
                    user_name: claim.user_name.clone(),
                })
            }))
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.lock().remove(connection_id))
    }

    async fn join(
        &self,
        connection_id: &str,
        user_name: &str,
        room: &str,
    ) -> Result<Joined, StoreError> {
        let mut inner = self.lock();
        let Some(connection) = inner.connections.get_mut(connection_id) else {
            return Err(StoreError::NoSuchConnection(connection_id.to_string()));
        };
        if connection.is_in(room) {
            return Ok(Joined::Already);
        }
        if connection.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            return Err(StoreError::RoomLimit);
        }
        connection.rooms.push(room.to_string());
        connection.rooms.sort();
        inner.add_member(room, connection_id, user_name);
        Ok(Joined::Added)
    }

    async fn leave(&self, connection_id: &str, room: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(connection) = inner.connections.get_mut(connection_id) else {
            return Ok(false);
        };
        let before = connection.rooms.len();
        connection.rooms.retain(|r| r != room);
        let was_in = connection.rooms.len() != before;
        inner.remove_member(room, connection_id);
        Ok(was_in)
    }

    async fn members(&self, room: &str) -> Result<Vec<User>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .rooms
            .get(room)
            .into_iter()
            .flatten()
            .map(|(id, name)| User {
                user_name: name.clone(),
                connection_id: id.clone(),
            })
            .collect())
    }

    async fn members_among(&self, room: &str, ids: &[String]) -> Result<Vec<User>, StoreError> {
        let inner = self.lock();
        let Some(members) = inner.rooms.get(room) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| {
                members.get(id).map(|name| User {
                    user_name: name.clone(),
                    connection_id: id.clone(),
                })
            })
            .collect())
    }

    async fn members_up_to(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Option<Vec<User>>, StoreError> {
        let inner = self.lock();
        let members = inner.rooms.get(room);
        if members.is_some_and(|members| members.len() > limit) {
            return Ok(None);
        }
        Ok(Some(
            members
                .into_iter()
                .flatten()
                .map(|(id, name)| User {
                    user_name: name.clone(),
                    connection_id: id.clone(),
                })
                .collect(),
        ))
    }

    async fn shard_members(&self, room: &str, shard: Shard) -> Result<Vec<User>, StoreError> {
        let inner = self.lock();
        let (Some(members), Some(shards)) = (inner.rooms.get(room), inner.shards.get(room)) else {
            return Ok(Vec::new());
        };
        let (low, high) = shard.hash_range();
        let range = (low, String::new())..=(high, char::MAX.to_string());
        Ok(shards
            .range(range)
            .filter_map(|(_, id)| {
                members.get(id).map(|name| User {
                    user_name: name.clone(),
                    connection_id: id.clone(),
                })
            })
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

    async fn member_count(&self, room: &str) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .rooms
            .get(room)
            .map_or(0, |members| members.len() as u64))
    }

    async fn members_page(
        &self,
        room: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MembersPage, StoreError> {
        let inner = self.lock();
        let Some(members) = inner.rooms.get(room) else {
            return Ok(MembersPage::default());
        };
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.to_string()),
            None => std::ops::Bound::Unbounded,
        };
        let read = members
            .range((start, std::ops::Bound::Unbounded))
            .take(limit.saturating_add(1))
            .map(|(id, name)| User {
                user_name: name.clone(),
                connection_id: id.clone(),
            })
            .collect();
        Ok(MembersPage::from_read(read, limit))
    }

    async fn claim_count_push(
        &self,
        room: &str,
        count: u64,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let last = inner.count_pushes.get(room).copied();
        if last.is_some_and(|(at, pushed)| at > due_ms || pushed == count) {
            return Ok(false);
        }
        inner.count_pushes.insert(room.to_string(), (now_ms, count));
        Ok(true)
    }

    async fn record_message_id(
        &self,
        connection_id: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut inner = self.lock();
        if !inner.connections.contains_key(connection_id) {
            return Ok(None);
        }
        match inner.last_message_ids.get(connection_id) {
            Some(last) if last.as_str() >= message_id => Ok(Some(last.clone())),
            _ => {
                inner
                    .last_message_ids
                    .insert(connection_id.to_string(), message_id.to_string());
                Ok(None)
            }
        }
    }
}

impl HistoryStore for MemoryStore {
    async fn append(&self, message: &StoredMessage) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let room = inner.history.entry(message.room.clone()).or_default();
        // What DynamoDB's TTL does for the table: expired messages go, so a long-running
        // webchat-local keeps only the history it still serves. Ids sort by time, and
        // expiry follows time, so the expired ones are the first.
        while room.first_key_value().is_some_and(|(_, oldest)| {
            i128::from(oldest.expires_at) < i128::from(message.timestamp / 1000)
        }) {
            room.pop_first();
        }
        room.insert(message.message_id.clone(), message.clone());
        Ok(())
    }

    async fn history(
        &self,
        room: &str,
        page: &HistoryPage,
        limit: usize,
        now_secs: i64,
    ) -> Result<HistorySlice, StoreError> {
        let inner = self.lock();
        let Some(messages) = inner.history.get(room) else {
            return Ok(HistorySlice::default());
        };
        let live = |m: &&StoredMessage| m.expires_at >= now_secs;
        // One more than asked says whether another page follows.
        let read: Vec<StoredMessage> = match page {
            HistoryPage::After(id) => {
                let after = (
                    std::ops::Bound::Excluded(id.clone()),
                    std::ops::Bound::Unbounded,
                );
                messages
                    .range(after)
                    .map(|(_, m)| m)
                    .filter(live)
                    .take(limit.saturating_add(1))
                    .cloned()
                    .collect()
            }
            HistoryPage::Latest | HistoryPage::Before(_) => {
                let upper = match page {
                    HistoryPage::Before(id) => std::ops::Bound::Excluded(id.clone()),
                    _ => std::ops::Bound::Unbounded,
                };
                messages
                    .range((std::ops::Bound::Unbounded, upper))
                    .rev()
                    .map(|(_, m)| m)
                    .filter(live)
                    .take(limit.saturating_add(1))
                    .cloned()
                    .collect()
            }
        };
        Ok(HistorySlice::from_read(read, limit, page))
    }

    async fn note_conversation(&self, note: ConversationNote<'_>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let entry = inner
            .conversations
            .entry(note.sub.to_string())
            .or_default()
            .entry(note.conversation.to_string())
            .or_insert_with(|| (String::new(), String::new(), 0));
        if entry.1.as_str() < note.message_id {
            *entry = (
                note.with.to_string(),
                note.message_id.to_string(),
                note.expires_at,
            );
        }
        Ok(())
    }

    async fn conversations(
        &self,
        sub: &str,
        limit: usize,
        now_secs: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        let inner = self.lock();
        let mut found: Vec<Conversation> = inner
            .conversations
            .get(sub)
            .into_iter()
            .flatten()
            .filter(|(_, (_, _, expires_at))| *expires_at >= now_secs)
            .map(|(_, (with, last, _))| Conversation {
                with: with.clone(),
                last_message_id: last.clone(),
            })
            .collect();
        found.sort_by(|a, b| b.last_message_id.cmp(&a.last_message_id));
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, timestamp_secs: u64, expires_at: i64) -> StoredMessage {
        StoredMessage {
            room: "lobby".into(),
            message_id: id.into(),
            sender: "ana".into(),
            sender_id: "A".into(),
            message: "hi".into(),
            timestamp: timestamp_secs * 1000,
            expires_at,
            to: None,
        }
    }

    #[tokio::test]
    async fn expired_history_is_freed_as_new_messages_come_not_kept_forever() {
        let store = MemoryStore::new();
        store.append(&message("01A", 0, 100)).await.unwrap();
        store.append(&message("01B", 50, 150)).await.unwrap();
        // At 120 s the first has expired: it goes, the second stays.
        store.append(&message("01C", 120, 220)).await.unwrap();
        let kept: Vec<String> = store.lock().history["lobby"].keys().cloned().collect();
        assert_eq!(kept, ["01B", "01C"]);
    }
}
