//! A client that stops reading costs the gateway a bounded buffer, not unbounded memory:
//! past its outbox's bound it is closed (1008) and announced as gone, and its idle
//! timeout still fires while writes to it are stuck.

use crate::common::start;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use webchat_backend::Limits;
use webchat_local::outbox::MAX_QUEUED_BYTES;
use webchat_local::Config;
use webchat_testkit::{Client, StalledReader};

/// Near the largest chat message, as a flood would send.
const MESSAGE_CHARS: usize = 4000;

fn private_to(connection_id: &str, i: usize) -> Value {
    json!({
        "action": "message",
        "message": format!("{i:05} {}", "x".repeat(MESSAGE_CHARS)),
        "receivers": [{"connectionId": connection_id}],
    })
}

/// Whether `client` is told of `connection_id`'s exit within `within`.
async fn exit_of(client: &Client, connection_id: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if client
            .seen()
            .user_exits
            .iter()
            .any(|(_, id)| id == connection_id)
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_announced_once_its_outbox_is_full() {
    // ana floods on purpose: its own rate limit is not what this test is about.
    let gateway = start(Config {
        limits: Limits::UNLIMITED,
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await.unwrap();
    let zed = StalledReader::join(&url, "zed").await.unwrap();
    let zed_id = zed.connection_id.clone();
    assert_eq!(ana.recv_action("newUser").await.unwrap()["userName"], "zed");

    // Flood until zed is announced gone; a gateway that buffers without bound never
    // announces it. Four times the outbox's bound is far more than the outbox and the
    // sockets' buffers hold.
    let most = 4 * MAX_QUEUED_BYTES / MESSAGE_CHARS;
    let mut sent = 0;
    while sent < most && !exit_of(&ana, &zed_id, Duration::ZERO).await {
        for _ in 0..50 {
            ana.send(private_to(&zed_id, sent)).await.unwrap();
            sent += 1;
        }
        // Let ana's frames be handled before deciding whether to send more.
        let _ = ana
            .request(json!({"action":"ping","requestId":"sync"}))
            .await;
    }
    assert!(
        exit_of(&ana, &zed_id, Duration::from_secs(30)).await,
        "zed's userExit is announced once zed's outbox overflows (after {sent} messages)"
    );
    let list = ana
        .request(json!({"action":"list","requestId":"l"}))
        .await
        .unwrap();
    assert_eq!(list["users"], json!([]), "zed is gone from the chat");
    // Its name is free again.
    let mut zed_again = Client::join(&url, "zed").await.unwrap();
    let pong = zed_again
        .request(json!({"action":"ping","requestId":"p"}))
        .await
        .unwrap();
    assert_eq!(pong["action"], "pong");
}

#[tokio::test]
async fn the_idle_timeout_fires_on_a_client_that_stopped_reading_while_writes_to_it_are_stuck() {
    let gateway = start(Config {
        idle_timeout: Duration::from_secs(2),
        limits: Limits::UNLIMITED,
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await.unwrap();
    let zed = StalledReader::join(&url, "zed").await.unwrap();
    let zed_id = zed.connection_id.clone();
    assert_eq!(ana.recv_action("newUser").await.unwrap()["userName"], "zed");

    // Enough to fill the stalled peer's TCP buffers, well under the outbox's bound, so
    // the writer is stuck and nothing overflows: only the idle timer can end zed.
    let backlog = MAX_QUEUED_BYTES / 4 / MESSAGE_CHARS;
    let started = Instant::now();
    for i in 0..backlog {
        ana.send(private_to(&zed_id, i)).await.unwrap();
        // ana's own frames keep ana active; zed sends nothing.
    }
    // ana keeps itself active past its own idle timeout while waiting for zed's.
    let mut announced = false;
    while !announced && started.elapsed() < Duration::from_secs(30) {
        ana.send(json!({"action":"ping"})).await.unwrap();
        announced = exit_of(&ana, &zed_id, Duration::from_millis(500)).await;
    }
    assert!(
        announced,
        "zed's idle timeout fired and was announced within 30 s"
    );
}
