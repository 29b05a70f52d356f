//! Many chat clients over tokio-tungstenite, recording when chat messages arrive.

use anyhow::{anyhow, bail, Context, Result};
use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single reply may take before the bench gives up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// What every client's reader reports into.
pub struct Recorder {
    /// Chat `message` frames received, by everyone.
    pub deliveries: AtomicU64,
    /// For messages whose text is `fanout-{j}`: arrival instants, per `j`.
    pub fanout: Vec<Mutex<Vec<Instant>>>,
}

impl Recorder {
    pub fn new(broadcasts: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            deliveries: AtomicU64::new(0),
            fanout: (0..broadcasts).map(|_| Mutex::new(Vec::new())).collect(),
        })
    }

    pub fn arrivals(&self, j: usize) -> Vec<Instant> {
        self.fanout[j]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub struct Client {
    sink: SplitSink<Ws, Message>,
    replies: mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Deserialize)]
struct MessageText<'a> {
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

impl Client {
    pub async fn connect(url: &str, recorder: Arc<Recorder>) -> Result<Client> {
        let mut last = None;
        for attempt in 0..10u64 {
            match tokio::time::timeout(
                Duration::from_secs(20),
                tokio_tungstenite::connect_async(url),
            )
            .await
            {
                Ok(Ok((ws, _))) => {
                    let (sink, stream) = ws.split();
                    let (tx, replies) = mpsc::unbounded_channel();
                    let reader = tokio::spawn(read(stream, recorder, tx));
                    return Ok(Client {
                        sink,
                        replies,
                        reader,
                    });
                }
                Ok(Err(err)) => last = Some(anyhow!(err)),
                Err(_) => last = Some(anyhow!("handshake timed out")),
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt made")))
            .context(format!("connecting to {url}"))
    }

    pub async fn send(&mut self, frame: Value) -> Result<()> {
        self.sink
            .send(Message::text(frame.to_string()))
            .await
            .context("sending a frame")
    }

    /// Sends a frame with a `requestId` and waits for the reply carrying it.
    pub async fn request(&mut self, frame: Value) -> Result<Value> {
        let id = frame["requestId"].clone();
        self.send(frame).await?;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.replies.recv()).await {
                Ok(Some(reply)) if reply["requestId"] == id => return Ok(reply),
                Ok(Some(_)) => continue,
                Ok(None) => bail!("the socket closed while waiting for {id}"),
                Err(_) => bail!("no reply to {id} within {REPLY_TIMEOUT:?}"),
            }
        }
    }

    pub async fn register(&mut self, name: &str) -> Result<()> {
        let reply = self
            .request(json!({"action":"register","userName":name,"requestId":"join"}))
            .await?;
        if reply["action"] != "registered" {
            bail!("registering {name}: {reply}");
        }
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
        self.reader.abort();
    }
}

async fn read(
    mut stream: futures::stream::SplitStream<Ws>,
    recorder: Arc<Recorder>,
    replies: mpsc::UnboundedSender<Value>,
) {
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let arrived = Instant::now();
        let text = text.as_str();
        if text.starts_with(r#"{"action":"newUser""#) || text.starts_with(r#"{"action":"userExit""#)
        {
            continue;
        }
        if text.starts_with(r#"{"action":"message""#) {
            recorder.deliveries.fetch_add(1, Ordering::Relaxed);
            if let Ok(frame) = serde_json::from_str::<MessageText>(text) {
                if let Some(j) = frame
                    .message
                    .strip_prefix("fanout-")
                    .and_then(|j| j.parse::<usize>().ok())
                {
                    if let Some(slot) = recorder.fanout.get(j) {
                        slot.lock().unwrap_or_else(|p| p.into_inner()).push(arrived);
                    }
                }
            }
            continue;
        }
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            let _ = replies.send(value);
        }
    }
}

/// Connects and registers `count` clients named `{prefix}{i}`, `parallel` at a time,
/// printing a progress line every `every` clients.
pub async fn join_many(
    url: &str,
    count: usize,
    prefix: &str,
    parallel: usize,
    recorder: Arc<Recorder>,
    every: usize,
) -> Result<Vec<Client>> {
    let started = Instant::now();
    let mut joined = Vec::with_capacity(count);
    let mut pending = futures::stream::iter(0..count)
        .map(|i| {
            let recorder = recorder.clone();
            let name = format!("{prefix}{i}");
            async move {
                let mut client = Client::connect(url, recorder).await?;
                client.register(&name).await?;
                Ok::<_, anyhow::Error>(client)
            }
        })
        .buffer_unordered(parallel);
    while let Some(client) = pending.next().await {
        joined.push(client?);
        if joined.len() % every == 0 || joined.len() == count {
            println!(
                "    {:>5} / {count} clients registered ({:.1} s)",
                joined.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(joined)
}
