//! Fan-out on AWS: jobs go to an SQS queue with `SendMessageBatch` (the fan-out
//! function's side is [`crate::fanout_edge`]).

use super::queue::{FanoutJob, FanoutQueue, QueueError};
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
