//! The fan-out function's edge: one SQS batch of fan-out jobs in, the jobs that failed
//! out (`batchItemFailures`). The same `webchat-lambda` binary runs it, fed by an SQS
//! event source mapping; `webchat-local` runs the same worker on an in-process queue.

use crate::delivery::{ConnectionGateway, FanoutJob};
use crate::limits::Limits;
use crate::rules::Rules;
use crate::store::{ConnectionStore, HistoryStore};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use webchat_telemetry::Causes;

/// Whether a Lambda event is an SQS batch (the fan-out function's) rather than an API
/// Gateway WebSocket event.
pub fn is_sqs_event(event: &serde_json::Value) -> bool {
    event
        .get("Records")
        .and_then(|records| records.as_array())
        .is_some_and(|records| {
            records
                .iter()
                .all(|record| record.get("eventSource").and_then(|s| s.as_str()) == Some("aws:sqs"))
        })
}

/// The fan-out function: pushes every job of an SQS batch (together) and names the
/// ones that failed (`batchItemFailures`), so SQS redelivers those alone and, after the
/// queue's `maxReceiveCount`, moves them to the dead-letter queue. A job fails when its
/// shard could not be read, or when its body is not a job (it never will be; the
/// dead-letter queue keeps it for someone to look at).
pub async fn handle_sqs<S, G>(
    store: &S,
    gateway: &G,
    limits: &Limits,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: ConnectionStore + HistoryStore,
    G: ConnectionGateway,
{
    let rules = Rules::new(store, gateway).with_limits(*limits);
    let rules = &rules;
    let outcomes = futures::future::join_all(event.records.into_iter().map(|record| async move {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or("");
        let failed = match FanoutJob::from_body(body) {
            Err(err) => {
                tracing::error!(message_id = id, error = %err, "an SQS message that is not a fan-out job");
                true
            }
            Ok(job) => match rules.deliver_shard(&job).await {
                Ok(outcome) => {
                    tracing::debug!(room = job.room, shard = job.shard.index, of = job.shard.of, delivered = outcome.delivered, "fan-out job done");
                    false
                }
                Err(err) => {
                    tracing::error!(message_id = id, room = job.room, shard = job.shard.index, error = %Causes(&err), "fan-out job failed; SQS will retry it");
                    true
                }
            },
        };
        failed.then_some(id)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in outcomes.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}
