//! The alarms and the dashboard in websocket.yml watch metrics that exist: ours by the
//! names the code emits (`webchat_telemetry::metrics`), AWS's from the short lists below
//! (as each service documents them), and every alarm tells the stack's topic.

use serde_json::Value;
use std::collections::BTreeSet;
use webchat_telemetry::metrics as m;
use webchat_templates::{load, render, workspace_root, Template};

/// The AWS metrics the alarms and the dashboard may name, by namespace, as documented:
/// API Gateway's for WebSocket APIs ("Monitor WebSocket API execution with CloudWatch
/// metrics"), Lambda's ("Types of metrics for Lambda functions") and DynamoDB's
/// ("DynamoDB Metrics and dimensions").
const AWS_METRICS: &[(&str, &[&str])] = &[
    ("AWS/SQS", &["ApproximateNumberOfMessagesVisible"]),
    (
        "AWS/ApiGateway",
        &[
            "ConnectCount",
            "MessageCount",
            "IntegrationError",
            "ClientError",
            "ExecutionError",
            "IntegrationLatency",
        ],
    ),
    (
        "AWS/Lambda",
        &["Invocations", "Errors", "Throttles", "Duration"],
    ),
    (
        "AWS/DynamoDB",
        &[
            "ConsumedReadCapacityUnits",
            "ConsumedWriteCapacityUnits",
            "ThrottledRequests",
            "ReadThrottleEvents",
            "WriteThrottleEvents",
        ],
    ),
];

/// Our dimensions, as the recorder and the code set them.
const OUR_DIMENSIONS: &[&str] = &[m::FUNCTION, m::ROUTE, m::CODE];

fn websocket() -> Template {
    load("websocket.yml").unwrap()
}

/// A value as text, `Fn::Join` included (`render` reads the other intrinsics).
fn text(value: &Value) -> String {
    match value.get("Fn::Join") {
        Some(Value::Array(join)) if join.len() == 2 => {
            let separator = join[0].as_str().unwrap_or_default();
            let parts: Vec<String> = join[1]
                .as_array()
                .map(|parts| parts.iter().map(text).collect())
                .unwrap_or_default();
            parts.join(separator)
        }
        _ => render(value),
    }
}

/// A metric a query or widget names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Named {
    namespace: String,
    metric: String,
    /// The dimension keys a Metrics Insights `SCHEMA(...)` names.
    dimensions: Vec<String>,
}

/// The metric and schema of a Metrics Insights query:
/// `SELECT FN(metric) FROM SCHEMA(namespace, key, ...) ...`.
fn read_query(query: &str) -> Named {
    let select = query
        .strip_prefix("SELECT ")
        .unwrap_or_else(|| panic!("not a Metrics Insights query: {query}"));
    let open = select.find('(').expect("SELECT FN(metric)");
    let close = select.find(')').expect("SELECT FN(metric)");
    let metric = select[open + 1..close].trim().to_string();
    let schema = query
        .split_once("FROM SCHEMA(")
        .unwrap_or_else(|| panic!("query without FROM SCHEMA: {query}"))
        .1;
    let schema = &schema[..schema.find(')').expect("SCHEMA(...)")];
    let mut keys = schema
        .split(',')
        .map(|key| key.trim().trim_matches('"').to_string());
    Named {
        namespace: keys.next().expect("a namespace"),
        metric,
        dimensions: keys.collect(),
    }
}

/// Fails unless `named` is one of ours, with our dimensions, or a documented AWS one.
fn assert_exists(named: &Named, context: &str) {
    if named.namespace == m::NAMESPACE {
        assert!(
            m::ALL.iter().any(|metric| metric.name == named.metric),
            "{context}: {} is not a metric the code emits",
            named.metric
        );
        for key in &named.dimensions {
            assert!(
                OUR_DIMENSIONS.contains(&key.as_str()),
                "{context}: dimension {key} of {}",
                named.metric
            );
        }
        assert!(
            named.dimensions.iter().any(|key| key == m::FUNCTION),
            "{context}: every metric of ours has the function dimension"
        );
        return;
    }
    let known = AWS_METRICS
        .iter()
        .find(|(namespace, _)| *namespace == named.namespace)
        .unwrap_or_else(|| panic!("{context}: unknown namespace {}", named.namespace));
    assert!(
        known.1.contains(&named.metric.as_str()),
        "{context}: {} {} is not a documented metric",
        named.namespace,
        named.metric
    );
}

fn alarms(t: &Template) -> Vec<(&str, &Value)> {
    t.resources_of_type("AWS::CloudWatch::Alarm").collect()
}

/// What an alarm watches: its metric, or each query of its metric math.
fn watched(alarm: &Value) -> Vec<Named> {
    let properties = &alarm["Properties"];
    if let Some(metric) = properties["MetricName"].as_str() {
        return vec![Named {
            namespace: properties["Namespace"].as_str().unwrap().to_string(),
            metric: metric.to_string(),
            dimensions: Vec::new(),
        }];
    }
    properties["Metrics"]
        .as_array()
        .expect("an alarm watches a metric or queries")
        .iter()
        .map(|query| read_query(&text(&query["Expression"])))
        .collect()
}

#[test]
fn every_alarm_watches_a_metric_that_exists_and_tells_the_alarm_topic() {
    let t = websocket();
    let alarms = alarms(&t);
    assert!(alarms.len() >= 6, "{alarms:?}");
    let mut ours = BTreeSet::new();
    for (id, alarm) in &alarms {
        for named in watched(alarm) {
            assert_exists(&named, id);
            if named.namespace == m::NAMESPACE {
                ours.insert(named.metric);
            }
        }
        let properties = &alarm["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            let targets: Vec<String> = properties[actions]
                .as_array()
                .unwrap_or_else(|| panic!("{id}: no {actions}"))
                .iter()
                .map(render)
                .collect();
            assert_eq!(targets, vec!["${AlarmTopic}"], "{id}: {actions}");
        }
        assert_eq!(
            properties["TreatMissingData"], "notBreaching",
            "{id}: a quiet chat is not an alarm"
        );
    }
    // Lost messages and an unreachable issuer wake someone.
    assert!(ours.contains(m::PUSH_FAILURES), "{ours:?}");
    assert!(ours.contains(m::SIGN_IN_UNAVAILABLE), "{ours:?}");
}

#[test]
fn the_function_alarms_cover_every_route_function_and_only_this_stacks() {
    let t = websocket();
    let route_functions: BTreeSet<String> = t
        .resources_of_type("AWS::Serverless::Function")
        .map(|(id, _)| id.to_string())
        .filter(|id| id != "AuthorizerFunction")
        .collect();
    // The ten routes' and the fan-out's.
    assert_eq!(route_functions.len(), 11);
    for id in ["FunctionErrorsAlarm", "FunctionThrottlesAlarm"] {
        let alarm = t.resource(id).unwrap_or_else(|| panic!("{id}"));
        let query = text(&alarm["Properties"]["Metrics"][0]["Expression"]);
        let named: BTreeSet<String> = query
            .split("FunctionName = '${")
            .skip(1)
            .map(|rest| rest[..rest.find('}').unwrap()].to_string())
            .collect();
        assert_eq!(named, route_functions, "{id}: {query}");
    }
}

#[test]
fn the_alarm_email_is_subscribed_only_when_given() {
    let t = websocket();
    assert_eq!(t.parameter("AlarmEmail").unwrap()["Default"], "");
    let subscriptions: Vec<_> = t.resources_of_type("AWS::SNS::Subscription").collect();
    assert_eq!(subscriptions.len(), 1);
    let (_, subscription) = subscriptions[0];
    assert_eq!(subscription["Condition"], "HasAlarmEmail");
    assert_eq!(subscription["Properties"]["Protocol"], "email");
    assert_eq!(
        render(&subscription["Properties"]["Endpoint"]),
        "${AlarmEmail}"
    );
    assert_eq!(
        render(&subscription["Properties"]["TopicArn"]),
        "${AlarmTopic}"
    );
    let condition = t.json()["Conditions"]["HasAlarmEmail"].to_string();
    assert!(condition.contains("AlarmEmail"), "{condition}");
}

#[test]
fn the_dashboard_is_json_naming_only_metrics_that_exist() {
    let t = websocket();
    let dashboards: Vec<_> = t.resources_of_type("AWS::CloudWatch::Dashboard").collect();
    assert_eq!(dashboards.len(), 1);
    let body = text(&dashboards[0].1["Properties"]["DashboardBody"]);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let mut named = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        let title = widget["properties"]["title"].as_str().unwrap_or("?");
        for row in widget["properties"]["metrics"].as_array().expect("metrics") {
            let row = row.as_array().expect("a metrics row is an array");
            match row.first() {
                Some(Value::Object(options)) => {
                    let query = options["expression"].as_str().expect("an expression");
                    named.push((title.to_string(), read_query(query)));
                }
                Some(Value::String(namespace)) => named.push((
                    title.to_string(),
                    Named {
                        namespace: namespace.clone(),
                        metric: row[1].as_str().expect("a metric name").to_string(),
                        dimensions: Vec::new(),
                    },
                )),
                other => panic!("{title}: row {other:?}"),
            }
        }
    }
    for (title, metric) in &named {
        assert_exists(metric, title);
    }
    let shown: BTreeSet<&str> = named.iter().map(|(_, n)| n.metric.as_str()).collect();
    for expected in [
        "ConnectCount",
        "MessageCount",
        m::DELIVERIES,
        m::MESSAGES_STORED,
        m::ERROR_REPLIES,
        "IntegrationLatency",
        "ConsumedReadCapacityUnits",
        "ThrottledRequests",
        "Errors",
        "Throttles",
        "Duration",
    ] {
        assert!(shown.contains(expected), "the dashboard lacks {expected}");
    }
}

/// cfn-lint, as `cargo xtask test` runs it, from the checkout's `.tools/venv` (which
/// `cargo xtask test` installs); said and skipped where it is not installed yet.
#[test]
fn cfn_lint_finds_nothing_in_the_templates() {
    let root = workspace_root();
    let cfn_lint = root.join(".tools/venv/bin/cfn-lint");
    if !cfn_lint.is_file() {
        eprintln!(
            "cfn-lint is not installed at {}; skipped",
            cfn_lint.display()
        );
        return;
    }
    let mut templates: Vec<_> = std::fs::read_dir(root.join("templates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
        .collect();
    templates.sort();
    let output = std::process::Command::new(&cfn_lint)
        .args(&templates)
        .output()
        .expect("cfn-lint runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
