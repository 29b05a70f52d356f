//! API Gateway's behaviour as clients see it, over real sockets on port 0.

use crate::common::{handshake, start, Handshake};
use anyhow::Result;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use webchat_local::Config;
use webchat_testkit::{Client, ClientError, Dynalite};

/// Three users meet, list each other, and exchange broadcast and private messages.
async fn chat_scenario(url: &str) -> Result<()> {
    let mut ana = Client::join(url, "ana").await?;
    let mut bia = Client::join(url, "bia").await?;
    let joined = ana.recv_action("newUser").await?;
    assert_eq!(
        joined,
        json!({"action":"newUser","room":"lobby","userName":"bia","connectionId":bia.connection_id})
    );

    let mut caio = Client::join(url, "caio").await?;
    ana.recv_action("newUser").await?;
    bia.recv_action("newUser").await?;

    caio.send(json!({"action":"list"})).await?;
    let list = caio.recv_action("list").await?;
    let mut names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ana", "bia"]);

    ana.send(json!({"action":"message","message":"hi all","requestId":"m1"}))
        .await?;
    let sent = ana.recv_action("sent").await?;
    assert_eq!(sent["delivered"], 2);
    for (client, name) in [(&mut bia, "bia"), (&mut caio, "caio")] {
        let got = client.recv_action("message").await?;
        assert_eq!(got["sender"], "ana");
        assert_eq!(got["senderId"], ana.connection_id.as_str());
        assert_eq!(got["message"], "hi all");
        assert_eq!(got["private"], false);
        assert_eq!(got["receiver"]["userName"], name);
        assert_eq!(got["messageId"], sent["messageId"]);
    }

    // The original client's private message: no requestId, receivers by connection id.
    caio.send(json!({"action":"message","sender":"caio","message":"just you","receivers":[{"userName":"bia","connectionId":bia.connection_id}]})).await?;
    let private = bia.recv_action("message").await?;
    assert_eq!(private["message"], "just you");
    assert_eq!(private["private"], true);
    assert_eq!(private["sender"], "caio");
    ana.expect_silence(Duration::from_millis(300)).await?;
    caio.expect_silence(Duration::from_millis(100)).await?;

    bia.close().await;
    for client in [&mut ana, &mut caio] {
        let exit = client.recv_action("userExit").await?;
        assert_eq!(exit["userName"], "bia");
    }
    Ok(())
}

#[tokio::test]
async fn three_clients_chat_with_the_in_memory_store() -> Result<()> {
    let gateway = start(Config::default()).await;
    chat_scenario(&gateway.websocket_url()).await
}

#[tokio::test]
async fn three_clients_chat_with_the_dynamodb_store_on_dynalite() -> Result<()> {
    let dynalite = Dynalite::start();
    let gateway = start(Config {
        dynamodb_endpoint: Some(dynalite.endpoint()),
        ..Config::default()
    })
    .await;
    chat_scenario(&gateway.websocket_url()).await
}

#[tokio::test]
async fn connection_ids_have_the_aws_shape() -> Result<()> {
    let gateway = start(Config::default()).await;
    let client = Client::join(&gateway.websocket_url(), "ana").await?;
    assert_eq!(client.connection_id.len(), 16);
    assert!(client.connection_id.ends_with('='));
    Ok(())
}

#[tokio::test]
async fn a_taken_name_is_refused_and_the_connection_stays_usable() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let _ana = Client::join(&url, "Ana").await?;
    let mut other = Client::connect(&url).await?;
    other
        .send(json!({"action":"register","userName":"ANA","requestId":"r"}))
        .await?;
    let refused = other.recv_action("error").await?;
    assert_eq!(refused["code"], "name_taken");
    assert_eq!(refused["requestId"], "r");
    other
        .send(json!({"action":"register","userName":"bia","requestId":"r2"}))
        .await?;
    assert_eq!(other.recv().await?["action"], "registered");
    Ok(())
}

#[tokio::test]
async fn bad_frames_are_answered_with_their_codes() -> Result<()> {
    let gateway = start(Config::default()).await;
    let mut client = Client::connect(&gateway.websocket_url()).await?;
    let cases: [(&str, &str); 6] = [
        ("not json", "bad_json"),
        (r#"{"action":"dance"}"#, "unknown_action"),
        (r#"{"message":"no action"}"#, "unknown_action"),
        (r#"{"action":"register","userName":""}"#, "invalid_field"),
        (r#"{"action":"message","message":"hi"}"#, "not_registered"),
        (r#"{"action":"register","userName":["x"]}"#, "invalid_field"),
    ];
    for (frame, code) in cases {
        client.send_text(frame).await?;
        let reply = client.recv().await?;
        assert_eq!(reply["action"], "error", "{frame}");
        assert_eq!(reply["code"], code, "{frame}");
    }
    client
        .send(json!({"action":"ping","requestId":"still-here"}))
        .await?;
    assert_eq!(
        client.recv().await?,
        json!({"action":"pong","requestId":"still-here"})
    );
    Ok(())
}

#[tokio::test]
async fn binary_frames_go_to_default_and_are_refused() -> Result<()> {
    let gateway = start(Config::default()).await;
    let mut client = Client::connect(&gateway.websocket_url()).await?;
    client
        .send_message(Message::binary(vec![0u8, 159, 146, 150]))
        .await?;
    assert_eq!(client.recv().await?["code"], "bad_json");
    Ok(())
}

#[tokio::test]
async fn a_frame_over_32_kb_closes_the_socket_with_1009_and_runs_disconnect() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let mut watcher = Client::join(&url, "watcher").await?;
    let mut big = Client::join(&url, "big").await?;
    watcher.recv_action("newUser").await?;
    let huge = json!({"action":"message","message":"x".repeat(40 * 1024)});
    big.send(huge).await?;
    assert_eq!(big.expect_close().await?, 1009);
    assert_eq!(watcher.recv_action("userExit").await?["userName"], "big");
    Ok(())
}

#[tokio::test]
async fn the_idle_timeout_closes_with_1001_and_runs_disconnect() -> Result<()> {
    let gateway = start(Config {
        idle_timeout: Duration::from_millis(1500),
        ..Config::default()
    })
    .await;
    let url = gateway.websocket_url();
    let mut watcher = Client::join(&url, "watcher").await?;
    let mut sleepy = Client::join(&url, "sleepy").await?;
    // The watcher keeps itself active; the sleepy client says nothing.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        watcher.send(json!({"action":"ping"})).await?;
    }
    assert_eq!(sleepy.expect_close().await?, 1001);
    let exit = watcher.recv_action("userExit").await?;
    assert_eq!(exit["userName"], "sleepy");
    Ok(())
}

#[tokio::test]
async fn the_maximum_lifetime_closes_even_busy_connections_with_1001() -> Result<()> {
    let gateway = start(Config {
        max_lifetime: Duration::from_millis(800),
        ..Config::default()
    })
    .await;
    let mut client = Client::connect(&gateway.websocket_url()).await?;
    for _ in 0..3 {
        client
            .send(json!({"action":"ping","requestId":"p"}))
            .await?;
        assert_eq!(client.recv().await?["action"], "pong");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.expect_close().await?, 1001);
    Ok(())
}

#[tokio::test]
async fn a_failing_connect_handler_refuses_the_handshake_with_its_status() -> Result<()> {
    let mut dynalite = Dynalite::start();
    let gateway = start(Config {
        dynamodb_endpoint: Some(dynalite.endpoint()),
        ..Config::default()
    })
    .await;
    dynalite.stop();
    assert_eq!(
        handshake(&gateway.websocket_url()).await,
        Handshake::refused(500, "Internal server error")
    );
    Ok(())
}

/// A management client with the gateway's own (development) key, as a developer's SDK
/// would be set up.
fn management_client(endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    webchat_testkit::management_client(
        endpoint,
        webchat_local::AccessKey::development().credentials(),
        webchat_local::DEFAULT_REGION,
    )
}

#[tokio::test]
async fn management_api_posts_gets_and_deletes_through_the_aws_sdk() -> Result<()> {
    use aws_sdk_apigatewaymanagement::primitives::Blob;
    let gateway = start(Config::default()).await;
    let mut client = Client::join(&gateway.websocket_url(), "ana").await?;
    // Both the stage-prefixed endpoint (as on AWS) and the bare one work.
    for endpoint in [
        gateway.management_endpoint(),
        format!("http://{}", gateway.addr()),
    ] {
        let sdk = management_client(&endpoint);
        sdk.post_to_connection()
            .connection_id(&client.connection_id)
            .data(Blob::new(r#"{"action":"pong"}"#))
            .send()
            .await
            .expect("POST to an open connection succeeds");
        assert_eq!(client.recv().await?, json!({"action":"pong"}));

        let info = sdk
            .get_connection()
            .connection_id(&client.connection_id)
            .send()
            .await
            .expect("GET succeeds");
        assert!(info.connected_at().is_some());
        assert!(info.last_active_at().is_some());
        assert_eq!(
            info.identity().and_then(|i| i.source_ip()),
            Some("127.0.0.1")
        );
    }

    let sdk = management_client(&gateway.management_endpoint());
    let too_big = sdk
        .post_to_connection()
        .connection_id(&client.connection_id)
        .data(Blob::new(vec![b'x'; 129 * 1024]))
        .send()
        .await
        .expect_err("over 128 KB is refused");
    assert!(
        too_big
            .as_service_error()
            .is_some_and(aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError::is_payload_too_large_exception),
        "{too_big:?}"
    );

    let unknown = sdk
        .post_to_connection()
        .connection_id("AAAAAAAAAAAAAAA=")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert!(
        unknown
            .as_service_error()
            .is_some_and(aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError::is_gone_exception),
        "{unknown:?}"
    );
    let unknown_get = sdk
        .get_connection()
        .connection_id("AAAAAAAAAAAAAAA=")
        .send()
        .await
        .unwrap_err();
    assert!(unknown_get
        .as_service_error()
        .is_some_and(aws_sdk_apigatewaymanagement::operation::get_connection::GetConnectionError::is_gone_exception));

    sdk.delete_connection()
        .connection_id(&client.connection_id)
        .send()
        .await
        .expect("DELETE succeeds");
    let code = client.expect_close().await?;
    assert_eq!(code, 1000);
    let again = sdk
        .delete_connection()
        .connection_id(&client.connection_id)
        .send()
        .await
        .unwrap_err();
    assert!(again
        .as_service_error()
        .is_some_and(aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError::is_gone_exception));
    Ok(())
}

#[tokio::test]
async fn management_delete_runs_disconnect_and_frees_the_name() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let mut watcher = Client::join(&url, "watcher").await?;
    let mut doomed = Client::join(&url, "doomed").await?;
    watcher.recv_action("newUser").await?;
    let sdk = management_client(&gateway.management_endpoint());
    sdk.delete_connection()
        .connection_id(&doomed.connection_id)
        .send()
        .await
        .unwrap();
    doomed.expect_close().await?;
    assert_eq!(watcher.recv_action("userExit").await?["userName"], "doomed");
    Client::join(&url, "doomed").await?;
    Ok(())
}

#[tokio::test]
async fn a_dropped_tcp_connection_runs_disconnect() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let mut watcher = Client::join(&url, "watcher").await?;
    let dropped = Client::join(&url, "dropped").await?;
    watcher.recv_action("newUser").await?;
    drop(dropped);
    let exit: Value = watcher.recv_action("userExit").await?;
    assert_eq!(exit["userName"], "dropped");
    Ok(())
}

/// Ctrl-C: `webchat-local` stops, then its process exits, ending every task that had not
/// finished. A `DynamoDB` store outlives it, and the next gateway on it must not list the
/// stopped one's users or refuse their names.
#[test]
fn a_restarted_gateway_on_the_same_dynamodb_keeps_no_ghosts_of_the_stopped_one() -> Result<()> {
    let dynalite = Dynalite::start();
    let config = || Config {
        dynamodb_endpoint: Some(dynalite.endpoint()),
        ..Config::default()
    };
    let runtime = || tokio::runtime::Runtime::new().expect("tokio runtime");

    let first_process = runtime();
    first_process.block_on(async {
        let first = start(config()).await;
        let url = first.websocket_url();
        let mut ana = Client::join(&url, "ana").await?;
        let _bia = Client::join(&url, "bia").await?;
        ana.recv_action("newUser").await?;
        first.stop().await;
        Ok::<_, ClientError>(())
    })?;
    // What the process exit does to whatever is still running.
    first_process.shutdown_background();

    runtime().block_on(async {
        let second = start(config()).await;
        let mut again = Client::join(&second.websocket_url(), "ana").await?;
        again
            .send(json!({"action":"list","requestId":"who"}))
            .await?;
        let list = again.recv_action("list").await?;
        assert_eq!(list["users"], json!([]), "ghosts after restart: {list}");
        Ok(())
    })
}

#[tokio::test]
async fn a_taken_port_is_refused_with_its_cause_and_what_to_do() {
    use std::error::Error;
    let first = start(Config::default()).await;
    let Err(err) = webchat_local::start(Config {
        addr: first.addr(),
        ..Config::default()
    })
    .await
    else {
        panic!("a second gateway started on {}", first.addr());
    };
    assert!(err.to_string().contains("try --addr 127.0.0.1:0"), "{err}");
    let cause = err
        .source()
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("{err:?} keeps no I/O cause"));
    assert_eq!(cause.kind(), std::io::ErrorKind::AddrInUse, "{cause}");
    first.stop().await;
}
