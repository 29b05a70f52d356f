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
//! - `Members`, `presence:<room>`: the room's count row (`memberCount`, moved by an `ADD`
//!   with every change of a connection's `rooms` set, and when the count was last
//!   pushed: `countPushedAt`, `countPushed`).
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

mod admission;
mod connections;
mod history;
pub(crate) mod items;
mod presence;
mod schema;
pub(crate) mod shards;

use crate::config::{required_var, ConfigError};
use crate::store::StoreError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::WriteRequest;
use aws_sdk_dynamodb::Client;
use items::{is_expired, string, Item, ROOM};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Requests one batch may take while DynamoDB leaves part of it unprocessed.
const BATCH_ATTEMPTS: usize = 8;
/// `BatchWriteItem`'s own limit.
pub(crate) const BATCH_WRITE_LIMIT: usize = 25;

/// The four table names, from `CONNECTIONS_TABLE`, `NAMES_TABLE`, `MEMBERS_TABLE` and
/// `MESSAGES_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Connections and their rooms, one row each (`CONNECTIONS_TABLE`).
    pub connections: String,
    /// Name claims, one row per name (`NAMES_TABLE`).
    pub names: String,
    /// Room members, partitioned by room (`MEMBERS_TABLE`).
    pub members: String,
    /// Stored messages, partitioned by room or conversation (`MESSAGES_TABLE`).
    pub messages: String,
}

impl TableNames {
    /// Reads the four names from the environment; any one unset is an error.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &str| required_var(name, "the DynamoDB table name");
        Ok(TableNames {
            connections: var("CONNECTIONS_TABLE")?,
            names: var("NAMES_TABLE")?,
            members: var("MEMBERS_TABLE")?,
            messages: var("MESSAGES_TABLE")?,
        })
    }
}

/// The connection and history stores on DynamoDB, for the Lambdas (and dynalite in tests).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    /// Query page size for a room's members; `None` lets DynamoDB fill 1 MB pages. Tests
    /// set it small to prove that every page is read.
    page_size: Option<i32>,
}

pub(crate) fn unavailable(
    operation: &str,
    cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::unavailable(format!("DynamoDB {operation}"), cause)
}

/// What a conditional write came to: `Some(output)` when it was written, `None` when its
/// condition did not hold (a rule said no, which is not an outage).
fn conditional<T, E, R>(
    operation: &'static str,
    sent: Result<T, SdkError<E, R>>,
) -> Result<Option<T>, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match sent {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(None),
        Err(err) => Err(unavailable(operation, err)),
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .try_into()
        .unwrap_or(i64::MAX)
}

impl DynamoStore {
    /// A store on `client` over `tables`, which must exist.
    pub fn new(client: Client, tables: TableNames) -> Self {
        DynamoStore {
            client,
            tables,
            page_size: None,
        }
    }

    /// Reads a room's members `page_size` rows per Query page.
    #[must_use]
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// The tables it reads and writes.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// A consistent `Query` of one whole partition of `Members`: a room's members, a
    /// room's shard rows, a person's connections or conversations.
    pub(crate) fn query_members_partition(&self, partition: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.tables.members)
            .key_condition_expression("#room = :room")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_values(":room", string(partition))
            .consistent_read(true)
    }

    /// Every item `query` finds that has not expired by `now` (seconds), over all its
    /// pages of `page_size`, each read with `read`: one it cannot read is left out.
    /// `operation` names the call in an error.
    pub(crate) async fn live_items<T>(
        &self,
        query: QueryFluentBuilder,
        operation: &str,
        now: i64,
        read: impl Fn(&Item) -> Option<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut pages = query
            .set_limit(self.page_size)
            .into_paginator()
            .items()
            .send();
        let mut found = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| unavailable(operation, e))?;
            if !is_expired(&item, now) {
                found.extend(read(&item));
            }
        }
        Ok(found)
    }

    /// Writes (puts and deletes) to one table in batches of 25, asking again for what
    /// DynamoDB leaves unprocessed.
    pub(crate) async fn batch_write(
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
                return Err(unavailable(
                    "BatchWriteItem",
                    format!("items left unprocessed after {BATCH_ATTEMPTS} attempts"),
                ));
            }
        }
        Ok(())
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
