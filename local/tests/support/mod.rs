//! Many light WebSocket clients at once, for the load and fault tests.
//!
//! Each [`Peer`] owns its socket's write half; a reader task owns the read half and sorts
//! what arrives: chat `message` frames go to a shared [`Inbox`] (so a test can check every
//! delivery of every peer in one place), replies (`registered`, `sent`, `pong`, `list`,
//! `error`) go to the peer's own queue, announcements are counted and kept. Announcements
//! are recognised by their prefix without parsing: with 1,000 peers there are half a
//! million `newUser` frames, and parsing them all in a debug build costs minutes.

#![allow(dead_code)]

use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one reply may take. Generous: the tests run in debug builds, next to other
/// test binaries, on two cores.
pub const REPLY_WAIT: Duration = Duration::from_secs(60);

/// One chat `message` frame as a peer received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The index of the peer whose socket it arrived on.
    pub to: usize,
    /// `receiver.connectionId` as the frame states it.
    pub receiver_id: String,
    pub receiver_name: String,
    pub sender: String,
    pub sender_id: String,
    pub message: String,
    pub message_id: String,
    pub private: bool,
}

/// Every delivery to every peer, in arrival order.
#[derive(Default)]
pub struct Inbox {
    deliveries: Mutex<Vec<Delivery>>,
    count: AtomicUsize,
    arrived: Notify,
}

impl Inbox {
    pub fn new() -> Arc<Inbox> {
        Arc::new(Inbox::default())
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn push(&self, delivery: Delivery) {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(delivery);
        self.count.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_waiters();
    }

    /// Waits until at least `expected` deliveries arrived; false on timeout.
    pub async fn wait_for(&self, expected: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            if self.count() >= expected {
                return true;
            }
            // Notify can miss a wake-up between the check and the wait: poll as well.
            let tick = tokio::time::Instant::now() + Duration::from_millis(50);
            if tokio::time::timeout_at(deadline.min(tick), notified)
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return self.count() >= expected;
            }
        }
    }

    /// Everything received so far.
    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.deliveries.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn snapshot(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What a peer's reader saw besides messages and replies.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The `connectionId` of every `newUser`, in order.
    pub new_users: Vec<String>,
    /// `(userName, connectionId)` of every `userExit`, in order.
    pub user_exits: Vec<(String, String)>,
    /// The close code, when the server closed with a close frame.
    pub close_code: Option<u16>,
    /// How the socket ended otherwise (an error, or the stream ending).
    pub ended: Option<String>,
}

pub struct Peer {
    pub index: usize,
    pub name: String,
    pub connection_id: String,
    sink: SplitSink<Ws, Message>,
    replies: mpsc::UnboundedReceiver<Value>,
    seen: Arc<Mutex<Seen>>,
    reader: JoinHandle<()>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageFrame {
    sender: String,
    sender_id: String,
    receiver: ReceiverField,
    message: String,
    message_id: String,
    private: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiverField {
    connection_id: String,
    user_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnnouncementFrame {
    user_name: String,
    connection_id: String,
}

/// Opens a WebSocket, retrying briefly: a thousand handshakes at once can overflow the
/// listen backlog, which a real client would also retry.
pub async fn open(url: &str) -> Ws {
    let mut last = String::new();
    for attempt in 0..20u64 {
        match tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(url),
        )
        .await
        {
            Ok(Ok((ws, _))) => return ws,
            Ok(Err(err)) => last = err.to_string(),
            Err(_) => last = "handshake timed out".to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    panic!("could not open {url}: {last}");
}

impl Peer {
    /// Connects without registering.
    pub async fn connect(url: &str, index: usize, inbox: Arc<Inbox>) -> Peer {
        let ws = open(url).await;
        let (sink, stream) = ws.split();
        let (replies_tx, replies) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = tokio::spawn(read(index, stream, inbox, replies_tx, seen.clone()));
        Peer {
            index,
            name: String::new(),
            connection_id: String::new(),
            sink,
            replies,
            seen,
            reader,
        }
    }

    /// Connects and registers `name`, returning once the server confirmed it.
    pub async fn join(url: &str, index: usize, name: &str, inbox: Arc<Inbox>) -> Peer {
        let mut peer = Peer::connect(url, index, inbox).await;
        let reply = peer
            .request(json!({"action":"register","userName":name,"requestId":"join"}))
            .await;
        assert_eq!(reply["action"], "registered", "{name} registers: {reply}");
        peer.name = name.to_string();
        peer.connection_id = reply["connectionId"]
            .as_str()
            .expect("registered carries connectionId")
            .to_string();
        peer
    }

    pub async fn send(&mut self, frame: &Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.sink
            .send(Message::text(text))
            .await
            .unwrap_or_else(|err| panic!("peer {} could not send: {err}", self.index));
    }

    /// The next reply (a frame that is neither a chat message nor an announcement).
    pub async fn reply(&mut self) -> Value {
        self.reply_within(REPLY_WAIT).await.unwrap_or_else(|| {
            panic!(
                "peer {} ({}) got no reply within {REPLY_WAIT:?}",
                self.index, self.name
            )
        })
    }

    pub async fn reply_within(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.replies.recv())
            .await
            .ok()
            .flatten()
    }

    /// Sends a frame that carries a `requestId` and returns the reply that carries it.
    pub async fn request(&mut self, frame: Value) -> Value {
        let request_id = frame["requestId"].clone();
        assert!(request_id.is_string(), "request() needs a requestId");
        self.send(&frame).await;
        loop {
            let reply = self.reply().await;
            if reply["requestId"] == request_id {
                return reply;
            }
        }
    }

    /// Like [`Peer::request`], but gives up after `wait` and says how long it took.
    pub async fn timed_request(
        &mut self,
        frame: Value,
        wait: Duration,
    ) -> (Option<Value>, Duration) {
        let started = Instant::now();
        let request_id = frame["requestId"].clone();
        self.send(&frame).await;
        let deadline = started + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reply_within(left).await {
                Some(reply) if reply["requestId"] == request_id => {
                    return (Some(reply), started.elapsed())
                }
                Some(_) => continue,
                None => return (None, started.elapsed()),
            }
        }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Ends the process side of the connection without a close frame, as a killed client
    /// or a lost network would: the TCP socket closes, the WebSocket is never closed.
    pub async fn kill(self) {
        self.reader.abort();
        let _ = self.reader.await;
        drop(self.sink);
    }

    /// A normal close: close frame, then wait for the server's close reply.
    pub async fn close(mut self) -> Seen {
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.reader).await;
        let seen = self.seen();
        drop(self.sink);
        seen
    }

    /// Waits until the server ended this socket; returns what was seen.
    pub async fn ended(mut self, wait: Duration) -> Seen {
        tokio::time::timeout(wait, &mut self.reader)
            .await
            .unwrap_or_else(|_| panic!("peer {} still open after {wait:?}", self.index))
            .expect("reader task");
        self.seen()
    }
}

async fn read(
    index: usize,
    mut stream: futures::stream::SplitStream<Ws>,
    inbox: Arc<Inbox>,
    replies: mpsc::UnboundedSender<Value>,
    seen: Arc<Mutex<Seen>>,
) {
    let note =
        |f: &mut dyn FnMut(&mut Seen)| f(&mut seen.lock().unwrap_or_else(|p| p.into_inner()));
    while let Some(received) = stream.next().await {
        let text = match received {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                note(&mut |s| s.close_code = Some(code));
                continue;
            }
            Ok(Message::Binary(data)) => {
                panic!(
                    "peer {index}: unexpected binary frame of {} bytes",
                    data.len()
                )
            }
            Ok(_) => continue,
            Err(err) => {
                note(&mut |s| s.ended = Some(err.to_string()));
                return;
            }
        };
        let text = text.as_str();
        if text.starts_with(r#"{"action":"newUser""#) {
            // Cut the id out rather than parse: there are N²/2 of these.
            let id = text
                .split_once(r#""connectionId":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(id, _)| id.to_string())
                .unwrap_or_else(|| panic!("peer {index}: newUser without connectionId: {text}"));
            note(&mut |s| s.new_users.push(id.clone()));
        } else if text.starts_with(r#"{"action":"userExit""#) {
            let exit: AnnouncementFrame = serde_json::from_str(text).expect("userExit frame");
            note(&mut |s| {
                s.user_exits
                    .push((exit.user_name.clone(), exit.connection_id.clone()))
            });
        } else if text.starts_with(r#"{"action":"message""#) {
            let frame: MessageFrame = serde_json::from_str(text)
                .unwrap_or_else(|err| panic!("peer {index}: bad message frame {text}: {err}"));
            inbox.push(Delivery {
                to: index,
                receiver_id: frame.receiver.connection_id,
                receiver_name: frame.receiver.user_name,
                sender: frame.sender,
                sender_id: frame.sender_id,
                message: frame.message,
                message_id: frame.message_id,
                private: frame.private,
            });
        } else {
            let value: Value = serde_json::from_str(text)
                .unwrap_or_else(|err| panic!("peer {index}: frame is not JSON {text}: {err}"));
            let _ = replies.send(value);
        }
    }
    note(&mut |s| {
        if s.ended.is_none() {
            s.ended = Some("stream ended".to_string())
        }
    });
}

/// Connects and registers `count` peers named `{prefix}{index}`, `parallel` at a time,
/// printing progress now and then.
pub async fn join_many(
    url: &str,
    count: usize,
    prefix: &str,
    parallel: usize,
    inbox: Arc<Inbox>,
) -> Vec<Peer> {
    let started = Instant::now();
    let mut joined: Vec<Peer> = futures::stream::iter(0..count)
        .map(|index| {
            let inbox = inbox.clone();
            let name = format!("{prefix}{index}");
            async move { Peer::join(url, index, &name, inbox).await }
        })
        .buffer_unordered(parallel)
        .inspect(|peer| {
            if (peer.index + 1) % 250 == 0 {
                eprintln!(
                    "  ... {} peers joined after {:.1} s",
                    peer.index + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        })
        .collect()
        .await;
    joined.sort_by_key(|peer| peer.index);
    joined
}
