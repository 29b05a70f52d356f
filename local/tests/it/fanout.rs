//! Big rooms over real sockets: with a small `--fanout-inline`, a message to a room
//! above it goes through the fan-out workers (one job per shard on the in-process
//! queue), and every member gets it exactly once; a member whose socket died without a
//! `$disconnect` is found gone by its shard's job and cleaned up. In memory and on
//! dynalite.

use crate::common::start;
use anyhow::Result;
use serde_json::{json, Value};
use std::time::Duration;
use webchat_local::Config;
use webchat_testkit::{Client, Dynalite, Incoming};

const ROOM: &str = "big";
const MEMBERS: usize = 24;
const MESSAGES: usize = 5;

fn config(dynamodb_endpoint: Option<String>) -> Config {
    Config {
        // 24 members over 8 and 5 per shard: 5 jobs per message.
        fanout_inline: 8,
        fanout_shard_size: 5,
        // A killed socket then stays in the store until a push finds it gone.
        deliver_disconnects: false,
        dynamodb_endpoint,
        ..Config::default()
    }
}

async fn a_big_rooms_messages_reach_every_member_once(config: Config) -> Result<()> {
    let gateway = start(config).await;
    let url = gateway.websocket_url();
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let mut client = Client::join(&url, &format!("member{i}")).await?;
        let joined = client
            .request(json!({"action": "join", "room": ROOM, "requestId": "j"}))
            .await?;
        assert_eq!(joined["action"], "joined", "{joined}");
        members.push(client);
    }
    let gone = members.pop().expect("members");
    let gone_id = gone.connection_id.clone();
    gone.kill().await;

    let sender = &mut members[0];
    for k in 0..MESSAGES {
        let sent = sender
            .request(json!({"action": "message", "room": ROOM, "message": format!("m{k}"), "requestId": format!("s{k}")}))
            .await?;
        assert_eq!(sent["action"], "sent", "{sent}");
        // The members it goes to: the dead one too, until a job has found it gone.
        let delivered = sent["delivered"].as_u64().unwrap_or_default();
        assert!(
            [MEMBERS - 1, MEMBERS - 2].contains(&usize::try_from(delivered)?),
            "{sent}"
        );
    }
    for member in &mut members[1..] {
        let mut got = Vec::new();
        let mut exits = Vec::new();
        while got.len() < MESSAGES || exits.is_empty() {
            let frame = member
                .recv_where(
                    "the big room's messages and the gone member's exit",
                    |f: &Value| {
                        f["room"] == ROOM && (f["action"] == "message" || f["action"] == "userExit")
                    },
                )
                .await?;
            if frame["action"] == "message" {
                got.push(frame["message"].as_str().unwrap_or_default().to_string());
            } else {
                exits.push(
                    frame["connectionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        let expected: Vec<String> = (0..MESSAGES).map(|k| format!("m{k}")).collect();
        got.sort();
        assert_eq!(got, expected, "every message once");
        // The gone member's shard job removed it and the room heard it leave.
        assert_eq!(exits, std::slice::from_ref(&gone_id));
        // ...and nothing more: no message twice.
        while let Some(Incoming::Text(late)) = member.next(Duration::from_millis(300)).await {
            let frame: Value = serde_json::from_str(&late)?;
            assert_ne!(frame["action"], "message", "a message came twice: {frame}");
        }
    }
    let list = members[0]
        .request(json!({"action": "list", "room": ROOM, "requestId": "l"}))
        .await?;
    assert!(
        !list.to_string().contains(&gone_id),
        "the gone member is out of the room: {list}"
    );
    gateway.stop().await;
    Ok(())
}

#[tokio::test]
async fn in_memory_a_big_rooms_messages_reach_every_member_once_through_the_workers() -> Result<()>
{
    a_big_rooms_messages_reach_every_member_once(config(None)).await
}

#[tokio::test]
async fn on_dynalite_a_big_rooms_messages_reach_every_member_once_through_the_workers() -> Result<()>
{
    let dynalite = Dynalite::start();
    a_big_rooms_messages_reach_every_member_once(config(Some(dynalite.endpoint()))).await
}
