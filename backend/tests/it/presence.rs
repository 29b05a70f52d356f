//! Presence that scales and messages in the order written, on the in-memory store and
//! on the DynamoDB store (real SDK client against dynalite), through the chat rules and
//! a gateway that records pushes: small rooms hear each arrival and departure as
//! before, big ones a throttled member count, `list` pages through big rooms, and one
//! sender's messages come back from `history` in the order sent.

use crate::stores::{self, on_every_store};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use webchat_backend::limits::PRESENCE_INTERVAL;
use webchat_backend::{ConnectionStore, Driver, DynamoStore, HistoryStore, Limits, MemoryStore};
use webchat_shared_types::{ServerEvent, LIST_PAGE_SIZE, LOBBY};

/// Rooms of more than this many members are big in these tests.
const LIMIT: u32 = 3;

fn limits() -> Limits {
    Limits {
        presence_limit: LIMIT,
        ..Limits::UNLIMITED
    }
}

fn memory() -> Driver<MemoryStore> {
    stores::memory_driver(limits())
}

async fn dynamo() -> Driver<DynamoStore> {
    stores::dynamo_driver(limits()).await
}

on_every_store!(
    a_room_within_the_limit_hears_each_arrival_and_departure_as_before,
    above_the_limit_arrivals_and_departures_push_only_a_throttled_count,
    list_pages_through_a_big_room_once_each_and_joined_gives_the_first_page,
    a_cursor_a_list_reply_did_not_give_is_invalid_field,
    the_member_count_follows_joins_leaves_renames_and_ends,
    one_senders_messages_come_back_from_history_in_the_order_sent,
);

fn members_event(room: &str, count: u64) -> ServerEvent {
    ServerEvent::Members {
        room: room.into(),
        count,
    }
}

fn ids(users: &Value) -> Vec<String> {
    users
        .as_array()
        .expect("a users array")
        .iter()
        .map(|u| u["connectionId"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn a_room_within_the_limit_hears_each_arrival_and_departure_as_before<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    rig.forget_events();
    rig.arrive("C", "caio").await;
    let arrival = ServerEvent::NewUser {
        room: LOBBY.into(),
        user_name: "caio".into(),
        connection_id: "C".into(),
    };
    assert_eq!(rig.events("A"), vec![arrival.clone()]);
    assert_eq!(rig.events("B"), vec![arrival]);
    // The original client's `list`: every other member, no paging fields.
    let list = rig
        .send("A", json!({"action":"list"}))
        .await
        .expect("list is answered");
    assert_eq!(
        list,
        json!({"action":"list","room":"lobby","users":[
            {"userName":"bia","connectionId":"B"},{"userName":"caio","connectionId":"C"}]})
    );
    rig.forget_events();
    rig.disconnect("C").await;
    let exit = ServerEvent::UserExit {
        room: LOBBY.into(),
        user_name: "caio".into(),
        connection_id: "C".into(),
    };
    assert_eq!(rig.events("A"), vec![exit.clone()]);
    assert_eq!(rig.events("B"), vec![exit]);
}

async fn above_the_limit_arrivals_and_departures_push_only_a_throttled_count<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    for (id, name) in [("A", "ana"), ("B", "bia"), ("C", "caio")] {
        rig.arrive(id, name).await;
    }
    rig.forget_events();
    // The fourth takes the lobby over the limit: its count, once, to everyone in it.
    rig.arrive("D", "duda").await;
    for id in ["A", "B", "C", "D"] {
        assert_eq!(rig.events(id), vec![members_event(LOBBY, 4)], "{id}");
    }
    rig.forget_events();
    // Within the interval arrivals and departures push nothing at all.
    rig.arrive("E", "eva").await;
    rig.arrive("F", "fia").await;
    rig.disconnect("F").await;
    assert_eq!(rig.gateway.pushed(), vec![], "nothing within the interval");
    // The next change after it carries the count as it is then.
    rig.clock.advance(PRESENCE_INTERVAL);
    rig.arrive("G", "gil").await;
    for id in ["A", "B", "C", "D", "E", "G"] {
        assert_eq!(rig.events(id), vec![members_event(LOBBY, 6)], "{id}");
    }
    rig.forget_events();
    // A big room's join and leave are counted the same way.
    for id in ["A", "B", "C", "D"] {
        rig.join(id, "rust").await;
    }
    rig.forget_events();
    rig.clock.advance(PRESENCE_INTERVAL);
    let left = rig.ask("D", json!({"action":"leave","room":"rust"})).await;
    assert_eq!(left["action"], "left", "{left}");
    // Back within the limit: each departure is told again, to the remaining three.
    let exit = ServerEvent::UserExit {
        room: "rust".into(),
        user_name: "duda".into(),
        connection_id: "D".into(),
    };
    for id in ["A", "B", "C"] {
        assert_eq!(rig.events(id), vec![exit.clone()], "{id}");
    }
    assert_eq!(rig.gateway.pushed().len(), 3);
}

async fn list_pages_through_a_big_room_once_each_and_joined_gives_the_first_page<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    let everyone: Vec<String> = (0..2 * LIST_PAGE_SIZE + 5)
        .map(|i| format!("c{i:04}"))
        .collect();
    for id in &everyone {
        rig.arrive(id, &format!("n{id}")).await;
    }
    let asker = &everyone[7];
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut frame = json!({"action":"list"});
        if let Some(cursor) = &cursor {
            frame["cursor"] = json!(cursor);
        }
        let page = rig.send(asker, frame).await.expect("list is answered");
        assert_eq!(page["action"], "list", "{page}");
        assert_eq!(page["count"], json!(everyone.len()), "{page}");
        let users = ids(&page["users"]);
        assert!(users.len() <= LIST_PAGE_SIZE, "{} in a page", users.len());
        seen.extend(users);
        pages += 1;
        match page["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a member was listed twice");
    let others: BTreeSet<&String> = everyone.iter().filter(|id| *id != asker).collect();
    assert_eq!(unique, others, "every other member, once");

    // `joined` of a big room: its first page, a cursor and the count.
    for id in &everyone[..=LIMIT as usize] {
        rig.join(id, "big").await;
    }
    let joined = rig.join(&everyone[100], "big").await;
    assert_eq!(joined["count"], json!(LIMIT + 2), "{joined}");
    assert_eq!(ids(&joined["users"]).len(), LIMIT as usize + 1, "{joined}");
    assert!(
        joined.get("cursor").is_none(),
        "one page holds them: {joined}"
    );
}

async fn a_cursor_a_list_reply_did_not_give_is_invalid_field<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    // Hex, but not of any connection id a reply could give.
    let reply = rig.ask("A", json!({"action":"list","cursor":"ff"})).await;
    assert_eq!(reply["action"], "error", "{reply}");
    assert_eq!(reply["code"], "invalid_field", "{reply}");
    let reply = rig
        .ask("A", json!({"action":"list","cursor":"not a cursor"}))
        .await;
    assert_eq!(reply["code"], "invalid_field", "{reply}");
    // A well-formed cursor in a small room pages too: past the last member, none.
    let reply = rig
        .ask("A", json!({"action":"list","cursor":hex::encode("zzz")}))
        .await;
    assert_eq!(reply["users"], json!([]), "{reply}");
    assert_eq!(reply["count"], json!(1), "{reply}");
}

async fn the_member_count_follows_joins_leaves_renames_and_ends<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    let count = |room: &'static str| {
        let store = &rig.store;
        async move { store.member_count(room).await.expect("a count") }
    };
    rig.arrive("A", "ana").await;
    rig.arrive("B", "bia").await;
    let token = rig.arrive("C", "caio").await;
    assert_eq!(count(LOBBY).await, 3);
    rig.join("A", "rust").await;
    rig.join("B", "rust").await;
    rig.join("B", "rust").await;
    assert_eq!(count("rust").await, 2, "joining again counts once");
    rig.register("A", "ana2").await;
    assert_eq!(count(LOBBY).await, 3, "a rename is no arrival");
    rig.ask("B", json!({"action":"leave","room":"rust"})).await;
    assert_eq!(count("rust").await, 1);
    // A takeover moves the rooms: the lobby keeps its count.
    rig.connect("C2").await;
    let reply = rig
        .send(
            "C2",
            json!({"action":"register","userName":"caio","resumeToken":token,"requestId":"r"}),
        )
        .await
        .expect("registered");
    assert_eq!(reply["action"], "registered", "{reply}");
    assert_eq!(count(LOBBY).await, 3);
    rig.disconnect("A").await;
    assert_eq!(count(LOBBY).await, 2);
    assert_eq!(count("rust").await, 0);
}

async fn one_senders_messages_come_back_from_history_in_the_order_sent<S>(rig: Driver<S>)
where
    S: ConnectionStore + HistoryStore,
{
    rig.arrive("A", "ana").await;
    // The clock stands still: all in one millisecond, as a fast typist's may be.
    for round in 0..3 {
        let mut sent = Vec::new();
        for i in 0..7 {
            let reply = rig
                .ask(
                    "A",
                    json!({"action":"message","message":format!("r{round} h{i}")}),
                )
                .await;
            assert_eq!(reply["action"], "sent", "{reply}");
            sent.push(format!("r{round} h{i}"));
        }
        let history = rig.ask("A", json!({"action":"history","limit":7})).await;
        let texts: Vec<&str> = history["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["message"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(texts, sent, "round {round}");
    }
    // Another Lambda, whose clock is ahead, gave the sender's last id: the next one
    // from here still sorts after it.
    let ahead = webchat_backend::new_message_id(
        u64::try_from(stores::now_micros() / 1000).expect("after 1970") + 60_000,
    );
    assert_eq!(
        rig.store
            .record_message_id("A", &ahead)
            .await
            .expect("recorded"),
        None
    );
    let reply = rig
        .ask(
            "A",
            json!({"action":"message","message":"after the other Lambda"}),
        )
        .await;
    let id = reply["messageId"].as_str().expect("an id");
    assert!(id > ahead.as_str(), "{id} sorts after {ahead}");
    rig.clock.advance(Duration::from_millis(1));
}
