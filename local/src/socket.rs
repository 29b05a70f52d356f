//! One client socket, from the upgrade until `$disconnect`.
//!
//! Three tasks share a connection so that none can stall the others: this one reads
//! frames and keeps the idle and lifetime timers, a worker runs the handlers one frame at
//! a time, and a writer drains the connection's [`Outbox`] at the pace the client reads.
//! A client that stops reading fills its outbox and is closed; one that sends faster than
//! its handlers run is no longer read until they catch up (TCP pushes back on it).

use crate::events::{self, ConnectionInfo};
use crate::gateway::{Gateway, OpenConnection};
use crate::outbox::{Closing, Frame, Outbox};
use aws_lambda_events::encodings::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use base64::Engine;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use webchat_shared_types::Route;

/// Frames read from one client and not yet handled. Past this the socket is not read
/// until the handlers catch up, so one client cannot queue unbounded work.
pub(crate) const MAX_QUEUED_INBOUND: usize = 16;
/// How long the writer may take to send the close frame to a client that has stopped
/// reading, before the TCP connection is dropped without it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A frame waiting for its route's handler.
struct Inbound {
    route: Route,
    body: String,
    is_base64_encoded: bool,
}

fn ending(code: u16, reason: impl Into<String>) -> Closing {
    Closing {
        code,
        reason: reason.into(),
    }
}

pub(crate) async fn run(gateway: Arc<Gateway>, info: ConnectionInfo, socket: WebSocket) {
    let connection_id = info.connection_id.clone();
    let open = Arc::new(OpenConnection {
        info: info.clone(),
        last_active_ms: AtomicI64::new(info.connected_at),
        outbox: Outbox::default(),
    });
    gateway
        .lock_connections()
        .insert(connection_id.clone(), open.clone());

    let (inbound_tx, inbound_rx) = mpsc::channel::<Inbound>(MAX_QUEUED_INBOUND);
    let worker = tokio::spawn(handle_frames(
        gateway.clone(),
        info.clone(),
        inbound_rx,
        open.clone(),
    ));
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_frames(sink, open.clone()));

    let config = &gateway.config;
    let lifetime_ends = Instant::now() + config.max_lifetime;
    let mut idle_ends = Instant::now() + config.idle_timeout;

    let ending = loop {
        tokio::select! {
            biased;
            // DELETE @connections, an overflowing outbox, or the gateway stopping.
            closing = open.outbox.closed() => break closing,
            () = sleep_until(lifetime_ends) => break ending(1001, "Going away"),
            () = sleep_until(idle_ends) => break ending(1001, "Going away"),
            (permit, received) = read_when_room(&inbound_tx, &mut stream) => {
                let Some(permit) = permit else {
                    break ending(1011, "Internal error");
                };
                match received {
                    None => break ending(1006, "Connection lost"),
                    Some(Err(err)) => {
                        tracing::debug!(target: "webchat_local::connection", error = &err as &dyn std::error::Error, "read failed");
                        match close_for(&err) {
                            Some((code, reason)) => break ending(code, reason),
                            None => break ending(1006, "Connection lost"),
                        }
                    }
                    Some(Ok(message)) => {
                        let inbound = match message {
                            Message::Text(text) => Inbound {
                                route: Route::of_frame(&text),
                                body: text.to_string(),
                                is_base64_encoded: false,
                            },
                            // Binary frames cannot be routed on a JSON field: `$default`, base64.
                            Message::Binary(data) => Inbound {
                                route: Route::Default,
                                body: base64::engine::general_purpose::STANDARD.encode(&data),
                                is_base64_encoded: true,
                            },
                            Message::Close(frame) => {
                                let (code, reason) = frame
                                    .map_or((1005, String::new()), |f| (f.code, f.reason.to_string()));
                                break ending(code, reason);
                            }
                            // Control frames are answered by the WebSocket layer and do not
                            // count as activity, as on API Gateway.
                            Message::Ping(_) | Message::Pong(_) => continue,
                        };
                        idle_ends = Instant::now() + config.idle_timeout;
                        open.last_active_ms.store(events::now_ms(), Ordering::Relaxed);
                        permit.send(inbound);
                    }
                }
            },
        }
    };

    // The connection is gone for the management API before `$disconnect` runs, so
    // handlers that push to it meanwhile see 410, as on AWS.
    gateway.lock_connections().remove(&connection_id);
    // The writer sends the close frame (the client's own close is answered by the
    // WebSocket layer); a client that stopped reading gets a moment, then the TCP drop.
    open.outbox.close(ending.code, &ending.reason);
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    drop(inbound_tx);
    // Frames already received still get their handlers; their replies go nowhere.
    let _ = worker.await;
    tracing::info!(
        target: "webchat_local::connection",
        "disconnect {} ({} {})",
        connection_id,
        ending.code,
        ending.reason
    );
    if gateway.config.deliver_disconnects && !gateway.stopping.load(Ordering::SeqCst) {
        let event = events::disconnect_event(&gateway.api, &info, ending.code, &ending.reason);
        gateway.invoke(&event).await;
    }
}

/// The next frame from the client, read only once the handlers have room for it.
async fn read_when_room<'a>(
    inbound: &'a mpsc::Sender<Inbound>,
    stream: &mut SplitStream<WebSocket>,
) -> (
    Option<mpsc::Permit<'a, Inbound>>,
    Option<Result<Message, axum::Error>>,
) {
    let Ok(permit) = inbound.reserve().await else {
        return (None, None);
    };
    (Some(permit), stream.next().await)
}

/// Drains the outbox into the socket until the connection closes.
async fn write_frames(mut sink: SplitSink<WebSocket, Message>, open: Arc<OpenConnection>) {
    loop {
        let message = match open.outbox.next().await {
            Ok(Frame::Text(text)) => Message::Text(text.into()),
            Ok(Frame::Binary(data)) => Message::Binary(data.into()),
            Err(closing) => {
                let _ = close(&mut sink, closing.code, closing.reason).await;
                return;
            }
        };
        if sink.send(message).await.is_err() {
            // The reader sees the same broken connection and ends it.
            return;
        }
    }
}

async fn handle_frames(
    gateway: Arc<Gateway>,
    info: ConnectionInfo,
    mut inbound: mpsc::Receiver<Inbound>,
    open: Arc<OpenConnection>,
) {
    while let Some(frame) = inbound.recv().await {
        let event = events::message_event(
            &gateway.api,
            &info,
            frame.route,
            frame.body,
            frame.is_base64_encoded,
        );
        let response = gateway.invoke(&event).await;
        if !gateway.replies(frame.route) {
            continue;
        }
        // A reply that does not fit closes the connection like any other push.
        let _ = match response.body {
            Some(Body::Text(text)) if !text.is_empty() => open.outbox.push(Frame::Text(text)),
            Some(Body::Binary(data)) if !data.is_empty() => open.outbox.push(Frame::Binary(data)),
            _ => Ok(()),
        };
    }
}

async fn close(
    sink: &mut SplitSink<WebSocket, Message>,
    code: u16,
    reason: String,
) -> Result<(), axum::Error> {
    sink.send(Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    })))
    .await?;
    sink.close().await
}

/// The close frame a read error deserves (RFC 6455 §7.4): 1009 for frames over 32 KB
/// and messages over 128 KB, 1007 for text that is not UTF-8, 1002 for other protocol
/// violations; `None` when the connection itself is gone, closed without a close frame
/// included (RFC 6455 §7.1.5: that is 1006, not a violation to answer).
fn close_for(err: &axum::Error) -> Option<(u16, &'static str)> {
    use tungstenite::error::ProtocolError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        match current.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => return Some((1009, "Message too big")),
            Some(tungstenite::Error::Utf8(_)) => return Some((1007, "Invalid frame payload data")),
            Some(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                return None
            }
            Some(tungstenite::Error::Protocol(_)) => return Some((1002, "Protocol error")),
            _ => {}
        }
        source = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::close_for;
    use tungstenite::error::{CapacityError, ProtocolError};

    fn read_error(error: tungstenite::Error) -> axum::Error {
        axum::Error::new(error)
    }

    #[test]
    fn a_client_gone_without_a_close_frame_is_a_lost_connection_not_a_violation() {
        assert_eq!(
            close_for(&read_error(tungstenite::Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            ))),
            None,
            "`$disconnect` says 1006 Connection lost"
        );
        assert_eq!(
            close_for(&read_error(tungstenite::Error::Protocol(
                ProtocolError::UnmaskedFrameFromClient
            ))),
            Some((1002, "Protocol error"))
        );
        assert_eq!(
            close_for(&read_error(tungstenite::Error::Capacity(
                CapacityError::MessageTooLong {
                    size: 2,
                    max_size: 1
                }
            ))),
            Some((1009, "Message too big"))
        );
    }
}
