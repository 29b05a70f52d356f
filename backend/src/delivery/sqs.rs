//! Fan-out on AWS: jobs go to an SQS queue with `SendMessageBatch`, and the fan-out
//! function (the same `webchat-lambda` binary, fed by an SQS event source mapping) works
//! through them, reporting the jobs that failed so only those come back.

use super::queue::{FanoutJob, FanoutQueue, QueueError};
use super::ConnectionGateway;
use crate::limits::Limits;
use crate::rules::Rules;
use crate::store::{ConnectionStore, HistoryStore};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::future::BoxFuture;
use std::time::Duration;
use webchat_telemetry::Causes;

/// SQS takes at most ten messages per `SendMessageBatch`.
const BATCH_LIMIT: usize = 10;
/// Tries per batch while SQS reports entries it may take on a second try.
const BATCH_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The SQS queue of fan-out jobs.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    /// Sends jobs to the queue at `url`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    /// Sends up to ten jobs, retrying the entries SQS did not take for reasons of its
    /// own; returns those it never took.
    async fn send_batch(&self, jobs: Vec<FanoutJob>) -> Vec<(FanoutJob, QueueError)> {
        let mut pending: Vec<(usize, FanoutJob)> = jobs.into_iter().enumerate().collect();
        let mut backoff = FIRST_BACKOFF;
        let mut refused = Vec::new();
        for attempt in 1..=BATCH_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|(id, job)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id.to_string())
                        .message_body(job.to_body())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>();
            let entries = match entries {
                Ok(entries) => entries,
                Err(err) => return fail_all(pending, "SendMessageBatch entry", &err),
            };
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            let retry: Vec<(usize, FanoutJob)> = match sent {
                Ok(output) => {
                    let mut retry = Vec::new();
                    for failed in output.failed() {
                        let Some(index) = pending
                            .iter()
                            .position(|(id, _)| id.to_string() == failed.id())
                        else {
                            continue;
                        };
                        let (id, job) = pending.swap_remove(index);
                        let context = format!(
                            "SQS refused the job ({}: {})",
                            failed.code(),
                            failed.message().unwrap_or("no message")
                        );
                        // A sender fault (too big, malformed) fails the same way again.
                        if failed.sender_fault() || attempt == BATCH_ATTEMPTS {
                            refused.push((job, queue_error(context, None)));
                        } else {
                            retry.push((id, job));
                        }
                    }
                    retry
                }
                Err(err) if attempt == BATCH_ATTEMPTS => {
                    refused.extend(fail_all(
                        std::mem::take(&mut pending),
                        "SendMessageBatch",
                        &err,
                    ));
                    Vec::new()
                }
                Err(err) => {
                    tracing::warn!(error = %Causes(&err), attempt, "SendMessageBatch failed; retrying");
                    std::mem::take(&mut pending)
                }
            };
            if retry.is_empty() {
                break;
            }
            pending = retry;
            tokio::time::sleep(rand::random_range(backoff / 2..=backoff)).await;
            backoff *= 2;
        }
        refused
    }
}

fn queue_error(
    context: impl Into<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> QueueError {
    QueueError {
        context: context.into(),
        source,
    }
}

fn fail_all(
    jobs: Vec<(usize, FanoutJob)>,
    what: &str,
    source: &(dyn std::error::Error + 'static),
) -> Vec<(FanoutJob, QueueError)> {
    let context = format!("{what} failed: {}", Causes(source));
    jobs.into_iter()
        .map(|(_, job)| (job, queue_error(context.clone(), None)))
        .collect()
}

impl FanoutQueue for SqsQueue {
    fn enqueue(&self, jobs: Vec<FanoutJob>) -> BoxFuture<'_, Vec<(FanoutJob, QueueError)>> {
        Box::pin(async move {
            let mut batches = Vec::new();
            let mut jobs = jobs.into_iter().peekable();
            while jobs.peek().is_some() {
                batches.push(jobs.by_ref().take(BATCH_LIMIT).collect::<Vec<_>>());
            }
            // The batches go out together: a 200-shard room is 20 requests, not 20 round trips.
            futures::future::join_all(batches.into_iter().map(|batch| self.send_batch(batch)))
                .await
                .into_iter()
                .flatten()
                .collect()
        })
    }
}

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
