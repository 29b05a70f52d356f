//! Load: many registered clients on one `webchat-local`, thousands of private messages
//! between random pairs and broadcasts among them, and every single delivery checked:
//! nothing lost, nothing duplicated, nothing delivered to the wrong client.
//!
//! Sizes can be changed without editing the file: `WEBCHAT_LOAD_CLIENTS`,
//! `WEBCHAT_LOAD_PRIVATE`, `WEBCHAT_LOAD_BROADCASTS` (the in-memory run) and
//! `WEBCHAT_LOAD_DYNAMO_CLIENTS`, `..._PRIVATE`, `..._BROADCASTS` (the dynalite run).

use crate::common::start;
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use webchat_backend::Limits;
use webchat_local::Config;
use webchat_testkit::{join_many, Client, ClientError, Delivery, Dynalite, Inbox};

/// Frames in flight at once, across all senders, and registrations at once. The gateway
/// bounds pushes itself (see `simultaneous_broadcasts_from_every_client_all_arrive`);
/// bounding frames too keeps each reply well within the clients' wait on a busy machine,
/// so the test checks correctness, not how long a queue of 1,000 frames takes.
const IN_FLIGHT: usize = 16;
const JOINING_AT_ONCE: usize = 4;

/// One thing a peer sends.
#[derive(Debug, Clone, Copy)]
enum Outgoing {
    /// Private message number `k` to peer `to`.
    Private { k: usize, to: usize },
    /// Broadcast number `j`.
    Broadcast { j: usize },
}

struct Plan {
    clients: usize,
    /// Per sender, what it sends, in order.
    queues: Vec<Vec<Outgoing>>,
    /// Private message `k`: (from, to).
    privates: Vec<(usize, usize)>,
    /// Broadcast `j`: from.
    broadcasts: Vec<usize>,
}

fn plan(clients: usize, private: usize, broadcasts: usize, seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut queues = vec![Vec::new(); clients];
    let mut privates = Vec::with_capacity(private);
    for k in 0..private {
        let from = rng.random_range(0..clients);
        let mut to = rng.random_range(0..clients - 1);
        if to >= from {
            to += 1;
        }
        privates.push((from, to));
        queues[from].push(Outgoing::Private { k, to });
    }
    let mut senders = Vec::with_capacity(broadcasts);
    for j in 0..broadcasts {
        let from = rng.random_range(0..clients);
        senders.push(from);
        // Somewhere among that peer's private messages, not all at the end.
        let at = rng.random_range(0..=queues[from].len());
        queues[from].insert(at, Outgoing::Broadcast { j });
    }
    Plan {
        clients,
        queues,
        privates,
        broadcasts: senders,
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one sender's acknowledgements said: message id per private / broadcast.
#[derive(Default)]
struct Acks {
    privates: Vec<(usize, String)>,
    broadcasts: Vec<(usize, String)>,
}

/// Sends a peer's queue, one frame at a time, each acknowledged by `sent` with the
/// delivered count the protocol promises. `turns` bounds how many frames are in flight
/// across all peers.
async fn run_queue(
    mut peer: Client,
    queue: Vec<Outgoing>,
    ids: Arc<Vec<String>>,
    others: u32,
    turns: Arc<Semaphore>,
) -> Result<(Client, Acks), ClientError> {
    let mut acks = Acks::default();
    for item in queue {
        let _turn = turns.acquire().await.expect("semaphore open");
        let (frame, expected) = match item {
            Outgoing::Private { k, to } => (
                json!({"action":"message","message":format!("p{k}"),"requestId":format!("p{k}"),
                       "receivers":[{"connectionId": ids[to]}]}),
                1,
            ),
            Outgoing::Broadcast { j } => (
                json!({"action":"message","message":format!("b{j}"),"requestId":format!("b{j}")}),
                others,
            ),
        };
        let reply = peer.request(frame).await?;
        assert_eq!(
            reply["action"], "sent",
            "peer {}: {item:?} → {reply}",
            peer.index
        );
        assert_eq!(
            reply["delivered"], expected,
            "peer {}: {item:?} → {reply}",
            peer.index
        );
        let id = reply["messageId"].as_str().expect("messageId").to_string();
        match item {
            Outgoing::Private { k, .. } => acks.privates.push((k, id)),
            Outgoing::Broadcast { j } => acks.broadcasts.push((j, id)),
        }
    }
    Ok((peer, acks))
}

/// Checks every delivery against the plan; returns a list of problems (empty when fine).
fn audit(plan: &Plan, peers: &[Client], acks: &Acks, deliveries: &[Delivery]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut complain = |problem: String| {
        if problems.len() < 20 {
            problems.push(problem);
        }
    };
    let private_ids: HashMap<usize, &str> = acks
        .privates
        .iter()
        .map(|(k, id)| (*k, id.as_str()))
        .collect();
    let broadcast_ids: HashMap<usize, &str> = acks
        .broadcasts
        .iter()
        .map(|(j, id)| (*j, id.as_str()))
        .collect();
    let mut private_seen = vec![0u32; plan.privates.len()];
    // Broadcast j → how many times each peer got it.
    let mut broadcast_seen = vec![vec![0u8; plan.clients]; plan.broadcasts.len()];

    for d in deliveries {
        let me = &peers[d.to];
        if d.receiver_id != me.connection_id || d.receiver_name != me.name {
            complain(format!(
                "peer {} ({}) got a frame addressed to {} ({})",
                d.to, me.connection_id, d.receiver_id, d.receiver_name
            ));
        }
        let (from, expected_id, private) = if let Some(k) = d.message.strip_prefix('p') {
            let k: usize = k.parse().expect("private number");
            let (from, to) = plan.privates[k];
            private_seen[k] += 1;
            if to != d.to {
                complain(format!(
                    "private p{k} for peer {to} arrived at peer {}",
                    d.to
                ));
            }
            (from, private_ids.get(&k).copied(), true)
        } else if let Some(j) = d.message.strip_prefix('b') {
            let j: usize = j.parse().expect("broadcast number");
            let from = plan.broadcasts[j];
            broadcast_seen[j][d.to] = broadcast_seen[j][d.to].saturating_add(1);
            (from, broadcast_ids.get(&j).copied(), false)
        } else {
            complain(format!("unexpected message text {:?}", d.message));
            continue;
        };
        let sender = &peers[from];
        if d.sender_id != sender.connection_id || d.sender != sender.name {
            complain(format!(
                "{} claims sender {} ({}), was {} ({})",
                d.message, d.sender, d.sender_id, sender.name, sender.connection_id
            ));
        }
        if d.private != private {
            complain(format!("{} has private={}", d.message, d.private));
        }
        if expected_id != Some(d.message_id.as_str()) {
            complain(format!(
                "{} arrived with messageId {}, acknowledged as {expected_id:?}",
                d.message, d.message_id
            ));
        }
    }
    for (k, count) in private_seen.iter().enumerate() {
        if *count != 1 {
            complain(format!("private p{k} delivered {count} times"));
        }
    }
    for (j, seen) in broadcast_seen.iter().enumerate() {
        let from = plan.broadcasts[j];
        for (peer, count) in seen.iter().enumerate() {
            let expected = u8::from(peer != from);
            if *count != expected {
                complain(format!(
                    "broadcast b{j} from peer {from} reached peer {peer} {count} times"
                ));
            }
        }
    }
    problems
}

/// Of every two peers, at least one was told about the other (`newUser`): the one that
/// registered first, or both when they registered at the same time. Nobody is told about
/// itself or twice about the same peer.
fn check_announcements(peers: &[Client]) {
    let told: Vec<HashSet<String>> = peers
        .iter()
        .map(|peer| {
            let seen = peer.seen().new_users;
            let set: HashSet<String> = seen.iter().cloned().collect();
            assert_eq!(
                set.len(),
                seen.len(),
                "{} was told twice about a peer",
                peer.name
            );
            assert!(
                !set.contains(&peer.connection_id),
                "{} was told about itself",
                peer.name
            );
            set
        })
        .collect();
    let mut missing = Vec::new();
    for (i, a) in peers.iter().enumerate() {
        for (j, b) in peers.iter().enumerate().skip(i + 1) {
            if !told[i].contains(&b.connection_id) && !told[j].contains(&a.connection_id) {
                missing.push(format!("{} / {}", a.name, b.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} pairs never announced to each other, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

async fn load_run(config: Config, clients: usize, private: usize, broadcasts: usize) -> Result<()> {
    assert!(clients >= 2);
    let started = Instant::now();
    // Capacity, not fair use, is measured here: every client sends as fast as it can.
    let gateway = start(Config {
        limits: Limits::UNLIMITED,
        ..config
    })
    .await;
    let url = gateway.websocket_url();
    let inbox = Inbox::new();

    eprintln!("load: {clients} clients joining");
    let peers = join_many(&url, clients, "load", JOINING_AT_ONCE, &inbox).await?;
    assert_eq!(gateway.open_connections(), clients);
    let joined_in = started.elapsed();
    eprintln!("load: {clients} joined in {:.1} s", joined_in.as_secs_f64());

    let plan = plan(clients, private, broadcasts, 0x5eed_0006);
    let ids: Arc<Vec<String>> = Arc::new(peers.iter().map(|p| p.connection_id.clone()).collect());
    let turns = Arc::new(Semaphore::new(IN_FLIGHT));
    let sending = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (peer, queue) in peers.into_iter().zip(plan.queues.iter().cloned()) {
        tasks.push(tokio::spawn(run_queue(
            peer,
            queue,
            ids.clone(),
            u32::try_from(clients - 1).unwrap(),
            turns.clone(),
        )));
    }
    let mut peers = Vec::with_capacity(clients);
    let mut acks = Acks::default();
    for task in tasks {
        let (peer, mut peer_acks) = task.await??;
        peers.push(peer);
        acks.privates.append(&mut peer_acks.privates);
        acks.broadcasts.append(&mut peer_acks.broadcasts);
    }
    peers.sort_by_key(|p| p.index);
    let expected = private + broadcasts * (clients - 1);
    eprintln!(
        "load: {} frames acknowledged in {:.1} s; waiting for {expected} deliveries",
        private + broadcasts,
        sending.elapsed().as_secs_f64()
    );
    let complete = inbox.wait_for(expected, Duration::from_mins(2)).await;
    // Anything duplicated or misrouted would arrive about now: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deliveries = inbox.take();
    let sent_in = sending.elapsed();
    eprintln!(
        "load: {} deliveries in {:.1} s ({:.0}/s); {:.1} s in all",
        deliveries.len(),
        sent_in.as_secs_f64(),
        deliveries.len() as f64 / sent_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let problems = audit(&plan, &peers, &acks, &deliveries);
    assert!(
        problems.is_empty(),
        "{} of {expected} deliveries arrived; problems:\n{}",
        deliveries.len(),
        problems.join("\n")
    );
    assert!(complete && deliveries.len() == expected);
    check_announcements(&peers);
    assert_eq!(gateway.open_connections(), clients, "nobody was dropped");
    for peer in &peers {
        assert!(
            peer.seen().user_exits.is_empty(),
            "{} saw a userExit",
            peer.name
        );
    }
    // `stop` closes every socket without N `$disconnect`s each announcing to everyone
    // left, which would be another N²/2 pushes for nothing.
    gateway.stop().await;
    drop(peers);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full size: `cargo xtask test` runs it in the load-test profile (docs/testing.md)"]
async fn a_thousand_clients_exchange_twenty_thousand_private_messages_and_fifty_broadcasts(
) -> Result<()> {
    load_run(
        Config::default(),
        env_or("WEBCHAT_LOAD_CLIENTS", 1000),
        env_or("WEBCHAT_LOAD_PRIVATE", 20_000),
        env_or("WEBCHAT_LOAD_BROADCASTS", 50),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full size: `cargo xtask test` runs it in the load-test profile (docs/testing.md)"]
async fn two_hundred_clients_on_the_dynamodb_store_lose_nothing() -> Result<()> {
    let dynalite = Dynalite::start();
    load_run(
        Config {
            dynamodb_endpoint: Some(dynalite.endpoint()),
            ..Config::default()
        },
        env_or("WEBCHAT_LOAD_DYNAMO_CLIENTS", 200),
        env_or("WEBCHAT_LOAD_DYNAMO_PRIVATE", 2_000),
        env_or("WEBCHAT_LOAD_DYNAMO_BROADCASTS", 10),
    )
    .await?;
    drop(dynalite);
    Ok(())
}

/// Every client broadcasting at the same moment. Each fan-out sends up to 64 pushes at
/// once through the management API over HTTP, and here every fan-out shares one process:
/// before the local gateway bounded pushes in flight, 60 simultaneous broadcasts opened
/// thousands of requests against its own HTTP server, pushes outlived the SDK's 5 s
/// attempt timeout (or its connect timeout, or the file descriptor limit), failed without
/// a retry, and their deliveries were lost (`sent` short of 59, messages never arriving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_broadcasts_from_every_client_all_arrive() -> Result<()> {
    const CLIENTS: usize = 60;
    let gateway = start(Config {
        limits: Limits::UNLIMITED,
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let inbox = Inbox::new();
    let peers = join_many(&url, CLIENTS, "all", JOINING_AT_ONCE, &inbox).await?;
    let mut tasks = Vec::new();
    for mut peer in peers {
        tasks.push(tokio::spawn(async move {
            let text = format!("from {}", peer.name);
            let sent = peer
                .request(json!({"action":"message","message":text,"requestId":"all"}))
                .await?;
            Ok::<_, ClientError>((peer, sent["delivered"].as_u64().unwrap_or(0)))
        }));
    }
    let mut short = Vec::new();
    // Kept until the end: a dropped client closes its socket, and the broadcasts still
    // in flight would rightly count it gone.
    let mut peers = Vec::with_capacity(CLIENTS);
    for task in tasks {
        let (peer, delivered) = task.await??;
        if delivered != (CLIENTS - 1) as u64 {
            short.push(format!("{}: {delivered}", peer.name));
        }
        peers.push(peer);
    }
    let expected = CLIENTS * (CLIENTS - 1);
    let arrived = inbox.wait_for(expected, Duration::from_mins(1)).await;
    assert!(
        short.is_empty() && arrived,
        "{} of {expected} deliveries arrived; broadcasts short of {}: {}",
        inbox.count(),
        CLIENTS - 1,
        short.join(", ")
    );
    Ok(())
}
