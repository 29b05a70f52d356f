//! The DynamoDB store with the real SDK client against dynalite on a free port.

use crate::stores;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use webchat_backend::counting_client;
use webchat_backend::limits::Micros;
use webchat_backend::local_client;
use webchat_backend::new_message_id;
use webchat_backend::{
    Admission, Bucket, Claim, Connection, ConnectionStore, DynamoStore, Frame, HistorySlice,
    HistoryStore, Joined, Limits, RateLimit, RecordingGateway, Registration, Retrying, Rules,
    StoreError, StoredMessage,
};
use webchat_shared_types::{HistoryPage, Route, User, LOBBY};
use webchat_testkit::Dynalite;

async fn store(dynalite: &Dynalite) -> DynamoStore {
    stores::dynamo_store(dynalite).await
}

fn connection(id: &str, connected_at: i64) -> Connection {
    Connection::new(id, connected_at)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Registers without a resume token, issuing the token hash `t-{id}`.
async fn register(store: &DynamoStore, id: &str, name: &str) -> Result<Registration, StoreError> {
    let token = format!("t-{id}");
    store
        .register(
            id,
            Claim {
                user_name: name,
                token_hash: &token,
                resume_hash: None,
                owner: None,
            },
        )
        .await
}

/// Registers presenting `resume` and issuing `token`.
async fn resume(
    store: &DynamoStore,
    id: &str,
    name: &str,
    token: &str,
    resume: &str,
) -> Result<Registration, StoreError> {
    store
        .register(
            id,
            Claim {
                user_name: name,
                token_hash: token,
                resume_hash: Some(resume),
                owner: None,
            },
        )
        .await
}

async fn open_as(store: &DynamoStore, id: &str, name: &str) {
    store.add(connection(id, now_ms())).await.unwrap();
    register(store, id, name).await.unwrap();
}

fn user(name: &str, id: &str) -> User {
    User {
        user_name: name.into(),
        connection_id: id.into(),
    }
}

/// A room's members, sorted by connection id.
async fn members(store: &DynamoStore, room: &str) -> Vec<User> {
    let mut members = store.members(room).await.unwrap();
    members.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    members
}

fn rooms(names: &[&str]) -> Vec<String> {
    names.iter().map(ToString::to_string).collect()
}

/// One row as DynamoDB holds it.
async fn raw_item(
    dynalite: &Dynalite,
    table: &str,
    key: &[(&str, &str)],
) -> Option<HashMap<String, AttributeValue>> {
    local_client(&dynalite.endpoint())
        .get_item()
        .table_name(table)
        .set_key(Some(
            key.iter()
                .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
                .collect(),
        ))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn ttl_of(item: &HashMap<String, AttributeValue>) -> i64 {
    item["ttl"].as_n().unwrap().parse().unwrap()
}

// ---- names ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_registrations_of_one_name_have_exactly_one_winner() {
    let dynalite = Dynalite::start();
    let store = Arc::new(store(&dynalite).await);
    for i in 0..20 {
        store
            .add(connection(&format!("c{i}"), now_ms()))
            .await
            .unwrap();
    }
    let attempts = (0..20).map(|i| {
        let store = store.clone();
        // Different letter cases race too: uniqueness is case-insensitive.
        let name = if i % 2 == 0 { "Zoe" } else { "zOE" };
        tokio::spawn(async move { register(&store, &format!("c{i}"), name).await })
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Ok(Ok(_))))
        .map(|(i, _)| i)
        .collect();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::NameTaken))))
        .count();
    assert_eq!((winners.len(), taken), (1, 19), "{results:?}");
    let winner = format!("c{}", winners[0]);
    assert_eq!(store.holder("ZOE").await.unwrap(), Some(winner.clone()));
    let lobby = store.members(LOBBY).await.unwrap();
    assert_eq!(lobby.len(), 1, "only the winner is in the lobby: {lobby:?}");
    assert_eq!(lobby[0].connection_id, winner);
}

#[tokio::test]
async fn rows_carry_connected_at_and_a_ttl_three_hours_later() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let connected_at = now_ms();
    let id = "L0SM9cOFvHcCIhw=";
    store.add(connection(id, connected_at)).await.unwrap();
    register(&store, id, "ana").await.unwrap();
    store.join(id, "ana", "rust").await.unwrap();
    let expected = connected_at / 1000 + 3 * 3600;
    for (table, key) in [
        ("Connections", vec![("connectionId", id)]),
        ("Names", vec![("nameKey", "ana")]),
        ("Members", vec![("room", "lobby"), ("connectionId", id)]),
        ("Members", vec![("room", "rust"), ("connectionId", id)]),
    ] {
        let item = raw_item(&dynalite, table, &key)
            .await
            .unwrap_or_else(|| panic!("{table} {key:?} exists"));
        assert_eq!(ttl_of(&item), expected, "{table} {key:?}");
    }
    let row = raw_item(&dynalite, "Connections", &[("connectionId", id)])
        .await
        .unwrap();
    let mut set = row["rooms"].as_ss().unwrap().clone();
    set.sort();
    assert_eq!(set, rooms(&["lobby", "rust"]));
    let names = raw_item(&dynalite, "Names", &[("nameKey", "ana")])
        .await
        .unwrap();
    assert_eq!(names["tokenHash"].as_s().unwrap(), &format!("t-{id}"));
    let member = raw_item(
        &dynalite,
        "Members",
        &[("room", "rust"), ("connectionId", id)],
    )
    .await
    .unwrap();
    assert_eq!(member["userName"].as_s().unwrap(), "ana");

    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.connected_at, connected_at);
    assert_eq!(got.user_name.as_deref(), Some("ana"));
    assert_eq!(got.rooms, rooms(&["lobby", "rust"]));
}

#[tokio::test]
async fn rows_past_their_ttl_count_as_gone_and_free_their_name() {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let four_hours_ago = now_ms() - 4 * 3600 * 1000;
    store.add(connection("old", four_hours_ago)).await.unwrap();
    // What a lost $disconnect leaves behind: the row, its name claim and its member
    // row, all expired.
    let expired = (four_hours_ago / 1000 + 3 * 3600).to_string();
    let client = local_client(&dynalite.endpoint());
    client
        .put_item()
        .table_name("Names")
        .item("nameKey", S("ana".into()))
        .item("userName", S("ana".into()))
        .item("connectionId", S("old".into()))
        .item("tokenHash", S("t-old".into()))
        .item("ttl", N(expired.clone()))
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name("Members")
        .item("room", S("lobby".into()))
        .item("connectionId", S("old".into()))
        .item("userName", S("ana".into()))
        .item("ttl", N(expired))
        .send()
        .await
        .unwrap();
    store.add(connection("new", now_ms())).await.unwrap();
    assert!(store.get("old").await.unwrap().is_none());
    assert!(store.members(LOBBY).await.unwrap().is_empty());
    assert!(store
        .members_among(LOBBY, &["old".to_string()])
        .await
        .unwrap()
        .is_empty());
    register(&store, "new", "Ana")
        .await
        .expect("an expired claim does not hold the name");
    assert_eq!(members(&store, LOBBY).await, vec![user("Ana", "new")]);
}

#[tokio::test]
async fn removing_twice_is_fine_and_frees_the_name_and_the_rooms() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    open_as(&store, "a", "ana").await;
    store.join("a", "ana", "rust").await.unwrap();
    let removed = store
        .remove("a")
        .await
        .unwrap()
        .expect("first remove returns the row");
    assert_eq!(removed.user_name.as_deref(), Some("ana"));
    assert_eq!(removed.rooms, rooms(&["lobby", "rust"]));
    assert_eq!(store.remove("a").await.unwrap(), None);
    assert!(store.members(LOBBY).await.unwrap().is_empty());
    assert!(store.members("rust").await.unwrap().is_empty());
    assert_eq!(store.holder("ana").await.unwrap(), None);
    store.add(connection("b", now_ms())).await.unwrap();
    register(&store, "b", "ANA")
        .await
        .expect("the name is free");
}

#[tokio::test]
async fn rename_frees_the_old_name_and_renames_every_membership() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    store.add(connection("a", now_ms())).await.unwrap();
    store.add(connection("b", now_ms())).await.unwrap();
    let first = register(&store, "a", "ana").await.unwrap();
    assert_eq!(first.previous, None);
    assert_eq!(first.rooms, rooms(&["lobby"]));
    assert_eq!(first.taken_over, None);
    store.join("a", "ana", "rust").await.unwrap();
    let renamed = register(&store, "a", "bea").await.unwrap();
    assert_eq!(renamed.previous.as_deref(), Some("ana"));
    assert_eq!(renamed.rooms, rooms(&["lobby", "rust"]));
    assert_eq!(renamed.taken_over, None);
    assert!(matches!(
        register(&store, "b", "Bea").await,
        Err(StoreError::NameTaken)
    ));
    register(&store, "b", "ana")
        .await
        .expect("the old name was freed");
    assert_eq!(
        store.get("a").await.unwrap().unwrap().user_name.as_deref(),
        Some("bea")
    );
    assert_eq!(members(&store, "rust").await, vec![user("bea", "a")]);
    assert_eq!(
        members(&store, LOBBY).await,
        vec![user("bea", "a"), user("ana", "b")]
    );
}

#[tokio::test]
async fn registering_a_closed_connection_fails_and_leaves_the_name_free() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    assert!(matches!(
        register(&store, "ghost", "ana").await,
        Err(StoreError::NoSuchConnection(_))
    ));
    store.add(connection("a", now_ms())).await.unwrap();
    register(&store, "a", "ana")
        .await
        .expect("no claim was left behind");
    assert_eq!(members(&store, LOBBY).await, vec![user("ana", "a")]);
}

#[tokio::test]
async fn a_stopped_dynamodb_is_an_error_not_a_hang() {
    let mut dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    dynalite.stop();
    let started = std::time::Instant::now();
    let err = store.members(LOBBY).await.expect_err("the store is down");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the SDK's error is kept as the cause: {err:?}"
    );
    assert!(matches!(
        store
            .history(LOBBY, &HistoryPage::Latest, 10, now_secs())
            .await,
        Err(StoreError::Unavailable { .. })
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

// ---- resume tokens --------------------------------------------------------------------

#[tokio::test]
async fn a_resume_moves_the_name_and_rooms_and_removes_the_old_connection() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    open_as(&store, "old", "ana").await;
    store.join("old", "ana", "rust").await.unwrap();
    store.join("old", "ana", "go").await.unwrap();
    // The new connection had a name and a room of its own.
    open_as(&store, "new", "bob").await;
    store.join("new", "bob", "rust").await.unwrap();
    store.join("new", "bob", "zig").await.unwrap();
    open_as(&store, "other", "cai").await;
    store.join("other", "cai", "go").await.unwrap();

    let registration = resume(&store, "new", "Ana", "t-new-2", "t-old")
        .await
        .unwrap();
    assert_eq!(registration.previous.as_deref(), Some("bob"));
    assert_eq!(registration.rooms, rooms(&["go", "lobby", "rust", "zig"]));
    let old = registration
        .taken_over
        .expect("the old connection, as it was");
    assert_eq!(old.connection_id, "old");
    assert_eq!(old.user_name.as_deref(), Some("ana"));
    assert_eq!(old.rooms, rooms(&["go", "lobby", "rust"]));

    assert_eq!(store.get("old").await.unwrap(), None);
    assert_eq!(store.holder("ana").await.unwrap().as_deref(), Some("new"));
    assert_eq!(store.holder("bob").await.unwrap(), None, "bob is freed");
    let new = store.get("new").await.unwrap().unwrap();
    assert_eq!(new.user_name.as_deref(), Some("Ana"));
    assert_eq!(new.rooms, rooms(&["go", "lobby", "rust", "zig"]));
    assert_eq!(members(&store, "rust").await, vec![user("Ana", "new")]);
    assert_eq!(
        members(&store, "go").await,
        vec![user("Ana", "new"), user("cai", "other")]
    );
    assert_eq!(
        members(&store, LOBBY).await,
        vec![user("Ana", "new"), user("cai", "other")]
    );
    // The token is used up; the new one works.
    store.add(connection("third", now_ms())).await.unwrap();
    assert!(matches!(
        resume(&store, "third", "ana", "t-3", "t-old").await,
        Err(StoreError::NameTaken)
    ));
    let again = resume(&store, "third", "ana", "t-3", "t-new-2")
        .await
        .unwrap();
    assert_eq!(
        again.taken_over.map(|c| c.connection_id).as_deref(),
        Some("new")
    );
}

#[tokio::test]
async fn a_resume_keeps_the_new_connection_within_the_room_limit() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    open_as(&store, "old", "ana").await;
    for i in 0..19 {
        store.join("old", "ana", &format!("o{i:02}")).await.unwrap();
    }
    open_as(&store, "new", "bob").await;
    for room in ["n1", "n2", "o00"] {
        store.join("new", "bob", room).await.unwrap();
    }
    let registration = resume(&store, "new", "ana", "t2", "t-old").await.unwrap();
    assert_eq!(registration.rooms.len(), 20, "{:?}", registration.rooms);
    let new = store.get("new").await.unwrap().unwrap();
    assert_eq!(new.rooms, registration.rooms);
    for room in ["lobby", "n1", "n2", "o00"] {
        assert!(new.is_in(room), "kept its own {room}");
    }
    let mut member_rows = 0;
    for room in &registration.rooms {
        assert_eq!(
            members(&store, room).await,
            vec![user("ana", "new")],
            "{room}"
        );
        member_rows += 1;
    }
    assert_eq!(member_rows, 20);
    // Rooms past the cap are not the new connection's, and the old one is gone from them.
    for room in (0..19).map(|i| format!("o{i:02}")) {
        if !registration.rooms.contains(&room) {
            assert!(store.members(&room).await.unwrap().is_empty(), "{room}");
        }
    }
}

#[tokio::test]
async fn a_wrong_token_is_name_taken_and_changes_nothing() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    open_as(&store, "old", "ana").await;
    store.join("old", "ana", "rust").await.unwrap();
    store.add(connection("new", now_ms())).await.unwrap();
    assert!(matches!(
        resume(&store, "new", "ana", "t2", "not-the-token").await,
        Err(StoreError::NameTaken)
    ));
    assert_eq!(store.holder("ana").await.unwrap().as_deref(), Some("old"));
    assert_eq!(
        store.get("old").await.unwrap().unwrap().rooms,
        rooms(&["lobby", "rust"])
    );
    assert_eq!(members(&store, "rust").await, vec![user("ana", "old")]);
    assert_eq!(store.get("new").await.unwrap().unwrap().user_name, None);
    // The holder's own token still works.
    resume(&store, "new", "ana", "t2", "t-old").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_resumes_with_one_token_have_exactly_one_winner() {
    let dynalite = Dynalite::start();
    let store = Arc::new(store(&dynalite).await);
    for _round in 0..5 {
        store.remove("a").await.unwrap();
        store.remove("b").await.unwrap();
        open_as(&store, "old", "ana").await;
        store.join("old", "ana", "rust").await.unwrap();
        store.add(connection("a", now_ms())).await.unwrap();
        store.add(connection("b", now_ms())).await.unwrap();
        let racers = ["a", "b"].map(|id| {
            let store = store.clone();
            tokio::spawn(
                async move { resume(&store, id, "ana", &format!("t-{id}"), "t-old").await },
            )
        });
        let results = futures::future::join_all(racers).await;
        let results: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
        let winners: Vec<&str> = ["a", "b"]
            .into_iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(StoreError::NameTaken))),
            "{results:?}"
        );
        let winner = winners[0];
        let won = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
        assert_eq!(
            won.taken_over.as_ref().map(|c| c.connection_id.as_str()),
            Some("old")
        );
        assert_eq!(store.holder("ana").await.unwrap().as_deref(), Some(winner));
        assert_eq!(members(&store, "rust").await, vec![user("ana", winner)]);
        assert_eq!(store.get("old").await.unwrap(), None);
        let loser = if winner == "a" { "b" } else { "a" };
        let loser_row = store.get(loser).await.unwrap().unwrap();
        assert_eq!((loser_row.user_name, loser_row.rooms), (None, vec![]));
        store.remove(winner).await.unwrap();
    }
}

// ---- rooms ----------------------------------------------------------------------------

#[tokio::test]
async fn membership_is_read_across_query_pages() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await.with_page_size(2);
    for i in 0..8 {
        let id = format!("c{i}");
        open_as(&store, &id, &format!("user{i}")).await;
        if i < 5 {
            assert_eq!(
                store.join(&id, &format!("user{i}"), "rust").await.unwrap(),
                Joined::Added
            );
        }
    }
    let expected: Vec<User> = (0..5)
        .map(|i| user(&format!("user{i}"), &format!("c{i}")))
        .collect();
    assert_eq!(
        members(&store, "rust").await,
        expected,
        "5 members in pages of 2"
    );
    assert_eq!(store.members(LOBBY).await.unwrap().len(), 8);
    assert!(store.members("empty").await.unwrap().is_empty());

    let ids: Vec<String> = ["c0", "c4", "c5", "missing", "c0"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut among = store.members_among("rust", &ids).await.unwrap();
    among.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    assert_eq!(among, vec![user("user0", "c0"), user("user4", "c4")]);
    let hundred: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    assert_eq!(store.members_among(LOBBY, &hundred).await.unwrap().len(), 8);
}

#[tokio::test]
async fn join_twice_is_already_and_leave_says_whether_it_was_in() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    open_as(&store, "a", "ana").await;
    assert_eq!(store.join("a", "ana", "rust").await.unwrap(), Joined::Added);
    assert_eq!(
        store.join("a", "ana", "rust").await.unwrap(),
        Joined::Already
    );
    assert_eq!(members(&store, "rust").await, vec![user("ana", "a")]);
    assert!(store.leave("a", "rust").await.unwrap());
    assert!(!store.leave("a", "rust").await.unwrap());
    assert!(store.members("rust").await.unwrap().is_empty());
    assert_eq!(
        store.get("a").await.unwrap().unwrap().rooms,
        rooms(&["lobby"])
    );
    assert!(!store.leave("ghost", "rust").await.unwrap());
    assert!(matches!(
        store.join("ghost", "gus", "rust").await,
        Err(StoreError::NoSuchConnection(_))
    ));
    assert!(
        store.members("rust").await.unwrap().is_empty(),
        "no row for a ghost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_five_concurrent_joins_end_in_exactly_twenty_rooms() {
    let dynalite = Dynalite::start();
    let store = Arc::new(store(&dynalite).await);
    open_as(&store, "a", "ana").await;
    let joins = (0..25).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.join("a", "ana", &format!("r{i:02}")).await })
    });
    let results: Vec<_> = futures::future::join_all(joins)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let added = results
        .iter()
        .filter(|r| matches!(r, Ok(Joined::Added)))
        .count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::RoomLimit)))
        .count();
    assert_eq!((added, refused), (19, 6), "{results:?}");
    let row = store.get("a").await.unwrap().unwrap();
    assert_eq!(row.rooms.len(), 20);
    let mut member_of = BTreeSet::new();
    for room in std::iter::once(LOBBY.to_string()).chain((0..25).map(|i| format!("r{i:02}"))) {
        if members(&store, &room).await == vec![user("ana", "a")] {
            member_of.insert(room);
        }
    }
    assert_eq!(
        member_of.into_iter().collect::<Vec<_>>(),
        row.rooms,
        "a member row for exactly the rooms in the set"
    );
}

/// The rooms among `candidates` where `id` has a member row.
async fn member_rows_of(store: &DynamoStore, id: &str, candidates: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for room in candidates {
        if store
            .members(room)
            .await
            .unwrap()
            .iter()
            .any(|m| m.connection_id == id)
        {
            found.push(room.clone());
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_racing_a_disconnect_leaves_no_member_row() {
    let dynalite = Dynalite::start();
    let store = Arc::new(store(&dynalite).await);
    for round in 0..10 {
        let id = format!("a{round}");
        open_as(&store, &id, &format!("ana{round}")).await;
        let joining = {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.join(&id, "ana", "rust").await })
        };
        let removing = {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.remove(&id).await })
        };
        let (joined, removed) = (joining.await.unwrap(), removing.await.unwrap());
        assert!(removed.unwrap().is_some());
        assert!(
            matches!(
                joined,
                Ok(Joined::Added) | Err(StoreError::NoSuchConnection(_))
            ),
            "{joined:?}"
        );
        assert!(
            store.members("rust").await.unwrap().is_empty(),
            "round {round}: {joined:?}"
        );
        assert!(store.members(LOBBY).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joins_and_leaves_racing_on_one_room_keep_member_rows_and_rooms_in_step() {
    let dynalite = Dynalite::start();
    let store = Arc::new(store(&dynalite).await);
    open_as(&store, "a", "ana").await;
    let candidates = rooms(&["lobby", "rust"]);
    for round in 0..30 {
        let ops = (0..4).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                if (i + round) % 2 == 0 {
                    store.join("a", "ana", "rust").await.map(|_| ())
                } else {
                    store.leave("a", "rust").await.map(|_| ())
                }
            })
        });
        for done in futures::future::join_all(ops).await {
            done.unwrap().unwrap();
        }
        let set = store.get("a").await.unwrap().unwrap().rooms;
        assert_eq!(
            member_rows_of(&store, "a", &candidates).await,
            set,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_racing_a_join_stays_within_the_room_limit() {
    let dynalite = Dynalite::start();
    let store = Arc::new(store(&dynalite).await);
    let mut candidates = rooms(&["lobby", "x"]);
    for round in 0..5 {
        let (old, new) = (format!("old{round}"), format!("new{round}"));
        open_as(&store, &old, &format!("ana{round}")).await;
        for i in 0..5 {
            let room = format!("o{i}");
            store.join(&old, "ana", &room).await.unwrap();
            candidates.push(room);
        }
        open_as(&store, &new, &format!("bob{round}")).await;
        for i in 0..18 {
            let room = format!("n{i:02}");
            store.join(&new, "bob", &room).await.unwrap();
            candidates.push(room);
        }
        candidates.sort();
        candidates.dedup();
        let resuming = {
            let (store, new, old) = (store.clone(), new.clone(), old.clone());
            tokio::spawn(async move {
                resume(
                    &store,
                    &new,
                    &format!("ana{round}"),
                    "t2",
                    &format!("t-{old}"),
                )
                .await
            })
        };
        let joining = {
            let (store, new) = (store.clone(), new.clone());
            tokio::spawn(async move { store.join(&new, "bob", "x").await })
        };
        let registration = resuming.await.unwrap().unwrap();
        let joined = joining.await.unwrap();
        assert!(
            matches!(joined, Ok(Joined::Added) | Err(StoreError::RoomLimit)),
            "{joined:?}"
        );
        assert_eq!(registration.taken_over.unwrap().connection_id, old);
        let set = store.get(&new).await.unwrap().unwrap().rooms;
        assert_eq!(set.len(), 20, "round {round}: {set:?}");
        assert_eq!(member_rows_of(&store, &new, &candidates).await, set);
        assert!(member_rows_of(&store, &old, &candidates).await.is_empty());
        store.remove(&new).await.unwrap();
    }
}

// ---- history --------------------------------------------------------------------------

fn stored(room: &str, id: &str, text: &str, expires_at: i64) -> StoredMessage {
    StoredMessage {
        room: room.into(),
        message_id: id.into(),
        sender: "ana".into(),
        sender_id: "a".into(),
        message: text.into(),
        timestamp: 1_764_316_800_000,
        expires_at,
        to: None,
    }
}

fn texts(messages: &[StoredMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.message.as_str()).collect()
}

#[tokio::test]
async fn history_pages_both_ways_oldest_first_and_says_when_more_follow() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let now = now_secs();
    let base = 1_764_316_800_000u64;
    // An expired message before the seven live ones, and one in another room.
    let expired_id = new_message_id(base);
    store
        .append(&stored("rust", &expired_id, "gone", now - 1))
        .await
        .unwrap();
    let ids: Vec<String> = (0..7).map(|i| new_message_id(base + 10 + 10 * i)).collect();
    for (i, id) in ids.iter().enumerate() {
        store
            .append(&stored("rust", id, &format!("m{i}"), now + 3600))
            .await
            .unwrap();
    }
    store
        .append(&stored(
            "go",
            &new_message_id(base + 5),
            "elsewhere",
            now + 3600,
        ))
        .await
        .unwrap();

    let page = |p: HistoryPage, limit: usize| {
        let store = &store;
        async move { store.history("rust", &p, limit, now).await.unwrap() }
    };
    let latest = page(HistoryPage::Latest, 3).await;
    assert_eq!(
        (texts(&latest.messages), latest.more),
        (vec!["m4", "m5", "m6"], true)
    );
    let before = page(HistoryPage::Before(ids[4].clone()), 3).await;
    assert_eq!(
        (texts(&before.messages), before.more),
        (vec!["m1", "m2", "m3"], true)
    );
    let oldest = page(HistoryPage::Before(ids[1].clone()), 3).await;
    assert_eq!((texts(&oldest.messages), oldest.more), (vec!["m0"], false));
    let all = page(HistoryPage::Latest, 7).await;
    assert_eq!((all.messages.len(), all.more), (7, false));
    assert_eq!(all.messages[0], stored("rust", &ids[0], "m0", now + 3600));

    let after = page(HistoryPage::After(ids[2].clone()), 3).await;
    assert_eq!(
        (texts(&after.messages), after.more),
        (vec!["m3", "m4", "m5"], true)
    );
    let newest = page(HistoryPage::After(ids[3].clone()), 3).await;
    assert_eq!(
        (texts(&newest.messages), newest.more),
        (vec!["m4", "m5", "m6"], false)
    );
    let nothing = page(HistoryPage::After(ids[6].clone()), 3).await;
    assert_eq!((nothing.messages.len(), nothing.more), (0, false));
    // From before everything: the expired row is skipped, not counted.
    let first = page(HistoryPage::After(expired_id.clone()), 2).await;
    assert_eq!(
        (texts(&first.messages), first.more),
        (vec!["m0", "m1"], true)
    );
    let from_start = page(HistoryPage::After("0".repeat(26)), 2).await;
    assert_eq!(
        (texts(&from_start.messages), from_start.more),
        (vec!["m0", "m1"], true)
    );
    // A well-formed id that is not stored pages from where it would sort.
    let unknown = new_message_id(base + 35);
    let around = page(HistoryPage::Before(unknown), 10).await;
    assert_eq!(texts(&around.messages), vec!["m0", "m1", "m2"]);
    assert_eq!(
        store
            .history("empty", &HistoryPage::Latest, 5, now)
            .await
            .unwrap(),
        HistorySlice::default()
    );
}

#[tokio::test]
async fn message_rows_carry_their_ttl() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let id = new_message_id(1_764_316_800_000);
    let expires_at = now_secs() + 7 * 24 * 3600;
    store
        .append(&stored("rust", &id, "hi", expires_at))
        .await
        .unwrap();
    let item = raw_item(
        &dynalite,
        "Messages",
        &[("room", "rust"), ("messageId", &id)],
    )
    .await
    .expect("the message row");
    assert_eq!(ttl_of(&item), expires_at);
    assert_eq!(item["timestamp"].as_n().unwrap(), "1764316800000");
    assert_eq!(item["senderId"].as_s().unwrap(), "a");
}

// ---- the chat rules on this store -------------------------------------------------------

async fn send(
    store: &DynamoStore,
    gateway: &RecordingGateway,
    id: &str,
    frame: Value,
) -> Option<Value> {
    let retrying = Retrying::new(gateway);
    let chat = Rules::new(store, &retrying).with_limits(Limits::UNLIMITED);
    let text = frame.to_string();
    chat.frame(Route::of_frame(&text), id, Frame::Text(&text))
        .await
        .map(|reply| serde_json::from_str(&reply.to_json()).unwrap())
}

fn code(reply: Option<Value>) -> String {
    let reply = reply.expect("a reply");
    assert_eq!(reply["action"], "error", "{reply}");
    reply["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_chat_on_dynamodb_refuses_rooms_it_is_not_in_and_a_twenty_first_room() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let gateway = RecordingGateway::new();
    for (id, name) in [("A", "ana"), ("B", "bia")] {
        store.add(connection(id, now_ms())).await.unwrap();
        let reply = send(
            &store,
            &gateway,
            id,
            json!({"action":"register","userName":name,"requestId":"r"}),
        )
        .await
        .unwrap();
        assert_eq!(reply["action"], "registered", "{reply}");
    }
    let reply = send(
        &store,
        &gateway,
        "B",
        json!({"action":"join","room":"rust"}),
    )
    .await
    .unwrap();
    assert_eq!(reply["action"], "joined", "{reply}");
    for frame in [
        json!({"action":"message","room":"rust","message":"hi"}),
        json!({"action":"list","room":"rust"}),
        json!({"action":"history","room":"rust"}),
        json!({"action":"leave","room":"rust"}),
    ] {
        assert_eq!(
            code(send(&store, &gateway, "A", frame.clone()).await),
            "not_a_member",
            "{frame}"
        );
    }
    for i in 0..19 {
        let reply = send(
            &store,
            &gateway,
            "A",
            json!({"action":"join","room":format!("r{i}")}),
        )
        .await
        .unwrap();
        assert_eq!(reply["action"], "joined", "{reply}");
    }
    assert_eq!(
        code(
            send(
                &store,
                &gateway,
                "A",
                json!({"action":"join","room":"rust"})
            )
            .await
        ),
        "limit_reached"
    );
    assert_eq!(store.get("A").await.unwrap().unwrap().rooms.len(), 20);
    // Joining one it is in still answers.
    let reply = send(&store, &gateway, "A", json!({"action":"join","room":"r0"}))
        .await
        .unwrap();
    assert_eq!(reply["action"], "joined", "{reply}");

    // A message to a room is stored, delivered to its members and found in history.
    let sent = send(
        &store,
        &gateway,
        "B",
        json!({"action":"message","message":"to the lobby","requestId":"m"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (sent["action"].as_str(), sent["delivered"].as_u64()),
        (Some("sent"), Some(1))
    );
    let history = send(&store, &gateway, "A", json!({"action":"history"}))
        .await
        .unwrap();
    assert_eq!(
        history["messages"][0]["message"], "to the lobby",
        "{history}"
    );
    assert_eq!(history["messages"][0]["messageId"], sent["messageId"]);
    assert_eq!(history["more"], false);
}

/// A message to a room reads that room's members and nothing else: in a chat of 10,000
/// registered connections, a message to a 10-member room reads about ten items.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_to_a_small_room_reads_its_members_not_everyone() {
    const EVERYONE: usize = 10_000;
    let dynalite = Dynalite::start();
    let (client, counter) = counting_client(&dynalite.endpoint());
    let store = stores::dynamo_store_on(client).await;

    let started = std::time::Instant::now();
    let ids = store.seed_registered(EVERYONE).await.unwrap();
    // Ten of them (spread over the table) are in a small room.
    let small: Vec<&String> = ids.iter().step_by(EVERYONE / 10).collect();
    for id in &small {
        store.join(id, &format!("u{id}"), "small").await.unwrap();
    }
    let setup = started.elapsed();
    assert_eq!(store.members(LOBBY).await.unwrap().len(), EVERYONE);
    assert_eq!(store.members("small").await.unwrap().len(), 10);

    counter.take();
    let gateway = RecordingGateway::new();
    let sent = send(
        &store,
        &gateway,
        small[0],
        json!({"action":"message","room":"small","message":"hello small room","requestId":"m"}),
    )
    .await
    .unwrap();
    let (items_read, operations) = counter.take();
    println!(
        "setup of {EVERYONE} registered connections: {setup:?}; a message to a 10-member room read {items_read} items with {operations:?}"
    );
    assert_eq!(sent["action"], "sent", "{sent}");
    assert_eq!(sent["delivered"], 9);
    assert_eq!(gateway.pushed().len(), 9);
    assert!(!operations.contains(&"Scan"), "{operations:?}");
    assert!(
        items_read <= 15,
        "a message to 10 members read {items_read} items ({operations:?})"
    );
}

// ---- the rate-limit buckets on the Connections row --------------------------------------

fn now_us() -> Micros {
    now_ms() * 1000
}

/// The row as DynamoDB holds it.
async fn row(dynalite: &Dynalite, id: &str) -> Option<HashMap<String, AttributeValue>> {
    local_client(&dynalite.endpoint())
        .get_item()
        .table_name("Connections")
        .key("connectionId", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn each_bucket_lives_on_the_row_and_follows_its_rate() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    store.add(connection("a", now_ms())).await.unwrap();
    let limit = RateLimit::new(10.0, 2);
    let now = now_us();
    let admit = |at: Micros| store.admit("a", Bucket::Message, limit, at);

    assert_eq!(admit(now).await.unwrap(), Admission::Allowed);
    assert_eq!(admit(now).await.unwrap(), Admission::Allowed);
    let limited = |ms| Admission::Limited {
        retry_after: Duration::from_millis(ms),
    };
    assert_eq!(admit(now).await.unwrap(), limited(100));
    assert_eq!(admit(now + 40_000).await.unwrap(), limited(60));
    assert_eq!(admit(now + 100_000).await.unwrap(), Admission::Allowed);
    let item = row(&dynalite, "a").await.expect("the row");
    assert_eq!(
        item["messageTat"].as_n().unwrap(),
        &(now + 300_000).to_string()
    );
    assert!(
        !item.contains_key("actionTat"),
        "an unused bucket is not written"
    );

    // An hour idle saves no more than the burst.
    let later = now + 3_600_000_000;
    assert_eq!(admit(later).await.unwrap(), Admission::Allowed);
    assert_eq!(admit(later).await.unwrap(), Admission::Allowed);
    assert_eq!(admit(later).await.unwrap(), limited(100));

    // The other bucket is its own; registering keeps both.
    assert_eq!(
        store
            .admit("a", Bucket::Action, limit, later)
            .await
            .unwrap(),
        Admission::Allowed
    );
    register(&store, "a", "ana").await.unwrap();
    assert_eq!(admit(later).await.unwrap(), limited(100));
    assert_eq!(
        store.get("a").await.unwrap().unwrap().user_name.as_deref(),
        Some("ana")
    );
}

#[tokio::test]
async fn a_gone_connection_is_not_limited_and_its_bucket_does_not_bring_it_back() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let limit = RateLimit::new(0.001, 1);
    let now = now_us();
    for _ in 0..3 {
        assert_eq!(
            store
                .admit("ghost", Bucket::Message, limit, now)
                .await
                .unwrap(),
            Admission::Gone
        );
    }
    assert_eq!(row(&dynalite, "ghost").await, None, "no row was created");

    store.add(connection("a", now_ms())).await.unwrap();
    assert_eq!(
        store.admit("a", Bucket::Action, limit, now).await.unwrap(),
        Admission::Allowed
    );
    assert!(matches!(
        store.admit("a", Bucket::Action, limit, now).await.unwrap(),
        Admission::Limited { .. }
    ));
    store.remove("a").await.unwrap();
    assert_eq!(
        store.admit("a", Bucket::Action, limit, now).await.unwrap(),
        Admission::Gone
    );
    assert_eq!(row(&dynalite, "a").await, None);
}

/// Several Lambdas handling one connection at once: DynamoDB's conditional updates decide,
/// so a hundred simultaneous `message` frames get exactly the burst through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_simultaneous_messages_on_one_connection_get_exactly_the_burst_through() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    for (id, name) in [("a", "ana"), ("b", "bia")] {
        store.add(connection(id, now_ms())).await.unwrap();
        register(&store, id, name).await.unwrap();
    }
    let recorder = RecordingGateway::new();
    let gateway = Retrying::new(&recorder);
    // So slow a refill that none happens during the test.
    let limits = Limits {
        message: RateLimit::new(0.001, 20),
        ..Limits::DEFAULT
    };
    let chat = Rules::new(&store, &gateway).with_limits(limits);
    let frames: Vec<String> = (0..100)
        .map(|i| {
            json!({"action":"message","message":format!("m{i}"),"requestId":format!("m{i}")})
                .to_string()
        })
        .collect();
    let replies = futures::future::join_all(
        frames
            .iter()
            .map(|text| chat.frame(Route::Message, "a", Frame::Text(text))),
    )
    .await;
    let mut sent = 0;
    let mut limited = 0;
    for (i, reply) in replies.into_iter().enumerate() {
        let reply: Value = serde_json::from_str(&reply.expect("a reply").to_json()).unwrap();
        assert_eq!(reply["requestId"], format!("m{i}"));
        match (reply["action"].as_str(), reply["code"].as_str()) {
            (Some("sent"), _) => sent += 1,
            (Some("error"), Some("rate_limited")) => {
                // A thousand seconds per message: the wait is hundreds of seconds or more.
                assert!(reply["retryAfterMs"].as_u64().unwrap() > 100_000, "{reply}");
                limited += 1;
            }
            _ => panic!("unexpected reply {reply}"),
        }
    }
    assert_eq!((sent, limited), (20, 80));
    assert_eq!(
        recorder.pushed().len(),
        20,
        "only allowed messages went out"
    );
}

/// On AWS a refused update returns the row (`ReturnValuesOnConditionCheckFailure`), so a
/// frame of a flood costs one update. dynalite does not return it, so this DynamoDB
/// answers as AWS documents: every update refused, with the row.
#[tokio::test]
async fn a_refused_update_that_returns_the_row_limits_with_one_request() {
    let now = now_us();
    let limit = RateLimit::new(10.0, 20);
    let tat = limit.latest_allowed_tat(now) + 250_000;
    let refusal = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
        "Item": {"connectionId": {"S": "a"}, "messageTat": {"N": tat.to_string()}},
    });
    let (endpoint, requests) = canned_dynamodb(refusal.to_string()).await;
    let store = DynamoStore::new(local_client(&endpoint), stores::tables());
    assert_eq!(
        store.admit("a", Bucket::Message, limit, now).await.unwrap(),
        Admission::Limited {
            retry_after: Duration::from_millis(250)
        }
    );
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let sent: Value = serde_json::from_str(&requests[0]).unwrap();
    assert_eq!(sent["ReturnValuesOnConditionCheckFailure"], "ALL_OLD");
    assert_eq!(sent["ExpressionAttributeNames"]["#tat"], "messageTat");
}

/// An HTTP endpoint that answers every request with a DynamoDB error `body` (status 400)
/// and keeps each request body.
async fn canned_dynamodb(body: String) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (body, seen) = (body.clone(), seen.clone());
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut request = vec![0; length];
                    if socket.read_exact(&mut request).await.is_err() {
                        return;
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&request).into_owned());
                    let response = format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\n\
                         x-amzn-requestid: canned\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, requests)
}
