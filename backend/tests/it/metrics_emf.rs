//! What the Lambda writes for CloudWatch: the Embedded Metric Format lines of one
//! `message` frame, read as CloudWatch Logs reads them and checked against the format's
//! specification (docs.aws.amazon.com, "Specification: Embedded metric format").
//!
//! In a process of its own: the EMF recorder is the process's one global recorder, as in
//! the Lambda, and the other tests of this binary would count into it as they run.

// The figures compared are counts, whole numbers that an f64 holds exactly.
#![allow(clippy::float_cmp)]

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use webchat_backend::{handle, Limits, MemoryStore, PostError, RecordingGateway, Retrying};
use webchat_telemetry::metrics as m;

const FUNCTION_NAME: &str = "webchat-MessageFunction-AbC123";

fn event(route: &str, connection_id: &str, body: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some(route.to_string());
    event.request_context.connection_id = Some(connection_id.to_string());
    event.request_context.domain_name = Some("abc.execute-api.eu-west-1.amazonaws.com".into());
    event.request_context.stage = Some("Prod".into());
    event.body = body.map(str::to_string);
    event
}

fn reply(response: &ApiGatewayProxyResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("reply is JSON"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The units CloudWatch accepts (`MetricDatum.Unit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric value as CloudWatch reads it from an EMF document.
#[derive(Debug, Clone, PartialEq)]
struct Datum {
    dimensions: BTreeMap<String, String>,
    unit: String,
    values: Vec<f64>,
}

/// Checks one log line against the EMF specification and returns its metrics by name.
/// The specification: a root `_aws` member with `Timestamp` (ms since the epoch) and
/// `CloudWatchMetrics`, an array of directives each with a `Namespace`, `Dimensions` (an
/// array of dimension sets, each an array of at most 30 keys, each key a string member
/// of the root) and `Metrics` (at most 100 of `{Name, Unit}`, each name a root member
/// holding a number or an array of at most 100 numbers).
fn read_emf(line: &str) -> BTreeMap<String, Datum> {
    let root: Map<String, Value> = serde_json::from_str(line).expect("an EMF line is JSON");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    let timestamp = aws["Timestamp"].as_u64().expect("Timestamp is an integer");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let now_ms = u64::try_from(now_ms).unwrap();
    // CloudWatch drops data more than two weeks old or two hours ahead.
    assert!(
        timestamp <= now_ms && now_ms - timestamp < 60_000,
        "Timestamp {timestamp} is not now ({now_ms})"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics is an array");
    assert!(!directives.is_empty(), "{line}");
    let mut data = BTreeMap::new();
    for directive in directives {
        assert_eq!(directive["Namespace"], m::NAMESPACE, "{line}");
        let sets = directive["Dimensions"]
            .as_array()
            .expect("Dimensions is an array");
        assert_eq!(sets.len(), 1, "one dimension set per metric: {line}");
        let keys = sets[0].as_array().expect("a dimension set is an array");
        assert!(!keys.is_empty() && keys.len() <= 30, "{line}");
        let dimensions: BTreeMap<String, String> = keys
            .iter()
            .map(|key| {
                let key = key.as_str().expect("a dimension key is a string");
                let value = root
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("dimension {key} has no string value: {line}"));
                assert!(!value.is_empty(), "{line}");
                (key.to_string(), value.to_string())
            })
            .collect();
        let metrics = directive["Metrics"]
            .as_array()
            .expect("Metrics is an array");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a metric has a Name");
            let unit = metric["Unit"].as_str().expect("our metrics have a Unit");
            assert!(UNITS.contains(&unit), "{name}: unit {unit}");
            let values = match &root[name] {
                Value::Number(n) => vec![n.as_f64().unwrap()],
                Value::Array(values) => {
                    assert!(!values.is_empty() && values.len() <= 100, "{line}");
                    values
                        .iter()
                        .map(|v| v.as_f64().expect("a number"))
                        .collect()
                }
                other => panic!("{name} holds {other}, not a number: {line}"),
            };
            let datum = Datum {
                dimensions: dimensions.clone(),
                unit: unit.to_string(),
                values,
            };
            assert!(
                data.insert(name.to_string(), datum).is_none(),
                "{name} twice in one line: {line}"
            );
        }
    }
    data
}

/// Every datum of every line, by name and dimension values.
fn read_all(output: &str) -> BTreeMap<(String, BTreeMap<String, String>), Datum> {
    let mut all = BTreeMap::new();
    for line in output.lines() {
        for (name, datum) in read_emf(line) {
            let key = (name, datum.dimensions.clone());
            assert!(all.insert(key, datum).is_none(), "a metric twice: {output}");
        }
    }
    all
}

fn dims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    std::iter::once((m::FUNCTION, FUNCTION_NAME))
        .chain(pairs.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs this test binary again with only [`emf_of_one_message_frame`], so the recorder it
/// installs counts that test alone.
#[test]
fn a_message_frame_writes_emf_lines_that_count_what_happened() {
    let output = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "metrics_emf::emf_of_one_message_frame",
            "--include-ignored",
            "--test-threads=1",
        ])
        .output()
        .expect("this test binary runs again");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("1 passed"),
        "the check did not run: {report}"
    );
}

#[tokio::test]
#[ignore = "runs in a process of its own, started by a_message_frame_writes_emf_lines_that_count_what_happened"]
async fn emf_of_one_message_frame() {
    let collector = m::install_emf(FUNCTION_NAME).expect("the only recorder");
    let store = MemoryStore::new();
    let recording = RecordingGateway::new();
    let gateway = Retrying::new(&recording);
    let limits = Limits::DEFAULT;
    for (id, name) in [("A", "ana"), ("B", "bia"), ("C", "cai")] {
        handle(&store, &gateway, &limits, &event("$connect", id, None)).await;
        let register = format!(r#"{{"action":"register","userName":"{name}"}}"#);
        handle(
            &store,
            &gateway,
            &limits,
            &event("register", id, Some(&register)),
        )
        .await;
    }
    // The set-up's figures went out with earlier invocations.
    collector.flush(std::io::sink()).unwrap();

    // C's socket closed without its $disconnect; API Gateway throttles B's push once.
    recording.mark_gone("C");
    recording.fail_next("B", || PostError::Throttled, 1);
    let frame = r#"{"action":"message","message":"hello","requestId":"m1"}"#;
    let response = handle(
        &store,
        &gateway,
        &limits,
        &event("message", "A", Some(frame)),
    )
    .await;
    assert_eq!(reply(&response)["delivered"], 1, "{:?}", response.body);

    let mut output = Vec::new();
    collector.flush(&mut output).unwrap();
    let output = String::from_utf8(output).unwrap();
    let data = read_all(&output);
    let count = |name: &str, pairs: &[(&str, &str)]| -> f64 {
        let datum = data
            .get(&(name.to_string(), dims(pairs)))
            .unwrap_or_else(|| panic!("no {name} {pairs:?} in:\n{output}"));
        assert_eq!(datum.unit, "Count", "{name}");
        datum.values.iter().sum()
    };
    assert_eq!(count(m::FRAMES, &[(m::ROUTE, "message")]), 1.0);
    assert_eq!(count(m::MESSAGES_STORED, &[]), 1.0);
    // The message reached B, after one throttled attempt; C was gone, and B then heard
    // that C left (A is told too).
    assert_eq!(count(m::DELIVERIES, &[]), 3.0);
    assert_eq!(count(m::PUSHES_THROTTLED, &[]), 1.0);
    assert_eq!(count(m::PUSH_RETRIES, &[]), 1.0);
    assert_eq!(count(m::STALE_CONNECTIONS, &[]), 1.0);
    let fan_outs = &data[&(m::FANOUT_DURATION.to_string(), dims(&[]))];
    assert_eq!(fan_outs.unit, "Milliseconds");
    assert_eq!(fan_outs.values.len(), 2, "the message's and the exit's");
    assert!(fan_outs
        .values
        .iter()
        .all(|ms| *ms >= 0.0 && *ms < 10_000.0));
    // Nothing failed, was refused or read from history, so none of those appear.
    let names: Vec<&str> = data.keys().map(|(name, _)| name.as_str()).collect();
    for absent in [
        m::PUSH_FAILURES,
        m::ERROR_REPLIES,
        m::RATE_LIMITED,
        m::HISTORY_PAGES,
    ] {
        assert!(!names.contains(&absent), "{absent} in:\n{output}");
    }
    // Every name written is one of ours.
    for name in names {
        assert!(m::ALL.iter().any(|metric| metric.name == name), "{name}");
    }

    // A refused frame: counted by route and code; a flush with nothing new writes nothing.
    collector.flush(std::io::sink()).unwrap();
    let response = handle(&store, &gateway, &limits, &event("join", "A", Some("{"))).await;
    assert_eq!(reply(&response)["code"], "bad_json");
    let mut output = Vec::new();
    collector.flush(&mut output).unwrap();
    let output = String::from_utf8(output).unwrap();
    let data = read_all(&output);
    let refused = &data[&(
        m::ERROR_REPLIES.to_string(),
        dims(&[(m::ROUTE, "join"), (m::CODE, "bad_json")]),
    )];
    assert_eq!(refused.values, vec![1.0]);
    let mut nothing = Vec::new();
    collector.flush(&mut nothing).unwrap();
    assert!(nothing.is_empty(), "{}", String::from_utf8_lossy(&nothing));
}
