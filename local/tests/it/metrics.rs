//! `/metrics` over real sockets: after a scripted chat, the gateway's Prometheus text
//! counts what the handlers did, under the names the Lambda publishes to CloudWatch.
//!
//! The gateway is the `webchat-local` binary in its own process: the Prometheus recorder
//! is a process's one recorder, and the other tests of this binary chat at the same time,
//! so only a process of its own counts this chat alone.

// The figures compared are counts, whole numbers that an f64 holds exactly.
#![allow(clippy::float_cmp)]

use crate::common::gateway_process;
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use webchat_local::METRICS_PATH;
use webchat_telemetry::metrics as m;
use webchat_testkit::Client;

/// One sample of the Prometheus text format: `name{label="value",...} number`.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').context(line.to_string())?;
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').context(line.to_string())?;
                let labels = body
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').context(line.to_string())?;
                        Ok((key.to_string(), value.trim_matches('"').to_string()))
                    })
                    .collect::<Result<_>>()?;
                (name, labels)
            }
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: value.parse().context(line.to_string())?,
        });
    }
    Ok(samples)
}

/// The value of `name` with exactly `labels`, 0 when absent (as Prometheus reads it).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == labels)
        .map_or(0.0, |s| s.value)
}

#[tokio::test]
async fn metrics_count_a_scripted_chat() -> Result<()> {
    // One message at once per connection, and nearly none refilled during the test.
    let (mut gateway, url) = gateway_process(&["--message-rate", "0.001", "--message-burst", "1"])?;
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .context("the WebSocket URL has an address")?
        .parse()?;
    let mut ana = Client::join(&url, "ana").await?;
    let mut bia = Client::join(&url, "bia").await?;

    let sent = ana
        .request(json!({"action":"message","message":"hello","requestId":"a1"}))
        .await?;
    assert_eq!(sent["delivered"], 1, "{sent}");
    bia.recv_where("ana's message", |f| f["message"] == "hello")
        .await?;
    let first = bia
        .request(json!({"action":"message","message":"hi","requestId":"b1"}))
        .await?;
    assert_eq!(first["action"], "sent", "{first}");
    let second = bia
        .request(json!({"action":"message","message":"again","requestId":"b2"}))
        .await?;
    assert_eq!(second["code"], "rate_limited", "{second}");

    let response = webchat_testkit::http::request(addr, "GET", METRICS_PATH, &[], b"").await?;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        response.headers
    );
    let text = &response.body;
    let samples = parse(text)?;
    let route = |r| [(m::ROUTE, r)];
    assert_eq!(
        value(&samples, m::FRAMES, &route("register")),
        2.0,
        "{text}"
    );
    assert_eq!(value(&samples, m::FRAMES, &route("message")), 3.0, "{text}");
    assert_eq!(value(&samples, m::MESSAGES_STORED, &[]), 2.0, "{text}");
    // bia's arrival told ana, ana's message reached bia and bia's first reached ana.
    assert_eq!(value(&samples, m::DELIVERIES, &[]), 3.0, "{text}");
    assert_eq!(
        value(&samples, &format!("{}_count", m::FANOUT_DURATION), &[]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(&samples, m::RATE_LIMITED, &route("message")),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            m::ERROR_REPLIES,
            &[(m::ROUTE, "message"), (m::CODE, "rate_limited")]
        ),
        1.0,
        "{text}"
    );
    for nothing in [
        m::PUSH_FAILURES,
        m::STALE_CONNECTIONS,
        m::PUSHES_THROTTLED,
        m::HISTORY_PAGES,
    ] {
        assert_eq!(value(&samples, nothing, &[]), 0.0, "{nothing}: {text}");
    }
    // Every series is one of ours.
    for sample in &samples {
        let base = sample
            .name
            .trim_end_matches("_count")
            .trim_end_matches("_sum");
        assert!(
            m::ALL.iter().any(|metric| metric.name == base),
            "{}",
            sample.name
        );
    }
    ana.close().await;
    bia.close().await;
    gateway.kill();
    Ok(())
}
