//! The protocol as docs/protocol.md writes it: every action and event round-trips, the
//! original client's frames decode, and each rule answers with its error code.

use serde_json::{json, Value};
use webchat_shared_types::*;

fn roundtrip_server(frame: ServerFrame, expected: &Value) {
    let text = frame.to_json();
    assert_eq!(&serde_json::from_str::<Value>(&text).unwrap(), expected);
    assert_eq!(decode_server_frame(&text).unwrap(), frame);
    assert_eq!(
        read_server_frame(&text),
        Some(frame),
        "the clients' small reader reads {text} as the strict one does"
    );
}

fn refusal(frame: &str) -> Refusal {
    decode_client_frame(frame).expect_err("frame should be refused")
}

#[test]
fn original_client_register_frame_decodes() {
    let frame = decode_client_frame(r#"{"action":"register","userName":"ana"}"#).unwrap();
    assert_eq!(
        frame.request,
        Request::Register {
            user_name: "ana".into(),
            resume_token: None
        }
    );
    assert_eq!(frame.request_id, None);
}

#[test]
fn original_client_list_frame_decodes() {
    let frame = decode_client_frame(r#"{"action":"list"}"#).unwrap();
    assert_eq!(
        frame.request,
        Request::List {
            room: LOBBY.into(),
            cursor: None
        }
    );
}

#[test]
fn original_client_private_message_frame_decodes_and_ignores_sender() {
    let raw = r#"{"action":"message","sender":"ana","receivers":[{"userName":"bia","connectionId":"K1a2b3c4d5e6f7g="}],"message":"oi"}"#;
    let frame = decode_client_frame(raw).unwrap();
    assert_eq!(
        frame.request,
        Request::Message {
            room: LOBBY.into(),
            message: "oi".into(),
            receivers: Some(vec!["K1a2b3c4d5e6f7g=".into()])
        }
    );
    let typed: ClientFrame = serde_json::from_str(raw).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&typed.to_json()).unwrap(),
        serde_json::from_str::<Value>(raw).unwrap()
    );
}

#[test]
fn every_client_action_round_trips() {
    let frames = [
        (
            ClientFrame {
                action: ClientAction::Register {
                    user_name: "alice".into(),
                    resume_token: None,
                },
                request_id: Some("r1".into()),
            },
            json!({"action":"register","userName":"alice","requestId":"r1"}),
        ),
        (
            ClientFrame::new(ClientAction::List {
                room: None,
                cursor: None,
            }),
            json!({"action":"list"}),
        ),
        (
            ClientFrame::new(ClientAction::Register {
                user_name: "alice".into(),
                resume_token: Some("00ff".into()),
            }),
            json!({"action":"register","userName":"alice","resumeToken":"00ff"}),
        ),
        (
            ClientFrame::new(ClientAction::List {
                room: Some("rust".into()),
                cursor: None,
            }),
            json!({"action":"list","room":"rust"}),
        ),
        (
            ClientFrame::new(ClientAction::List {
                room: Some("rust".into()),
                cursor: Some("4c30".into()),
            }),
            json!({"action":"list","room":"rust","cursor":"4c30"}),
        ),
        (
            ClientFrame::new(ClientAction::Join {
                room: "rust".into(),
            }),
            json!({"action":"join","room":"rust"}),
        ),
        (
            ClientFrame::new(ClientAction::Leave {
                room: "rust".into(),
            }),
            json!({"action":"leave","room":"rust"}),
        ),
        (
            ClientFrame::new(ClientAction::History {
                room: Some("rust".into()),
                before: Some("01KB0000000000000000000000".into()),
                after: None,
                with: None,
                limit: Some(20),
            }),
            json!({"action":"history","room":"rust","before":"01KB0000000000000000000000","limit":20}),
        ),
        (
            ClientFrame {
                action: ClientAction::Message {
                    room: None,
                    message: "hi all".into(),
                    receivers: None,
                    to: None,
                    sender: None,
                },
                request_id: Some("r2".into()),
            },
            json!({"action":"message","message":"hi all","requestId":"r2"}),
        ),
        (
            ClientFrame::new(ClientAction::Message {
                room: None,
                message: "psst".into(),
                receivers: Some(vec![ReceiverRef {
                    connection_id: "L0SM9cOFvHcCIhw=".into(),
                    user_name: None,
                }]),
                to: None,
                sender: None,
            }),
            json!({"action":"message","message":"psst","receivers":[{"connectionId":"L0SM9cOFvHcCIhw="}]}),
        ),
        (
            ClientFrame {
                action: ClientAction::Ping {},
                request_id: Some("p".into()),
            },
            json!({"action":"ping","requestId":"p"}),
        ),
    ];
    for (frame, expected) in frames {
        let text = frame.to_json();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
        assert_eq!(serde_json::from_str::<ClientFrame>(&text).unwrap(), frame);
        decode_client_frame(&text).expect("a frame the types write must validate");
    }
}

#[test]
fn every_server_event_round_trips() {
    let alice = User {
        user_name: "alice".into(),
        connection_id: "L0SM9cOFvHcCIhw=".into(),
    };
    roundtrip_server(
        ServerFrame::push(ServerEvent::NewUser {
            room: LOBBY.into(),
            user_name: "alice".into(),
            connection_id: "L0SM9cOFvHcCIhw=".into(),
        }),
        &json!({"action":"newUser","room":"lobby","userName":"alice","connectionId":"L0SM9cOFvHcCIhw="}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::UserExit {
            room: LOBBY.into(),
            user_name: "alice".into(),
            connection_id: "L0SM9cOFvHcCIhw=".into(),
        }),
        &json!({"action":"userExit","room":"lobby","userName":"alice","connectionId":"L0SM9cOFvHcCIhw="}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::Message {
            room: "rust".into(),
            sender: "alice".into(),
            sender_id: "L0SM9cOFvHcCIhw=".into(),
            receiver: User {
                user_name: "bob".into(),
                connection_id: "K1a2b3c4d5e6f7g=".into(),
            },
            message: "hi all".into(),
            message_id: "01J".into(),
            timestamp: 1_764_316_800_000,
            private: false,
            to: None,
        }),
        &json!({"action":"message","room":"rust","sender":"alice","senderId":"L0SM9cOFvHcCIhw=","receiver":{"connectionId":"K1a2b3c4d5e6f7g=","userName":"bob"},"message":"hi all","messageId":"01J","timestamp":1_764_316_800_000_u64,"private":false}),
    );
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::List {
                room: LOBBY.into(),
                users: vec![alice.clone()],
                cursor: None,
                count: None,
            },
            request_id: None,
        },
        &json!({"action":"list","room":"lobby","users":[{"userName":"alice","connectionId":"L0SM9cOFvHcCIhw="}]}),
    );
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::List {
                room: LOBBY.into(),
                users: vec![alice.clone()],
                cursor: Some("4c30".into()),
                count: Some(250),
            },
            request_id: Some("r9".into()),
        },
        &json!({"action":"list","room":"lobby","users":[{"userName":"alice","connectionId":"L0SM9cOFvHcCIhw="}],"cursor":"4c30","count":250,"requestId":"r9"}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::Members {
            room: LOBBY.into(),
            count: 250,
        }),
        &json!({"action":"members","room":"lobby","count":250}),
    );
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::Registered {
                user_name: "alice".into(),
                connection_id: "L0SM9cOFvHcCIhw=".into(),
                resume_token: Some("9f86d081884c7d659a2feaa0c55ad015".into()),
                conversations: None,
            },
            request_id: Some("r1".into()),
        },
        &json!({"action":"registered","userName":"alice","connectionId":"L0SM9cOFvHcCIhw=","resumeToken":"9f86d081884c7d659a2feaa0c55ad015","requestId":"r1"}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::Joined {
            room: "rust".into(),
            users: vec![alice.clone()],
            cursor: None,
            count: None,
        }),
        &json!({"action":"joined","room":"rust","users":[{"userName":"alice","connectionId":"L0SM9cOFvHcCIhw="}]}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::Left {
            room: "rust".into(),
        }),
        &json!({"action":"left","room":"rust"}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::History {
            room: "rust".into(),
            with: None,
            messages: vec![],
            more: false,
        }),
        &json!({"action":"history","room":"rust","messages":[],"more":false}),
    );
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::Sent {
                message_id: "01J".into(),
                timestamp: 1_764_316_800_000,
                delivered: 3,
            },
            request_id: Some("r2".into()),
        },
        &json!({"action":"sent","messageId":"01J","timestamp":1_764_316_800_000_u64,"delivered":3,"requestId":"r2"}),
    );
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::Pong {},
            request_id: Some("p".into()),
        },
        &json!({"action":"pong","requestId":"p"}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::Error {
            code: ErrorCode::InvalidField,
            message: "userName must be 1 to 32 characters".into(),
            retry_after_ms: None,
        }),
        &json!({"action":"error","code":"invalid_field","message":"userName must be 1 to 32 characters"}),
    );
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::Error {
                code: ErrorCode::RateLimited,
                message: "too many message frames".into(),
                retry_after_ms: Some(85),
            },
            request_id: Some("m7".into()),
        },
        &json!({"action":"error","code":"rate_limited","message":"too many message frames","retryAfterMs":85,"requestId":"m7"}),
    );
}

#[test]
fn every_error_code_uses_its_protocol_spelling() {
    let codes = [
        (ErrorCode::BadJson, "bad_json"),
        (ErrorCode::UnknownAction, "unknown_action"),
        (ErrorCode::InvalidField, "invalid_field"),
        (ErrorCode::NameTaken, "name_taken"),
        (ErrorCode::NotRegistered, "not_registered"),
        (ErrorCode::TooLarge, "too_large"),
        (ErrorCode::RateLimited, "rate_limited"),
        (ErrorCode::NotAMember, "not_a_member"),
        (ErrorCode::LimitReached, "limit_reached"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::UnknownUser, "unknown_user"),
        (ErrorCode::Internal, "internal"),
    ];
    for (code, text) in codes {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(text));
        assert_eq!(code.as_str(), text);
    }
}

#[test]
fn blank_name_is_refused_as_in_the_protocol_example() {
    let r = refusal(r#"{"action":"register","userName":"   "}"#);
    assert_eq!(r.code, ErrorCode::InvalidField);
    assert_eq!(r.message, "userName must be 1 to 32 characters");
    assert_eq!(
        serde_json::to_value(r.to_frame()).unwrap(),
        json!({"action":"error","code":"invalid_field","message":"userName must be 1 to 32 characters"})
    );
}

#[test]
fn names_are_trimmed_and_limited_to_32_characters() {
    assert_eq!(validate_user_name("  ana  ").unwrap(), "ana");
    assert_eq!(
        validate_user_name(&"é".repeat(32)).unwrap().chars().count(),
        32
    );
    assert_eq!(
        validate_user_name(&"é".repeat(33)).unwrap_err().code,
        ErrorCode::InvalidField
    );
}

#[test]
fn names_with_control_invisible_or_bidi_characters_are_refused() {
    for bad in [
        "a\u{0}b",
        "a\nb",
        "ad\u{200B}min",
        "\u{202E}nimda",
        "a\u{2066}b",
        "\u{FEFF}ana",
    ] {
        assert_eq!(
            validate_user_name(bad).unwrap_err().code,
            ErrorCode::InvalidField,
            "{bad:?}"
        );
    }
}

#[test]
fn names_compare_case_insensitively() {
    assert_eq!(name_key("Ana"), name_key("aNA"));
    assert_ne!(name_key("ana"), name_key("anna"));
}

#[test]
fn message_limits_answer_invalid_field_or_too_large() {
    assert_eq!(
        refusal(r#"{"action":"message","message":"  \n "}"#).code,
        ErrorCode::InvalidField
    );
    let long = format!(
        r#"{{"action":"message","message":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_CHARS + 1)
    );
    assert_eq!(refusal(&long).code, ErrorCode::TooLarge);
    let exact = format!(
        r#"{{"action":"message","message":" {} "}}"#,
        "x".repeat(MAX_MESSAGE_CHARS)
    );
    assert!(decode_client_frame(&exact).is_ok());
    assert_eq!(
        refusal(r#"{"action":"message","message":"a\u0000b"}"#).code,
        ErrorCode::InvalidField
    );
    let lines = decode_client_frame(r#"{"action":"message","message":"a\n\tb"}"#).unwrap();
    assert_eq!(
        lines.request,
        Request::Message {
            room: LOBBY.into(),
            message: "a\n\tb".into(),
            receivers: None
        }
    );
}

#[test]
fn receivers_are_limited_deduplicated_and_null_means_everyone() {
    let many: Vec<Value> = (0..=MAX_RECEIVERS)
        .map(|i| json!({"connectionId": format!("c{i}")}))
        .collect();
    let frame = json!({"action":"message","message":"hi","receivers":many}).to_string();
    assert_eq!(refusal(&frame).code, ErrorCode::TooLarge);

    let dup = r#"{"action":"message","message":"hi","receivers":[{"connectionId":"a"},{"connectionId":"b"},{"connectionId":"a"}]}"#;
    assert_eq!(
        decode_client_frame(dup).unwrap().request,
        Request::Message {
            room: LOBBY.into(),
            message: "hi".into(),
            receivers: Some(vec!["a".into(), "b".into()])
        }
    );
    let null = r#"{"action":"message","message":"hi","receivers":null}"#;
    assert_eq!(
        decode_client_frame(null).unwrap().request,
        Request::Message {
            room: LOBBY.into(),
            message: "hi".into(),
            receivers: None
        }
    );
    assert_eq!(
        refusal(r#"{"action":"message","message":"hi","receivers":[{"connectionId":""}]}"#).code,
        ErrorCode::InvalidField
    );
}

#[test]
fn frames_that_are_not_json_answer_bad_json() {
    for bad in [
        "",
        "{",
        "hello",
        "{\"action\":\"list\"",
        &"[".repeat(10_000),
    ] {
        assert_eq!(refusal(bad).code, ErrorCode::BadJson, "{bad:?}");
    }
}

#[test]
fn frames_without_a_known_action_answer_unknown_action() {
    for bad in [
        r"{}",
        r#"{"action":5}"#,
        r#"{"action":"shout"}"#,
        r"[1,2]",
        r#""list""#,
        r#"{"action":null}"#,
        r#"{"action":"LIST"}"#,
    ] {
        assert_eq!(refusal(bad).code, ErrorCode::UnknownAction, "{bad}");
        assert_eq!(Route::of_frame(bad), Route::Default, "{bad}");
    }
}

#[test]
fn route_selection_matches_the_action_field() {
    assert_eq!(
        Route::of_frame(r#"{"action":"register","userName":5}"#),
        Route::Register
    );
    assert_eq!(
        Route::of_frame(r#"{"requestId":"x","action":"ping"}"#),
        Route::Ping
    );
    assert_eq!(Route::of_frame("not json"), Route::Default);
    // Route keys that are not actions cannot be chosen by a frame.
    for key in ["$connect", "$disconnect", "$default"] {
        let frame = format!(r#"{{"action":"{key}"}}"#);
        assert_eq!(Route::of_frame(&frame), Route::Default, "{frame}");
        assert_eq!(refusal(&frame).code, ErrorCode::UnknownAction, "{frame}");
    }
}

#[test]
fn every_route_key_reads_back_as_its_route() {
    for route in Route::ALL {
        assert_eq!(Route::from_key(route.key()), Some(route));
    }
    assert_eq!(Route::from_key("shout"), None);
    let replying: Vec<&str> = Route::ALL
        .into_iter()
        .filter(|r| r.replies())
        .map(Route::key)
        .collect();
    assert_eq!(
        replying,
        ["register", "list", "message", "ping", "join", "leave", "history", "$default"]
    );
}

#[test]
fn unknown_actions_are_told_which_actions_exist() {
    let r = refusal(r#"{"action":"shout"}"#);
    assert!(
        r.message
            .ends_with("use register, list, message, ping, join, leave or history"),
        "{}",
        r.message
    );
}

#[test]
fn fields_of_the_wrong_type_answer_invalid_field_with_the_request_id() {
    let r = refusal(r#"{"action":"register","userName":5,"requestId":"r9"}"#);
    assert_eq!(r.code, ErrorCode::InvalidField);
    assert_eq!(r.request_id.as_deref(), Some("r9"));
    assert_eq!(
        refusal(r#"{"action":"register"}"#).code,
        ErrorCode::InvalidField
    );
    assert_eq!(
        refusal(r#"{"action":"message","message":["a"]}"#).code,
        ErrorCode::InvalidField
    );
    assert_eq!(
        refusal(r#"{"action":"message","message":"a","receivers":{"connectionId":"x"}}"#).code,
        ErrorCode::InvalidField
    );
}

#[test]
fn request_ids_are_echoed_and_bad_ones_refused() {
    let ok = decode_client_frame(r#"{"action":"ping","requestId":"abc"}"#).unwrap();
    assert_eq!(ok.request_id.as_deref(), Some("abc"));
    for bad in [
        r#"{"action":"ping","requestId":""}"#,
        r#"{"action":"ping","requestId":7}"#,
        r#"{"action":"ping","requestId":{"a":1}}"#,
    ] {
        let r = refusal(bad);
        assert_eq!(r.code, ErrorCode::InvalidField, "{bad}");
        assert_eq!(r.request_id, None);
    }
    let long = format!(
        r#"{{"action":"ping","requestId":"{}"}}"#,
        "x".repeat(MAX_REQUEST_ID_CHARS + 1)
    );
    assert_eq!(refusal(&long).code, ErrorCode::InvalidField);
}

#[test]
fn room_names_are_lower_cased_and_limited_to_a_plain_alphabet() {
    assert_eq!(validate_room("Rust-Lang_2").unwrap(), "rust-lang_2");
    let longest = "a".repeat(MAX_ROOM_CHARS);
    assert_eq!(validate_room(&longest).unwrap(), longest);
    for bad in [
        "",
        " rust",
        "rust room",
        "café",
        "a/b",
        &"a".repeat(MAX_ROOM_CHARS + 1),
    ] {
        assert_eq!(
            validate_room(bad).unwrap_err().code,
            ErrorCode::InvalidField,
            "{bad:?}"
        );
    }
    let join = decode_client_frame(r#"{"action":"join","room":"RUST","requestId":"j"}"#).unwrap();
    assert_eq!(
        join.request,
        Request::Join {
            room: "rust".into()
        }
    );
    let leave_lobby =
        decode_client_frame(r#"{"action":"leave","room":"Lobby","requestId":"l"}"#).unwrap_err();
    assert_eq!(leave_lobby.code, ErrorCode::InvalidField);
    assert_eq!(leave_lobby.request_id.as_deref(), Some("l"));
}

#[test]
fn history_frames_take_one_direction_and_a_bounded_limit() {
    let id = "01KB2B3C4D5E6F7G8H9J0KMNPQ";
    let decode = |frame: Value| decode_client_frame(&frame.to_string());
    assert_eq!(
        decode(json!({"action":"history"})).unwrap().request,
        Request::History {
            room: LOBBY.into(),
            page: HistoryPage::Latest,
            limit: DEFAULT_HISTORY_LIMIT
        }
    );
    assert_eq!(
        decode(json!({"action":"history","room":"rust","after":id,"limit":100}))
            .unwrap()
            .request,
        Request::History {
            room: "rust".into(),
            page: HistoryPage::After(id.into()),
            limit: MAX_HISTORY_LIMIT
        }
    );
    for bad in [
        json!({"action":"history","limit":0}),
        json!({"action":"history","limit":101}),
        json!({"action":"history","limit":2.5}),
        json!({"action":"history","limit":"10"}),
        json!({"action":"history","before":"01kb2b3c4d5e6f7g8h9j0kmnpq"}),
        json!({"action":"history","before":id,"after":id}),
        json!({"action":"history","room":"no spaces"}),
    ] {
        assert_eq!(
            decode(bad.clone()).unwrap_err().code,
            ErrorCode::InvalidField,
            "{bad}"
        );
    }
}

#[test]
fn events_from_a_v1_server_without_room_read_as_the_lobby() {
    let frame = decode_server_frame(
        r#"{"action":"newUser","userName":"ana","connectionId":"L0SM9cOFvHcCIhw="}"#,
    )
    .unwrap();
    assert_eq!(
        frame.event,
        ServerEvent::NewUser {
            room: LOBBY.into(),
            user_name: "ana".into(),
            connection_id: "L0SM9cOFvHcCIhw=".into()
        }
    );
}

#[test]
fn the_small_reader_skips_what_it_cannot_read() {
    assert_eq!(read_server_frame(r#"{"action":"somethingNew"}"#), None);
    assert_eq!(read_server_frame("not json"), None);
    assert_eq!(
        read_server_frame(r#"{"action":"error","message":"no code"}"#),
        None
    );
}

#[test]
fn person_addressed_frames_round_trip() {
    let frames = [
        (
            ClientFrame {
                action: ClientAction::Message {
                    room: None,
                    message: "hi Bob".into(),
                    receivers: None,
                    to: Some("Bob".into()),
                    sender: None,
                },
                request_id: Some("m1".into()),
            },
            json!({"action":"message","message":"hi Bob","to":"Bob","requestId":"m1"}),
        ),
        (
            ClientFrame::new(ClientAction::History {
                room: None,
                with: Some("Bob".into()),
                before: None,
                after: Some("01KB0000000000000000000000".into()),
                limit: Some(20),
            }),
            json!({"action":"history","with":"Bob","after":"01KB0000000000000000000000","limit":20}),
        ),
    ];
    for (frame, expected) in frames {
        let text = frame.to_json();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
        assert_eq!(serde_json::from_str::<ClientFrame>(&text).unwrap(), frame);
        decode_client_frame(&text).expect("a frame the types write must validate");
    }
    let valid = decode_client_frame(r#"{"action":"message","to":"  Bob ","message":" hi "}"#)
        .expect("a message to a person");
    assert_eq!(
        valid.request,
        Request::MessageTo {
            to: "Bob".into(),
            message: "hi".into()
        }
    );
    assert_eq!(valid.request.route(), Route::Message);
    let valid = decode_client_frame(r#"{"action":"history","with":"Bob"}"#).unwrap();
    assert_eq!(
        valid.request,
        Request::HistoryWith {
            with: "Bob".into(),
            page: HistoryPage::Latest,
            limit: DEFAULT_HISTORY_LIMIT
        }
    );
    assert_eq!(valid.request.route(), Route::History);
}

#[test]
fn to_and_with_name_a_person_and_exclude_rooms() {
    for frame in [
        r#"{"action":"message","to":"Bob","room":"rust","message":"hi"}"#,
        r#"{"action":"message","to":"Bob","room":"lobby","message":"hi"}"#,
        r#"{"action":"message","to":"Bob","receivers":[],"message":"hi"}"#,
        r#"{"action":"message","to":"   ","message":"hi"}"#,
        r#"{"action":"message","to":"Bob\u0007","message":"hi"}"#,
        r#"{"action":"message","to":"Bob\u200b","message":"hi"}"#,
        r#"{"action":"message","to":7,"message":"hi"}"#,
        r#"{"action":"history","with":"Bob","room":"rust"}"#,
        r#"{"action":"history","with":""}"#,
        r#"{"action":"history","with":"abcdefghijklmnopqrstuvwxyz0123456"}"#,
    ] {
        assert_eq!(refusal(frame).code, ErrorCode::InvalidField, "{frame}");
    }
    assert_eq!(
        refusal(r#"{"action":"message","to":"  ","message":"hi"}"#).message,
        "to must be 1 to 32 characters"
    );
    assert_eq!(
        refusal(r#"{"action":"history","with":"Bob","before":"01KB0000000000000000000000","after":"01KB0000000000000000000000"}"#).code,
        ErrorCode::InvalidField
    );
    // Null is absent, as for receivers.
    let valid =
        decode_client_frame(r#"{"action":"message","to":null,"message":"hi","room":"rust"}"#)
            .unwrap();
    assert!(matches!(valid.request, Request::Message { .. }));
}

#[test]
fn person_addressed_events_round_trip_through_both_readers() {
    let conversation = "dm:".to_string() + &"ab".repeat(32);
    let message = ServerEvent::Message {
        room: conversation.clone(),
        sender: "Ann".into(),
        sender_id: "A1".into(),
        receiver: User {
            user_name: "Bob".into(),
            connection_id: "B1".into(),
        },
        message: "hi Bob".into(),
        message_id: "01KB0000000000000000000000".into(),
        timestamp: 1_764_316_800_000,
        private: true,
        to: Some("Bob".into()),
    };
    let pushed = json!({"action":"message","room":conversation,"sender":"Ann","senderId":"A1","receiver":{"connectionId":"B1","userName":"Bob"},"message":"hi Bob","messageId":"01KB0000000000000000000000","timestamp":1_764_316_800_000_u64,"private":true,"to":"Bob"});
    roundtrip_server(ServerFrame::push(message.clone()), &pushed.clone());
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::History {
                room: conversation.clone(),
                with: Some("Ann".into()),
                messages: vec![message],
                more: false,
            },
            request_id: Some("h".into()),
        },
        &json!({"action":"history","room":conversation,"with":"Ann","messages":[pushed],"more":false,"requestId":"h"}),
    );
    roundtrip_server(
        ServerFrame {
            event: ServerEvent::Registered {
                user_name: "Bob".into(),
                connection_id: "B1".into(),
                resume_token: Some("00ff".into()),
                conversations: Some(vec![Conversation {
                    with: "Ann".into(),
                    last_message_id: "01KB0000000000000000000000".into(),
                }]),
            },
            request_id: Some("r".into()),
        },
        &json!({"action":"registered","userName":"Bob","connectionId":"B1","resumeToken":"00ff","conversations":[{"with":"Ann","lastMessageId":"01KB0000000000000000000000"}],"requestId":"r"}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::Registered {
            user_name: "Bob".into(),
            connection_id: "B1".into(),
            resume_token: None,
            conversations: Some(vec![]),
        }),
        &json!({"action":"registered","userName":"Bob","connectionId":"B1","conversations":[]}),
    );
    roundtrip_server(
        ServerFrame::push(ServerEvent::Error {
            code: ErrorCode::UnknownUser,
            message: "no signed-in person goes by \"Zed\"".into(),
            retry_after_ms: None,
        }),
        &json!({"action":"error","code":"unknown_user","message":"no signed-in person goes by \"Zed\""}),
    );
}

#[test]
fn list_cursors_are_what_a_list_reply_gave_or_refused() {
    let frame = decode_client_frame(r#"{"action":"list","room":"rust","cursor":"4c30"}"#).unwrap();
    assert_eq!(
        frame.request,
        Request::List {
            room: "rust".into(),
            cursor: Some("4c30".into())
        }
    );
    for bad in [
        r#""""#,
        r#""4c3""#,
        r#""4C30""#,
        r#""zz""#,
        "12",
        &format!("\"{}\"", "ab".repeat(MAX_CURSOR_CHARS)),
    ] {
        let refused = refusal(&format!(
            r#"{{"action":"list","cursor":{bad},"requestId":"c"}}"#
        ));
        assert_eq!(refused.code, ErrorCode::InvalidField, "{bad}");
        assert_eq!(refused.request_id.as_deref(), Some("c"), "{bad}");
    }
}
