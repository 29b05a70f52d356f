//! Presence that scales and messages in the order written, over real sockets: the
//! presence limit from `--presence-limit` and from `PRESENCE_LIMIT`, what a big room's
//! members hear when someone arrives, `list` paging, and one sender's messages coming
//! back from `history` in the order sent, in memory and on DynamoDB (dynalite).

use crate::common::{self, start};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use webchat_backend::Limits;
use webchat_local::Config;
use webchat_testkit::{Client, Dynalite};

const QUIET: Duration = Duration::from_millis(500);

/// With a presence limit of 2: two people hear each other arrive as before; the third
/// takes the lobby over it, so everyone hears the count instead, and the fourth,
/// within the interval, pushes nothing to anyone.
async fn a_big_lobby_hears_counts_not_arrivals(url: &str) -> Result<()> {
    let mut ana = Client::join(url, "ana").await?;
    let bia = Client::join(url, "bia").await?;
    let arrival = ana.recv_action("newUser").await?;
    assert_eq!(arrival["userName"], "bia", "{arrival}");
    let mut bia = bia;
    // Caio hears it too, while waiting for `registered`.
    let mut caio = Client::join(url, "caio").await?;
    for client in [&mut ana, &mut bia] {
        let next = client.recv().await?;
        assert_eq!(next, json!({"action":"members","room":"lobby","count":3}));
    }
    let _duda = Client::join(url, "duda").await?;
    for client in [&mut ana, &mut bia, &mut caio] {
        client.expect_silence(QUIET).await?;
    }
    let list = ana
        .request(json!({"action":"list","requestId":"l"}))
        .await?;
    assert_eq!(list["count"], 4, "{list}");
    assert_eq!(list["users"].as_array().map(Vec::len), Some(3), "{list}");
    Ok(())
}

#[tokio::test]
async fn the_presence_limit_flag_sets_where_counts_replace_arrivals() -> Result<()> {
    let (_gateway, url) = common::gateway_process(&["--presence-limit", "2"])?;
    a_big_lobby_hears_counts_not_arrivals(&url).await
}

#[tokio::test]
async fn the_presence_limit_holds_with_connections_in_dynamodb() -> Result<()> {
    let dynalite = Dynalite::start();
    let (_gateway, url) = common::gateway_process(&[
        "--presence-limit",
        "2",
        "--dynamodb-endpoint",
        &dynalite.endpoint(),
    ])?;
    a_big_lobby_hears_counts_not_arrivals(&url).await
}

#[tokio::test]
async fn the_presence_limit_variable_sets_it_too() -> Result<()> {
    let (_gateway, url) = common::gateway_process_with(&[], &[("PRESENCE_LIMIT", "2")])?;
    a_big_lobby_hears_counts_not_arrivals(&url).await
}

#[tokio::test]
async fn an_invalid_presence_limit_is_refused_naming_the_flag() -> Result<()> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-local"))
        .args(["--presence-limit", "0"])
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--presence-limit"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn list_pages_through_a_big_room_over_sockets_once_each() -> Result<()> {
    let gateway = start(Config {
        limits: Limits {
            presence_limit: 2,
            ..Limits::UNLIMITED
        },
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let mut clients = Vec::new();
    for i in 0..120 {
        clients.push(Client::join(&url, &format!("p{i:03}")).await?);
    }
    let asker = &mut clients[0];
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut frame = json!({"action":"list","requestId":"l"});
        if let Some(cursor) = &cursor {
            frame["cursor"] = json!(cursor);
        }
        let page = asker.request(frame).await?;
        assert_eq!(page["count"], 120, "{page}");
        seen.extend(
            page["users"]
                .as_array()
                .context("users")?
                .iter()
                .map(|u| u["userName"].as_str().unwrap_or_default().to_string()),
        );
        match page["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "listed twice");
    assert_eq!(unique.len(), 119, "every other member");
    Ok(())
}

/// Seven messages, each sent once the previous one's `sent` came, read back.
async fn seven_in_a_row_come_back_in_order(url: &str) -> Result<()> {
    let mut ana = Client::join(url, "ana").await?;
    for round in 0..3 {
        let sent: Vec<String> = (0..7).map(|i| format!("r{round} h{i}")).collect();
        for text in &sent {
            let reply = ana
                .request(json!({"action":"message","message":text,"requestId":"m"}))
                .await?;
            assert_eq!(reply["action"], "sent", "{reply}");
        }
        let history = ana
            .request(json!({"action":"history","limit":7,"requestId":"h"}))
            .await?;
        let texts: Vec<&str> = history["messages"]
            .as_array()
            .context("messages")?
            .iter()
            .map(|m: &Value| m["message"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(texts, sent, "round {round}");
    }
    Ok(())
}

#[tokio::test]
async fn one_senders_messages_come_back_in_order_in_memory() -> Result<()> {
    let gateway = start(Config {
        limits: Limits::UNLIMITED,
        ..Config::default()
    })
    .await;
    seven_in_a_row_come_back_in_order(&gateway.websocket_url()).await
}

#[tokio::test]
async fn one_senders_messages_come_back_in_order_on_dynamodb() -> Result<()> {
    let dynalite = Dynalite::start();
    let (_gateway, url) = common::gateway_process(&[
        "--dynamodb-endpoint",
        &dynalite.endpoint(),
        "--message-burst",
        "1000",
    ])?;
    seven_in_a_row_come_back_in_order(&url).await
}
