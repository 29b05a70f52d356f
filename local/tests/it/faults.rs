//! Faults: clients that vanish without closing, lost `$disconnect` events, and the
//! `DynamoDB` store going away mid-run and coming back.

use crate::common::start;
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webchat_local::{Config, Running};
use webchat_testkit::{join_many, Client, ClientError, Dynalite, Inbox};

/// A gateway on a free port with `clients` peers registered on it.
struct Room {
    gateway: crate::common::TestGateway,
    url: String,
    inbox: Arc<Inbox>,
    peers: Vec<Client>,
}

async fn room(
    config: Config,
    clients: usize,
    prefix: &str,
    joining_at_once: usize,
) -> Result<Room> {
    let gateway = start(config).await;
    let url = gateway.websocket_url();
    let inbox = Inbox::new();
    let peers = join_many(&url, clients, prefix, joining_at_once, &inbox).await?;
    Ok(Room {
        gateway,
        url,
        inbox,
        peers,
    })
}

/// API Gateway losing `$disconnect` events: closed sockets leave their rows behind.
fn losing_disconnects() -> Config {
    Config {
        deliver_disconnects: false,
        ..Config::default()
    }
}

/// `(name, connection id)` of each peer, as `userExit` announces them.
fn identities(peers: &[Client]) -> Vec<(String, String)> {
    peers
        .iter()
        .map(|p| (p.name.clone(), p.connection_id.clone()))
        .collect()
}

async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_open(gateway: &Running, expected: usize) {
    assert!(
        eventually(Duration::from_secs(10), || gateway.open_connections()
            == expected)
        .await,
        "expected {expected} open sockets, gateway has {}",
        gateway.open_connections()
    );
}

fn names_in(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["users"]
        .as_array()
        .expect("list has users")
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn sorted(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

/// Waits until every peer saw exactly these `userExit`s (in any order), and no others.
async fn expect_exits(peers: &[Client], exits: &[(String, String)]) {
    let want: HashSet<&(String, String)> = exits.iter().collect();
    for peer in peers {
        let complete = eventually(Duration::from_secs(20), || {
            peer.seen().user_exits.len() >= exits.len()
        })
        .await;
        let seen = peer.seen().user_exits;
        assert!(
            complete && seen.len() == exits.len(),
            "{} saw userExit {seen:?}, expected {exits:?}",
            peer.name
        );
        let got: HashSet<&(String, String)> = seen.iter().collect();
        assert_eq!(got, want, "{} saw the wrong userExits", peer.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_clients_with_lost_disconnects_are_found_gone_by_the_next_fan_out() -> Result<()> {
    let Room {
        gateway,
        url,
        inbox,
        mut peers,
    } = room(losing_disconnects(), 8, "peer", 4).await?;
    let killed: Vec<Client> = peers.split_off(5);
    let exits = identities(&killed);
    for peer in killed {
        peer.kill().await;
    }
    wait_open(&gateway, 5).await;

    // No `$disconnect` ran: the rows are still there and nobody was told.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = peers[1]
        .request(json!({"action":"list","requestId":"before"}))
        .await?;
    assert_eq!(
        names_in(&list),
        ["peer0", "peer2", "peer3", "peer4", "peer5", "peer6", "peer7"],
        "stale rows are listed until a fan-out finds them gone"
    );
    assert!(peers.iter().all(|p| p.seen().user_exits.is_empty()));

    // The next broadcast meets three 410s, deletes the rows and announces the exits;
    // every live client still gets the message.
    let sent = peers[0]
        .request(json!({"action":"message","message":"anyone there?","requestId":"b1"}))
        .await?;
    assert_eq!(sent["action"], "sent", "{sent}");
    assert_eq!(sent["delivered"], 4, "only the live clients count: {sent}");
    assert!(inbox.wait_for(4, Duration::from_secs(10)).await);
    let mut receivers: Vec<usize> = inbox.snapshot().iter().map(|d| d.to).collect();
    receivers.sort_unstable();
    assert_eq!(receivers, [1, 2, 3, 4]);
    expect_exits(&peers, &exits).await;

    // The names are free again, the list is clean, and nothing is announced twice.
    let list = peers[1]
        .request(json!({"action":"list","requestId":"after"}))
        .await?;
    assert_eq!(names_in(&list), ["peer0", "peer2", "peer3", "peer4"]);
    let mut back = Client::join_to(&url, 100, "peer6", &inbox).await?;
    let sent = peers[2]
        .request(json!({"action":"message","message":"welcome back","requestId":"b2"}))
        .await?;
    assert_eq!(sent["delivered"], 5, "{sent}");
    assert!(inbox.wait_for(9, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inbox.count(), 9);
    expect_exits(&peers, &exits).await;
    assert!(back.seen().user_exits.is_empty());
    back.request(json!({"action":"ping","requestId":"still"}))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_message_to_a_vanished_client_cleans_it_up_and_reaches_the_others() -> Result<()>
{
    let Room {
        gateway,
        inbox,
        mut peers,
        ..
    } = room(losing_disconnects(), 4, "pm", 4).await?;
    let gone = peers.pop().unwrap();
    let (gone_name, gone_id) = (gone.name.clone(), gone.connection_id.clone());
    gone.kill().await;
    wait_open(&gateway, 3).await;

    let receivers = json!([{"connectionId": gone_id}, {"connectionId": peers[1].connection_id},
                           {"connectionId": peers[2].connection_id}]);
    let sent = peers[0]
        .request(
            json!({"action":"message","message":"psst","receivers":receivers,"requestId":"pm"}),
        )
        .await?;
    assert_eq!(sent["delivered"], 2, "{sent}");
    assert!(inbox.wait_for(2, Duration::from_secs(10)).await);
    for d in inbox.snapshot() {
        assert!(
            d.private && d.message == "psst" && (d.to == 1 || d.to == 2),
            "{d:?}"
        );
    }
    expect_exits(&peers, &[(gone_name, gone_id)]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_clients_with_normal_disconnects_are_announced_at_once() -> Result<()> {
    // Bound, not `_`: the gateway must outlive the statement.
    let Room {
        gateway: _gateway,
        inbox,
        mut peers,
        ..
    } = room(Config::default(), 8, "kd", 4).await?;
    let killed: Vec<Client> = peers.split_off(5);
    let exits = identities(&killed);
    for peer in killed {
        peer.kill().await;
    }
    // `$disconnect` announces each exit without waiting for a fan-out.
    expect_exits(&peers, &exits).await;
    let sent = peers[4]
        .request(json!({"action":"message","message":"still here","requestId":"b"}))
        .await?;
    assert_eq!(sent["delivered"], 4, "{sent}");
    assert!(inbox.wait_for(4, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inbox.count(), 4);
    expect_exits(&peers, &exits).await;
    Ok(())
}

/// Survivors keep broadcasting while other clients are killed at random moments, with
/// `$disconnect` lost: every survivor's message reaches every other survivor exactly once,
/// and each vanished client is announced exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_during_fan_outs_never_cost_the_others_a_message() -> Result<()> {
    const CLIENTS: usize = 40;
    const DOOMED: usize = 10;
    const ROUNDS: usize = 5;
    const SENDING_AT_ONCE: usize = 4;
    let Room {
        gateway,
        inbox,
        mut peers,
        ..
    } = room(losing_disconnects(), CLIENTS, "chaos", 8).await?;
    let doomed: Vec<Client> = peers.split_off(CLIENTS - DOOMED);
    let survivors = peers;
    let exits = identities(&doomed);

    let killer = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(6);
        for peer in doomed {
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
            peer.kill().await;
        }
    });
    // A few fan-outs at a time: enough to overlap with the kills, few enough that the
    // rounds keep pace with them in a debug build on two busy cores.
    let turns = Arc::new(tokio::sync::Semaphore::new(SENDING_AT_ONCE));
    let mut senders = Vec::new();
    for mut peer in survivors {
        let turns = turns.clone();
        senders.push(tokio::spawn(async move {
            let mut delivered = Vec::new();
            for round in 0..ROUNDS {
                let text = format!("{}#{round}", peer.name);
                let sent = {
                    let _turn = turns.acquire().await.expect("semaphore open");
                    peer.request(json!({"action":"message","message":text,"requestId":text}))
                        .await?
                };
                assert_eq!(sent["action"], "sent", "{sent}");
                delivered.push(sent["delivered"].as_u64().unwrap());
            }
            Ok::<_, ClientError>((peer, delivered))
        }));
    }
    killer.await.unwrap();
    let mut survivors = Vec::new();
    for sender in senders {
        let (peer, delivered) = sender.await??;
        for count in delivered {
            // Every other survivor, plus any doomed client still open at that moment.
            assert!(
                (CLIENTS - DOOMED - 1..CLIENTS).contains(&usize::try_from(count).unwrap()),
                "delivered {count}"
            );
        }
        survivors.push(peer);
    }
    wait_open(&gateway, CLIENTS - DOOMED).await;
    // Sockets killed after the last fan-out are still rows: one more broadcast finds them.
    let sent = survivors[0]
        .request(json!({"action":"message","message":"roll call","requestId":"last"}))
        .await?;
    assert_eq!(sent["delivered"], (CLIENTS - DOOMED - 1) as u64, "{sent}");

    // Survivors get every other survivor's messages, plus the roll call (but its sender).
    let expected = (CLIENTS - DOOMED) * (CLIENTS - DOOMED - 1) * ROUNDS + (CLIENTS - DOOMED - 1);
    let index_of: HashMap<usize, usize> = survivors
        .iter()
        .enumerate()
        .map(|(i, p)| (p.index, i))
        .collect();
    let to_survivors = || {
        inbox
            .snapshot()
            .iter()
            .filter(|d| index_of.contains_key(&d.to))
            .count()
    };
    let _ = eventually(Duration::from_secs(30), || to_survivors() >= expected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(to_survivors(), expected, "deliveries to survivors");
    let mut copies: HashMap<(String, usize), usize> = HashMap::new();
    for d in inbox.snapshot() {
        if index_of.contains_key(&d.to) {
            *copies.entry((d.message.clone(), d.to)).or_default() += 1;
        }
    }
    for sender in &survivors {
        for round in 0..ROUNDS {
            let text = format!("{}#{round}", sender.name);
            for receiver in survivors.iter().filter(|r| r.index != sender.index) {
                let count = copies
                    .get(&(text.clone(), receiver.index))
                    .copied()
                    .unwrap_or(0);
                assert_eq!(count, 1, "{text} reached {} {count} times", receiver.name);
            }
        }
    }
    let list = survivors[1]
        .request(json!({"action":"list","requestId":"list"}))
        .await?;
    assert_eq!(
        names_in(&list),
        sorted(
            survivors
                .iter()
                .filter(|p| p.index != survivors[1].index)
                .map(|p| p.name.clone())
        )
    );
    expect_exits(&survivors, &exits).await;
    Ok(())
}

/// A scratch directory for dynalite's data, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(label: &str) -> ScratchDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("webchat-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A request and how long its answer took.
async fn timed_request(
    client: &mut Client,
    frame: Value,
    wait: Duration,
) -> (Result<Value, ClientError>, Duration) {
    let started = Instant::now();
    let reply = client.request_within(frame, wait).await;
    (reply, started.elapsed())
}

fn assert_internal(reply: Result<Value, ClientError>, took: Duration, request_id: &str) {
    let reply = reply.unwrap_or_else(|err| panic!("{err} (after {took:?})"));
    assert_eq!(reply["action"], "error", "{reply}");
    assert_eq!(reply["code"], "internal", "{reply}");
    assert_eq!(reply["requestId"], request_id, "{reply}");
    eprintln!(
        "faults: {request_id} answered internal in {:.2} s",
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynalite_stopping_mid_run_gives_internal_errors_and_chat_resumes_when_it_returns(
) -> Result<()> {
    let scratch = ScratchDir::new("dynalite-outage");
    let mut dynalite = Dynalite::start_persistent(&scratch.0);
    let gateway = start(Config {
        dynamodb_endpoint: Some(dynalite.endpoint()),
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let inbox = Inbox::new();
    let mut ana = Client::join_to(&url, 0, "ana", &inbox).await?;
    let mut bia = Client::join_to(&url, 1, "bia", &inbox).await?;
    let caio = Client::join_to(&url, 2, "caio", &inbox).await?;
    let sent = ana
        .request(json!({"action":"message","message":"before","requestId":"m0"}))
        .await?;
    assert_eq!(sent["delivered"], 2, "{sent}");
    assert!(inbox.wait_for(2, Duration::from_secs(10)).await);

    tokio::task::block_in_place(|| dynalite.stop());

    // Every frame that needs the store is refused with `internal`, promptly.
    let bound = Duration::from_secs(30);
    let (reply, took) = timed_request(
        &mut ana,
        json!({"action":"message","message":"during","requestId":"m1"}),
        bound,
    )
    .await;
    assert_internal(reply, took, "m1");
    let (reply, took) =
        timed_request(&mut bia, json!({"action":"list","requestId":"l1"}), bound).await;
    assert_internal(reply, took, "l1");
    let (reply, took) = timed_request(
        &mut bia,
        json!({"action":"register","userName":"bianca","requestId":"r1"}),
        bound,
    )
    .await;
    assert_internal(reply, took, "r1");
    // The gateway itself keeps serving: pings pong at once, handshakes get an answer.
    let (reply, took) =
        timed_request(&mut ana, json!({"action":"ping","requestId":"p1"}), bound).await;
    assert_eq!(reply?["action"], "pong");
    assert!(took < Duration::from_secs(5), "ping took {took:?}");
    match Client::connect(&url).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 500),
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }
    // A client leaving now: its `$disconnect` cannot delete the row.
    let caio_id = caio.connection_id.clone();
    caio.close().await;
    wait_open(&gateway, 2).await;
    assert_eq!(inbox.count(), 2, "nothing was delivered during the outage");

    tokio::task::block_in_place(|| dynalite.restart());

    // Chat works again: the message goes through, and caio's stale row is found gone.
    let sent = ana
        .request(json!({"action":"message","message":"after","requestId":"m2"}))
        .await?;
    assert_eq!(sent["action"], "sent", "{sent}");
    assert_eq!(sent["delivered"], 1, "{sent}");
    assert!(inbox.wait_for(3, Duration::from_secs(10)).await);
    let last = inbox.snapshot().pop().unwrap();
    assert_eq!((last.to, last.message.as_str()), (1, "after"));
    let exits = [("caio".to_string(), caio_id)];
    expect_exits(&[ana, bia], &exits).await;
    let again = Client::join_to(&url, 3, "caio", &inbox).await?;
    assert_eq!(again.name, "caio");
    drop(scratch);
    Ok(())
}
