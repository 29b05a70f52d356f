//! What rooms cost on DynamoDB (dynalite): the items read and the handler's time for a
//! message to a 10-member room beside 1,000 other connections and for one to the
//! 1,000-member lobby, and the time to answer a page of `history`.
//!
//! These drive the handlers (`Rules`) in this process, on a `DynamoStore` and a gateway
//! that accepts every push at once, rather than through `webchat-local
//! --dynamodb-endpoint`. The items read can only be counted on the SDK client the
//! handlers use (an interceptor on it, as `backend/tests/it/dynamo_store.rs` does), which a
//! child process keeps to itself. And the time around `Rules::frame` is then what a
//! Lambda spends on the frame: its DynamoDB requests (the rate-limit update, the
//! sender's row, the history write, the members Query; or the history Query) and
//! building its pushes, without the local gateway's HTTP server, SigV4 check and
//! WebSocket writes, which on AWS are API Gateway's and which the fan-out figures
//! measure already. What sending a push costs the handler is the push-cost figure.

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use webchat_backend::new_message_id;
use webchat_backend::{counting_client, ItemsRead};
use webchat_backend::{
    ConnectionGateway, ConnectionStore, DynamoStore, Frame, HistoryStore, Limits, PostError,
    Retrying, Rules, StoredMessage, TableNames,
};
use webchat_shared_types::{Route, LOBBY};

/// The small room's members.
pub(crate) const SMALL_ROOM: usize = 10;

/// Frames sent untimed before each series.
const WARM_UP: usize = 5;

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
pub(crate) struct Series {
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

pub(crate) struct Measured {
    pub small_room: Series,
    pub lobby: Series,
    pub history_latest: Series,
    pub history_before: Series,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

type BenchChat<'a> = Rules<'a, DynamoStore, Retrying<&'a Accepting>>;

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
pub(crate) async fn measure(
    others: usize,
    per_series: usize,
    stored: usize,
    page: usize,
) -> Result<Measured> {
    let dynalite = webchat_testkit::Dynalite::start();
    let (client, counter) = counting_client(&dynalite.endpoint());
    let store = DynamoStore::new(
        client,
        TableNames {
            connections: "Connections".into(),
            names: "Names".into(),
            members: "Members".into(),
            messages: "Messages".into(),
        },
    );
    store.create_tables_if_missing().await?;
    let started = Instant::now();
    let ids = store.seed_registered(others).await?;
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
    let chat: BenchChat<'_> = Rules::new(&store, &retrying).with_limits(Limits::UNLIMITED);
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
    let first = u64::try_from(now_ms()).unwrap_or(0) - (stored as u64 + 60) * 1000;
    let expires_at = now_ms() / 1000 + 7 * 24 * 3600;
    let stored_messages: Vec<StoredMessage> = (0..stored)
        .map(|k| {
            let timestamp = first + k as u64 * 1000;
            StoredMessage {
                room: "history".to_string(),
                message_id: new_message_id(timestamp),
                sender: format!("u{sender}"),
                sender_id: sender.to_string(),
                message: format!("stored message {k}, about as long as a chat line is"),
                timestamp,
                expires_at,
                to: None,
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
