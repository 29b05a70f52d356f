//! Pushes through the real aws-sdk-apigatewaymanagement client against a management API
//! that misbehaves on cue: 5xx, nobody listening, no answer at all. What a sender's
//! `sent` count says, and how many times each push was tried, is what users notice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use webchat_backend::{ConnectionGateway, ConnectionStore, Harness, ManagementGateway, PostError};

/// How the scripted management API answers one request.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers.
    Silence,
}

/// A management API on 127.0.0.1 that answers each path from a script (then 200) and
/// counts the requests per path.
struct ScriptedApi {
    addr: SocketAddr,
    requests: Arc<Mutex<HashMap<String, usize>>>,
}

impl ScriptedApi {
    async fn start(script: HashMap<String, Vec<Answer>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let script = Arc::new(Mutex::new(script));
        let counts = requests.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, script.clone(), counts.clone()));
            }
        });
        ScriptedApi { addr, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/Prod", self.addr)
    }

    fn requests_to(&self, connection_id: &str) -> usize {
        let path = format!("/Prod/@connections/{connection_id}");
        self.requests
            .lock()
            .unwrap()
            .get(&path)
            .copied()
            .unwrap_or(0)
    }
}

/// One keep-alive HTTP/1.1 connection: just enough HTTP for the SDK's requests.
async fn serve(
    socket: TcpStream,
    script: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
) {
    let mut reader = BufReader::new(socket);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        *counts.lock().unwrap().entry(path.clone()).or_default() += 1;
        let answer = {
            let mut script = script.lock().unwrap();
            match script.get_mut(&path) {
                Some(answers) if !answers.is_empty() => answers.remove(0),
                _ => Answer::Status(200),
            }
        };
        let status = match answer {
            Answer::Status(status) => status,
            Answer::Silence => {
                // Hold the connection open until the client gives up on it.
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest).await;
                return;
            }
        };
        let (body, error_type) = match status {
            200 => ("", None),
            _ => (
                "{\"message\":\"scripted failure\"}",
                Some("InternalServerError"),
            ),
        };
        let mut response = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(error_type) = error_type {
            response.push_str(&format!("x-amzn-ErrorType: {error_type}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(body);
        if reader
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// ana (A) and bia (B) have joined through `api`.
async fn ana_and_bia(api: &ScriptedApi) -> Harness<ManagementGateway> {
    let h = Harness::with_gateway(ManagementGateway::local(&api.endpoint()));
    h.join("A", "ana").await;
    h.join("B", "bia").await;
    h
}

#[tokio::test]
async fn a_push_answered_with_5xx_is_retried_until_it_arrives() {
    let api = ScriptedApi::start(HashMap::from([(
        "/Prod/@connections/B".to_string(),
        vec![Answer::Status(503), Answer::Status(500)],
    )]))
    .await;
    let h = ana_and_bia(&api).await;
    assert_eq!(h.broadcast("A", "hi").await, 1, "bia gets the message");
    assert_eq!(api.requests_to("B"), 3);
}

#[tokio::test]
async fn a_management_api_nobody_listens_on_is_unavailable_and_nobody_is_dropped() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/Prod", closed.local_addr().unwrap());
    drop(closed);
    let gateway = ManagementGateway::local(&endpoint);
    let err = gateway.post("B", "{}").await.unwrap_err();
    assert!(matches!(err, PostError::Unavailable(_)), "{err:?}");

    let h = Harness::with_gateway(gateway);
    h.join("A", "ana").await;
    h.join("B", "bia").await;
    assert_eq!(h.broadcast("A", "hi").await, 0);
    assert!(
        h.store.get("B").await.unwrap().is_some(),
        "an unreachable API is no proof that bia left"
    );
}

#[tokio::test]
async fn a_push_with_no_answer_is_tried_once_so_it_cannot_arrive_twice() {
    let api = ScriptedApi::start(HashMap::from([(
        "/Prod/@connections/B".to_string(),
        vec![Answer::Silence],
    )]))
    .await;
    let h = ana_and_bia(&api).await;
    assert_eq!(h.broadcast("A", "hi").await, 0);
    assert_eq!(api.requests_to("B"), 1);
    assert!(h.store.get("B").await.unwrap().is_some());
}
