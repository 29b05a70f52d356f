//! Fan-out beyond one invocation: a message to a room above the threshold is stored,
//! answered `sent` and queued as one job per shard, and each job pushes to its shard
//! with the route's 410 cleanup; on both stores (memory and dynalite), and the fan-out
//! function's handling of an SQS batch.

use crate::stores;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use webchat_backend::fanout_edge::{handle_sqs, is_sqs_event};
use webchat_backend::store::shards::shard_count;
use webchat_backend::{
    ConnectionStore, DownStore, DynamoStore, Fanout, FanoutJob, FanoutQueue, Frame, HistoryStore,
    Limits, MemoryStore, QueueError, RecordingGateway, RoomPush, Rules, Shard,
};
use webchat_shared_types::{HistoryPage, Route, ServerEvent};
use webchat_testkit::Dynalite;

/// A queue that keeps the jobs for the test to run, or refuses them all.
#[derive(Default)]
struct HeldJobs {
    jobs: Mutex<Vec<FanoutJob>>,
    refuse: bool,
}

impl HeldJobs {
    fn take(&self) -> Vec<FanoutJob> {
        std::mem::take(&mut *self.jobs.lock().unwrap())
    }
}

impl FanoutQueue for HeldJobs {
    fn enqueue(&self, jobs: Vec<FanoutJob>) -> BoxFuture<'_, Vec<(FanoutJob, QueueError)>> {
        Box::pin(async move {
            if self.refuse {
                return jobs
                    .into_iter()
                    .map(|job| {
                        let err = QueueError {
                            context: "the test's queue refuses everything".into(),
                            source: None,
                        };
                        (job, err)
                    })
                    .collect();
            }
            self.jobs.lock().unwrap().extend(jobs);
            Vec::new()
        })
    }
}

const ROOM: &str = "big";
/// Above the threshold (4) and split three members a shard: 4 shards.
const MEMBERS: usize = 10;

fn fanout(queue: &HeldJobs) -> Fanout<'_> {
    Fanout {
        queue,
        inline_limit: 4,
        shard_size: 3,
    }
}

fn id(i: usize) -> String {
    format!("conn{i:02}=")
}

async fn frame<S: ConnectionStore + HistoryStore>(
    rules: &Rules<'_, S, RecordingGateway>,
    connection_id: &str,
    body: Value,
) -> Value {
    let route = Route::from_key(body["action"].as_str().unwrap()).unwrap();
    let text = body.to_string();
    let reply = rules
        .frame(route, connection_id, Frame::Text(&text))
        .await
        .expect("a reply");
    serde_json::to_value(&reply).unwrap()
}

/// `count` registered connections, all in [`ROOM`].
async fn crowd<S: ConnectionStore + HistoryStore>(
    rules: &Rules<'_, S, RecordingGateway>,
    count: usize,
) {
    for i in 0..count {
        rules.connect(&id(i), None).await.unwrap();
        let registered = frame(
            rules,
            &id(i),
            json!({"action": "register", "userName": format!("user{i}"), "requestId": "r"}),
        )
        .await;
        assert_eq!(registered["action"], "registered", "{registered}");
        let joined = frame(
            rules,
            &id(i),
            json!({"action": "join", "room": ROOM, "requestId": "j"}),
        )
        .await;
        assert_eq!(joined["action"], "joined", "{joined}");
    }
}

fn messages_in_room(gateway: &RecordingGateway, connection_id: &str) -> Vec<String> {
    gateway
        .events_for(connection_id)
        .into_iter()
        .filter_map(|event| match event {
            ServerEvent::Message { room, message, .. } if room == ROOM => Some(message),
            _ => None,
        })
        .collect()
}

async fn sharded_message_is_queued_then_reaches_everyone_once<S>(store: S)
where
    S: ConnectionStore + HistoryStore,
{
    let gateway = RecordingGateway::new();
    let queue = HeldJobs::default();
    let rules = Rules::new(&store, &gateway).with_fanout(Some(fanout(&queue)));
    crowd(&rules, MEMBERS).await;
    gateway.clear();

    let sent = frame(
        &rules,
        &id(0),
        json!({"action": "message", "room": ROOM, "message": "hello all", "requestId": "m"}),
    )
    .await;
    assert_eq!(sent["action"], "sent", "{sent}");
    assert_eq!(sent["delivered"], MEMBERS - 1, "the members it goes to");
    // Answered before anyone got it: the pushes are the workers'.
    assert!(gateway.pushed().is_empty(), "{:?}", gateway.pushed());
    // ...and stored already, for anyone who looks.
    let stored = store
        .history(ROOM, &HistoryPage::Latest, 10, 0)
        .await
        .unwrap();
    assert_eq!(stored.messages.len(), 1);

    let jobs = queue.take();
    assert_eq!(jobs.len(), shard_count(MEMBERS, 3) as usize);
    // One member went away without a $disconnect: its shard's job finds it gone.
    gateway.mark_gone(&id(7));
    for job in &jobs {
        assert_eq!(job.except.as_deref(), Some(id(0).as_str()));
        rules.deliver_shard(job).await.expect("the shard is read");
    }
    for i in 1..MEMBERS {
        let got = messages_in_room(&gateway, &id(i));
        if i == 7 {
            assert!(got.is_empty());
        } else {
            assert_eq!(got, ["hello all"], "{} gets it exactly once", id(i));
        }
    }
    assert!(
        messages_in_room(&gateway, &id(0)).is_empty(),
        "not the sender"
    );
    assert_eq!(
        store.get(&id(7)).await.unwrap(),
        None,
        "the gone one is removed"
    );
    assert!(!all_shards(&store, 4).await.contains(&id(7)));
}

/// Every member of [`ROOM`] by its shards, each member at most once.
async fn all_shards<S: ConnectionStore>(store: &S, of: u32) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for shard in Shard::all(of) {
        for member in store.shard_members(ROOM, shard).await.unwrap() {
            assert!(shard.contains(&member.connection_id));
            assert!(seen.insert(member.connection_id), "in two shards");
        }
    }
    seen
}

async fn shards_follow_joins_leaves_and_closes<S>(store: S)
where
    S: ConnectionStore + HistoryStore,
{
    let gateway = RecordingGateway::new();
    let rules = Rules::new(&store, &gateway);
    crowd(&rules, MEMBERS).await;
    let left = frame(
        &rules,
        &id(3),
        json!({"action": "leave", "room": ROOM, "requestId": "l"}),
    )
    .await;
    assert_eq!(left["action"], "left", "{left}");
    rules.disconnect(&id(5)).await.unwrap();
    let members: BTreeSet<String> = store
        .members(ROOM)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.connection_id)
        .collect();
    assert_eq!(members.len(), MEMBERS - 2);
    for of in [1, 3, 7] {
        assert_eq!(all_shards(&store, of).await, members, "{of} shards");
    }
    assert_eq!(
        store.member_count(ROOM).await.unwrap(),
        (MEMBERS - 2) as u64
    );
    assert_eq!(store.members_up_to(ROOM, MEMBERS - 3).await.unwrap(), None);
    assert_eq!(
        store
            .members_up_to(ROOM, MEMBERS - 2)
            .await
            .unwrap()
            .map(|m| m.len()),
        Some(MEMBERS - 2)
    );
}

async fn small_rooms_and_refused_jobs_are_pushed_by_the_handler<S>(store: S)
where
    S: ConnectionStore + HistoryStore,
{
    let gateway = RecordingGateway::new();
    let queue = HeldJobs::default();
    let rules = Rules::new(&store, &gateway).with_fanout(Some(fanout(&queue)));
    crowd(&rules, 4).await;
    gateway.clear();
    let sent = frame(
        &rules,
        &id(0),
        json!({"action": "message", "room": ROOM, "message": "small", "requestId": "m"}),
    )
    .await;
    assert_eq!(sent["delivered"], 3);
    assert!(queue.take().is_empty(), "at the threshold: no jobs");
    for i in 1..4 {
        assert_eq!(messages_in_room(&gateway, &id(i)), ["small"]);
    }

    let refusing = HeldJobs {
        refuse: true,
        ..HeldJobs::default()
    };
    let rules = Rules::new(&store, &gateway).with_fanout(Some(fanout(&refusing)));
    for i in 4..MEMBERS {
        rules.connect(&id(i), None).await.unwrap();
        frame(
            &rules,
            &id(i),
            json!({"action": "register", "userName": format!("user{i}"), "requestId": "r"}),
        )
        .await;
        frame(
            &rules,
            &id(i),
            json!({"action": "join", "room": ROOM, "requestId": "j"}),
        )
        .await;
    }
    gateway.clear();
    let sent = frame(
        &rules,
        &id(0),
        json!({"action": "message", "room": ROOM, "message": "queue down", "requestId": "m"}),
    )
    .await;
    assert_eq!(sent["action"], "sent", "{sent}");
    for i in 1..MEMBERS {
        assert_eq!(
            messages_in_room(&gateway, &id(i)),
            ["queue down"],
            "{}",
            id(i)
        );
    }
}

async fn dynamo(dynalite: &Dynalite) -> DynamoStore {
    stores::dynamo_store(dynalite).await
}

#[tokio::test]
async fn in_memory_a_big_rooms_message_is_queued_by_shard_and_reaches_everyone_once() {
    sharded_message_is_queued_then_reaches_everyone_once(MemoryStore::new()).await;
}

#[tokio::test]
async fn on_dynamodb_a_big_rooms_message_is_queued_by_shard_and_reaches_everyone_once() {
    let dynalite = Dynalite::start();
    sharded_message_is_queued_then_reaches_everyone_once(dynamo(&dynalite).await).await;
}

#[tokio::test]
async fn in_memory_shards_follow_joins_leaves_and_closes() {
    shards_follow_joins_leaves_and_closes(MemoryStore::new()).await;
}

#[tokio::test]
async fn on_dynamodb_shards_follow_joins_leaves_and_closes() {
    let dynalite = Dynalite::start();
    shards_follow_joins_leaves_and_closes(dynamo(&dynalite).await).await;
}

#[tokio::test]
async fn in_memory_small_rooms_and_refused_jobs_are_pushed_by_the_handler() {
    small_rooms_and_refused_jobs_are_pushed_by_the_handler(MemoryStore::new()).await;
}

#[tokio::test]
async fn on_dynamodb_small_rooms_and_refused_jobs_are_pushed_by_the_handler() {
    let dynalite = Dynalite::start();
    small_rooms_and_refused_jobs_are_pushed_by_the_handler(dynamo(&dynalite).await).await;
}

#[tokio::test]
async fn on_dynamodb_concurrent_joins_lose_no_member_from_the_shards() {
    let dynalite = Dynalite::start();
    let store = dynamo(&dynalite).await;
    let gateway = RecordingGateway::new();
    let rules = Rules::new(&store, &gateway);
    let count = 40;
    for i in 0..count {
        rules.connect(&id(i), None).await.unwrap();
        frame(
            &rules,
            &id(i),
            json!({"action": "register", "userName": format!("user{i}"), "requestId": "r"}),
        )
        .await;
    }
    let joins = (0..count).map(|i| {
        let rules = &rules;
        async move {
            // Each joins twice and the even ones leave and come back, all at once.
            let join = json!({"action": "join", "room": ROOM, "requestId": "j"});
            frame(rules, &id(i), join.clone()).await;
            if i % 2 == 0 {
                frame(
                    rules,
                    &id(i),
                    json!({"action": "leave", "room": ROOM, "requestId": "l"}),
                )
                .await;
            }
            frame(rules, &id(i), join).await;
        }
    });
    futures::future::join_all(joins).await;
    let everyone: BTreeSet<String> = (0..count).map(id).collect();
    for of in [1, 5, 13] {
        assert_eq!(all_shards(&store, of).await, everyone, "{of} shards");
    }
}

fn sqs_event(bodies: &[(&str, String)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (message_id, body) in bodies {
        let mut message = SqsMessage::default();
        message.message_id = Some((*message_id).to_string());
        message.body = Some(body.clone());
        message.event_source = Some("aws:sqs".into());
        event.records.push(message);
    }
    event
}

fn job_for_everyone(of: u32, index: u32, text: &str) -> FanoutJob {
    FanoutJob {
        room: ROOM.into(),
        shard: Shard { index, of },
        except: None,
        push: RoomPush::Frame {
            frame: json!({"action": "note", "text": text}).to_string(),
        },
    }
}

#[tokio::test]
async fn the_fanout_function_names_only_the_failed_jobs_of_a_batch() {
    let store = MemoryStore::new();
    let gateway = RecordingGateway::new();
    crowd(&Rules::new(&store, &gateway), 6).await;
    gateway.clear();
    let event = sqs_event(&[
        ("m-0", job_for_everyone(2, 0, "one").to_body()),
        ("m-bad", "{\"not\": \"a job\"}".to_string()),
        ("m-1", job_for_everyone(2, 1, "one").to_body()),
    ]);
    let response = handle_sqs(&store, &gateway, &Limits::DEFAULT, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-bad"]);
    let mut reached: HashMap<String, usize> = HashMap::new();
    for (to, _) in gateway.pushed() {
        *reached.entry(to).or_default() += 1;
    }
    assert_eq!(reached.len(), 6, "both shards together: everyone");
    assert!(reached.values().all(|&n| n == 1), "{reached:?}");

    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json,
        json!({"batchItemFailures": [{"itemIdentifier": "m-bad"}]})
    );
}

#[tokio::test]
async fn a_job_whose_shard_cannot_be_read_is_reported_for_sqs_to_retry() {
    let gateway = RecordingGateway::new();
    let event = sqs_event(&[("m-0", job_for_everyone(1, 0, "x").to_body())]);
    let response = handle_sqs(&DownStore, &gateway, &Limits::DEFAULT, event).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "m-0");
}

#[test]
fn sqs_batches_are_told_from_websocket_events() {
    let sqs = serde_json::to_value(sqs_event(&[("m", "{}".into())])).unwrap();
    assert!(is_sqs_event(&sqs));
    let websocket =
        json!({"requestContext": {"routeKey": "message", "connectionId": "A="}, "body": "{}"});
    assert!(!is_sqs_event(&websocket));
}
