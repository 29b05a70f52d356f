//! `webchat-local`: an API Gateway WebSocket API on one machine.
//!
//! It speaks WebSocket to clients exactly as API Gateway does (routes selected on
//! `$request.body.action`, `$connect` during the handshake, `$disconnect` after every
//! close, frame and message limits, idle timeout, maximum lifetime) and runs the
//! backend's handlers in-process with API Gateway's own event types. The handlers reach
//! other connections the way they do on AWS: SigV4-signed requests over HTTP (the
//! backend's management client) against this gateway's `@connections` API, which checks
//! the signatures as API Gateway does.

pub mod dev_issuer;
mod events;
mod management;
mod metrics;
pub mod outbox;
pub mod sigv4;
mod socket;
mod store;

pub use metrics::METRICS_PATH;
pub use store::AnyStore;

/// The binary's first stdout line is this followed by the WebSocket URL; launchers wait for it.
pub const READY_LINE_PREFIX: &str = "webchat-local listening: ";

/// The DynamoDB tables `--dynamodb-endpoint` uses unless told otherwise.
pub const DEFAULT_CONNECTIONS_TABLE: &str = "webchat-connections";
pub const DEFAULT_NAMES_TABLE: &str = "webchat-names";
pub const DEFAULT_MEMBERS_TABLE: &str = "webchat-members";
pub const DEFAULT_MESSAGES_TABLE: &str = "webchat-messages";

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use events::{ApiInfo, ConnectionInfo};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use outbox::Outbox;
pub use sigv4::AccessKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use webchat_backend::{
    ConnectionGateway, ConnectionStore, DynamoStore, Limits, ManagementGateway, MemoryStore,
    PostError, Retrying, TableNames,
};
use webchat_shared_types::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub stage: String,
    /// Serve this directory (the built UI) at `/`, with a generated `/config.json`.
    pub static_dir: Option<PathBuf>,
    /// Keep connections in DynamoDB at this endpoint instead of in memory.
    pub dynamodb_endpoint: Option<String>,
    pub tables: TableNames,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// The region management API signatures must be scoped to.
    pub region: String,
    /// Who may use the `@connections` API.
    pub management_auth: ManagementAuth,
    /// When false, closed sockets never reach `$disconnect`: what happens on AWS when
    /// the event is lost, leaving stale rows for the next fan-out to find gone (410).
    pub deliver_disconnects: bool,
    /// How many frames each connection may send.
    pub limits: Limits,
    /// Whether `$connect` needs a signed-in token (`?token=`).
    pub auth: Auth,
    /// How long the development issuer's tokens last (`--auth dev`); short ones let a
    /// test watch the UI renew them.
    pub auth_token_lifetime: Duration,
}

/// Sign-in on `$connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may connect, as before sign-in existed.
    #[default]
    Off,
    /// The development issuer ([`dev_issuer`]) serves sign-in on the gateway's port,
    /// and `$connect` runs the authorizer (`webchat-authorizer`) against it first.
    Dev {
        /// The `aud` its ID tokens carry and the authorizer expects.
        client_id: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            stage: webchat_shared_types::DEFAULT_STAGE.to_string(),
            static_dir: None,
            dynamodb_endpoint: None,
            tables: TableNames {
                connections: DEFAULT_CONNECTIONS_TABLE.to_string(),
                names: DEFAULT_NAMES_TABLE.to_string(),
                members: DEFAULT_MEMBERS_TABLE.to_string(),
                messages: DEFAULT_MESSAGES_TABLE.to_string(),
            },
            idle_timeout: Duration::from_secs(webchat_shared_types::IDLE_TIMEOUT_SECS),
            max_lifetime: Duration::from_secs(webchat_shared_types::MAX_CONNECTION_LIFETIME_SECS),
            deliver_disconnects: true,
            region: DEFAULT_REGION.to_string(),
            management_auth: ManagementAuth::SigV4(AccessKey::development()),
            limits: Limits::DEFAULT,
            auth: Auth::Off,
            auth_token_lifetime: Duration::from_secs(dev_issuer::DEFAULT_TOKEN_LIFETIME_SECS),
        }
    }
}

/// The region the gateway claims when none is given, as the AWS CLI's default.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How the `@connections` API authenticates callers.
#[derive(Debug, Clone)]
pub enum ManagementAuth {
    /// Every request must carry a valid SigV4 signature by this key, as on AWS; the
    /// gateway's own handlers sign with it.
    SigV4(AccessKey),
    /// Anyone who reaches the port may post to and close any connection.
    Off,
}

impl ManagementAuth {
    /// The key the handlers sign their pushes with (any key, when nobody checks).
    fn signing_key(&self) -> AccessKey {
        match self {
            ManagementAuth::SigV4(key) => key.clone(),
            ManagementAuth::Off => AccessKey::development(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source} (is another webchat-local running? try --addr 127.0.0.1:0)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot prepare the DynamoDB tables at {endpoint}: {source} (is DynamoDB running there?)"
    )]
    Tables {
        endpoint: String,
        source: webchat_backend::StoreError,
    },
    #[error("static directory {0} does not exist; build the UI first (`trunk build --release`)")]
    StaticDir(PathBuf),
    #[error("--auth dev is a development sign-in that lets anyone sign in as any name; it only listens on a loopback address, not {0} (use --addr 127.0.0.1:PORT)")]
    AuthBeyondLoopback(SocketAddr),
    #[error("cannot set up the development sign-in: {0}")]
    Auth(String),
}

/// Pushes in flight across every handler of this process. On AWS each Lambda instance
/// pushes from its own sockets; here every fan-out shares one process and one HTTP
/// server, so without a bound simultaneous broadcasts open thousands of requests at once
/// and pushes time out.
const PUSH_PERMITS: usize = 128;

/// The management client, with at most [`PUSH_PERMITS`] requests in flight; a push
/// waits for a permit before the SDK starts its timeouts.
pub(crate) struct BoundedPushes {
    inner: ManagementGateway,
    permits: tokio::sync::Semaphore,
}

impl ConnectionGateway for BoundedPushes {
    async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PostError::Failed("gateway stopping".into()))?;
        self.inner.post(connection_id, data).await
    }

    async fn delete(&self, connection_id: &str) -> Result<(), PostError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PostError::Failed("gateway stopping".into()))?;
        self.inner.delete(connection_id).await
    }

    async fn is_open(&self, connection_id: &str) -> Result<bool, PostError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PostError::Failed("gateway stopping".into()))?;
        self.inner.is_open(connection_id).await
    }
}

/// One open connection, as the management API sees it.
pub(crate) struct OpenConnection {
    pub info: ConnectionInfo,
    pub last_active_ms: AtomicI64,
    pub outbox: Outbox,
}

pub(crate) struct Gateway {
    pub api: ApiInfo,
    pub config: Config,
    pub store: AnyStore,
    /// The handlers' view of `@connections`: the real SDK client, over HTTP, to us,
    /// retried as the Lambda retries it.
    pub management: Retrying<BoundedPushes>,
    pub connections: Mutex<HashMap<String, Arc<OpenConnection>>>,
    /// Set by [`Running::stop`]: sockets it closes skip `$disconnect`.
    pub stopping: AtomicBool,
    /// With sign-in on: the authorizer `$connect` runs first, and the issuer it trusts.
    pub sign_in: Option<SignIn>,
}

pub(crate) struct SignIn {
    pub verifier: webchat_authorizer::Verifier,
    pub issuer: Arc<dev_issuer::DevIssuer>,
}

impl Gateway {
    pub fn connection(&self, id: &str) -> Option<Arc<OpenConnection>> {
        self.lock_connections().get(id).cloned()
    }

    pub fn lock_connections(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OpenConnection>>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the handler for one event and logs it the way API Gateway's execution log would.
    pub async fn invoke(
        &self,
        event: &aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest,
    ) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
        let started = std::time::Instant::now();
        let response =
            webchat_backend::handle(&self.store, &self.management, &self.config.limits, event)
                .await;
        let context = &event.request_context;
        tracing::info!(
            target: "webchat_local::route",
            "{} {} -> {} in {:.1} ms",
            context.route_key.as_deref().unwrap_or("?"),
            context.connection_id.as_deref().unwrap_or("?"),
            response.status_code,
            started.elapsed().as_secs_f64() * 1000.0
        );
        response
    }
}

/// A running gateway.
pub struct Running {
    addr: SocketAddr,
    stage: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    gateway: Arc<Gateway>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/Prod`.
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{}", self.addr, self.stage)
    }

    /// The development issuer's URL (`--auth dev`): its
    /// `/.well-known/openid-configuration` names the sign-in endpoints.
    pub fn issuer_url(&self) -> Option<String> {
        self.gateway
            .sign_in
            .as_ref()
            .map(|s| s.issuer.issuer().to_string())
    }

    /// The endpoint to give an `aws-sdk-apigatewaymanagement` client.
    pub fn management_endpoint(&self) -> String {
        format!("http://{}/{}", self.addr, self.stage)
    }

    /// How many sockets are open right now.
    pub fn open_connections(&self) -> usize {
        self.gateway.lock_connections().len()
    }

    /// Stops the gateway: no new connections, every socket closed with 1001, and every
    /// connection removed from the store, so a DynamoDB store that outlives this process
    /// keeps no ghost users or taken names. `$disconnect` does not run for these sockets:
    /// everyone it would tell is leaving too, and N handlers each announcing to N-1
    /// closing peers would cost N² pushes for nothing.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
        let _ = (&mut self.task).await;
        // Taken before the flag is set: a socket that closes on its own in between is
        // not in `open`, so its own `$disconnect` must still run, and does.
        let open: HashMap<_, _> = std::mem::take(&mut *self.gateway.lock_connections());
        self.gateway.stopping.store(true, Ordering::SeqCst);
        for connection in open.values() {
            connection.outbox.close(1001, "Going away");
        }
        // A few at a time, and none after the store first fails: with DynamoDB down,
        // Ctrl-C must not wait out a timeout per connection.
        let store_failed = AtomicBool::new(false);
        futures::stream::iter(open.keys())
            .for_each_concurrent(STOP_REMOVALS_AT_ONCE, |connection_id| {
                let store_failed = &store_failed;
                let store = &self.gateway.store;
                async move {
                    if store_failed.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(err) = store.remove(connection_id).await {
                        if !store_failed.swap(true, Ordering::SeqCst) {
                            tracing::warn!(
                                error = %err,
                                "could not remove the closed connections from the store; \
                                 their rows expire with the connection TTL"
                            );
                        }
                    }
                }
            })
            .await;
    }
}

/// Store removals in flight while [`Running::stop`] forgets the open connections.
const STOP_REMOVALS_AT_ONCE: usize = 16;

/// Starts the gateway and returns once it accepts connections.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.auth != Auth::Off && !config.addr.ip().is_loopback() {
        return Err(StartError::AuthBeyondLoopback(config.addr));
    }
    if let Some(dir) = &config.static_dir {
        if !dir.is_dir() {
            return Err(StartError::StaticDir(dir.clone()));
        }
    }
    let listener = listen(config.addr).map_err(|source| StartError::Bind {
        addr: config.addr,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.addr,
        source,
    })?;

    let store = match &config.dynamodb_endpoint {
        None => AnyStore::Memory(MemoryStore::new()),
        Some(endpoint) => {
            let store = DynamoStore::new(
                webchat_backend::local_client(endpoint),
                config.tables.clone(),
            );
            store
                .create_tables_if_missing()
                .await
                .map_err(|source| StartError::Tables {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            AnyStore::Dynamo(store)
        }
    };
    let sign_in = match &config.auth {
        Auth::Off => None,
        Auth::Dev { client_id } => {
            let issuer_url = format!("http://{addr}");
            let issuer = dev_issuer::DevIssuer::new(
                issuer_url.clone(),
                client_id.clone(),
                config.auth_token_lifetime.as_secs().max(1),
            )
            .map_err(StartError::Auth)?;
            // The real verifying path: discovery and JWKS over HTTP, from this gateway.
            let auth_config = webchat_authorizer::AuthConfig::new(&issuer_url, client_id, None)
                .map_err(|err| StartError::Auth(err.to_string()))?;
            let verifier =
                webchat_authorizer::Verifier::new(auth_config).map_err(StartError::Auth)?;
            Some(SignIn {
                verifier,
                issuer: Arc::new(issuer),
            })
        }
    };
    let stage = config.stage.clone();
    let gateway = Arc::new(Gateway {
        api: ApiInfo {
            api_id: api_id(),
            stage: stage.clone(),
            domain_name: addr.to_string(),
        },
        management: Retrying::new(BoundedPushes {
            inner: ManagementGateway::local_signed(
                &format!("http://{addr}/{stage}"),
                &config.region,
                config.management_auth.signing_key().credentials(),
            ),
            permits: tokio::sync::Semaphore::new(PUSH_PERMITS),
        }),
        store,
        connections: Mutex::new(HashMap::new()),
        stopping: AtomicBool::new(false),
        sign_in,
        config,
    });

    let app = router(gateway.clone());
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = shutdown_rx.await;
        })
        .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "server stopped");
        }
    });
    Ok(Running {
        addr,
        stage,
        shutdown: Some(shutdown_tx),
        task,
        gateway,
    })
}

/// Kernel send buffer of every accepted socket. Linux would otherwise grow it up to
/// 4 MB per connection for a client that stops reading, memory no bound of ours counts;
/// fixed, the connection's outbox is what bounds a slow client, and 64 KB still keeps a
/// fast one's writes flowing.
const SOCKET_SEND_BUFFER: u32 = 64 * 1024;

/// Listens on `addr`; accepted sockets inherit the listener's send buffer size.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SOCKET_SEND_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// API Gateway API ids are 10 lower-case letters and digits.
fn api_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn router(gateway: Arc<Gateway>) -> Router {
    let stage = gateway.api.stage.clone();
    let mut router = Router::new()
        .route(&format!("/{stage}"), get(upgrade))
        .merge(management::routes(&stage, gateway.clone()))
        .merge(metrics::routes());
    if let Some(sign_in) = &gateway.sign_in {
        router = router.merge(sign_in.issuer.routes());
    }
    if let Some(dir) = gateway.config.static_dir.clone() {
        router = router
            .route("/config.json", get(ui_config))
            .fallback_service(tower_http::services::ServeDir::new(dir));
    }
    router.with_state(gateway)
}

/// `config.json` for the UI: the WebSocket URL as the browser should reach it,
/// `allowWsOverride`, since this is a development server: `?ws=` may point the page at
/// another gateway (a hosted site's own `config.json` leaves it out, so a crafted link
/// cannot send people's names and messages elsewhere), and with `--auth dev` the sign-in
/// settings (`auth`: `issuer`, `clientId`, `authorizeUrl`, `tokenUrl`, `logoutUrl`).
async fn ui_config(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> impl IntoResponse {
    // The Host header is what the browser used, so a UI opened via another name or a
    // proxy still finds the gateway.
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| gateway.api.domain_name.clone());
    let mut config = serde_json::json!({
        "websocketUrl": format!("ws://{host}/{}", gateway.api.stage),
        "allowWsOverride": true,
    });
    // With `--auth dev` the UI signs in at the development issuer: the same shape
    // `cargo xtask deploy` writes for Cognito's hosted UI.
    if let Some(sign_in) = &gateway.sign_in {
        let issuer = sign_in.issuer.issuer();
        config["auth"] = serde_json::json!({
            "issuer": issuer,
            "clientId": sign_in.issuer.client_id(),
            "authorizeUrl": format!("{issuer}{}", dev_issuer::AUTHORIZE_PATH),
            "tokenUrl": format!("{issuer}{}", dev_issuer::TOKEN_PATH),
            "logoutUrl": format!("{issuer}{}", dev_issuer::LOGOUT_PATH),
        });
    }
    axum::Json(config)
}

/// The WebSocket handshake: `$connect` runs before the upgrade, and a non-2xx answer
/// refuses it with that status, as on API Gateway.
async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let mut info = ConnectionInfo {
        authorizer: None,
        connection_id: events::connection_id(),
        connected_at: events::now_ms(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let mut query_map: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in query {
        query_map.entry(key).or_default().push(value);
    }
    let mut event = events::connect_event(&gateway.api, &info, &headers, query_map);
    tracing::info!(target: "webchat_local::connection", "connect {} from {}", info.connection_id, info.source_ip);
    if let Some(sign_in) = &gateway.sign_in {
        let started = std::time::Instant::now();
        match authorize(&gateway, sign_in, &event).await {
            Ok(authorizer) => {
                let latency = started.elapsed().as_millis() as i64;
                info.authorizer = Some(authorizer);
                // Every later event of the connection carries the identity; `$connect`'s
                // also has the authorizer's latency, as on AWS.
                event.request_context.authorizer = events::authorizer(&info, Some(latency));
            }
            Err((status, message)) => {
                tracing::info!(target: "webchat_local::connection", "connect {} refused by the authorizer with {}", info.connection_id, status);
                return (
                    status,
                    [(http::header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({ "message": message }).to_string(),
                )
                    .into_response();
            }
        }
    }
    let response = gateway.invoke(&event).await;
    if !(200..300).contains(&response.status_code) {
        let status = StatusCode::from_u16(response.status_code as u16)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::info!(target: "webchat_local::connection", "connect {} refused with {}", info.connection_id, status);
        return (status, "Forbidden").into_response();
    }
    // `$connect` succeeded, so a handshake that fails now must still end in `$disconnect`.
    let failed = (gateway.clone(), info.clone());
    // Chat frames are small: 4 KB buffers instead of tungstenite's 128 KB each way keep
    // a thousand idle connections at a few megabytes (they grow for larger frames).
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_failed_upgrade(move |err| {
            let (gateway, info) = failed;
            tracing::info!(target: "webchat_local::connection", "upgrade of {} failed: {err}", info.connection_id);
            tokio::spawn(async move {
                let event = events::disconnect_event(&gateway.api, &info, 1006, "Upgrade failed");
                gateway.invoke(&event).await;
            });
        })
        .on_upgrade(move |socket| socket::run(gateway, info, socket))
}

/// Runs the authorizer as API Gateway would for `$connect`: an `Allow` policy gives the
/// connection its identity; `Unauthorized` answers 401, `Deny` 403, any other failure 500.
async fn authorize(
    gateway: &Gateway,
    sign_in: &SignIn,
    connect: &aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest,
) -> Result<events::AuthorizerInfo, (StatusCode, &'static str)> {
    use aws_lambda_events::iam::IamPolicyEffect;
    let internal = (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    let method_arn = format!(
        "arn:aws:execute-api:{}:000000000000:{}/{}/$connect",
        gateway.config.region, gateway.api.api_id, gateway.api.stage
    );
    let request = events::authorizer_request(connect, &method_arn).ok_or(internal)?;
    match webchat_authorizer::authorize(&sign_in.verifier, &request).await {
        Err(webchat_authorizer::AuthorizerError::Unauthorized) => {
            Err((StatusCode::UNAUTHORIZED, "Unauthorized"))
        }
        Err(webchat_authorizer::AuthorizerError::Unavailable) => Err(internal),
        Ok(response) => {
            let statements = &response.policy_document.statement;
            let allowed = !statements.is_empty()
                && statements
                    .iter()
                    .all(|s| s.effect == IamPolicyEffect::Allow);
            if !allowed {
                return Err((StatusCode::FORBIDDEN, "Forbidden"));
            }
            let context = match serde_json::to_value(&response.context) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => return Err(internal),
            };
            Ok(events::AuthorizerInfo {
                principal_id: response.principal_id.unwrap_or_default(),
                context,
            })
        }
    }
}
