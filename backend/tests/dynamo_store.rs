//! The DynamoDB store with the real SDK client against dynalite on a free port.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use webchat_backend::dynamo::local_client;
use webchat_backend::limits::Micros;
use webchat_backend::{
    Admission, Bucket, Chat, Connection, ConnectionStore, DynamoStore, Frame, Limits, RateLimit,
    RecordingGateway, Retrying, StoreError, TableNames,
};
use webchat_shared_types::Route;
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
    store.register("a", "ana").await.unwrap();
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
        store.register(id, name).await.unwrap();
    }
    let recorder = RecordingGateway::new();
    let gateway = Retrying::new(&recorder);
    // So slow a refill that none happens during the test.
    let limits = Limits {
        message: RateLimit::new(0.001, 20),
        ..Limits::DEFAULT
    };
    let chat = Chat::new(&store, &gateway).with_limits(limits);
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
    let store = DynamoStore::new(
        local_client(&endpoint),
        TableNames {
            connections: "Connections".into(),
            names: "Names".into(),
        },
    );
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
