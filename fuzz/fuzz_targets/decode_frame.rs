//! Fuzzes what every client frame goes through: `Route::of_frame` (API Gateway's route
//! selection, as the local gateway does it) and `decode_client_frame` (the handlers'
//! decoding and validation), then re-encodes what decodes.
//!
//! Invariants:
//! - nothing panics;
//! - a frame that decodes has a `requestId` of 1..=64 printable characters, a trimmed name
//!   of 1..=32 characters without control, invisible or bidi characters, a trimmed message
//!   of 1..=4,096 characters without control characters other than line breaks and tabs,
//!   and at most 100 distinct, well-formed receivers; validating its fields again changes
//!   nothing;
//! - `Route::of_frame` agrees with the decoder: a frame that decodes is routed to its action,
//!   and a frame refused as `bad_json` or `unknown_action` is routed to `$default`
//!   (duplicate keys included: both keep the last value);
//! - a refusal (other than `bad_json`) of a JSON object with a valid string `requestId`
//!   carries that `requestId`, and every error message is short (at most 256 characters,
//!   whatever the input) and round-trips as an `error` frame;
//! - re-encoding a decoded frame as a `ClientFrame` decodes to the same thing and routes
//!   the same way; a server `message` event carrying the decoded text round-trips.
//!
//! The first runs of this target found four bugs in shared-types, fixed since: routing and
//! decoding disagreed on duplicate keys and on JSON arrays, `unknown_action` refusals
//! lost the `requestId`, and error messages quoted the offending value in full.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use webchat_shared_types::{
    decode_client_frame, decode_server_frame, is_message_id, validate_message, validate_room,
    validate_user_name, ClientAction, ClientFrame, ErrorCode, HistoryPage, ReceiverRef, Request,
    Route, ServerEvent, ServerFrame, User, ValidFrame, LOBBY, MAX_CONNECTION_ID_CHARS,
    MAX_HISTORY_LIMIT, MAX_MESSAGE_BYTES, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_RECEIVERS,
    MAX_REQUEST_ID_CHARS, MAX_RESUME_TOKEN_CHARS,
};

/// Longest acceptable `error` message, in characters.
const MAX_ERROR_MESSAGE_CHARS: usize = 256;

fuzz_target!(|data: &[u8]| {
    // The gateway hands the handlers text frames only (tungstenite rejects invalid UTF-8;
    // binary frames never reach the decoder).
    if let Ok(frame) = std::str::from_utf8(data) {
        check(frame);
    }
});

/// The string `requestId` of a frame that is a JSON object (the last one, when the key is
/// repeated, as serde_json keeps it), read without building a `Value`.
fn top_level_request_id(frame: &str) -> Option<String> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            let mut request_id = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == "requestId" {
                    let value: serde_json::Value = map.next_value()?;
                    request_id = value.as_str().map(str::to_string);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(request_id)
        }
    }
    let mut de = serde_json::Deserializer::from_str(frame);
    let request_id = (&mut de).deserialize_map(V).ok()?;
    de.end().ok()?;
    request_id
}

fn valid_request_id(id: &str) -> bool {
    let chars = id.chars().count();
    (1..=MAX_REQUEST_ID_CHARS).contains(&chars) && !id.chars().any(char::is_control)
}

fn check(frame: &str) {
    let decoded = decode_client_frame(frame);
    let routed = Route::of_frame(frame);

    match &decoded {
        Ok(valid) => {
            check_valid(valid);
            assert_eq!(
                routed,
                valid.request.route(),
                "Route::of_frame disagrees with decode_client_frame on {frame:?}"
            );
            check_reencoding(valid);
        }
        Err(refusal) => {
            if let Some(id) = &refusal.request_id {
                assert!(
                    valid_request_id(id),
                    "refusal carries invalid requestId {id:?}"
                );
            }
            assert!(!refusal.message.is_empty());
            let chars = refusal.message.chars().count();
            assert!(
                chars <= MAX_ERROR_MESSAGE_CHARS,
                "a {chars}-character error message for a {}-byte frame: {:?}",
                frame.len(),
                refusal.message.chars().take(200).collect::<String>()
            );
            // The error frame itself always serialises and reads back.
            let reply = refusal.to_frame();
            let json = reply.to_json();
            assert_eq!(
                decode_server_frame(&json).expect("error frame decodes"),
                reply
            );

            if matches!(refusal.code, ErrorCode::BadJson | ErrorCode::UnknownAction) {
                assert_eq!(
                    routed,
                    Route::Default,
                    "{frame:?} is refused as {} but routed to {routed:?}",
                    refusal.code
                );
            }
            // A JSON object with a valid requestId gets its error with that requestId
            // (docs/protocol.md, "Correlation"). `bad_json` is exempt: serde_json's `Value`
            // refuses some numbers (`1e999`) that the lenient read below accepts.
            if let Some(id) = top_level_request_id(frame) {
                if valid_request_id(&id)
                    && frame.len() <= MAX_MESSAGE_BYTES
                    && refusal.code != ErrorCode::BadJson
                {
                    assert_eq!(
                        refusal.request_id.as_deref(),
                        Some(id.as_str()),
                        "{} refusal of {frame:?} lost its requestId",
                        refusal.code
                    );
                }
            }
        }
    }
}

fn check_valid(valid: &ValidFrame) {
    if let Some(id) = &valid.request_id {
        assert!(valid_request_id(id), "accepted requestId {id:?}");
    }
    match &valid.request {
        Request::Register {
            user_name,
            resume_token,
        } => {
            if let Some(token) = resume_token {
                let chars = token.chars().count();
                assert!((1..=MAX_RESUME_TOKEN_CHARS).contains(&chars));
                assert!(!token.chars().any(char::is_control));
            }
            check_name(user_name);
        }
        Request::MessageTo { to, message } => {
            check_name(to);
            check_message(message);
        }
        Request::HistoryWith { with, page, limit } => {
            check_name(with);
            check_page(page, *limit);
        }
        Request::Message {
            room,
            message,
            receivers,
        } => {
            check_room(room);
            check_message(message);
            if let Some(ids) = receivers {
                assert!(ids.len() <= MAX_RECEIVERS, "{} receivers", ids.len());
                for (i, id) in ids.iter().enumerate() {
                    let chars = id.chars().count();
                    assert!((1..=MAX_CONNECTION_ID_CHARS).contains(&chars));
                    assert!(!id.chars().any(char::is_control));
                    assert!(!ids[..i].contains(id), "duplicate receiver {id:?}");
                }
            }
        }
        Request::List { room, cursor } => {
            check_room(room);
            if let Some(cursor) = cursor {
                assert!(cursor.len().is_multiple_of(2) && cursor.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        Request::Join { room } => check_room(room),
        Request::Leave { room } => {
            check_room(room);
            assert_ne!(room, LOBBY, "leave of the lobby accepted");
        }
        Request::History { room, page, limit } => {
            check_room(room);
            check_page(page, *limit);
        }
        Request::Ping => {}
    }
}

/// A `userName`, `to` or `with`: trimmed, 1 to 32 characters, nothing invisible.
fn check_name(name: &str) {
    assert_eq!(name.trim(), name, "name not trimmed");
    let chars = name.chars().count();
    assert!(
        (1..=MAX_NAME_CHARS).contains(&chars),
        "name of {chars} chars"
    );
    assert!(!name.chars().any(char::is_control), "control in {name:?}");
    assert!(
        !name.chars().any(|c| matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')),
        "invisible or bidi character in {name:?}"
    );
    assert_eq!(validate_user_name(name).as_deref(), Ok(name));
}

fn check_message(message: &str) {
    assert_eq!(message.trim(), message, "message not trimmed");
    let chars = message.chars().count();
    assert!(
        (1..=MAX_MESSAGE_CHARS).contains(&chars),
        "message of {chars} chars"
    );
    assert!(!message
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')));
    assert_eq!(validate_message(message).as_deref(), Ok(message));
}

fn check_page(page: &HistoryPage, limit: usize) {
    assert!((1..=MAX_HISTORY_LIMIT).contains(&limit), "limit {limit}");
    if let HistoryPage::Before(id) | HistoryPage::After(id) = page {
        assert!(is_message_id(id), "accepted message id {id:?}");
    }
}

fn check_room(room: &str) {
    assert_eq!(validate_room(room).as_deref(), Ok(room), "room {room:?}");
    assert!(
        room.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'),
        "room {room:?}"
    );
}

fn check_reencoding(valid: &ValidFrame) {
    let action = match &valid.request {
        Request::Register {
            user_name,
            resume_token,
        } => ClientAction::Register {
            user_name: user_name.clone(),
            resume_token: resume_token.clone(),
        },
        Request::List { room, cursor } => ClientAction::List {
            room: Some(room.clone()),
            cursor: cursor.clone(),
        },
        Request::Ping => ClientAction::Ping {},
        Request::Join { room } => ClientAction::Join { room: room.clone() },
        Request::Leave { room } => ClientAction::Leave { room: room.clone() },
        Request::History { room, page, limit } => ClientAction::History {
            room: Some(room.clone()),
            with: None,
            before: before(page),
            after: after(page),
            limit: Some(*limit as u64),
        },
        Request::HistoryWith { with, page, limit } => ClientAction::History {
            room: None,
            with: Some(with.clone()),
            before: before(page),
            after: after(page),
            limit: Some(*limit as u64),
        },
        Request::MessageTo { to, message } => ClientAction::Message {
            room: None,
            message: message.clone(),
            receivers: None,
            to: Some(to.clone()),
            sender: None,
        },
        Request::Message {
            room,
            message,
            receivers,
        } => ClientAction::Message {
            room: Some(room.clone()),
            message: message.clone(),
            receivers: receivers.as_ref().map(|ids| {
                ids.iter()
                    .map(|id| ReceiverRef {
                        connection_id: id.clone(),
                        user_name: None,
                    })
                    .collect()
            }),
            to: None,
            sender: None,
        },
    };
    let again = ClientFrame {
        action,
        request_id: valid.request_id.clone(),
    }
    .to_json();
    assert_eq!(
        decode_client_frame(&again).as_ref(),
        Ok(valid),
        "re-encoded frame {again:?} decodes differently"
    );
    assert_eq!(Route::of_frame(&again), valid.request.route());

    // What the server would push for it reads back unchanged.
    let (room, text, to) = match &valid.request {
        Request::Register { user_name, .. } => (LOBBY.to_string(), user_name.clone(), None),
        Request::Message { room, message, .. } => (room.clone(), message.clone(), None),
        Request::MessageTo { to, message } => (
            format!("dm:{}", "0".repeat(64)),
            message.clone(),
            Some(to.clone()),
        ),
        _ => return,
    };
    let pushed = ServerFrame {
        event: ServerEvent::Message {
            room,
            sender: text.clone(),
            sender_id: "L0SM9cOFvHcCIhw=".into(),
            receiver: User {
                user_name: text.clone(),
                connection_id: "K1a2b3c4d5e6f7g=".into(),
            },
            message: text,
            message_id: "01J00000000000000000000000".into(),
            timestamp: u64::MAX,
            private: true,
            to,
        },
        request_id: valid.request_id.clone(),
    };
    let json = pushed.to_json();
    assert_eq!(
        decode_server_frame(&json).expect("server frame decodes"),
        pushed
    );
}

fn before(page: &HistoryPage) -> Option<String> {
    match page {
        HistoryPage::Before(id) => Some(id.clone()),
        _ => None,
    }
}

fn after(page: &HistoryPage) -> Option<String> {
    match page {
        HistoryPage::After(id) => Some(id.clone()),
        _ => None,
    }
}
