//! Lambda's SQS event source mappings in `--template` mode: pollers take batches from
//! the queue and invoke the function with a real SQS event, as Lambda does.
//!
//! Each mapping runs as many pollers as its `ScalingConfig.MaximumConcurrency` (no more
//! than the function's `--max-instances`), each long-polling for up to `BatchSize`
//! messages and invoking the function once per batch through its instances. What comes
//! back decides what is deleted: with `ReportBatchItemFailures` the listed messages stay
//! (and come back after the queue's visibility timeout) and the rest are deleted; a
//! function error or timeout, or an answer that is not a valid batch response, leaves
//! the whole batch to come back. The queue's redrive policy then moves a message that
//! kept failing to its dead-letter queue.

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{json, Value};
use webchat_templates::deployment::EventSourceSpec;

use crate::lambda::{Function, REPORT_TARGET};
use crate::sqs::{attributes, Queue, Queues, Received, BATCH_LIMIT, MAX_WAIT};

/// What Lambda's role needs to poll a queue for a function.
pub const POLLING_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// A mapping's pollers; they stop when this is dropped.
#[derive(Debug, Default)]
pub(crate) struct Pollers(Vec<tokio::task::JoinHandle<()>>);

impl Pollers {
    pub(crate) fn stop(&mut self) {
        for task in self.0.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Pollers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the pollers of `spec`, feeding `function` from `queue`.
pub(crate) fn start(
    spec: &EventSourceSpec,
    queues: &Arc<Queues>,
    queue: &Arc<Queue>,
    function: &Arc<Function>,
) -> Pollers {
    let max_instances = function.config().max_instances.max(1);
    let pollers = spec
        .maximum_concurrency
        .map_or(max_instances, |c| {
            usize::try_from(c).unwrap_or(max_instances)
        })
        .clamp(1, max_instances);
    tracing::info!(
        target: REPORT_TARGET,
        "[{}] fed by {} ({}): batches of up to {}, {} at once{}",
        function.config().function_name,
        queue.logical_id,
        spec.logical_id,
        spec.batch_size,
        pollers,
        if spec.report_batch_item_failures {
            ", reporting batch item failures"
        } else {
            ""
        }
    );
    let spec = Arc::new(spec.clone());
    Pollers(
        (0..pollers)
            .map(|_| {
                let (spec, queues, queue, function) = (
                    spec.clone(),
                    queues.clone(),
                    queue.clone(),
                    function.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        poll_once(&spec, &queues, &queue, &function).await;
                    }
                })
            })
            .collect(),
    )
}

/// One batch: receive, invoke, delete what succeeded.
async fn poll_once(spec: &EventSourceSpec, queues: &Queues, queue: &Queue, function: &Function) {
    let want = usize::try_from(spec.batch_size)
        .unwrap_or(BATCH_LIMIT)
        .max(1);
    let mut batch = queues
        .receive(queue, want.min(BATCH_LIMIT), None, Some(MAX_WAIT))
        .await;
    // A batch larger than one receive: what is there now, with no batching window.
    while batch.len() < want && batch.len() % BATCH_LIMIT == 0 && !batch.is_empty() {
        let more = queues
            .receive(
                queue,
                (want - batch.len()).min(BATCH_LIMIT),
                None,
                Some(std::time::Duration::ZERO),
            )
            .await;
        if more.is_empty() {
            break;
        }
        batch.extend(more);
    }
    if batch.is_empty() {
        return;
    }
    let name = &function.config().function_name;
    let event = sqs_event(&batch, queue, &queues.region);
    let request_id = crate::lambda::request_id();
    let returned: Vec<&Received> = match function
        .invoke(&request_id, Bytes::from(event.to_string()))
        .await
    {
        Ok(invoked) if spec.report_batch_item_failures => {
            match failed_items(&invoked.response, &batch) {
                Ok(failed) => batch
                    .iter()
                    .filter(|m| failed.contains(&m.message_id))
                    .collect(),
                Err(why) => {
                    tracing::warn!(target: REPORT_TARGET, "[{name}] the batch response is not valid ({why}); the whole batch of {} from {} comes back after its visibility timeout", batch.len(), queue.logical_id);
                    batch.iter().collect()
                }
            }
        }
        Ok(_) => Vec::new(),
        Err(err) => {
            tracing::warn!(target: REPORT_TARGET, "[{name}] SQS batch of {} from {} failed: {err}; it comes back after the visibility timeout", batch.len(), queue.logical_id);
            batch.iter().collect()
        }
    };
    for message in &batch {
        if returned
            .iter()
            .any(|failed| failed.message_id == message.message_id)
        {
            continue;
        }
        if let Err(err) = queues.delete(queue, &message.receipt_handle) {
            tracing::warn!(target: REPORT_TARGET, "[{name}] could not delete message {}: {err}", message.message_id);
        }
    }
    if !returned.is_empty() && spec.report_batch_item_failures {
        tracing::info!(
            target: REPORT_TARGET,
            "[{name}] {} of {} messages from {} reported failed: {}",
            returned.len(),
            batch.len(),
            queue.logical_id,
            returned
                .iter()
                .map(|m| format!("{} (receive {})", m.message_id, m.receive_count))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The event Lambda invokes a function with for a batch of SQS messages.
pub fn sqs_event(batch: &[Received], queue: &Queue, region: &str) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": m.attributes(),
                "messageAttributes": attributes::to_event_json(&m.message_attributes),
                "md5OfMessageAttributes": attributes::md5(&m.message_attributes),
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a batch response names as failed, as Lambda reads it: no response,
/// `{}` or an empty list is success; an entry with no id, or an id not in the batch, makes
/// the response invalid (and the whole batch fails).
fn failed_items(response: &[u8], batch: &[Received]) -> Result<Vec<String>, String> {
    let trimmed = std::str::from_utf8(response)
        .map_err(|_| "not UTF-8".to_string())?
        .trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|e| format!("not JSON: {e}"))?;
    let failures = match &value["batchItemFailures"] {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(format!("batchItemFailures is {other}")),
    };
    let mut ids = Vec::new();
    for item in failures {
        let id = item["itemIdentifier"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| format!("an entry without itemIdentifier: {item}"))?;
        if !batch.iter().any(|m| m.message_id == id) {
            return Err(format!("itemIdentifier {id} is not a message of the batch"));
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::tests::FakeRuntime;
    use crate::sqs::tests::{body, queues};
    use std::time::{Duration, Instant};

    fn mapping(batch_size: u32, concurrency: u32, report: bool) -> EventSourceSpec {
        EventSourceSpec {
            logical_id: "Mapping".into(),
            function: "Worker".into(),
            queue: "Jobs".into(),
            batch_size,
            maximum_concurrency: Some(concurrency),
            report_batch_item_failures: report,
            enabled: true,
        }
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "waited for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn an_event_record_carries_the_message_attributes_and_their_digest() {
        let queues = queues(Duration::from_secs(1));
        let jobs = queues.by_logical_id("Jobs").unwrap().clone();
        let mut message = body("job");
        // Small: the test queue takes 16 bytes, attributes included.
        message.attributes = attributes::parse(Some(&json!({
            "n": {"StringValue": "1", "DataType": "Number"},
        })))
        .unwrap();
        let digest = attributes::md5(&message.attributes);
        queues.send(&jobs, message, "sender").unwrap();
        queues.send(&jobs, body("plain"), "sender").unwrap();
        let batch = queues.receive(&jobs, 10, None, None).await;
        let event = sqs_event(&batch, &jobs, "us-east-1");
        let [with, plain] = event["Records"].as_array().unwrap().as_slice() else {
            panic!("two records: {event}");
        };
        assert_eq!(
            with["messageAttributes"],
            json!({"n": {"stringValue": "1", "stringListValues": [], "binaryListValues": [], "dataType": "Number"}})
        );
        assert_eq!(with["md5OfMessageAttributes"], json!(digest));
        assert_eq!(plain["messageAttributes"], json!({}));
        assert_eq!(plain["md5OfMessageAttributes"], Value::Null);
    }

    #[tokio::test]
    async fn batches_reach_the_function_as_sqs_events_and_only_reported_failures_come_back() {
        let fake = FakeRuntime::new();
        let record = fake.dir().join("records.jsonl");
        let function = Arc::new(fake.function_with(
            "sqs",
            Duration::from_secs(10),
            10,
            &[
                ("FAKE_RECORD", record.to_str().unwrap()),
                ("FAKE_DELAY", "0.1"),
            ],
        ));
        let queues = Arc::new(queues(Duration::from_secs(1)));
        let jobs = queues.by_logical_id("Jobs").unwrap().clone();
        for _ in 0..7 {
            queues.send(&jobs, body("ok"), "sender").unwrap();
        }
        queues.send(&jobs, body("fail"), "sender").unwrap();
        let mut pollers = start(&mapping(3, 2, true), &queues, &jobs, &function);
        until("the good ones deleted and the bad one moved", || {
            let c = jobs.counters();
            c.deleted == 7 && c.moved_to_dead_letter == 1
        })
        .await;
        until("both of the bad one's invocations recorded", || {
            std::fs::read_to_string(&record)
                .unwrap_or_default()
                .matches(r#""body": "fail""#)
                .count()
                == 2
        })
        .await;
        pollers.stop();
        assert!(function.instances() <= 2, "MaximumConcurrency 2");
        function.stop();

        // Message id → its body and the receive counts it reached the function with.
        let mut seen: std::collections::BTreeMap<String, (String, Vec<String>)> =
            std::collections::BTreeMap::new();
        for line in std::fs::read_to_string(&record).unwrap().lines() {
            let records: Vec<Value> = serde_json::from_str(line).unwrap();
            assert!((1..=3).contains(&records.len()), "BatchSize 3: {line}");
            for r in records {
                assert_eq!(r["eventSource"], "aws:sqs");
                assert_eq!(r["eventSourceARN"], jobs.arn.as_str());
                assert_eq!(r["awsRegion"], "us-east-1");
                assert!(r["receiptHandle"].as_str().is_some_and(|h| !h.is_empty()));
                assert!(r["attributes"]["SentTimestamp"].as_str().is_some());
                let entry = seen
                    .entry(r["messageId"].as_str().unwrap().to_string())
                    .or_insert_with(|| (r["body"].as_str().unwrap().to_string(), Vec::new()));
                entry.1.push(
                    r["attributes"]["ApproximateReceiveCount"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
        assert_eq!(
            seen.len(),
            8,
            "every message reached the function: {seen:?}"
        );
        // The bad one maxReceiveCount times; the good ones at least once (a standard
        // queue's promise: one that outlives its visibility timeout, say in a slow cold
        // start, is handed out again).
        let bad: Vec<_> = seen.values().filter(|(body, _)| body == "fail").collect();
        assert_eq!(
            bad,
            [&("fail".to_string(), vec!["1".to_string(), "2".to_string()])]
        );
    }

    #[tokio::test]
    async fn a_function_error_returns_the_whole_batch() {
        let fake = FakeRuntime::new();
        let function = Arc::new(fake.function("error", Duration::from_secs(10), 10));
        let queues = Arc::new(queues(Duration::from_millis(100)));
        let jobs = queues.by_logical_id("Jobs").unwrap().clone();
        queues.send(&jobs, body("a"), "sender").unwrap();
        queues.send(&jobs, body("b"), "sender").unwrap();
        let _pollers = start(&mapping(10, 2, true), &queues, &jobs, &function);
        until("both moved to the dead-letter queue", || {
            jobs.counters().moved_to_dead_letter == 2
        })
        .await;
        assert_eq!(jobs.counters().deleted, 0);
        function.stop();
    }

    fn message(id: &str) -> Received {
        Received {
            message_id: id.to_string(),
            receipt_handle: format!("h-{id}"),
            body: "{}".to_string(),
            md5_of_body: String::new(),
            message_attributes: attributes::MessageAttributes::new(),
            receive_count: 1,
            sent_timestamp: 1,
            first_receive_timestamp: 2,
            sender_id: "S".to_string(),
        }
    }

    #[test]
    fn batch_responses_are_read_as_lambda_reads_them() {
        let batch = [message("a"), message("b")];
        assert!(failed_items(b"", &batch).unwrap().is_empty());
        assert!(failed_items(b"{}", &batch).unwrap().is_empty());
        assert!(failed_items(br#"{"batchItemFailures":[]}"#, &batch)
            .unwrap()
            .is_empty());
        assert_eq!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch).unwrap(),
            ["b"]
        );
        assert!(
            failed_items(br#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#, &batch).is_err()
        );
        assert!(failed_items(br#"{"batchItemFailures":[{}]}"#, &batch).is_err());
        assert!(failed_items(b"not json", &batch).is_err());
    }
}
