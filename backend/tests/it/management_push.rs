//! Pushes through the backend's real management client (signed with the SDK's signer,
//! sent with the SDK's HTTP client) against a management API that misbehaves on cue: 5xx,
//! 410, 429, 403, nobody listening, no answer at all. What a sender's `sent` count says,
//! who is still in the chat, and how many times each push was tried, is what users notice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use webchat_backend::{
    ConnectionGateway, ConnectionStore, Driver, ManagementGateway, MemoryStore, PostError,
};

/// How the scripted management API answers one request.
#[derive(Clone, Copy)]
enum Answer {
    /// 200, or this status with error type `InternalServerError`.
    Status(u16),
    /// This status with this `x-amzn-ErrorType`, as API Gateway names its errors.
    Error(u16, &'static str),
    /// Reads the request and never answers.
    Silence,
}

/// A management API on 127.0.0.1 that answers each path from a script (then 200) and
/// counts the requests per path.
struct ScriptedApi {
    addr: SocketAddr,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    script: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
}

impl ScriptedApi {
    async fn start(script: HashMap<String, Vec<Answer>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let script = Arc::new(Mutex::new(script));
        let (counts, answers) = (requests.clone(), script.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, answers.clone(), counts.clone()));
            }
        });
        ScriptedApi {
            addr,
            requests,
            script,
        }
    }

    /// Answers the next requests to connection `id` with `answers`.
    fn script(&self, id: &str, answers: Vec<Answer>) {
        self.script
            .lock()
            .unwrap()
            .insert(format!("/Prod/@connections/{id}"), answers);
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
        let (status, error_type) = match answer {
            Answer::Status(200) => (200, None),
            Answer::Status(status) => (status, Some("InternalServerError")),
            Answer::Error(status, error_type) => (status, Some(error_type)),
            Answer::Silence => {
                // Hold the connection open until the client gives up on it.
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest).await;
                return;
            }
        };
        let body = match error_type {
            None => "",
            Some(_) => "{\"message\":\"scripted failure\"}",
        };
        let mut response = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(error_type) = error_type {
            response.extend(["x-amzn-ErrorType: ", error_type, "\r\n"]);
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
async fn ana_and_bia(api: &ScriptedApi) -> Driver<MemoryStore, ManagementGateway> {
    let h = Driver::with_gateway(ManagementGateway::local(&api.endpoint()));
    h.arrive("A", "ana").await;
    h.arrive("B", "bia").await;
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
    assert!(matches!(err, PostError::Unavailable { .. }), "{err:?}");

    let h = Driver::with_gateway(gateway);
    h.arrive("A", "ana").await;
    h.arrive("B", "bia").await;
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

#[tokio::test]
async fn a_push_answered_gone_is_not_retried_and_the_recipient_leaves_the_chat() {
    let api = ScriptedApi::start(HashMap::from([(
        "/Prod/@connections/B".to_string(),
        vec![Answer::Error(410, "GoneException")],
    )]))
    .await;
    let h = ana_and_bia(&api).await;
    assert_eq!(h.broadcast("A", "hi").await, 0);
    assert_eq!(api.requests_to("B"), 1);
    assert!(
        h.store.get("B").await.unwrap().is_none(),
        "a connection API Gateway calls gone is removed"
    );
}

#[tokio::test]
async fn a_throttled_push_is_retried_until_it_arrives() {
    let api = ScriptedApi::start(HashMap::from([(
        "/Prod/@connections/B".to_string(),
        vec![
            Answer::Error(429, "LimitExceededException"),
            Answer::Error(429, "LimitExceededException"),
        ],
    )]))
    .await;
    let h = ana_and_bia(&api).await;
    assert_eq!(h.broadcast("A", "hi").await, 1, "bia gets the message");
    assert_eq!(api.requests_to("B"), 3);
}

#[tokio::test]
async fn a_refused_push_is_not_retried_and_the_recipient_stays() {
    let api = ScriptedApi::start(HashMap::from([(
        "/Prod/@connections/B".to_string(),
        vec![Answer::Error(403, "ForbiddenException")],
    )]))
    .await;
    let gateway = ManagementGateway::local(&api.endpoint());
    let err = gateway.post("B", "{}").await.unwrap_err();
    assert!(
        matches!(&err, PostError::Failed { context, .. } if context.contains("403") && context.contains("ForbiddenException")),
        "{err:?}"
    );
    assert_eq!(api.requests_to("B"), 1);

    let h = Driver::with_gateway(gateway);
    h.arrive("A", "ana").await;
    h.arrive("B", "bia").await;
    api.script("B", vec![Answer::Error(403, "ForbiddenException")]);
    assert_eq!(h.broadcast("A", "hi").await, 0);
    assert_eq!(api.requests_to("B"), 2, "tried once more, by the broadcast");
    assert!(h.store.get("B").await.unwrap().is_some());
}

#[tokio::test]
async fn a_gone_error_type_means_gone_whatever_the_status() {
    let api = ScriptedApi::start(HashMap::from([(
        "/Prod/@connections/B".to_string(),
        vec![Answer::Error(400, "GoneException")],
    )]))
    .await;
    let gateway = ManagementGateway::local(&api.endpoint());
    assert!(matches!(
        gateway.post("B", "{}").await,
        Err(PostError::Gone)
    ));
}

#[tokio::test]
async fn deleting_a_connection_that_is_gone_is_not_an_error() {
    let api = ScriptedApi::start(HashMap::from([(
        "/Prod/@connections/B".to_string(),
        vec![Answer::Error(410, "GoneException")],
    )]))
    .await;
    let gateway = ManagementGateway::local(&api.endpoint());
    gateway
        .delete("B")
        .await
        .expect("deleting a gone connection is not an error");
    assert_eq!(api.requests_to("B"), 1);
}
