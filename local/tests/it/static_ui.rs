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

/// What a client that leaves bodies as they were sent gets for `GET path` with
/// `Accept-Encoding: accept` (none when `None`).
struct Fetched {
    headers: http::HeaderMap,
    /// The body bytes as they came over the socket, still encoded.
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header"))
    }

    /// The body decoded as its `Content-Encoding` says.
    fn decoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.header("content-encoding") {
            None => out.clone_from(&self.body),
            Some("br") => {
                brotli::BrotliDecompress(&mut &self.body[..], &mut out).expect("valid brotli");
            }
            Some("gzip") => {
                use std::io::Read;
                flate2::read::GzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .expect("valid gzip");
            }
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
        out
    }
}

async fn fetch(addr: std::net::SocketAddr, path: &str, accept: Option<&str>) -> Fetched {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<axum::body::Bytes>>();
    let mut request = http::Request::get(format!("http://{addr}{path}"));
    if let Some(accept) = accept {
        request = request.header(http::header::ACCEPT_ENCODING, accept);
    }
    let response = client
        .request(request.body(http_body_util::Empty::new()).unwrap())
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200, "GET {path}");
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Fetched { headers, body }
}

#[tokio::test]
async fn the_ui_is_served_precompressed_as_the_browser_accepts() {
    use webchat_testkit::ui_bundle::{brotli, gzip};
    let dist = std::env::temp_dir().join(format!("webchat-static-ui-br-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    // Compressible as a real module is, and big enough that compression pays.
    let wasm: Vec<u8> = (0..60_000u32).map(|i| (i % 97) as u8).collect();
    let html = "<!DOCTYPE html><title>webchat</title>".repeat(50);
    let css = "body { margin: 0; }\n".repeat(100);
    std::fs::write(dist.join("app_bg.wasm"), &wasm).unwrap();
    std::fs::write(dist.join("app_bg.wasm.br"), brotli(&wasm).unwrap()).unwrap();
    std::fs::write(dist.join("app_bg.wasm.gz"), gzip(&wasm).unwrap()).unwrap();
    std::fs::write(dist.join("index.html"), &html).unwrap();
    std::fs::write(dist.join("index.html.br"), brotli(html.as_bytes()).unwrap()).unwrap();
    std::fs::write(dist.join("index.html.gz"), gzip(html.as_bytes()).unwrap()).unwrap();
    // No precompressed sibling.
    std::fs::write(dist.join("style.css"), &css).unwrap();
    let gateway = start(Config {
        static_dir: Some(dist.clone()),
        ..Config::default()
    })
    .await;
    let addr = gateway.addr();

    for (accept, encoding, sent) in [
        // What Chromium sends.
        (
            Some("gzip, deflate, br, zstd"),
            Some("br"),
            brotli(&wasm).unwrap(),
        ),
        (Some("gzip"), Some("gzip"), gzip(&wasm).unwrap()),
        (Some("br;q=0, gzip"), Some("gzip"), gzip(&wasm).unwrap()),
        (None, None, wasm.clone()),
        (Some("identity"), None, wasm.clone()),
    ] {
        let got = fetch(addr, "/app_bg.wasm", accept).await;
        assert_eq!(got.header("content-encoding"), encoding, "{accept:?}");
        assert_eq!(
            got.header("content-type"),
            Some("application/wasm"),
            "{accept:?}"
        );
        assert_eq!(got.header("vary"), Some("accept-encoding"), "{accept:?}");
        assert_eq!(
            got.body, sent,
            "{accept:?}: the precompressed file as it is"
        );
        assert_eq!(got.decoded(), wasm, "{accept:?}");
        assert_eq!(
            got.header("content-length"),
            Some(sent.len().to_string().as_str()),
            "{accept:?}"
        );
    }

    // The page itself, at `/`.
    let page = fetch(addr, "/", Some("br, gzip")).await;
    assert_eq!(page.header("content-encoding"), Some("br"));
    assert_eq!(page.header("content-type"), Some("text/html"));
    assert_eq!(page.decoded(), html.as_bytes());

    // A file without a precompressed sibling goes as it is, whatever is accepted.
    let style = fetch(addr, "/style.css", Some("br, gzip")).await;
    assert_eq!(style.header("content-encoding"), None);
    assert_eq!(style.header("content-type"), Some("text/css"));
    assert_eq!(style.header("vary"), Some("accept-encoding"));
    assert_eq!(style.body, css.as_bytes());

    gateway.stop().await;
    let _ = std::fs::remove_dir_all(&dist);
}
