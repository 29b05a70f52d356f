//! The Lambda Runtime API one instance polls, as AWS documents it
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>): `GET
//! /2018-06-01/runtime/invocation/next` long-polls for the next event, `POST
//! .../invocation/{id}/response` and `.../invocation/{id}/error` answer it, and `POST
//! .../init/error` reports a failed start.
//!
//! Each instance gets its own listener: `AWS_LAMBDA_RUNTIME_API` is a bare `host:port`,
//! so a path per instance is not an option.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

/// The API version every path starts with.
pub const VERSION_PREFIX: &str = "/2018-06-01/runtime";

/// One event on its way to the runtime.
pub(crate) struct Invocation {
    pub request_id: String,
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    pub payload: Bytes,
    pub reply: oneshot::Sender<Outcome>,
}

/// How the runtime answered an invocation.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `/response`: the handler's result.
    Response(Bytes),
    /// `/error`: the handler failed; Lambda's `errorType` and `errorMessage`.
    Error {
        error_type: String,
        error_message: String,
    },
}

/// What the instance's start-up reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InitState {
    /// Still starting: no `next` yet.
    Starting,
    /// Asked for its first event: initialised.
    Ready,
    /// Reported `/init/error` with this type and message.
    Failed(String),
}

struct ApiState {
    invocations: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    /// The invocation the runtime holds, answered by `/response` or `/error`.
    current: Mutex<Option<(String, oneshot::Sender<Outcome>)>>,
    init: watch::Sender<InitState>,
}

/// A running Runtime API for one instance.
pub(crate) struct RuntimeApi {
    pub addr: SocketAddr,
    pub invocations: mpsc::Sender<Invocation>,
    pub init: watch::Receiver<InitState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    pub(crate) async fn start() -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        // One at a time: an instance handles one invocation, as on Lambda.
        let (invocations, receiver) = mpsc::channel(1);
        let (init_tx, init) = watch::channel(InitState::Starting);
        let state = Arc::new(ApiState {
            invocations: tokio::sync::Mutex::new(receiver),
            current: Mutex::new(None),
            init: init_tx,
        });
        let app = Router::new()
            .route(&format!("{VERSION_PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{VERSION_PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(
                &format!("{VERSION_PREFIX}/invocation/{{id}}/error"),
                post(error),
            )
            .route(&format!("{VERSION_PREFIX}/init/error"), post(init_error))
            .with_state(state);
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "runtime API stopped"
                );
            }
        });
        Ok(RuntimeApi {
            addr,
            invocations,
            init,
            task,
        })
    }
}

fn lock_current(
    state: &ApiState,
) -> std::sync::MutexGuard<'_, Option<(String, oneshot::Sender<Outcome>)>> {
    state
        .current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The runtime's errors as Lambda's Runtime API writes them.
fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "errorMessage": message, "errorType": error_type }).to_string(),
    )
        .into_response()
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    state.init.send_if_modified(|init| {
        if *init == InitState::Starting {
            *init = InitState::Ready;
            true
        } else {
            false
        }
    });
    let mut invocations = state.invocations.lock().await;
    let Some(invocation) = invocations.recv().await else {
        // The instance is being shut down; the runtime is about to be killed.
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "the instance is stopping",
        );
    };
    let mut headers = HeaderMap::new();
    let header = |value: &str| {
        HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    };
    headers.insert(
        "lambda-runtime-aws-request-id",
        header(&invocation.request_id),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&invocation.deadline_ms.to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header(&invocation.function_arn),
    );
    headers.insert("lambda-runtime-trace-id", header(&invocation.trace_id));
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *lock_current(&state) = Some((invocation.request_id, invocation.reply));
    (StatusCode::OK, headers, invocation.payload).into_response()
}

/// Hands `outcome` to the invocation `id`, if it is the one the runtime holds.
fn answer(state: &ApiState, id: &str, outcome: Outcome) -> Response {
    let mut current = lock_current(state);
    match current.take() {
        Some((held, reply)) if held == id => {
            let _ = reply.send(outcome);
            (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
        }
        other => {
            *current = other;
            api_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                &format!("no invocation {id} is in progress"),
            )
        }
    }
}

async fn response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    answer(&state, &id, Outcome::Response(body))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
}

/// The error's type from its body, else the `Lambda-Runtime-Function-Error-Type` header.
fn read_error(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let error_type = parsed
        .error_type
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Unhandled".to_string());
    let error_message = parsed
        .error_message
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = read_error(&headers, &body);
    answer(
        &state,
        &id,
        Outcome::Error {
            error_type,
            error_message,
        },
    )
}

async fn init_error(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = read_error(&headers, &body);
    state
        .init
        .send_replace(InitState::Failed(format!("{error_type}: {error_message}")));
    (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
}
