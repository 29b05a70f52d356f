//! What one client that stops reading costs everyone else: `webchat-local`'s memory while
//! another client floods the room, and the delivery latency of the clients still reading.

use crate::local::LocalGateway;
use anyhow::{ensure, Result};
use serde_json::json;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};
use webchat_testkit::{join_many, Client, Inbox, StalledReader};

/// Broadcasts in the flood, and their size: near the largest chat message.
pub(crate) const FLOOD: usize = 20_000;
const MESSAGE_CHARS: usize = 4000;
/// Clients that keep reading while the flood goes on.
const READERS: usize = 3;

pub(crate) struct SlowReader {
    /// RSS at its highest during the flood (`VmHWM`), less RSS before it.
    pub rss_growth_bytes: u64,
    /// Send-to-arrival latency at the clients still reading, p50 and p99, in ms.
    pub latency_ms: (f64, f64),
    pub seconds: f64,
}

/// Starts `webchat-local` with `args` (limits raised so one client may flood), connects
/// three readers, a sender and, when `with_stalled_reader`, a client that stops reading,
/// and floods: each broadcast sent once the previous one is acknowledged, so the latency
/// is the gateway's and not the sender's own backlog.
pub(crate) async fn measure(
    local_bin: &Path,
    args: &[&OsStr],
    with_stalled_reader: bool,
) -> Result<SlowReader> {
    let gateway = LocalGateway::start_with(local_bin, args)?;
    let inbox = Inbox::new();
    let _readers = join_many(&gateway.url, READERS, "reader", READERS, &inbox).await?;
    let stalled = if with_stalled_reader {
        Some(StalledReader::join(&gateway.url, "stalled").await?)
    } else {
        None
    };
    let mut sender = Client::join(&gateway.url, "sender").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, rss_before) = gateway.memory()?;

    let padding = "x".repeat(MESSAGE_CHARS);
    let mut sent_at = Vec::with_capacity(FLOOD);
    let mut rss_peak = rss_before;
    let started = Instant::now();
    for i in 0..FLOOD {
        sent_at.push(Instant::now());
        sender
            .request(
                json!({"action":"message","message":format!("{i:06} {padding}"),"requestId":"f"}),
            )
            .await?;
    }
    let expected = FLOOD * READERS;
    while !inbox.wait_for(expected, Duration::from_millis(100)).await {
        ensure!(
            started.elapsed() < Duration::from_mins(10),
            "{} of {expected} deliveries arrived in 600 s",
            inbox.count()
        );
    }
    // The high-water mark catches a peak between any two samples.
    rss_peak = rss_peak.max(gateway.memory()?.0);
    let seconds = started.elapsed().as_secs_f64();

    let mut latencies: Vec<f64> = inbox
        .take()
        .iter()
        .filter_map(|d| {
            let i: usize = d.message.get(..6)?.parse().ok()?;
            Some(d.arrived.duration_since(*sent_at.get(i)?).as_secs_f64() * 1e3)
        })
        .collect();
    ensure!(
        latencies.len() == expected,
        "{} deliveries carried a readable index, of {expected}",
        latencies.len()
    );
    latencies.sort_by(f64::total_cmp);
    drop(stalled);
    Ok(SlowReader {
        rss_growth_bytes: rss_peak.saturating_sub(rss_before),
        latency_ms: (
            crate::percentile(&latencies, 50.0),
            crate::percentile(&latencies, 99.0),
        ),
        seconds,
    })
}
