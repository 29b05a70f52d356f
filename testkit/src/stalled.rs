//! A chat user whose client stops reading: registered, then silent and deaf, with a
//! receive buffer small enough that the kernel holds little on its behalf. What a frozen
//! tab or a stuck script looks like to the gateway.

use crate::client::ClientError;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The stalled client's receive buffer.
pub(crate) const TINY_RECEIVE_BUFFER: u32 = 4096;

/// A registered connection that reads nothing more; dropping it closes the socket.
pub struct StalledReader {
    /// The server's id for this connection.
    pub connection_id: String,
    _socket: WebSocketStream<TcpStream>,
}

impl StalledReader {
    /// Connects to `url` (`ws://host:port/stage`), registers `name`, and stops reading
    /// once the server confirmed it.
    pub async fn join(url: &str, name: &str) -> Result<StalledReader, ClientError> {
        let fail = |what: String| ClientError::Unreachable {
            url: url.to_string(),
            attempts: 1,
            last: what,
        };
        let authority = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| fail("not a ws:// URL".into()))?;
        let addr = tokio::net::lookup_host(authority)
            .await
            .map_err(|e| fail(e.to_string()))?
            .next()
            .ok_or_else(|| fail("no address".into()))?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| fail(e.to_string()))?;
        socket
            .set_recv_buffer_size(TINY_RECEIVE_BUFFER)
            .map_err(|e| fail(e.to_string()))?;
        let tcp = socket
            .connect(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let register = json!({"action":"register","userName":name,"requestId":"stall"});
        ws.send(Message::text(register.to_string()))
            .await
            .map_err(|e| fail(e.to_string()))?;
        while let Some(frame) = ws.next().await {
            let Ok(Message::Text(text)) = frame else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap_or_default();
            if reply["requestId"] == "stall" {
                let Some(id) = reply["connectionId"].as_str() else {
                    return Err(fail(format!("register was refused: {text}")));
                };
                return Ok(StalledReader {
                    connection_id: id.to_string(),
                    _socket: ws,
                });
            }
        }
        Err(fail("the socket ended before registered".into()))
    }
}
