//! Every row of docs/protocol.md, driven through the chat rules the Lambdas and the local
//! gateway run, over the in-memory store and a gateway that records pushes.

use serde_json::{json, Value};
use webchat_backend::{
    ConnectionStore, DownStore, Driver, Frame, Limits, PostError, RateLimit, RecordingGateway,
    Retrying, Rules,
};
use webchat_shared_types::{Route, ServerEvent, User, LOBBY};

fn error_code(reply: Option<Value>) -> String {
    let reply = reply.expect("an error reply");
    assert_eq!(reply["action"], "error", "{reply}");
    assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    reply["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn connect_records_the_connection_and_disconnect_forgets_it() {
    let h = Driver::new();
    h.connect("A1").await;
    assert!(h.store.get("A1").await.unwrap().is_some());
    h.disconnect("A1").await;
    assert!(h.store.get("A1").await.unwrap().is_none());
}

#[tokio::test]
async fn disconnect_of_an_unknown_connection_is_fine() {
    let h = Driver::new();
    h.disconnect("nobody").await;
    h.disconnect("nobody").await;
}

#[tokio::test]
async fn register_with_request_id_replies_registered_and_tells_the_others() {
    let h = Driver::new();
    h.arrive("A", "ana").await;
    h.connect("B").await;
    let reply = h
        .send(
            "B",
            json!({"action":"register","userName":"  bia ","requestId":"r1"}),
        )
        .await;
    let mut reply = reply.expect("a reply to register");
    let token = reply["resumeToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "a 128-bit resume token: {reply}"
    );
    reply.as_object_mut().unwrap().remove("resumeToken");
    assert_eq!(
        reply,
        json!({"action":"registered","userName":"bia","connectionId":"B","requestId":"r1"})
    );
    assert_eq!(
        h.events("A"),
        vec![ServerEvent::NewUser {
            room: LOBBY.into(),
            user_name: "bia".into(),
            connection_id: "B".into()
        }]
    );
    assert!(
        h.events("B").is_empty(),
        "the registering connection is not told about itself"
    );
}

#[tokio::test]
async fn register_without_request_id_is_silent_like_the_original() {
    let h = Driver::new();
    h.connect("A").await;
    assert_eq!(
        h.send("A", json!({"action":"register","userName":"ana"}))
            .await,
        None
    );
    assert_eq!(
        h.store
            .get("A")
            .await
            .unwrap()
            .unwrap()
            .user_name
            .as_deref(),
        Some("ana")
    );
}

#[tokio::test]
async fn unregistered_connections_get_no_announcements() {
    let h = Driver::new();
    h.connect("lurker").await;
    h.arrive("A", "ana").await;
    assert!(h.events("lurker").is_empty());
}

#[tokio::test]
async fn a_taken_name_is_refused_in_any_letter_case() {
    let h = Driver::new();
    h.arrive("A", "Ana").await;
    h.connect("B").await;
    let reply = h.register("B", "aNA").await;
    assert_eq!(reply["code"], "name_taken");
    assert_eq!(reply["requestId"], "r");
    assert_eq!(
        h.store.get("B").await.unwrap().unwrap().user_name,
        None,
        "a refused frame changes nothing"
    );
    assert_eq!(
        error_code(
            h.send("B", json!({"action":"register","userName":"ana"}))
                .await
        ),
        "name_taken"
    );
}

#[tokio::test]
async fn rename_announces_exit_of_the_old_name_then_the_new_one_and_frees_the_old() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    let reply = h.register("B", "bea").await;
    assert_eq!(reply["userName"], "bea");
    assert_eq!(
        h.events("A"),
        vec![
            ServerEvent::UserExit {
                room: LOBBY.into(),
                user_name: "bia".into(),
                connection_id: "B".into()
            },
            ServerEvent::NewUser {
                room: LOBBY.into(),
                user_name: "bea".into(),
                connection_id: "B".into()
            },
        ]
    );
    h.connect("C").await;
    let reply = h.register("C", "bia").await;
    assert_eq!(reply["action"], "registered", "the old name is free again");
}

#[tokio::test]
async fn registering_the_same_name_again_announces_nothing() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    let reply = h.register("B", "bia").await;
    assert_eq!(reply["action"], "registered");
    assert!(h.events("A").is_empty());
}

#[tokio::test]
async fn invalid_names_answer_invalid_field() {
    let h = Driver::new();
    h.connect("A").await;
    for name in [
        json!("   "),
        json!("x".repeat(33)),
        json!("a\u{202E}b"),
        json!(7),
    ] {
        let code = error_code(
            h.send("A", json!({"action":"register","userName":name}))
                .await,
        );
        assert_eq!(code, "invalid_field", "{name}");
    }
}

#[tokio::test]
async fn list_always_replies_with_the_others_even_without_request_id() {
    let h = Driver::new();
    h.arrive("A", "ana").await;
    h.arrive("B", "bia").await;
    h.connect("C").await;
    let reply = h.send("A", json!({"action":"list"})).await.unwrap();
    assert_eq!(
        reply,
        json!({"action":"list","room":"lobby","users":[{"userName":"bia","connectionId":"B"}]})
    );
    let reply = h
        .send("C", json!({"action":"list","requestId":"l"}))
        .await
        .unwrap();
    assert_eq!(reply["requestId"], "l");
    assert_eq!(reply["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn broadcast_reaches_every_other_registered_connection_with_server_set_sender() {
    let h = Driver::new();
    h.arrive("A", "ana").await;
    h.arrive("B", "bia").await;
    h.arrive("C", "caio").await;
    h.connect("lurker").await;
    h.gateway.clear();
    let reply = h
        .send(
            "A",
            json!({"action":"message","sender":"mallory","message":"  hi all ","requestId":"m1"}),
        )
        .await
        .unwrap();
    assert_eq!(reply["action"], "sent");
    assert_eq!(reply["delivered"], 2);
    assert_eq!(reply["requestId"], "m1");
    let message_id = reply["messageId"].as_str().unwrap().to_string();
    assert_eq!(message_id.len(), 26);
    for (id, name) in [("B", "bia"), ("C", "caio")] {
        match h.events(id).as_slice() {
            [ServerEvent::Message {
                room,
                sender,
                sender_id,
                receiver,
                message,
                message_id: mid,
                private,
                timestamp,
                to,
            }] => {
                assert_eq!(room, LOBBY, "a message without room goes to the lobby");
                assert_eq!(to, &None, "a room message is addressed to no one");
                assert_eq!(sender, "ana");
                assert_eq!(sender_id, "A");
                assert_eq!(
                    receiver,
                    &User {
                        user_name: name.into(),
                        connection_id: id.into()
                    }
                );
                assert_eq!(message, "hi all");
                assert_eq!(mid, &message_id);
                assert!(!private);
                assert_eq!(Some(*timestamp), reply["timestamp"].as_u64());
            }
            other => panic!("{id} got {other:?}"),
        }
    }
    assert!(
        h.events("A").is_empty(),
        "the sender never receives its own message"
    );
    assert!(h.events("lurker").is_empty());
}

#[tokio::test]
async fn private_message_reaches_only_listed_live_receivers() {
    let h = Driver::new();
    h.arrive("A", "ana").await;
    h.arrive("B", "bia").await;
    h.arrive("C", "caio").await;
    h.connect("lurker").await;
    h.gateway.clear();
    let frame = json!({"action":"message","message":"psst","requestId":"p","receivers":[
        {"connectionId":"B","userName":"bia"},{"connectionId":"ghost"},{"connectionId":"A"},{"connectionId":"lurker"},{"connectionId":"B"}]});
    let reply = h.send("A", frame).await.unwrap();
    assert_eq!(
        reply["delivered"], 1,
        "unknown, unregistered, duplicate and own ids are skipped"
    );
    assert!(matches!(
        h.events("B").as_slice(),
        [ServerEvent::Message { private: true, .. }]
    ));
    assert!(h.events("C").is_empty());
    assert!(h.events("A").is_empty());
}

#[tokio::test]
async fn original_client_private_message_frame_is_delivered_without_reply() {
    let h = Driver::with_users(&[("A", "ana"), ("K1a2b3c4d5e6f7g=", "bia")]).await;
    let raw = r#"{"action":"message","sender":"ana","receivers":[{"userName":"bia","connectionId":"K1a2b3c4d5e6f7g="}],"message":"oi"}"#;
    assert_eq!(h.send_text("A", raw).await, None);
    assert_eq!(h.events("K1a2b3c4d5e6f7g=").len(), 1);
}

#[tokio::test]
async fn message_from_an_unregistered_connection_answers_not_registered() {
    let h = Driver::new();
    h.arrive("B", "bia").await;
    h.connect("A").await;
    h.gateway.clear();
    assert_eq!(
        error_code(
            h.send("A", json!({"action":"message","message":"hi"}))
                .await
        ),
        "not_registered"
    );
    assert!(h.events("B").is_empty());
}

#[tokio::test]
async fn message_limits_answer_their_codes_and_deliver_nothing() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    assert_eq!(
        error_code(
            h.send("A", json!({"action":"message","message":" \t "}))
                .await
        ),
        "invalid_field"
    );
    assert_eq!(
        error_code(
            h.send("A", json!({"action":"message","message":"x".repeat(4097)}))
                .await
        ),
        "too_large"
    );
    let receivers: Vec<Value> = (0..101)
        .map(|i| json!({"connectionId": format!("c{i}")}))
        .collect();
    assert_eq!(
        error_code(
            h.send(
                "A",
                json!({"action":"message","message":"hi","receivers":receivers})
            )
            .await
        ),
        "too_large"
    );
    assert!(h.events("B").is_empty());
}

#[tokio::test]
async fn ping_answers_pong_only_when_asked_with_request_id() {
    let h = Driver::new();
    h.connect("A").await;
    assert_eq!(
        h.send("A", json!({"action":"ping","requestId":"p"})).await,
        Some(json!({"action":"pong","requestId":"p"}))
    );
    assert_eq!(h.send("A", json!({"action":"ping"})).await, None);
}

#[tokio::test]
async fn default_route_answers_bad_json_and_unknown_action() {
    let h = Driver::new();
    h.connect("A").await;
    let on_default = |text| h.frame_on(Route::Default, "A", Frame::Text(text));
    assert_eq!(error_code(on_default("not json").await), "bad_json");
    let unknown = on_default(r#"{"action":"shout","requestId":"x"}"#).await;
    assert_eq!(error_code(unknown), "unknown_action");
    let missing = on_default(r#"{"message":"hi"}"#).await;
    assert_eq!(error_code(missing), "unknown_action");
    assert_eq!(error_code(on_default("").await), "bad_json");
}

#[tokio::test]
async fn a_frame_on_the_default_route_never_acts_even_if_it_decodes() {
    let h = Driver::new();
    h.connect("A").await;
    let body = r#"{"action":"register","userName":"ana","requestId":"r"}"#;
    let reply = h
        .frame_on(Route::Default, "A", Frame::Text(body))
        .await
        .unwrap();
    assert_eq!(reply["code"], "unknown_action");
    assert_eq!(reply["requestId"], "r");
    assert_eq!(h.store.get("A").await.unwrap().unwrap().user_name, None);
}

#[tokio::test]
async fn binary_frames_answer_bad_json() {
    let h = Driver::new();
    h.connect("A").await;
    let reply = h.frame_on(Route::Default, "A", Frame::Binary).await;
    assert_eq!(error_code(reply), "bad_json");
}

#[tokio::test]
async fn a_refusal_carries_the_request_id_of_its_frame() {
    let h = Driver::new();
    h.connect("A").await;
    let reply = h
        .send(
            "A",
            json!({"action":"message","message":"hi","requestId":"q7"}),
        )
        .await
        .unwrap();
    assert_eq!(reply["code"], "not_registered");
    assert_eq!(reply["requestId"], "q7");
}

#[tokio::test]
async fn disconnect_of_a_registered_user_tells_the_rest_and_frees_the_name() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    h.disconnect("A").await;
    assert_eq!(
        h.events("B"),
        vec![ServerEvent::UserExit {
            room: LOBBY.into(),
            user_name: "ana".into(),
            connection_id: "A".into()
        }]
    );
    h.arrive("C", "ANA").await;
}

#[tokio::test]
async fn gone_recipient_is_removed_announced_and_the_others_still_get_the_message() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia"), ("C", "caio"), ("D", "duda")]).await;
    h.gateway.mark_gone("C");
    let reply = h
        .send(
            "A",
            json!({"action":"message","message":"hi","requestId":"m"}),
        )
        .await
        .unwrap();
    assert_eq!(
        reply["action"], "sent",
        "one failing recipient never fails the sender"
    );
    assert_eq!(reply["delivered"], 2);
    assert!(
        h.store.get("C").await.unwrap().is_none(),
        "the stale row is deleted"
    );
    let exit = ServerEvent::UserExit {
        room: LOBBY.into(),
        user_name: "caio".into(),
        connection_id: "C".into(),
    };
    for id in ["A", "B", "D"] {
        assert!(h.events(id).contains(&exit), "{id} is told caio left");
    }
    assert!(matches!(h.events("B")[0], ServerEvent::Message { .. }));
    h.arrive("E", "caio").await;
}

#[tokio::test]
async fn gone_connections_found_while_announcing_are_cleaned_up_too() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia"), ("C", "caio")]).await;
    h.gateway.mark_gone("B");
    h.gateway.mark_gone("C");
    h.disconnect("A").await;
    assert!(h.store.members(LOBBY).await.unwrap().is_empty());
    h.arrive("X", "bia").await;
    h.arrive("Y", "caio").await;
}

#[tokio::test]
async fn throttled_pushes_are_retried_with_backoff() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    h.gateway.fail_next("B", || PostError::Throttled, 2);
    let reply = h
        .send(
            "A",
            json!({"action":"message","message":"hi","requestId":"m"}),
        )
        .await
        .unwrap();
    assert_eq!(reply["delivered"], 1);
    assert_eq!(h.events("B").len(), 1);
    assert!(h.gateway.attempts("B") >= 3);
}

#[tokio::test]
async fn pushes_that_found_the_management_api_unavailable_are_retried() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    h.gateway
        .fail_next("B", || PostError::unavailable("503"), 2);
    assert_eq!(h.broadcast("A", "hi").await, 1);
    assert_eq!(h.events("B").len(), 1);
    assert_eq!(h.gateway.attempts("B"), 3);
}

#[tokio::test]
async fn a_push_that_may_have_arrived_is_not_sent_twice() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    h.gateway
        .fail_next("B", || PostError::failed("attempt timed out"), 1);
    assert_eq!(h.broadcast("A", "hi").await, 0);
    assert_eq!(h.gateway.attempts("B"), 1);
    assert!(
        h.store.get("B").await.unwrap().is_some(),
        "a failed push is not goneness"
    );
}

#[tokio::test]
async fn a_recipient_throttled_for_good_is_not_counted_but_does_not_fail_the_sender() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia"), ("C", "caio")]).await;
    h.gateway.fail_next("B", || PostError::Throttled, 100);
    let reply = h
        .send(
            "A",
            json!({"action":"message","message":"hi","requestId":"m"}),
        )
        .await
        .unwrap();
    assert_eq!(reply["action"], "sent");
    assert_eq!(reply["delivered"], 1);
    assert!(
        h.store.get("B").await.unwrap().is_some(),
        "throttling is not goneness"
    );
}

#[tokio::test]
async fn fan_out_to_many_recipients_delivers_each_exactly_once() {
    let h = Driver::new();
    h.arrive("sender", "ana").await;
    for i in 0..300 {
        h.arrive(&format!("c{i}"), &format!("user{i}")).await;
    }
    h.gateway.clear();
    let reply = h
        .send(
            "sender",
            json!({"action":"message","message":"hi","requestId":"m"}),
        )
        .await
        .unwrap();
    assert_eq!(reply["delivered"], 300);
    let pushed = h.gateway.pushed();
    let unique: std::collections::HashSet<_> = pushed.iter().map(|(id, _)| id).collect();
    assert_eq!(pushed.len(), 300);
    assert_eq!(unique.len(), 300);
}

#[tokio::test]
async fn message_ids_sort_by_time() {
    let earlier = webchat_backend::new_message_id(1_000);
    let later = webchat_backend::new_message_id(2_000);
    assert!(earlier < later);
    assert_ne!(
        webchat_backend::new_message_id(5),
        webchat_backend::new_message_id(5)
    );
}

#[tokio::test]
async fn a_store_outage_answers_internal_and_refuses_new_connections() {
    let recorder = RecordingGateway::new();
    let gateway = Retrying::new(&recorder);
    let chat = Rules::new(&DownStore, &gateway);
    let send = |frame: Value| {
        let chat = &chat;
        async move {
            let text = frame.to_string();
            let reply = chat.frame(Route::of_frame(&text), "A", Frame::Text(&text));
            serde_json::to_value(reply.await.expect("a reply")).unwrap()
        }
    };
    for frame in [
        json!({"action":"register","userName":"ana","requestId":"r"}),
        json!({"action":"list"}),
        json!({"action":"message","message":"hi","requestId":"m"}),
    ] {
        let reply = send(frame.clone()).await;
        assert_eq!(reply["code"], "internal", "{frame}");
        assert!(
            !reply["message"].as_str().unwrap().contains("refused"),
            "internals are not leaked"
        );
    }
    let pong = send(json!({"action":"ping","requestId":"p"})).await;
    assert_eq!(pong["action"], "pong", "ping needs no store");
    assert!(
        chat.connect("A", None).await.is_err(),
        "a connection that could not be recorded is refused"
    );
}

// ---- fair use: the rate limits per connection ------------------------------------------

/// The `error` a limited frame gets: its requestId, and how long to wait.
fn rate_limited(reply: Option<Value>) -> (Option<String>, u64) {
    let reply = reply.expect("a reply to a limited frame");
    assert_eq!(reply["action"], "error", "{reply}");
    assert_eq!(reply["code"], "rate_limited", "{reply}");
    let wait = reply["retryAfterMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("retryAfterMs in {reply}"));
    let request_id = reply["requestId"].as_str().map(str::to_string);
    (request_id, wait)
}

fn message(text: &str, request_id: &str) -> Value {
    json!({"action":"message","message":text,"requestId":request_id})
}

#[tokio::test]
async fn a_flood_of_messages_is_refused_after_the_burst_and_delivers_nothing() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    for i in 0..20 {
        let reply = h
            .send("A", message(&format!("m{i}"), &format!("m{i}")))
            .await;
        assert_eq!(
            reply.unwrap()["action"],
            "sent",
            "message {i} is within the burst of 20"
        );
    }
    let (request_id, wait) = rate_limited(h.send("A", message("one too many", "m20")).await);
    assert_eq!(request_id.as_deref(), Some("m20"));
    assert_eq!(wait, 100, "one message per 100 ms at 10/s");
    let delivered: Vec<ServerEvent> = h.events("B");
    assert_eq!(delivered.len(), 20, "the limited message was not delivered");
    assert!(!delivered
        .iter()
        .any(|e| matches!(e, ServerEvent::Message { message, .. } if message == "one too many")));

    // Waiting less than told is still too early; waiting as told is enough.
    h.clock.advance(std::time::Duration::from_millis(99));
    let (_, wait) = rate_limited(h.send("A", message("early", "m21")).await);
    assert_eq!(wait, 1);
    h.clock.advance(std::time::Duration::from_millis(1));
    assert_eq!(
        h.send("A", message("on time", "m22")).await.unwrap()["action"],
        "sent"
    );
    rate_limited(h.send("A", message("again too soon", "m23")).await);
}

#[tokio::test]
async fn a_bucket_left_idle_refills_only_up_to_its_burst() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    h.clock.advance(std::time::Duration::from_hours(1));
    for i in 0..20 {
        h.broadcast("A", &format!("after an hour {i}")).await;
    }
    rate_limited(h.send("A", message("21st", "x")).await);
}

#[tokio::test]
async fn each_connection_has_its_own_buckets() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    for i in 0..20 {
        h.broadcast("A", &format!("flood {i}")).await;
    }
    rate_limited(h.send("A", message("flood 20", "f")).await);
    for i in 0..20 {
        assert_eq!(h.broadcast("B", &format!("calm {i}")).await, 1);
    }
}

#[tokio::test]
async fn messages_and_other_frames_have_separate_buckets() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    for i in 0..20 {
        h.broadcast("A", &format!("m{i}")).await;
    }
    rate_limited(h.send("A", message("m20", "m20")).await);
    // Joining took one frame (`register`) of the 40.
    for i in 1..40 {
        let reply = h
            .send("A", json!({"action":"ping","requestId":format!("p{i}")}))
            .await;
        assert_eq!(
            reply.unwrap()["action"],
            "pong",
            "frame {i} of a burst of 40"
        );
    }
    let (request_id, wait) = rate_limited(
        h.send("A", json!({"action":"ping","requestId":"p40"}))
            .await,
    );
    assert_eq!(request_id.as_deref(), Some("p40"));
    assert_eq!(wait, 50, "one frame per 50 ms at 20/s");
}

#[tokio::test]
async fn register_list_ping_and_refused_frames_all_take_from_the_action_bucket() {
    let h = Driver::with_users(&[("B", "bia")]).await;
    h.connect("A").await;
    let frames: [&str; 8] = [
        r#"{"action":"register","userName":"ana"}"#,
        r#"{"action":"list"}"#,
        r#"{"action":"ping"}"#,
        "not json",
        r#"{"action":"dance"}"#,
        r#"{"message":"no action"}"#,
        r#"{"action":"register","userName":""}"#,
        r#"{"action":"list","requestId":"l"}"#,
    ];
    for i in 0..5 {
        for frame in frames {
            let reply = h.send_text("A", frame).await;
            assert!(
                reply.as_ref().is_none_or(|r| r["code"] != "rate_limited"),
                "round {i}: {frame} got {reply:?}"
            );
        }
    }
    // 40 frames taken: binary frames, on `$default`, are refused for the rate now.
    let reply = h.frame_on(Route::Default, "A", Frame::Binary).await;
    assert_eq!(rate_limited(reply), (None, 50));
    assert_eq!(h.broadcast("A", "messages still go").await, 1);
    assert_eq!(h.events("B").len(), 2, "newUser ana, then her message");
}

#[tokio::test]
async fn a_limited_frame_changes_nothing() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    for _ in 0..40 {
        h.send("A", json!({"action":"ping"})).await;
    }
    h.gateway.clear();
    let reply = h
        .send(
            "A",
            json!({"action":"register","userName":"alma","requestId":"r"}),
        )
        .await;
    assert_eq!(rate_limited(reply).0.as_deref(), Some("r"));
    assert_eq!(
        h.store
            .get("A")
            .await
            .unwrap()
            .unwrap()
            .user_name
            .as_deref(),
        Some("ana"),
        "still ana"
    );
    assert!(h.gateway.pushed().is_empty(), "nobody was told of a rename");
    h.connect("C").await;
    assert_eq!(
        h.register("C", "ana").await["code"],
        "name_taken",
        "ana is still held"
    );
}

#[tokio::test]
async fn the_limit_comes_before_any_other_rule_and_keeps_the_request_id() {
    let h = Driver::new();
    h.connect("A").await;
    for _ in 0..20 {
        assert_eq!(
            error_code(h.send("A", message("hi", "m")).await),
            "not_registered"
        );
    }
    // Over the limit, even a frame that breaks other rules is answered only for the rate.
    let blank = json!({"action":"message","message":"  ","requestId":"blank"});
    assert_eq!(
        rate_limited(h.send("A", blank).await).0.as_deref(),
        Some("blank")
    );
    let silent = h
        .send("A", json!({"action":"message","message":"hi"}))
        .await;
    assert_eq!(
        rate_limited(silent).0,
        None,
        "no requestId, none in the error"
    );
}

#[tokio::test]
async fn a_connection_that_is_gone_is_not_limited() {
    let h = Driver::with_users(&[("B", "bia")]).await;
    for i in 0..100 {
        let reply = h
            .send(
                "ghost",
                json!({"action":"ping","requestId":format!("g{i}")}),
            )
            .await;
        assert_eq!(reply.unwrap()["action"], "pong");
    }
    for _ in 0..30 {
        assert_eq!(
            error_code(h.send("ghost", message("boo", "m")).await),
            "not_registered"
        );
    }
}

#[tokio::test]
async fn a_new_connection_starts_with_full_buckets() {
    let h = Driver::with_users(&[("A", "ana"), ("B", "bia")]).await;
    for i in 0..20 {
        h.broadcast("A", &format!("m{i}")).await;
    }
    rate_limited(h.send("A", message("m20", "m")).await);
    h.disconnect("A").await;
    h.arrive("A", "ana").await;
    for i in 0..20 {
        h.broadcast("A", &format!("again {i}")).await;
    }
}

#[tokio::test]
async fn configured_limits_replace_the_defaults() {
    let limits = Limits {
        message: RateLimit::new(0.5, 2),
        action: RateLimit::new(1.0, 3),
        ..Limits::DEFAULT
    };
    let h = Driver::new().with_limits(limits);
    h.arrive("A", "ana").await;
    h.arrive("B", "bia").await;
    h.broadcast("A", "one").await;
    h.broadcast("A", "two").await;
    assert_eq!(
        rate_limited(h.send("A", message("three", "3")).await).1,
        2000
    );
    // `register` took one action frame already.
    h.send("A", json!({"action":"ping"})).await;
    h.send("A", json!({"action":"ping"})).await;
    assert_eq!(
        rate_limited(h.send("A", json!({"action":"list"})).await).1,
        1000
    );
    h.clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(h.broadcast("A", "three").await, 1);
}
