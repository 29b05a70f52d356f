//! What emitting metrics costs the handler: a `message` to a 10-member room, timed in
//! process as `rooms.rs` times it, with the Lambda's recorder (CloudWatch EMF, flushed
//! after every frame as the Lambda flushes after every invocation, into a sink) and with
//! the no-op recorder a binary without metrics has. The two run interleaved, frame by
//! frame, in one process, so drift in the machine's load hits both alike.
//!
//! Two stores: DynamoDB (dynalite), where the handler spends what it spends on AWS
//! (its DynamoDB requests), which the goal is about; and the in-memory store, where the
//! handler does almost nothing else, so the difference is the recorder's own cost per
//! message in µs.

use anyhow::{bail, Result};
use metrics::NoopRecorder;
use std::time::Instant;
use webchat_backend::{
    ConnectionGateway, ConnectionStore, DynamoStore, Frame, HistoryStore, Limits, MemoryStore,
    PostError, Rules, TableNames,
};
use webchat_shared_types::Route;

/// The room's members, as in `rooms.rs`.
const MEMBERS: usize = 10;
const ROOM: &str = "small";

/// A management API that takes every push at once.
struct Accepting;

impl ConnectionGateway for Accepting {
    async fn post(&self, _: &str, _: &str) -> Result<(), PostError> {
        Ok(())
    }

    async fn delete(&self, _: &str) -> Result<(), PostError> {
        Ok(())
    }

    async fn is_open(&self, _: &str) -> Result<bool, PostError> {
        Ok(true)
    }
}

/// Per-message handler times, sorted, in µs, and each pair's difference (with less
/// without, sorted).
pub(crate) struct Paired {
    pub with_metrics: Vec<f64>,
    pub without: Vec<f64>,
    pub differences: Vec<f64>,
}

impl Paired {
    /// The median pair's difference over the median time without, in per cent: a pair
    /// runs back to back, so the store's own jitter (dynalite is a Node process on a
    /// shared machine) mostly cancels out within it.
    pub(crate) fn cost_percent(&self) -> f64 {
        median(&self.differences) / median(&self.without) * 100.0
    }

    /// Handler time added per message, µs: the median pair's difference.
    pub(crate) fn cost_us(&self) -> f64 {
        median(&self.differences)
    }
}

fn median(sorted: &[f64]) -> f64 {
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

pub(crate) struct Measured {
    pub dynalite: Option<Paired>,
    pub memory: Paired,
}

/// Registers `MEMBERS` connections into room `ROOM`; returns the sender's id.
fn populate<S: ConnectionStore + HistoryStore>(
    runtime: &tokio::runtime::Runtime,
    rules: &Rules<'_, S, Accepting>,
) -> Result<String> {
    runtime.block_on(async {
        for i in 0..MEMBERS {
            let id = format!("bench-{i}");
            rules.connect(&id, None).await?;
            for frame in [
                format!(r#"{{"action":"register","userName":"m{i}","requestId":"r"}}"#),
                format!(r#"{{"action":"join","room":"{ROOM}","requestId":"j"}}"#),
            ] {
                let route = Route::of_frame(&frame);
                let reply = rules.frame(route, &id, Frame::Text(&frame)).await;
                if reply.is_none_or(|r| r.to_json().contains("\"error\"")) {
                    bail!("set-up frame {frame} failed");
                }
            }
        }
        Ok("bench-0".to_string())
    })
}

/// `count` messages each way, interleaved; every one checked to reach the room.
fn paired<S: ConnectionStore + HistoryStore>(
    runtime: &tokio::runtime::Runtime,
    rules: &Rules<'_, S, Accepting>,
    collector: &webchat_telemetry::metrics::EmfCollector,
    sender: &str,
    count: usize,
) -> Result<Paired> {
    let frame =
        format!(r#"{{"action":"message","room":"{ROOM}","message":"hello","requestId":"m"}}"#);
    let one = |emit: bool| -> Result<f64> {
        let started = Instant::now();
        let reply = if emit {
            let reply = runtime.block_on(rules.frame(Route::Message, sender, Frame::Text(&frame)));
            // What the Lambda does after each invocation.
            collector.flush(std::io::sink())?;
            reply
        } else {
            metrics::with_local_recorder(&NoopRecorder, || {
                runtime.block_on(rules.frame(Route::Message, sender, Frame::Text(&frame)))
            })
        };
        let us = started.elapsed().as_secs_f64() * 1e6;
        let expected = format!("\"delivered\":{}", MEMBERS - 1);
        if !reply.is_some_and(|r| r.to_json().contains(&expected)) {
            bail!("a message did not reach the room");
        }
        Ok(us)
    };
    // Untimed: the first frames open connections and fill caches.
    for _ in 0..10 {
        one(true)?;
        one(false)?;
    }
    let (mut with_metrics, mut without) = (Vec::new(), Vec::new());
    for i in 0..count {
        // Alternating which goes first, so neither always follows the other.
        let (with, plain) = if i % 2 == 0 {
            let with = one(true)?;
            (with, one(false)?)
        } else {
            let plain = one(false)?;
            (one(true)?, plain)
        };
        with_metrics.push(with);
        without.push(plain);
    }
    let mut differences: Vec<f64> = with_metrics
        .iter()
        .zip(&without)
        .map(|(with, plain)| with - plain)
        .collect();
    for list in [&mut with_metrics, &mut without, &mut differences] {
        list.sort_by(f64::total_cmp);
    }
    Ok(Paired {
        with_metrics,
        without,
        differences,
    })
}

/// Installs the EMF recorder as this process's (the bench runs this part last: the
/// other parts' in-process handlers would otherwise record into it) and measures.
pub(crate) fn measure(dynalite_count: usize, memory_count: usize) -> Result<Measured> {
    let collector = webchat_telemetry::metrics::install_emf("webchat-bench")?;
    // One thread: the local no-op recorder is a thread's, and block_on keeps the
    // handler on it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let gateway = Accepting;

    let memory_store = MemoryStore::new();
    let rules = Rules::new(&memory_store, &gateway).with_limits(Limits::UNLIMITED);
    let sender = populate(&runtime, &rules)?;
    let memory = paired(&runtime, &rules, collector, &sender, memory_count)?;

    let dynalite = if webchat_testkit::dynalite_modules()
        .join("dynalite")
        .is_dir()
    {
        let dynalite = webchat_testkit::Dynalite::start();
        let store = DynamoStore::new(
            webchat_backend::local_client(&dynalite.endpoint()),
            TableNames {
                connections: "Connections".into(),
                names: "Names".into(),
                members: "Members".into(),
                messages: "Messages".into(),
            },
        );
        runtime.block_on(store.create_tables_if_missing())?;
        let rules = Rules::new(&store, &gateway).with_limits(Limits::UNLIMITED);
        let sender = populate(&runtime, &rules)?;
        let measured = paired(&runtime, &rules, collector, &sender, dynalite_count)?;
        drop(dynalite);
        Some(measured)
    } else {
        None
    };
    Ok(Measured { dynalite, memory })
}

/// Metrics' cost per message, as handler time with them over handler time without.
const METRICS_COST_GOAL: f64 = 2.0;

/// The bench's rows.
pub(crate) async fn figures(figures: &mut Vec<crate::Figure>) -> Result<()> {
    use crate::{measured, round, step, unmeasured, Goal};
    const DYNALITE_FRAMES: usize = 300;
    const MEMORY_FRAMES: usize = 5000;
    step(&format!(
        "metrics: {DYNALITE_FRAMES} messages to a {MEMBERS}-member room on dynalite and {MEMORY_FRAMES} in memory, each with and without the EMF recorder, interleaved"
    ));
    // Its own thread: the measurement runs its own single-threaded runtime.
    let measured_cost = tokio::task::spawn_blocking(|| {
        std::thread::spawn(|| measure(DYNALITE_FRAMES, MEMORY_FRAMES))
            .join()
            .map_err(|_| anyhow::anyhow!("the metrics measurement panicked"))?
    })
    .await??;
    let name = format!(
        "metrics cost per message to a {MEMBERS}-member room, dynalite: handler time added by EMF (median pair of {DYNALITE_FRAMES}, interleaved)"
    );
    match &measured_cost.dynalite {
        Some(paired) => {
            println!(
                "    dynalite: median {:.0} µs with metrics, {:.0} µs without",
                median(&paired.with_metrics),
                median(&paired.without)
            );
            figures.push(measured(
                &name,
                round(paired.cost_percent(), 2),
                "%",
                Goal::AtMost(METRICS_COST_GOAL),
            ));
        }
        None => figures.push(unmeasured(
            &name,
            "not installed (dynalite)",
            "%",
            Goal::AtMost(METRICS_COST_GOAL),
        )),
    }
    let memory = &measured_cost.memory;
    println!(
        "    in memory: median {:.1} µs with metrics, {:.1} µs without",
        median(&memory.with_metrics),
        median(&memory.without)
    );
    figures.push(measured(
        &format!(
            "metrics cost per message to a {MEMBERS}-member room, in-memory store: handler time added (median pair of {MEMORY_FRAMES}, interleaved)"
        ),
        round(memory.cost_us(), 1),
        "µs",
        Goal::None,
    ));
    Ok(())
}
