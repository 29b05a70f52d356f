//! The built UI as `webchat-local --static-dir` serves it, over a real socket on port 0.

mod common;

use common::start;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webchat_local::Config;

/// `GET path` over HTTP/1.1; the status line and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = String::new();
    tokio::time::timeout(common::WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a response within the wait")
        .expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

#[tokio::test]
async fn config_json_names_this_gateway_and_allows_ws_overrides_in_development() {
    let dist = std::env::temp_dir().join(format!("webchat-static-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!DOCTYPE html><title>t</title>").unwrap();
    let gateway = start(Config {
        static_dir: Some(dist.clone()),
        ..Config::default()
    })
    .await;

    let (status, body) = get(gateway.addr(), "/config.json").await;
    assert!(status.contains(" 200 "), "{status}");
    let config: Value = serde_json::from_str(&body).expect("config.json is JSON");
    assert_eq!(
        config,
        json!({"websocketUrl": gateway.websocket_url(), "allowWsOverride": true})
    );
    let (status, body) = get(gateway.addr(), "/").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("<title>t</title>"), "{body}");

    gateway.stop().await;
    let _ = std::fs::remove_dir_all(&dist);
}
