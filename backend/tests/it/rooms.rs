//! Rooms, history and rejoining, as docs/protocol.md describes them: each rule runs on the
//! in-memory store and on the DynamoDB store (real SDK client against dynalite), through
//! the same chat rules and a gateway that records pushes.

use crate::stores::{self, on_every_store};
use serde_json::{json, Value};
use std::time::Duration;
use webchat_backend::{
    conversation_key, person_partition, ConnectionStore, Driver, DynamoStore, HistoryStore, Limits,
    MemoryStore,
};
use webchat_shared_types::{validate_room, ServerEvent, User, LOBBY, MAX_ROOMS_PER_CONNECTION};

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

/// The rules over the in-memory store, with no rate limits in the way.
fn memory() -> Driver<MemoryStore> {
    stores::memory_driver(Limits::UNLIMITED)
}

/// The rules over the DynamoDB store (a real SDK client against dynalite), with no rate
/// limits in the way.
async fn dynamo() -> Driver<DynamoStore> {
    stores::dynamo_driver(Limits::UNLIMITED).await
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
    a_message_to_a_person_reaches_every_tab_of_theirs_and_the_senders_other_tabs,
    a_conversation_is_kept_and_read_from_either_side_in_pages,
    only_signed_in_people_write_to_and_read_conversations_with_signed_in_people,
    a_third_person_reads_only_their_own_conversations,
    registered_lists_the_conversations_a_person_missed_while_away,
    a_person_s_connections_leave_their_partition_when_they_end,
);

async fn join_replies_with_the_other_members_and_announces_only_to_them<S>(rig: Driver<S>)
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

async fn joining_a_room_again_changes_nothing_and_still_replies<S>(rig: Driver<S>)
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

async fn leave_tells_the_remaining_members_and_the_lobby_cannot_be_left<S>(rig: Driver<S>)
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

async fn a_connection_is_in_at_most_twenty_rooms_counting_the_lobby<S>(rig: Driver<S>)
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

async fn room_messages_reach_only_members_and_carry_the_room<S>(rig: Driver<S>)
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

async fn receivers_are_narrowed_to_the_rooms_members<S>(rig: Driver<S>)
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

async fn list_of_a_room_is_for_members<S>(rig: Driver<S>)
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

async fn unregistered_connections_cannot_use_rooms<S>(rig: Driver<S>)
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

async fn history_pages_back_and_forth_in_time_order<S>(rig: Driver<S>)
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

async fn private_messages_are_delivered_but_not_stored<S>(rig: Driver<S>)
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

async fn history_expires_after_the_retention<S>(rig: Driver<S>)
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
    rig.clock.advance(Duration::from_mins(2));
    let after = rig.ask("A", json!({"action":"history"})).await;
    assert_eq!(
        texts(&after),
        ["fresh"],
        "kept for the retention, no longer"
    );
}

async fn a_connection_that_ends_leaves_every_room_it_was_in<S>(rig: Driver<S>)
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

async fn a_resume_token_moves_the_name_and_rooms_to_the_new_connection<S>(rig: Driver<S>)
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

async fn a_wrong_or_used_token_is_just_name_taken<S>(rig: Driver<S>)
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
    let reclaimed = rig
        .ask(
            "A2",
            json!({"action":"register","userName":"ana","resumeToken":token}),
        )
        .await;
    assert_eq!(reclaimed["action"], "registered");
    rig.connect("A3").await;
    let reused = rig
        .ask(
            "A3",
            json!({"action":"register","userName":"ana","resumeToken":token}),
        )
        .await;
    assert_eq!(error_code(&reused), "name_taken", "a token works once");
}

async fn a_ghost_never_blocks_its_name<S>(rig: Driver<S>)
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

async fn v1_frames_without_room_work_in_the_lobby_beside_room_users<S>(rig: Driver<S>)
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

async fn a_signed_in_connection_registers_only_its_own_name<S>(rig: Driver<S>)
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

async fn every_connection_of_one_person_shares_the_name<S>(rig: Driver<S>)
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

async fn a_name_bound_to_a_person_is_never_anyone_elses<S>(rig: Driver<S>)
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

// ---- messages to a person --------------------------------------------------------------

#[test]
fn conversation_keys_are_one_per_pair_and_never_a_room_name() {
    let key = conversation_key("sub-ana", "sub-bia");
    assert_eq!(
        key,
        conversation_key("sub-bia", "sub-ana"),
        "order-independent"
    );
    assert!(key.starts_with("dm:") && key.len() == 3 + 64, "{key}");
    // Concatenations that agree still make different keys.
    assert_ne!(conversation_key("ab", "c"), conversation_key("a", "bc"));
    assert_ne!(conversation_key("a", "b"), conversation_key("a", "a"));
    assert_ne!(conversation_key("", "ab"), conversation_key("a", "b"));
    for partition in [key, person_partition("sub-ana")] {
        assert!(validate_room(&partition).is_err(), "{partition}");
    }
}

/// The `message` events pushed to `id`, as (sender, to, text, room).
fn private_events(rig_events: Vec<ServerEvent>, id: &str) -> Vec<(String, String, String, String)> {
    rig_events
        .into_iter()
        .map(|event| match event {
            ServerEvent::Message {
                room,
                sender,
                receiver,
                message,
                private,
                to,
                ..
            } => {
                assert!(private, "a message to a person is private");
                assert_eq!(receiver.connection_id, id, "receiver is the connection");
                (sender, to.expect("to"), message, room)
            }
            other => panic!("{id} got {other:?}"),
        })
        .collect()
}

async fn a_message_to_a_person_reaches_every_tab_of_theirs_and_the_senders_other_tabs<S>(
    rig: Driver<S>,
) where
    S: ConnectionStore + HistoryStore,
{
    rig.sign_in("A1", "sub-ana", "Ana").await;
    rig.sign_in("A2", "sub-ana", "Ana").await;
    rig.sign_in("B1", "sub-bia", "bia").await;
    rig.sign_in("B2", "sub-bia", "bia").await;
    rig.sign_in("C", "sub-caio", "caio").await;
    rig.arrive("D", "dora").await;
    rig.forget_events();

    // Names compare case-insensitively; `to` carries the person's own spelling.
    let sent = rig.tell("A1", "BIA", "hi bia").await;
    assert_eq!(sent["delivered"], 3, "B1, B2 and A2: {sent}");
    let key = conversation_key("sub-ana", "sub-bia");
    let expected = ("Ana".into(), "bia".into(), "hi bia".into(), key.clone());
    for id in ["B1", "B2", "A2"] {
        assert_eq!(
            private_events(rig.events(id), id),
            vec![expected.clone()],
            "{id}"
        );
    }
    for id in ["A1", "C", "D"] {
        assert!(rig.events(id).is_empty(), "{id} hears nothing");
    }

    // A note to self goes to the person's other tabs only.
    rig.forget_events();
    let sent = rig.tell("A2", "ana", "remember the milk").await;
    assert_eq!(sent["delivered"], 1, "{sent}");
    assert_eq!(
        private_events(rig.events("A1"), "A1"),
        vec![(
            "Ana".into(),
            "Ana".into(),
            "remember the milk".into(),
            conversation_key("sub-ana", "sub-ana")
        )]
    );
    for id in ["A2", "B1", "B2"] {
        assert!(rig.events(id).is_empty(), "{id} hears nothing");
    }

    // Without a requestId, `sent` is not due, as for room messages.
    rig.forget_events();
    let silent = rig
        .send("B1", json!({"action":"message","to":"ana","message":"hi"}))
        .await;
    assert_eq!(silent, None);
    assert_eq!(rig.events("A1").len(), 1);
    assert_eq!(rig.events("A2").len(), 1);
}

async fn a_conversation_is_kept_and_read_from_either_side_in_pages<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.sign_in("A", "sub-ana", "ana").await;
    rig.sign_in("B", "sub-bia", "bia").await;
    let mut ids = Vec::new();
    for (from, to, text) in [
        ("A", "bia", "one"),
        ("B", "ana", "two"),
        ("A", "bia", "three"),
        ("B", "ana", "four"),
        ("A", "bia", "five"),
    ] {
        let sent = rig.tell(from, to, text).await;
        ids.push(sent["messageId"].as_str().unwrap().to_string());
    }
    // Not in any room's history.
    let lobby = rig.ask("A", json!({"action":"history"})).await;
    assert_eq!(texts(&lobby), Vec::<String>::new());

    let key = conversation_key("sub-ana", "sub-bia");
    let newest = rig
        .ask("A", json!({"action":"history","with":"BIA","limit":2}))
        .await;
    assert_eq!(newest["action"], "history", "{newest}");
    assert_eq!(newest["with"], "bia", "the person's own spelling");
    assert_eq!(newest["room"], key.as_str());
    assert_eq!(texts(&newest), ["four", "five"]);
    assert_eq!(newest["more"], true);
    let message = &newest["messages"][0];
    assert_eq!(message["room"], key.as_str(), "as it was pushed");
    assert_eq!(message["sender"], "bia");
    assert_eq!(message["to"], "ana");
    assert_eq!(message["private"], true);
    assert_eq!(
        message["receiver"]["connectionId"], "A",
        "the asking connection"
    );
    let older = rig
        .ask(
            "A",
            json!({"action":"history","with":"bia","before":ids[3],"limit":2}),
        )
        .await;
    assert_eq!(
        (texts(&older), &older["more"]),
        (vec!["two".to_string(), "three".to_string()], &json!(true))
    );
    let after = rig
        .ask("A", json!({"action":"history","with":"bia","after":ids[1]}))
        .await;
    assert_eq!(texts(&after), ["three", "four", "five"]);
    assert_eq!(after["more"], false);

    // The other side reads the same conversation.
    let theirs = rig.ask("B", json!({"action":"history","with":"ana"})).await;
    assert_eq!(theirs["with"], "ana");
    assert_eq!(theirs["room"], key.as_str());
    assert_eq!(texts(&theirs), ["one", "two", "three", "four", "five"]);
    let their_ids: Vec<&str> = theirs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(their_ids, ids);
}

async fn only_signed_in_people_write_to_and_read_conversations_with_signed_in_people<S>(
    rig: Driver<S>,
) where
    S: ConnectionStore + HistoryStore,
{
    rig.sign_in("A", "sub-ana", "ana").await;
    rig.sign_in("B", "sub-bia", "bia").await;
    rig.arrive("D", "dora").await;
    rig.join("A", "rust").await;
    rig.forget_events();

    // An anonymous sender or reader.
    let to_ana = json!({"action":"message","to":"ana","message":"hi"});
    assert_eq!(error_code(&rig.ask("D", to_ana.clone()).await), "forbidden");
    let with_ana = json!({"action":"history","with":"ana"});
    assert_eq!(
        error_code(&rig.ask("D", with_ana.clone()).await),
        "forbidden"
    );
    // Signed in, but not registered yet.
    rig.connect_as("E", "sub-eli", "eli").await;
    assert_eq!(error_code(&rig.ask("E", to_ana).await), "not_registered");
    assert_eq!(error_code(&rig.ask("E", with_ana).await), "not_registered");

    // A name held by an anonymous connection, or by no one.
    for name in ["dora", "nobody"] {
        let refused = rig
            .ask("A", json!({"action":"message","to":name,"message":"hi"}))
            .await;
        assert_eq!(error_code(&refused), "unknown_user", "{name}");
        assert!(refused["message"].as_str().unwrap().contains(name));
        let refused = rig.ask("A", json!({"action":"history","with":name})).await;
        assert_eq!(error_code(&refused), "unknown_user", "{name}");
    }
    // A person and a room at once.
    for frame in [
        json!({"action":"message","to":"bia","room":"rust","message":"hi"}),
        json!({"action":"message","to":"bia","receivers":[{"connectionId":"B"}],"message":"hi"}),
        json!({"action":"history","with":"bia","room":"rust"}),
    ] {
        assert_eq!(
            error_code(&rig.ask("A", frame.clone()).await),
            "invalid_field",
            "{frame}"
        );
    }
    for id in ["A", "B", "D"] {
        assert!(
            rig.events(id).is_empty(),
            "refused frames push nothing to {id}"
        );
    }
    let nothing = rig.ask("B", json!({"action":"history","with":"ana"})).await;
    assert_eq!(texts(&nothing), Vec::<String>::new(), "nothing was kept");
}

async fn a_third_person_reads_only_their_own_conversations<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.sign_in("A", "sub-ana", "ana").await;
    rig.sign_in("B", "sub-bia", "bia").await;
    rig.sign_in("C", "sub-caio", "caio").await;
    rig.tell("A", "bia", "just between us").await;
    rig.tell("C", "ana", "hello ana").await;
    // caio's conversation with bia is his own, and empty.
    let with_bia = rig.ask("C", json!({"action":"history","with":"bia"})).await;
    assert_eq!(texts(&with_bia), Vec::<String>::new());
    assert_eq!(
        with_bia["room"],
        conversation_key("sub-caio", "sub-bia").as_str()
    );
    let with_ana = rig.ask("C", json!({"action":"history","with":"ana"})).await;
    assert_eq!(texts(&with_ana), ["hello ana"]);
    let bia_with_ana = rig.ask("B", json!({"action":"history","with":"ana"})).await;
    assert_eq!(texts(&bia_with_ana), ["just between us"]);
}

fn conversations(registered: &Value) -> Vec<(String, String)> {
    registered["conversations"]
        .as_array()
        .unwrap_or_else(|| panic!("conversations in {registered}"))
        .iter()
        .map(|c| {
            (
                c["with"].as_str().unwrap().to_string(),
                c["lastMessageId"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn registered_lists_the_conversations_a_person_missed_while_away<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    let first = rig.sign_in("B1", "sub-bia", "bia").await;
    assert_eq!(conversations(&first), vec![], "signed in: listed, empty");
    let anonymous = {
        rig.connect("D").await;
        rig.ask("D", json!({"action":"register","userName":"dora"}))
            .await
    };
    assert!(anonymous.get("conversations").is_none(), "{anonymous}");
    rig.disconnect("B1").await;

    rig.sign_in("A", "sub-ana", "ana").await;
    rig.sign_in("C", "sub-caio", "caio").await;
    let seen = rig.tell("A", "bia", "are you there?").await;
    assert_eq!(seen["delivered"], 0, "bia is away, but it is kept");
    let last_from_ana = rig.tell("A", "bia", "call me").await;
    let from_caio = rig.tell("C", "bia", "lunch?").await;

    // bia comes back: her conversations, newest first, and what she missed in each.
    let back = rig.sign_in("B2", "sub-bia", "bia").await;
    assert_eq!(
        conversations(&back),
        vec![
            (
                "caio".to_string(),
                from_caio["messageId"].as_str().unwrap().to_string()
            ),
            (
                "ana".to_string(),
                last_from_ana["messageId"].as_str().unwrap().to_string()
            ),
        ]
    );
    let missed = rig
        .ask(
            "B2",
            json!({"action":"history","with":"ana","after":seen["messageId"]}),
        )
        .await;
    assert_eq!(texts(&missed), ["call me"]);
    // Both sides' indexes follow the newest message, whoever sent it.
    rig.tell("B2", "ana", "on my way").await;
    let ana_again = rig.sign_in("A2", "sub-ana", "ana").await;
    let listed = conversations(&ana_again);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, "bia");
    let newest = rig
        .ask("A2", json!({"action":"history","with":"bia","limit":1}))
        .await;
    assert_eq!(newest["messages"][0]["messageId"], listed[0].1.as_str());
    assert_eq!(texts(&newest), ["on my way"]);
}

async fn a_person_s_connections_leave_their_partition_when_they_end<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.sign_in("A1", "sub-ana", "ana").await;
    rig.sign_in("A2", "sub-ana", "ana").await;
    rig.sign_in("A3", "sub-ana", "ana").await;
    rig.sign_in("B", "sub-bia", "bia").await;
    let tabs = |mut users: Vec<User>| {
        users.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        users
            .into_iter()
            .map(|u| u.connection_id)
            .collect::<Vec<_>>()
    };
    let partition = person_partition("sub-ana");
    assert_eq!(
        tabs(rig.store.members(&partition).await.unwrap()),
        ["A1", "A2", "A3"]
    );
    // The partition is not a room: not in the connection's rooms, not in any list, and
    // not counted toward the room limit.
    let a1 = rig.store.get("A1").await.unwrap().unwrap();
    assert_eq!(a1.rooms, [LOBBY]);
    for i in 1..MAX_ROOMS_PER_CONNECTION {
        rig.join("A1", &format!("r{i}")).await;
    }
    let lobby = rig.ask("B", json!({"action":"list"})).await;
    assert_eq!(names(&lobby["users"]), ["ana", "ana", "ana"]);

    rig.disconnect("A1").await;
    assert_eq!(
        tabs(rig.store.members(&partition).await.unwrap()),
        ["A2", "A3"]
    );
    // A tab found gone on a push is removed as well.
    rig.gateway.mark_gone("A3");
    let sent = rig.tell("B", "ana", "still there?").await;
    assert_eq!(sent["delivered"], 1, "{sent}");
    assert_eq!(tabs(rig.store.members(&partition).await.unwrap()), ["A2"]);
    rig.disconnect("A2").await;
    assert!(rig.store.members(&partition).await.unwrap().is_empty());
    let sent = rig.tell("B", "ana", "later then").await;
    assert_eq!(sent["delivered"], 0, "kept for when ana is back: {sent}");
}
