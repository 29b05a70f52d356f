//! Template mode's SQS: the fan-out queue and its event source mapping as the template
//! deploys them, with real sockets, the real binaries and the real `aws-sdk-sqs` client.
//! A big room's message reaches every member once through the queue and the fan-out
//! function; a job the function fails is received `maxReceiveCount` times and then waits
//! in the dead-letter queue, where the operator reads it with the SDK; bad calls get
//! SQS's own errors.

use crate::common::template_options;
use anyhow::{Context, Result};
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError as E;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use serde_json::{json, Value};
use std::time::Duration;
use webchat_local::{AccessKey, Config, Running};
use webchat_testkit::{Client, Dynalite, Incoming};

/// `webchat-local --template` in this process, on a dynalite of its own.
async fn start(overrides: &[(&str, &str)], visibility: Option<Duration>) -> (Running, Dynalite) {
    let dynalite = Dynalite::start();
    let mut options = template_options(&Config::default());
    options.parameter_overrides.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
    );
    options.queue_visibility_timeout = visibility;
    let running = webchat_local::start(Config {
        addr: "127.0.0.1:0".parse().expect("an address"),
        dynamodb_endpoint: Some(dynalite.endpoint()),
        template: Some(options),
        ..Config::default()
    })
    .await
    .expect("the template starts");
    (running, dynalite)
}

/// The operator's SDK client for the gateway's SQS endpoint (the development key, no
/// retries, so an error shows as it came).
fn sqs_client(running: &Running) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(running.sqs_endpoint().expect("template mode serves SQS"))
        .region(Region::new("us-east-1"))
        .credentials_provider(AccessKey::development().credentials())
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

#[tokio::test]
async fn a_big_rooms_message_reaches_every_member_once_through_sqs_and_the_fanout_function(
) -> Result<()> {
    const MEMBERS: usize = 12;
    const MESSAGES: usize = 3;
    let (gateway, _dynalite) = start(&[("FanoutInline", "4")], None).await;
    let url = gateway.websocket_url();
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let mut client = Client::join(&url, &format!("member{i}")).await?;
        let joined = client
            .request(json!({"action": "join", "room": "big", "requestId": "j"}))
            .await?;
        assert_eq!(joined["action"], "joined", "{joined}");
        members.push(client);
    }
    for k in 0..MESSAGES {
        let sent = members[0]
            .request(json!({"action": "message", "room": "big", "message": format!("m{k}"), "requestId": format!("s{k}")}))
            .await?;
        assert_eq!(sent["action"], "sent", "{sent}");
    }
    for member in &mut members[1..] {
        let mut got = Vec::new();
        while got.len() < MESSAGES {
            let frame = member
                .recv_where("the big room's messages", |f: &Value| {
                    f["room"] == "big" && f["action"] == "message"
                })
                .await?;
            got.push(frame["message"].as_str().unwrap_or_default().to_string());
        }
        got.sort();
        assert_eq!(got, ["m0", "m1", "m2"], "every message once");
        while let Some(Incoming::Text(late)) = member.next(Duration::from_millis(300)).await {
            let frame: Value = serde_json::from_str(&late)?;
            assert_ne!(frame["action"], "message", "a message came twice: {frame}");
        }
    }
    // The jobs went through the queue: one per message (12 members are one shard), each
    // received once by the event source mapping and deleted after the function's success.
    let counters = gateway
        .queue("FanoutQueue")
        .context("the fan-out queue")?
        .counters();
    assert_eq!(counters.sent, MESSAGES as u64, "{counters:?}");
    assert_eq!(counters.received, MESSAGES as u64, "{counters:?}");
    assert_eq!(counters.deleted, MESSAGES as u64, "{counters:?}");
    assert_eq!(counters.moved_to_dead_letter, 0);
    gateway.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_big_rooms_member_count_reaches_its_members_through_sqs_and_the_fanout_function(
) -> Result<()> {
    // Above two members the lobby hears counts, and above one it is fanned out: the
    // register function queues the count, as the message function queues messages.
    let (gateway, _dynalite) = start(&[("PresenceLimit", "2"), ("FanoutInline", "1")], None).await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await?;
    let mut bia = Client::join(&url, "bia").await?;
    let arrival = ana.recv_action("newUser").await?;
    assert_eq!(arrival["userName"], "bia", "{arrival}");
    let _caio = Client::join(&url, "caio").await?;
    for client in [&mut ana, &mut bia] {
        let count = client
            .recv_where("the lobby's count", |f: &Value| f["action"] == "members")
            .await?;
        assert_eq!(
            count,
            json!({"action": "members", "room": "lobby", "count": 3})
        );
    }
    let counters = gateway
        .queue("FanoutQueue")
        .context("the fan-out queue")?
        .counters();
    assert_eq!(counters.sent, 1, "one job, the count: {counters:?}");
    gateway.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_job_the_function_fails_is_received_max_receive_count_times_then_waits_in_the_dead_letter_queue(
) -> Result<()> {
    // A second's visibility timeout instead of the template's 120 s: three receives take
    // seconds, not minutes.
    let (gateway, _dynalite) = start(&[], Some(Duration::from_secs(1))).await;
    let sqs = sqs_client(&gateway);
    let fanout = gateway.queue("FanoutQueue").context("the fan-out queue")?;
    let dead = gateway
        .queue("FanoutDeadLetterQueue")
        .context("the dead-letter queue")?;
    // The operator finds both queues as on AWS.
    let listed = sqs.list_queues().send().await?;
    let mut urls = listed.queue_urls().to_vec();
    urls.sort();
    let mut expected = vec![fanout.url.clone(), dead.url.clone()];
    expected.sort();
    assert_eq!(urls, expected);
    let dead_url = sqs
        .get_queue_url()
        .queue_name(&dead.name)
        .send()
        .await?
        .queue_url
        .context("a URL")?;
    assert_eq!(dead_url, dead.url);

    let sent = sqs
        .send_message()
        .queue_url(&fanout.url)
        .message_body("this is not a fan-out job")
        .send()
        .await?;
    let message_id = sent.message_id.context("a message id")?;

    // Received three times by the mapping (the function reports it failed each time),
    // then moved on the next receive.
    let mut waited = Duration::ZERO;
    while dead.counters().sent + fanout.counters().moved_to_dead_letter == 0 {
        assert!(waited < Duration::from_secs(30), "{:?}", fanout.counters());
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    let counters = fanout.counters();
    assert_eq!(
        counters.received, 3,
        "maxReceiveCount receives: {counters:?}"
    );
    assert_eq!(counters.deleted, 0);
    assert_eq!(counters.moved_to_dead_letter, 1);

    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&dead.url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?;
    let attributes = attributes.attributes().context("attributes")?;
    assert_eq!(
        attributes
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        attributes.get(&QueueAttributeName::QueueArn),
        Some(&dead.arn)
    );
    let fanout_attributes = sqs
        .get_queue_attributes()
        .queue_url(&fanout.url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let fanout_attributes = fanout_attributes.attributes().context("attributes")?;
    let redrive: Value = serde_json::from_str(
        fanout_attributes
            .get(&QueueAttributeName::RedrivePolicy)
            .context("a redrive policy")?,
    )?;
    assert_eq!(
        redrive,
        json!({"deadLetterTargetArn": dead.arn, "maxReceiveCount": 3})
    );
    assert_eq!(
        fanout_attributes
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .map(String::as_str),
        Some("0")
    );

    let received = sqs
        .receive_message()
        .queue_url(&dead.url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await?;
    let [message] = received.messages() else {
        panic!("one message in the dead-letter queue: {received:?}");
    };
    assert_eq!(message.message_id(), Some(message_id.as_str()));
    assert_eq!(message.body(), Some("this is not a fan-out job"));
    assert!(message
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp))
        .is_some());
    sqs.delete_message()
        .queue_url(&dead.url)
        .receipt_handle(message.receipt_handle().context("a receipt handle")?)
        .send()
        .await?;
    assert_eq!(dead.counters().deleted, 1);
    gateway.stop().await;
    Ok(())
}

#[tokio::test]
async fn message_attributes_travel_with_a_message_and_visibility_changes_in_batches() -> Result<()>
{
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue};
    let (gateway, _dynalite) = start(&[], None).await;
    let sqs = sqs_client(&gateway);
    // The dead-letter queue: no event source mapping takes from it.
    let dead = gateway
        .queue("FanoutDeadLetterQueue")
        .context("the dead-letter queue")?;
    let text = |data_type: &str, value: &str| {
        MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .expect("an attribute")
    };
    // The attributes of an SQS response botocore's tests record, with SQS's digest.
    let sent = sqs
        .send_message()
        .queue_url(&dead.url)
        .message_body("with attributes")
        .message_attributes("Hello", text("String", "There"))
        .message_attributes("General", text("String", "Kenobi"))
        .send()
        .await?;
    assert_eq!(
        sent.md5_of_message_attributes(),
        Some("fca026605781cb4126a1e9044df24232")
    );
    let batch = sqs
        .send_message_batch()
        .queue_url(&dead.url)
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("typed")
                .message_body("typed")
                .message_attributes("trace.id", text("String", "t-1"))
                .message_attributes("attempt", text("Number.int", "2"))
                .message_attributes(
                    "blob",
                    MessageAttributeValue::builder()
                        .data_type("Binary")
                        .binary_value(Blob::new(vec![0_u8, 159, 255]))
                        .build()?,
                )
                .build()?,
        )
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("bad")
                .message_body("bad")
                .message_attributes("n", text("Number", "ten"))
                .build()?,
        )
        .send()
        .await?;
    assert_eq!(batch.successful().len(), 1, "{batch:?}");
    let [refused] = batch.failed() else {
        panic!("the bad entry fails alone: {batch:?}");
    };
    assert_eq!(
        (refused.id(), refused.code()),
        ("bad", "InvalidParameterValue")
    );
    assert!(batch.successful()[0].md5_of_message_attributes().is_some());

    // A receive gets the attributes it names, with the digest of those.
    let received = sqs
        .receive_message()
        .queue_url(&dead.url)
        .max_number_of_messages(10)
        .message_attribute_names("trace.*")
        .message_attribute_names("blob")
        .send()
        .await?;
    let messages = received.messages();
    assert_eq!(messages.len(), 2, "{received:?}");
    let by_body = |body: &str| {
        messages
            .iter()
            .find(|m| m.body() == Some(body))
            .expect("the message")
    };
    let typed = by_body("typed")
        .message_attributes()
        .context("attributes")?;
    let mut names: Vec<&String> = typed.keys().collect();
    names.sort();
    assert_eq!(names, ["blob", "trace.id"]);
    assert_eq!(typed["trace.id"].string_value(), Some("t-1"));
    assert_eq!(
        typed["blob"].binary_value().map(Blob::as_ref),
        Some(&[0_u8, 159, 255][..])
    );
    assert!(by_body("typed").md5_of_message_attributes().is_some());
    let plain = by_body("with attributes");
    assert!(
        plain.message_attributes().is_none(),
        "none asked: {plain:?}"
    );
    assert_eq!(plain.md5_of_message_attributes(), None);

    // Both back at once: a batch makes them visible again; a bad handle fails alone.
    let entry = |id: &str, handle: &str| {
        ChangeMessageVisibilityBatchRequestEntry::builder()
            .id(id)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .build()
            .expect("an entry")
    };
    let changed = sqs
        .change_message_visibility_batch()
        .queue_url(&dead.url)
        .set_entries(Some(
            messages
                .iter()
                .enumerate()
                .map(|(i, m)| entry(&format!("m{i}"), m.receipt_handle().unwrap_or_default()))
                .chain([entry("forged", "not-a-handle")])
                .collect(),
        ))
        .send()
        .await?;
    assert_eq!(changed.successful().len(), 2, "{changed:?}");
    let [forged] = changed.failed() else {
        panic!("the forged handle fails: {changed:?}");
    };
    assert_eq!(
        (forged.id(), forged.code()),
        ("forged", "ReceiptHandleIsInvalid")
    );
    let again = sqs
        .receive_message()
        .queue_url(&dead.url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await?;
    assert_eq!(again.messages().len(), 2, "visible again: {again:?}");
    let plain = again
        .messages()
        .iter()
        .find(|m| m.body() == Some("with attributes"))
        .context("the message")?;
    assert_eq!(
        plain.md5_of_message_attributes(),
        Some("fca026605781cb4126a1e9044df24232")
    );
    gateway.stop().await;
    Ok(())
}

#[tokio::test]
async fn bad_calls_get_sqs_own_errors() -> Result<()> {
    let (gateway, _dynalite) = start(&[], None).await;
    let sqs = sqs_client(&gateway);
    let fanout = gateway.queue("FanoutQueue").context("the fan-out queue")?;
    let entry = |id: &str, body: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .expect("an entry")
    };
    let batch_error = |entries: Vec<SendMessageBatchRequestEntry>| {
        let sqs = sqs.clone();
        let url = fanout.url.clone();
        async move {
            let err = sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect_err("refused");
            let service = err.into_service_error();
            (service.code().unwrap_or_default().to_string(), service)
        }
    };

    let (code, err) = batch_error(Vec::new()).await;
    assert!(matches!(err, E::EmptyBatchRequest(_)), "{code}: {err:?}");
    let (code, err) = batch_error((0..11).map(|i| entry(&format!("e{i}"), "x")).collect()).await;
    assert!(
        matches!(err, E::TooManyEntriesInBatchRequest(_)),
        "{code}: {err:?}"
    );
    let (code, err) = batch_error(vec![entry("same", "x"), entry("same", "y")]).await;
    assert!(
        matches!(err, E::BatchEntryIdsNotDistinct(_)),
        "{code}: {err:?}"
    );
    assert!(err.to_string().contains("same"), "{err}");
    let (code, err) = batch_error(vec![entry("not ok!", "x")]).await;
    assert!(matches!(err, E::InvalidBatchEntryId(_)), "{code}: {err:?}");
    let big = "x".repeat(600 * 1024);
    let (code, err) = batch_error(vec![entry("a", &big), entry("b", &big)]).await;
    assert!(matches!(err, E::BatchRequestTooLong(_)), "{code}: {err:?}");

    // A body over the queue's MaximumMessageSize (SQS's default, 1 MiB).
    let too_big = "x".repeat(1_048_577);
    let err = sqs
        .send_message()
        .queue_url(&fanout.url)
        .message_body(&too_big)
        .send()
        .await
        .expect_err("too big")
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    assert!(
        err.message().is_some_and(|m| m.contains("1048576")),
        "{err:?}"
    );

    // A queue the template does not declare.
    let err = sqs
        .send_message()
        .queue_url("https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue")
        .message_body("x")
        .send()
        .await
        .expect_err("no such queue")
        .into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");
    let err = sqs
        .get_queue_url()
        .queue_name("no-such-queue")
        .send()
        .await
        .expect_err("no such queue")
        .into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");

    // Bad parameters.
    let err = sqs
        .receive_message()
        .queue_url(&fanout.url)
        .max_number_of_messages(11)
        .send()
        .await
        .expect_err("too many")
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    let err = sqs
        .delete_message()
        .queue_url(&fanout.url)
        .receipt_handle("not-a-receipt-handle")
        .send()
        .await
        .expect_err("bad handle")
        .into_service_error();
    assert!(err.is_receipt_handle_is_invalid(), "{err:?}");

    // A batch delete answers each entry; a bad handle fails its own.
    let sent = sqs
        .send_message_batch()
        .queue_url(&fanout.url)
        .entries(entry("one", "{}"))
        .send()
        .await?;
    assert_eq!(sent.successful().len(), 1);
    assert!(sent.failed().is_empty());
    sqs.purge_queue().queue_url(&fanout.url).send().await?;
    let deleted = sqs
        .delete_message_batch()
        .queue_url(&fanout.url)
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("bad")
                .receipt_handle("nope")
                .build()?,
        )
        .send()
        .await?;
    assert_eq!(deleted.failed().len(), 1);
    assert_eq!(deleted.failed()[0].code(), "ReceiptHandleIsInvalid");

    // Unsigned or wrongly signed calls go no further.
    let stranger = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(gateway.sqs_endpoint().context("the endpoint")?)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "AKIASTRANGER0000000",
                "secret",
                None,
                None,
                "test",
            ))
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build(),
    );
    let err = stranger
        .list_queues()
        .send()
        .await
        .expect_err("an unknown key")
        .into_service_error();
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");
    gateway.stop().await;
    Ok(())
}
