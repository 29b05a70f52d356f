//! What each route's function really calls, recorded: the chat core is driven through every
//! route, along every path it has, over a `DynamoStore` on dynalite whose SDK client records
//! each operation and table it sends, and a gateway that records each management API call.
//! The grant checks compare the template against this record, both ways.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::{json, Value};
use webchat_backend::local_client;
use webchat_backend::{
    ConnectionGateway, DynamoStore, Fanout, FanoutJob, FanoutQueue, PostError, QueueError,
    RecordingGateway, TableNames,
};
use webchat_shared_types::Route;
use webchat_testkit::Dynalite;

/// One permission a call needs: the IAM action, and what it acts on: a table's logical id in
/// `templates/dynamodb.yml` (the recording names its tables so), or the HTTP method of a
/// management API call on `@connections`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Call {
    pub action: String,
    pub on: String,
}

impl Call {
    pub(crate) fn new(action: &str, on: &str) -> Call {
        Call {
            action: action.to_string(),
            on: on.to_string(),
        }
    }
}

/// The calls of each route.
pub(crate) type Record = BTreeMap<Route, BTreeSet<Call>>;

/// The record, made once per test binary (dynalite runs only while it is made).
pub(crate) fn recorded() -> &'static Record {
    static RECORD: OnceLock<Record> = OnceLock::new();
    RECORD.get_or_init(|| {
        // The handlers' futures, unoptimized, nest deeper than a test thread's 2 MB stack
        // holds; the recording runs on a thread of its own with room to spare.
        std::thread::Builder::new()
            .name("recording".into())
            .stack_size(64 << 20)
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on(Box::pin(record()))
            })
            .expect("a thread for the recording")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The one call into the chat core: API Gateway's event for `route` in, the reply out;
/// from a connection signed in as `person` (`sub`, `userName`) when there is one.
#[allow(clippy::too_many_arguments)]
async fn invoke(
    store: &DynamoStore,
    gateway: &Management,
    limits: &webchat_backend::Limits,
    fanout: Fanout<'_>,
    route: Route,
    connection_id: &str,
    body: Option<&str>,
    person: Option<(&str, &str)>,
) -> Option<Value> {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.route_key = Some(route.key().to_string());
    event.request_context.connection_id = Some(connection_id.to_string());
    event.body = body.map(str::to_string);
    if let Some((sub, user_name)) = person {
        // The authorizer's context, as API Gateway hands it to every route.
        let fields = &mut event.request_context.authorizer.fields;
        fields.insert("principalId".into(), json!(sub));
        fields.insert("sub".into(), json!(sub));
        fields.insert("userName".into(), json!(user_name));
    }
    let response =
        webchat_backend::handle_with_fanout(store, gateway, limits, Some(fanout), &event).await;
    assert_eq!(response.status_code, 200, "{route} for {connection_id}");
    match response.body {
        Some(Body::Text(text)) => Some(serde_json::from_str(&text).expect("replies are JSON")),
        _ => None,
    }
}

/// Calls noted as they happen, taken out after each route.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn note(&self, calls: impl IntoIterator<Item = Call>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(calls);
    }

    fn take(&self) -> Vec<Call> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Records, per operation the SDK sends, `dynamodb:<operation>` on each table it names:
/// DynamoDB's IAM actions are its operation names. Transactions are the exception: IAM
/// authorizes each of their items as the single-item action it is (`Put` as `PutItem`,
/// `ConditionCheck` as `ConditionCheckItem`, `Get` as `GetItem`, ...) on its own table.
#[derive(Debug, Clone, Default)]
struct DynamoCalls(Calls);

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
        self.0.note(calls_of(operation, &body)?);
        Ok(())
    }
}

/// The IAM actions one DynamoDB request needs, on the tables it names.
fn calls_of(operation: &str, body: &Value) -> Result<Vec<Call>, BoxError> {
    let mut calls = Vec::new();
    if let Some(items) = body["TransactItems"].as_array() {
        // TransactWriteItems and TransactGetItems: one action per item, on its table.
        for item in items {
            let (kind, request) = item
                .as_object()
                .and_then(|o| o.iter().next())
                .ok_or_else(|| format!("DynamoDB {operation}: an empty transaction item"))?;
            let action = match kind.as_str() {
                "Put" => "PutItem",
                "Update" => "UpdateItem",
                "Delete" => "DeleteItem",
                "ConditionCheck" => "ConditionCheckItem",
                "Get" => "GetItem",
                other => return Err(format!("DynamoDB {operation}: item kind {other}").into()),
            };
            let table = request["TableName"]
                .as_str()
                .ok_or_else(|| format!("DynamoDB {operation}: a {kind} without TableName"))?;
            calls.push(Call::new(&format!("dynamodb:{action}"), table));
        }
    } else {
        // `TableName` on single-table operations, `RequestItems`' keys on batches.
        let action = format!("dynamodb:{operation}");
        let tables = body["TableName"].as_str().into_iter().chain(
            body["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys().map(String::as_str)),
        );
        calls.extend(tables.map(|table| Call::new(&action, table)));
    }
    if calls.is_empty() {
        return Err(
            format!("DynamoDB {operation} names no table this recording can attribute").into(),
        );
    }
    Ok(calls)
}

/// A [`RecordingGateway`] that also records each management API call as the permission it
/// needs: `execute-api:ManageConnections` on `POST` (post), `GET` (`is_open`) or `DELETE`
/// (delete).
#[derive(Debug, Default)]
struct Management {
    gateway: RecordingGateway,
    calls: Calls,
}

impl Management {
    fn note(&self, method: &str) {
        self.calls
            .note([Call::new("execute-api:ManageConnections", method)]);
    }
}

/// The fan-out queue as the message function reaches it: each `SendMessageBatch` needs
/// `sqs:SendMessage` on the queue (`FanoutQueue` in templates/websocket.yml). The jobs
/// are kept, not run.
#[derive(Debug, Default)]
struct Queue {
    calls: Calls,
}

impl FanoutQueue for Queue {
    fn enqueue(
        &self,
        jobs: Vec<FanoutJob>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Vec<(FanoutJob, QueueError)>> + Send + '_>> {
        if !jobs.is_empty() {
            self.calls
                .note([Call::new("sqs:SendMessage", "FanoutQueue")]);
        }
        Box::pin(std::future::ready(Vec::new()))
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

    async fn is_open(&self, connection_id: &str) -> Result<bool, PostError> {
        self.note("GET");
        self.gateway.is_open(connection_id).await
    }
}

/// The chat, with what each route called so far.
struct World {
    store: DynamoStore,
    dynamo: DynamoCalls,
    management: Management,
    queue: Queue,
    /// Rooms with more members than this go to the fan-out queue.
    fanout_inline: usize,
    /// Rooms with more members than this hear counts, not each arrival.
    presence_limit: u32,
    record: Record,
    /// Connections signed in, and as whom (`sub`, `userName`).
    people: BTreeMap<String, (String, String)>,
}

impl World {
    async fn send(
        &mut self,
        route: Route,
        connection_id: &str,
        body: Option<&str>,
    ) -> Option<Value> {
        let person = self
            .people
            .get(connection_id)
            .map(|(sub, name)| (sub.as_str(), name.as_str()));
        let fanout = Fanout::new(&self.queue, self.fanout_inline);
        let limits = webchat_backend::Limits {
            presence_limit: self.presence_limit,
            ..webchat_backend::Limits::DEFAULT
        };
        let reply = invoke(
            &self.store,
            &self.management,
            &limits,
            fanout,
            route,
            connection_id,
            body,
            person,
        )
        .await;
        let calls = self
            .dynamo
            .0
            .take()
            .into_iter()
            .chain(self.management.calls.take())
            .chain(self.queue.calls.take());
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

    /// Registers with a resume token.
    async fn resume(&mut self, connection_id: &str, name: &str, token: &str) -> String {
        let frame =
            json!({"action": "register", "userName": name, "resumeToken": token, "requestId": "r"});
        self.say(connection_id, frame).await
    }

    /// Registers; returns the resume token of the `registered` reply.
    async fn token(&mut self, connection_id: &str, name: &str) -> String {
        let frame = json!({"action": "register", "userName": name, "requestId": "r"});
        let reply = self.frame(connection_id, frame).await.expect("a reply");
        assert_eq!(reply["action"], "registered", "{name}: {reply}");
        reply["resumeToken"]
            .as_str()
            .expect("a resume token")
            .to_string()
    }

    async fn join(&mut self, connection_id: &str, room: &str) -> String {
        let frame = json!({"action": "join", "room": room});
        self.say(connection_id, frame).await
    }

    async fn leave(&mut self, connection_id: &str, room: &str) -> String {
        let frame = json!({"action": "leave", "room": room});
        self.say(connection_id, frame).await
    }

    /// A `history` reply: (message ids, oldest first; more).
    async fn history(&mut self, connection_id: &str, frame: Value) -> (Vec<String>, bool) {
        let reply = self.frame(connection_id, frame).await.expect("a reply");
        assert_eq!(reply["action"], "history", "{reply}");
        let ids = reply["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["messageId"].as_str().expect("a messageId").to_string())
            .collect();
        (ids, reply["more"].as_bool().expect("more"))
    }

    /// The names of the other members of `room` that `connection_id` (a member) sees, as
    /// `list` sorts them.
    async fn others(&mut self, connection_id: &str, room: &str) -> Vec<String> {
        let reply = self
            .frame(connection_id, json!({"action": "list", "room": room}))
            .await
            .expect("a list");
        reply["users"]
            .as_array()
            .unwrap_or_else(|| panic!("a list: {reply}"))
            .iter()
            .map(|u| u["userName"].as_str().unwrap_or_default().to_string())
            .collect()
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
        members: "MembersTable".into(),
        messages: "MessagesTable".into(),
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), tables);
    store
        .create_tables_if_missing()
        .await
        .expect("tables on dynalite");
    dynamo.0.take();
    let mut w = World {
        store,
        dynamo,
        management: Management::default(),
        queue: Queue::default(),
        fanout_inline: webchat_backend::delivery::DEFAULT_FANOUT_INLINE,
        presence_limit: webchat_backend::Limits::DEFAULT.presence_limit,
        record: Record::new(),
        people: BTreeMap::new(),
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
    // A room above the fan-out threshold: the message goes to the queue, one job a shard.
    w.fanout_inline = 1;
    assert_eq!(w.say("A", broadcast()).await, "sent");
    w.fanout_inline = webchat_backend::delivery::DEFAULT_FANOUT_INLINE;
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

    rooms(&mut w).await;
    people(&mut w).await;
    big_rooms(&mut w).await;

    for route in Route::ALL {
        assert!(
            w.record.contains_key(&route),
            "the recording never drove {route}"
        );
    }
    w.record
}

/// Big rooms: above the presence limit a room hears its member count (claimed on its
/// count row, at most every few seconds), and above the fan-out threshold that push is
/// queued for the fan-out function like a message, so every route that changes a room's
/// members needs the queue.
async fn big_rooms(w: &mut World) {
    w.connect(&["S1", "S2", "S3", "S4", "S5"]).await;
    for (id, name) in [("S1", "sal"), ("S2", "sam"), ("S3", "sia"), ("S4", "sol")] {
        assert_eq!(w.register(id, name).await, "registered");
    }
    for (id, room) in [
        ("S1", "big"),
        ("S2", "big"),
        ("S3", "big"),
        ("S1", "big2"),
        ("S2", "big2"),
        ("S3", "big2"),
        ("S1", "big3"),
        ("S4", "big3"),
    ] {
        assert_eq!(w.join(id, room).await, "joined");
    }
    // Every room above both limits from here on. A count push first claims the room's
    // count row, once every few seconds at most: each step is in a room not yet claimed.
    w.fanout_inline = 1;
    w.presence_limit = 1;
    assert_eq!(
        w.register("S5", "sue").await,
        "registered",
        "the lobby's count"
    );
    assert_eq!(w.join("S3", "big3").await, "joined", "big3's count");
    assert_eq!(w.leave("S1", "big2").await, "left", "big2's count");
    assert_eq!(
        w.send(Route::Disconnect, "S2", None).await,
        None,
        "big's count"
    );
    w.fanout_inline = webchat_backend::delivery::DEFAULT_FANOUT_INLINE;
    w.presence_limit = webchat_backend::Limits::DEFAULT.presence_limit;
}

/// The v2 routes and paths: rooms, room messages and private ones, each page kind of
/// history, resume tokens taking a name over, ghosts found through `GET @connections`,
/// and connections in several rooms going away.
async fn rooms(w: &mut World) {
    let in_room =
        |room: &str| json!({"action": "message", "message": "hi", "room": room, "requestId": "m"});
    w.connect(&["G", "H", "I", "J", "K", "L", "M", "N"]).await;

    // Everything but list needs a registered connection.
    assert_eq!(w.join("G", "rust").await, "error:not_registered");
    assert_eq!(w.leave("G", "rust").await, "error:not_registered");
    let newest = |room: &str| json!({"action": "history", "room": room, "limit": 2});
    assert_eq!(w.say("G", newest("rust")).await, "error:not_registered");
    assert_eq!(w.register("G", "gus").await, "registered");
    assert_eq!(w.register("H", "hal").await, "registered");

    // join: a new room, one with members (who hear newUser), one already joined.
    assert_eq!(w.join("G", "rust").await, "joined");
    assert_eq!(w.join("H", "rust").await, "joined", "told G");
    assert_eq!(w.join("G", "rust").await, "joined", "no change");
    assert_eq!(w.others("G", "rust").await, ["hal"]);
    assert_eq!(
        w.say("G", json!({"action": "list", "room": "go"})).await,
        "error:not_a_member"
    );
    // Up to the room limit (the lobby and rust are two of them), and one more.
    for i in 3..=webchat_shared_types::MAX_ROOMS_PER_CONNECTION {
        assert_eq!(w.join("G", &format!("r{i}")).await, "joined");
    }
    assert_eq!(w.join("G", "one-too-many").await, "error:limit_reached");

    // leave: a member (the others hear userExit), no longer a member, the lobby.
    assert_eq!(w.leave("H", "rust").await, "left", "told G");
    assert_eq!(w.leave("H", "rust").await, "error:not_a_member");
    assert_eq!(w.leave("H", "lobby").await, "error:invalid_field");
    assert_eq!(w.join("H", "rust").await, "joined");

    // A rename reaches every room the connection is in.
    assert_eq!(w.register("H", "hank").await, "registered");
    assert_eq!(w.others("G", "rust").await, ["hank"]);

    // message: to a room (stored), private within a room (not stored), to a room the
    // sender is not in.
    for _ in 0..3 {
        assert_eq!(w.say("G", in_room("rust")).await, "sent");
    }
    let private = json!({"action": "message", "message": "psst", "room": "rust",
        "receivers": [{"connectionId": "H"}, {"connectionId": "A"}], "requestId": "m"});
    let sent = w.frame("G", private).await.expect("a reply");
    assert_eq!(sent["delivered"], 1, "H is in rust, A is not: {sent}");
    assert_eq!(w.say("H", in_room("go")).await, "error:not_a_member");

    // history: the newest page, the page before it, a page after a message; a room the
    // connection is not in; the lobby by default.
    let (page, more) = w.history("G", newest("rust")).await;
    assert_eq!((page.len(), more), (2, true), "three stored, private not");
    let before = json!({"action": "history", "room": "rust", "before": page[0], "limit": 2});
    let (older, more) = w.history("H", before).await;
    assert_eq!((older.len(), more), (1, false));
    let after = json!({"action": "history", "room": "rust", "after": older[0], "limit": 1});
    let (newer, more) = w.history("G", after).await;
    assert_eq!((newer, more), (vec![page[0].clone()], true));
    assert_eq!(w.say("A", newest("rust")).await, "error:not_a_member");
    let lobby = w.history("A", json!({"action": "history"})).await;
    assert!(
        !lobby.0.is_empty(),
        "A's broadcasts are in the lobby's history"
    );

    // A push to a member found gone on join and on leave removes it from every room.
    assert_eq!(w.register("N", "nia").await, "registered");
    assert_eq!(w.join("N", "rust").await, "joined");
    w.management.gateway.mark_gone("N");
    assert_eq!(w.join("A", "rust").await, "joined", "finds N gone");
    assert_eq!(w.others("A", "rust").await, ["gus", "hank"]);
    assert_eq!(w.register("K", "kai").await, "registered");
    assert_eq!(w.join("K", "rust").await, "joined");
    w.management.gateway.mark_gone("K");
    assert_eq!(w.leave("A", "rust").await, "left", "finds K gone");
    assert_eq!(w.others("G", "rust").await, ["hank"]);

    // A resume token takes the name, and its rooms, over from an open connection, which
    // is closed; that token is then used up, and the name's holder is open.
    let token = w.token("I", "ivy").await;
    assert_eq!(w.join("I", "rust").await, "joined");
    assert_eq!(w.resume("J", "IVY", &token).await, "registered");
    assert!(w.management.gateway.deleted().contains(&"I".to_string()));
    assert_eq!(w.others("G", "rust").await, ["hank", "IVY"]);
    assert_eq!(
        w.resume("M", "ivy", &token).await,
        "error:name_taken",
        "used up, and J is open"
    );
    assert_eq!(
        w.send(Route::Disconnect, "I", None).await,
        None,
        "nothing left"
    );

    // A name held by a connection API Gateway reports gone is freed for a new claim.
    assert_eq!(w.register("L", "lea").await, "registered");
    w.management.gateway.mark_gone("L");
    assert_eq!(w.register("M", "lea").await, "registered", "L was a ghost");

    // A member of many rooms ends: each of its rooms hears it, and it is in none.
    assert_eq!(w.send(Route::Disconnect, "G", None).await, None);
    assert_eq!(w.others("H", "rust").await, ["IVY"]);
    assert_eq!(w.others("M", "lobby").await, ["ana", "hank", "IVY"]);
}

/// Sign-in: each person's connections, messages to a person (kept, noted in both
/// conversation indexes, pushed to every tab, a gone tab removed), conversations read
/// back, and the refusals on the way.
async fn people(w: &mut World) {
    for (id, sub, name) in [
        ("P1", "sub-pia", "pia"),
        ("P2", "sub-pia", "pia"),
        ("Q1", "sub-quin", "quin"),
        ("Q2", "sub-quin", "quin"),
    ] {
        w.people.insert(id.into(), (sub.into(), name.into()));
    }
    w.connect(&["P1", "P2", "Q1", "Q2", "R"]).await;
    let to =
        |name: &str| json!({"action": "message", "to": name, "message": "hi", "requestId": "m"});
    let with = |name: &str| json!({"action": "history", "with": name, "requestId": "h"});

    // Refused: not registered, anonymous, a name no person owns.
    assert_eq!(w.say("P1", to("quin")).await, "error:not_registered");
    assert_eq!(w.register("R", "rui").await, "registered");
    assert_eq!(w.say("R", to("pia")).await, "error:forbidden");
    assert_eq!(w.say("R", with("pia")).await, "error:forbidden");
    for id in ["P1", "P2", "Q1"] {
        let name = &w.people[id].1.clone();
        assert_eq!(w.register(id, name).await, "registered");
    }
    assert_eq!(w.say("P1", to("rui")).await, "error:unknown_user");
    assert_eq!(w.say("P1", with("nobody")).await, "error:unknown_user");

    // Kept and pushed to every tab; a tab found gone is removed.
    let sent = w.frame("Q1", to("pia")).await.expect("a reply");
    assert_eq!(sent["delivered"], 2, "P1 and P2: {sent}");
    w.management.gateway.mark_gone("P2");
    let sent = w.frame("Q1", to("pia")).await.expect("a reply");
    assert_eq!(sent["delivered"], 1, "P2 is gone: {sent}");
    let (ids, more) = w.history("P1", with("quin")).await;
    assert_eq!((ids.len(), more), (2, false));

    // The person comes back on another tab: their conversations come with `registered`.
    assert_eq!(w.send(Route::Disconnect, "Q1", None).await, None);
    let back = json!({"action": "register", "userName": "quin", "requestId": "r"});
    let registered = w.frame("Q2", back).await.expect("a reply");
    assert_eq!(
        registered["conversations"][0]["with"], "pia",
        "{registered}"
    );
}
