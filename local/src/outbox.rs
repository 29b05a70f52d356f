//! What waits to be written to one client, bounded in frames and bytes.
//!
//! API Gateway does not let one slow reader hold unbounded data: a connection whose
//! client stops reading is closed rather than buffered without end. Here the management
//! API pushes into an [`Outbox`]; a connection's writer drains it at the pace the client
//! reads; and a push that would take the outbox past its bound closes the connection
//! instead (the push answers 410, as for any closed connection).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// Frames that may wait for one slow client. A chat burst (a broadcast from every
/// member of a busy room) fits; a client that has stopped reading does not.
pub const MAX_QUEUED_FRAMES: usize = 1_000;
/// Bytes that may wait for one slow client: eight of the largest messages.
pub const MAX_QUEUED_BYTES: usize = 1024 * 1024;

/// The close code and reason for a client that fell too far behind.
pub const SLOW_CONSUMER: (u16, &str) = (1008, "Slow consumer: outbound buffer full");

/// One frame for the client.
#[derive(Debug)]
pub enum Frame {
    /// A text frame (every chat frame).
    Text(String),
    /// A binary frame (only what the management API is given as bytes).
    Binary(Vec<u8>),
}

impl Frame {
    fn len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary(data) => data.len(),
        }
    }
}

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The connection is closing or closed.
    Closed,
    /// The push would take the outbox past its bound; the connection is now closing.
    Overflow,
}

/// How a connection is to end, once asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason the client reads.
    pub reason: String,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    bytes: usize,
    closing: Option<Closing>,
}

/// One connection's pushes waiting for its writer: bounded in frames and bytes, so a
/// client that stops reading is closed instead of growing the gateway's memory.
#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer: a frame or a close is waiting.
    for_writer: Notify,
    /// Wakes the connection: it is asked to close.
    for_connection: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a few field writes after its checks: a poisoned lock is whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a frame, or refuses it; past the bound the connection starts closing.
    pub fn push(&self, frame: Frame) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closing.is_some() {
            return Err(Refused::Closed);
        }
        if state.frames.len() >= MAX_QUEUED_FRAMES || state.bytes + frame.len() > MAX_QUEUED_BYTES {
            // What it could not read is dropped with the connection, as on AWS.
            state.frames.clear();
            state.bytes = 0;
            state.closing = Some(Closing {
                code: SLOW_CONSUMER.0,
                reason: SLOW_CONSUMER.1.to_string(),
            });
            drop(state);
            self.wake_both();
            return Err(Refused::Overflow);
        }
        state.bytes += frame.len();
        state.frames.push_back(frame);
        drop(state);
        self.for_writer.notify_one();
        Ok(())
    }

    /// Asks for the connection to close with `code`; frames still queued are dropped.
    /// The first request wins.
    pub fn close(&self, code: u16, reason: &str) {
        let mut state = self.lock();
        if state.closing.is_none() {
            state.frames.clear();
            state.bytes = 0;
            state.closing = Some(Closing {
                code,
                reason: reason.to_string(),
            });
        }
        drop(state);
        self.wake_both();
    }

    fn wake_both(&self) {
        self.for_writer.notify_one();
        self.for_connection.notify_one();
    }

    /// How the connection was asked to close, if it was.
    pub fn closing(&self) -> Option<Closing> {
        self.lock().closing.clone()
    }

    /// Waits until the connection is asked to close.
    pub async fn closed(&self) -> Closing {
        loop {
            let notified = self.for_connection.notified();
            if let Some(closing) = self.closing() {
                return closing;
            }
            notified.await;
        }
    }

    /// The next thing for the writer: a frame, or the close that ends its work.
    pub async fn next(&self) -> Result<Frame, Closing> {
        loop {
            let notified = self.for_writer.notified();
            {
                let mut state = self.lock();
                if let Some(closing) = &state.closing {
                    return Err(closing.clone());
                }
                if let Some(frame) = state.frames.pop_front() {
                    state.bytes -= frame.len();
                    return Ok(frame);
                }
            }
            notified.await;
        }
    }

    /// Bytes waiting right now.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_past_the_frame_bound_close_the_connection_as_a_slow_consumer() {
        let outbox = Outbox::default();
        for _ in 0..MAX_QUEUED_FRAMES {
            outbox.push(Frame::Text("x".into())).unwrap();
        }
        assert_eq!(outbox.push(Frame::Text("x".into())), Err(Refused::Overflow));
        assert_eq!(outbox.closing().map(|c| c.code), Some(1008));
        assert_eq!(outbox.queued_bytes(), 0, "what waited is dropped");
        assert_eq!(outbox.push(Frame::Text("x".into())), Err(Refused::Closed));
    }

    #[test]
    fn bytes_past_the_byte_bound_close_the_connection() {
        let outbox = Outbox::default();
        let big = "x".repeat(MAX_QUEUED_BYTES / 4);
        for _ in 0..4 {
            outbox.push(Frame::Text(big.clone())).unwrap();
        }
        assert_eq!(outbox.push(Frame::Text("y".into())), Err(Refused::Overflow));
    }

    #[tokio::test]
    async fn the_writer_gets_frames_in_order_then_the_close() {
        let outbox = Outbox::default();
        outbox.push(Frame::Text("a".into())).unwrap();
        outbox.push(Frame::Binary(vec![1])).unwrap();
        assert!(matches!(outbox.next().await, Ok(Frame::Text(t)) if t == "a"));
        assert!(matches!(outbox.next().await, Ok(Frame::Binary(b)) if b == [1]));
        outbox.close(1001, "Going away");
        outbox.close(1000, "later requests lose");
        assert_eq!(outbox.next().await.unwrap_err().code, 1001);
        assert_eq!(outbox.closed().await.code, 1001);
    }
}
