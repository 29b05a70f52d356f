//! The chat itself: one function per route, as docs/protocol.md describes them.
//!
//! Replies to the caller go back as the route's response body (API Gateway sends it on
//! two-way routes); everything for other connections goes through the gateway.

use crate::gateway::{ConnectionGateway, PostError};
use crate::store::{Connection, ConnectionStore, StoreError};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use webchat_shared_types::{
    decode_client_frame, unknown_action, ErrorCode, Refusal, Request, ServerEvent, ServerFrame,
    User, ValidFrame,
};

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
/// Gone connections found while announcing gone connections: stop after a few rounds.
const CLEANUP_ROUNDS: usize = 4;

/// Handles one API Gateway WebSocket event for any route.
pub async fn handle<S, G>(
    store: &S,
    gateway: &G,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: ConnectionStore,
    G: ConnectionGateway,
{
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else {
        tracing::warn!("event without requestContext.connectionId");
        return status(400);
    };
    let route = context.route_key.as_deref().unwrap_or("$default");
    let chat = Chat { store, gateway };
    match route {
        "$connect" => chat.connect(connection_id, context.connected_at).await,
        "$disconnect" => chat.disconnect(connection_id).await,
        _ => {
            let reply = if event.is_base64_encoded {
                Some(
                    Refusal::new(
                        ErrorCode::BadJson,
                        "binary frames are not supported; send JSON text frames",
                    )
                    .to_frame(),
                )
            } else {
                chat.frame(route, connection_id, event.body.as_deref().unwrap_or(""))
                    .await
            };
            match reply {
                Some(frame) => {
                    let mut response = status(200);
                    response.body = Some(Body::Text(frame.to_json()));
                    response
                }
                None => status(200),
            }
        }
    }
}

fn status(code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = code;
    response
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// A ULID: sortable by time, unique without coordination between Lambdas.
pub fn new_message_id(timestamp_ms: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let random: u128 = rand::rng().random::<u128>() & ((1u128 << 80) - 1);
    let value = (u128::from(timestamp_ms & ((1 << 48) - 1)) << 80) | random;
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

fn internal(err: &StoreError) -> Refusal {
    tracing::error!(error = %err, "connection store failed");
    Refusal::new(
        ErrorCode::Internal,
        "the chat service could not complete this request; try again shortly",
    )
}

/// What one fan-out achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FanOut {
    pub delivered: u32,
    /// Recipients API Gateway reported as closed (410).
    pub gone: Vec<String>,
    pub failed: u32,
}

struct Chat<'a, S, G> {
    store: &'a S,
    gateway: &'a G,
}

impl<S: ConnectionStore, G: ConnectionGateway> Chat<'_, S, G> {
    async fn connect(&self, connection_id: &str, connected_at: i64) -> ApiGatewayProxyResponse {
        let connected_at = if connected_at > 0 {
            connected_at
        } else {
            now_ms() as i64
        };
        let connection = Connection {
            connection_id: connection_id.to_string(),
            connected_at,
            user_name: None,
        };
        match self.store.add(connection).await {
            Ok(()) => status(200),
            Err(err) => {
                // Refusing the handshake is better than a connection that cannot register.
                tracing::error!(connection_id, error = %err, "could not record the connection");
                status(500)
            }
        }
    }

    async fn disconnect(&self, connection_id: &str) -> ApiGatewayProxyResponse {
        match self.store.remove(connection_id).await {
            Ok(Some(connection)) => {
                if let Some(user) = connection.user() {
                    let gone = self.announce(vec![user_exit(user)], None).await;
                    self.remove_gone(gone).await;
                }
                status(200)
            }
            Ok(None) => status(200),
            Err(err) => {
                tracing::error!(connection_id, error = %err, "could not remove the connection");
                status(500)
            }
        }
    }

    /// Answers one client frame; `None` means no reply is due.
    async fn frame(&self, route: &str, connection_id: &str, body: &str) -> Option<ServerFrame> {
        let ValidFrame {
            request,
            request_id,
        } = match decode_client_frame(body) {
            Ok(frame) => frame,
            Err(refusal) => return Some(refusal.to_frame()),
        };
        // API Gateway chose `$default` because it found no known action; a frame the
        // decoder reads differently (duplicate keys, say) must still change nothing.
        if route == "$default" {
            return Some(
                unknown_action("frame has no usable \"action\"")
                    .with_request_id(request_id)
                    .to_frame(),
            );
        }
        let always_reply = matches!(request, Request::List);
        let outcome = match request {
            Request::Register { user_name } => self.register(connection_id, user_name).await,
            Request::List => self.list(connection_id).await,
            Request::Message { message, receivers } => {
                self.message(connection_id, message, receivers).await
            }
            Request::Ping => Ok(ServerEvent::Pong {}),
        };
        match outcome {
            // Without a requestId the original protocol stays silent on success.
            Ok(event) if request_id.is_some() || always_reply => {
                Some(ServerFrame { event, request_id })
            }
            Ok(_) => None,
            Err(refusal) => Some(ServerFrame {
                request_id,
                ..refusal.to_frame()
            }),
        }
    }

    async fn register(
        &self,
        connection_id: &str,
        user_name: String,
    ) -> Result<ServerEvent, Refusal> {
        let registration = match self.store.register(connection_id, &user_name).await {
            Ok(registration) => registration,
            Err(StoreError::NameTaken) => {
                return Err(Refusal::new(
                    ErrorCode::NameTaken,
                    format!("the name \"{user_name}\" is taken; choose another"),
                ))
            }
            Err(err) => return Err(internal(&err)),
        };
        if registration.previous.as_deref() != Some(user_name.as_str()) {
            let mut events = Vec::new();
            if let Some(old) = registration.previous {
                events.push(ServerEvent::UserExit {
                    user_name: old,
                    connection_id: connection_id.to_string(),
                });
            }
            events.push(ServerEvent::NewUser {
                user_name: user_name.clone(),
                connection_id: connection_id.to_string(),
            });
            let gone = self.announce(events, Some(connection_id)).await;
            self.remove_gone(gone).await;
        }
        Ok(ServerEvent::Registered {
            user_name,
            connection_id: connection_id.to_string(),
        })
    }

    async fn list(&self, connection_id: &str) -> Result<ServerEvent, Refusal> {
        let connections = self.store.registered().await.map_err(|e| internal(&e))?;
        let mut users: Vec<User> = connections
            .iter()
            .filter(|c| c.connection_id != connection_id)
            .filter_map(Connection::user)
            .collect();
        users.sort_by_key(|user| user.user_name.to_lowercase());
        Ok(ServerEvent::List { users })
    }

    async fn message(
        &self,
        connection_id: &str,
        message: String,
        receivers: Option<Vec<String>>,
    ) -> Result<ServerEvent, Refusal> {
        let sender = self
            .store
            .get(connection_id)
            .await
            .map_err(|e| internal(&e))?;
        let Some(sender_name) = sender.and_then(|c| c.user_name) else {
            return Err(Refusal::new(
                ErrorCode::NotRegistered,
                "register a userName before sending messages",
            ));
        };
        let private = receivers.is_some();
        let recipients = match receivers {
            None => self.store.registered().await,
            Some(ids) => {
                let ids: Vec<String> = ids.into_iter().filter(|id| id != connection_id).collect();
                self.store.get_many(&ids).await
            }
        }
        .map_err(|e| internal(&e))?;

        let timestamp = now_ms();
        let message_id = new_message_id(timestamp);
        let deliveries = recipients
            .into_iter()
            .filter(|c| c.connection_id != connection_id)
            .filter_map(|c| c.user())
            .map(|receiver| {
                let id = receiver.connection_id.clone();
                let frame = ServerFrame::push(ServerEvent::Message {
                    sender: sender_name.clone(),
                    sender_id: connection_id.to_string(),
                    receiver,
                    message: message.clone(),
                    message_id: message_id.clone(),
                    timestamp,
                    private,
                });
                (id, frame.to_json())
            })
            .collect();
        let outcome = fan_out(self.gateway, deliveries).await;
        self.remove_gone(outcome.gone).await;
        Ok(ServerEvent::Sent {
            message_id,
            timestamp,
            delivered: outcome.delivered,
        })
    }

    /// Tells every registered connection but `except` about `events`, in order, and
    /// returns the recipients API Gateway reported gone.
    async fn announce(&self, events: Vec<ServerEvent>, except: Option<&str>) -> Vec<String> {
        let recipients = match self.store.registered().await {
            Ok(connections) => connections,
            Err(err) => {
                tracing::error!(error = %err, "could not list connections to announce to");
                return Vec::new();
            }
        };
        let mut gone: Vec<String> = Vec::new();
        for event in events {
            let payload = ServerFrame::push(event).to_json();
            let deliveries = recipients
                .iter()
                .filter(|c| {
                    Some(c.connection_id.as_str()) != except && !gone.contains(&c.connection_id)
                })
                .map(|c| (c.connection_id.clone(), payload.clone()))
                .collect();
            let outcome = fan_out(self.gateway, deliveries).await;
            gone.extend(outcome.gone);
        }
        gone
    }

    /// Deletes connections API Gateway reported gone, frees their names and tells the
    /// others they left. Announcing can find more gone connections, so this repeats a
    /// bounded number of rounds.
    async fn remove_gone(&self, mut gone: Vec<String>) {
        for _ in 0..CLEANUP_ROUNDS {
            if gone.is_empty() {
                return;
            }
            let mut exits = Vec::new();
            for connection_id in gone.drain(..) {
                tracing::info!(
                    connection_id,
                    "removing a connection API Gateway reports gone"
                );
                match self.store.remove(&connection_id).await {
                    Ok(Some(connection)) => exits.extend(connection.user().map(user_exit)),
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(connection_id, error = %err, "could not remove a gone connection")
                    }
                }
            }
            if exits.is_empty() {
                return;
            }
            gone = self.announce(exits, None).await;
        }
    }
}

fn user_exit(user: User) -> ServerEvent {
    ServerEvent::UserExit {
        user_name: user.user_name,
        connection_id: user.connection_id,
    }
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
    loop {
        while in_flight.len() < FANOUT_CONCURRENCY {
            let Some((connection_id, payload)) = waiting.next() else {
                break;
            };
            in_flight.push(deliver(gateway, connection_id, payload));
        }
        let Some((connection_id, result)) = in_flight.next().await else {
            return outcome;
        };
        match result {
            Ok(()) => outcome.delivered += 1,
            Err(PostError::Gone) => outcome.gone.push(connection_id),
            Err(err) => {
                tracing::warn!(connection_id, error = %err, "push failed");
                outcome.failed += 1;
            }
        }
    }
}

async fn deliver<G: ConnectionGateway>(
    gateway: &G,
    connection_id: String,
    payload: String,
) -> (String, Result<(), PostError>) {
    let result = post_with_backoff(gateway, &connection_id, &payload).await;
    (connection_id, result)
}

async fn post_with_backoff<G: ConnectionGateway>(
    gateway: &G,
    connection_id: &str,
    payload: &str,
) -> Result<(), PostError> {
    let started = tokio::time::Instant::now();
    let mut backoff = PUSH_FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match gateway.post(connection_id, payload).await {
            Err(err)
                if err.is_retryable()
                    && attempt < PUSH_ATTEMPTS
                    && started.elapsed() < PUSH_RETRY_WINDOW =>
            {
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
