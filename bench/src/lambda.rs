//! Lambda cold start and warm invocation, against a stub of the Lambda Runtime API
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>) served here on
//! 127.0.0.1: the bench execs the release `webchat-lambda` with `AWS_LAMBDA_RUNTIME_API`
//! pointing at the stub and times its first `GET /2018-06-01/runtime/invocation/next`.

use anyhow::{bail, Context, Result};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

#[derive(Default)]
struct Run {
    first_next: Option<Instant>,
    events: VecDeque<(String, String)>,
    handed_out: HashMap<String, Instant>,
    /// `(request id, when, body)` of each posted response.
    responses: Vec<(String, Instant, String)>,
    errors: Vec<String>,
}

#[derive(Default)]
struct Stub {
    run: Mutex<Run>,
    changed: Notify,
}

impl Stub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Run> {
        self.run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn next(State(stub): State<Arc<Stub>>) -> Response {
    let event = {
        let mut run = stub.lock();
        if run.first_next.is_none() {
            run.first_next = Some(Instant::now());
        }
        run.events.pop_front()
    };
    stub.changed.notify_waiters();
    let Some((id, body)) = event else {
        // Nothing more to invoke: hold the long poll, as Lambda does between invocations,
        // until the bench kills the process.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:webchat-bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    stub.lock().handed_out.insert(id, Instant::now());
    (StatusCode::OK, headers, body).into_response()
}

async fn response(
    State(stub): State<Arc<Stub>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    stub.lock().responses.push((id, Instant::now(), body));
    stub.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(stub): State<Arc<Stub>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    stub.lock().errors.push(format!("invocation {id}: {body}"));
    stub.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(State(stub): State<Arc<Stub>>, body: String) -> StatusCode {
    stub.lock().errors.push(format!("init: {body}"));
    stub.changed.notify_waiters();
    StatusCode::ACCEPTED
}

/// A `ping` with a `requestId`, as API Gateway would deliver it to the `ping` function.
fn ping_event(request_id: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .try_into()
        .unwrap_or(i64::MAX);
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let context = &mut event.request_context;
    context.route_key = Some("ping".into());
    context.event_type = Some("MESSAGE".into());
    context.connection_id = Some("L0SM9cOFvHcCIhw=".into());
    context.connected_at = now - 1000;
    context.request_time_epoch = now;
    context.request_id = Some(request_id.into());
    context.extended_request_id = Some(request_id.into());
    context.message_id = Some("bench-message".into());
    context.message_direction = Some("IN".into());
    context.domain_name = Some("abcdefghij.execute-api.us-east-1.amazonaws.com".into());
    context.stage = Some("Prod".into());
    context.apiid = Some("abcdefghij".into());
    context.identity.source_ip = Some("127.0.0.1".into());
    event.body = Some(format!(r#"{{"action":"ping","requestId":"{request_id}"}}"#));
    event.is_base64_encoded = false;
    serde_json::to_string(&event).expect("events serialise")
}

/// One cold start: exec → first `next`, then two invocations (the second one warm).
pub(crate) struct ColdStart {
    pub init: Duration,
    pub first_invocation: Duration,
    pub warm_invocation: Duration,
}

/// The table names the benched Lambda is given.
pub(crate) static TABLES: std::sync::LazyLock<webchat_backend::TableNames> =
    std::sync::LazyLock::new(|| webchat_backend::TableNames {
        connections: "webchat-connections".into(),
        names: "webchat-names".into(),
        members: "webchat-members".into(),
        messages: "webchat-messages".into(),
    });

/// The connections whose `ping`s cold start `attempt` delivers.
pub(crate) fn ping_ids(attempt: usize) -> [String; 2] {
    [format!("bench-{attempt}-1"), format!("bench-{attempt}-2")]
}

pub(crate) struct RuntimeStub {
    stub: Arc<Stub>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeStub {
    pub(crate) async fn start() -> Result<RuntimeStub> {
        let stub = Arc::new(Stub::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeStub { stub, addr, server })
    }

    /// Waits until `done` holds for the run's state, or `within` passes.
    async fn wait_for(&self, within: Duration, done: impl Fn(&Run) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.stub.changed.notified();
            {
                let run = self.stub.lock();
                if done(&run) || !run.errors.is_empty() {
                    return done(&run);
                }
            }
            let tick = tokio::time::Instant::now() + Duration::from_millis(5);
            let _ = tokio::time::timeout_at(deadline.min(tick), changed).await;
            if tokio::time::Instant::now() >= deadline {
                return done(&self.stub.lock());
            }
        }
    }

    /// Execs `binary` once and times it; its DynamoDB is `dynamodb_endpoint` (dynalite
    /// with the tables of [`TABLES`] and a row for each of [`ping_ids`]`(attempt)`), so the
    /// `ping`s take their real path: one rate-limit update on the connection's row.
    pub(crate) async fn cold_start(
        &self,
        binary: &FsPath,
        attempt: usize,
        dynamodb_endpoint: &str,
    ) -> Result<ColdStart> {
        let ids = ping_ids(attempt);
        *self.stub.lock() = Run {
            events: ids.iter().map(|id| (id.clone(), ping_event(id))).collect(),
            ..Run::default()
        };
        let exec = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "webchat-bench")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/webchat-bench")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDBENCHBENCHBENCH0")
            .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
            .env("AWS_SESSION_TOKEN", "bench-token")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("CONNECTIONS_TABLE", &TABLES.connections)
            .env("NAMES_TABLE", &TABLES.names)
            .env("MEMBERS_TABLE", &TABLES.members)
            .env("MESSAGES_TABLE", &TABLES.messages)
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("_HANDLER", "bootstrap")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("exec {}", binary.display()))?;

        let result = async {
            if !self
                .wait_for(Duration::from_secs(10), |run| run.first_next.is_some())
                .await
            {
                bail!(
                    "no GET /runtime/invocation/next within 10 s; errors: {:?}",
                    self.stub.lock().errors
                );
            }
            if !self
                .wait_for(Duration::from_secs(10), |run| run.responses.len() >= 2)
                .await
            {
                bail!(
                    "the two invocations were not answered within 10 s; errors: {:?}",
                    self.stub.lock().errors
                );
            }
            let run = self.stub.lock();
            let took = |i: usize| -> Result<Duration> {
                let (id, answered, body) = &run.responses[i];
                if !body.contains("pong") {
                    bail!("invocation {id} answered {body}");
                }
                let handed = run
                    .handed_out
                    .get(id)
                    .context("response for an unknown id")?;
                Ok(answered.saturating_duration_since(*handed))
            };
            Ok(ColdStart {
                init: run
                    .first_next
                    .context("no next")?
                    .saturating_duration_since(exec),
                first_invocation: took(0)?,
                warm_invocation: took(1)?,
            })
        }
        .await;
        let _ = child.kill();
        let _ = child.wait();
        result
    }
}

impl Drop for RuntimeStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}
