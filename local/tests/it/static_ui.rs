//! The built UI as `webchat-local --static-dir` serves it, over a real socket on port 0.

use crate::common::start;
use serde_json::{json, Value};
use webchat_local::Config;

/// `GET path`: the status line's code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let response = webchat_testkit::http::request(addr, "GET", path, &[], b"")
        .await
        .expect("an answer");
    (response.status, response.body)
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
    assert_eq!(status, 200);
    let config: Value = serde_json::from_str(&body).expect("config.json is JSON");
    assert_eq!(
        config,
        json!({"websocketUrl": gateway.websocket_url(), "allowWsOverride": true})
    );
    let (status, body) = get(gateway.addr(), "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>t</title>"), "{body}");

    gateway.stop().await;
    let _ = std::fs::remove_dir_all(&dist);
}

#[tokio::test]
async fn with_dev_sign_in_config_json_names_the_issuer_and_its_endpoints() {
    let dist = std::env::temp_dir().join(format!("webchat-static-ui-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    let gateway = start(Config {
        static_dir: Some(dist.clone()),
        auth: webchat_local::Auth::Dev {
            client_id: "webchat-ui".to_string(),
        },
        ..Config::default()
    })
    .await;

    let (status, body) = get(gateway.addr(), "/config.json").await;
    assert_eq!(status, 200);
    let config: Value = serde_json::from_str(&body).expect("config.json is JSON");
    let issuer = gateway.issuer_url().expect("an issuer");
    assert_eq!(
        config,
        json!({
            "websocketUrl": gateway.websocket_url(),
            "allowWsOverride": true,
            "auth": {
                "issuer": issuer,
                "clientId": "webchat-ui",
                "authorizeUrl": format!("{issuer}/oauth2/authorize"),
                "tokenUrl": format!("{issuer}/oauth2/token"),
                "logoutUrl": format!("{issuer}/oauth2/logout"),
            },
        })
    );

    gateway.stop().await;
    let _ = std::fs::remove_dir_all(&dist);
}
