//! What each route's function really calls, recorded: the chat core is driven through every
//! route, along every path it has, over a `DynamoStore` on dynalite whose SDK client records
//! each operation and table it sends, and a gateway that records each management API call.
//! The grant checks compare the template against this record, both ways.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::{json, Value};
use webchat_backend::dynamo::local_client;
use webchat_backend::{ConnectionGateway, DynamoStore, PostError, RecordingGateway, TableNames};
use webchat_shared_types::Route;
use webchat_testkit::Dynalite;

/// One permission a call needs: the IAM action, and what it acts on: a table's logical id in
/// `templates/dynamodb.yml` (the recording names its tables so), or the HTTP method of a
/// management API call on `@connections`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub action: String,
    pub on: String,
}

impl Call {
    pub fn new(action: &str, on: &str) -> Call {
        Call {
            action: action.to_string(),
            on: on.to_string(),
        }
    }
}

/// The calls of each route.
pub type Record = BTreeMap<Route, BTreeSet<Call>>;

/// The record, made once per test binary (dynalite runs only while it is made).
pub fn recorded() -> &'static Record {
    static RECORD: OnceLock<Record> = OnceLock::new();
    RECORD.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(record())
    })
}

/// The one call into the chat core: API Gateway's event for `route` in, the reply out.
async fn invoke(
    store: &DynamoStore,
    gateway: &Management,
    route: Route,
    connection_id: &str,
    body: Option<&str>,
) -> Option<Value> {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some(route.key().to_string());
    event.request_context.connection_id = Some(connection_id.to_string());
    event.body = body.map(str::to_string);
    let response =
        webchat_backend::handle(store, gateway, &webchat_backend::Limits::DEFAULT, &event).await;
    assert_eq!(response.status_code, 200, "{route} for {connection_id}");
    match response.body {
        Some(Body::Text(text)) => Some(serde_json::from_str(&text).expect("replies are JSON")),
        _ => None,
    }
}

/// Records, per operation the SDK sends, `dynamodb:<operation>` on each table it names:
/// DynamoDB's IAM actions are its operation names.
#[derive(Debug, Clone, Default)]
struct DynamoCalls(Arc<Mutex<Vec<Call>>>);

impl Intercept for DynamoCalls {
    fn name(&self) -> &'static str {
        "DynamoCalls"
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .ok_or("no operation metadata")?
            .name();
        let body: Value =
            serde_json::from_slice(context.request().body().bytes().unwrap_or(b"{}"))?;
        // `TableName` on single-table operations, `RequestItems`' keys on batches.
        let tables: Vec<&str> = body["TableName"]
            .as_str()
            .into_iter()
            .chain(
                body["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys().map(String::as_str)),
            )
            .collect();
        if tables.is_empty() {
            return Err(format!(
                "DynamoDB {operation} names no table this recording can attribute"
            )
            .into());
        }
        let action = format!("dynamodb:{operation}");
        let mut calls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        calls.extend(tables.into_iter().map(|table| Call::new(&action, table)));
        Ok(())
    }
}

impl DynamoCalls {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A [`RecordingGateway`] that also records each management API call as the permission it
/// needs: `execute-api:ManageConnections` on `POST` (post) or `DELETE` (delete).
#[derive(Debug, Default)]
struct Management {
    gateway: RecordingGateway,
    calls: Mutex<Vec<Call>>,
}

impl Management {
    fn note(&self, method: &str) {
        let call = Call::new("execute-api:ManageConnections", method);
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
    }

    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ConnectionGateway for Management {
    async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        self.note("POST");
        self.gateway.post(connection_id, data).await
    }

    async fn delete(&self, connection_id: &str) -> Result<(), PostError> {
        self.note("DELETE");
        self.gateway.delete(connection_id).await
    }
}

/// The chat, with what each route called so far.
struct World {
    store: DynamoStore,
    dynamo: DynamoCalls,
    management: Management,
    record: Record,
}

impl World {
    async fn send(
        &mut self,
        route: Route,
        connection_id: &str,
        body: Option<&str>,
    ) -> Option<Value> {
        let reply = invoke(&self.store, &self.management, route, connection_id, body).await;
        let calls = self.dynamo.take().into_iter().chain(self.management.take());
        self.record.entry(route).or_default().extend(calls);
        reply
    }

    /// Sends a text frame on the route API Gateway picks for it.
    async fn frame(&mut self, connection_id: &str, frame: Value) -> Option<Value> {
        let frame = frame.to_string();
        self.send(Route::of_frame(&frame), connection_id, Some(&frame))
            .await
    }

    async fn connect(&mut self, ids: &[&str]) {
        for id in ids {
            assert_eq!(self.send(Route::Connect, id, None).await, None);
        }
    }

    /// Sends a frame; returns the reply's `action`, or `error:<code>`.
    async fn say(&mut self, connection_id: &str, frame: Value) -> String {
        outcome(self.frame(connection_id, frame).await)
    }

    async fn register(&mut self, connection_id: &str, name: &str) -> String {
        let frame = json!({"action": "register", "userName": name, "requestId": "r"});
        self.say(connection_id, frame).await
    }
}

/// A reply's `action`, or `error:<code>`.
fn outcome(reply: Option<Value>) -> String {
    let reply = reply.expect("a reply");
    match reply["action"].as_str() {
        Some("error") => format!("error:{}", reply["code"].as_str().unwrap_or_default()),
        Some(action) => action.to_string(),
        None => panic!("a reply without action: {reply}"),
    }
}

async fn record() -> Record {
    let dynalite = Dynalite::start();
    let dynamo = DynamoCalls::default();
    let config = local_client(&dynalite.endpoint())
        .config()
        .to_builder()
        .interceptor(dynamo.clone())
        .build();
    let tables = TableNames {
        connections: "ConnectionsTable".into(),
        names: "NamesTable".into(),
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), tables);
    store
        .create_tables_if_missing()
        .await
        .expect("tables on dynalite");
    dynamo.take();
    let mut w = World {
        store,
        dynamo,
        management: Management::default(),
        record: Record::new(),
    };

    w.connect(&["A", "B", "C", "D", "E", "F"]).await;
    let broadcast = || json!({"action": "message", "message": "hi", "requestId": "m"});
    let list = || json!({"action": "list"});
    assert_eq!(w.say("A", broadcast()).await, "error:not_registered");
    assert_eq!(w.register("A", "ana").await, "registered");
    assert_eq!(w.register("B", "bia").await, "registered", "told A");
    assert_eq!(w.register("C", "ANA").await, "error:name_taken");
    assert_eq!(w.register("B", "bea").await, "registered", "frees bia");
    assert_eq!(w.register("B", "bea").await, "registered", "no change");
    assert_eq!(w.register("nobody", "zed").await, "error:internal");
    assert_eq!(w.say("A", list()).await, "list");
    assert_eq!(
        w.say("A", json!({"action": "ping", "requestId": "p"}))
            .await,
        "pong"
    );
    assert_eq!(w.say("A", broadcast()).await, "sent");
    let receivers = json!([{"connectionId": "B"}, {"connectionId": "gone"}, {"connectionId": "A"}]);
    let private =
        json!({"action": "message", "message": "hi", "receivers": receivers, "requestId": "m"});
    assert_eq!(w.say("A", private).await, "sent");

    // A push that finds its receiver gone (410) removes it and announces its exit, on each
    // route that pushes.
    assert_eq!(w.register("C", "cid").await, "registered");
    w.management.gateway.mark_gone("C");
    let sent = w.frame("A", broadcast()).await.expect("a reply");
    assert_eq!(sent["delivered"], 1, "B got it, C is gone: {sent}");
    assert_eq!(w.register("D", "dan").await, "registered");
    w.management.gateway.mark_gone("D");
    assert_eq!(w.register("E", "eve").await, "registered", "finds D gone");
    w.management.gateway.mark_gone("E");
    assert_eq!(
        w.send(Route::Disconnect, "B", None).await,
        None,
        "finds E gone"
    );
    let users = w.frame("A", list()).await.expect("a list")["users"].take();
    assert_eq!(users, json!([]), "B left; C, D and E were removed");

    assert_eq!(
        w.send(Route::Disconnect, "F", None).await,
        None,
        "unregistered"
    );
    assert_eq!(
        w.send(Route::Disconnect, "never-connected", None).await,
        None
    );
    assert_eq!(
        w.say("A", json!({"action": "nope"})).await,
        "error:unknown_action"
    );
    let not_json = w.send(Route::Default, "A", Some("not json")).await;
    assert_eq!(outcome(not_json), "error:bad_json");

    for route in Route::ALL {
        assert!(
            w.record.contains_key(&route),
            "the recording never drove {route}"
        );
    }
    w.record
}
