//! The DynamoDB store.
//!
//! Four tables:
//!
//! - `Connections`, keyed by `connectionId`: `connectedAt`, a `ttl` so rows left by a lost
//!   `$disconnect` expire, `userName` once registered, `rooms` (a string set: the lobby
//!   from `register` on, plus the rooms joined) and the rate-limit buckets.
//! - `Names`, keyed by the lower-cased name (`nameKey`): the connection holding it and
//!   the hash of the resume token that may take it over (`tokenHash`).
//! - `Members`, keyed by `room` and `connectionId`: one row per membership, with the
//!   member's `userName` and its connection's `ttl`. A room's members are one Query of its
//!   partition, whatever else is open.
//! - `Messages`, keyed by `room` and `messageId` (ULIDs, which sort by time): the room's
//!   stored history, each row with its own `ttl`.
//!
//! Signed-in people use reserved partitions of the same tables, whose keys have a `:`,
//! which no room name has (see [`crate::store`]):
//!
//! - `Members`, `person:<hash of sub>`: one row per open connection of the person,
//!   written and removed with its room member rows (the connection's row names the
//!   person in `owner`), so a person's connections are one Query.
//! - `Members`, `conversations:<hash of sub>`: the person's conversation index, one row
//!   per conversation (`connectionId` is the conversation's key) with the other person's
//!   name (`with`), the newest `lastMessageId` and that message's `ttl`.
//! - `Messages`, `dm:<hash of both subs>`: a conversation's messages, as a room's, each
//!   with the name it was addressed `to`.
//!
//! Every rule the traits call atomic is decided by DynamoDB with a conditional write: a
//! name by a conditional put on `Names` (free, ours, expired, or the resume token
//! matches), the room limit by a conditional update of the `rooms` set, each rate-limit
//! bucket by conditional updates (see [`DynamoStore::admit`]). Nothing reads-then-writes
//! to check a rule; reads after a refused write only say which rule refused it.
//!
//! `Members` rows follow the `rooms` set: written after the set gains a room, deleted
//! after it loses one. Every writer re-reads the set afterwards and undoes what a
//! concurrent `join`, `leave` or `remove` overtook, each member row carrying the `writeId`
//! of the write that put it so that a late delete never removes a newer row. So once
//! the writers are done, a connection has a member row for exactly the rooms in its set;
//! meanwhile a room's members may for a moment include one that just left or miss one
//! that just joined.

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::{
    conversations_partition, person_partition, Claim, Connection, ConnectionStore,
    ConversationNote, HistorySlice, HistoryStore, Joined, Person, Registration, StoreError,
    StoredMessage,
};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    KeysAndAttributes, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use webchat_shared_types::{
    name_key, Conversation, HistoryPage, User, LOBBY, MAX_ROOMS_PER_CONNECTION,
};

const CONNECTION_ID: &str = "connectionId";
const USER_NAME: &str = "userName";
const CONNECTED_AT: &str = "connectedAt";
const TTL: &str = "ttl";
const NAME_KEY: &str = "nameKey";
const TOKEN_HASH: &str = "tokenHash";
/// The identity (`sub`) a name is bound to, with sign-in on.
const OWNER: &str = "owner";
const ROOMS: &str = "rooms";
const ROOM: &str = "room";
const MESSAGE_ID: &str = "messageId";
const SENDER: &str = "sender";
const SENDER_ID: &str = "senderId";
const MESSAGE: &str = "message";
const TIMESTAMP: &str = "timestamp";
/// The name a conversation's message was addressed to.
const TO: &str = "to";
/// In a conversation index row: the other person's name, and the newest message id.
const WITH: &str = "with";
const LAST_MESSAGE_ID: &str = "lastMessageId";
/// Which write put a `Members` row (see [`DynamoStore::write_members`]).
const WRITE_ID: &str = "writeId";
/// A bucket's theoretical arrival time, microseconds since the epoch (see [`crate::limits`]).
const MESSAGE_TAT: &str = "messageTat";
const ACTION_TAT: &str = "actionTat";
/// Conditional updates one admission may take before giving up. Every bucket only moves
/// forward, so one admission needs at most three (see [`DynamoStore::admit`]).
const ADMIT_ATTEMPTS: usize = 4;
/// Conditional updates of the `rooms` set one `register` may take while concurrent
/// `join`s and `leave`s change it.
const REGISTER_ATTEMPTS: usize = 5;
/// Requests one batch may take while DynamoDB leaves part of it unprocessed.
const BATCH_ATTEMPTS: usize = 8;

fn tat_attribute(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Message => MESSAGE_TAT,
        Bucket::Action => ACTION_TAT,
    }
}

/// What a refused bucket update says about the row.
enum Observed {
    /// No row: the connection is gone.
    Gone,
    /// The row, with the bucket's `tat` (`None`: never used).
    Tat(Option<Micros>),
}
/// BatchGetItem's own limit, which is also the protocol's receiver limit.
const BATCH_GET_LIMIT: usize = 100;
/// BatchWriteItem's own limit.
const BATCH_WRITE_LIMIT: usize = 25;

/// The four table names, from `CONNECTIONS_TABLE`, `NAMES_TABLE`, `MEMBERS_TABLE` and
/// `MESSAGES_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub connections: String,
    pub names: String,
    pub members: String,
    pub messages: String,
}

impl TableNames {
    pub fn from_env() -> Result<Self, StoreError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                StoreError::Unavailable(format!(
                    "environment variable {name} is not set; set it to the DynamoDB table name"
                ))
            })
        };
        Ok(TableNames {
            connections: var("CONNECTIONS_TABLE")?,
            names: var("NAMES_TABLE")?,
            members: var("MEMBERS_TABLE")?,
            messages: var("MESSAGES_TABLE")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    /// Query page size for a room's members; `None` lets DynamoDB fill 1 MB pages. Tests
    /// set it small to prove that every page is read.
    page_size: Option<i32>,
}

fn unavailable(operation: &str, err: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(format!(
        "DynamoDB {operation} failed: {}",
        DisplayErrorContext(err)
    ))
}

/// A conditional write refused because its condition did not hold (not an outage).
fn condition_failed(err: &impl ProvideErrorMetadata) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string set; DynamoDB has no empty sets, so callers never pass none.
fn ss(values: &[String]) -> AttributeValue {
    AttributeValue::Ss(values.to_vec())
}

type Item = HashMap<String, AttributeValue>;

fn tat_of(item: &Item, attribute: &str) -> Option<Micros> {
    item.get(attribute)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn string_of(item: &Item, attribute: &str) -> Option<String> {
    item.get(attribute).and_then(|v| v.as_s().ok()).cloned()
}

fn number_of<T: std::str::FromStr>(item: &Item, attribute: &str) -> Option<T> {
    item.get(attribute)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The `rooms` set of a connection row, sorted (none when it has no set).
fn rooms_of(item: &Item) -> Vec<String> {
    let mut rooms = item
        .get(ROOMS)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    rooms.sort();
    rooms
}

fn connection_from_item(item: &Item) -> Option<Connection> {
    Some(Connection {
        connection_id: string_of(item, CONNECTION_ID)?,
        connected_at: number_of(item, CONNECTED_AT).unwrap_or(0),
        user_name: string_of(item, USER_NAME),
        rooms: rooms_of(item),
        owner: string_of(item, OWNER),
    })
}

fn member_from_item(item: &Item) -> Option<User> {
    Some(User {
        user_name: string_of(item, USER_NAME)?,
        connection_id: string_of(item, CONNECTION_ID)?,
    })
}

fn message_from_item(item: &Item) -> Option<StoredMessage> {
    Some(StoredMessage {
        room: string_of(item, ROOM)?,
        message_id: string_of(item, MESSAGE_ID)?,
        sender: string_of(item, SENDER)?,
        sender_id: string_of(item, SENDER_ID)?,
        message: string_of(item, MESSAGE)?,
        timestamp: number_of(item, TIMESTAMP)?,
        expires_at: number_of(item, TTL)?,
        to: string_of(item, TO),
    })
}

fn member_key(room: &str, connection_id: &str) -> Item {
    HashMap::from([
        (ROOM.to_string(), s(room)),
        (CONNECTION_ID.to_string(), s(connection_id)),
    ])
}

/// A row whose TTL has passed is dead even if DynamoDB has not deleted it yet
/// (TTL deletion can lag by days).
fn is_expired(item: &Item, now: i64) -> bool {
    number_of::<i64>(item, TTL).is_some_and(|ttl| ttl < now)
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        DynamoStore {
            client,
            tables,
            page_size: None,
        }
    }

    /// Reads a room's members `page_size` rows per Query page.
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Creates the four tables when they do not exist, each with TTL on `ttl` (local
    /// gateway and tests; on AWS the `dynamodb.yml` stack owns them).
    pub async fn create_tables_if_missing(&self) -> Result<(), StoreError> {
        for (table, hash, range) in [
            (&self.tables.connections, CONNECTION_ID, None),
            (&self.tables.names, NAME_KEY, None),
            (&self.tables.members, ROOM, Some(CONNECTION_ID)),
            (&self.tables.messages, ROOM, Some(MESSAGE_ID)),
        ] {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            for (key, key_type) in
                std::iter::once((hash, KeyType::Hash)).chain(range.map(|r| (r, KeyType::Range)))
            {
                request = request
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(key)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(|e| unavailable("CreateTable", e))?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(key)
                            .key_type(key_type)
                            .build()
                            .map_err(|e| unavailable("CreateTable", e))?,
                    );
            }
            match request.send().await {
                Ok(_) => {}
                Err(err) if err.code() == Some("ResourceInUseException") => continue,
                Err(err) => return Err(unavailable("CreateTable", err)),
            }
            self.wait_until_active(table).await?;
            // Some DynamoDB emulators lack TTL; expiry is also enforced on read, so a
            // failure here only means rows are not deleted in the background.
            let ttl = TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(|e| unavailable("UpdateTimeToLive", e))?;
            if let Err(err) = self
                .client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(ttl)
                .send()
                .await
            {
                tracing::debug!(table, error = %DisplayErrorContext(err), "TTL not enabled");
            }
        }
        Ok(())
    }

    async fn wait_until_active(&self, table: &str) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::TableStatus;
        for _ in 0..100 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| unavailable("DescribeTable", e))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {table} did not become ACTIVE"
        )))
    }

    /// One conditional update of a connection's bucket attribute (`#tat`). `Ok(None)`: it
    /// was written. `Ok(Some(item))`: its condition did not hold, and `item` is the row as
    /// DynamoDB returned it (`None` when there is no row, or the DynamoDB in use does not
    /// return rows on a failed condition, as dynalite does not).
    async fn update_bucket(
        &self,
        connection_id: &str,
        attribute: &str,
        update: &str,
        condition: &str,
        values: &[(&str, Micros)],
    ) -> Result<Option<Option<HashMap<String, AttributeValue>>>, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#tat", attribute)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, n(*value));
        }
        match request.send().await {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(failure)) => match failure.into_err() {
                UpdateItemError::ConditionalCheckFailedException(refused) => Ok(Some(refused.item)),
                err => Err(unavailable("UpdateItem (rate limit)", err)),
            },
            Err(err) => Err(unavailable("UpdateItem (rate limit)", err)),
        }
    }

    /// The bucket's state when a conditional update did not return the row: a write that
    /// changes nothing (a missing `tat` becomes `now`, which allows the same frames) and
    /// returns it, so this needs no permission beyond the updates themselves.
    async fn observe_bucket(
        &self,
        connection_id: &str,
        attribute: &str,
        now: Micros,
    ) -> Result<Observed, StoreError> {
        let probed = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id))
            .update_expression("SET #tat = if_not_exists(#tat, :now)")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_names("#tat", attribute)
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match probed {
            Ok(output) => Ok(Observed::Tat(
                output.attributes().and_then(|item| tat_of(item, attribute)),
            )),
            Err(err) if condition_failed(&err) => Ok(Observed::Gone),
            Err(err) => Err(unavailable("UpdateItem (rate limit)", err)),
        }
    }

    /// Releases a name if (and only if) `connection_id` still holds it.
    async fn release_name(&self, user_name: &str, connection_id: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.tables.names)
            .key(NAME_KEY, s(&name_key(user_name)))
            // A name bound to an identity stays bound when its connections end.
            .condition_expression("connectionId = :me AND attribute_not_exists(#owner)")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":me", s(connection_id))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(unavailable("DeleteItem (name)", err)),
        }
    }

    /// Writes (puts and deletes) to one table in batches of 25, asking again for what
    /// DynamoDB leaves unprocessed.
    async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
            let mut pending = chunk.to_vec();
            let mut backoff = Duration::from_millis(20);
            for _attempt in 0..BATCH_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchWriteItem", e))?;
                if let Some(unprocessed) = output.unprocessed_items().and_then(|u| u.get(table)) {
                    pending = unprocessed.clone();
                    if !pending.is_empty() {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB BatchWriteItem left items unprocessed after {BATCH_ATTEMPTS} attempts"
                )));
            }
        }
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
            let mut item = member_key(room, &connection.connection_id);
            item.insert(USER_NAME.to_string(), s(user_name));
            item.insert(TTL.to_string(), n(connection.expires_at()));
            item.insert(WRITE_ID.to_string(), s(&write_id));
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| unavailable("BatchWriteItem (members)", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(&self.tables.members, requests).await?;

        let now_in = self
            .get(&connection.connection_id)
            .await?
            .map(|c| c.partitions())
            .unwrap_or_default();
        for room in rooms.iter().filter(|room| !now_in.contains(room)) {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.tables.members)
                .set_key(Some(member_key(room, &connection.connection_id)))
                .condition_expression("writeId = :mine")
                .expression_attribute_values(":mine", s(&write_id))
                .send()
                .await;
            match deleted {
                Ok(_) => {}
                Err(err) if condition_failed(&err) => {}
                Err(err) => return Err(unavailable("DeleteItem (member)", err)),
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
        let delete = self
            .client
            .delete_item()
            .table_name(&self.tables.members)
            .set_key(Some(member_key(room, connection_id)));
        let delete = match string_of(member, WRITE_ID) {
            Some(write_id) => delete
                .condition_expression("writeId = :seen")
                .expression_attribute_values(":seen", s(&write_id)),
            None => delete.condition_expression("attribute_not_exists(writeId)"),
        };
        match delete.send().await {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(unavailable("DeleteItem (member)", err)),
        }
    }

    async fn delete_members(
        &self,
        connection_id: &str,
        rooms: &[String],
    ) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(rooms.len());
        for room in rooms {
            let delete = DeleteRequest::builder()
                .set_key(Some(member_key(room, connection_id)))
                .build()
                .map_err(|e| unavailable("BatchWriteItem (members)", e))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
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
            .key(CONNECTION_ID, s(connection_id))
            .condition_expression("userName = :name")
            .expression_attribute_values(":name", s(user_name))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match deleted {
            Ok(output) => output.attributes().and_then(connection_from_item),
            // Gone, or it has another name now: nothing to take over.
            Err(err) if condition_failed(&err) => None,
            Err(err) => return Err(unavailable("DeleteItem (connection taken over)", err)),
        };
        if let Some(old) = &old {
            self.delete_members(&old.connection_id, &old.partitions())
                .await?;
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
            .item(NAME_KEY, s(&name_key(claim.user_name)))
            .item(USER_NAME, s(claim.user_name))
            .item(CONNECTION_ID, s(&connection.connection_id))
            .item(TOKEN_HASH, s(claim.token_hash))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":me", s(&connection.connection_id))
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(ReturnValue::AllOld);
        // A name bound to an identity never expires: it is that person's.
        put = match claim.owner {
            Some(owner) => put.item(OWNER, s(owner)),
            None => put.item(TTL, n(connection.expires_at())),
        };
        if let Some(resume) = claim.resume_hash {
            unowned.push_str(" OR tokenHash = :resume");
            put = put.expression_attribute_values(":resume", s(resume));
        }
        let mut condition = format!(
            "attribute_not_exists(nameKey) OR (attribute_not_exists(#owner) AND ({unowned}))"
        );
        if let Some(owner) = claim.owner {
            condition.push_str(" OR #owner = :owner");
            put = put.expression_attribute_values(":owner", s(owner));
        }
        match put.condition_expression(condition).send().await {
            Ok(output) => Ok(output.attributes),
            Err(err) if condition_failed(&err) => Err(StoreError::NameTaken),
            Err(err) => Err(unavailable("PutItem (name)", err)),
        }
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
                .key(CONNECTION_ID, s(&me.connection_id))
                .expression_attribute_values(":name", s(user_name))
                .return_values(ReturnValue::AllOld);
            let mut set = "SET userName = :name".to_string();
            if let Some(owner) = owner {
                set.push_str(", #owner = :owner");
                request = request
                    .expression_attribute_names("#owner", OWNER)
                    .expression_attribute_values(":owner", s(owner));
            }
            request = if added.is_empty() {
                request.update_expression(set)
            } else {
                request
                    .update_expression(format!("{set} ADD rooms :added"))
                    .expression_attribute_values(":added", ss(&added))
            };
            request = if me.rooms.is_empty() {
                request.condition_expression(
                    "attribute_exists(connectionId) AND attribute_not_exists(rooms)",
                )
            } else {
                request
                    .condition_expression("attribute_exists(connectionId) AND size(rooms) = :n")
                    .expression_attribute_values(":n", n(me.rooms.len() as i64))
            };
            match request.send().await {
                Ok(output) => {
                    let before = output
                        .attributes()
                        .and_then(connection_from_item)
                        .unwrap_or(me);
                    let mut rooms = before.rooms.clone();
                    rooms.extend(added.into_iter().filter(|r| !before.is_in(r)));
                    rooms.sort();
                    return Ok((before, rooms));
                }
                Err(err) if condition_failed(&err) => {
                    // Closed, or its rooms changed since they were read: read them again.
                    me = self
                        .get(&me.connection_id)
                        .await?
                        .ok_or_else(|| StoreError::NoSuchConnection(me.connection_id.clone()))?;
                }
                Err(err) => return Err(unavailable("UpdateItem (connection)", err)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the rooms of connection {} kept changing during {REGISTER_ATTEMPTS} conditional updates",
            me.connection_id
        )))
    }

    /// One page of a room's messages read in one direction, oldest or newest first, as
    /// DynamoDB returns them, skipping expired ones: `want` rows unless the room runs out.
    async fn query_messages(
        &self,
        room: &str,
        bound: Option<(&str, &str)>,
        newest_first: bool,
        want: usize,
        now_secs: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.tables.messages)
                .expression_attribute_names("#room", ROOM)
                .expression_attribute_values(":room", s(room))
                .scan_index_forward(!newest_first)
                .consistent_read(true)
                .limit(i32::try_from(want - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            request = match bound {
                Some((op, id)) => request
                    .key_condition_expression(format!("#room = :room AND messageId {op} :id"))
                    .expression_attribute_values(":id", s(id)),
                None => request.key_condition_expression("#room = :room"),
            };
            let output = request
                .send()
                .await
                .map_err(|e| unavailable("Query (messages)", e))?;
            found.extend(
                output
                    .items()
                    .iter()
                    .filter(|item| !is_expired(item, now_secs))
                    .filter_map(message_from_item),
            );
            // Expired rows not yet deleted are the only reason to read on.
            match output.last_evaluated_key {
                Some(key) if found.len() < want => start = Some(key),
                _ => return Ok(found),
            }
        }
    }
}

impl ConnectionStore for DynamoStore {
    async fn add(&self, connection: Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .item(CONNECTION_ID, s(&connection.connection_id))
            .item(CONNECTED_AT, n(connection.connected_at))
            .item(TTL, n(connection.expires_at()))
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
            .key(CONNECTION_ID, s(connection_id))
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
                    tracing::warn!(connection_id, error = %release, "could not release a name claimed for a connection that closed");
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
            .key(NAME_KEY, s(&name_key(user_name)))
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
            .key(NAME_KEY, s(&name_key(user_name)))
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
            .key(CONNECTION_ID, s(connection_id))
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
            .key(CONNECTION_ID, s(connection_id))
            .update_expression("ADD rooms :rooms")
            .condition_expression(
                "attribute_exists(connectionId) AND (attribute_not_exists(rooms) \
                 OR contains(rooms, :room) OR size(rooms) < :max)",
            )
            .expression_attribute_values(":rooms", ss(&[room.to_string()]))
            .expression_attribute_values(":room", s(room))
            .expression_attribute_values(":max", n(MAX_ROOMS_PER_CONNECTION as i64))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let (connection, joined) = match added {
            Ok(output) => {
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
            Err(err) if condition_failed(&err) => {
                return match self.get(connection_id).await? {
                    None => Err(StoreError::NoSuchConnection(connection_id.to_string())),
                    Some(_) => Err(StoreError::RoomLimit),
                };
            }
            Err(err) => return Err(unavailable("UpdateItem (join)", err)),
        };
        // Written also when it was in already: that heals a join that stopped between
        // its two writes.
        let rooms = [room.to_string()];
        self.write_members(&connection, user_name, &rooms).await?;
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
            .key(CONNECTION_ID, s(connection_id))
            .update_expression("DELETE rooms :rooms")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_values(":rooms", ss(&[room.to_string()]))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match removed {
            Ok(output) => {
                let was_in = output
                    .attributes()
                    .is_some_and(|before| rooms_of(before).iter().any(|r| r == room));
                if was_in {
                    self.drop_member_unless_in(connection_id, room).await?;
                }
                Ok(was_in)
            }
            // No row: no join can add it back, so any member row left is an orphan.
            Err(err) if condition_failed(&err) => {
                self.delete_members(connection_id, &[room.to_string()])
                    .await?;
                Ok(false)
            }
            Err(err) => Err(unavailable("UpdateItem (leave)", err)),
        }
    }

    /// A paginated Query of the room's partition of `Members`: it reads the room's
    /// members and nothing else, whatever else is open.
    async fn members(&self, room: &str) -> Result<Vec<User>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.members)
            .key_condition_expression("#room = :room")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_values(":room", s(room))
            .consistent_read(true)
            .set_limit(self.page_size)
            .into_paginator()
            .items()
            .send();
        let now = now_secs();
        let mut members = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| unavailable("Query (members)", e))?;
            if !is_expired(&item, now) {
                members.extend(member_from_item(&item));
            }
        }
        Ok(members)
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
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB BatchGetItem left keys unprocessed after {BATCH_ATTEMPTS} attempts"
                )));
            }
        }
        Ok(found)
    }

    /// GCRA with conditional updates only, so DynamoDB decides every race between Lambdas
    /// handling one connection. DynamoDB has no `max`, so `tat = max(tat, now) + interval`
    /// is two updates, each conditioned on the case it is right for:
    ///
    /// - idle (`tat` unset or before `now`): `SET tat = now + interval`;
    /// - within the burst (`now <= tat <= latest`): `SET tat = tat + interval`;
    /// - over (`tat > latest`): nothing is written and the frame is limited.
    ///
    /// It starts with the idle case (a person typing), and a refused update returns the
    /// row (`ALL_OLD`), which says which case holds: one update per frame, also for every
    /// frame of a flood. Every update also requires the row, so a gone connection is never
    /// recreated by its bucket.
    async fn admit(
        &self,
        connection_id: &str,
        bucket: Bucket,
        limit: RateLimit,
        now: Micros,
    ) -> Result<Admission, StoreError> {
        let attribute = tat_attribute(bucket);
        let interval = limit.interval();
        let latest = limit.latest_allowed_tat(now);
        let mut observed = Observed::Tat(None);
        for _ in 0..ADMIT_ATTEMPTS {
            let refused = match observed {
                Observed::Gone => return Ok(Admission::Gone),
                Observed::Tat(Some(tat)) if tat > latest => {
                    return Ok(Admission::Limited {
                        retry_after: limit.retry_after(tat, now),
                    })
                }
                Observed::Tat(Some(tat)) if tat >= now => {
                    self.update_bucket(
                        connection_id,
                        attribute,
                        "SET #tat = #tat + :interval",
                        "attribute_exists(connectionId) AND #tat BETWEEN :now AND :latest",
                        &[(":interval", interval), (":now", now), (":latest", latest)],
                    )
                    .await?
                }
                Observed::Tat(_) => {
                    self.update_bucket(
                        connection_id,
                        attribute,
                        "SET #tat = :next",
                        "attribute_exists(connectionId) AND (attribute_not_exists(#tat) OR #tat < :now)",
                        &[(":next", now + interval), (":now", now)],
                    )
                    .await?
                }
            };
            observed = match refused {
                None => return Ok(Admission::Allowed),
                Some(Some(item)) => Observed::Tat(tat_of(&item, attribute)),
                Some(None) => self.observe_bucket(connection_id, attribute, now).await?,
            };
        }
        Err(StoreError::Unavailable(format!(
            "the rate limit of connection {connection_id} kept changing during {ADMIT_ATTEMPTS} conditional updates"
        )))
    }
}

impl HistoryStore for DynamoStore {
    async fn append(&self, message: &StoredMessage) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.messages)
            .item(ROOM, s(&message.room))
            .item(MESSAGE_ID, s(&message.message_id))
            .item(SENDER, s(&message.sender))
            .item(SENDER_ID, s(&message.sender_id))
            .item(MESSAGE, s(&message.message))
            .item(TIMESTAMP, AttributeValue::N(message.timestamp.to_string()))
            .item(TTL, n(message.expires_at));
        if let Some(to) = &message.to {
            put = put.item(TO, s(to));
        }
        put.send()
            .await
            .map_err(|e| unavailable("PutItem (message)", e))?;
        Ok(())
    }

    /// One Query of the room's partition, from the newest down (newest, `before`) or from
    /// `after` up, for one row more than asked: that row says whether another page
    /// follows. Never a Scan.
    async fn history(
        &self,
        room: &str,
        page: &HistoryPage,
        limit: usize,
        now_secs: i64,
    ) -> Result<HistorySlice, StoreError> {
        let (bound, newest_first) = match page {
            HistoryPage::Latest => (None, true),
            HistoryPage::Before(id) => (Some(("<", id.as_str())), true),
            HistoryPage::After(id) => (Some((">", id.as_str())), false),
        };
        let read = self
            .query_messages(room, bound, newest_first, limit.saturating_add(1), now_secs)
            .await?;
        Ok(HistorySlice::from_read(read, limit, page))
    }

    /// One conditional UpdateItem of the person's index row for the conversation: it
    /// only ever moves to a newer message, however the senders race.
    async fn note_conversation(&self, note: ConversationNote<'_>) -> Result<(), StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.tables.members)
            .set_key(Some(member_key(
                &conversations_partition(note.sub),
                note.conversation,
            )))
            .update_expression("SET #with = :with, #last = :id, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#last) OR #last < :id")
            .expression_attribute_names("#with", WITH)
            .expression_attribute_names("#last", LAST_MESSAGE_ID)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":with", s(note.with))
            .expression_attribute_values(":id", s(note.message_id))
            .expression_attribute_values(":ttl", n(note.expires_at))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            // A newer message of the conversation is noted already.
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(unavailable("UpdateItem (conversation)", err)),
        }
    }

    /// A paginated Query of the person's index partition: one row per conversation,
    /// sorted here by their newest message.
    async fn conversations(
        &self,
        sub: &str,
        limit: usize,
        now_secs: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.members)
            .key_condition_expression("#room = :room")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_values(":room", s(&conversations_partition(sub)))
            .consistent_read(true)
            .set_limit(self.page_size)
            .into_paginator()
            .items()
            .send();
        let mut found = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| unavailable("Query (conversations)", e))?;
            if is_expired(&item, now_secs) {
                continue;
            }
            if let (Some(with), Some(last_message_id)) =
                (string_of(&item, WITH), string_of(&item, LAST_MESSAGE_ID))
            {
                found.push(Conversation {
                    with,
                    last_message_id,
                });
            }
        }
        found.sort_by(|a, b| b.last_message_id.cmp(&a.last_message_id));
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(feature = "test-support")]
impl DynamoStore {
    /// Writes `count` registered connections (`c00000`, `c00001`, …, named `u` + id, in
    /// the lobby) straight into the tables as `register` leaves them, 8 batches at a time:
    /// registering them through the handlers would announce each to all before it. For
    /// tests and the bench that need a crowd. Returns their ids.
    pub async fn seed_registered(&self, count: usize) -> Result<Vec<String>, StoreError> {
        use futures::StreamExt;
        let connected_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64;
        let ttl = n(connected_at.div_euclid(1000) + crate::store::CONNECTION_TTL_SECS);
        let ids: Vec<String> = (0..count).map(|i| format!("c{i:05}")).collect();
        let put = |pairs: Vec<(&str, AttributeValue)>| -> Result<WriteRequest, StoreError> {
            let item = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| unavailable("BatchWriteItem (seed)", e))?;
            Ok(WriteRequest::builder().put_request(put).build())
        };
        let mut writes: Vec<(&str, WriteRequest)> = Vec::with_capacity(count * 3);
        for id in &ids {
            let name = format!("u{id}");
            writes.push((
                &self.tables.connections,
                put(vec![
                    (CONNECTION_ID, s(id)),
                    (CONNECTED_AT, n(connected_at)),
                    (TTL, ttl.clone()),
                    (USER_NAME, s(&name)),
                    (ROOMS, ss(&[LOBBY.to_string()])),
                ])?,
            ));
            writes.push((
                &self.tables.names,
                put(vec![
                    (NAME_KEY, s(&name_key(&name))),
                    (USER_NAME, s(&name)),
                    (CONNECTION_ID, s(id)),
                    (TOKEN_HASH, s(&format!("t-{id}"))),
                    (TTL, ttl.clone()),
                ])?,
            ));
            writes.push((
                &self.tables.members,
                put(vec![
                    (ROOM, s(LOBBY)),
                    (CONNECTION_ID, s(id)),
                    (USER_NAME, s(&name)),
                    (TTL, ttl.clone()),
                ])?,
            ));
        }
        let mut by_table: HashMap<&str, Vec<WriteRequest>> = HashMap::new();
        for (table, write) in writes {
            by_table.entry(table).or_default().push(write);
        }
        let batches: Vec<(&str, Vec<WriteRequest>)> = by_table
            .iter()
            .flat_map(|(table, writes)| {
                writes
                    .chunks(BATCH_WRITE_LIMIT)
                    .map(move |chunk| (*table, chunk.to_vec()))
            })
            .collect();
        let mut written = futures::stream::iter(batches)
            .map(|(table, batch)| self.batch_write(table, batch))
            .buffer_unordered(8);
        while let Some(result) = written.next().await {
            result?;
        }
        Ok(ids)
    }
}

#[cfg(feature = "local-endpoints")]
/// A DynamoDB client for a local endpoint (dynalite, DynamoDB Local): static
/// credentials and region, short timeouts so a stopped server fails fast.
pub fn local_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(crate::sdk::local_credentials())
        .timeout_config(crate::sdk::timeouts())
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2))
        .build();
    Client::from_conf(config)
}
