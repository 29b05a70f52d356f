//! The gateway: its connections, the handlers' bounded view of `@connections`, and
//! starting and stopping it.

use crate::config::{Auth, Config};
use crate::events::{ApiInfo, ConnectionInfo};
use crate::handshake::{self, SignIn};
use crate::management;
use crate::metrics;
use crate::outbox::Outbox;
use crate::store::AnyStore;
use crate::ui;
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use webchat_backend::{
    ConnectionGateway, ConnectionStore, DynamoStore, ManagementGateway, MemoryStore, PostError,
    Retrying,
};

/// The binary's first stdout line is this followed by the WebSocket URL; launchers wait for it.
pub const READY_LINE_PREFIX: &str = "webchat-local listening: ";

/// Why the gateway did not start; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} (is another webchat-local running? try --addr 127.0.0.1:0)")]
    /// The address is taken or not ours.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the DynamoDB tables at {endpoint} (is DynamoDB running there?)")]
    /// The DynamoDB endpoint did not take the tables.
    Tables {
        /// The endpoint asked for.
        endpoint: String,
        /// What the store said.
        #[source]
        source: webchat_backend::StoreError,
    },
    #[error("static directory {0} does not exist; build the UI first (`trunk build --release`)")]
    /// `--static-dir` names no directory.
    StaticDir(PathBuf),
    #[error("--auth dev is a development sign-in that lets anyone sign in as any name; it only listens on a loopback address, not {0} (use --addr 127.0.0.1:PORT)")]
    /// `--auth dev` was asked for on an address other machines can reach.
    AuthBeyondLoopback(SocketAddr),
    #[error("--template: the template cannot run here")]
    /// The template cannot run here.
    Template(#[source] crate::template_mode::TemplateModeError),
    #[error("cannot set up the development sign-in (--auth dev; --auth off connects without it)")]
    /// The development issuer could not be set up.
    Auth(#[source] Box<dyn std::error::Error + Send + Sync>),
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
            .map_err(|_| PostError::failed("gateway stopping"))?;
        self.inner.post(connection_id, data).await
    }

    async fn delete(&self, connection_id: &str) -> Result<(), PostError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PostError::failed("gateway stopping"))?;
        self.inner.delete(connection_id).await
    }

    async fn is_open(&self, connection_id: &str) -> Result<bool, PostError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PostError::failed("gateway stopping"))?;
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
    /// Where pushes to big rooms go: the in-process fan-out workers.
    pub fanout: crate::fanout::LocalQueue,
    /// Who runs the routes' handlers.
    pub handlers: Handlers,
}

/// Who runs the routes' handlers.
pub(crate) enum Handlers {
    /// The backend's handlers in this process (the fast default).
    InProcess,
    /// The functions the SAM template wires, as child processes (`--template`).
    Template(crate::template_mode::Dispatcher),
}

impl Gateway {
    pub(crate) fn connection(&self, id: &str) -> Option<Arc<OpenConnection>> {
        self.lock_connections().get(id).cloned()
    }

    pub(crate) fn lock_connections(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OpenConnection>>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the handler for one event and logs it the way API Gateway's execution log would.
    pub(crate) async fn invoke(
        &self,
        event: &aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest,
    ) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
        let started = std::time::Instant::now();
        let response = match &self.handlers {
            Handlers::InProcess => {
                let fanout = webchat_backend::Fanout {
                    queue: &self.fanout,
                    inline_limit: self.config.fanout_inline,
                    shard_size: self.config.fanout_shard_size,
                };
                webchat_backend::handle_with_fanout(
                    &self.store,
                    &self.management,
                    &self.config.limits,
                    Some(fanout),
                    event,
                )
                .await
            }
            Handlers::Template(dispatcher) => dispatcher.invoke(event).await,
        };
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

    /// Whether the client gets the answer to a frame on `route` (a two-way route).
    pub(crate) fn replies(&self, route: webchat_shared_types::Route) -> bool {
        match &self.handlers {
            Handlers::InProcess => route.replies(),
            Handlers::Template(dispatcher) => dispatcher.replies(route.key()),
        }
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
    /// The address the gateway listens on (the port it picked, for port 0).
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

    /// The development issuer itself, for tests that need tokens it would not hand out.
    #[cfg(test)]
    pub(crate) fn dev_issuer(&self) -> Option<&crate::dev_issuer::DevIssuer> {
        self.gateway.sign_in.as_ref().map(|s| &*s.issuer)
    }

    /// The endpoint to give an `aws-sdk-apigatewaymanagement` client.
    pub fn management_endpoint(&self) -> String {
        format!("http://{}/{}", self.addr, self.stage)
    }

    /// In template mode: the SQS endpoint serving the template's queues (the one the
    /// functions are given as `AWS_ENDPOINT_URL_SQS`).
    pub fn sqs_endpoint(&self) -> Option<String> {
        match &self.gateway.handlers {
            Handlers::Template(dispatcher) => dispatcher.sqs_endpoint(),
            Handlers::InProcess => None,
        }
    }

    /// In template mode: the template's queue with this logical id (its URL, ARN and
    /// counters).
    pub fn queue(&self, logical_id: &str) -> Option<std::sync::Arc<crate::sqs::Queue>> {
        match &self.gateway.handlers {
            Handlers::Template(dispatcher) => dispatcher.queue(logical_id),
            Handlers::InProcess => None,
        }
    }

    /// How many sockets are open right now.
    pub fn open_connections(&self) -> usize {
        self.gateway.lock_connections().len()
    }

    /// Stops the gateway: no new connections, every socket closed with 1001, and every
    /// connection removed from the store, so a `DynamoDB` store that outlives this process
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
                                error = &err as &dyn std::error::Error,
                                "could not remove the closed connections from the store; \
                                 their rows expire with the connection TTL"
                            );
                        }
                    }
                }
            })
            .await;
        if let Handlers::Template(dispatcher) = &self.gateway.handlers {
            dispatcher.stop();
        }
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

    let mut config = config;
    let mut api_id = api_id();
    let handlers = match &config.template {
        None => Handlers::InProcess,
        Some(options) => {
            let dynamodb = config
                .dynamodb_endpoint
                .as_deref()
                .ok_or(StartError::Template(
                    crate::template_mode::TemplateModeError::NoDynamoDb,
                ))?;
            let endpoints = crate::template_mode::LocalEndpoints {
                gateway: format!("http://{addr}"),
                dynamodb,
                region: &config.region,
                credentials: config.management_auth.signing_key(),
                dev_issuer: match &config.auth {
                    Auth::Off => None,
                    Auth::Dev { client_id } => Some((format!("http://{addr}"), client_id.clone())),
                },
            };
            let prepared = crate::template_mode::prepare(options, &endpoints)
                .await
                .map_err(StartError::Template)?;
            // The API is the template's: its stage, its id, its tables.
            api_id = prepared.api_id;
            config.stage = prepared.stage;
            config.management_iam = prepared.management_iam;
            match prepared.tables {
                Some(tables) => config.tables = tables,
                // Nothing of ours to clean up at stop in tables nobody can name.
                None => config.dynamodb_endpoint = None,
            }
            Handlers::Template(prepared.dispatcher)
        }
    };
    let store = match &config.dynamodb_endpoint {
        None => AnyStore::Memory(Box::new(MemoryStore::new())),
        Some(endpoint) => {
            let store = DynamoStore::new(
                webchat_backend::local_client(endpoint),
                config.tables.clone(),
            );
            // In template mode the template's own definitions made them already.
            if matches!(handlers, Handlers::InProcess) {
                store
                    .create_tables_if_missing()
                    .await
                    .map_err(|source| StartError::Tables {
                        endpoint: endpoint.clone(),
                        source,
                    })?;
            }
            AnyStore::Dynamo(store)
        }
    };
    let sign_in = match &config.auth {
        Auth::Off => None,
        Auth::Dev { client_id } => Some(
            SignIn::dev(
                format!("http://{addr}"),
                client_id,
                config.auth_token_lifetime,
            )
            .map_err(StartError::Auth)?,
        ),
    };
    let stage = config.stage.clone();
    let (fanout, fanout_jobs) = crate::fanout::queue();
    let gateway = Arc::new(Gateway {
        api: ApiInfo {
            api_id,
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
        handlers,
        fanout,
        config,
    });
    crate::fanout::spawn_workers(&gateway, fanout_jobs);

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
            tracing::error!(error = &err as &dyn std::error::Error, "server stopped");
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
        .route(&format!("/{stage}"), get(handshake::upgrade))
        .merge(management::routes(&stage, gateway.clone()))
        .merge(metrics::routes());
    if let Some(sign_in) = &gateway.sign_in {
        router = router.merge(sign_in.issuer.routes());
    }
    if let Some(dir) = &gateway.config.static_dir {
        router = router.merge(ui::routes(dir));
    }
    router.with_state(gateway)
}
