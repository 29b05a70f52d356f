//! DynamoDB helpers for tests and the bench: a client that counts the items DynamoDB
//! reads, and a table seeded with registered connections the way `register` leaves them
//! (with the row layout of [`crate::store::dynamo::items`]).

use crate::store::dynamo::items::{
    number, string, string_set, to_item, Item, MemberRow, CONNECTED_AT, CONNECTION_ID, NAME_KEY,
    ROOMS, TOKEN_HASH, TTL, USER_NAME,
};
use crate::store::dynamo::{unavailable, BATCH_WRITE_LIMIT};
use crate::store::{DynamoStore, StoreError, CONNECTION_TTL_SECS};
use aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use webchat_shared_types::{name_key, LOBBY};

/// Counts what DynamoDB read for each response: the items a Query or Scan evaluated
/// (`ScannedCount`, what it is billed for), a `GetItem`'s item and a `BatchGetItem`'s items.
#[derive(Debug, Clone, Default)]
pub struct ItemsRead {
    items: Arc<AtomicU64>,
    /// The read operations seen, by name.
    operations: Arc<Mutex<Vec<&'static str>>>,
}

impl ItemsRead {
    /// The items read since the last call, and the read operations by name.
    pub fn take(&self) -> (u64, Vec<&'static str>) {
        (
            self.items.swap(0, Ordering::SeqCst),
            std::mem::take(
                &mut *self
                    .operations
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
        )
    }
}

impl Intercept for ItemsRead {
    fn name(&self) -> &'static str {
        "ItemsRead"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemOutput, get_item::GetItemOutput, query::QueryOutput,
            scan::ScanOutput,
        };
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let (operation, read) = if let Some(query) = output.downcast_ref::<QueryOutput>() {
            ("Query", u64::try_from(query.scanned_count()).unwrap_or(0))
        } else if let Some(scan) = output.downcast_ref::<ScanOutput>() {
            ("Scan", u64::try_from(scan.scanned_count()).unwrap_or(0))
        } else if let Some(get) = output.downcast_ref::<GetItemOutput>() {
            ("GetItem", u64::from(get.item().is_some()))
        } else if let Some(batch) = output.downcast_ref::<BatchGetItemOutput>() {
            let items = batch.responses().map_or(0, |tables| {
                tables.values().map(|items| items.len() as u64).sum()
            });
            ("BatchGetItem", items)
        } else {
            return Ok(());
        };
        self.operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(operation);
        self.items.fetch_add(read, Ordering::SeqCst);
        Ok(())
    }
}

/// A client for the DynamoDB at `endpoint` (dynalite) whose reads `ItemsRead` counts.
pub fn counting_client(endpoint: &str) -> (aws_sdk_dynamodb::Client, ItemsRead) {
    let counter = ItemsRead::default();
    let config = crate::store::dynamo::local_client(endpoint)
        .config()
        .to_builder()
        .interceptor(counter.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), counter)
}

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
            .as_millis()
            .try_into()
            .unwrap_or(i64::MAX);
        let expires_at = connected_at.div_euclid(1000) + CONNECTION_TTL_SECS;
        let ttl = number(expires_at);
        let ids: Vec<String> = (0..count).map(|i| format!("c{i:05}")).collect();
        let row = |pairs: Vec<(&str, AttributeValue)>| -> Item {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let put = |item: Item| -> Result<WriteRequest, StoreError> {
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
                &self.tables().connections,
                put(row(vec![
                    (CONNECTION_ID, string(id)),
                    (CONNECTED_AT, number(connected_at)),
                    (TTL, ttl.clone()),
                    (USER_NAME, string(&name)),
                    (ROOMS, string_set(&[LOBBY.to_string()])),
                ]))?,
            ));
            writes.push((
                &self.tables().names,
                put(row(vec![
                    (NAME_KEY, string(&name_key(&name))),
                    (USER_NAME, string(&name)),
                    (CONNECTION_ID, string(id)),
                    (TOKEN_HASH, string(&format!("t-{id}"))),
                    (TTL, ttl.clone()),
                ]))?,
            ));
            let member = to_item(&MemberRow {
                room: LOBBY.to_string(),
                connection_id: id.clone(),
                user_name: name.clone(),
                ttl: expires_at,
                write_id: None,
            })
            .map_err(|e| unavailable("BatchWriteItem (seed)", e))?;
            writes.push((&self.tables().members, put(member)?));
            if let Some(shard) =
                crate::store::dynamo::shards::shard_item(LOBBY, id, &name, expires_at, None)
            {
                let shard = shard.map_err(|e| unavailable("BatchWriteItem (seed)", e))?;
                writes.push((&self.tables().members, put(shard)?));
            }
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
