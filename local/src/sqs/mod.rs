//! SQS as the template declares its queues (`--template` mode): the queues themselves
//! ([`Queues`], in memory), the endpoint the functions and the operator call
//! ([`endpoint`], the JSON protocol current SDKs speak), and Lambda's SQS event source
//! mappings that feed functions from them ([`crate::event_source`]).
//!
//! A queue keeps SQS's standard-queue behaviour where a user would notice it: a received
//! message is hidden for the queue's visibility timeout and comes back unless deleted
//! with its latest receipt handle; each receive counts, and once a message has been
//! received the redrive policy's `maxReceiveCount` times its next receive moves it to
//! the dead-letter queue instead; messages older than the retention period are dropped;
//! `DelaySeconds` hides a new message for a while; `WaitTimeSeconds` long-polls.

pub mod attributes;
pub mod endpoint;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::json;
use webchat_templates::deployment::QueueSpec;

use attributes::MessageAttributes;

/// Entries a batch call takes at most.
pub const BATCH_LIMIT: usize = 10;
/// `WaitTimeSeconds` at most.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// `VisibilityTimeout` at most (12 hours).
const MAX_VISIBILITY_TIMEOUT: u64 = 43_200;
/// `DelaySeconds` at most (15 minutes).
const MAX_DELAY: u64 = 900;

/// An error as SQS answers it: its code in the JSON protocol's `__type`, the query
/// protocol's code (`x-amzn-query-error`, which SDKs report as the error's code), and a
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SqsError {
    /// The JSON protocol's error name (`QueueDoesNotExist`).
    pub code: &'static str,
    /// The query-compatible code (`AWS.SimpleQueueService.NonExistentQueue`).
    pub query_code: &'static str,
    /// What went wrong.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

impl SqsError {
    fn new(code: &'static str, query_code: &'static str, message: impl Into<String>) -> SqsError {
        SqsError {
            code,
            query_code,
            message: message.into(),
            status: 400,
        }
    }

    /// The queue named is not one of the template's.
    pub fn no_queue() -> SqsError {
        SqsError::new(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        )
    }

    /// A parameter's value is not one SQS takes.
    pub fn invalid_parameter(message: impl Into<String>) -> SqsError {
        SqsError::new("InvalidParameterValue", "InvalidParameterValue", message)
    }

    /// A required parameter is missing.
    pub fn missing_parameter(name: &str) -> SqsError {
        SqsError::new(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {name}."),
        )
    }

    fn receipt_invalid(handle: &str) -> SqsError {
        SqsError::new(
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    }
}

/// What a queue has seen since the start (the tests and the log read them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Messages sent to it (`SendMessage`, each entry of `SendMessageBatch`).
    pub sent: u64,
    /// Receives of its messages (one message received twice counts two).
    pub received: u64,
    /// Messages deleted with their latest receipt handle.
    pub deleted: u64,
    /// Messages moved from it to its dead-letter queue.
    pub moved_to_dead_letter: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    deleted: AtomicU64,
    moved_to_dead_letter: AtomicU64,
}

/// One message as the queue keeps it.
#[derive(Debug, Clone)]
struct Stored {
    id: String,
    body: String,
    md5_of_body: String,
    attributes: MessageAttributes,
    sender_id: String,
    sent_at_ms: u64,
    arrived: Instant,
    visible_at: Instant,
    receives: u32,
    first_receive_ms: Option<u64>,
    /// The latest receipt handle, while received.
    receipt: Option<String>,
}

/// A message handed out by [`Queues::receive`].
#[derive(Debug, Clone)]
pub struct Received {
    /// `MessageId`.
    pub message_id: String,
    /// This receive's handle.
    pub receipt_handle: String,
    /// `Body`.
    pub body: String,
    /// `MD5OfBody`.
    pub md5_of_body: String,
    /// Every `MessageAttributes` it was sent with.
    pub message_attributes: MessageAttributes,
    /// `ApproximateReceiveCount`, this receive included.
    pub receive_count: u32,
    /// `SentTimestamp` (ms since the epoch).
    pub sent_timestamp: u64,
    /// `ApproximateFirstReceiveTimestamp`.
    pub first_receive_timestamp: u64,
    /// `SenderId`.
    pub sender_id: String,
}

impl Received {
    /// The system attributes SQS returns for `AttributeNames: ["All"]`.
    pub fn attributes(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("ApproximateReceiveCount", self.receive_count.to_string()),
            ("SentTimestamp", self.sent_timestamp.to_string()),
            (
                "ApproximateFirstReceiveTimestamp",
                self.first_receive_timestamp.to_string(),
            ),
            ("SenderId", self.sender_id.clone()),
        ])
    }
}

/// One queue of the template.
pub struct Queue {
    /// The template's logical id.
    pub logical_id: String,
    /// Its name.
    pub name: String,
    /// Its URL, as `Ref` gives it (and `GetQueueUrl` answers).
    pub url: String,
    /// Its ARN.
    pub arn: String,
    visibility_timeout: Duration,
    retention: Duration,
    maximum_message_size: usize,
    delay: Duration,
    receive_wait: Duration,
    redrive: Option<(String, u32)>,
    redrive_policy: Option<String>,
    created_ms: u64,
    messages: Mutex<Vec<Stored>>,
    arrived: tokio::sync::Notify,
    counters: Counters,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Stored>> {
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The queue's visibility timeout, as it runs (the template's, or the override).
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// What it has seen.
    pub fn counters(&self) -> QueueCounters {
        QueueCounters {
            sent: self.counters.sent.load(Ordering::Relaxed),
            received: self.counters.received.load(Ordering::Relaxed),
            deleted: self.counters.deleted.load(Ordering::Relaxed),
            moved_to_dead_letter: self.counters.moved_to_dead_letter.load(Ordering::Relaxed),
        }
    }

    /// Drops the messages past the retention period.
    fn expire(&self, messages: &mut Vec<Stored>, now: Instant) {
        messages.retain(|m| now.duration_since(m.arrived) < self.retention);
    }
}

/// Every queue of the template, by name.
#[derive(Debug)]
pub struct Queues {
    by_name: BTreeMap<String, Arc<Queue>>,
    /// The account the queues' URLs and ARNs name.
    pub account_id: String,
    /// The region.
    pub region: String,
}

/// The gateway's clock, as SQS's timestamps count it (ms since the epoch).
fn now_ms() -> u64 {
    u64::try_from(crate::events::now_ms()).unwrap_or(0)
}

/// The characters SQS takes in a message body.
fn allowed_in_body(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// What a send answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `MessageId`.
    pub message_id: String,
    /// `MD5OfMessageBody`.
    pub md5_of_body: String,
    /// `MD5OfMessageAttributes`, when it has any.
    pub md5_of_attributes: Option<String>,
}

/// SQS's answer to a body or attribute value with characters XML cannot carry.
fn invalid_characters() -> SqsError {
    SqsError::new(
        "InvalidMessageContents",
        "InvalidMessageContents",
        "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
    )
}

/// A message to send: its body, attributes and delay.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `MessageBody`.
    pub body: String,
    /// `DelaySeconds`, when given.
    pub delay_seconds: Option<i64>,
    /// `MessageAttributes`, checked.
    pub attributes: MessageAttributes,
}

impl Queues {
    /// The template's queues; `visibility_timeout` (when given) replaces every queue's
    /// own (`--queue-visibility-timeout`).
    pub fn new(
        specs: &[QueueSpec],
        region: &str,
        account_id: &str,
        visibility_timeout: Option<Duration>,
    ) -> Queues {
        let by_arn: BTreeMap<&str, &str> = specs
            .iter()
            .map(|q| (q.arn.as_str(), q.queue_name.as_str()))
            .collect();
        let created_ms = now_ms();
        let by_name = specs
            .iter()
            .map(|spec| {
                let redrive = spec.redrive.as_ref().and_then(|r| {
                    let target = by_arn.get(r.dead_letter_target_arn.as_str());
                    if target.is_none() {
                        tracing::warn!(
                            target: "webchat_local::sqs",
                            "queue {}: its dead-letter queue {} is not one of the template's; no message will move there",
                            spec.logical_id,
                            r.dead_letter_target_arn
                        );
                    }
                    target.map(|name| ((*name).to_string(), r.max_receive_count))
                });
                let queue = Queue {
                    logical_id: spec.logical_id.clone(),
                    name: spec.queue_name.clone(),
                    url: spec.url.clone(),
                    arn: spec.arn.clone(),
                    visibility_timeout: visibility_timeout
                        .unwrap_or(Duration::from_secs(spec.visibility_timeout_seconds)),
                    retention: Duration::from_secs(spec.message_retention_seconds),
                    maximum_message_size: usize::try_from(spec.maximum_message_size)
                        .unwrap_or(usize::MAX),
                    delay: Duration::from_secs(spec.delay_seconds),
                    receive_wait: Duration::from_secs(spec.receive_wait_seconds).min(MAX_WAIT),
                    redrive_policy: spec.redrive.as_ref().map(|r| {
                        json!({
                            "deadLetterTargetArn": r.dead_letter_target_arn,
                            "maxReceiveCount": r.max_receive_count,
                        })
                        .to_string()
                    }),
                    redrive,
                    created_ms,
                    messages: Mutex::new(Vec::new()),
                    arrived: tokio::sync::Notify::new(),
                    counters: Counters::default(),
                };
                (spec.queue_name.clone(), Arc::new(queue))
            })
            .collect();
        Queues {
            by_name,
            account_id: account_id.to_string(),
            region: region.to_string(),
        }
    }

    /// Every queue, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Queue>> {
        self.by_name.values()
    }

    /// The queue with this name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Queue>> {
        self.by_name.get(name)
    }

    /// The queue with this logical id.
    pub fn by_logical_id(&self, logical_id: &str) -> Option<&Arc<Queue>> {
        self.by_name.values().find(|q| q.logical_id == logical_id)
    }

    /// The account and name a queue URL names: its path's last two segments, whatever
    /// the host (the deployed `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` and this
    /// endpoint's own address both work, as SDKs send the URL they were given).
    pub fn parse_url(url: &str) -> Option<(&str, &str)> {
        let path = url.split_once("://").map_or(url, |(_, rest)| {
            rest.split_once('/').map_or("", |(_, path)| path)
        });
        let mut parts = path.trim_end_matches('/').rsplit('/');
        let name = parts.next().filter(|n| !n.is_empty())?;
        let account = parts.next().filter(|a| !a.is_empty())?;
        Some((account, name))
    }

    /// The ARN the queue a URL names has (whether or not it exists), for IAM.
    pub fn arn_for(&self, account: &str, name: &str) -> String {
        format!("arn:aws:sqs:{}:{account}:{name}", self.region)
    }

    /// The queue a URL names.
    pub fn by_url(&self, url: &str) -> Result<&Arc<Queue>, SqsError> {
        let (account, name) = Queues::parse_url(url).ok_or_else(SqsError::no_queue)?;
        if account != self.account_id {
            return Err(SqsError::no_queue());
        }
        self.by_name.get(name).ok_or_else(SqsError::no_queue)
    }

    /// Checks a body as SQS does, before anything is stored; the attributes count
    /// towards the size.
    fn check_body(
        queue: &Queue,
        body: &str,
        attributes: &MessageAttributes,
    ) -> Result<(), SqsError> {
        if body.is_empty() {
            return Err(SqsError::missing_parameter("MessageBody"));
        }
        if body.len() + attributes::size(attributes) > queue.maximum_message_size {
            return Err(SqsError::invalid_parameter(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
                queue.maximum_message_size
            )));
        }
        if !body.chars().all(allowed_in_body) {
            return Err(invalid_characters());
        }
        Ok(())
    }

    fn delay_of(queue: &Queue, delay_seconds: Option<i64>) -> Result<Duration, SqsError> {
        match delay_seconds {
            None => Ok(queue.delay),
            Some(d) => u64::try_from(d)
                .ok()
                .filter(|d| *d <= MAX_DELAY)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    SqsError::invalid_parameter(format!(
                        "Value {d} for parameter DelaySeconds is invalid. Reason: must be between 0 and {MAX_DELAY}, if provided."
                    ))
                }),
        }
    }

    /// Sends one message.
    pub fn send(
        &self,
        queue: &Queue,
        message: Outgoing,
        sender_id: &str,
    ) -> Result<Sent, SqsError> {
        Queues::check_body(queue, &message.body, &message.attributes)?;
        let delay = Queues::delay_of(queue, message.delay_seconds)?;
        let now = Instant::now();
        let stored = Stored {
            id: uuid::Uuid::new_v4().to_string(),
            md5_of_body: hex::encode(Md5::digest(message.body.as_bytes())),
            body: message.body,
            attributes: message.attributes,
            sender_id: sender_id.to_string(),
            sent_at_ms: now_ms(),
            arrived: now,
            visible_at: now + delay,
            receives: 0,
            first_receive_ms: None,
            receipt: None,
        };
        let sent = Sent {
            message_id: stored.id.clone(),
            md5_of_body: stored.md5_of_body.clone(),
            md5_of_attributes: attributes::md5(&stored.attributes),
        };
        queue.lock().push(stored);
        queue.counters.sent.fetch_add(1, Ordering::Relaxed);
        queue.arrived.notify_waiters();
        Ok(sent)
    }

    fn receipt_handle(queue: &Queue, message_id: &str) -> String {
        let nonce: u64 = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}\n{message_id}\n{nonce:016x}", queue.name))
    }

    /// The message id a receipt handle of `queue` names.
    fn message_id_of(queue: &Queue, handle: &str) -> Result<String, SqsError> {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(handle)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| SqsError::receipt_invalid(handle))?;
        let mut parts = decoded.split('\n');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(id), Some(_), None) if name == queue.name => Ok(id.to_string()),
            _ => Err(SqsError::receipt_invalid(handle)),
        }
    }

    /// Receives up to `max` messages, hiding each for `visibility` (the queue's own by
    /// default), waiting up to `wait` (the queue's `ReceiveMessageWaitTimeSeconds` by
    /// default) for one to arrive. A message already received `maxReceiveCount` times
    /// moves to the dead-letter queue instead.
    pub async fn receive(
        &self,
        queue: &Queue,
        max: usize,
        visibility: Option<Duration>,
        wait: Option<Duration>,
    ) -> Vec<Received> {
        let visibility = visibility.unwrap_or(queue.visibility_timeout);
        let deadline = Instant::now() + wait.unwrap_or(queue.receive_wait).min(MAX_WAIT);
        loop {
            let arrived = queue.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (taken, next_visible) = self.take(queue, max, visibility);
            let now = Instant::now();
            if !taken.is_empty() || now >= deadline {
                return taken;
            }
            let until = next_visible.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// Takes what is visible now; also says when the next hidden message shows.
    fn take(
        &self,
        queue: &Queue,
        max: usize,
        visibility: Duration,
    ) -> (Vec<Received>, Option<Instant>) {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut next_visible: Option<Instant> = None;
        {
            let mut messages = queue.lock();
            queue.expire(&mut messages, now);
            let mut index = 0;
            while index < messages.len() && out.len() < max {
                let message = &mut messages[index];
                if message.visible_at > now {
                    next_visible = Some(
                        next_visible.map_or(message.visible_at, |n| n.min(message.visible_at)),
                    );
                    index += 1;
                    continue;
                }
                if let Some((_, max_receives)) = &queue.redrive {
                    if message.receives >= *max_receives {
                        dead.push(messages.remove(index));
                        continue;
                    }
                }
                let ms = now_ms();
                message.receives += 1;
                let first = *message.first_receive_ms.get_or_insert(ms);
                let handle = Queues::receipt_handle(queue, &message.id);
                message.receipt = Some(handle.clone());
                message.visible_at = now + visibility;
                out.push(Received {
                    message_id: message.id.clone(),
                    receipt_handle: handle,
                    body: message.body.clone(),
                    md5_of_body: message.md5_of_body.clone(),
                    message_attributes: message.attributes.clone(),
                    receive_count: message.receives,
                    sent_timestamp: message.sent_at_ms,
                    first_receive_timestamp: first,
                    sender_id: message.sender_id.clone(),
                });
                index += 1;
            }
        }
        queue
            .counters
            .received
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        if !dead.is_empty() {
            self.move_to_dead_letter(queue, dead);
        }
        (out, next_visible)
    }

    fn move_to_dead_letter(&self, queue: &Queue, dead: Vec<Stored>) {
        let Some(target) = queue
            .redrive
            .as_ref()
            .and_then(|(name, _)| self.by_name.get(name))
        else {
            return;
        };
        let now = Instant::now();
        queue
            .counters
            .moved_to_dead_letter
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        for message in &dead {
            tracing::warn!(
                target: "webchat_local::sqs",
                "queue {}: message {} received {} times; moved to the dead-letter queue {}",
                queue.logical_id,
                message.id,
                message.receives,
                target.logical_id
            );
        }
        let mut messages = target.lock();
        // It keeps its id, body, sent time and receive count, as SQS keeps them.
        messages.extend(dead.into_iter().map(|m| Stored {
            visible_at: now,
            receipt: None,
            ..m
        }));
        drop(messages);
        target.arrived.notify_waiters();
    }

    /// Deletes the message a receipt handle names, if that handle is its latest (an
    /// older one succeeds and deletes nothing, as on SQS).
    pub fn delete(&self, queue: &Queue, handle: &str) -> Result<(), SqsError> {
        let id = Queues::message_id_of(queue, handle)?;
        let mut messages = queue.lock();
        if let Some(index) = messages
            .iter()
            .position(|m| m.id == id && m.receipt.as_deref() == Some(handle))
        {
            messages.remove(index);
            queue.counters.deleted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Hides a received message for `seconds` more from now (0 shows it again).
    pub fn change_visibility(
        &self,
        queue: &Queue,
        handle: &str,
        seconds: i64,
    ) -> Result<(), SqsError> {
        let seconds = u64::try_from(seconds)
            .ok()
            .filter(|s| *s <= MAX_VISIBILITY_TIMEOUT)
            .ok_or_else(|| {
                SqsError::invalid_parameter(format!(
                    "Value {seconds} for parameter VisibilityTimeout is invalid. Reason: must be between 0 and {MAX_VISIBILITY_TIMEOUT}."
                ))
            })?;
        let id = Queues::message_id_of(queue, handle)?;
        let now = Instant::now();
        let mut messages = queue.lock();
        let Some(message) = messages.iter_mut().find(|m| m.id == id) else {
            return Ok(());
        };
        if message.receipt.as_deref() != Some(handle) {
            return Ok(());
        }
        if message.visible_at <= now {
            return Err(SqsError::new(
                "MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
                "The message referred to isn't in flight.",
            ));
        }
        message.visible_at = now + Duration::from_secs(seconds);
        drop(messages);
        queue.arrived.notify_waiters();
        Ok(())
    }

    /// Removes every message.
    pub fn purge(&self, queue: &Queue) {
        queue.lock().clear();
    }

    /// `GetQueueAttributes` for `names` (`All` for every one).
    pub fn attributes(
        &self,
        queue: &Queue,
        names: &[String],
    ) -> Result<BTreeMap<&'static str, String>, SqsError> {
        let now = Instant::now();
        let (visible, hidden, delayed) = {
            let mut messages = queue.lock();
            queue.expire(&mut messages, now);
            let visible = messages.iter().filter(|m| m.visible_at <= now).count();
            let hidden = messages
                .iter()
                .filter(|m| m.visible_at > now && m.receipt.is_some())
                .count();
            let delayed = messages
                .iter()
                .filter(|m| m.visible_at > now && m.receipt.is_none())
                .count();
            (visible, hidden, delayed)
        };
        let mut all: BTreeMap<&'static str, String> = BTreeMap::from([
            ("QueueArn", queue.arn.clone()),
            ("ApproximateNumberOfMessages", visible.to_string()),
            ("ApproximateNumberOfMessagesNotVisible", hidden.to_string()),
            ("ApproximateNumberOfMessagesDelayed", delayed.to_string()),
            (
                "VisibilityTimeout",
                queue.visibility_timeout.as_secs().to_string(),
            ),
            (
                "MessageRetentionPeriod",
                queue.retention.as_secs().to_string(),
            ),
            ("MaximumMessageSize", queue.maximum_message_size.to_string()),
            ("DelaySeconds", queue.delay.as_secs().to_string()),
            (
                "ReceiveMessageWaitTimeSeconds",
                queue.receive_wait.as_secs().to_string(),
            ),
            ("CreatedTimestamp", (queue.created_ms / 1000).to_string()),
            (
                "LastModifiedTimestamp",
                (queue.created_ms / 1000).to_string(),
            ),
            ("SqsManagedSseEnabled", "true".to_string()),
        ]);
        if let Some(policy) = &queue.redrive_policy {
            all.insert("RedrivePolicy", policy.clone());
        }
        if names.iter().any(|n| n == "All") {
            return Ok(all);
        }
        let known = [
            "Policy",
            "RedriveAllowPolicy",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
            "FifoQueue",
            "ContentBasedDeduplication",
            "DeduplicationScope",
            "FifoThroughputLimit",
        ];
        let mut out = BTreeMap::new();
        for name in names {
            match all.get_key_value(name.as_str()) {
                Some((key, value)) => {
                    out.insert(*key, value.clone());
                }
                // An attribute SQS has that this queue has no value for: left out, as SQS does.
                None if known.contains(&name.as_str()) || name == "RedrivePolicy" => {}
                None => {
                    return Err(SqsError::new(
                        "InvalidAttributeName",
                        "InvalidAttributeName",
                        format!("Unknown Attribute {name}."),
                    ))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use webchat_templates::deployment::RedrivePolicy;

    fn spec(name: &str, redrive: Option<RedrivePolicy>) -> QueueSpec {
        QueueSpec {
            logical_id: name.to_string(),
            queue_name: format!("stack-{name}"),
            url: format!("https://sqs.us-east-1.amazonaws.com/123456789012/stack-{name}"),
            arn: format!("arn:aws:sqs:us-east-1:123456789012:stack-{name}"),
            visibility_timeout_seconds: 30,
            message_retention_seconds: 3600,
            maximum_message_size: 16,
            delay_seconds: 0,
            receive_wait_seconds: 0,
            fifo: false,
            redrive,
        }
    }

    /// Queue `Jobs` (messages of at most 16 bytes, moved to `Dead` after two receives)
    /// and `Dead`, hiding received messages for `visibility`.
    pub(crate) fn queues(visibility: Duration) -> Queues {
        let redrive = RedrivePolicy {
            dead_letter_target_arn: "arn:aws:sqs:us-east-1:123456789012:stack-Dead".into(),
            max_receive_count: 2,
        };
        Queues::new(
            &[spec("Jobs", Some(redrive)), spec("Dead", None)],
            "us-east-1",
            "123456789012",
            Some(visibility),
        )
    }

    pub(crate) fn body(text: &str) -> Outgoing {
        Outgoing {
            body: text.to_string(),
            attributes: MessageAttributes::new(),
            delay_seconds: None,
        }
    }

    #[test]
    fn queue_urls_are_found_by_account_and_name_whatever_the_host() {
        let q = queues(Duration::from_secs(1));
        assert!(q
            .by_url("https://sqs.us-east-1.amazonaws.com/123456789012/stack-Jobs")
            .is_ok());
        assert!(q
            .by_url("http://127.0.0.1:4000/123456789012/stack-Jobs")
            .is_ok());
        assert_eq!(
            q.by_url("https://sqs.us-east-1.amazonaws.com/999999999999/stack-Jobs")
                .unwrap_err()
                .code,
            "QueueDoesNotExist"
        );
        assert_eq!(
            q.by_url("stack-Jobs").unwrap_err().code,
            "QueueDoesNotExist"
        );
    }

    #[tokio::test]
    async fn a_message_comes_back_after_its_visibility_timeout_then_moves_to_the_dead_letter_queue()
    {
        let q = queues(Duration::from_millis(50));
        let jobs = q.by_logical_id("Jobs").unwrap().clone();
        let dead = q.by_logical_id("Dead").unwrap().clone();
        let sent = q.send(&jobs, body("job"), "sender").unwrap();
        let (id, md5) = (sent.message_id, sent.md5_of_body);
        assert_eq!(md5, "9dddd5ce1b1375bc497feeb871842d4b");
        for receive in 1..=2 {
            let got = q
                .receive(&jobs, 10, None, Some(Duration::from_secs(1)))
                .await;
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].message_id, id);
            assert_eq!(got[0].receive_count, receive);
            assert!(
                q.receive(&jobs, 10, None, None).await.is_empty(),
                "hidden while in flight"
            );
        }
        // The third receive finds it received twice (maxReceiveCount): it moves.
        let got = q
            .receive(&jobs, 10, None, Some(Duration::from_millis(200)))
            .await;
        assert!(got.is_empty(), "{got:?}");
        let moved = q.receive(&dead, 10, None, None).await;
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].message_id, id);
        assert_eq!(moved[0].body, "job");
        assert_eq!(jobs.counters().moved_to_dead_letter, 1);
    }

    #[tokio::test]
    async fn only_the_latest_receipt_handle_deletes() {
        let q = queues(Duration::from_millis(20));
        let jobs = q.by_logical_id("Jobs").unwrap().clone();
        q.send(&jobs, body("job"), "sender").unwrap();
        let first = q.receive(&jobs, 1, None, None).await.remove(0);
        let second = q
            .receive(&jobs, 1, None, Some(Duration::from_secs(1)))
            .await
            .remove(0);
        q.delete(&jobs, &first.receipt_handle).unwrap();
        assert_eq!(jobs.counters().deleted, 0, "a stale handle deletes nothing");
        q.delete(&jobs, &second.receipt_handle).unwrap();
        assert_eq!(jobs.counters().deleted, 1);
        assert_eq!(
            q.delete(&jobs, "not-a-handle").unwrap_err().code,
            "ReceiptHandleIsInvalid"
        );
    }

    #[tokio::test]
    async fn a_long_poll_returns_when_a_message_arrives_and_visibility_can_be_changed() {
        let q = Arc::new(queues(Duration::from_secs(30)));
        let jobs = q.by_logical_id("Jobs").unwrap().clone();
        let started = Instant::now();
        let waiting = {
            let (q, jobs) = (q.clone(), jobs.clone());
            tokio::spawn(async move { q.receive(&jobs, 10, None, Some(MAX_WAIT)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        q.send(&jobs, body("late"), "sender").unwrap();
        let got = waiting.await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken, not timed out"
        );
        // Shown again at once: received a second time.
        q.change_visibility(&jobs, &got[0].receipt_handle, 0)
            .unwrap();
        let again = q.receive(&jobs, 10, None, None).await;
        assert_eq!(again[0].receive_count, 2);
        assert_eq!(
            q.change_visibility(&jobs, &again[0].receipt_handle, 50_000)
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
    }

    #[test]
    fn bodies_are_checked_as_sqs_checks_them() {
        let q = queues(Duration::from_secs(1));
        let jobs = q.by_logical_id("Jobs").unwrap();
        assert_eq!(
            q.send(jobs, body("seventeen bytes!!"), "s")
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        assert_eq!(
            q.send(jobs, body(""), "s").unwrap_err().code,
            "MissingParameter"
        );
        assert_eq!(
            q.send(jobs, body("a\u{1}b"), "s").unwrap_err().code,
            "InvalidMessageContents"
        );
        let attributes = q.attributes(jobs, &["All".to_string()]).unwrap();
        assert_eq!(attributes["ApproximateNumberOfMessages"], "0");
        assert_eq!(
            attributes["RedrivePolicy"],
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:stack-Dead","maxReceiveCount":2}"#
        );
    }

    #[test]
    fn attributes_count_towards_the_size_a_queue_takes() {
        let q = queues(Duration::from_secs(1));
        let jobs = q.by_logical_id("Jobs").unwrap();
        let mut message = body("tiny");
        message.attributes = attributes::parse(Some(&json!({
            "name": {"DataType": "String", "StringValue": "value"},
        })))
        .unwrap();
        let refused = q.send(jobs, message, "s").unwrap_err();
        assert_eq!(refused.code, "InvalidParameterValue");
        assert!(refused.message.contains("16 bytes"), "{refused}");
        assert_eq!(jobs.counters().sent, 0);
    }
}
