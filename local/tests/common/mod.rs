//! A WebSocket chat client for tests, over real sockets.

#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webchat_local::{Config, Running};

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn start(config: Config) -> Running {
    webchat_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .expect("gateway starts")
}

pub async fn start_default() -> Running {
    start(Config::default()).await
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub connection_id: String,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("handshake succeeds");
        Client {
            ws,
            connection_id: String::new(),
        }
    }

    /// Connects and registers, returning once the server confirmed the name.
    pub async fn join(url: &str, name: &str) -> Client {
        let mut client = Client::connect(url).await;
        client
            .send(json!({"action":"register","userName":name,"requestId":"join"}))
            .await;
        let reply = client.recv_action("registered").await;
        assert_eq!(reply["requestId"], "join");
        client.connection_id = reply["connectionId"].as_str().unwrap().to_string();
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next JSON frame from the server.
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")
                .expect("socket open")
                .expect("frame ok");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("server frames are JSON")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame with this `action`, skipping announcements that may interleave.
    pub async fn recv_action(&mut self, action: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["action"] == action {
                return frame;
            }
        }
    }

    /// Asserts nothing arrives for a while.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, self.ws.next()).await {
            panic!("expected silence, got {message:?}");
        }
    }

    /// Waits for the server's close frame and returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close within the wait")
            {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => return u16::from(CloseCode::Status),
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("socket failed before a close frame: {err}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
