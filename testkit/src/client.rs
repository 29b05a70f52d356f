//! The WebSocket chat client of every suite that talks to a gateway over real sockets
//! (the gateway, hostile-input, fault and load tests) and of the bench.
//!
//! A reader task owns each socket's read half. A client made without an [`Inbox`] queues
//! everything that arrives, in order, for [`Client::recv`] and [`Client::next`]. A client
//! made with one sorts what arrives: chat `message` frames go to the shared inbox (so a
//! test can audit every delivery to every client in one place, and the bench can time
//! each one), announcements (`newUser`, `userExit`) are only recorded in [`Seen`], and
//! replies are queued. Announcements are recognised by their prefix without parsing: with
//! 1,000 clients there are half a million `newUser` frames, and parsing them all in a
//! debug build costs minutes.

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one frame or reply may take. Generous: the tests run in debug builds, next to
/// other test binaries, on two cores, with up to a thousand clients.
pub const WAIT: Duration = Duration::from_mins(1);

/// How often, and how patiently, a handshake is tried: a thousand handshakes at once can
/// overflow the listen backlog, which a real client would also retry.
const HANDSHAKE_ATTEMPTS: u32 = 20;
const HANDSHAKE_WAIT: Duration = Duration::from_secs(20);

/// Why a test client could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The handshake never got through, even with retries.
    #[error("could not open {url} ({attempts} attempts): {last}")]
    Unreachable {
        /// The URL dialled.
        url: String,
        /// How many handshakes were tried.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server answered the handshake with an HTTP error (sign-in refused, say).
    #[error("{url} refused the WebSocket handshake with HTTP {status}")]
    Refused {
        /// The URL dialled.
        url: String,
        /// The HTTP status it answered with.
        status: u16,
    },
    /// A frame could not be written to the socket.
    #[error("{who}: could not send a frame: {reason}")]
    Send {
        /// The client, by name or index.
        who: String,
        /// Why the write failed.
        reason: String,
    },
    /// Nothing arrived in time.
    #[error("{who}: nothing within {wait:?} while waiting for {what}")]
    Timeout {
        /// The client, by name or index.
        who: String,
        /// What it was waiting for.
        what: String,
        /// How long it waited.
        wait: Duration,
    },
    /// The socket closed or failed while waiting.
    #[error("{who}: the socket {how} while waiting for {what}")]
    Ended {
        /// The client, by name or index.
        who: String,
        /// What it was waiting for.
        what: String,
        /// How the socket ended.
        how: String,
    },
    /// A frame arrived, but not the one expected.
    #[error("{who}: waiting for {what}, got {got}")]
    Unexpected {
        /// The client, by name or index.
        who: String,
        /// What it was waiting for.
        what: String,
        /// The frame that came instead.
        got: String,
    },
}

/// What the reader queued, in arrival order.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame, as received.
    Text(String),
    /// A binary frame (the protocol never sends one).
    Binary(Vec<u8>),
    /// The server's close frame (1005 when it carried no code).
    Closed(u16),
    /// The socket ended: an error, or the stream ending after a close.
    Ended(String),
}

/// One chat `message` frame as a client received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The index of the client whose socket it arrived on.
    pub to: usize,
    /// When the reader got it, before parsing.
    pub arrived: Instant,
    /// `receiver.connectionId` as the frame states it.
    pub receiver_id: String,
    /// `receiver.userName` as the frame states it.
    pub receiver_name: String,
    /// The `sender` the server set.
    pub sender: String,
    /// The sender's connection id.
    pub sender_id: String,
    /// The text.
    pub message: String,
    /// The server's id for the message.
    pub message_id: String,
    /// Whether it was sent to listed receivers or a person.
    pub private: bool,
}

/// Every delivery to every client sharing it, in arrival order.
#[derive(Default)]
pub struct Inbox {
    deliveries: Mutex<Vec<Delivery>>,
    count: AtomicUsize,
    arrived: Notify,
}

impl Inbox {
    /// An empty inbox to share between clients.
    pub fn new() -> Arc<Inbox> {
        Arc::new(Inbox::default())
    }

    /// Deliveries received so far, including those already taken.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn push(&self, delivery: Delivery) {
        self.deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(delivery);
        self.count.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_waiters();
    }

    /// Waits until at least `expected` deliveries arrived in all; false on timeout.
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

    /// Everything received since the last `take`.
    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(
            &mut *self
                .deliveries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Everything received since the last `take`, left in place.
    pub fn snapshot(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The announcements a client's reader recorded.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The `connectionId` of every `newUser`, in order.
    pub new_users: Vec<String>,
    /// `(userName, connectionId)` of every `userExit`, in order.
    pub user_exits: Vec<(String, String)>,
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
struct ExitFrame {
    user_name: String,
    connection_id: String,
}

/// One chat connection. Dropping it ends the TCP connection without a close frame, as
/// [`Client::kill`] does.
pub struct Client {
    /// Its place among the clients sharing an inbox (0 for a client without one).
    pub index: usize,
    /// The registered name (empty until registered).
    pub name: String,
    /// The server's id for this connection (empty until registered).
    pub connection_id: String,
    sink: SplitSink<Ws, Message>,
    queue: mpsc::UnboundedReceiver<Incoming>,
    seen: Arc<Mutex<Seen>>,
    /// Asks the reader to hand its half of the socket back ([`Client::into_tcp`]).
    stop: Option<oneshot::Sender<()>>,
    reader: JoinHandle<Option<SplitStream<Ws>>>,
}

/// Opens a WebSocket, retrying handshakes that fail or time out (not those the server
/// refuses with an HTTP status).
async fn open(url: &str) -> Result<Ws, ClientError> {
    let mut last = String::new();
    for attempt in 0..HANDSHAKE_ATTEMPTS {
        match tokio::time::timeout(HANDSHAKE_WAIT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((ws, _))) => return Ok(ws),
            Ok(Err(tungstenite::Error::Http(response))) => {
                return Err(ClientError::Refused {
                    url: url.to_string(),
                    status: response.status().as_u16(),
                })
            }
            Ok(Err(err)) => last = err.to_string(),
            Err(_) => last = format!("handshake took over {HANDSHAKE_WAIT:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
    }
    Err(ClientError::Unreachable {
        url: url.to_string(),
        attempts: HANDSHAKE_ATTEMPTS,
        last,
    })
}

impl Client {
    /// Connects without registering; everything that arrives is queued in order.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Self::open_with(url, 0, None).await
    }

    /// Connects and registers `name`, returning once the server confirmed it.
    pub async fn join(url: &str, name: &str) -> Result<Client, ClientError> {
        let mut client = Self::connect(url).await?;
        client.register(name).await?;
        Ok(client)
    }

    /// Connects as client `index` of those sharing `inbox` and registers `name`.
    pub async fn join_to(
        url: &str,
        index: usize,
        name: &str,
        inbox: &Arc<Inbox>,
    ) -> Result<Client, ClientError> {
        let mut client = Self::open_with(url, index, Some(inbox.clone())).await?;
        client.register(name).await?;
        Ok(client)
    }

    async fn open_with(
        url: &str,
        index: usize,
        inbox: Option<Arc<Inbox>>,
    ) -> Result<Client, ClientError> {
        let (sink, stream) = open(url).await?.split();
        let (queue_tx, queue) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, stopped) = oneshot::channel();
        let reader = tokio::spawn(read(index, stream, inbox, queue_tx, seen.clone(), stopped));
        Ok(Client {
            index,
            name: String::new(),
            connection_id: String::new(),
            sink,
            queue,
            seen,
            stop: Some(stop),
            reader,
        })
    }

    /// Registers `name`; fails unless the server answers `registered`.
    async fn register(&mut self, name: &str) -> Result<(), ClientError> {
        let reply = self
            .request(json!({"action":"register","userName":name,"requestId":"join"}))
            .await?;
        let id = reply["connectionId"].as_str();
        match (reply["action"].as_str(), id) {
            (Some("registered"), Some(id)) => {
                self.name = name.to_string();
                self.connection_id = id.to_string();
                Ok(())
            }
            _ => Err(self.unexpected(&format!("`registered` as {name}"), &reply)),
        }
    }

    fn who(&self) -> String {
        match (self.name.is_empty(), self.index) {
            (true, 0) => "client".to_string(),
            (true, index) => format!("client {index}"),
            (false, 0) => self.name.clone(),
            (false, index) => format!("{} (client {index})", self.name),
        }
    }

    fn unexpected(&self, what: &str, got: &dyn std::fmt::Display) -> ClientError {
        let mut got = got.to_string();
        if got.len() > 500 {
            got.truncate(got.floor_char_boundary(500));
            got.push('…');
        }
        ClientError::Unexpected {
            who: self.who(),
            what: what.to_string(),
            got,
        }
    }

    /// Sends `frame` as one JSON text frame.
    pub async fn send(&mut self, frame: Value) -> Result<(), ClientError> {
        self.send_message(Message::text(frame.to_string())).await
    }

    /// Sends `text` as it is, valid JSON or not.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send_message(Message::text(text)).await
    }

    /// Sends any WebSocket message, raw frames included.
    pub async fn send_message(&mut self, message: Message) -> Result<(), ClientError> {
        self.sink
            .send(message)
            .await
            .map_err(|err| ClientError::Send {
                who: self.who(),
                reason: err.to_string(),
            })
    }

    /// The next queued arrival, or `None` when nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Incoming> {
        match tokio::time::timeout(wait, self.queue.recv()).await {
            Err(_) => None,
            Ok(Some(incoming)) => Some(incoming),
            Ok(None) => Some(Incoming::Ended("the reader stopped".to_string())),
        }
    }

    /// The next queued frame as JSON, before `deadline` (`budget` after the wait began);
    /// anything else is an error.
    async fn next_frame(
        &mut self,
        what: &str,
        deadline: Instant,
        budget: Duration,
    ) -> Result<Value, ClientError> {
        match self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            None => Err(ClientError::Timeout {
                who: self.who(),
                what: what.to_string(),
                wait: budget,
            }),
            Some(Incoming::Text(text)) => serde_json::from_str(&text)
                .map_err(|_| self.unexpected(what, &format!("a frame that is not JSON: {text}"))),
            Some(Incoming::Binary(data)) => {
                Err(self.unexpected(what, &format!("a binary frame of {} bytes", data.len())))
            }
            Some(Incoming::Closed(code)) => Err(ClientError::Ended {
                who: self.who(),
                what: what.to_string(),
                how: format!("was closed with {code}"),
            }),
            Some(Incoming::Ended(how)) => Err(ClientError::Ended {
                who: self.who(),
                what: what.to_string(),
                how: format!("ended ({how})"),
            }),
        }
    }

    /// The next queued frame.
    pub async fn recv(&mut self) -> Result<Value, ClientError> {
        self.next_frame("a frame", Instant::now() + WAIT, WAIT)
            .await
    }

    /// The next frame `check` accepts, skipping the others (announcements that
    /// interleave, replies to other requests).
    pub async fn recv_where(
        &mut self,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value, ClientError> {
        let deadline = Instant::now() + WAIT;
        loop {
            let frame = self.next_frame(what, deadline, WAIT).await?;
            if check(&frame) {
                return Ok(frame);
            }
        }
    }

    /// The next frame with this `action`.
    pub async fn recv_action(&mut self, action: &str) -> Result<Value, ClientError> {
        self.recv_where(&format!("a `{action}` frame"), |frame| {
            frame["action"] == action
        })
        .await
    }

    /// Sends a frame that carries a `requestId` and returns the reply that carries it.
    pub async fn request(&mut self, frame: Value) -> Result<Value, ClientError> {
        self.request_within(frame, WAIT).await
    }

    /// Like [`Client::request`], giving up after `wait`.
    pub async fn request_within(
        &mut self,
        frame: Value,
        wait: Duration,
    ) -> Result<Value, ClientError> {
        let id = frame["requestId"].clone();
        if !id.is_string() {
            return Err(self.unexpected("a frame with a requestId to send", &frame));
        }
        let what = format!("the reply to {id}");
        let deadline = Instant::now() + wait;
        self.send(frame).await?;
        loop {
            let reply = self.next_frame(&what, deadline, wait).await?;
            if reply["requestId"] == id {
                return Ok(reply);
            }
        }
    }

    /// Fails if anything arrives within `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) -> Result<(), ClientError> {
        match self.next(quiet).await {
            None => Ok(()),
            Some(incoming) => Err(self.unexpected("silence", &format!("{incoming:?}"))),
        }
    }

    /// Waits for the server's close frame, skipping frames before it; returns its code.
    pub async fn expect_close(&mut self) -> Result<u16, ClientError> {
        let deadline = Instant::now() + WAIT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.next(wait).await {
                Some(Incoming::Closed(code)) => return Ok(code),
                Some(Incoming::Text(_) | Incoming::Binary(_)) => {}
                Some(Incoming::Ended(how)) => {
                    return Err(ClientError::Ended {
                        who: self.who(),
                        what: "a close frame".to_string(),
                        how: format!("ended ({how})"),
                    })
                }
                None => {
                    return Err(ClientError::Timeout {
                        who: self.who(),
                        what: "a close frame".to_string(),
                        wait: WAIT,
                    })
                }
            }
        }
    }

    /// What the reader has recorded so far.
    pub fn seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Ends the connection without a close frame, as a killed client or a lost network
    /// would: the TCP socket closes, the WebSocket is never closed.
    pub async fn kill(self) {
        self.reader.abort();
        let _ = self.reader.await;
        drop(self.sink);
    }

    /// A normal close: close frame, then a bounded wait for the server's end of it.
    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.reader).await;
        self.reader.abort();
    }

    /// The TCP connection under the WebSocket, for bytes no WebSocket library would
    /// write. Whatever the reader had queued is dropped.
    pub async fn into_tcp(mut self) -> Result<TcpStream, ClientError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let who = self.who();
        let gone = |how: &str| ClientError::Ended {
            who: who.clone(),
            what: "the TCP stream".to_string(),
            how: how.to_string(),
        };
        let stream = (&mut self.reader)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| gone("had already ended"))?;
        let ws = self
            .sink
            .reunite(stream)
            .map_err(|_| gone("halves did not match"))?;
        match ws.into_inner() {
            MaybeTlsStream::Plain(tcp) => Ok(tcp),
            _ => Err(gone("is not plain TCP")),
        }
    }
}

/// Sorts what arrives on one socket (see the module docs). Returns the read half when
/// asked to stop, `None` when the socket ended.
async fn read(
    index: usize,
    mut stream: SplitStream<Ws>,
    inbox: Option<Arc<Inbox>>,
    queue: mpsc::UnboundedSender<Incoming>,
    seen: Arc<Mutex<Seen>>,
    mut stop: oneshot::Receiver<()>,
) -> Option<SplitStream<Ws>> {
    let note = |f: &mut dyn FnMut(&mut Seen)| {
        f(&mut seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    };
    let sorting = inbox.is_some();
    loop {
        let received = tokio::select! {
            biased;
            // Asked for the socket back, or the client was dropped (which drops the
            // socket with this half, as dropping a plain WebSocket would).
            _ = &mut stop => return Some(stream),
            received = stream.next() => received,
        };
        let arrived = Instant::now();
        let text = match received {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(data))) => {
                let _ = queue.send(Incoming::Binary(data.to_vec()));
                continue;
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                let _ = queue.send(Incoming::Closed(code));
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => {
                let _ = queue.send(Incoming::Ended(err.to_string()));
                return None;
            }
            None => {
                let _ = queue.send(Incoming::Ended("stream ended".to_string()));
                return None;
            }
        };
        let text = text.as_str();
        // A frame the sorter cannot read is queued, where a test sees it.
        if text.starts_with(r#"{"action":"newUser""#) {
            // Cut the id out rather than parse: there are N²/2 of these.
            let id = text
                .split_once(r#""connectionId":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(id, _)| id.to_string());
            if let Some(id) = id {
                note(&mut |s| s.new_users.push(id.clone()));
                if sorting {
                    continue;
                }
            }
        } else if text.starts_with(r#"{"action":"userExit""#) {
            if let Ok(exit) = serde_json::from_str::<ExitFrame>(text) {
                note(&mut |s| {
                    s.user_exits
                        .push((exit.user_name.clone(), exit.connection_id.clone()));
                });
                if sorting {
                    continue;
                }
            }
        } else if let (Some(inbox), true) = (&inbox, text.starts_with(r#"{"action":"message""#)) {
            if let Ok(frame) = serde_json::from_str::<MessageFrame>(text) {
                inbox.push(Delivery {
                    to: index,
                    arrived,
                    receiver_id: frame.receiver.connection_id,
                    receiver_name: frame.receiver.user_name,
                    sender: frame.sender,
                    sender_id: frame.sender_id,
                    message: frame.message,
                    message_id: frame.message_id,
                    private: frame.private,
                });
                continue;
            }
        }
        let _ = queue.send(Incoming::Text(text.to_string()));
    }
}

/// Connects and registers `count` clients named `{prefix}{index}` sharing `inbox`,
/// `parallel` at a time, and returns them in index order. Large crowds report progress
/// on stderr.
pub async fn join_many(
    url: &str,
    count: usize,
    prefix: &str,
    parallel: usize,
    inbox: &Arc<Inbox>,
) -> Result<Vec<Client>, ClientError> {
    let started = Instant::now();
    let every = if count >= 100 { count / 10 } else { usize::MAX };
    let mut joining = futures::stream::iter(0..count)
        .map(|index| {
            let name = format!("{prefix}{index}");
            async move { Client::join_to(url, index, &name, inbox).await }
        })
        .buffer_unordered(parallel.max(1));
    let mut joined = Vec::with_capacity(count);
    while let Some(client) = joining.next().await {
        joined.push(client?);
        if joined.len() % every == 0 {
            eprintln!(
                "    {:>5} / {count} clients joined ({:.1} s)",
                joined.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    joined.sort_by_key(|client| client.index);
    Ok(joined)
}
