//! The DynamoDB store with the real SDK client against dynalite on a free port.

use std::collections::HashSet;
use std::sync::Arc;
use webchat_backend::dynamo::local_client;
use webchat_backend::{Connection, ConnectionStore, DynamoStore, StoreError, TableNames};
use webchat_testkit::Dynalite;

async fn store(dynalite: &Dynalite) -> DynamoStore {
    let store = DynamoStore::new(
        local_client(&dynalite.endpoint()),
        TableNames {
            connections: "Connections".into(),
            names: "Names".into(),
        },
    );
    store
        .create_tables_if_missing()
        .await
        .expect("tables are created");
    store
}

fn connection(id: &str, connected_at: i64) -> Connection {
    Connection {
        connection_id: id.into(),
        connected_at,
        user_name: None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

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
        tokio::spawn(async move { store.register(&format!("c{i}"), name).await })
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::NameTaken))))
        .count();
    assert_eq!((winners, taken), (1, 19), "{results:?}");
    assert_eq!(store.registered().await.unwrap().len(), 1);
}

#[tokio::test]
async fn scans_read_every_page() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await.with_scan_page_size(4);
    for i in 0..25 {
        let id = format!("c{i:02}");
        store.add(connection(&id, now_ms())).await.unwrap();
        if i % 5 != 0 {
            store.register(&id, &format!("user{i}")).await.unwrap();
        }
    }
    let registered: HashSet<String> = store
        .registered()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    assert_eq!(
        registered.len(),
        20,
        "every registered row, across pages of 4"
    );
    let ids: Vec<String> = (0..25)
        .map(|i| format!("c{i:02}"))
        .chain(["missing".to_string()])
        .collect();
    assert_eq!(store.get_many(&ids).await.unwrap().len(), 25);
}

#[tokio::test]
async fn rows_carry_connected_at_and_a_ttl_three_hours_later() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let connected_at = now_ms();
    store
        .add(connection("L0SM9cOFvHcCIhw=", connected_at))
        .await
        .unwrap();
    store.register("L0SM9cOFvHcCIhw=", "ana").await.unwrap();
    let client = local_client(&dynalite.endpoint());
    for (table, key, value) in [
        ("Connections", "connectionId", "L0SM9cOFvHcCIhw="),
        ("Names", "nameKey", "ana"),
    ] {
        let item = client
            .get_item()
            .table_name(table)
            .key(
                key,
                aws_sdk_dynamodb::types::AttributeValue::S(value.into()),
            )
            .send()
            .await
            .unwrap()
            .item
            .expect("row exists");
        let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
        assert_eq!(ttl, connected_at / 1000 + 3 * 3600, "{table}");
    }
    let got = store.get("L0SM9cOFvHcCIhw=").await.unwrap().unwrap();
    assert_eq!(got.connected_at, connected_at);
    assert_eq!(got.user_name.as_deref(), Some("ana"));
}

#[tokio::test]
async fn rows_past_their_ttl_count_as_gone_and_free_their_name() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    let four_hours_ago = now_ms() - 4 * 3600 * 1000;
    store.add(connection("old", four_hours_ago)).await.unwrap();
    // What a lost $disconnect leaves behind: the row and its name claim, both expired.
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let expired = (four_hours_ago / 1000 + 3 * 3600).to_string();
    local_client(&dynalite.endpoint())
        .put_item()
        .table_name("Names")
        .item("nameKey", S("ana".into()))
        .item("userName", S("ana".into()))
        .item("connectionId", S("old".into()))
        .item("ttl", N(expired))
        .send()
        .await
        .unwrap();
    store.add(connection("new", now_ms())).await.unwrap();
    assert!(store.get("old").await.unwrap().is_none());
    assert!(store.registered().await.unwrap().is_empty());
    store
        .register("new", "Ana")
        .await
        .expect("an expired claim does not hold the name");
}

#[tokio::test]
async fn removing_twice_is_fine_and_frees_the_name() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    store.add(connection("a", now_ms())).await.unwrap();
    store.register("a", "ana").await.unwrap();
    let removed = store
        .remove("a")
        .await
        .unwrap()
        .expect("first remove returns the row");
    assert_eq!(removed.user_name.as_deref(), Some("ana"));
    assert_eq!(store.remove("a").await.unwrap(), None);
    store.add(connection("b", now_ms())).await.unwrap();
    store.register("b", "ANA").await.expect("the name is free");
}

#[tokio::test]
async fn rename_frees_the_old_name_and_keeps_the_new_one() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    store.add(connection("a", now_ms())).await.unwrap();
    store.add(connection("b", now_ms())).await.unwrap();
    assert_eq!(store.register("a", "ana").await.unwrap().previous, None);
    assert_eq!(
        store
            .register("a", "bea")
            .await
            .unwrap()
            .previous
            .as_deref(),
        Some("ana")
    );
    assert!(matches!(
        store.register("b", "Bea").await,
        Err(StoreError::NameTaken)
    ));
    store
        .register("b", "ana")
        .await
        .expect("the old name was freed");
    assert_eq!(
        store.get("a").await.unwrap().unwrap().user_name.as_deref(),
        Some("bea")
    );
}

#[tokio::test]
async fn registering_a_closed_connection_fails_and_leaves_the_name_free() {
    let dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    assert!(matches!(
        store.register("ghost", "ana").await,
        Err(StoreError::NoSuchConnection(_))
    ));
    store.add(connection("a", now_ms())).await.unwrap();
    store
        .register("a", "ana")
        .await
        .expect("no claim was left behind");
}

#[tokio::test]
async fn a_stopped_dynamodb_is_an_error_not_a_hang() {
    let mut dynalite = Dynalite::start();
    let store = store(&dynalite).await;
    dynalite.stop();
    let started = std::time::Instant::now();
    assert!(matches!(
        store.registered().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}
