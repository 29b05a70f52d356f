//! `webchat-bench`: measures what issue 6 promises and writes `target/bench/results.json`.
//!
//! Figures (goals for a 2-core machine, in the `*_GOAL` constants below):
//! - the handler's CPU per push (`PostToConnection` through the backend's management
//!   client, to a stub answering 200);
//! - broadcast fan-out on `webchat-local` with 1,000 clients, 50 broadcasts: p50 and p99 of
//!   the time until every client has each one;
//! - the same with 200 clients × 20 broadcasts and connections in DynamoDB (dynalite), as
//!   a deployment keeps them: p50, p99 and deliveries per second of broadcasting;
//! - the same 1,000 clients all in one room besides the lobby, 50 broadcasts to the room:
//!   p50, p99 and deliveries per second, beside the lobby's;
//! - on dynalite, through the handlers: DynamoDB items read and handler time per
//!   message to a 10-member room among 1,000 connections (≤ 20 items: the room's
//!   members, not everyone) and to the 1,000-member lobby, and the time to answer a
//!   `history` page of 50 in a room of 550 messages (`rooms.rs`);
//! - sustained deliveries per second with 200 clients all sending;
//! - Lambda init, exec to first `GET /runtime/invocation/next` (≤ 20 ms), and one warm
//!   invocation;
//! - the Lambda zip (≤ 6 MB) and the UI's wasm + js, raw, gzip and brotli (goals in
//!   `webchat_testkit::ui_bundle`), and what a browser downloads of them from
//!   `webchat-local` with `Accept-Encoding: br, gzip` (`download.rs`);
//! - `webchat-local` peak RSS with 1,000 connections (≤ 100 MB);
//! - the UI's first paint in headless Chromium (no goal; see `first_paint.rs`), or with
//!   `--paired-dist OLD` that of another build of the UI and of `dist/` in one interleaved
//!   run, so that a change to the UI is compared on the same machine at the same time;
//! - `webchat-local --template` (the functions' real binaries behind the Lambda Runtime
//!   API): cold start, a warm invocation and the 1,000-client broadcast
//!   (`template_mode.rs`);
//! - big rooms of 1,000, 5,000 and 10,000 members: broadcast p50 and p99 through the
//!   fan-out workers (p99 ≤ 1 s at 10,000), and `target/bench/big-rooms.svg`, every
//!   `big room` row plotted against the room's size (`big_rooms.rs`);
//! - big rooms (`presence.rs`): 1,000 / 5,000 / 10,000 clients registering into one
//!   lobby (10,000 in ≤ 10 s), and the pushes one more arrival causes besides the
//!   room's member count (none);
//! - `webchat-local`'s RSS growth while one client reads nothing and another floods 20,000
//!   × 4 KB broadcasts (≤ 16 MB), and the other clients' delivery latency meanwhile.
//!
//! `webchat-local` runs as a release child process (`target/release/webchat-local`) so the
//! bench's clients never share its runtime; everything stays on 127.0.0.1, and every loop
//! is bounded in count and time. `cargo xtask bench` builds what it needs and runs this.

mod big_rooms;
mod download;
mod first_paint;
mod lambda;
mod local;
mod metrics_cost;
mod presence;
mod push;
mod rooms;
mod slow_reader;
mod template_mode;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use webchat_testkit::{join_many, ui_bundle, Inbox};

/// One row of results.json.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    name: String,
    /// A number, or `"not built"` / `"failed: …"` when it could not be measured.
    value: serde_json::Value,
    unit: String,
    /// Human-readable goal, e.g. `"≤ 100"`; null when the figure is informative only.
    goal: Option<String>,
    /// Whether the value meets the goal; null when there is no goal or no value.
    meets: Option<bool>,
}

#[derive(Clone, Copy)]
enum Goal {
    None,
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn text(self) -> Option<String> {
        match self {
            Goal::None => None,
            Goal::AtMost(v) => Some(format!("≤ {}", trim(v))),
            Goal::AtLeast(v) => Some(format!("≥ {}", trim(v))),
        }
    }

    fn meets(self, value: f64) -> Option<bool> {
        match self {
            Goal::None => None,
            Goal::AtMost(v) => Some(value <= v),
            Goal::AtLeast(v) => Some(value >= v),
        }
    }
}

/// The handler's CPU per `PostToConnection`: on AWS a 128 MB function has about 1/14 of
/// a vCPU, so this decides how long a broadcast takes there.
const PUSH_CPU_GOAL: Goal = Goal::AtMost(60.0);
/// Until a 1,000-client broadcast reached everyone.
const BROADCAST_P99_GOAL: Goal = Goal::AtMost(100.0);
/// DynamoDB items read by a message to a 10-member room among 1,000 connections: about
/// ten (its members, its sender's row), not a thousand.
const SMALL_ROOM_ITEMS_GOAL: Goal = Goal::AtMost(20.0);
/// Deliveries per second with 200 clients all sending.
const SUSTAINED_GOAL: Goal = Goal::AtLeast(15_500.0);

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

fn measured(name: &str, value: f64, unit: &str, goal: Goal) -> Figure {
    Figure {
        name: name.to_string(),
        value: json!(value),
        unit: unit.to_string(),
        goal: goal.text(),
        meets: goal.meets(value),
    }
}

fn unmeasured(name: &str, why: &str, unit: &str, goal: Goal) -> Figure {
    Figure {
        name: name.to_string(),
        value: json!(why),
        unit: unit.to_string(),
        goal: goal.text(),
        meets: None,
    }
}

struct Options {
    root: PathBuf,
    local_bin: PathBuf,
    lambda_bin: PathBuf,
    out: PathBuf,
    fanout_clients: usize,
    broadcasts: usize,
    throughput_clients: usize,
    throughput_secs: u64,
    dynamo_clients: usize,
    dynamo_broadcasts: usize,
    room_broadcasts: usize,
    room_others: usize,
    room_series: usize,
    history_stored: usize,
    /// Another build of the UI to measure first paint against, paired with `dist/`.
    paired_dist: Option<PathBuf>,
    paired_rounds: usize,
    template_clients: usize,
    template_broadcasts: usize,
    big_rooms: Vec<usize>,
    big_room_broadcasts: usize,
    presence_sizes: Vec<usize>,
    only: Option<Vec<String>>,
}

const USAGE: &str = "webchat-bench [--root DIR] [--local-bin PATH] [--lambda-bin PATH] [--out PATH]
              [--fanout-clients N] [--broadcasts N] [--throughput-clients N]
              [--throughput-secs N] [--dynamo-clients N] [--dynamo-broadcasts N]
              [--room-broadcasts N (0: none)] [--room-others N] [--room-series N]
              [--history-stored N] [--paired-dist OLD_DIST [--paired-rounds N]]
              [--template-clients N] [--template-broadcasts N]
              [--big-rooms N,N,… (members)] [--big-room-broadcasts N]
              [--presence-sizes N,N,… (clients)]
              [--only push,fanout,rooms,dynamo,throughput,lambda,sizes,firstpaint,slowreader,template,bigrooms,presence,metrics]";

/// `1000,5000,10000` as room sizes.
fn room_sizes(list: &str) -> Result<Vec<usize>> {
    list.split(',')
        .map(|n| {
            n.trim()
                .parse()
                .with_context(|| format!("{n:?} is not a size"))
        })
        .collect()
}

fn options() -> Result<Options> {
    let default_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut root = default_root;
    let mut local_bin = None;
    let mut lambda_bin = None;
    let mut out = None;
    let mut options = Options {
        root: PathBuf::new(),
        local_bin: PathBuf::new(),
        lambda_bin: PathBuf::new(),
        out: PathBuf::new(),
        fanout_clients: 1000,
        broadcasts: 50,
        throughput_clients: 200,
        throughput_secs: 10,
        dynamo_clients: 200,
        dynamo_broadcasts: 20,
        room_broadcasts: 50,
        room_others: 1000,
        room_series: 100,
        history_stored: 550,
        paired_dist: None,
        paired_rounds: 10,
        template_clients: 1000,
        template_broadcasts: 50,
        big_rooms: big_rooms::SIZES.to_vec(),
        big_room_broadcasts: 20,
        presence_sizes: presence::SIZES.to_vec(),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--root" => root = PathBuf::from(value()?),
            "--local-bin" => local_bin = Some(PathBuf::from(value()?)),
            "--lambda-bin" => lambda_bin = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--fanout-clients" => options.fanout_clients = value()?.parse()?,
            "--broadcasts" => options.broadcasts = value()?.parse()?,
            "--throughput-clients" => options.throughput_clients = value()?.parse()?,
            "--throughput-secs" => options.throughput_secs = value()?.parse()?,
            "--dynamo-clients" => options.dynamo_clients = value()?.parse()?,
            "--dynamo-broadcasts" => options.dynamo_broadcasts = value()?.parse()?,
            "--room-broadcasts" => options.room_broadcasts = value()?.parse()?,
            "--room-others" => options.room_others = value()?.parse()?,
            "--room-series" => options.room_series = value()?.parse()?,
            "--history-stored" => options.history_stored = value()?.parse()?,
            "--paired-dist" => options.paired_dist = Some(PathBuf::from(value()?)),
            "--paired-rounds" => options.paired_rounds = value()?.parse()?,
            "--template-clients" => options.template_clients = value()?.parse()?,
            "--template-broadcasts" => options.template_broadcasts = value()?.parse()?,
            "--big-rooms" => options.big_rooms = room_sizes(&value()?)?,
            "--big-room-broadcasts" => options.big_room_broadcasts = value()?.parse()?,
            "--presence-sizes" => options.presence_sizes = room_sizes(&value()?)?,
            "--only" => {
                options.only = Some(value()?.split(',').map(str::to_string).collect());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if options.fanout_clients < 2
        || options.throughput_clients < 2
        || options.dynamo_clients < 2
        || options.broadcasts == 0
        || options.dynamo_broadcasts == 0
        || options.template_clients < 2
        || options.template_broadcasts == 0
    {
        bail!("need at least 2 clients and 1 broadcast");
    }
    if options.paired_rounds == 0 {
        bail!("--paired-rounds needs at least 1 round");
    }
    if options.room_others < rooms::SMALL_ROOM
        || options.room_series == 0
        || options.history_stored <= 2 * HISTORY_PAGE
    {
        bail!(
            "need at least {} connections, 1 message per series and over {} stored messages",
            rooms::SMALL_ROOM,
            2 * HISTORY_PAGE
        );
    }
    options.local_bin = local_bin.unwrap_or_else(|| root.join("target/release/webchat-local"));
    options.lambda_bin = lambda_bin.unwrap_or_else(|| root.join("target/release/webchat-lambda"));
    options.out = out.unwrap_or_else(|| root.join("target/bench/results.json"));
    options.root = root;
    Ok(options)
}

impl Options {
    fn wants(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|p| p == part))
    }
}

fn step(text: &str) {
    println!("bench: {text}");
    let _ = std::io::stdout().flush();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank; `as` saturates, and the rank is clamped to the values anyway.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// When each broadcast of a series reached everyone, and each delivery arrived, in ms
/// since it was sent; both sorted.
struct Timed {
    completions: Vec<f64>,
    deliveries: Vec<f64>,
}

impl Timed {
    /// Broadcast completion times (send to last arrival), p50 and p99, in ms.
    fn p50_p99(&self) -> (f64, f64) {
        (
            percentile(&self.completions, 50.0),
            percentile(&self.completions, 99.0),
        )
    }

    /// Deliveries per second of broadcasting: all deliveries over the time from each
    /// send to its last arrival.
    fn rate(&self, recipients: usize) -> f64 {
        let busy: f64 = self.completions.iter().sum::<f64>() / 1000.0;
        (self.completions.len() * recipients) as f64 / busy
    }

    /// The rows of a series of broadcasts to `recipients` each: completion p50 and p99
    /// (against `p99_goal`) and deliveries per second, named `label: …`.
    fn push_figures(
        &self,
        figures: &mut Vec<Figure>,
        label: &str,
        recipients: usize,
        p99_goal: Goal,
    ) {
        latency_figures(figures, label, self.p50_p99(), p99_goal);
        figures.push(measured(
            &format!("{label}: deliveries per second of broadcasting"),
            self.rate(recipients).round(),
            "deliveries/s",
            Goal::None,
        ));
    }
}

/// `broadcasts` broadcasts (to the lobby, or to `room` when every peer is in it), one at
/// a time from successive peers, each timed until every other peer has it.
async fn one_at_a_time(
    peers: &mut [webchat_testkit::Client],
    inbox: &Inbox,
    broadcasts: usize,
    tag: &str,
    room: Option<&str>,
) -> Result<Timed> {
    let clients = peers.len();
    // Deliveries counted before the first broadcast (announcements) are not ours.
    let already = inbox.count();
    drop(inbox.take());
    let mut completions = Vec::with_capacity(broadcasts);
    let mut all_deliveries = Vec::with_capacity(broadcasts * (clients - 1));
    for j in 0..broadcasts {
        let sender = j % clients;
        let text = format!("{tag}-{j}");
        let mut frame = json!({"action":"message","message":text,"requestId":format!("f{j}")});
        if let Some(room) = room {
            frame["room"] = json!(room);
        }
        let sent_at = Instant::now();
        let reply = peers[sender].request(frame).await?;
        if reply["action"] != "sent" {
            bail!("broadcast {j}: {reply}");
        }
        // Broadcasts go one at a time: the inbox holds this one's deliveries only.
        let complete = inbox
            .wait_for(already + (j + 1) * (clients - 1), Duration::from_secs(30))
            .await;
        let arrivals = inbox.take();
        if !complete || arrivals.len() != clients - 1 || arrivals.iter().any(|d| d.message != text)
        {
            bail!(
                "broadcast {j} reached {} of {} clients in 30 s ({} deliveries of other text)",
                arrivals.iter().filter(|d| d.message == text).count(),
                clients - 1,
                arrivals.iter().filter(|d| d.message != text).count()
            );
        }
        let since_sent = |d: &webchat_testkit::Delivery| {
            d.arrived.saturating_duration_since(sent_at).as_secs_f64() * 1000.0
        };
        completions.push(arrivals.iter().map(since_sent).fold(0.0, f64::max));
        all_deliveries.extend(arrivals.iter().map(since_sent));
        if (j + 1) % 10 == 0 {
            println!(
                "    {:>3} / {broadcasts} broadcasts, last one complete in {:.1} ms",
                j + 1,
                completions[j]
            );
        }
        // A short pause so one broadcast's tail never overlaps the next one's start.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    completions.sort_by(f64::total_cmp);
    all_deliveries.sort_by(f64::total_cmp);
    Ok(Timed {
        completions,
        deliveries: all_deliveries,
    })
}

/// Fan-out and memory: 1,000 clients on a fresh gateway, then broadcasts one at a time.
async fn fanout(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    let clients = options.fanout_clients;
    let broadcasts = options.broadcasts;
    step(&format!(
        "fan-out: starting webchat-local, registering {clients} clients"
    ));
    let gateway = local::LocalGateway::start(&options.local_bin)?;
    let inbox = Inbox::new();
    let started = Instant::now();
    let mut peers = join_many(&gateway.url, clients, "fan", 16, &inbox).await?;
    let joined = started.elapsed();
    let (_, rss_joined) = gateway.memory()?;
    let fds_joined = gateway.open_fds()?;
    figures.push(measured(
        &format!("{clients} clients connect and register"),
        round(joined.as_secs_f64(), 1),
        "s",
        Goal::None,
    ));
    // Let the last announcements drain before timing anything.
    tokio::time::sleep(Duration::from_millis(500)).await;

    step(&format!("fan-out: {broadcasts} broadcasts, one at a time"));
    let timed = one_at_a_time(&mut peers, &inbox, broadcasts, "fanout", None).await?;
    let (hwm, _) = gateway.memory()?;
    let label = format!("broadcast to {clients} clients, all delivered");
    timed.push_figures(figures, &label, clients - 1, BROADCAST_P99_GOAL);
    figures.push(measured(
        "single delivery latency within a broadcast: p50",
        round(percentile(&timed.deliveries, 50.0), 1),
        "ms",
        Goal::None,
    ));
    figures.push(measured(
        &format!("webchat-local RSS, {clients} idle registered connections"),
        round(rss_joined as f64 / 1e6, 1),
        "MB",
        Goal::None,
    ));
    figures.push(measured(
        &format!("webchat-local open file descriptors, {clients} idle registered connections"),
        fds_joined as f64,
        "fds",
        Goal::None,
    ));
    figures.push(measured(
        &format!("webchat-local peak RSS (VmHWM), {clients} connections"),
        round(hwm as f64 / 1e6, 1),
        "MB",
        Goal::AtMost(100.0),
    ));
    if options.room_broadcasts > 0 {
        room_fanout(options, &mut peers, &inbox, figures).await?;
    }
    step("fan-out: closing clients");
    drop(gateway);
    for peer in peers.drain(..) {
        peer.close().await;
    }
    Ok(())
}

/// The fan-out's clients all join one room (they stay in the lobby), then broadcasts go
/// to the room: a room's fan-out reads its `Members` partition where the lobby's did,
/// and should cost the same per delivery.
async fn room_fanout(
    options: &Options,
    peers: &mut [webchat_testkit::Client],
    inbox: &Inbox,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    use futures::StreamExt;
    const ROOM: &str = "big";
    let clients = peers.len();
    let broadcasts = options.room_broadcasts;
    step(&format!(
        "room fan-out: all {clients} clients join room {ROOM}"
    ));
    let started = Instant::now();
    let every = (clients / 10).max(1);
    let mut joining = futures::stream::iter(peers.iter_mut())
        .map(|peer| async move {
            let reply = peer
                .request(json!({"action":"join","room":ROOM,"requestId":"j"}))
                .await?;
            if reply["action"] != "joined" {
                bail!("{} joining {ROOM}: {reply}", peer.name);
            }
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(16);
    let mut joined = 0;
    while let Some(result) = joining.next().await {
        result?;
        joined += 1;
        if joined % every == 0 {
            println!(
                "    {joined:>5} / {clients} clients in room {ROOM} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(joining);
    figures.push(measured(
        &format!("{clients} clients join one room"),
        round(started.elapsed().as_secs_f64(), 1),
        "s",
        Goal::None,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    step(&format!(
        "room fan-out: {broadcasts} broadcasts to room {ROOM}, one at a time"
    ));
    let timed = one_at_a_time(peers, inbox, broadcasts, "room", Some(ROOM)).await?;
    let label = format!("broadcast to a {clients}-member room (not the lobby), all delivered");
    timed.push_figures(figures, &label, clients - 1, Goal::None);
    Ok(())
}

/// The page size of the history figures.
const HISTORY_PAGE: usize = 50;

/// What a message costs DynamoDB as its room grows, not as the chat does, and what a
/// page of history takes: see `rooms.rs`.
async fn room_costs(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    let others = options.room_others;
    let series = options.room_series;
    let stored = options.history_stored;
    let small = format!(
        "message to a {}-member room among {others} connections, dynalite",
        rooms::SMALL_ROOM
    );
    let lobby = format!("message to the {others}-member lobby, dynalite");
    let items = format!("DynamoDB items read (most of {series} messages)");
    let history =
        format!("history page of {HISTORY_PAGE} in a room of {stored} messages, dynalite");
    if !webchat_testkit::dynalite_modules()
        .join("dynalite")
        .is_dir()
    {
        figures.push(unmeasured(
            &format!("{small}: {items}"),
            "not installed (dynalite)",
            "items",
            SMALL_ROOM_ITEMS_GOAL,
        ));
        return Ok(());
    }
    step(&format!(
        "rooms on dynalite: {others} connections, {series} messages to a {}-member room and {series} to the lobby, {series} × 2 history pages",
        rooms::SMALL_ROOM
    ));
    let m = rooms::measure(others, series, stored, HISTORY_PAGE).await?;
    let most = |s: &rooms::Series| s.items.last().copied().unwrap_or(f64::NAN);
    let ms = |s: &rooms::Series, p| round(percentile(&s.ms, p), 2);
    figures.push(measured(
        &format!("{small}: {items}"),
        most(&m.small_room),
        "items",
        SMALL_ROOM_ITEMS_GOAL,
    ));
    for (p, name) in [(50.0, "p50"), (99.0, "p99")] {
        figures.push(measured(
            &format!("{small}: handler time {name}"),
            ms(&m.small_room, p),
            "ms",
            Goal::None,
        ));
    }
    figures.push(measured(
        &format!("{lobby}: {items}"),
        most(&m.lobby),
        "items",
        Goal::None,
    ));
    for (p, name) in [(50.0, "p50"), (99.0, "p99")] {
        figures.push(measured(
            &format!("{lobby}: handler time {name}"),
            ms(&m.lobby, p),
            "ms",
            Goal::None,
        ));
    }
    for (series_name, s) in [("latest", &m.history_latest), ("before", &m.history_before)] {
        println!(
            "    history {series_name}: {} items read per request",
            most(s)
        );
        for (p, name) in [(50.0, "p50"), (99.0, "p99")] {
            figures.push(measured(
                &format!("{history}: {series_name} page, handler time {name}"),
                ms(s, p),
                "ms",
                Goal::None,
            ));
        }
    }
    Ok(())
}

async fn push_cost(figures: &mut Vec<Figure>) -> Result<()> {
    step("push: CPU of the pushing thread, PostToConnection to a stub answering 200");
    let cost = tokio::task::spawn_blocking(push::measure)
        .await
        .context("push measurement")??;
    figures.push(measured(
        "handler CPU per push (PostToConnection, keep-alive, local stub; median of 5 × 5000)",
        round(cost.cpu_per_push_us, 1),
        "µs",
        PUSH_CPU_GOAL,
    ));
    figures.push(measured(
        "pushes per second, one current-thread handler (64 in flight)",
        cost.pushes_per_sec.round(),
        "pushes/s",
        Goal::None,
    ));
    Ok(())
}

/// Broadcasts as a deployment runs them: connections and names in DynamoDB (dynalite),
/// so every fan-out queries the room's members in DynamoDB before pushing.
async fn fanout_on_dynamo(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    let clients = options.dynamo_clients;
    let broadcasts = options.dynamo_broadcasts;
    let label = format!("broadcast to {clients} clients, connections in dynalite");
    let modules = webchat_testkit::dynalite_modules();
    if !modules.join("dynalite").is_dir() {
        figures.push(unmeasured(
            &format!("{label}: p99"),
            "not installed (dynalite)",
            "ms",
            Goal::None,
        ));
        return Ok(());
    }
    step(&format!(
        "fan-out on dynalite: starting dynalite and webchat-local, registering {clients} clients"
    ));
    let dynalite = webchat_testkit::Dynalite::start();
    let endpoint = dynalite.endpoint();
    let gateway = local::LocalGateway::start_with(
        &options.local_bin,
        &["--dynamodb-endpoint".as_ref(), endpoint.as_ref()],
    )?;
    let inbox = Inbox::new();
    let mut peers = join_many(&gateway.url, clients, "dyn", 16, &inbox).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    step(&format!(
        "fan-out on dynalite: {broadcasts} broadcasts, one at a time"
    ));
    let timed = one_at_a_time(&mut peers, &inbox, broadcasts, "dynamo", None).await?;
    timed.push_figures(figures, &label, clients - 1, Goal::None);
    drop(gateway);
    for peer in peers {
        peer.close().await;
    }
    drop(dynalite);
    Ok(())
}

/// Throughput: every client broadcasts in a closed loop (next frame once `sent` came back).
async fn throughput(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    let clients = options.throughput_clients;
    let window = Duration::from_secs(options.throughput_secs);
    step(&format!(
        "throughput: starting webchat-local, registering {clients} clients"
    ));
    let gateway = local::LocalGateway::start(&options.local_bin)?;
    let inbox = Inbox::new();
    let peers = join_many(&gateway.url, clients, "tp", 16, &inbox).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    step(&format!(
        "throughput: all {clients} clients broadcasting for {} s (plus 2 s warm-up)",
        window.as_secs()
    ));
    let stop_at = Instant::now() + Duration::from_secs(2) + window;
    let mut tasks = Vec::with_capacity(clients);
    for (i, mut peer) in peers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut frames, mut delivered) = (0u64, 0u64);
            let mut n = 0u64;
            while Instant::now() < stop_at && n < 1_000_000 {
                n += 1;
                let reply = peer
                    .request(json!({"action":"message","message":format!("tp {i} {n}"),"requestId":format!("t{n}")}))
                    .await?;
                frames += 1;
                delivered += reply["delivered"].as_u64().unwrap_or(0);
            }
            Ok::<_, anyhow::Error>((peer, frames, delivered))
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (count_start, time_start) = (inbox.count(), Instant::now());
    let mut last_print = Instant::now();
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Only the count matters here: keep memory flat however long the window.
        drop(inbox.take());
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            let so_far = inbox.count() - count_start;
            println!(
                "    {so_far:>9} deliveries in {:.1} s ({:.0}/s)",
                time_start.elapsed().as_secs_f64(),
                so_far as f64 / time_start.elapsed().as_secs_f64()
            );
        }
    }
    let (count_end, elapsed) = (inbox.count(), time_start.elapsed());
    let rate = (count_end - count_start) as f64 / elapsed.as_secs_f64();
    let mut frames = 0;
    let mut acknowledged = 0;
    let mut peers = Vec::new();
    for task in tasks {
        let (peer, f, d) = task.await.context("sender task")??;
        frames += f;
        acknowledged += d;
        peers.push(peer);
    }
    // Every acknowledged delivery should arrive; a shortfall means lost pushes.
    inbox
        .wait_for(
            usize::try_from(acknowledged).unwrap_or(usize::MAX),
            Duration::from_secs(20),
        )
        .await;
    let received = inbox.count() as u64;
    let expected = frames * (clients as u64 - 1);
    figures.push(measured(
        &format!("sustained deliveries, {clients} clients all sending"),
        rate.round(),
        "deliveries/s",
        SUSTAINED_GOAL,
    ));
    figures.push(measured(
        &format!("broadcasts acknowledged, {clients} clients all sending"),
        round(
            frames as f64 / (window + Duration::from_secs(2)).as_secs_f64(),
            1,
        ),
        "frames/s",
        Goal::None,
    ));
    figures.push(measured(
        "deliveries lost under load (expected − acknowledged)",
        expected.saturating_sub(acknowledged) as f64,
        "deliveries",
        Goal::AtMost(0.0),
    ));
    if received < acknowledged {
        println!("    warning: {acknowledged} deliveries acknowledged, {received} received");
    }
    drop(gateway);
    for peer in peers {
        peer.close().await;
    }
    Ok(())
}

async fn lambda_figures(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    const RUNS: usize = 7;
    let init_name = "Lambda init: exec to first /runtime/invocation/next (median of 7)";
    let warm_name = "Lambda warm invocation: ping (median of 7)";
    if !options.lambda_bin.is_file() {
        figures.push(unmeasured(init_name, "not built", "ms", Goal::AtMost(20.0)));
        figures.push(unmeasured(warm_name, "not built", "ms", Goal::None));
        return Ok(());
    }
    step(&format!(
        "lambda: {RUNS} cold starts of {} against a stub Runtime API",
        options.lambda_bin.display()
    ));
    let stub = lambda::RuntimeStub::start().await?;
    // The pings' one DynamoDB call goes to dynalite, never to AWS.
    let dynalite = webchat_testkit::Dynalite::start();
    let store = webchat_backend::DynamoStore::new(
        webchat_backend::local_client(&dynalite.endpoint()),
        lambda::TABLES.clone(),
    );
    store.create_tables_if_missing().await?;
    let (mut inits, mut firsts, mut warms) = (Vec::new(), Vec::new(), Vec::new());
    for attempt in 0..RUNS {
        for id in lambda::ping_ids(attempt) {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
                .try_into()
                .unwrap_or(i64::MAX);
            webchat_backend::ConnectionStore::add(
                &store,
                webchat_backend::Connection::new(&id, now_ms),
            )
            .await?;
        }
        let run = stub
            .cold_start(&options.lambda_bin, attempt, &dynalite.endpoint())
            .await?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "    run {}: init {:.2} ms, first invocation {:.2} ms, warm invocation {:.2} ms",
            attempt + 1,
            ms(run.init),
            ms(run.first_invocation),
            ms(run.warm_invocation)
        );
        inits.push(ms(run.init));
        firsts.push(ms(run.first_invocation));
        warms.push(ms(run.warm_invocation));
    }
    for list in [&mut inits, &mut firsts, &mut warms] {
        list.sort_by(f64::total_cmp);
    }
    figures.push(measured(
        init_name,
        round(percentile(&inits, 50.0), 2),
        "ms",
        Goal::AtMost(20.0),
    ));
    figures.push(measured(
        "Lambda first invocation after init: ping (median of 7)",
        round(percentile(&firsts, 50.0), 2),
        "ms",
        Goal::None,
    ));
    figures.push(measured(
        warm_name,
        round(percentile(&warms, 50.0), 2),
        "ms",
        Goal::None,
    ));
    Ok(())
}

fn sizes(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    step("sizes: Lambda zip and UI bundle");
    let zip = options
        .root
        .join("target/lambda/webchat-lambda/bootstrap.zip");
    let zip_name = "Lambda zip (webchat-lambda, bootstrap.zip)";
    match std::fs::metadata(&zip) {
        Ok(meta) => figures.push(measured(
            zip_name,
            round(meta.len() as f64 / 1e6, 2),
            "MB",
            Goal::AtMost(6.0),
        )),
        Err(_) => figures.push(unmeasured(zip_name, "not built", "MB", Goal::AtMost(6.0))),
    }

    let raw_name = "UI wasm + js, raw";
    let gzip_name = "UI wasm + js, gzip";
    let brotli_name = "UI wasm + js, brotli";
    let gzip_goal = Goal::AtMost(ui_bundle::kb(ui_bundle::GOAL_GZIP));
    let brotli_goal = Goal::AtMost(ui_bundle::kb(ui_bundle::GOAL_BROTLI));
    let dist = options.root.join("dist");
    match ui_bundle::measure(&dist) {
        Ok(size) => {
            figures.push(measured(
                raw_name,
                round(ui_bundle::kb(size.raw), 1),
                "KB",
                Goal::None,
            ));
            figures.push(measured(
                gzip_name,
                round(ui_bundle::kb(size.gzip), 1),
                "KB",
                gzip_goal,
            ));
            figures.push(measured(
                brotli_name,
                round(ui_bundle::kb(ui_bundle::brotli_size(&dist)?), 1),
                "KB",
                brotli_goal,
            ));
        }
        Err(ui_bundle::BundleError::NotBuilt(_)) => {
            figures.push(unmeasured(raw_name, "not built", "KB", Goal::None));
            figures.push(unmeasured(gzip_name, "not built", "KB", gzip_goal));
            figures.push(unmeasured(brotli_name, "not built", "KB", brotli_goal));
        }
        Err(err) => return Err(err.into()),
    }
    Ok(())
}

/// The UI's wasm + js as a browser downloads them from `webchat-local`, which answers
/// with the precompressed files `cargo xtask ui` writes: held to the brotli goal, since
/// the browser accepts brotli.
async fn ui_download(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    let name = format!(
        "UI download from webchat-local (index.html's wasm + js as sent, Accept-Encoding: {})",
        download::ACCEPT_ENCODING
    );
    let goal = Goal::AtMost(ui_bundle::kb(ui_bundle::GOAL_BROTLI));
    let dist = options.root.join("dist");
    if !dist.join("index.html").is_file() {
        figures.push(unmeasured(&name, "not built", "KB", goal));
        return Ok(());
    }
    step("UI download: index.html's wasm and js from webchat-local");
    let files = download::measure(&options.local_bin, &dist).await?;
    for file in &files {
        println!(
            "    {}: {} bytes ({})",
            file.url,
            file.bytes,
            file.encoding.as_deref().unwrap_or("not compressed")
        );
    }
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    figures.push(measured(&name, round(ui_bundle::kb(bytes), 1), "KB", goal));
    Ok(())
}

/// One client stops reading while another floods: memory and everyone else's latency.
async fn slow_reader_figures(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    step(&format!(
        "slow reader: one client stops reading while another sends {} broadcasts of 4 KB",
        slow_reader::FLOOD
    ));
    let baseline = slow_reader::measure(&options.local_bin, &[], false).await?;
    let measured_run = slow_reader::measure(&options.local_bin, &[], true).await?;
    step(&format!(
        "slow reader: done in {:.1} s (and {:.1} s without the stalled client)",
        measured_run.seconds, baseline.seconds
    ));
    // The flood is also 80 MB of history that the in-memory store keeps (on AWS it is
    // DynamoDB's), with or without a stalled client: what the stalled client itself
    // costs is the difference between the two runs.
    figures.push(measured(
        "webchat-local RSS growth, 20,000 × 4 KB broadcasts with one client reading nothing",
        round(measured_run.rss_growth_bytes as f64 / 1e6, 1),
        "MB",
        Goal::None,
    ));
    figures.push(measured(
        "the same broadcasts with no stalled client (the history kept in memory)",
        round(baseline.rss_growth_bytes as f64 / 1e6, 1),
        "MB",
        Goal::None,
    ));
    figures.push(measured(
        "RSS growth the client reading nothing causes (the two rows above, less)",
        round(
            measured_run
                .rss_growth_bytes
                .saturating_sub(baseline.rss_growth_bytes) as f64
                / 1e6,
            1,
        ),
        "MB",
        Goal::AtMost(16.0),
    ));
    latency_figures(
        figures,
        "delivery latency of the clients still reading, during that flood",
        measured_run.latency_ms,
        Goal::None,
    );
    latency_figures(
        figures,
        "the same flood with no stalled client",
        baseline.latency_ms,
        Goal::None,
    );
    Ok(())
}

/// `{label}: p50` and `{label}: p99`, in ms; the p99 held to `p99_goal`.
fn latency_figures(figures: &mut Vec<Figure>, label: &str, (p50, p99): (f64, f64), p99_goal: Goal) {
    figures.push(measured(
        &format!("{label}: p50"),
        round(p50, 1),
        "ms",
        Goal::None,
    ));
    figures.push(measured(
        &format!("{label}: p99"),
        round(p99, 1),
        "ms",
        p99_goal,
    ));
}

async fn first_paint(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    if let Some(old) = &options.paired_dist {
        return first_paint_paired(options, old, figures).await;
    }
    let name = |moment: &str| {
        format!(
            "UI {moment}: from navigation, headless Chromium (median of {})",
            first_paint::RUNS
        )
    };
    let browser = first_paint::Browser::from_env();
    if let Some(why) = browser.missing() {
        for moment in first_paint::MOMENTS {
            figures.push(unmeasured(&name(moment), &why, "ms", Goal::None));
        }
        return Ok(());
    }
    step(&format!(
        "first paint: {} cold visits of the release UI in headless Chromium",
        first_paint::RUNS
    ));
    let visits =
        first_paint::measure(&options.local_bin, &options.root.join("dist"), &browser).await?;
    for (index, moment) in first_paint::MOMENTS.into_iter().enumerate() {
        let mut times: Vec<f64> = visits.iter().map(|v| v.at(index)).collect();
        times.sort_by(f64::total_cmp);
        figures.push(measured(
            &name(moment),
            round(percentile(&times, 50.0), 1),
            "ms",
            Goal::None,
        ));
    }
    Ok(())
}

/// `--paired-dist OLD`: first paint and app running of `OLD` and of `dist/` in one
/// interleaved run (see [`first_paint::measure_paired`]): the median and p90 of each, and
/// the median of the difference within a round.
async fn first_paint_paired(
    options: &Options,
    old: &Path,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let new = options.root.join("dist");
    let rounds = options.paired_rounds;
    let browser = first_paint::Browser::from_env();
    let label = |moment: &str, which: &str, what: &str| {
        format!("UI {moment}, paired ({rounds} interleaved cold visits each): {which} {what}")
    };
    if let Some(why) = browser.missing() {
        for moment in first_paint::MOMENTS {
            figures.push(unmeasured(
                &label(moment, "old", "median"),
                &why,
                "ms",
                Goal::None,
            ));
        }
        return Ok(());
    }
    step(&format!(
        "first paint, paired: {rounds} rounds of one cold visit to {} and one to {}, alternating",
        old.display(),
        new.display()
    ));
    let [old_visits, new_visits] =
        first_paint::measure_paired(&options.local_bin, old, &new, rounds, &browser).await?;
    for (index, moment) in first_paint::MOMENTS.into_iter().enumerate() {
        let mut old_times: Vec<f64> = old_visits.iter().map(|v| v.at(index)).collect();
        let mut new_times: Vec<f64> = new_visits.iter().map(|v| v.at(index)).collect();
        // Each round's two visits saw the same moment of a shared machine.
        let mut differences: Vec<f64> = new_times
            .iter()
            .zip(&old_times)
            .map(|(new, old)| new - old)
            .collect();
        differences.sort_by(f64::total_cmp);
        old_times.sort_by(f64::total_cmp);
        new_times.sort_by(f64::total_cmp);
        for (which, times) in [("old", &old_times), ("new", &new_times)] {
            let (median, p90) = (percentile(times, 50.0), percentile(times, 90.0));
            let (min, max) = (times[0], times[times.len() - 1]);
            step(&format!(
                "{moment}, {which}: median {median:.1} ms, p90 {p90:.1} ms, range {min:.1} to {max:.1} ms"
            ));
            for (what, value) in [("median", median), ("p90", p90)] {
                figures.push(measured(
                    &label(moment, which, what),
                    round(value, 1),
                    "ms",
                    Goal::None,
                ));
            }
        }
        let median_difference = percentile(&differences, 50.0);
        let slower = differences.iter().filter(|d| **d > 0.0).count();
        step(&format!(
            "{moment}, new minus old in the same round: median {median_difference:+.1} ms, \
             new slower in {slower} of {rounds} rounds"
        ));
        figures.push(measured(
            &label(moment, "new minus old in the same round:", "median"),
            round(median_difference, 1),
            "ms",
            Goal::None,
        ));
    }
    Ok(())
}

fn table(figures: &[Figure]) -> String {
    use std::fmt::Write as _;
    let value = |f: &Figure| match &f.value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let width = figures
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(10);
    let mut out = format!(
        "{:<width$}  {:>14}  {:<14}  {:<10}  meets\n",
        "figure", "value", "unit", "goal"
    );
    for f in figures {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<width$}  {:>14}  {:<14}  {:<10}  {}",
            f.name,
            value(f),
            f.unit,
            f.goal.clone().unwrap_or_default(),
            match f.meets {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
    out
}

async fn run(options: Options) -> Result<()> {
    // A failing part is recorded as such; the other parts still run.
    fn attempt(name: &str, result: Result<()>, figures: &mut Vec<Figure>) {
        if let Err(err) = result {
            println!("bench: {name} failed: {err:#}");
            figures.push(unmeasured(
                name,
                &format!("failed: {err:#}"),
                "",
                Goal::None,
            ));
        }
    }
    let mut figures = Vec::new();
    let started = Instant::now();
    if options.wants("sizes") {
        let result = sizes(&options, &mut figures);
        attempt("sizes", result, &mut figures);
        let result = ui_download(&options, &mut figures).await;
        attempt("UI download", result, &mut figures);
    }
    if options.wants("firstpaint") {
        let result = first_paint(&options, &mut figures).await;
        attempt("first paint", result, &mut figures);
    }
    if options.wants("lambda") {
        let result = lambda_figures(&options, &mut figures).await;
        attempt("lambda", result, &mut figures);
    }
    if options.wants("push") {
        let result = push_cost(&mut figures).await;
        attempt("push", result, &mut figures);
    }
    if options.wants("fanout") {
        let result = fanout(&options, &mut figures).await;
        attempt("fan-out", result, &mut figures);
    }
    if options.wants("rooms") {
        let result = room_costs(&options, &mut figures).await;
        attempt("rooms on dynalite", result, &mut figures);
    }
    if options.wants("dynamo") {
        let result = fanout_on_dynamo(&options, &mut figures).await;
        attempt("fan-out on dynalite", result, &mut figures);
    }
    if options.wants("throughput") {
        let result = throughput(&options, &mut figures).await;
        attempt("throughput", result, &mut figures);
    }
    if options.wants("template") {
        let result = template_mode::figures(&options, &mut figures).await;
        attempt("template mode", result, &mut figures);
    }
    if options.wants("bigrooms") && options.big_room_broadcasts > 0 {
        let result = big_rooms::figures(
            &options,
            &options.big_rooms,
            options.big_room_broadcasts,
            &mut figures,
        )
        .await;
        attempt("big rooms", result, &mut figures);
    }
    if options.wants("presence") {
        let result =
            presence::figures(&options.local_bin, &options.presence_sizes, &mut figures).await;
        attempt("presence", result, &mut figures);
    }
    if options.wants("slowreader") {
        let result = slow_reader_figures(&options, &mut figures).await;
        attempt("slow reader", result, &mut figures);
    }
    // Last: it installs the process's metrics recorder, which the handlers other parts
    // drive in this process would otherwise feed.
    if options.wants("metrics") {
        let result = metrics_cost::figures(&mut figures).await;
        attempt("metrics cost", result, &mut figures);
    }

    if let Some(dir) = options.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&options.out, serde_json::to_string_pretty(&figures)? + "\n")
        .with_context(|| format!("writing {}", options.out.display()))?;
    let svg = options.out.with_file_name("big-rooms.svg");
    match big_rooms::plot(&options.out, &svg) {
        Ok(true) => println!("bench: big rooms plotted in {}", svg.display()),
        Ok(false) => {}
        Err(err) => println!("bench: could not plot the big rooms: {err:#}"),
    }
    println!();
    print!("{}", table(&figures));
    println!(
        "\nbench: done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        options.out.display()
    );
    Ok(())
}

fn main() -> Result<()> {
    let options = options()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(
        clippy::float_cmp,
        reason = "the nearest rank is one of the values, exactly"
    )]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=50).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 25.0);
        assert_eq!(percentile(&values, 99.0), 50.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }

    #[test]
    fn goals_read_as_they_are_written() {
        assert_eq!(Goal::AtMost(100.0).text().as_deref(), Some("≤ 100"));
        assert_eq!(Goal::AtMost(100.0).meets(100.0), Some(true));
        assert_eq!(Goal::AtMost(100.0).meets(100.1), Some(false));
        assert_eq!(Goal::AtLeast(50_000.0).meets(49_999.0), Some(false));
        assert_eq!(Goal::None.meets(1.0), None);
    }

    #[test]
    fn figures_serialise_with_the_fields_xtask_reads() {
        let figure = measured("x", 1.5, "ms", Goal::AtMost(2.0));
        let json = serde_json::to_value(&figure).unwrap();
        assert_eq!(
            json,
            json!({"name":"x","value":1.5,"unit":"ms","goal":"≤ 2","meets":true})
        );
        let missing = unmeasured("zip", "not built", "MB", Goal::AtMost(6.0));
        assert_eq!(
            serde_json::to_value(&missing).unwrap()["meets"],
            json!(null)
        );
    }
}
