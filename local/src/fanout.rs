//! The fan-out workers of `webchat-local`: the same worker code the fan-out function
//! runs on AWS ([`Rules::deliver_shard`]), fed from an in-process queue instead of SQS.
//! A bounded pool of tasks takes the jobs; a job whose shard could not be read is tried
//! again after a pause, as SQS redelivers it, and given up after as many receives as the
//! template's redrive policy allows (on AWS it would then sit in the dead-letter queue).

use crate::gateway::Gateway;
use futures::future::BoxFuture;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use webchat_backend::{FanoutJob, FanoutQueue, QueueError, Rules, StoreError};

/// Workers pushing at once. Each pushes 64 at a time, and the process lets 128 pushes
/// be in flight in all, so a few already keep the management API busy.
const WORKERS: usize = 4;
/// Jobs waiting at most; beyond it the handler pushes the job itself.
const QUEUE_CAPACITY: usize = 4_096;
/// Receives of one job before it is given up: the template's `maxReceiveCount`.
pub(crate) const MAX_RECEIVES: u32 = 3;
/// The pause before a failed job's next receive (SQS would wait out the visibility
/// timeout; here a short pause is enough).
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// One job and how often it was taken.
struct Queued {
    job: FanoutJob,
    receives: u32,
}

/// The queue handlers put jobs on.
pub(crate) struct LocalQueue {
    sender: mpsc::Sender<Queued>,
}

/// The workers' end of the queue, until the gateway hands it to them.
pub(crate) struct Jobs(mpsc::Receiver<Queued>);

/// A queue and its receiving end.
pub(crate) fn queue() -> (LocalQueue, Jobs) {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    (LocalQueue { sender }, Jobs(receiver))
}

impl FanoutQueue for LocalQueue {
    fn enqueue(&self, jobs: Vec<FanoutJob>) -> BoxFuture<'_, Vec<(FanoutJob, QueueError)>> {
        let mut refused = Vec::new();
        for job in jobs {
            if let Err(err) = self.sender.try_send(Queued { job, receives: 0 }) {
                let (reason, queued) = match err {
                    mpsc::error::TrySendError::Full(queued) => ("full", queued),
                    mpsc::error::TrySendError::Closed(queued) => ("closed", queued),
                };
                refused.push((
                    queued.job,
                    QueueError {
                        context: format!("the in-process fan-out queue is {reason}"),
                        source: None,
                    },
                ));
            }
        }
        Box::pin(std::future::ready(refused))
    }
}

/// Starts the pool on `jobs`. The workers hold the gateway weakly: they stop once it
/// is gone (its queue's sender with it).
pub(crate) fn spawn_workers(gateway: &Arc<Gateway>, jobs: Jobs) {
    let jobs = Arc::new(Mutex::new(jobs.0));
    for _ in 0..WORKERS {
        let jobs = jobs.clone();
        let gateway = Arc::downgrade(gateway);
        tokio::spawn(async move {
            loop {
                let next = jobs.lock().await.recv().await;
                let Some(mut queued) = next else { return };
                let Some(strong) = gateway.upgrade() else {
                    return;
                };
                queued.receives += 1;
                let outcome = {
                    let rules = Rules::new(&strong.store, &strong.management)
                        .with_limits(strong.config.limits);
                    rules.deliver_shard(&queued.job).await.map(|_| ())
                };
                drop(strong);
                after_receive(queued, outcome, &gateway);
            }
        });
    }
}

/// How long a job that failed on its `receives`-th receive waits for the next; `None`
/// once it has had [`MAX_RECEIVES`].
fn retry_after(receives: u32) -> Option<Duration> {
    (receives < MAX_RECEIVES).then_some(RETRY_PAUSE)
}

/// What follows a job's receive: nothing when it went through, else another receive
/// after a pause, until [`MAX_RECEIVES`].
fn after_receive(queued: Queued, outcome: Result<(), StoreError>, gateway: &Weak<Gateway>) {
    let Err(err) = outcome else { return };
    let error = &err as &dyn std::error::Error;
    let Some(pause) = retry_after(queued.receives) else {
        tracing::error!(
            room = queued.job.room,
            shard = queued.job.shard.index,
            receives = queued.receives,
            error,
            "fan-out job given up (on AWS: moved to the dead-letter queue)"
        );
        return;
    };
    tracing::warn!(
        room = queued.job.room,
        shard = queued.job.shard.index,
        error,
        "fan-out job failed; trying it again"
    );
    let gateway = gateway.clone();
    tokio::spawn(async move {
        tokio::time::sleep(pause).await;
        if let Some(gateway) = gateway.upgrade() {
            let _ = gateway.fanout.sender.send(queued).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_job_is_received_again_until_the_redrive_limit() {
        assert_eq!(retry_after(1), Some(RETRY_PAUSE));
        assert_eq!(retry_after(MAX_RECEIVES - 1), Some(RETRY_PAUSE));
        assert_eq!(retry_after(MAX_RECEIVES), None);
    }
}
