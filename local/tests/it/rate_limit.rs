//! Fair use over real sockets: a client sending as fast as it can is held to its
//! connection's limits, and the others chat as if it were not there.

use crate::common::start;
use anyhow::Result;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webchat_backend::Limits;
use webchat_local::Config;
use webchat_testkit::Client;

/// What the flooding client's replies said.
#[derive(Debug, Default)]
struct Flood {
    sent: u64,
    limited: u64,
    /// The last `retryAfterMs` it was told.
    last_wait_ms: u64,
}

/// Broadcasts in batches of 50 without waiting between them, until `stop`; every reply
/// must be `sent` or `rate_limited` with a wait no longer than one message interval.
async fn flood(client: &mut Client, stop: &AtomicBool) -> Result<Flood> {
    // A positive whole number of milliseconds (100 at the default rate).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let interval_ms = (1000.0 / Limits::DEFAULT.message.per_second()).ceil() as u64;
    let mut seen = Flood::default();
    let mut batch = 0;
    while !stop.load(Ordering::SeqCst) {
        for i in 0..50 {
            client
                .send(json!({"action":"message","message":"spam","requestId":format!("f{batch}-{i}")}))
                .await?;
        }
        for i in 0..50 {
            let id = format!("f{batch}-{i}");
            let reply = client
                .recv_where("a reply to the flood", |f| f["requestId"] == id.as_str())
                .await?;
            match (reply["action"].as_str(), reply["code"].as_str()) {
                (Some("sent"), _) => seen.sent += 1,
                (Some("error"), Some("rate_limited")) => {
                    let wait = reply["retryAfterMs"].as_u64().unwrap_or(0);
                    assert!((1..=interval_ms).contains(&wait), "{reply}");
                    seen.limited += 1;
                    seen.last_wait_ms = wait;
                }
                _ => anyhow::bail!("unexpected reply to the flood: {reply}"),
            }
        }
        batch += 1;
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_limited_while_the_others_chat_unhindered() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let mut bia = Client::join(&url, "bia").await?;
    let mut ana = Client::join(&url, "ana").await?;
    let mut spammer = Client::join(&url, "spammer").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let flooding = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let seen = flood(&mut spammer, &stop).await;
            (spammer, seen)
        })
    };

    // Meanwhile ana chats at a person's pace; each of her messages reaches bia promptly.
    let mut spam_seen_by_bia = 0;
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let text = format!("calm {i}");
        let asked = Instant::now();
        let sent = ana
            .request(json!({"action":"message","message":text,"requestId":format!("a{i}")}))
            .await?;
        assert_eq!(sent["action"], "sent", "ana is never limited: {sent}");
        loop {
            let got = bia.recv_action("message").await?;
            if got["sender"] == "ana" {
                assert_eq!(got["message"], text.as_str());
                break;
            }
            spam_seen_by_bia += 1;
        }
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(2), "calm {i} took {took:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let (mut spammer, seen) = flooding.await?;
    let seen = seen?;
    let elapsed = started.elapsed().as_secs_f64();

    eprintln!(
        "flood: {} broadcasts sent and {} refused in {elapsed:.1} s",
        seen.sent, seen.limited
    );
    let limit = Limits::DEFAULT.message;
    let most = f64::from(limit.burst()) + limit.per_second() * elapsed + 1.0;
    assert!(seen.limited > 0, "{seen:?}");
    assert!(
        (seen.sent as f64) <= most,
        "{} broadcasts went out in {elapsed:.1} s; the limit allows {most:.0}",
        seen.sent
    );
    // Only the allowed ones reached anybody.
    while spam_seen_by_bia < seen.sent {
        let got = bia.recv_action("message").await?;
        assert_eq!(got["sender"], "spammer", "{got}");
        spam_seen_by_bia += 1;
    }
    bia.expect_silence(Duration::from_millis(300)).await?;

    // A client that waits as long as it is told may send again.
    let refused = spammer
        .request(json!({"action":"message","message":"once more","requestId":"x"}))
        .await?;
    if refused["code"] == "rate_limited" {
        let wait = refused["retryAfterMs"].as_u64().expect("retryAfterMs");
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let sent = spammer
        .request(json!({"action":"message","message":"after waiting","requestId":"y"}))
        .await?;
    assert_eq!(sent["action"], "sent", "{sent}");
    Ok(())
}

#[tokio::test]
async fn configured_limits_apply_to_every_kind_of_frame() -> Result<()> {
    let gateway = start(Config {
        limits: Limits {
            message: webchat_backend::RateLimit::new(0.01, 1),
            action: webchat_backend::RateLimit::new(0.01, 3),
            ..Limits::DEFAULT
        },
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await?;
    let _bia = Client::join(&url, "bia").await?;
    let sent = ana
        .request(json!({"action":"message","message":"one","requestId":"m1"}))
        .await?;
    assert_eq!(sent["action"], "sent");
    let refused = ana
        .request(json!({"action":"message","message":"two","requestId":"m2"}))
        .await?;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert!(
        refused["retryAfterMs"].as_u64().unwrap() > 90_000,
        "{refused}"
    );
    // `register` took one of the three other frames.
    for frame in [
        json!({"action":"ping","requestId":"p"}),
        json!({"action":"list","requestId":"l"}),
    ] {
        let reply = ana.request(frame).await?;
        assert_ne!(reply["action"], "error", "{reply}");
    }
    ana.send_text("not json").await?;
    let refused = ana.recv().await?;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    // Limited frames never close the connection.
    ana.expect_silence(Duration::from_millis(200)).await?;
    assert_eq!(gateway.open_connections(), 2);
    Ok(())
}
