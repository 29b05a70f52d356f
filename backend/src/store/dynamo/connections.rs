//! Connections, names and room memberships: the [`ConnectionStore`] on DynamoDB.

use super::items::{
    connection_from_item, count, is_expired, member_from_item, member_key, number, rooms_of,
    string, string_of, string_set, to_item, Item, MemberRow, CONNECTED_AT, CONNECTION_ID, NAME_KEY,
    OWNER, TOKEN_HASH, TTL, USER_NAME, WRITE_ID,
};
use super::shards::{shard_item, shard_key};
use super::{conditional, now_secs, unavailable, DynamoStore, BATCH_ATTEMPTS};
use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::{
    person_partition, Claim, Connection, ConnectionStore, Joined, MembersPage, Person,
    Registration, Shard, StoreError,
};
use aws_sdk_dynamodb::types::{
    DeleteRequest, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
use std::time::Duration;
use webchat_shared_types::{name_key, User, LOBBY, MAX_ROOMS_PER_CONNECTION};
use webchat_telemetry::Causes;

/// Conditional updates of the `rooms` set one `register` may take while concurrent
/// `join`s and `leave`s change it.
const REGISTER_ATTEMPTS: usize = 5;
/// `BatchGetItem`'s own limit, which is also the protocol's receiver limit.
const BATCH_GET_LIMIT: usize = 100;

impl DynamoStore {
    /// Releases a name if (and only if) `connection_id` still holds it.
    async fn release_name(&self, user_name: &str, connection_id: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.tables.names)
            .key(NAME_KEY, string(&name_key(user_name)))
            // A name bound to an identity stays bound when its connections end.
            .condition_expression("connectionId = :me AND attribute_not_exists(#owner)")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":me", string(connection_id))
            .send()
            .await;
        conditional("DeleteItem (name)", released)?;
        Ok(())
    }

    /// Writes a connection's member row in each of `rooms` (also the way a rename
    /// reaches every room), then deletes those the connection's row no longer lists.
    ///
    /// Member rows follow the `rooms` set and are written after it, so a `leave` or
    /// `remove` running meanwhile may delete them first; re-reading the row after writing
    /// finds such orphans. Each write carries its own `writeId` and an orphan is deleted
    /// only if the row is still that write's: a `join` that put the room back meanwhile
    /// keeps its member row.
    async fn write_members(
        &self,
        connection: &Connection,
        user_name: &str,
        rooms: &[String],
    ) -> Result<(), StoreError> {
        let write_id = format!("{:016x}", rand::random::<u64>());
        let mut requests = Vec::with_capacity(rooms.len());
        for room in rooms {
            let item = to_item(&MemberRow {
                room: room.clone(),
                connection_id: connection.connection_id.clone(),
                user_name: user_name.to_string(),
                ttl: connection.expires_at(),
                write_id: Some(write_id.clone()),
            })
            .map_err(|e| unavailable("BatchWriteItem (members)", e))?;
            let shard = shard_item(
                room,
                &connection.connection_id,
                user_name,
                connection.expires_at(),
                Some(&write_id),
            )
            .transpose()
            .map_err(|e| unavailable("BatchWriteItem (members)", e))?;
            for item in std::iter::once(item).chain(shard) {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| unavailable("BatchWriteItem (members)", e))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
        }
        self.batch_write(&self.tables.members, requests).await?;

        let now_in = self
            .get(&connection.connection_id)
            .await?
            .map(|c| c.partitions())
            .unwrap_or_default();
        for room in rooms.iter().filter(|room| !now_in.contains(room)) {
            let keys = std::iter::once(member_key(room, &connection.connection_id))
                .chain(shard_key(room, &connection.connection_id));
            for key in keys {
                let deleted = self
                    .client
                    .delete_item()
                    .table_name(&self.tables.members)
                    .set_key(Some(key))
                    .condition_expression("writeId = :mine")
                    .expression_attribute_values(":mine", string(&write_id))
                    .send()
                    .await;
                conditional("DeleteItem (member)", deleted)?;
            }
        }
        Ok(())
    }

    /// Deletes a connection's member row in `room` after a `leave`, unless the room is in
    /// its `rooms` set again. The member row is read first and deleted only if no write
    /// replaced it since: a `join` that puts the room back writes its own row after its
    /// update of the set, and that row must stay (its own check deletes it if the room
    /// goes again).
    async fn drop_member_unless_in(
        &self,
        connection_id: &str,
        room: &str,
    ) -> Result<(), StoreError> {
        let member = self
            .client
            .get_item()
            .table_name(&self.tables.members)
            .set_key(Some(member_key(room, connection_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (member)", e))?;
        let Some(member) = member.item() else {
            return Ok(());
        };
        if self
            .get(connection_id)
            .await?
            .is_some_and(|c| c.is_in(room))
        {
            return Ok(());
        }
        // The shard row was put by the same write as the member row, with its writeId.
        let keys =
            std::iter::once(member_key(room, connection_id)).chain(shard_key(room, connection_id));
        for key in keys {
            let delete = self
                .client
                .delete_item()
                .table_name(&self.tables.members)
                .set_key(Some(key));
            let delete = match string_of(member, WRITE_ID) {
                Some(write_id) => delete
                    .condition_expression("writeId = :seen")
                    .expression_attribute_values(":seen", string(&write_id)),
                None => delete.condition_expression("attribute_not_exists(writeId)"),
            };
            conditional("DeleteItem (member)", delete.send().await)?;
        }
        Ok(())
    }

    async fn delete_members(
        &self,
        connection_id: &str,
        rooms: &[String],
    ) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(rooms.len());
        for room in rooms {
            let keys = std::iter::once(member_key(room, connection_id))
                .chain(shard_key(room, connection_id));
            for key in keys {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| unavailable("BatchWriteItem (members)", e))?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
        }
        self.batch_write(&self.tables.members, requests).await
    }

    /// Removes the connection a name was just taken from: its row (only if it still goes
    /// by that name) and its member rows. Its name is the new holder's already.
    async fn take_over(
        &self,
        connection_id: &str,
        user_name: &str,
    ) -> Result<Option<Connection>, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, string(connection_id))
            .condition_expression("userName = :name")
            .expression_attribute_values(":name", string(user_name))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        // Refused: gone, or it has another name now, so there is nothing to take over.
        let old = conditional("DeleteItem (connection taken over)", deleted)?
            .and_then(|output| output.attributes().and_then(connection_from_item));
        if let Some(old) = &old {
            self.delete_members(&old.connection_id, &old.partitions())
                .await?;
            self.count_members(&old.rooms, -1).await;
        }
        Ok(old)
    }

    /// The name claim, when the connection may have it: free, its own, expired with its
    /// connection, or `claim.resume_hash` is its token. Returns the claim as it was.
    async fn claim_name(
        &self,
        connection: &Connection,
        claim: &Claim<'_>,
    ) -> Result<Option<Item>, StoreError> {
        // An unowned claim goes to its holder, to a resume token, or once it expired; an
        // owned one (sign-in) only ever to its owner's connections.
        let mut unowned = "connectionId = :me OR #ttl < :now".to_string();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.names)
            .item(NAME_KEY, string(&name_key(claim.user_name)))
            .item(USER_NAME, string(claim.user_name))
            .item(CONNECTION_ID, string(&connection.connection_id))
            .item(TOKEN_HASH, string(claim.token_hash))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":me", string(&connection.connection_id))
            .expression_attribute_values(":now", number(now_secs()))
            .return_values(ReturnValue::AllOld);
        // A name bound to an identity never expires: it is that person's.
        put = match claim.owner {
            Some(owner) => put.item(OWNER, string(owner)),
            None => put.item(TTL, number(connection.expires_at())),
        };
        if let Some(resume) = claim.resume_hash {
            unowned.push_str(" OR tokenHash = :resume");
            put = put.expression_attribute_values(":resume", string(resume));
        }
        let mut condition = format!(
            "attribute_not_exists(nameKey) OR (attribute_not_exists(#owner) AND ({unowned}))"
        );
        if let Some(owner) = claim.owner {
            condition.push_str(" OR #owner = :owner");
            put = put.expression_attribute_values(":owner", string(owner));
        }
        conditional(
            "PutItem (name)",
            put.condition_expression(condition).send().await,
        )?
        .map(|output| output.attributes)
        .ok_or(StoreError::NameTaken)
    }

    /// Names the connection (and, signed in, its person: `owner`) and adds the lobby and
    /// `inherited` to its rooms (at most [`MAX_ROOMS_PER_CONNECTION`] in all),
    /// conditioned on the set having the size it was read with, so a concurrent `join`
    /// cannot take it over the limit. Returns the row as it was before and the rooms it
    /// is in now.
    async fn point_at_name(
        &self,
        mut me: Connection,
        user_name: &str,
        owner: Option<&str>,
        inherited: &[String],
    ) -> Result<(Connection, Vec<String>), StoreError> {
        for _ in 0..REGISTER_ATTEMPTS {
            let mut added: Vec<String> = Vec::new();
            for room in std::iter::once(LOBBY).chain(inherited.iter().map(String::as_str)) {
                if !me.is_in(room)
                    && !added.iter().any(|r| r == room)
                    && me.rooms.len() + added.len() < MAX_ROOMS_PER_CONNECTION
                {
                    added.push(room.to_string());
                }
            }
            let mut request = self
                .client
                .update_item()
                .table_name(&self.tables.connections)
                .key(CONNECTION_ID, string(&me.connection_id))
                .expression_attribute_values(":name", string(user_name))
                .return_values(ReturnValue::AllOld);
            let mut set = "SET userName = :name".to_string();
            if let Some(owner) = owner {
                set.push_str(", #owner = :owner");
                request = request
                    .expression_attribute_names("#owner", OWNER)
                    .expression_attribute_values(":owner", string(owner));
            }
            request = if added.is_empty() {
                request.update_expression(set)
            } else {
                request
                    .update_expression(format!("{set} ADD rooms :added"))
                    .expression_attribute_values(":added", string_set(&added))
            };
            request = if me.rooms.is_empty() {
                request.condition_expression(
                    "attribute_exists(connectionId) AND attribute_not_exists(rooms)",
                )
            } else {
                request
                    .condition_expression("attribute_exists(connectionId) AND size(rooms) = :n")
                    .expression_attribute_values(":n", count(me.rooms.len()))
            };
            match conditional("UpdateItem (connection)", request.send().await)? {
                Some(output) => {
                    let before = output
                        .attributes()
                        .and_then(connection_from_item)
                        .unwrap_or(me);
                    let mut rooms = before.rooms.clone();
                    rooms.extend(added.into_iter().filter(|r| !before.is_in(r)));
                    rooms.sort();
                    return Ok((before, rooms));
                }
                None => {
                    // Closed, or its rooms changed since they were read: read them again.
                    me = self
                        .get(&me.connection_id)
                        .await?
                        .ok_or_else(|| StoreError::NoSuchConnection(me.connection_id.clone()))?;
                }
            }
        }
        Err(unavailable(
            "UpdateItem (connection)",
            format!(
                "the rooms of connection {} kept changing during {REGISTER_ATTEMPTS} conditional updates",
                me.connection_id
            ),
        ))
    }
}

impl ConnectionStore for DynamoStore {
    async fn add(&self, connection: Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .item(CONNECTION_ID, string(&connection.connection_id))
            .item(CONNECTED_AT, number(connection.connected_at))
            .item(TTL, number(connection.expires_at()))
            .send()
            .await
            .map_err(|e| unavailable("PutItem (connection)", e))?;
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, string(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (connection)", e))?;
        let now = now_secs();
        Ok(output
            .item()
            .filter(|item| !is_expired(item, now))
            .and_then(connection_from_item))
    }

    /// The name is claimed first, with one conditional put on `Names` that returns the
    /// claim it replaced (`ALL_OLD`): DynamoDB alone decides who gets a name, and since
    /// every claim writes a new `tokenHash`, of two registrations with one token exactly
    /// one wins. A claim taken from another connection takes that connection's row and
    /// member rows away, and its rooms come to this one. Then the connection's row is
    /// pointed at the name, its member rows (re)written with it, and the old name released.
    async fn register(
        &self,
        connection_id: &str,
        claim: Claim<'_>,
    ) -> Result<Registration, StoreError> {
        let me = self
            .get(connection_id)
            .await?
            .ok_or_else(|| StoreError::NoSuchConnection(connection_id.to_string()))?;
        let key = name_key(claim.user_name);
        let replaced = self.claim_name(&me, &claim).await?;

        // Another connection of the same identity keeps the name too: nothing is taken.
        let shared = claim.owner.is_some()
            && replaced
                .as_ref()
                .and_then(|old| string_of(old, OWNER))
                .as_deref()
                == claim.owner;
        let holder = replaced
            .as_ref()
            .and_then(|old| Some((string_of(old, CONNECTION_ID)?, string_of(old, USER_NAME)?)))
            .filter(|(holder, _)| holder != connection_id && !shared);
        let removed = match holder {
            Some((holder, held_as)) => self.take_over(&holder, &held_as).await?,
            None => None,
        };
        // Only the holder's own token hands its rooms on; a claim taken because it had
        // expired leaves a dead connection, which is removed, not inherited.
        let resumed = replaced
            .as_ref()
            .and_then(|old| string_of(old, TOKEN_HASH))
            .is_some_and(|held| Some(held.as_str()) == claim.resume_hash);
        let (taken_over, evicted) = if resumed {
            (removed, None)
        } else {
            (None, removed)
        };
        let inherited = taken_over
            .as_ref()
            .map(|old| old.rooms.clone())
            .unwrap_or_default();

        let pointed = self
            .point_at_name(me, claim.user_name, claim.owner, &inherited)
            .await;
        let (before, rooms) = match pointed {
            Ok(pointed) => pointed,
            Err(err) => {
                // Closed meanwhile (or unreachable): the claim must not outlive it.
                if let Err(release) = self.release_name(claim.user_name, connection_id).await {
                    tracing::warn!(connection_id, error = %Causes(&release), "could not release a name claimed for a connection that closed");
                }
                return Err(err);
            }
        };
        // A signed-in connection is also one of its person's connections.
        let partitions: Vec<String> = rooms
            .iter()
            .cloned()
            .chain(claim.owner.map(person_partition))
            .collect();
        self.write_members(&before, claim.user_name, &partitions)
            .await?;
        let arrived: Vec<String> = rooms
            .iter()
            .filter(|room| !before.is_in(room))
            .cloned()
            .collect();
        self.count_members(&arrived, 1).await;

        if let Some(old) = before
            .user_name
            .as_deref()
            .filter(|old| name_key(old) != key)
        {
            self.release_name(old, connection_id).await?;
        }
        Ok(Registration {
            previous: before.user_name,
            rooms,
            taken_over,
            evicted,
        })
    }

    async fn holder(&self, user_name: &str) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.names)
            .key(NAME_KEY, string(&name_key(user_name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (name)", e))?;
        Ok(output
            .item()
            .and_then(|item| string_of(item, CONNECTION_ID)))
    }

    async fn person(&self, user_name: &str) -> Result<Option<Person>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.names)
            .key(NAME_KEY, string(&name_key(user_name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (name)", e))?;
        Ok(output.item().and_then(|item| {
            Some(Person {
                sub: string_of(item, OWNER)?,
                user_name: string_of(item, USER_NAME)?,
            })
        }))
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, string(connection_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem (connection)", e))?;
        let Some(removed) = output.attributes().and_then(connection_from_item) else {
            return Ok(None);
        };
        if let Some(name) = removed.user_name.as_deref() {
            self.release_name(name, connection_id).await?;
        }
        self.delete_members(connection_id, &removed.partitions())
            .await?;
        self.count_members(&removed.rooms, -1).await;
        Ok(Some(removed))
    }

    /// One conditional `ADD` to the row's `rooms` set: it holds when the connection is
    /// open and the room is in the set already or the set has room for one more, so
    /// DynamoDB enforces the limit however many joins race. The set as it was says
    /// whether the room was new; then the member row is written.
    async fn join(
        &self,
        connection_id: &str,
        user_name: &str,
        room: &str,
    ) -> Result<Joined, StoreError> {
        let added = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, string(connection_id))
            .update_expression("ADD rooms :rooms")
            .condition_expression(
                "attribute_exists(connectionId) AND (attribute_not_exists(rooms) \
                 OR contains(rooms, :room) OR size(rooms) < :max)",
            )
            .expression_attribute_values(":rooms", string_set(&[room.to_string()]))
            .expression_attribute_values(":room", string(room))
            .expression_attribute_values(":max", count(MAX_ROOMS_PER_CONNECTION))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let (connection, joined) = match conditional("UpdateItem (join)", added)? {
            Some(output) => {
                let before = output
                    .attributes()
                    .and_then(connection_from_item)
                    .ok_or_else(|| StoreError::NoSuchConnection(connection_id.to_string()))?;
                let joined = if before.is_in(room) {
                    Joined::Already
                } else {
                    Joined::Added
                };
                (before, joined)
            }
            // Refused: closed, or at the limit (read only to tell which).
            None => {
                return match self.get(connection_id).await? {
                    None => Err(StoreError::NoSuchConnection(connection_id.to_string())),
                    Some(_) => Err(StoreError::RoomLimit),
                };
            }
        };
        // Written also when it was in already: that heals a join that stopped between
        // its two writes.
        let rooms = [room.to_string()];
        self.write_members(&connection, user_name, &rooms).await?;
        if joined == Joined::Added {
            self.count_members(&rooms, 1).await;
        }
        Ok(joined)
    }

    /// `DELETE` from the row's `rooms` set; the set as it was says whether the room was in
    /// it. Then the member row goes, unless a `join` has put the room back meanwhile
    /// (`drop_member_unless_in`).
    async fn leave(&self, connection_id: &str, room: &str) -> Result<bool, StoreError> {
        let removed = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, string(connection_id))
            .update_expression("DELETE rooms :rooms")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_values(":rooms", string_set(&[room.to_string()]))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        if let Some(output) = conditional("UpdateItem (leave)", removed)? {
            let was_in = output
                .attributes()
                .is_some_and(|before| rooms_of(before).iter().any(|r| r == room));
            if was_in {
                self.drop_member_unless_in(connection_id, room).await?;
                self.count_members(&[room.to_string()], -1).await;
            }
            Ok(was_in)
        } else {
            // No row: no join can add it back, so any member row left is an orphan.
            self.delete_members(connection_id, &[room.to_string()])
                .await?;
            Ok(false)
        }
    }

    /// A paginated Query of the room's partition of `Members`: it reads the room's
    /// members and nothing else, whatever else is open.
    async fn members(&self, room: &str) -> Result<Vec<User>, StoreError> {
        self.live_items(
            self.query_members_partition(room),
            "Query (members)",
            now_secs(),
            member_from_item,
        )
        .await
    }

    async fn members_among(&self, room: &str, ids: &[String]) -> Result<Vec<User>, StoreError> {
        let now = now_secs();
        // BatchGetItem refuses a request that names one key twice.
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let mut found = Vec::new();
        for chunk in unique.chunks(BATCH_GET_LIMIT) {
            let mut pending: Vec<Item> = chunk.iter().map(|id| member_key(room, id)).collect();
            let mut backoff = Duration::from_millis(20);
            // BatchGetItem may return part of the keys as unprocessed under load; ask again.
            for _attempt in 0..BATCH_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let keys = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| unavailable("BatchGetItem", e))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.tables.members, keys)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", e))?;
                if let Some(items) = output.responses().and_then(|r| r.get(&self.tables.members)) {
                    found.extend(
                        items
                            .iter()
                            .filter(|item| !is_expired(item, now))
                            .filter_map(member_from_item),
                    );
                }
                if let Some(unprocessed) = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.tables.members))
                {
                    pending = unprocessed.keys().to_vec();
                    if !pending.is_empty() {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
            if !pending.is_empty() {
                return Err(unavailable(
                    "BatchGetItem",
                    format!("keys left unprocessed after {BATCH_ATTEMPTS} attempts"),
                ));
            }
        }
        Ok(found)
    }

    async fn members_up_to(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Option<Vec<User>>, StoreError> {
        self.members_if_at_most(room, limit).await
    }

    async fn shard_members(&self, room: &str, shard: Shard) -> Result<Vec<User>, StoreError> {
        self.query_shard(room, shard).await
    }

    /// See [`DynamoStore::admit_frame`].
    async fn admit(
        &self,
        connection_id: &str,
        bucket: Bucket,
        limit: RateLimit,
        now: Micros,
    ) -> Result<Admission, StoreError> {
        self.admit_frame(connection_id, bucket, limit, now).await
    }

    /// One `GetItem` of the room's count row.
    async fn member_count(&self, room: &str) -> Result<u64, StoreError> {
        self.read_member_count(room).await
    }

    /// One Query of the room's partition with `ExclusiveStartKey`.
    async fn members_page(
        &self,
        room: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MembersPage, StoreError> {
        self.read_members_page(room, after, limit).await
    }

    async fn claim_count_push(
        &self,
        room: &str,
        count: u64,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError> {
        self.claim_count_push_row(room, count, now_ms, due_ms).await
    }

    async fn record_message_id(
        &self,
        connection_id: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.record_sent_id(connection_id, message_id).await
    }
}
