//! Rejoining under the same name after a reconnect, and rooms next to the original
//! client's frames, over real sockets.

use crate::common::{self, start};
use anyhow::Result;
use serde_json::{json, Value};
use std::time::Duration;
use webchat_local::Config;
use webchat_testkit::{Client, Dynalite};

const QUIET: Duration = Duration::from_millis(300);

/// Connects and registers `name` (with `token` when given); returns the reply.
async fn register(url: &str, name: &str, token: Option<&str>) -> Result<(Client, Value)> {
    let mut client = Client::connect(url).await?;
    let mut frame = json!({"action":"register","userName":name,"requestId":"r"});
    if let Some(token) = token {
        frame["resumeToken"] = json!(token);
    }
    let reply = client.request(frame).await?;
    if let Some(id) = reply["connectionId"].as_str() {
        client.connection_id = id.to_string();
    }
    Ok((client, reply))
}

fn token(reply: &Value) -> String {
    reply["resumeToken"]
        .as_str()
        .unwrap_or_else(|| panic!("registered carries a resumeToken: {reply}"))
        .to_string()
}

/// The next `count` frames of `client`, in order.
async fn frames(client: &mut Client, count: usize) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(client.recv().await?);
    }
    Ok(out)
}

fn event(action: &str, room: &str, name: &str, id: &str) -> Value {
    json!({"action":action,"room":room,"userName":name,"connectionId":id})
}

#[tokio::test]
async fn a_rejoin_while_the_old_socket_is_open_moves_name_and_rooms_and_closes_the_old(
) -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let (mut old, reply) = register(&url, "ana", None).await?;
    let ana_token = token(&reply);
    let old_id = old.connection_id.clone();
    let mut bia = Client::join(&url, "bia").await?;
    old.request(json!({"action":"join","room":"rust","requestId":"j"}))
        .await?;
    bia.request(json!({"action":"join","room":"rust","requestId":"j"}))
        .await?;
    bia.expect_silence(QUIET).await.ok();

    let (mut new, reply) = register(&url, "ana", Some(&ana_token)).await?;
    assert_eq!(reply["action"], "registered", "{reply}");
    assert_ne!(token(&reply), ana_token, "a used token is replaced");
    assert_eq!(old.expect_close().await?, 1000, "the old socket is closed");

    // bia hears the old connection leave and the new one arrive, once per room.
    let mut seen = frames(&mut bia, 4).await?;
    seen.sort_by_key(std::string::ToString::to_string);
    let new_id = new.connection_id.clone();
    let mut expected = vec![
        event("userExit", "lobby", "ana", &old_id),
        event("userExit", "rust", "ana", &old_id),
        event("newUser", "lobby", "ana", &new_id),
        event("newUser", "rust", "ana", &new_id),
    ];
    expected.sort_by_key(std::string::ToString::to_string);
    assert_eq!(seen, expected);
    bia.expect_silence(QUIET).await?;

    let list = new
        .request(json!({"action":"list","room":"rust","requestId":"l"}))
        .await?;
    assert_eq!(list["users"][0]["userName"], "bia", "the rooms came along");
    bia.request(json!({"action":"message","room":"rust","message":"welcome back","requestId":"m"}))
        .await?;
    assert_eq!(new.recv_action("message").await?["message"], "welcome back");
    Ok(())
}

#[tokio::test]
async fn a_wrong_token_is_name_taken_and_changes_nothing() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let (mut ana, _) = register(&url, "ana", None).await?;
    let (_, reply) = register(&url, "ana", Some("not-the-token")).await?;
    assert_eq!(reply["code"], "name_taken", "{reply}");
    ana.request(json!({"action":"ping","requestId":"p"}))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_rejoins_racing_with_one_token_exactly_one_wins() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let (_old, reply) = register(&url, "ana", None).await?;
    let ana_token = token(&reply);
    // Every client stays open: a winner that left would free the name for the next round.
    let mut open = Vec::new();
    for round in 0..5 {
        let (a, b) = tokio::join!(
            register(&url, "ana", Some(&ana_token)),
            register(&url, "ana", Some(&ana_token))
        );
        let ((a, a_reply), (b, b_reply)) = (a?, b?);
        open.extend([a, b]);
        let outcomes = [a_reply["action"].clone(), b_reply["action"].clone()];
        if round == 0 {
            let mut sorted = outcomes.to_vec();
            sorted.sort_by_key(std::string::ToString::to_string);
            assert_eq!(
                sorted,
                [json!("error"), json!("registered")],
                "{outcomes:?}"
            );
        } else {
            // The token was used up in round 0.
            assert_eq!(outcomes, [json!("error"), json!("error")]);
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_original_clients_frames_work_unchanged_next_to_room_users() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await?;
    ana.request(json!({"action":"join","room":"rust","requestId":"j"}))
        .await?;
    // Exactly what the original React client sends: no requestId, no room.
    let mut v1 = Client::connect(&url).await?;
    v1.send(json!({"action":"register","userName":"old-timer"}))
        .await?;
    v1.send(json!({"action":"list"})).await?;
    let list = v1.recv_action("list").await?;
    assert_eq!(list["users"][0]["userName"], "ana", "{list}");
    let arrival = ana.recv_action("newUser").await?;
    let v1_id = arrival["connectionId"].as_str().unwrap_or_default();
    assert_eq!(arrival, event("newUser", "lobby", "old-timer", v1_id));
    ana.request(json!({"action":"message","room":"rust","message":"rust only","requestId":"m"}))
        .await?;
    ana.send(json!({"action":"message","message":"hello lobby"}))
        .await?;
    let message = v1.recv_action("message").await?;
    assert_eq!(
        message["message"], "hello lobby",
        "rust's message never reaches the lobby"
    );
    assert_eq!(message["sender"], "ana");
    v1.send(json!({"action":"message","sender":"old-timer","message":"hi ana","receivers":[{"connectionId":ana.connection_id,"userName":"ana"}]}))
        .await?;
    let private = ana.recv_action("message").await?;
    assert_eq!(
        (&private["message"], &private["private"]),
        (&json!("hi ana"), &json!(true))
    );
    v1.expect_silence(QUIET).await?;
    Ok(())
}

/// `webchat-local` as its own process on `dynalite`, so the test can kill it.
fn gateway_process(dynalite: &Dynalite) -> Result<(webchat_testkit::Process, String)> {
    common::gateway_process(&["--dynamodb-endpoint", &dynalite.endpoint()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_gateway_is_killed_people_get_their_names_back() -> Result<()> {
    let dynalite = Dynalite::start();
    let (mut first, url) = gateway_process(&dynalite)?;
    let (_ana, reply) = register(&url, "ana", None).await?;
    let ana_token = token(&reply);
    let mut bia = Client::join(&url, "bia").await?;
    bia.request(json!({"action":"join","room":"rust","requestId":"j"}))
        .await?;
    bia.request(
        json!({"action":"message","room":"rust","message":"before the crash","requestId":"m"}),
    )
    .await?;
    // SIGKILL: no `$disconnect` runs, the rows stay behind in DynamoDB.
    first.kill();

    let (_second, url) = gateway_process(&dynalite)?;
    // With the token: the name and its rooms come back at once.
    let (mut ana, reply) = register(&url, "ana", Some(&ana_token)).await?;
    assert_eq!(reply["action"], "registered", "{reply}");
    // Without one: the ghost holding the name is found gone and the name is free.
    let (mut bia, reply) = register(&url, "bia", None).await?;
    assert_eq!(reply["action"], "registered", "{reply}");
    let joined = bia
        .request(json!({"action":"join","room":"rust","requestId":"j"}))
        .await?;
    assert_eq!(joined["action"], "joined", "{joined}");
    let history = bia
        .request(json!({"action":"history","room":"rust","requestId":"h"}))
        .await?;
    assert_eq!(
        history["messages"][0]["message"], "before the crash",
        "{history}"
    );
    let lobby = ana
        .request(json!({"action":"list","requestId":"l"}))
        .await?;
    let names: Vec<&str> = lobby["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    assert_eq!(names, ["bia"], "no ghosts in the lobby: {lobby}");
    Ok(())
}
