//! DynamoDB helpers for tests and the bench: a client that counts the items DynamoDB
//! reads, and a table seeded with registered connections the way `register` leaves them
//! (the row layout stays in [`crate::dynamo`]).

use aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts what DynamoDB read for each response: the items a Query or Scan evaluated
/// (`ScannedCount`, what it is billed for), a GetItem's item and a BatchGetItem's items.
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
            std::mem::take(&mut *self.operations.lock().unwrap_or_else(|p| p.into_inner())),
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
            ("Query", query.scanned_count() as u64)
        } else if let Some(scan) = output.downcast_ref::<ScanOutput>() {
            ("Scan", scan.scanned_count() as u64)
        } else if let Some(get) = output.downcast_ref::<GetItemOutput>() {
            ("GetItem", u64::from(get.item().is_some()))
        } else if let Some(batch) = output.downcast_ref::<BatchGetItemOutput>() {
            let items = batch
                .responses()
                .map(|tables| tables.values().map(|items| items.len() as u64).sum())
                .unwrap_or(0);
            ("BatchGetItem", items)
        } else {
            return Ok(());
        };
        self.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(operation);
        self.items.fetch_add(read, Ordering::SeqCst);
        Ok(())
    }
}

/// A client for the DynamoDB at `endpoint` (dynalite) whose reads `ItemsRead` counts.
pub fn counting_client(endpoint: &str) -> (aws_sdk_dynamodb::Client, ItemsRead) {
    let counter = ItemsRead::default();
    let config = crate::dynamo::local_client(endpoint)
        .config()
        .to_builder()
        .interceptor(counter.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), counter)
}
