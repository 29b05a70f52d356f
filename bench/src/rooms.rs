//! What rooms cost on DynamoDB (dynalite): the items read and the handler's time for a
//! message to a 10-member room beside 1,000 other connections and for one to the
//! 1,000-member lobby, and the time to answer a page of `history`.
//!
//! These drive the handlers (`Chat`) in this process, on a `DynamoStore` and a gateway
//! that accepts every push at once, rather than through `webchat-local
//! --dynamodb-endpoint`. The items read can only be counted on the SDK client the
//! handlers use (an interceptor on it, as `backend/tests/dynamo_store.rs` does), which a
//! child process keeps to itself. And the time around `Chat::frame` is then what a
//! Lambda spends on the frame: its DynamoDB requests (the rate-limit update, the
//! sender's row, the history write, the members Query; or the history Query) and
//! building its pushes, without the local gateway's HTTP server, SigV4 check and
//! WebSocket writes, which on AWS are API Gateway's and which the fan-out figures
//! measure already. What sending a push costs the handler is the push-cost figure.

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use webchat_backend::chat::new_message_id;
use webchat_backend::dynamo::local_client;
use webchat_backend::{
    Chat, ConnectionGateway, ConnectionStore, DynamoStore, Frame, HistoryStore, Limits, PostError,
    Retrying, StoredMessage, TableNames,
};
use webchat_shared_types::{Route, LOBBY};

/// The small room's members.
pub const SMALL_ROOM: usize = 10;

/// Frames sent untimed before each series.
const WARM_UP: usize = 5;

/// Counts what DynamoDB read for each response: the items a Query or Scan evaluated
/// (`ScannedCount`, what it is billed for), a GetItem's item and a BatchGetItem's items.
#[derive(Debug, Clone, Default)]
struct ItemsRead {
    items: Arc<AtomicU64>,
    /// The read operations seen, by name.
    operations: Arc<Mutex<Vec<&'static str>>>,
}

impl ItemsRead {
    fn take(&self) -> (u64, Vec<&'static str>) {
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

/// A management API that takes every push at once and counts them.
#[derive(Default)]
struct Accepting {
    pushes: AtomicU64,
}

impl ConnectionGateway for Accepting {
    async fn post(&self, _: &str, _: &str) -> Result<(), PostError> {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn delete(&self, _: &str) -> Result<(), PostError> {
        Ok(())
    }

    async fn is_open(&self, _: &str) -> Result<bool, PostError> {
        Ok(true)
    }
}

/// Per-frame figures of one series, sorted.
pub struct Series {
    /// Items read per frame.
    pub items: Vec<f64>,
    /// Handler time per frame, ms.
    pub ms: Vec<f64>,
}

impl Series {
    fn new(mut items: Vec<f64>, mut ms: Vec<f64>) -> Series {
        items.sort_by(f64::total_cmp);
        ms.sort_by(f64::total_cmp);
        Series { items, ms }
    }
}

pub struct Measured {
    pub small_room: Series,
    pub lobby: Series,
    pub history_latest: Series,
    pub history_before: Series,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Writes `rows` to `table` with BatchWriteItem, 25 at a time, 8 batches in flight.
async fn bulk_put(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    rows: Vec<HashMap<String, AttributeValue>>,
) -> Result<()> {
    let batches: Vec<Vec<WriteRequest>> = rows
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, _>>()
        })
        .collect::<Result<_, _>>()?;
    let mut writes = futures::stream::iter(batches)
        .map(|mut batch| async move {
            while !batch.is_empty() {
                let output = client
                    .batch_write_item()
                    .request_items(table, batch)
                    .send()
                    .await
                    .with_context(|| format!("BatchWriteItem to {table}"))?;
                batch = output
                    .unprocessed_items()
                    .and_then(|u| u.get(table))
                    .cloned()
                    .unwrap_or_default();
            }
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(8);
    while let Some(written) = writes.next().await {
        written?;
    }
    Ok(())
}

/// `others` registered connections in the lobby, written straight into the tables as
/// `register` leaves them (registering them through the handlers would announce each
/// to all before it: half a million pushes and as many lobby Queries for nothing
/// measured here). Returns their ids.
async fn populate(client: &aws_sdk_dynamodb::Client, others: usize) -> Result<Vec<String>> {
    let connected_at = now_ms();
    let ttl = AttributeValue::N((connected_at / 1000 + 3 * 3600).to_string());
    let s = |v: &str| AttributeValue::S(v.to_string());
    let row = |pairs: Vec<(&str, AttributeValue)>| -> HashMap<String, AttributeValue> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    let ids: Vec<String> = (0..others).map(|i| format!("c{i:05}")).collect();
    let connections = ids
        .iter()
        .map(|id| {
            row(vec![
                ("connectionId", s(id)),
                ("connectedAt", AttributeValue::N(connected_at.to_string())),
                ("ttl", ttl.clone()),
                ("userName", s(&format!("u{id}"))),
                ("rooms", AttributeValue::Ss(vec![LOBBY.to_string()])),
            ])
        })
        .collect();
    let names = ids
        .iter()
        .map(|id| {
            row(vec![
                ("nameKey", s(&format!("u{id}"))),
                ("userName", s(&format!("u{id}"))),
                ("connectionId", s(id)),
                ("tokenHash", s(&format!("t-{id}"))),
                ("ttl", ttl.clone()),
            ])
        })
        .collect();
    let members = ids
        .iter()
        .map(|id| {
            row(vec![
                ("room", s(LOBBY)),
                ("connectionId", s(id)),
                ("userName", s(&format!("u{id}"))),
                ("ttl", ttl.clone()),
            ])
        })
        .collect();
    bulk_put(client, "Connections", connections).await?;
    bulk_put(client, "Names", names).await?;
    bulk_put(client, "Members", members).await?;
    Ok(ids)
}

type BenchChat<'a> = Chat<'a, DynamoStore, Retrying<&'a Accepting>>;

/// Hands `frame` from `sender` to the handlers; the reply, the handler's time (ms) and
/// what DynamoDB read meanwhile.
async fn handle(
    chat: &BenchChat<'_>,
    counter: &ItemsRead,
    sender: &str,
    frame: Value,
) -> Result<(Value, f64, u64)> {
    let text = frame.to_string();
    counter.take();
    let started = Instant::now();
    let reply = chat
        .frame(Route::of_frame(&text), sender, Frame::Text(&text))
        .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (items, operations) = counter.take();
    if operations.contains(&"Scan") {
        bail!("{text} scanned a table: {operations:?}");
    }
    let reply = reply.with_context(|| format!("no reply to {text}"))?;
    Ok((serde_json::from_str(&reply.to_json())?, ms, items))
}

/// `count` messages from `sender` to `room`, each checked to reach `recipients`.
async fn messages(
    chat: &BenchChat<'_>,
    counter: &ItemsRead,
    sender: &str,
    room: &str,
    recipients: u64,
    count: usize,
) -> Result<Series> {
    let (mut items, mut ms) = (Vec::new(), Vec::new());
    // The first few are not timed: they open the SDK's connections to dynalite.
    for j in 0..WARM_UP + count {
        let (reply, took, read) = handle(
            chat,
            counter,
            sender,
            json!({"action":"message","room":room,"message":format!("{room} {j}"),"requestId":"m"}),
        )
        .await?;
        if reply["action"] != "sent" || reply["delivered"].as_u64() != Some(recipients) {
            bail!("message {j} to {room}: expected `sent` to {recipients}, got {reply}");
        }
        if j >= WARM_UP {
            items.push(read as f64);
            ms.push(took);
        }
    }
    Ok(Series::new(items, ms))
}

/// `count` `history` requests of `limit` messages, each checked to return a full page
/// with more behind it.
async fn history_pages(
    chat: &BenchChat<'_>,
    counter: &ItemsRead,
    reader: &str,
    request: Value,
    limit: usize,
    count: usize,
) -> Result<Series> {
    let (mut items, mut ms) = (Vec::new(), Vec::new());
    for j in 0..WARM_UP + count {
        let (reply, took, read) = handle(chat, counter, reader, request.clone()).await?;
        let page = reply["messages"].as_array().map(Vec::len);
        if reply["action"] != "history" || page != Some(limit) || reply["more"] != true {
            bail!("{request}: expected {limit} messages and more, got {reply}");
        }
        if j >= WARM_UP {
            items.push(read as f64);
            ms.push(took);
        }
    }
    Ok(Series::new(items, ms))
}

/// Measures it all on a fresh dynalite: `others` connections in the lobby, 10 of them
/// also in room `small` (and in room `history`, which holds `stored` messages).
pub async fn measure(
    others: usize,
    per_series: usize,
    stored: usize,
    page: usize,
) -> Result<Measured> {
    let dynalite = webchat_testkit::Dynalite::start();
    let counter = ItemsRead::default();
    let config = local_client(&dynalite.endpoint())
        .config()
        .to_builder()
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let store = DynamoStore::new(
        client.clone(),
        TableNames {
            connections: "Connections".into(),
            names: "Names".into(),
            members: "Members".into(),
            messages: "Messages".into(),
        },
    );
    store.create_tables_if_missing().await?;
    let started = Instant::now();
    let ids = populate(&client, others).await?;
    // Ten of them, spread over the table, are in a small room.
    let small: Vec<&String> = ids.iter().step_by((others / SMALL_ROOM).max(1)).collect();
    for id in &small {
        store.join(id, &format!("u{id}"), "small").await?;
    }
    let members = store.members("small").await?.len();
    let everyone = store.members(LOBBY).await?.len();
    if members != SMALL_ROOM.min(others) || everyone != others {
        bail!("set-up: {members} members in the small room, {everyone} in the lobby");
    }
    println!(
        "    {others} connections in the lobby, {members} of them in room small ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let gateway = Accepting::default();
    let retrying = Retrying::new(&gateway);
    // The rate limit is still applied (one UpdateItem per frame, as on AWS), with a
    // budget this sender cannot use up.
    let chat: BenchChat<'_> = Chat::new(&store, &retrying).with_limits(Limits::UNLIMITED);
    let sender = small[0].as_str();

    println!("    {per_series} messages to room small");
    let small_room = messages(
        &chat,
        &counter,
        sender,
        "small",
        members as u64 - 1,
        per_series,
    )
    .await?;
    println!("    {per_series} messages to the lobby");
    let lobby = messages(
        &chat,
        &counter,
        sender,
        LOBBY,
        everyone as u64 - 1,
        per_series,
    )
    .await?;

    println!("    storing {stored} messages in room history");
    store.join(sender, &format!("u{sender}"), "history").await?;
    // One a second, ending a little before now, so the newest are the latest page.
    let first = now_ms() - (stored as i64 + 60) * 1000;
    let expires_at = now_ms() / 1000 + 7 * 24 * 3600;
    let stored_messages: Vec<StoredMessage> = (0..stored)
        .map(|k| {
            let timestamp = (first + k as i64 * 1000) as u64;
            StoredMessage {
                room: "history".to_string(),
                message_id: new_message_id(timestamp),
                sender: format!("u{sender}"),
                sender_id: sender.to_string(),
                message: format!("stored message {k}, about as long as a chat line is"),
                timestamp,
                expires_at,
            }
        })
        .collect();
    let store_ref = &store;
    let mut appends = futures::stream::iter(&stored_messages)
        .map(|message| store_ref.append(message))
        .buffer_unordered(8);
    while let Some(appended) = appends.next().await {
        appended?;
    }
    drop(appends);
    let middle = &stored_messages[stored / 2].message_id;

    println!("    {per_series} requests for the latest page of {page}");
    let history_latest = history_pages(
        &chat,
        &counter,
        sender,
        json!({"action":"history","room":"history","limit":page,"requestId":"h"}),
        page,
        per_series,
    )
    .await?;
    println!("    {per_series} requests for the page of {page} before message {middle}");
    let history_before = history_pages(
        &chat,
        &counter,
        sender,
        json!({"action":"history","room":"history","limit":page,"before":middle,"requestId":"h"}),
        page,
        per_series,
    )
    .await?;
    let pushes = gateway.pushes.load(Ordering::Relaxed);
    println!(
        "    done in {:.1} s ({pushes} pushes accepted)",
        started.elapsed().as_secs_f64()
    );
    drop(dynalite);
    Ok(Measured {
        small_room,
        lobby,
        history_latest,
        history_before,
    })
}
