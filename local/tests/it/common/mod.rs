//! The gateway under test, in this process, on a free port, and the handshake as a
//! WebSocket client sees it.

use webchat_local::{Config, Running};

pub(crate) async fn start(config: Config) -> Running {
    webchat_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .expect("gateway starts")
}

/// How a WebSocket handshake ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// 101: the socket opened.
    Accepted,
    /// Refused with this status; `message` is the JSON body's `message`.
    Refused { status: u16, message: String },
}

impl Handshake {
    pub(crate) fn refused(status: u16, message: &str) -> Handshake {
        Handshake::Refused {
            status,
            message: message.to_string(),
        }
    }
}

/// Opens a WebSocket to `url` and says how the handshake ended.
pub(crate) async fn handshake(url: &str) -> Handshake {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Handshake::Accepted,
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|json| json["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    format!("no JSON message in {:?}", String::from_utf8_lossy(body))
                });
            Handshake::Refused {
                status: response.status().as_u16(),
                message,
            }
        }
        Err(other) => panic!("handshake failed otherwise: {other}"),
    }
}

/// The `webchat-local` binary as its own process on a free port with these further
/// arguments, once its ready line is out; and the WebSocket URL that line names.
pub(crate) fn gateway_process(args: &[&str]) -> anyhow::Result<(webchat_testkit::Process, String)> {
    use anyhow::Context;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-local"));
    command.args(["--addr", "127.0.0.1:0"]).args(args);
    let process = webchat_testkit::Launch::new("webchat-local", command)
        .until_ready(
            webchat_local::READY_LINE_PREFIX,
            std::time::Duration::from_secs(30),
        )
        .context("webchat-local starts")?;
    let url = process
        .ready_line()
        .split_whitespace()
        .find(|word| word.starts_with("ws://"))
        .context("the ready line names the WebSocket URL")?
        .to_string();
    Ok((process, url))
}
