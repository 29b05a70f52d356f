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
use crate::sqs::{Queue, Queues, Received, BATCH_LIMIT, MAX_WAIT};

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
    let request_id = uuid::Uuid::new_v4().to_string();
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
                "messageAttributes": {},
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

    fn message(id: &str) -> Received {
        Received {
            message_id: id.to_string(),
            receipt_handle: format!("h-{id}"),
            body: "{}".to_string(),
            md5_of_body: String::new(),
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
