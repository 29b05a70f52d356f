//! One client socket, from the upgrade until `$disconnect`.

use crate::events::{self, ConnectionInfo};
use crate::{Gateway, OpenConnection, Outbound};
use aws_lambda_events::encodings::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at, Instant};
use webchat_shared_types::Route;

/// Why a socket ended, as `$disconnect` reports it.
struct Ending {
    code: u16,
    reason: String,
}

impl Ending {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Ending {
            code,
            reason: reason.into(),
        }
    }
}

/// A frame waiting for its route's handler.
struct Inbound {
    route: Route,
    body: String,
    is_base64_encoded: bool,
}

pub(crate) async fn run(gateway: Arc<Gateway>, info: ConnectionInfo, socket: WebSocket) {
    let connection_id = info.connection_id.clone();
    let (outbound_tx, mut outbound_rx) = mpsc::unbounded_channel();
    let open = Arc::new(OpenConnection {
        info: info.clone(),
        last_active_ms: AtomicI64::new(info.connected_at),
        outbound: outbound_tx.clone(),
    });
    gateway
        .lock_connections()
        .insert(connection_id.clone(), open.clone());

    // Frames from one client are handled one after another, in order, by this worker,
    // while the reader below keeps watching the socket for closes and timeouts.
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel::<Inbound>();
    let worker = tokio::spawn(handle_frames(
        gateway.clone(),
        info.clone(),
        inbound_rx,
        outbound_tx,
    ));

    let (mut sink, mut stream) = socket.split();
    let config = &gateway.config;
    let lifetime_ends = Instant::now() + config.max_lifetime;
    let mut idle_ends = Instant::now() + config.idle_timeout;

    let ending = loop {
        tokio::select! {
            biased;
            outbound = outbound_rx.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break Ending::new(1006, "Connection lost");
                    }
                }
                Some(Outbound::Binary(data)) => {
                    if sink.send(Message::Binary(data.into())).await.is_err() {
                        break Ending::new(1006, "Connection lost");
                    }
                }
                Some(Outbound::Close { code, reason }) => {
                    let _ = close(&mut sink, code, reason).await;
                    break Ending::new(code, reason);
                }
                None => break Ending::new(1011, "Internal error"),
            },
            _ = sleep_until(lifetime_ends) => {
                let _ = close(&mut sink, 1001, "Going away").await;
                break Ending::new(1001, "Going away");
            }
            received = timeout_at(idle_ends, stream.next()) => match received {
                Err(_idle) => {
                    let _ = close(&mut sink, 1001, "Going away").await;
                    break Ending::new(1001, "Going away");
                }
                Ok(None) => break Ending::new(1006, "Connection lost"),
                Ok(Some(Err(err))) => match close_for(&err) {
                    Some((code, reason)) => {
                        let _ = close(&mut sink, code, reason).await;
                        break Ending::new(code, reason);
                    }
                    None => break Ending::new(1006, "Connection lost"),
                },
                Ok(Some(Ok(message))) => {
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
                                .map(|f| (f.code, f.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            break Ending::new(code, reason);
                        }
                        // Control frames are answered by the WebSocket layer and do not
                        // count as activity, as on API Gateway.
                        Message::Ping(_) | Message::Pong(_) => continue,
                    };
                    idle_ends = Instant::now() + config.idle_timeout;
                    open.last_active_ms.store(events::now_ms(), Ordering::Relaxed);
                    let _ = inbound_tx.send(inbound);
                }
            },
        }
    };

    // The connection is gone for the management API before `$disconnect` runs, so
    // handlers that push to it meanwhile see 410, as on AWS.
    gateway.lock_connections().remove(&connection_id);
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

async fn handle_frames(
    gateway: Arc<Gateway>,
    info: ConnectionInfo,
    mut inbound: mpsc::UnboundedReceiver<Inbound>,
    outbound: mpsc::UnboundedSender<Outbound>,
) {
    while let Some(frame) = inbound.recv().await {
        let event = events::message_event(
            &gateway.api,
            &info,
            frame.route.key(),
            frame.body,
            frame.is_base64_encoded,
        );
        let response = gateway.invoke(&event).await;
        if !frame.route.replies() {
            continue;
        }
        match response.body {
            Some(Body::Text(text)) if !text.is_empty() => {
                let _ = outbound.send(Outbound::Text(text));
            }
            Some(Body::Binary(data)) if !data.is_empty() => {
                let _ = outbound.send(Outbound::Binary(data));
            }
            _ => {}
        }
    }
}

async fn close(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &'static str,
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
/// violations; `None` when the connection itself is gone.
fn close_for(err: &axum::Error) -> Option<(u16, &'static str)> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        match current.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => return Some((1009, "Message too big")),
            Some(tungstenite::Error::Utf8(_)) => return Some((1007, "Invalid frame payload data")),
            Some(tungstenite::Error::Protocol(_)) => return Some((1002, "Protocol error")),
            _ => {}
        }
        source = current.source();
    }
    None
}
