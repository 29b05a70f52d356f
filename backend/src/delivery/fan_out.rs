//! Delivery to other connections: a bounded fan-out, and a gateway wrapper that retries
//! what API Gateway asks to be retried. The chat rules only say who gets what.

use super::{ConnectionGateway, PostError};
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use std::time::Duration;
use webchat_telemetry::metrics as m;
use webchat_telemetry::Causes;

/// How many pushes run at once: enough to hide API Gateway's latency, few enough not to
/// trip its throttling or exhaust sockets.
pub const FANOUT_CONCURRENCY: usize = 64;
/// Attempts per push when API Gateway throttles (429) or is unavailable (5xx, no
/// connection).
const PUSH_ATTEMPTS: u32 = 5;
const PUSH_FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// No retry starts this long after a push's first attempt, so a fan-out still answers
/// well inside the Lambda's 10 s timeout.
const PUSH_RETRY_WINDOW: Duration = Duration::from_secs(3);

/// What one fan-out achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FanOut {
    /// Recipients the frame reached.
    pub delivered: u32,
    /// Recipients API Gateway reported as closed (410).
    pub gone: Vec<String>,
    /// Recipients the frame did not reach for any other reason, after retries.
    pub failed: u32,
}

/// Pushes each `(connection id, frame)` with bounded concurrency. A failing recipient
/// never stops the others.
pub async fn fan_out<G: ConnectionGateway>(
    gateway: &G,
    deliveries: Vec<(String, String)>,
) -> FanOut {
    let mut waiting = deliveries.into_iter();
    let mut in_flight = FuturesUnordered::new();
    let mut outcome = FanOut::default();
    let started = std::time::Instant::now();
    loop {
        while in_flight.len() < FANOUT_CONCURRENCY {
            let Some((connection_id, payload)) = waiting.next() else {
                break;
            };
            in_flight.push(async move {
                let result = gateway.post(&connection_id, &payload).await;
                (connection_id, result)
            });
        }
        let Some((connection_id, result)) = in_flight.next().await else {
            record(&outcome, started);
            return outcome;
        };
        match result {
            Ok(()) => outcome.delivered += 1,
            Err(PostError::Gone) => outcome.gone.push(connection_id),
            Err(err) => {
                tracing::warn!(connection_id, error = %Causes(&err), "push failed");
                outcome.failed += 1;
            }
        }
    }
}

/// One fan-out's figures, unless it had nobody to push to.
fn record(outcome: &FanOut, started: std::time::Instant) {
    if outcome.delivered == 0 && outcome.failed == 0 && outcome.gone.is_empty() {
        return;
    }
    metrics::counter!(m::DELIVERIES).increment(u64::from(outcome.delivered));
    metrics::counter!(m::PUSH_FAILURES).increment(u64::from(outcome.failed));
    metrics::histogram!(m::FANOUT_DURATION).record(started.elapsed().as_secs_f64() * 1000.0);
}

/// A gateway whose pushes are retried with jittered exponential backoff when API
/// Gateway throttles or is unavailable. A push whose attempt timed out is not retried:
/// it may have arrived, and would show twice.
#[derive(Debug, Clone)]
pub struct Retrying<G> {
    inner: G,
}

impl<G> Retrying<G> {
    /// Retries pushes through `inner`.
    pub fn new(inner: G) -> Self {
        Retrying { inner }
    }

    /// The gateway underneath, for what needs no retry (deleting a connection, say).
    pub fn inner(&self) -> &G {
        &self.inner
    }
}

impl<G: ConnectionGateway> ConnectionGateway for Retrying<G> {
    async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        let started = tokio::time::Instant::now();
        let mut backoff = PUSH_FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = self.inner.post(connection_id, data).await;
            if matches!(result, Err(PostError::Throttled)) {
                metrics::counter!(m::PUSHES_THROTTLED).increment(1);
            }
            match result {
                Err(err)
                    if err.is_retryable()
                        && attempt < PUSH_ATTEMPTS
                        && started.elapsed() < PUSH_RETRY_WINDOW =>
                {
                    metrics::counter!(m::PUSH_RETRIES).increment(1);
                    // Full jitter keeps many failed pushes from retrying in lockstep.
                    let pause = rand::rng().random_range(backoff / 2..=backoff);
                    tokio::time::sleep(pause).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn delete(&self, connection_id: &str) -> Result<(), PostError> {
        self.inner.delete(connection_id).await
    }

    async fn is_open(&self, connection_id: &str) -> Result<bool, PostError> {
        self.inner.is_open(connection_id).await
    }
}
