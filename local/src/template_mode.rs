//! `--template`: the routes, functions and authorizer as the SAM template wires them,
//! each function its real binary behind a Lambda Runtime API ([`crate::lambda`]).

use crate::lambda::{Function, FunctionConfig, InvokeError};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};
use axum::body::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The route selection expression this gateway implements.
pub const ROUTE_SELECTION_EXPRESSION: &str = "$request.body.action";

/// The `$default` route key.
const DEFAULT_ROUTE: &str = "$default";

/// One route of the template: the function behind it, and whether its answer goes back
/// to the client (a route response).
#[derive(Debug, Clone)]
pub struct WiredRoute {
    /// The function's logical id.
    pub function: String,
    /// A two-way route: the function's response body is sent to the client.
    pub two_way: bool,
}

/// What the template wires: routes to functions, and the `$connect` authorizer.
#[derive(Debug, Clone, Default)]
pub struct Wiring {
    /// Route key → its function.
    pub routes: BTreeMap<String, WiredRoute>,
    /// Logical id → how to run the function.
    pub functions: BTreeMap<String, FunctionConfig>,
    /// The logical id of the `$connect` REQUEST authorizer's function, when on.
    pub authorizer: Option<String>,
}

/// Why the template's wiring cannot run.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// A route or authorizer names a function the template does not define.
    #[error("route {route} is wired to function {function}, which the template does not define (or whose Condition is false)")]
    UnknownFunction {
        /// The route key (or `authorizer`).
        route: String,
        /// The logical id it names.
        function: String,
    },
    /// A function's binary is not where `--functions-dir` says.
    #[error("function {function}: no binary at {path} (build it with `cargo xtask lambdas --host`, or point --functions-dir at the directory holding <binary>/bootstrap)")]
    MissingBinary {
        /// The function's logical id.
        function: String,
        /// Where it was looked for.
        path: String,
    },
    /// The template selects routes on another expression than this gateway does.
    #[error("the template's RouteSelectionExpression is {0}; webchat-local routes on {ROUTE_SELECTION_EXPRESSION} only")]
    RouteSelection(String),
}

/// The functions behind the routes, each with its own instances.
pub(crate) struct Dispatcher {
    routes: HashMap<String, (Arc<Function>, bool)>,
    authorizer: Option<Arc<Function>>,
    functions: BTreeMap<String, Arc<Function>>,
    /// With IAM enforced: the DynamoDB endpoint the functions are given.
    proxy: Option<crate::served::Served>,
    /// The template's queues, and the SQS endpoint serving them.
    sqs: Option<(Arc<crate::sqs::Queues>, crate::served::Served)>,
    /// The event source mappings' pollers.
    pollers: std::sync::Mutex<Vec<crate::event_source::Pollers>>,
}

impl Dispatcher {
    pub(crate) fn new(wiring: Wiring) -> Result<Dispatcher, WiringError> {
        let functions: BTreeMap<String, Arc<Function>> = wiring
            .functions
            .into_iter()
            .map(|(id, config)| (id, Arc::new(Function::new(config))))
            .collect();
        let find = |route: &str, id: &str| {
            functions
                .get(id)
                .cloned()
                .ok_or_else(|| WiringError::UnknownFunction {
                    route: route.to_string(),
                    function: id.to_string(),
                })
        };
        let mut routes = HashMap::new();
        for (key, route) in &wiring.routes {
            routes.insert(key.clone(), (find(key, &route.function)?, route.two_way));
        }
        let authorizer = match &wiring.authorizer {
            Some(id) => Some(find("$connect authorizer", id)?),
            None => None,
        };
        Ok(Dispatcher {
            routes,
            authorizer,
            functions,
            proxy: None,
            sqs: None,
            pollers: std::sync::Mutex::default(),
        })
    }

    /// The SQS endpoint the functions are given (`AWS_ENDPOINT_URL_SQS`).
    pub(crate) fn sqs_endpoint(&self) -> Option<String> {
        self.sqs.as_ref().map(|(_, running)| running.endpoint())
    }

    /// The template's queue with this logical id.
    pub(crate) fn queue(&self, logical_id: &str) -> Option<Arc<crate::sqs::Queue>> {
        self.sqs
            .as_ref()
            .and_then(|(queues, _)| queues.by_logical_id(logical_id).cloned())
    }

    /// The route that serves `key`: its own, else `$default`, else none (as on AWS).
    fn route(&self, key: &str) -> Option<(&str, &(Arc<Function>, bool))> {
        if let Some(route) = self.routes.get_key_value(key) {
            return Some((route.0.as_str(), route.1));
        }
        if key == "$connect" || key == "$disconnect" {
            return None;
        }
        self.routes
            .get_key_value(DEFAULT_ROUTE)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Whether a frame on `key` gets its function's answer (or API Gateway's error) back.
    pub(crate) fn replies(&self, key: &str) -> bool {
        self.route(key).is_none_or(|(_, (_, two_way))| *two_way)
    }

    /// Whether `$connect` runs the template's authorizer first.
    pub(crate) fn has_authorizer(&self) -> bool {
        self.authorizer.is_some()
    }

    /// Runs the function the template wires to the event's route, answering as API
    /// Gateway does when it fails or no route matches.
    pub(crate) async fn invoke(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let context = &event.request_context;
        let key = context.route_key.as_deref().unwrap_or(DEFAULT_ROUTE);
        let Some((served_by, (function, _))) = self.route(key) else {
            if key == "$connect" || key == "$disconnect" {
                // No integration: API Gateway lets the connection through.
                return status_only(200);
            }
            return gateway_error(403, "Forbidden", event);
        };
        let payload = if served_by == key {
            serde_json::to_vec(event)
        } else {
            let mut event = event.clone();
            event.request_context.route_key = Some(served_by.to_string());
            serde_json::to_vec(&event)
        };
        let payload = match payload {
            Ok(payload) => Bytes::from(payload),
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot encode the event"
                );
                return gateway_error(500, "Internal server error", event);
            }
        };
        match function.invoke(&crate::lambda::request_id(), payload).await {
            Ok(invoked) => {
                match serde_json::from_slice::<ApiGatewayProxyResponse>(&invoked.response) {
                    Ok(response) => response,
                    Err(err) => {
                        tracing::warn!(
                            target: crate::lambda::REPORT_TARGET,
                            "[{}] the function's response is not an API Gateway response: {err}",
                            function.config().function_name
                        );
                        gateway_error(500, "Internal server error", event)
                    }
                }
            }
            Err(err) => {
                tracing::warn!(
                    target: crate::lambda::REPORT_TARGET,
                    "[{}] {} {} failed: {err}",
                    function.config().function_name,
                    key,
                    context.connection_id.as_deref().unwrap_or("?")
                );
                gateway_error(500, "Internal server error", event)
            }
        }
    }

    /// Runs the template's authorizer function: `Ok` with its policy, or the status API
    /// Gateway refuses the handshake with (401 for `Unauthorized`, else 500).
    pub(crate) async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<ApiGatewayCustomAuthorizerResponse<serde_json::Value>, http::StatusCode> {
        let Some(function) = &self.authorizer else {
            return Err(http::StatusCode::INTERNAL_SERVER_ERROR);
        };
        let payload =
            serde_json::to_vec(request).map_err(|_| http::StatusCode::INTERNAL_SERVER_ERROR)?;
        match function
            .invoke(&crate::lambda::request_id(), Bytes::from(payload))
            .await
        {
            Ok(invoked) => serde_json::from_slice(&invoked.response).map_err(|err| {
                tracing::warn!(
                    target: crate::lambda::REPORT_TARGET,
                    "[{}] the authorizer's response is not a policy: {err}",
                    function.config().function_name
                );
                http::StatusCode::INTERNAL_SERVER_ERROR
            }),
            Err(InvokeError::Function { error_message, .. }) if error_message == "Unauthorized" => {
                Err(http::StatusCode::UNAUTHORIZED)
            }
            Err(err) => {
                tracing::warn!(
                    target: crate::lambda::REPORT_TARGET,
                    "[{}] authorizer failed: {err}",
                    function.config().function_name
                );
                Err(http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// Stops the event sources' polling and ends every idle instance.
    pub(crate) fn stop(&self) {
        for mut pollers in std::mem::take(
            &mut *self
                .pollers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ) {
            pollers.stop();
        }
        for function in self.functions.values() {
            function.stop();
        }
    }
}

fn status_only(status: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response
}

/// API Gateway's own answer when the integration fails (or no route matches): its
/// message, with the connection and request ids.
fn gateway_error(
    status: i64,
    message: &str,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let body = serde_json::json!({
        "message": message,
        "connectionId": context.connection_id,
        "requestId": context.request_id,
    });
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = Some(aws_lambda_events::encodings::Body::Text(body.to_string()));
    response
}

/// What `--template` asks for.
#[derive(Debug, Clone)]
pub struct TemplateOptions {
    /// `templates/root.yml` (with its nested stacks) or one stack's template.
    pub path: PathBuf,
    /// `--parameter-overrides`, as `Key=Value` pairs.
    pub parameter_overrides: Vec<(String, String)>,
    /// Instances per function at most (`--max-instances`).
    pub max_instances: usize,
    /// Whether functions reach DynamoDB and `@connections` only as their roles allow.
    pub enforce_iam: bool,
    /// Where the binaries are: `DIR/<binary>/bootstrap` as `cargo lambda build` lays
    /// them out, or `DIR/<binary>` (a Cargo target directory).
    pub functions_dir: PathBuf,
    /// The stack name it is deployed as: physical names (tables, functions) derive from
    /// it, so two gateways with different ones share a DynamoDB without meeting.
    pub stack_name: String,
    /// `--queue-visibility-timeout`: every queue's `VisibilityTimeout` is this instead
    /// of the template's, so a failed job comes back (and reaches the dead-letter queue)
    /// in seconds rather than the template's minutes. `None` keeps the template's.
    pub queue_visibility_timeout: Option<Duration>,
}

impl TemplateOptions {
    /// `path` with no overrides, the default limits, IAM enforced, binaries in
    /// `functions_dir`, deployed as stack [`LOCAL_STACK_NAME`].
    pub fn new(path: impl Into<PathBuf>, functions_dir: impl Into<PathBuf>) -> TemplateOptions {
        TemplateOptions {
            path: path.into(),
            parameter_overrides: Vec::new(),
            max_instances: usize::from(crate::lambda::DEFAULT_MAX_INSTANCES),
            enforce_iam: true,
            functions_dir: functions_dir.into(),
            stack_name: LOCAL_STACK_NAME.to_string(),
            queue_visibility_timeout: None,
        }
    }
}

/// The stack name the template is deployed as locally.
pub const LOCAL_STACK_NAME: &str = "webchat";

/// The binary `binary` under `functions_dir`.
pub fn executable(functions_dir: &Path, binary: &str) -> Option<PathBuf> {
    [
        functions_dir.join(binary).join("bootstrap"),
        functions_dir.join(binary),
    ]
    .into_iter()
    .find(|path| path.is_file())
    // The instance runs in its task root, so a relative path would not resolve there.
    .and_then(|path| std::fs::canonicalize(path).ok())
}

/// The template resolved against this gateway: its wiring, the stage and API id it
/// deploys, and its tables.
pub(crate) struct Prepared {
    pub dispatcher: Dispatcher,
    pub api_id: String,
    pub stage: String,
    pub tables: Option<webchat_backend::TableNames>,
    /// With IAM enforced: who may call `@connections`, and what.
    pub management_iam: Option<Arc<crate::iam::Identities>>,
}

/// Why `--template` could not start.
#[derive(Debug, thiserror::Error)]
pub enum TemplateModeError {
    /// The template does not resolve.
    #[error(transparent)]
    Template(#[from] webchat_templates::TemplateError),
    /// It resolves to something this gateway cannot run.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The DynamoDB proxy could not listen.
    #[error("cannot start the DynamoDB proxy the functions call through: {0}")]
    Proxy(#[source] std::io::Error),
    /// The SQS endpoint could not listen.
    #[error("cannot start the SQS endpoint the functions call: {0}")]
    Sqs(#[source] std::io::Error),
    /// An event source mapping cannot run: as `CreateEventSourceMapping` (and the
    /// deploy) would fail.
    #[error("event source {mapping}: {problem}")]
    EventSource {
        /// The mapping's logical id.
        mapping: String,
        /// What is wrong.
        problem: String,
    },
    /// Template mode keeps everything in DynamoDB.
    #[error("--template needs --dynamodb-endpoint (the functions keep their state in DynamoDB; `cargo xtask dev --template` starts dynalite)")]
    NoDynamoDb,
    /// The template's tables could not be created.
    #[error("cannot create the template's tables on {endpoint}")]
    Tables {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where the template's functions meet this gateway.
pub(crate) struct LocalEndpoints<'a> {
    /// `http://127.0.0.1:PORT`: this gateway.
    pub gateway: String,
    /// DynamoDB (dynalite) for the functions.
    pub dynamodb: &'a str,
    /// The region.
    pub region: &'a str,
    /// The key functions sign with while IAM is not enforced.
    pub credentials: crate::sigv4::AccessKey,
    /// With `--auth dev`: the issuer and the audience its tokens carry.
    pub dev_issuer: Option<(String, String)>,
}

/// Resolves the template, creates its tables and readies its functions.
pub(crate) async fn prepare(
    options: &TemplateOptions,
    endpoints: &LocalEndpoints<'_>,
) -> Result<Prepared, TemplateModeError> {
    let local = webchat_templates::deployment::LocalValues {
        region: endpoints.region.to_string(),
        stack_name: options.stack_name.clone(),
        ..webchat_templates::deployment::LocalValues::default()
    };
    let mut overrides = options.parameter_overrides.clone();
    if let Some((issuer, audience)) = &endpoints.dev_issuer {
        // `--auth dev`: the template's own OIDC authorizer, trusting the development issuer.
        for (key, value) in [("Auth", "oidc"), ("Issuer", issuer), ("Audience", audience)] {
            if !overrides.iter().any(|(k, _)| k == key) {
                overrides.push((key.to_string(), value.to_string()));
            }
        }
    }
    let deployment = webchat_templates::deployment::resolve(&options.path, &overrides, &local)?;
    let api = &deployment.api;
    if api.route_selection_expression != ROUTE_SELECTION_EXPRESSION {
        return Err(WiringError::RouteSelection(api.route_selection_expression.clone()).into());
    }

    let client = webchat_backend::local_client(endpoints.dynamodb);
    crate::template_tables::create_tables(&client, &deployment.tables)
        .await
        .map_err(|source| TemplateModeError::Tables {
            endpoint: endpoints.dynamodb.to_string(),
            source: Box::new(source),
        })?;
    let identities = Arc::new(crate::iam::Identities::from_deployment(&deployment, &local));
    // With IAM enforced, the functions reach DynamoDB through the checking proxy, each
    // with its own key; without, straight, all with the gateway's key.
    let proxy = if options.enforce_iam {
        let proxy = crate::iam::dynamodb::DynamoProxy::new(identities.clone(), endpoints.dynamodb)
            .start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(TemplateModeError::Proxy)?;
        Some(proxy)
    } else {
        None
    };
    let dynamodb_for_functions = proxy.as_ref().map_or_else(
        || endpoints.dynamodb.to_string(),
        crate::served::Served::endpoint,
    );
    let queues = Arc::new(crate::sqs::Queues::new(
        &deployment.queues,
        &local.region,
        &local.account_id,
        options.queue_visibility_timeout,
    ));
    if let Some(timeout) = options.queue_visibility_timeout {
        for queue in &deployment.queues {
            tracing::info!(
                target: "webchat_local::sqs",
                "queue {}: VisibilityTimeout {} s (--queue-visibility-timeout), where the template says {} s",
                queue.logical_id,
                timeout.as_secs(),
                queue.visibility_timeout_seconds
            );
        }
    }
    let sqs = crate::sqs::endpoint::SqsEndpoint::new(
        queues.clone(),
        options.enforce_iam.then(|| identities.clone()),
        endpoints.credentials.clone(),
    )
    .start(SocketAddr::from(([127, 0, 0, 1], 0)))
    .await
    .map_err(TemplateModeError::Sqs)?;
    let deployed_management = api.management_endpoint(&local);
    let local_management = format!("{}/{}", endpoints.gateway, api.stage);
    let mut wiring = Wiring::default();
    for (id, spec) in &deployment.functions {
        let executable = executable(&options.functions_dir, &spec.binary).ok_or_else(|| {
            WiringError::MissingBinary {
                function: id.clone(),
                path: options
                    .functions_dir
                    .join(&spec.binary)
                    .join("bootstrap")
                    .display()
                    .to_string(),
            }
        })?;
        let mut environment: BTreeMap<String, String> = spec
            .environment
            .iter()
            .map(|(key, value)| {
                // The deployed API's URL is this gateway here.
                (
                    key.clone(),
                    value.replace(&deployed_management, &local_management),
                )
            })
            .collect();
        // A template that sets it itself means it (and tests use that to stall one).
        environment
            .entry("AWS_ENDPOINT_URL_DYNAMODB".to_string())
            .or_insert_with(|| dynamodb_for_functions.clone());
        environment
            .entry("AWS_ENDPOINT_URL_SQS".to_string())
            .or_insert_with(|| sqs.endpoint());
        let credentials = match identities.for_function(id) {
            Some(identity) if options.enforce_iam => identity.key.clone(),
            _ => endpoints.credentials.clone(),
        };
        environment.insert("AWS_ACCESS_KEY_ID".to_string(), credentials.access_key_id);
        environment.insert(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            credentials.secret_access_key,
        );
        if let Some(token) = credentials.session_token {
            environment.insert("AWS_SESSION_TOKEN".to_string(), token);
        }
        wiring.functions.insert(
            id.clone(),
            FunctionConfig {
                function_name: spec.function_name.clone(),
                executable,
                environment,
                timeout: Duration::from_secs(spec.timeout_seconds),
                memory_mb: spec.memory_mb,
                handler: spec.handler.clone(),
                region: local.region.clone(),
                account_id: local.account_id.clone(),
                max_instances: options.max_instances,
            },
        );
    }
    for route in &api.routes {
        wiring.routes.insert(
            route.key.clone(),
            WiredRoute {
                function: route.function.clone(),
                two_way: route.two_way,
            },
        );
    }
    wiring.authorizer = api.authorizer.as_ref().map(|a| a.function.clone());
    let tables = table_names(&wiring);
    let mut dispatcher = Dispatcher::new(wiring)?;
    dispatcher.proxy = proxy;
    let mut pollers = Vec::new();
    for source in deployment.event_sources.iter().filter(|s| s.enabled) {
        let refuse = |problem: String| TemplateModeError::EventSource {
            mapping: source.logical_id.clone(),
            problem,
        };
        let function = dispatcher.functions.get(&source.function).ok_or_else(|| {
            refuse(format!(
                "function {} is not one of the template's",
                source.function
            ))
        })?;
        let queue = queues.by_logical_id(&source.queue).ok_or_else(|| {
            refuse(format!(
                "queue {} is not one of the template's",
                source.queue
            ))
        })?;
        if options.enforce_iam {
            // Lambda polls with the function's role: without these the mapping is refused.
            if let Some(identity) = identities.for_function(&source.function) {
                for action in crate::event_source::POLLING_ACTIONS {
                    if let Some(denial) = crate::iam::Denial::check(identity, action, &queue.arn) {
                        return Err(refuse(format!(
                            "the function's execution role does not have permissions to call {} on SQS ({})",
                            action.trim_start_matches("sqs:"),
                            denial.message()
                        )));
                    }
                }
            }
        }
        pollers.push(crate::event_source::start(source, &queues, queue, function));
    }
    dispatcher.pollers = std::sync::Mutex::new(pollers);
    dispatcher.sqs = Some((queues, sqs));
    Ok(Prepared {
        dispatcher,
        api_id: api.api_id.clone(),
        stage: api.stage.clone(),
        tables,
        management_iam: options.enforce_iam.then_some(identities),
    })
}

/// The tables the `$connect` function is configured with, when it names all four: the
/// gateway removes the connections it still holds from them when it stops. (A function
/// missing one fails its own cold start, which is the error to show.)
fn table_names(wiring: &Wiring) -> Option<webchat_backend::TableNames> {
    let connect = wiring
        .routes
        .get("$connect")
        .and_then(|route| wiring.functions.get(&route.function))?;
    let var = |name: &str| connect.environment.get(name).cloned();
    Some(webchat_backend::TableNames {
        connections: var("CONNECTIONS_TABLE")?,
        names: var("NAMES_TABLE")?,
        members: var("MEMBERS_TABLE")?,
        messages: var("MESSAGES_TABLE")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{Dispatcher, WiredRoute, Wiring, WiringError};
    use crate::lambda::FunctionConfig;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// A function that is never started here.
    fn function(name: &str) -> FunctionConfig {
        FunctionConfig {
            function_name: name.to_string(),
            executable: "/nonexistent/bootstrap".into(),
            environment: BTreeMap::new(),
            timeout: Duration::from_secs(3),
            memory_mb: 128,
            handler: "bootstrap".to_string(),
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            max_instances: 1,
        }
    }

    fn wiring(routes: &[(&str, &str, bool)]) -> Wiring {
        let mut wiring = Wiring::default();
        for (key, id, two_way) in routes {
            wiring.functions.insert((*id).to_string(), function(id));
            wiring.routes.insert(
                (*key).to_string(),
                WiredRoute {
                    function: (*id).to_string(),
                    two_way: *two_way,
                },
            );
        }
        wiring
    }

    fn event(route_key: &str) -> aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest {
        let mut event = aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest::default();
        event.request_context.route_key = Some(route_key.to_string());
        event.request_context.connection_id = Some("L0SM9cOFvHcCIhw=".to_string());
        event.request_context.request_id = Some("abcdefg=".to_string());
        event
    }

    #[test]
    fn a_route_the_template_lacks_goes_to_default_and_replies_as_default_does() {
        let dispatcher = Dispatcher::new(wiring(&[
            ("$connect", "Connect", false),
            ("ping", "Ping", true),
            ("$default", "Default", true),
            ("leave", "Leave", false),
        ]))
        .unwrap();
        assert_eq!(dispatcher.route("history").map(|r| r.0), Some("$default"));
        assert_eq!(dispatcher.route("ping").map(|r| r.0), Some("ping"));
        assert!(dispatcher.route("$disconnect").is_none());
        assert!(dispatcher.replies("ping"));
        assert!(!dispatcher.replies("leave"));
        assert!(dispatcher.replies("history"));
    }

    #[tokio::test]
    async fn with_no_route_and_no_default_the_client_gets_api_gateways_forbidden() {
        let dispatcher = Dispatcher::new(wiring(&[("$connect", "Connect", false)])).unwrap();
        let response = dispatcher.invoke(&event("history")).await;
        assert_eq!(response.status_code, 403);
        let Some(aws_lambda_events::encodings::Body::Text(body)) = response.body else {
            panic!("a text body");
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"message": "Forbidden", "connectionId": "L0SM9cOFvHcCIhw=", "requestId": "abcdefg="})
        );
        // No `$disconnect` route: nothing runs, nothing fails.
        assert_eq!(
            dispatcher.invoke(&event("$disconnect")).await.status_code,
            200
        );
    }

    #[tokio::test]
    async fn a_function_that_cannot_start_answers_internal_server_error() {
        let dispatcher = Dispatcher::new(wiring(&[("ping", "Ping", true)])).unwrap();
        let response = dispatcher.invoke(&event("ping")).await;
        assert_eq!(response.status_code, 500);
        let Some(aws_lambda_events::encodings::Body::Text(body)) = response.body else {
            panic!("a text body");
        };
        assert!(
            body.contains(r#""message":"Internal server error""#),
            "{body}"
        );
    }

    #[test]
    fn a_route_to_a_function_the_template_lacks_is_refused_naming_both() {
        let mut wiring = wiring(&[("ping", "Ping", true)]);
        wiring.routes.insert(
            "list".to_string(),
            WiredRoute {
                function: "ListFunction".to_string(),
                two_way: true,
            },
        );
        let Err(err) = Dispatcher::new(wiring) else {
            panic!("refused");
        };
        assert!(matches!(err, WiringError::UnknownFunction { .. }));
        assert!(err
            .to_string()
            .contains("route list is wired to function ListFunction"));
    }
}
