//! A gateway that records pushes instead of sending them, for tests of the chat logic.

use crate::delivery::{ConnectionGateway, PostError};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use webchat_shared_types::{decode_server_frame, ServerEvent};

/// A [`ConnectionGateway`] that records pushes instead of sending them, and can be told
/// which connections are gone or failing.
#[derive(Debug, Default)]
pub struct RecordingGateway {
    state: Mutex<State>,
}

/// How many of a connection's next pushes fail, and the error each answers with.
type Failures = (usize, fn() -> PostError);

#[derive(Debug, Default)]
struct State {
    pushed: Vec<(String, String)>,
    gone: HashSet<String>,
    failures: HashMap<String, Failures>,
    attempts: HashMap<String, u32>,
    deleted: Vec<String>,
}

impl RecordingGateway {
    /// A gateway where every connection is open and every push succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// From now on, pushes to this connection answer 410 Gone.
    pub fn mark_gone(&self, connection_id: &str) {
        self.state().gone.insert(connection_id.to_string());
    }

    /// The next `times` pushes to this connection fail with the error `error` makes.
    pub fn fail_next(&self, connection_id: &str, error: fn() -> PostError, times: usize) {
        self.state()
            .failures
            .insert(connection_id.to_string(), (times, error));
    }

    /// How many times a push to this connection was attempted.
    pub fn attempts(&self, connection_id: &str) -> u32 {
        self.state()
            .attempts
            .get(connection_id)
            .copied()
            .unwrap_or(0)
    }

    /// Every event delivered to `connection_id`, oldest first.
    pub fn events_for(&self, connection_id: &str) -> Vec<ServerEvent> {
        self.state()
            .pushed
            .iter()
            .filter(|(to, _)| to == connection_id)
            .filter_map(|(_, frame)| decode_server_frame(frame).ok().map(|f| f.event))
            .collect()
    }

    /// Every delivered frame as `(connection id, raw JSON)`.
    pub fn pushed(&self) -> Vec<(String, String)> {
        self.state().pushed.clone()
    }

    /// Connections deleted through it (as the management API's `DELETE` would), in order.
    pub fn deleted(&self) -> Vec<String> {
        self.state().deleted.clone()
    }

    /// Forgets what was delivered so far.
    pub fn clear(&self) {
        self.state().pushed.clear();
    }
}

impl ConnectionGateway for RecordingGateway {
    async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        let mut state = self.state();
        *state.attempts.entry(connection_id.to_string()).or_default() += 1;
        if state.gone.contains(connection_id) {
            return Err(PostError::Gone);
        }
        if let Some((times, error)) = state
            .failures
            .get_mut(connection_id)
            .filter(|(times, _)| *times > 0)
        {
            *times -= 1;
            return Err(error());
        }
        state
            .pushed
            .push((connection_id.to_string(), data.to_string()));
        Ok(())
    }

    async fn delete(&self, connection_id: &str) -> Result<(), PostError> {
        let mut state = self.state();
        state.deleted.push(connection_id.to_string());
        state.gone.insert(connection_id.to_string());
        Ok(())
    }

    async fn is_open(&self, connection_id: &str) -> Result<bool, PostError> {
        Ok(!self.state().gone.contains(connection_id))
    }
}
