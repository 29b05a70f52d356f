//! Fan-out beyond one invocation: a push to a room of more than `FANOUT_INLINE` members
//! is split into one job per shard of the room ([`crate::store::Shard`]), queued, and
//! pushed by workers (the fan-out function on AWS, fed by SQS; a pool of tasks in
//! `webchat-local`). The rules see only the [`FanoutQueue`] port.

use crate::config::ConfigError;
use crate::store::{Shard, StoredMessage};
use futures::future::BoxFuture;

/// Rooms with at most this many members are pushed to by the handler itself; bigger
/// ones go to the fan-out workers. A Lambda pushing 64 at a time at about 20 ms a push
/// reaches 1,000 members in about 0.3 s (docs/scale.md).
pub const DEFAULT_FANOUT_INLINE: usize = 1_000;
/// The Lambda variable (and template parameter) that overrides [`DEFAULT_FANOUT_INLINE`].
pub const FANOUT_INLINE_VAR: &str = "FANOUT_INLINE";
/// The Lambda variable naming the SQS queue of fan-out jobs; without it every room is
/// pushed to inline, as before fan-out workers existed.
pub const FANOUT_QUEUE_URL_VAR: &str = "FANOUT_QUEUE_URL";

/// `FANOUT_INLINE` from the environment, or its default when unset.
pub fn fanout_inline_from_env() -> Result<usize, ConfigError> {
    match std::env::var(FANOUT_INLINE_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_FANOUT_INLINE),
        Err(std::env::VarError::NotUnicode(value)) => Err(ConfigError::invalid(
            FANOUT_INLINE_VAR,
            &value.to_string_lossy(),
            "not a whole number of members",
        )),
        Ok(value) => parse_fanout_inline(FANOUT_INLINE_VAR, &value),
    }
}

/// A fan-out threshold as a setting (`variable`) gives it: a whole number of members.
pub fn parse_fanout_inline(variable: &str, value: &str) -> Result<usize, ConfigError> {
    value.trim().parse::<usize>().map_err(|_| {
        ConfigError::invalid(
            variable,
            value,
            format!(
                "not a whole number of members (rooms above it are fanned out by workers; default {DEFAULT_FANOUT_INLINE})"
            ),
        )
    })
}

/// What a room gets pushed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RoomPush {
    /// A stored message: each member gets its `message` event, addressed to them.
    Message {
        /// The message as stored.
        message: StoredMessage,
    },
    /// One frame, the same for every member (a room event).
    Frame {
        /// The frame's JSON text.
        frame: String,
    },
}

/// One shard's share of a push to a room: what a worker does in one go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutJob {
    /// The room whose members get it.
    pub room: String,
    /// Which of the room's members.
    pub shard: Shard,
    /// The connection that gets nothing (a message's sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
    /// What they get.
    pub push: RoomPush,
}

impl FanoutJob {
    /// The job as a queue message body.
    pub fn to_body(&self) -> String {
        // Strings, integers and an enum of them: nothing here fails to serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A queue message body as a job.
    pub fn from_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

/// Why a job could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("could not queue a fan-out job: {context}")]
pub struct QueueError {
    /// What was tried and what came of it.
    pub context: String,
    /// The error underneath, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Where fan-out jobs go: SQS on AWS, an in-process pool in `webchat-local`.
pub trait FanoutQueue: Send + Sync {
    /// Queues every job, retrying what the queue asks to be retried; returns the jobs
    /// it could not queue, with why, so the caller can push those itself.
    fn enqueue(&self, jobs: Vec<FanoutJob>) -> BoxFuture<'_, Vec<(FanoutJob, QueueError)>>;
}

/// The rules' view of fan-out: where big rooms' jobs go, and what counts as big.
#[derive(Clone, Copy)]
pub struct Fanout<'a> {
    /// The queue the jobs go to.
    pub queue: &'a dyn FanoutQueue,
    /// Rooms with more members than this are handed to the workers.
    pub inline_limit: usize,
    /// Members per job: a room of N members is split into ⌈N / `shard_size`⌉ shards
    /// ([`crate::store::SHARD_SIZE`] unless a test wants many shards of a small room).
    pub shard_size: usize,
}

impl<'a> Fanout<'a> {
    /// Big rooms to `queue`, with the default shard size.
    pub fn new(queue: &'a dyn FanoutQueue, inline_limit: usize) -> Self {
        Fanout {
            queue,
            inline_limit,
            shard_size: crate::store::SHARD_SIZE,
        }
    }
}

impl std::fmt::Debug for Fanout<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("inline_limit", &self.inline_limit)
            .field("shard_size", &self.shard_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_survives_the_queue_as_json() {
        let job = FanoutJob {
            room: "big".into(),
            shard: Shard { index: 3, of: 20 },
            except: Some("A=".into()),
            push: RoomPush::Message {
                message: StoredMessage {
                    room: "big".into(),
                    message_id: "01K".into(),
                    sender: "ana".into(),
                    sender_id: "A=".into(),
                    message: "hi".into(),
                    timestamp: 1,
                    expires_at: 2,
                    to: None,
                },
            },
        };
        assert_eq!(FanoutJob::from_body(&job.to_body()).unwrap(), job);
    }

    #[test]
    fn a_bad_fanout_inline_names_the_variable() {
        let err = parse_fanout_inline(FANOUT_INLINE_VAR, "lots").unwrap_err();
        assert!(err.to_string().contains("FANOUT_INLINE"), "{err}");
        assert_eq!(
            parse_fanout_inline(FANOUT_INLINE_VAR, " 250 ").unwrap(),
            250
        );
    }
}
