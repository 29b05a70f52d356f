//! Rooms, history and rejoining, as docs/protocol.md describes them: each rule runs on the
//! in-memory store and on the DynamoDB store (real SDK client against dynalite), through
//! the same chat rules and a gateway that records pushes.

use serde_json::{json, Value};
use std::time::Duration;
use webchat_backend::dynamo::local_client;
use webchat_backend::{
    Chat, ConnectionStore, DynamoStore, Frame, HistoryStore, Identity, Limits, ManualClock,
    MemoryStore, RecordingGateway, TableNames,
};
use webchat_shared_types::{Route, ServerEvent, LOBBY, MAX_ROOMS_PER_CONNECTION};

/// One chat over one store, on a clock the test moves.
struct Rig<S> {
    store: S,
    gateway: RecordingGateway,
    clock: ManualClock,
    /// Signed-in connections and who they are.
    identities: std::sync::Mutex<std::collections::HashMap<String, Identity>>,
    /// Keeps dynalite running for as long as the store needs it.
    _dynalite: Option<webchat_testkit::Dynalite>,
}

/// Now: DynamoDB rows carry TTLs, which the store checks against the system clock.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_micros() as i64
}

impl<S: ConnectionStore + HistoryStore> Rig<S> {
    fn chat(&self) -> Chat<'_, S, RecordingGateway> {
        Chat::new(&self.store, &self.gateway)
            .with_limits(Limits::UNLIMITED)
            .with_clock(&self.clock)
    }

    /// Connects `id` as signed in by the person `sub` named `name`.
    async fn connect_as(&self, id: &str, sub: &str, name: &str) {
        self.identities.lock().unwrap().insert(
            id.to_string(),
            Identity {
                sub: sub.to_string(),
                user_name: name.to_string(),
            },
        );
        self.connect(id).await;
    }

    async fn connect(&self, id: &str) {
        self.chat()
            .connect(id, None)
            .await
            .expect("$connect succeeds");
    }

    async fn disconnect(&self, id: &str) {
        self.chat()
            .disconnect(id)
            .await
            .expect("$disconnect succeeds");
    }

    /// The reply to `frame` from `id`, on the route API Gateway would pick.
    async fn send(&self, id: &str, frame: Value) -> Option<Value> {
        let text = frame.to_string();
        let identity = self.identities.lock().unwrap().get(id).cloned();
        self.chat()
            .with_identity(identity.as_ref())
            .frame(Route::of_frame(&text), id, Frame::Text(&text))
            .await
            .map(|reply| serde_json::from_str(&reply.to_json()).expect("replies are JSON"))
    }

    async fn ask(&self, id: &str, mut frame: Value) -> Value {
        frame["requestId"] = json!("q");
        self.send(id, frame).await.expect("a reply")
    }

    /// Connects and registers `id` as `name`; returns the resume token.
    async fn arrive(&self, id: &str, name: &str) -> String {
        self.connect(id).await;
        let reply = self
            .ask(id, json!({"action":"register","userName":name}))
            .await;
        assert_eq!(reply["action"], "registered", "{reply}");
        reply["resumeToken"].as_str().expect("a token").to_string()
    }

    async fn join(&self, id: &str, room: &str) -> Value {
        let reply = self.ask(id, json!({"action":"join","room":room})).await;
        assert_eq!(reply["action"], "joined", "{reply}");
        reply
    }

    async fn say(&self, id: &str, room: &str, text: &str) -> Value {
        let reply = self
            .ask(id, json!({"action":"message","room":room,"message":text}))
            .await;
        assert_eq!(reply["action"], "sent", "{reply}");
        // Each message a millisecond apart, as people type: ids then sort as sent.
        self.clock.advance(Duration::from_millis(1));
        reply
    }

    /// Events pushed to `id` since the last call, as JSON.
    fn events(&self, id: &str) -> Vec<ServerEvent> {
        self.gateway.events_for(id)
    }

    fn forget_events(&self) {
        self.gateway.clear();
    }
}

fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["action"], "error", "{reply}");
    reply["code"].as_str().unwrap_or_default()
}

fn names(users: &Value) -> Vec<String> {
    users
        .as_array()
        .expect("a users array")
        .iter()
        .map(|u| u["userName"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn texts(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn memory() -> Rig<MemoryStore> {
    Rig {
        store: MemoryStore::new(),
        gateway: RecordingGateway::new(),
        clock: ManualClock::new(now_micros()),
        identities: Default::default(),
        _dynalite: None,
    }
}

async fn dynamo() -> Rig<DynamoStore> {
    let dynalite = webchat_testkit::Dynalite::start();
    let store = DynamoStore::new(
        local_client(&dynalite.endpoint()),
        TableNames {
            connections: "Connections".into(),
            names: "Names".into(),
            members: "Members".into(),
            messages: "Messages".into(),
        },
    );
    store
        .create_tables_if_missing()
        .await
        .expect("tables are created");
    Rig {
        store,
        gateway: RecordingGateway::new(),
        clock: ManualClock::new(now_micros()),
        identities: Default::default(),
        _dynalite: Some(dynalite),
    }
}

/// Runs one rule on every store.
macro_rules! on_every_store {
    ($($rule:ident),* $(,)?) => {
        mod memory_store {
            $(#[tokio::test]
            async fn $rule() {
                super::$rule(super::memory()).await
            })*
        }
        mod dynamo_store {
            $(#[tokio::test]
            async fn $rule() {
                super::$rule(super::dynamo().await).await
            })*
        }
    };
}

on_every_store!(
    join_replies_with_the_other_members_and_announces_only_to_them,
    joining_a_room_again_changes_nothing_and_still_replies,
    leave_tells_the_remaining_members_and_the_lobby_cannot_be_left,
    a_connection_is_in_at_most_twenty_rooms_counting_the_lobby,
    room_messages_reach_only_members_and_carry_the_room,
    receivers_are_narrowed_to_the_rooms_members,
    list_of_a_room_is_for_members,
    unregistered_connections_cannot_use_rooms,
    history_pages_back_and_forth_in_time_order,
    private_messages_are_delivered_but_not_stored,
    history_expires_after_the_retention,
    a_connection_that_ends_leaves_every_room_it_was_in,
    a_resume_token_moves_the_name_and_rooms_to_the_new_connection,
    a_wrong_or_used_token_is_just_name_taken,
    a_ghost_never_blocks_its_name,
    v1_frames_without_room_work_in_the_lobby_beside_room_users,
    a_signed_in_connection_registers_only_its_own_name,
    every_connection_of_one_person_shares_the_name,
    a_name_bound_to_a_person_is_never_anyone_elses,
);

async fn join_replies_with_the_other_members_and_announces_only_to_them<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.arrive("C", "caio").await;
    rig.join("A", "rust").await;
    rig.forget_events();
    let reply = rig.ask("B", json!({"action":"join","room":"Rust"})).await;
    assert_eq!(reply["room"], "rust", "room names are lower-cased");
    assert_eq!(names(&reply["users"]), ["ana"]);
    assert_eq!(
        rig.events("A"),
        vec![ServerEvent::NewUser {
            room: "rust".into(),
            user_name: "bia".into(),
            connection_id: "B".into()
        }]
    );
    assert!(rig.events("C").is_empty(), "non-members hear nothing");
    assert!(
        rig.events("B").is_empty(),
        "the joiner is not told of itself"
    );
    let bad = rig
        .ask("A", json!({"action":"join","room":"no spaces"}))
        .await;
    assert_eq!(error_code(&bad), "invalid_field");
}

async fn joining_a_room_again_changes_nothing_and_still_replies<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.join("A", "rust").await;
    rig.join("B", "rust").await;
    rig.forget_events();
    // Without a requestId too: join always answers.
    let again = rig
        .send("B", json!({"action":"join","room":"rust"}))
        .await
        .expect("join always replies");
    assert_eq!(again["action"], "joined");
    assert_eq!(names(&again["users"]), ["ana"]);
    assert!(rig.events("A").is_empty(), "no second newUser");
}

async fn leave_tells_the_remaining_members_and_the_lobby_cannot_be_left<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.join("A", "rust").await;
    rig.join("B", "rust").await;
    rig.forget_events();
    let left = rig.ask("B", json!({"action":"leave","room":"rust"})).await;
    assert_eq!(left, json!({"action":"left","room":"rust","requestId":"q"}));
    assert_eq!(
        rig.events("A"),
        vec![ServerEvent::UserExit {
            room: "rust".into(),
            user_name: "bia".into(),
            connection_id: "B".into()
        }]
    );
    let said = rig.say("A", "rust", "still here").await;
    assert_eq!(said["delivered"], 0, "bia no longer gets rust's messages");
    let again = rig.ask("B", json!({"action":"leave","room":"rust"})).await;
    assert_eq!(error_code(&again), "not_a_member");
    let lobby = rig.ask("B", json!({"action":"leave","room":"lobby"})).await;
    assert_eq!(error_code(&lobby), "invalid_field");
}

async fn a_connection_is_in_at_most_twenty_rooms_counting_the_lobby<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    for i in 1..MAX_ROOMS_PER_CONNECTION {
        rig.join("A", &format!("room-{i}")).await;
    }
    let one_more = rig
        .ask("A", json!({"action":"join","room":"one-too-many"}))
        .await;
    assert_eq!(error_code(&one_more), "limit_reached");
    let member = rig
        .ask("A", json!({"action":"list","room":"one-too-many"}))
        .await;
    assert_eq!(
        error_code(&member),
        "not_a_member",
        "the refused join did nothing"
    );
    rig.ask("A", json!({"action":"leave","room":"room-1"}))
        .await;
    rig.join("A", "one-too-many").await;
}

async fn room_messages_reach_only_members_and_carry_the_room<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.arrive("C", "caio").await;
    rig.join("A", "rust").await;
    rig.join("B", "rust").await;
    rig.forget_events();
    let sent = rig.say("A", "rust", "borrowck!").await;
    assert_eq!(sent["delivered"], 1);
    match rig.events("B").as_slice() {
        [ServerEvent::Message {
            room,
            sender,
            message,
            private,
            ..
        }] => {
            assert_eq!((room.as_str(), sender.as_str()), ("rust", "ana"));
            assert_eq!(message, "borrowck!");
            assert!(!private);
        }
        other => panic!("bia gets the message once: {other:?}"),
    }
    assert!(rig.events("C").is_empty(), "caio is not in rust");
    let outsider = rig
        .ask(
            "C",
            json!({"action":"message","room":"rust","message":"hi"}),
        )
        .await;
    assert_eq!(error_code(&outsider), "not_a_member");
    assert!(rig.events("A").is_empty(), "a refused message goes nowhere");
}

async fn receivers_are_narrowed_to_the_rooms_members<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.arrive("C", "caio").await;
    rig.join("A", "rust").await;
    rig.join("B", "rust").await;
    rig.forget_events();
    let reply = rig
        .ask(
            "A",
            json!({"action":"message","room":"rust","message":"psst",
                   "receivers":[{"connectionId":"B"},{"connectionId":"C"}]}),
        )
        .await;
    assert_eq!(
        reply["delivered"], 1,
        "caio is skipped, not counted: {reply}"
    );
    assert!(matches!(
        rig.events("B").as_slice(),
        [ServerEvent::Message { private: true, .. }]
    ));
    assert!(rig.events("C").is_empty());
}

async fn list_of_a_room_is_for_members<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.arrive("C", "caio").await;
    rig.join("A", "rust").await;
    rig.join("B", "rust").await;
    let list = rig
        .send("A", json!({"action":"list","room":"rust"}))
        .await
        .expect("list always replies");
    assert_eq!(list["room"], "rust");
    assert_eq!(names(&list["users"]), ["bia"]);
    let outsider = rig.ask("C", json!({"action":"list","room":"rust"})).await;
    assert_eq!(error_code(&outsider), "not_a_member");
    let lobby = rig.ask("C", json!({"action":"list"})).await;
    assert_eq!(names(&lobby["users"]), ["ana", "bia"]);
}

async fn unregistered_connections_cannot_use_rooms<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.connect("X").await;
    for frame in [
        json!({"action":"join","room":"rust"}),
        json!({"action":"leave","room":"rust"}),
        json!({"action":"history"}),
        json!({"action":"message","room":"rust","message":"hi"}),
    ] {
        let reply = rig.ask("X", frame.clone()).await;
        assert_eq!(error_code(&reply), "not_registered", "{frame}");
    }
    // v1: anyone may list the lobby.
    let list = rig.ask("X", json!({"action":"list"})).await;
    assert_eq!(list["action"], "list");
}

async fn history_pages_back_and_forth_in_time_order<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.join("A", "rust").await;
    for i in 1..=7 {
        rig.say("A", "rust", &format!("m{i}")).await;
    }
    rig.say("A", LOBBY, "lobby talk").await;
    // A member who joins later reads what was said before.
    rig.join("B", "rust").await;
    let latest = rig
        .ask("B", json!({"action":"history","room":"rust","limit":3}))
        .await;
    assert_eq!(texts(&latest), ["m5", "m6", "m7"]);
    assert_eq!(latest["more"], true);
    let first = &latest["messages"][0];
    assert_eq!(first["action"], "message", "each entry is a message event");
    assert_eq!(first["room"], "rust");
    assert_eq!(first["sender"], "ana");
    assert_eq!(first["receiver"]["connectionId"], "B");
    let before = rig
        .ask(
            "B",
            json!({"action":"history","room":"rust","limit":3,"before":first["messageId"]}),
        )
        .await;
    assert_eq!(texts(&before), ["m2", "m3", "m4"]);
    assert_eq!(before["more"], true);
    let oldest = rig
        .ask(
            "B",
            json!({"action":"history","room":"rust","limit":3,"before":before["messages"][0]["messageId"]}),
        )
        .await;
    assert_eq!(texts(&oldest), ["m1"]);
    assert_eq!(oldest["more"], false);
    let after = rig
        .ask(
            "B",
            json!({"action":"history","room":"rust","limit":4,"after":oldest["messages"][0]["messageId"]}),
        )
        .await;
    assert_eq!(texts(&after), ["m2", "m3", "m4", "m5"]);
    assert_eq!(after["more"], true);
    let rest = rig
        .ask(
            "B",
            json!({"action":"history","room":"rust","after":after["messages"][3]["messageId"]}),
        )
        .await;
    assert_eq!(texts(&rest), ["m6", "m7"]);
    assert_eq!(rest["more"], false);
    let lobby = rig.ask("B", json!({"action":"history"})).await;
    assert_eq!(texts(&lobby), ["lobby talk"], "no room means the lobby");
    for bad in [
        json!({"action":"history","limit":0}),
        json!({"action":"history","limit":101}),
        json!({"action":"history","before":"nope"}),
        json!({"action":"history","before":first["messageId"],"after":first["messageId"]}),
    ] {
        assert_eq!(
            error_code(&rig.ask("B", bad.clone()).await),
            "invalid_field",
            "{bad}"
        );
    }
    rig.arrive("C", "caio").await;
    let outsider = rig
        .ask("C", json!({"action":"history","room":"rust"}))
        .await;
    assert_eq!(error_code(&outsider), "not_a_member");
}

async fn private_messages_are_delivered_but_not_stored<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    let reply = rig
        .ask(
            "A",
            json!({"action":"message","message":"secret","receivers":[{"connectionId":"B"}]}),
        )
        .await;
    assert_eq!(reply["delivered"], 1);
    let history = rig.ask("B", json!({"action":"history"})).await;
    assert_eq!(texts(&history), Vec::<String>::new());
}

async fn history_expires_after_the_retention<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.say("A", LOBBY, "old news").await;
    rig.clock.advance(Duration::from_secs(
        u64::from(Limits::DEFAULT.history_days) * 86_400 - 60,
    ));
    rig.say("A", LOBBY, "fresh").await;
    let both = rig.ask("A", json!({"action":"history"})).await;
    assert_eq!(texts(&both), ["old news", "fresh"]);
    rig.clock.advance(Duration::from_secs(120));
    let after = rig.ask("A", json!({"action":"history"})).await;
    assert_eq!(
        texts(&after),
        ["fresh"],
        "kept for the retention, no longer"
    );
}

async fn a_connection_that_ends_leaves_every_room_it_was_in<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.join("A", "rust").await;
    rig.join("B", "rust").await;
    rig.join("A", "go").await;
    rig.forget_events();
    rig.disconnect("A").await;
    let mut rooms: Vec<String> = rig
        .events("B")
        .into_iter()
        .map(|event| match event {
            ServerEvent::UserExit {
                room,
                connection_id,
                ..
            } if connection_id == "A" => room,
            other => panic!("only ana's exits: {other:?}"),
        })
        .collect();
    rooms.sort();
    assert_eq!(rooms, ["lobby", "rust"], "once per shared room");
    assert!(rig.store.members("go").await.unwrap().is_empty());
    assert!(rig.store.members("rust").await.unwrap().len() == 1);
}

async fn a_resume_token_moves_the_name_and_rooms_to_the_new_connection<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    let token = rig.arrive("A1", "ana").await;
    rig.arrive("B", "bia").await;
    rig.join("A1", "rust").await;
    rig.join("B", "rust").await;
    rig.forget_events();
    // The same person on a new connection, while the old one still looks open.
    rig.connect("A2").await;
    let reply = rig
        .ask(
            "A2",
            json!({"action":"register","userName":"Ana","resumeToken":token}),
        )
        .await;
    assert_eq!(reply["action"], "registered", "{reply}");
    assert_ne!(reply["resumeToken"], json!(token), "a new token each time");
    let events = rig.events("B");
    for room in [LOBBY, "rust"] {
        let exits = events
            .iter()
            .filter(|e| matches!(e, ServerEvent::UserExit { room: r, connection_id, .. } if r == room && connection_id == "A1"))
            .count();
        let arrivals = events
            .iter()
            .filter(|e| matches!(e, ServerEvent::NewUser { room: r, connection_id, .. } if r == room && connection_id == "A2"))
            .count();
        assert_eq!((exits, arrivals), (1, 1), "{room}: {events:?}");
    }
    assert_eq!(rig.gateway.deleted(), ["A1"], "the old socket is closed");
    let list = rig.ask("A2", json!({"action":"list","room":"rust"})).await;
    assert_eq!(names(&list["users"]), ["bia"], "the rooms came along");
    // The old connection's own `$disconnect` then changes nothing.
    rig.forget_events();
    rig.disconnect("A1").await;
    assert!(rig.events("B").is_empty(), "{:?}", rig.events("B"));
    let said = rig.say("B", "rust", "welcome back").await;
    assert_eq!(said["delivered"], 1);
}

async fn a_wrong_or_used_token_is_just_name_taken<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    let token = rig.arrive("A1", "ana").await;
    rig.connect("M").await;
    let wrong = rig
        .ask(
            "M",
            json!({"action":"register","userName":"ana","resumeToken":"0123456789abcdef0123456789abcdef"}),
        )
        .await;
    assert_eq!(error_code(&wrong), "name_taken");
    rig.connect("A2").await;
    let taken = rig
        .ask(
            "A2",
            json!({"action":"register","userName":"ana","resumeToken":token}),
        )
        .await;
    assert_eq!(taken["action"], "registered");
    rig.connect("A3").await;
    let reused = rig
        .ask(
            "A3",
            json!({"action":"register","userName":"ana","resumeToken":token}),
        )
        .await;
    assert_eq!(error_code(&reused), "name_taken", "a token works once");
}

async fn a_ghost_never_blocks_its_name<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A1", "ana").await;
    rig.arrive("B", "bia").await;
    // The socket died without a `$disconnect`: API Gateway answers 410 for it.
    rig.gateway.mark_gone("A1");
    rig.forget_events();
    rig.connect("A2").await;
    let reply = rig
        .ask("A2", json!({"action":"register","userName":"ana"}))
        .await;
    assert_eq!(reply["action"], "registered", "{reply}");
    assert_eq!(
        rig.events("B"),
        vec![
            ServerEvent::UserExit {
                room: LOBBY.into(),
                user_name: "ana".into(),
                connection_id: "A1".into()
            },
            ServerEvent::NewUser {
                room: LOBBY.into(),
                user_name: "ana".into(),
                connection_id: "A2".into()
            },
        ]
    );
    // A holder that is still open keeps its name.
    rig.connect("M").await;
    let taken = rig
        .ask("M", json!({"action":"register","userName":"bia"}))
        .await;
    assert_eq!(error_code(&taken), "name_taken");
}

async fn v1_frames_without_room_work_in_the_lobby_beside_room_users<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.join("A", "rust").await;
    rig.forget_events();
    // The original client: no requestId, no room.
    assert_eq!(
        rig.send("B", json!({"action":"message","message":"hello everyone"}))
            .await,
        None,
        "v1 stays silent on success"
    );
    assert!(matches!(
        rig.events("A").as_slice(),
        [ServerEvent::Message { room, .. }] if room == LOBBY
    ));
    let list = rig
        .send("B", json!({"action":"list"}))
        .await
        .expect("v1 list replies");
    assert_eq!(names(&list["users"]), ["ana"]);
}

async fn a_signed_in_connection_registers_only_its_own_name<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.connect_as("A", "sub-ana", "Ana").await;
    let other = rig
        .ask("A", json!({"action":"register","userName":"bia"}))
        .await;
    assert_eq!(error_code(&other), "forbidden");
    assert!(
        other["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Ana"),
        "{other}"
    );
    let own = rig
        .ask("A", json!({"action":"register","userName":"ana"}))
        .await;
    assert_eq!(own["action"], "registered", "{own}");
    assert_eq!(own["userName"], "Ana", "the identity's own spelling");
}

async fn every_connection_of_one_person_shares_the_name<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("B", "bia").await;
    rig.connect_as("A1", "sub-ana", "ana").await;
    rig.ask("A1", json!({"action":"register","userName":"ana"}))
        .await;
    rig.join("A1", "rust").await;
    rig.forget_events();
    // A second tab of the same person: both keep the name, neither is closed.
    rig.connect_as("A2", "sub-ana", "ana").await;
    let second = rig
        .ask("A2", json!({"action":"register","userName":"ana"}))
        .await;
    assert_eq!(second["action"], "registered", "{second}");
    assert!(rig.gateway.deleted().is_empty(), "the first tab stays open");
    let lobby = rig.ask("B", json!({"action":"list"})).await;
    assert_eq!(names(&lobby["users"]), ["ana", "ana"], "one entry per tab");
    // A message to the lobby reaches both tabs.
    let sent = rig.say("B", LOBBY, "hi ana").await;
    assert_eq!(sent["delivered"], 2);
    // One tab closing leaves the other with the name.
    rig.disconnect("A1").await;
    let again = rig
        .ask("A2", json!({"action":"register","userName":"ana"}))
        .await;
    assert_eq!(again["action"], "registered", "{again}");
}

async fn a_name_bound_to_a_person_is_never_anyone_elses<S>(rig: Rig<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.connect_as("A", "sub-ana", "ana").await;
    rig.ask("A", json!({"action":"register","userName":"ana"}))
        .await;
    rig.disconnect("A").await;
    // Neither another person with the same display name nor an anonymous connection
    // (a deployment that turned sign-in off) gets it, even with its holder gone.
    rig.connect_as("X", "sub-impostor", "ANA").await;
    let impostor = rig
        .ask("X", json!({"action":"register","userName":"ana"}))
        .await;
    assert_eq!(error_code(&impostor), "name_taken");
    rig.connect("Y").await;
    let anonymous = rig
        .ask("Y", json!({"action":"register","userName":"ana"}))
        .await;
    assert_eq!(error_code(&anonymous), "name_taken");
    // The person comes back on a new connection and has it at once.
    rig.connect_as("A2", "sub-ana", "ana").await;
    let back = rig
        .ask("A2", json!({"action":"register","userName":"ana"}))
        .await;
    assert_eq!(back["action"], "registered", "{back}");
}
