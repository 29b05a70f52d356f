use super::*;
use serde_json::{json, Value};
use webchat_shared_types::{Conversation, ServerFrame};

/// The JSON frames among `commands`, parsed.
fn sent(commands: &[Command]) -> Vec<Value> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Send(text) => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn only_frame(commands: &[Command]) -> Value {
    let frames = sent(commands);
    assert_eq!(frames.len(), 1, "expected one frame in {commands:?}");
    frames.into_iter().next().unwrap()
}

fn request_id(frame: &Value) -> String {
    frame["requestId"].as_str().expect("requestId").to_string()
}

fn reply(event: ServerEvent, request_id: &str) -> String {
    ServerFrame {
        event,
        request_id: Some(request_id.to_string()),
    }
    .to_json()
}

fn push(event: ServerEvent) -> String {
    ServerFrame::push(event).to_json()
}

fn user(name: &str, id: &str) -> User {
    User {
        user_name: name.into(),
        connection_id: id.into(),
    }
}

fn registered(name: &str, id: &str) -> ServerEvent {
    ServerEvent::Registered {
        user_name: name.into(),
        connection_id: id.into(),
        resume_token: Some(format!("token-of-{id}")),
        conversations: None,
    }
}

/// The server's `sent` for a `message` frame; returns what the client does next.
fn acknowledge(chat: &mut ChatState, frame: &Value) -> Vec<Command> {
    chat.frame(&reply(
        ServerEvent::Sent {
            message_id: "01KC0000000000000000000000".into(),
            timestamp: 0,
            delivered: 1,
        },
        &request_id(frame),
    ))
}

/// The frame among `commands` with this `action`.
fn frame_of(commands: &[Command], action: &str) -> Value {
    sent(commands)
        .into_iter()
        .find(|frame| frame["action"] == action)
        .unwrap_or_else(|| panic!("no {action} frame in {commands:?}"))
}

/// The reply to a `history` frame with these messages.
fn history_reply(frame: &Value, messages: Vec<ServerEvent>, more: bool) -> String {
    reply(
        ServerEvent::History {
            room: frame["room"].as_str().unwrap_or(LOBBY).into(),
            with: None,
            messages,
            more,
        },
        &request_id(frame),
    )
}

/// A chat that joined as `name` with connection `id`, got `others` as the list and an
/// empty lobby history.
fn joined(name: &str, id: &str, others: &[User]) -> ChatState {
    let mut chat = ChatState::new();
    assert_eq!(chat.join(name), vec![Command::Connect]);
    let register = only_frame(&chat.socket_opened());
    let commands = chat.frame(&reply(registered(name, id), &request_id(&register)));
    let list = frame_of(&commands, "list");
    chat.frame(&reply(
        ServerEvent::List {
            room: LOBBY.into(),
            users: others.to_vec(),
            cursor: None,
            count: None,
        },
        &request_id(&list),
    ));
    chat.frame(&history_reply(
        &frame_of(&commands, "history"),
        Vec::new(),
        false,
    ));
    chat
}

fn names(chat: &ChatState) -> Vec<&str> {
    chat.room()
        .users
        .iter()
        .map(|u| u.user_name.as_str())
        .collect()
}

fn system_lines(chat: &ChatState) -> Vec<&str> {
    chat.room()
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::System { text, .. } => Some(text.as_str()),
            EntryKind::Message { .. } => None,
        })
        .collect()
}

fn last_message(chat: &ChatState) -> (&str, &str, bool, bool, Option<&str>, &Delivery) {
    chat.room()
        .entries
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EntryKind::Message {
                sender,
                text,
                private,
                own,
                to,
                delivery,
                ..
            } => Some((
                sender.as_str(),
                text.as_str(),
                *private,
                *own,
                to.as_deref(),
                delivery,
            )),
            EntryKind::System { .. } => None,
        })
        .expect("a message")
}

#[test]
fn join_rejects_invalid_names_locally_with_the_protocol_reason() {
    let mut chat = ChatState::new();
    assert!(chat.join("   ").is_empty());
    assert_eq!(
        chat.join_error.as_deref(),
        Some("userName must be 1 to 32 characters")
    );
    assert!(chat.join(&"x".repeat(33)).is_empty());
    assert!(!chat.joining);
    assert_eq!(chat.link, Link::Idle);
}

#[test]
fn join_connects_then_registers_the_trimmed_name_with_a_request_id() {
    let mut chat = ChatState::new();
    assert_eq!(chat.join("  alice "), vec![Command::Connect]);
    assert!(chat.joining);
    assert_eq!(chat.status(0.0), Status::Connecting);
    // A second click while waiting does nothing.
    assert!(chat.join("alice").is_empty());
    let frame = only_frame(&chat.socket_opened());
    assert_eq!(frame["action"], "register");
    assert_eq!(frame["userName"], "alice");
    assert!(!request_id(&frame).is_empty());
    assert_eq!(chat.screen, Screen::Join);
}

#[test]
fn registered_reply_opens_the_chat_saves_the_name_and_asks_for_the_list() {
    let mut chat = ChatState::new();
    chat.join("alice");
    let register = only_frame(&chat.socket_opened());
    let commands = chat.frame(&reply(
        registered("alice", "AAAAAAAAAAAAAAA="),
        &request_id(&register),
    ));
    assert_eq!(commands[0], Command::SaveName("alice".into()));
    assert_eq!(frame_of(&commands, "list")["room"], Value::Null);
    assert_eq!(chat.screen, Screen::Chat);
    assert_eq!(chat.status(0.0), Status::Online);
    assert_eq!(chat.my_id.as_deref(), Some("AAAAAAAAAAAAAAA="));
    assert_eq!(system_lines(&chat), ["You joined as alice."]);
}

#[test]
fn registered_without_a_matching_request_is_ignored() {
    let mut chat = ChatState::new();
    chat.join("alice");
    chat.socket_opened();
    assert!(chat
        .frame(&reply(registered("alice", "X"), "r999"))
        .is_empty());
    assert!(chat.frame(&push(registered("alice", "X"))).is_empty());
    assert_eq!(chat.screen, Screen::Join);
    assert!(chat.joining);
}

#[test]
fn taken_name_shows_the_server_reason_inline_and_allows_another_try_on_the_same_socket() {
    let mut chat = ChatState::new();
    chat.join("alice");
    let register = only_frame(&chat.socket_opened());
    chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::NameTaken,
            message: "the name \"alice\" is taken".into(),
            retry_after_ms: None,
        },
        &request_id(&register),
    ));
    assert_eq!(chat.screen, Screen::Join);
    assert!(!chat.joining);
    assert_eq!(
        chat.join_error.as_deref(),
        Some("the name \"alice\" is taken")
    );
    // The socket is still open: the next try registers on it directly.
    let again = only_frame(&chat.join("carol"));
    assert_eq!(again["userName"], "carol");
    assert_ne!(request_id(&again), request_id(&register));
    assert_eq!(chat.join_error, None);
}

#[test]
fn failing_to_connect_from_the_join_screen_is_reported_not_retried() {
    let mut chat = ChatState::new();
    chat.join("alice");
    assert!(chat.socket_closed(1000.0, 0.5).is_empty());
    assert_eq!(chat.link, Link::Idle);
    assert!(!chat.joining);
    assert!(chat
        .join_error
        .as_deref()
        .unwrap()
        .contains("Could not reach"));
    assert!(chat.reconnect_due().is_empty());
}

#[test]
fn user_list_follows_list_new_user_and_user_exit() {
    let mut chat = joined("alice", "A", &[user("carol", "C"), user("Bob", "B")]);
    assert_eq!(names(&chat), ["Bob", "carol"]);
    chat.frame(&push(ServerEvent::NewUser {
        room: LOBBY.into(),
        user_name: "dave".into(),
        connection_id: "D".into(),
    }));
    chat.frame(&push(ServerEvent::NewUser {
        room: LOBBY.into(),
        user_name: "aaron".into(),
        connection_id: "E".into(),
    }));
    assert_eq!(names(&chat), ["aaron", "Bob", "carol", "dave"]);
    chat.frame(&push(ServerEvent::UserExit {
        room: LOBBY.into(),
        user_name: "carol".into(),
        connection_id: "C".into(),
    }));
    // An exit for someone unknown changes nothing and says nothing.
    chat.frame(&push(ServerEvent::UserExit {
        room: LOBBY.into(),
        user_name: "ghost".into(),
        connection_id: "G".into(),
    }));
    assert_eq!(names(&chat), ["aaron", "Bob", "dave"]);
    assert_eq!(
        system_lines(&chat),
        [
            "You joined as alice.",
            "dave joined",
            "aaron joined",
            "carol left"
        ]
    );
}

#[test]
fn a_rename_updates_the_entry_and_the_list_excludes_me() {
    let mut chat = joined("alice", "A", &[user("alice", "A"), user("bob", "B")]);
    assert_eq!(names(&chat), ["bob"]);
    chat.frame(&push(ServerEvent::NewUser {
        room: LOBBY.into(),
        user_name: "robert".into(),
        connection_id: "B".into(),
    }));
    assert_eq!(names(&chat), ["robert"]);
}

#[test]
fn incoming_messages_keep_sender_text_time_and_private_flag_verbatim() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    let xss = "<img src=x onerror=\"window.__xss=1\">";
    chat.frame(&push(ServerEvent::Message {
        room: LOBBY.into(),
        sender: "bob".into(),
        sender_id: "B".into(),
        receiver: user("alice", "A"),
        message: xss.into(),
        message_id: "m1".into(),
        timestamp: 1_764_316_800_000,
        private: true,
        to: None,
    }));
    let (sender, text, private, own, _, delivery) = last_message(&chat);
    assert_eq!((sender, text, private, own), ("bob", xss, true, false));
    assert_eq!(*delivery, Delivery::Received);
    match &chat.room().entries.last().unwrap().kind {
        // A whole number of milliseconds: exact in an f64.
        #[allow(clippy::float_cmp)]
        EntryKind::Message { timestamp_ms, .. } => assert_eq!(*timestamp_ms, 1_764_316_800_000.0),
        other @ EntryKind::System { .. } => panic!("{other:?}"),
    }
}

#[test]
fn own_message_is_pending_until_sent_then_shows_the_delivered_count() {
    let mut chat = joined("alice", "A", &[user("bob", "B"), user("carol", "C")]);
    let (commands, taken) = chat.send_message("  hello\nworld  ", 5.0);
    assert!(taken);
    let frame = only_frame(&commands);
    assert_eq!(frame["action"], "message");
    assert_eq!(frame["message"], "hello\nworld");
    assert!(frame.get("receivers").is_none());
    let (sender, text, private, own, _, delivery) = last_message(&chat);
    assert_eq!(
        (sender, text, private, own),
        ("alice", "hello\nworld", false, true)
    );
    assert_eq!(*delivery, Delivery::Pending);
    assert_eq!(
        chat.room().entries.last().unwrap().title().as_deref(),
        Some("Sending…")
    );
    let version = chat.room().entries.last().unwrap().version;

    chat.frame(&reply(
        ServerEvent::Sent {
            message_id: "m1".into(),
            timestamp: 42,
            delivered: 2,
        },
        &request_id(&frame),
    ));
    let entry = chat.room().entries.last().unwrap();
    assert_eq!(
        entry.kind,
        EntryKind::Message {
            sender: "alice".into(),
            text: "hello\nworld".into(),
            timestamp_ms: 42.0,
            private: false,
            own: true,
            to: None,
            delivery: Delivery::Sent { delivered: 2 },
        }
    );
    assert!(entry.version > version, "the row must be rendered again");
    assert_eq!(entry.title().as_deref(), Some("Sent, delivered to 2 users"));
}

#[test]
fn a_message_stored_before_an_own_one_but_pushed_while_it_waited_goes_above_it() {
    let mut chat = joined("cid", "C", &[user("ana", "A")]);
    let (commands, _) = chat.send_message("second", 5.0);
    let frame = only_frame(&commands);
    // ana's message was stored first, and its push came before cid's answer.
    chat.frame(&push(ServerEvent::Message {
        room: LOBBY.into(),
        sender: "ana".into(),
        sender_id: "A".into(),
        receiver: user("cid", "C"),
        message: "first".into(),
        message_id: "01KC0000000000000000000001".into(),
        timestamp: 1,
        private: false,
        to: None,
    }));
    chat.frame(&reply(
        ServerEvent::Sent {
            message_id: "01KC0000000000000000000002".into(),
            timestamp: 2,
            delivered: 1,
        },
        &request_id(&frame),
    ));
    let texts: Vec<&str> = chat
        .room()
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { text, .. } => Some(text.as_str()),
            EntryKind::System { .. } => None,
        })
        .collect();
    assert_eq!(texts, ["first", "second"], "the server's order");
    // One stored later stays below.
    chat.frame(&push(ServerEvent::Message {
        room: LOBBY.into(),
        sender: "ana".into(),
        sender_id: "A".into(),
        receiver: user("cid", "C"),
        message: "third".into(),
        message_id: "01KC0000000000000000000003".into(),
        timestamp: 3,
        private: false,
        to: None,
    }));
    assert_eq!(last_message(&chat).1, "third");
}

#[test]
fn a_rate_limited_message_stays_pending_and_is_sent_again_after_the_wait() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    let (commands, _) = chat.send_message("hi", 0.0);
    let frame = only_frame(&commands);
    let id = request_id(&frame);
    let commands = chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::RateLimited,
            message: "too many messages; wait 1500 ms".into(),
            retry_after_ms: Some(1500),
        },
        &id,
    ));
    assert_eq!(
        commands,
        vec![Command::ResendLater {
            request_id: id.clone(),
            delay_ms: 1500
        }]
    );
    assert_eq!(*last_message(&chat).5, Delivery::Pending);
    assert_eq!(sent(&chat.resend_due(&id)), vec![frame]);
    chat.frame(&reply(
        ServerEvent::Sent {
            message_id: "m1".into(),
            timestamp: 7,
            delivered: 1,
        },
        &id,
    ));
    assert_eq!(*last_message(&chat).5, Delivery::Sent { delivered: 1 });
    assert!(chat.resend_due(&id).is_empty(), "sent once, never again");
}

#[test]
fn a_message_waiting_out_a_rate_limit_fails_if_the_connection_drops_and_is_not_resent() {
    let mut chat = joined("alice", "A", &[]);
    let (commands, _) = chat.send_message("hi", 0.0);
    let id = request_id(&only_frame(&commands));
    chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::RateLimited,
            message: "wait".into(),
            retry_after_ms: Some(100),
        },
        &id,
    ));
    chat.socket_closed(0.0, 0.5);
    assert!(matches!(last_message(&chat).5, Delivery::Failed { .. }));
    assert!(chat.resend_due(&id).is_empty());
}

#[test]
fn a_refused_message_is_marked_failed_with_the_reason() {
    let mut chat = joined("alice", "A", &[]);
    let (commands, _) = chat.send_message("hi", 0.0);
    let id = request_id(&only_frame(&commands));
    chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::InvalidField,
            message: "slow down".into(),
            retry_after_ms: None,
        },
        &id,
    ));
    assert_eq!(
        *last_message(&chat).5,
        Delivery::Failed {
            reason: "slow down".into()
        }
    );
    assert_eq!(
        chat.room().entries.last().unwrap().title().as_deref(),
        Some("Not sent: slow down")
    );
}

#[test]
fn blank_and_oversized_drafts_are_not_sent_and_kept() {
    let mut chat = joined("alice", "A", &[]);
    let entries = chat.room().entries.len();
    assert_eq!(chat.send_message(" \n\t ", 0.0), (Vec::new(), false));
    let long = "a".repeat(MAX_MESSAGE_CHARS + 1);
    assert_eq!(chat.send_message(&long, 0.0), (Vec::new(), false));
    assert!(chat.send_blocker(&long).unwrap().contains("4096"));
    assert_eq!(chat.room().entries.len(), entries);
    assert_eq!(chat.send_blocker(&"a".repeat(MAX_MESSAGE_CHARS)), None);
}

#[test]
fn nothing_is_sent_while_offline_and_the_draft_is_kept() {
    let mut chat = joined("alice", "A", &[]);
    chat.socket_closed(0.0, 0.0);
    assert!(chat.send_blocker("hello").is_some());
    assert_eq!(chat.send_message("hello", 0.0), (Vec::new(), false));
}

#[test]
fn private_messages_name_one_receiver_and_are_marked() {
    let mut chat = joined("alice", "A", &[user("bob", "B"), user("carol", "C")]);
    chat.set_recipient(Some("B"));
    let (commands, taken) = chat.send_message("psst", 0.0);
    assert!(taken);
    let frame = only_frame(&commands);
    assert_eq!(
        frame["receivers"],
        json!([{"connectionId": "B", "userName": "bob"}])
    );
    let (_, _, private, own, to, _) = last_message(&chat);
    assert!(private && own);
    assert_eq!(to, Some("bob"));
    // Unknown ids and None go back to everyone.
    chat.set_recipient(Some("nobody"));
    assert_eq!(chat.recipient, None);
    chat.set_recipient(Some("C"));
    chat.set_recipient(None);
    assert_eq!(chat.recipient, None);
}

#[test]
fn a_recipient_who_leaves_blocks_sending_until_they_are_back() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    chat.set_recipient(Some("B"));
    chat.frame(&push(ServerEvent::UserExit {
        room: LOBBY.into(),
        user_name: "bob".into(),
        connection_id: "B".into(),
    }));
    // Never fall back to everyone silently: that would publish a private message.
    assert_eq!(
        chat.recipient,
        Some(Recipient {
            user_name: "bob".into(),
            connection_id: None
        })
    );
    assert_eq!(
        chat.send_blocker("hi").as_deref(),
        Some("bob is not online")
    );
    assert_eq!(chat.send_message("hi", 0.0), (Vec::new(), false));
    chat.frame(&push(ServerEvent::NewUser {
        room: LOBBY.into(),
        user_name: "Bob".into(),
        connection_id: "B2".into(),
    }));
    assert_eq!(
        chat.recipient.as_ref().unwrap().connection_id.as_deref(),
        Some("B2")
    );
    assert_eq!(chat.send_blocker("hi"), None);
}

#[test]
fn losing_the_socket_fails_pending_messages_and_schedules_a_reconnect() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    chat.send_message("in flight", 0.0);
    let commands = chat.socket_closed(10_000.0, 0.0);
    assert_eq!(commands, vec![Command::ScheduleReconnect { delay_ms: 500 }]);
    assert!(matches!(last_message(&chat).5, Delivery::Failed { .. }));
    assert_eq!(chat.status(10_000.0), Status::Reconnecting { secs: 1 });
    assert_eq!(chat.screen, Screen::Chat);
    assert_eq!(
        system_lines(&chat).last(),
        Some(&"Connection lost. Reconnecting…")
    );
    // An ack that arrives for the old socket's request is ignored.
    assert!(chat
        .frame(&reply(
            ServerEvent::Sent {
                message_id: "m".into(),
                timestamp: 1,
                delivered: 1
            },
            "r1"
        ))
        .is_empty());
}

#[test]
fn reconnecting_counts_down_and_backs_off_while_attempts_fail() {
    let mut chat = joined("alice", "A", &[]);
    let mut delays = Vec::new();
    for _ in 0..10 {
        match chat.socket_closed(0.0, 1.0).as_slice() {
            [Command::ScheduleReconnect { delay_ms }] => delays.push(*delay_ms),
            other => panic!("{other:?}"),
        }
        assert_eq!(chat.reconnect_due(), vec![Command::Connect]);
        assert_eq!(chat.status(0.0), Status::Connecting);
    }
    assert_eq!(
        delays,
        [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
    );
    // Only the first drop is announced.
    assert_eq!(
        system_lines(&chat)
            .iter()
            .filter(|l| l.starts_with("Connection lost"))
            .count(),
        1
    );
    chat.socket_closed(1_000.0, 0.0);
    assert_eq!(chat.status(1_000.0), Status::Reconnecting { secs: 15 });
    assert_eq!(chat.status(15_500.0), Status::Reconnecting { secs: 1 });
    assert_eq!(chat.status(99_000.0), Status::Reconnecting { secs: 0 });
    assert_eq!(chat.status(1_000.0).label(), "reconnecting in 15 s");
}

#[test]
fn after_a_reconnect_it_registers_the_same_name_refreshes_the_list_and_resets_the_backoff() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    chat.set_recipient(Some("B"));
    chat.socket_closed(0.0, 0.0);
    chat.socket_closed(0.0, 0.0);
    assert_eq!(chat.reconnect_due(), vec![Command::Connect]);
    let register = only_frame(&chat.socket_opened());
    assert_eq!(register["action"], "register");
    assert_eq!(register["userName"], "alice");
    assert_eq!(chat.status(0.0), Status::Connecting);
    let commands = chat.frame(&reply(registered("alice", "A2"), &request_id(&register)));
    let list = frame_of(&commands, "list");
    chat.frame(&reply(
        ServerEvent::List {
            room: LOBBY.into(),
            users: vec![user("bob", "B2")],
            cursor: None,
            count: None,
        },
        &request_id(&list),
    ));
    assert_eq!(chat.status(0.0), Status::Online);
    assert_eq!(chat.my_id.as_deref(), Some("A2"));
    assert_eq!(names(&chat), ["bob"]);
    // The private recipient follows bob to his new connection.
    assert_eq!(
        chat.recipient.as_ref().unwrap().connection_id.as_deref(),
        Some("B2")
    );
    assert_eq!(system_lines(&chat).last(), Some(&"Back online as alice."));
    // Backoff starts again from the bottom.
    assert_eq!(
        chat.socket_closed(0.0, 0.0),
        vec![Command::ScheduleReconnect { delay_ms: 500 }]
    );
}

#[test]
fn a_refused_rejoin_goes_back_to_the_join_screen_with_the_reason() {
    let mut chat = joined("alice", "A", &[]);
    chat.socket_closed(0.0, 0.0);
    chat.reconnect_due();
    let register = only_frame(&chat.socket_opened());
    chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::NameTaken,
            message: "the name is taken".into(),
            retry_after_ms: None,
        },
        &request_id(&register),
    ));
    assert_eq!(chat.screen, Screen::Join);
    assert_eq!(chat.name.as_deref(), Some("alice"));
    assert!(chat.room().entries.is_empty());
    assert_eq!(
        chat.join_error.as_deref(),
        Some("Could not rejoin as alice: the name is taken")
    );
    assert_eq!(only_frame(&chat.join("alice2"))["userName"], "alice2");
}

#[test]
fn leave_closes_the_socket_and_stops_reconnecting() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    assert_eq!(
        chat.leave(),
        vec![Command::Close, Command::SaveSession(String::new())]
    );
    assert_eq!(chat.screen, Screen::Join);
    assert_eq!(chat.link, Link::Idle);
    assert_eq!(chat.status(0.0), Status::Offline);
    assert_eq!(chat.name.as_deref(), Some("alice"));
    assert!(chat.room().users.is_empty() && chat.room().entries.is_empty());
    assert!(chat.reconnect_due().is_empty());
    // Joining again opens a fresh socket.
    assert_eq!(chat.join("alice"), vec![Command::Connect]);
}

#[test]
fn a_leave_while_waiting_to_reconnect_cancels_it() {
    let mut chat = joined("alice", "A", &[]);
    chat.socket_closed(0.0, 0.0);
    assert_eq!(
        chat.leave(),
        vec![Command::Close, Command::SaveSession(String::new())]
    );
    assert!(chat.reconnect_due().is_empty());
}

#[test]
fn ping_goes_out_only_on_an_open_socket() {
    let mut chat = joined("alice", "A", &[]);
    assert_eq!(only_frame(&chat.ping()), json!({"action": "ping"}));
    chat.socket_closed(0.0, 0.0);
    assert!(chat.ping().is_empty());
    assert_eq!(PING_INTERVAL_MS, 300_000);
}

#[test]
fn browser_offline_shows_offline_and_coming_back_reconnects_at_once() {
    let mut chat = joined("alice", "A", &[]);
    assert!(chat.browser_online_changed(false).is_empty());
    assert_eq!(chat.status(0.0), Status::Offline);
    chat.socket_closed(0.0, 0.0);
    assert_eq!(chat.status(0.0), Status::Offline);
    assert_eq!(chat.browser_online_changed(true), vec![Command::Connect]);
    assert_eq!(chat.status(0.0), Status::Connecting);
}

#[test]
fn server_errors_without_a_request_become_system_lines_and_unknown_frames_are_ignored() {
    let mut chat = joined("alice", "A", &[]);
    chat.frame(&push(ServerEvent::Error {
        code: ErrorCode::Internal,
        message: "oops".into(),
        retry_after_ms: None,
    }));
    assert_eq!(
        system_lines(&chat).last(),
        Some(&"Server error (internal): oops")
    );
    let before = chat.clone();
    assert!(chat.frame("not json").is_empty());
    assert!(chat
        .frame(r#"{"action":"typing","userName":"bob"}"#)
        .is_empty());
    assert!(chat.frame(&push(ServerEvent::Pong {})).is_empty());
    assert_eq!(chat, before);
}

#[test]
fn request_ids_are_unique_and_valid() {
    let mut chat = joined("alice", "A", &[]);
    let mut ids = std::collections::HashSet::new();
    for i in 0..50 {
        let (commands, _) = chat.send_message(&format!("m{i}"), 0.0);
        let frame = only_frame(&commands);
        let id = request_id(&frame);
        assert!(id.chars().count() <= webchat_shared_types::MAX_REQUEST_ID_CHARS);
        assert!(ids.insert(id));
        acknowledge(&mut chat, &frame);
    }
    // Every frame the client builds passes the server's validation.
    let (commands, _) = chat.send_message("check", 0.0);
    for command in commands {
        if let Command::Send(text) = command {
            webchat_shared_types::decode_client_frame(&text).unwrap();
        }
    }
}

#[test]
fn backoff_stays_between_half_a_second_and_thirty_seconds_with_jitter() {
    for attempt in 0..40 {
        for random in [0.0, 0.25, 0.5, 0.999, 1.0] {
            let delay = backoff_delay_ms(attempt, random);
            assert!(
                (500..=30_000).contains(&delay),
                "{attempt} {random} {delay}"
            );
        }
    }
    assert_eq!(backoff_delay_ms(0, 0.0), 500);
    assert_eq!(backoff_delay_ms(3, 0.0), 2000);
    assert_eq!(backoff_delay_ms(3, 0.5), 3000);
    assert_eq!(backoff_delay_ms(3, 1.0), 4000);
    assert_eq!(backoff_delay_ms(10, 0.0), 15_000);
    assert_eq!(backoff_delay_ms(u32::MAX, 1.0), 30_000);
}

#[test]
fn counter_appears_near_the_limit() {
    assert_eq!(counter_text("hello"), None);
    assert_eq!(counter_text(&"a".repeat(3595)), None);
    assert_eq!(
        counter_text(&"a".repeat(3596)).as_deref(),
        Some("3596 / 4096")
    );
    assert_eq!(
        counter_text(&"é".repeat(4100)).as_deref(),
        Some("4100 / 4096")
    );
}

#[test]
fn enter_sends_and_shift_enter_adds_a_line() {
    assert!(enter_sends("Enter", false, false));
    assert!(!enter_sends("Enter", true, false));
    assert!(!enter_sends("Enter", false, true));
    assert!(!enter_sends("a", false, false));
}

#[test]
fn clock_pads_hours_and_minutes() {
    assert_eq!(clock(9, 5), "09:05");
    assert_eq!(clock(23, 59), "23:59");
}

#[test]
fn websocket_url_from_the_query_string() {
    assert_eq!(
        ws_url_from_query("?ws=wss%3A%2F%2Fabc.execute-api.eu-west-1.amazonaws.com%2FProd"),
        Some("wss://abc.execute-api.eu-west-1.amazonaws.com/Prod".into())
    );
    assert_eq!(
        ws_url_from_query("?x=1&ws=ws://127.0.0.1:9000/Dev"),
        Some("ws://127.0.0.1:9000/Dev".into())
    );
    assert_eq!(ws_url_from_query(""), None);
    assert_eq!(ws_url_from_query("?ws="), None);
    assert_eq!(ws_url_from_query("?ws=javascript:alert(1)"), None);
    assert_eq!(ws_url_from_query("?ws=https://example.com"), None);
    assert_eq!(ws_url_from_query("?wsx=ws://a/b"), None);
    assert_eq!(ws_url_from_query("?ws=%zz"), None);
}

#[test]
fn websocket_url_from_config_json() {
    let url = |json: &str| ui_config(json).websocket_url;
    assert_eq!(
        url(r#"{"websocketUrl":"ws://127.0.0.1:8080/Prod"}"#),
        Some("ws://127.0.0.1:8080/Prod".into())
    );
    assert_eq!(
        url(r#"{"websocketUrl":" wss://x.example/Prod ","other":1}"#),
        Some("wss://x.example/Prod".into())
    );
    // A dev server answers unknown paths with index.html: not JSON, so no URL.
    assert_eq!(url("<!DOCTYPE html><html></html>"), None);
    assert_eq!(url("{}"), None);
    assert_eq!(url(r#"{"websocketUrl":"http://x/Prod"}"#), None);
    assert_eq!(url(r#"{"websocketUrl":42}"#), None);
}

#[test]
fn config_json_allows_ws_overrides_only_when_it_says_so() {
    assert!(
        ui_config(r#"{"websocketUrl":"ws://a/Prod","allowWsOverride":true}"#).allow_ws_override
    );
    assert!(!ui_config(r#"{"websocketUrl":"ws://a/Prod"}"#).allow_ws_override);
    assert!(!ui_config(r#"{"allowWsOverride":false}"#).allow_ws_override);
    assert!(!ui_config("<!DOCTYPE html>").allow_ws_override);
}

const CRAFTED: &str = "?ws=wss%3A%2F%2Fevil.example%2FProd";

#[test]
fn a_hosted_page_ignores_ws_in_its_url() {
    let hosted = r#"{"websocketUrl":"wss://chat.example.com/Prod"}"#;
    assert_eq!(
        ws_url(CRAFTED, Some(hosted), "https:", "chat.example.com"),
        "wss://chat.example.com/Prod"
    );
    // Without any config.json the page still talks only to its own host.
    assert_eq!(
        ws_url(CRAFTED, None, "https:", "chat.example.com"),
        "wss://chat.example.com/Prod"
    );
    assert_eq!(
        ws_url(
            CRAFTED,
            Some(r#"{"allowWsOverride":false}"#),
            "http:",
            "127.0.0.1:8080"
        ),
        "ws://127.0.0.1:8080/Prod"
    );
}

#[test]
fn ws_in_the_url_wins_where_config_json_allows_it() {
    let development = r#"{"websocketUrl":"ws://127.0.0.1:8080/Prod","allowWsOverride":true}"#;
    assert_eq!(
        ws_url(CRAFTED, Some(development), "http:", "127.0.0.1:8080"),
        "wss://evil.example/Prod"
    );
    // No usable ?ws=: the config's URL, then the same host.
    assert_eq!(
        ws_url(
            "?ws=https://x",
            Some(development),
            "http:",
            "127.0.0.1:8080"
        ),
        "ws://127.0.0.1:8080/Prod"
    );
    assert_eq!(
        ws_url(
            "",
            Some(r#"{"allowWsOverride":true}"#),
            "http:",
            "localhost:8081"
        ),
        "ws://localhost:8081/Prod"
    );
}

#[test]
fn websocket_url_falls_back_to_the_stage_on_the_same_host() {
    assert_eq!(
        ws_url_same_host("http:", "127.0.0.1:8080"),
        "ws://127.0.0.1:8080/Prod"
    );
    assert_eq!(
        ws_url_same_host("https:", "chat.example.com"),
        "wss://chat.example.com/Prod"
    );
}

#[test]
fn status_labels_match_the_header_wording() {
    assert_eq!(Status::Offline.label(), "offline");
    assert_eq!(Status::Connecting.label(), "connecting");
    assert_eq!(Status::Online.label(), "online");
    assert_eq!(
        Status::Reconnecting { secs: 3 }.label(),
        "reconnecting in 3 s"
    );
}

#[test]
fn the_transcript_keeps_the_latest_lines_only() {
    let mut chat = joined("alice", "A", &[]);
    for i in 0..MAX_ENTRIES + 10 {
        chat.frame(&push(ServerEvent::Message {
            room: LOBBY.into(),
            sender: "bob".into(),
            sender_id: "B".into(),
            receiver: user("alice", "A"),
            message: format!("m{i}"),
            message_id: format!("01KB{i:022}"),
            timestamp: 0,
            private: false,
            to: None,
        }));
    }
    assert_eq!(chat.room().entries.len(), MAX_ENTRIES);
    assert_eq!(last_message(&chat).1, format!("m{}", MAX_ENTRIES + 9));
    let ids: Vec<u64> = chat.room().entries.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids stay increasing");
}

#[test]
fn clicking_a_user_toggles_private_messages_to_them() {
    let mut chat = joined("alice", "A", &[user("bob", "B"), user("carol", "C")]);
    assert!(chat.composer_placeholder().starts_with("Message everyone"));
    chat.toggle_recipient("B");
    assert_eq!(chat.recipient.as_ref().unwrap().user_name, "bob");
    assert!(chat
        .composer_placeholder()
        .starts_with("Private message to bob"));
    chat.toggle_recipient("C");
    assert_eq!(chat.recipient.as_ref().unwrap().user_name, "carol");
    chat.toggle_recipient("C");
    assert_eq!(chat.recipient, None);
}

/// A `message` event in `room` from `sender` (connection `sender_id`) with server id `id`.
fn message(room: &str, sender: &str, sender_id: &str, text: &str, id: &str) -> ServerEvent {
    ServerEvent::Message {
        room: room.into(),
        sender: sender.into(),
        sender_id: sender_id.into(),
        receiver: user("alice", "A"),
        message: text.into(),
        message_id: id.into(),
        timestamp: 1_764_316_800_000,
        private: false,
        to: None,
    }
}

/// A message id that sorts as the `n`th.
fn mid(n: u32) -> String {
    format!("01KB{n:022}")
}

/// The texts of the room shown, with "--" for the away divider, in order.
fn transcript(chat: &ChatState) -> Vec<String> {
    chat.room()
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { text, .. } => Some(text.clone()),
            EntryKind::System { divider: true, .. } => Some("--".into()),
            EntryKind::System { .. } => None,
        })
        .collect()
}

/// `chat` joins `room` (by the user typing it) with `others` in it and an empty history;
/// returns the `history` frame that was answered.
fn enter_room(chat: &mut ChatState, room: &str, others: &[User]) -> Value {
    let (commands, taken) = chat.join_room(room);
    assert!(taken);
    let join = only_frame(&commands);
    let commands = chat.frame(&reply(
        ServerEvent::Joined {
            room: room.into(),
            users: others.to_vec(),
            cursor: None,
            count: None,
        },
        &request_id(&join),
    ));
    let history = frame_of(&commands, "history");
    chat.frame(&history_reply(&history, Vec::new(), false));
    history
}

fn room_names(chat: &ChatState) -> Vec<&str> {
    chat.rooms.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn a_room_name_is_checked_locally_then_joined_shown_with_its_members_and_its_latest_history() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    assert_eq!(chat.join_room("rust lang"), (Vec::new(), false));
    assert_eq!(
        chat.room_error.as_deref(),
        Some("room must be 1 to 32 characters of a-z, 0-9, - and _")
    );
    let (commands, taken) = chat.join_room(" Rust ");
    assert!(taken);
    assert_eq!(chat.room_error, None);
    let join = only_frame(&commands);
    assert_eq!(
        (&join["action"], &join["room"]),
        (&json!("join"), &json!("rust"))
    );
    let commands = chat.frame(&reply(
        ServerEvent::Joined {
            room: "rust".into(),
            users: vec![user("carol", "C")],
            cursor: None,
            count: None,
        },
        &request_id(&join),
    ));
    assert_eq!(chat.room().name, "rust");
    assert_eq!(names(&chat), ["carol"]);
    assert!(commands.contains(&Command::SaveSession("alice\ntoken-of-A\nrust".into())));
    let history = frame_of(&commands, "history");
    assert_eq!(history["room"], "rust");
    assert_eq!(
        (&history["before"], &history["after"]),
        (&Value::Null, &Value::Null)
    );
    chat.frame(&history_reply(
        &history,
        vec![
            message("rust", "carol", "C", "first", &mid(1)),
            message("rust", "alice", "A0", "mine, earlier", &mid(2)),
        ],
        true,
    ));
    assert_eq!(transcript(&chat), ["first", "mine, earlier"]);
    assert!(chat.room().more);
    // Own messages from earlier connections are known by name.
    assert!(last_message(&chat).3);
    assert_eq!(room_names(&chat), ["lobby", "rust"]);
}

#[test]
fn joining_a_room_already_in_the_list_just_shows_it() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    chat.show_room(LOBBY);
    assert_eq!(chat.join_room("RUST"), (Vec::new(), true));
    assert_eq!(chat.room().name, "rust");
}

#[test]
fn a_twenty_first_room_is_refused_with_a_clear_reason() {
    let mut chat = joined("alice", "A", &[]);
    let (commands, _) = chat.join_room("one-too-many");
    let join = only_frame(&commands);
    chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::LimitReached,
            message: "a connection is in at most 20 rooms".into(),
            retry_after_ms: None,
        },
        &request_id(&join),
    ));
    assert_eq!(
        chat.room_error.as_deref(),
        Some("Could not join #one-too-many: you are in 20 rooms, the most there can be. Leave one first.")
    );
    assert_eq!(room_names(&chat), ["lobby"]);
    assert_eq!(chat.room().name, "lobby");
}

#[test]
fn the_lobby_stays_first_and_cannot_be_left() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    enter_room(&mut chat, "go", &[]);
    assert_eq!(room_names(&chat), ["lobby", "rust", "go"]);
    assert!(chat.leave_room(LOBBY).is_empty());
    assert_eq!(room_names(&chat), ["lobby", "rust", "go"]);
}

#[test]
fn leaving_a_room_drops_it_shows_the_lobby_forgets_it_and_tells_the_server() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    enter_room(&mut chat, "go", &[]);
    let commands = chat.leave_room("go");
    assert_eq!(
        commands[0],
        Command::SaveSession("alice\ntoken-of-A\nrust".into())
    );
    let leave = only_frame(&commands);
    assert_eq!(
        (&leave["action"], &leave["room"]),
        (&json!("leave"), &json!("go"))
    );
    assert_eq!(room_names(&chat), ["lobby", "rust"]);
    assert_eq!(chat.room().name, "lobby");
}

#[test]
fn a_room_is_not_left_while_offline() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    chat.socket_closed(0.0, 0.0);
    assert!(chat.leave_room("rust").is_empty());
    assert_eq!(
        chat.room_error.as_deref(),
        Some("Not connected; leave the room once the chat is back")
    );
    assert_eq!(room_names(&chat), ["lobby", "rust"]);
}

#[test]
fn messages_in_a_room_not_shown_count_as_unread_until_it_is_shown() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[user("bob", "B")]);
    chat.frame(&push(message(LOBBY, "bob", "B", "in the lobby", &mid(1))));
    chat.frame(&push(message(LOBBY, "bob", "B", "again", &mid(2))));
    chat.frame(&push(message("rust", "bob", "B", "here", &mid(3))));
    assert_eq!(chat.lobby().unread, 2);
    assert_eq!(chat.room().unread, 0);
    assert_eq!(transcript(&chat), ["here"]);
    chat.show_room(LOBBY);
    assert_eq!(chat.lobby().unread, 0);
    assert_eq!(transcript(&chat), ["in the lobby", "again"]);
    // A room this tab is not in shows nothing.
    chat.frame(&push(message("go", "bob", "B", "elsewhere", &mid(4))));
    assert_eq!(room_names(&chat), ["lobby", "rust"]);
}

#[test]
fn members_of_a_room_follow_new_user_and_user_exit_in_that_room_only() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    enter_room(&mut chat, "rust", &[]);
    chat.frame(&push(ServerEvent::NewUser {
        room: "rust".into(),
        user_name: "carol".into(),
        connection_id: "C".into(),
    }));
    chat.frame(&push(ServerEvent::UserExit {
        room: LOBBY.into(),
        user_name: "bob".into(),
        connection_id: "B".into(),
    }));
    assert_eq!(names(&chat), ["carol"]);
    assert_eq!(system_lines(&chat).last(), Some(&"carol joined"));
    chat.show_room(LOBBY);
    assert!(names(&chat).is_empty());
    assert_eq!(system_lines(&chat).last(), Some(&"bob left"));
}

#[test]
fn scrolling_to_the_top_asks_for_the_page_before_the_first_message_while_there_is_more() {
    let mut chat = joined("alice", "A", &[]);
    let (commands, _) = chat.join_room("rust");
    let join = only_frame(&commands);
    let commands = chat.frame(&reply(
        ServerEvent::Joined {
            room: "rust".into(),
            users: Vec::new(),
            cursor: None,
            count: None,
        },
        &request_id(&join),
    ));
    let latest = frame_of(&commands, "history");
    chat.frame(&history_reply(
        &latest,
        vec![message("rust", "bob", "B", "newer", &mid(5))],
        true,
    ));
    let older = only_frame(&chat.load_older());
    assert_eq!(older["before"], json!(mid(5)));
    // One page at a time.
    assert!(chat.load_older().is_empty());
    chat.frame(&history_reply(
        &older,
        vec![
            message("rust", "bob", "B", "oldest", &mid(3)),
            message("rust", "bob", "B", "older", &mid(4)),
        ],
        false,
    ));
    assert_eq!(transcript(&chat), ["oldest", "older", "newer"]);
    assert!(chat.load_older().is_empty(), "no more pages");
}

/// `chat` (alice, in the lobby and "rust") loses its socket, reconnects as "A2" and is
/// back in "rust"; returns the `history` frames sent for the lobby and for "rust".
fn reconnect(chat: &mut ChatState) -> (Value, Value) {
    chat.socket_closed(0.0, 0.0);
    chat.reconnect_due();
    let register = only_frame(&chat.socket_opened());
    assert_eq!(register["resumeToken"], "token-of-A");
    let commands = chat.frame(&reply(registered("alice", "A2"), &request_id(&register)));
    let lobby = frame_of(&commands, "history");
    let join = frame_of(&commands, "join");
    assert_eq!(join["room"], "rust");
    let commands = chat.frame(&reply(
        ServerEvent::Joined {
            room: "rust".into(),
            users: Vec::new(),
            cursor: None,
            count: None,
        },
        &request_id(&join),
    ));
    (lobby, frame_of(&commands, "history"))
}

#[test]
fn after_a_reconnect_each_room_fills_the_gap_after_its_last_message_once_under_a_divider() {
    let mut chat = joined("alice", "A", &[]);
    chat.frame(&push(message(LOBBY, "bob", "B", "lobby before", &mid(1))));
    enter_room(&mut chat, "rust", &[]);
    chat.frame(&push(message("rust", "bob", "B", "before", &mid(2))));
    let (lobby, rust) = reconnect(&mut chat);
    assert_eq!(lobby["after"], json!(mid(1)));
    assert_eq!(rust["after"], json!(mid(2)));
    // A message pushed on the new connection can beat the history reply.
    chat.frame(&push(message("rust", "bob", "B", "live", &mid(5))));
    let commands = chat.frame(&history_reply(
        &rust,
        vec![
            message("rust", "bob", "B", "before", &mid(2)),
            message("rust", "bob", "B", "away 1", &mid(3)),
        ],
        true,
    ));
    // More came after: the next page starts after this one's last message.
    let next = only_frame(&commands);
    assert_eq!(next["after"], json!(mid(3)));
    chat.frame(&history_reply(
        &next,
        vec![
            message("rust", "bob", "B", "away 2", &mid(4)),
            message("rust", "bob", "B", "live", &mid(5)),
        ],
        false,
    ));
    assert_eq!(
        transcript(&chat),
        ["before", "--", "away 1", "away 2", "live"]
    );
    // The lobby's gap was empty: no divider there.
    chat.frame(&history_reply(&lobby, Vec::new(), false));
    chat.show_room(LOBBY);
    assert_eq!(transcript(&chat), ["lobby before"]);
}

#[test]
fn an_own_message_whose_ack_was_lost_is_not_shown_twice_when_history_has_it() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    chat.frame(&push(message("rust", "bob", "B", "before", &mid(2))));
    chat.send_message("stored, ack lost", 0.0);
    chat.send_message("never stored", 0.0);
    let (_, rust) = reconnect(&mut chat);
    chat.frame(&history_reply(
        &rust,
        vec![message("rust", "alice", "A", "stored, ack lost", &mid(3))],
        false,
    ));
    assert_eq!(
        transcript(&chat),
        ["before", "stored, ack lost", "never stored"],
        "one line each"
    );
    let entries = &chat.rooms[chat.current].entries;
    let delivery = |text: &str| {
        entries.iter().find_map(|e| match &e.kind {
            EntryKind::Message {
                text: t, delivery, ..
            } if t == text => Some((e.message_id.clone(), delivery.clone())),
            _ => None,
        })
    };
    assert_eq!(
        delivery("stored, ack lost"),
        Some((Some(mid(3)), Delivery::Received)),
        "the server has it: no longer marked not sent"
    );
    assert!(matches!(
        delivery("never stored"),
        Some((None, Delivery::Failed { .. }))
    ));
}

#[test]
fn a_gap_filled_in_a_room_not_shown_counts_as_unread() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    chat.frame(&push(message("rust", "bob", "B", "before", &mid(1))));
    chat.show_room(LOBBY);
    let (_, rust) = reconnect(&mut chat);
    chat.frame(&history_reply(
        &rust,
        vec![message("rust", "bob", "B", "away", &mid(2))],
        false,
    ));
    assert_eq!(chat.rooms[1].unread, 1);
}

#[test]
fn an_own_message_shows_once_whether_its_ack_or_a_history_page_comes_first() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    let (commands, _) = chat.send_message("first", 0.0);
    let first = only_frame(&commands);
    assert_eq!(first["room"], "rust");
    chat.frame(&reply(
        ServerEvent::Sent {
            message_id: mid(1),
            timestamp: 5,
            delivered: 1,
        },
        &request_id(&first),
    ));
    chat.frame(&push(message("rust", "alice", "A", "first", &mid(1))));
    let (commands, _) = chat.send_message("second", 0.0);
    let second = only_frame(&commands);
    let older = chat.history_frame("rust", Page::Gap, Some(mid(1)));
    chat.frame(&history_reply(
        &sent(&[older])[0],
        vec![message("rust", "alice", "A", "second", &mid(2))],
        false,
    ));
    chat.frame(&reply(
        ServerEvent::Sent {
            message_id: mid(2),
            timestamp: 6,
            delivered: 1,
        },
        &request_id(&second),
    ));
    assert_eq!(transcript(&chat), ["first", "--", "second"]);
    assert_eq!(
        last_message(&chat).5,
        &Delivery::Sent { delivered: 1 },
        "the own copy, with its delivery, is the one kept"
    );
}

#[test]
fn the_session_keeps_name_token_and_rooms_and_a_reload_resumes_it_with_the_token() {
    let mut chat = joined("alice", "A", &[]);
    enter_room(&mut chat, "rust", &[]);
    let saved = chat.session();
    assert_eq!(saved, "alice\ntoken-of-A\nrust");

    let mut reloaded = ChatState::new();
    assert_eq!(reloaded.resume(&saved), vec![Command::Connect]);
    assert_eq!(reloaded.screen, Screen::Chat);
    assert_eq!(room_names(&reloaded), ["lobby", "rust"]);
    let register = only_frame(&reloaded.socket_opened());
    assert_eq!(register["userName"], "alice");
    assert_eq!(register["resumeToken"], "token-of-A");
    let commands = reloaded.frame(&reply(registered("alice", "A2"), &request_id(&register)));
    assert!(commands.contains(&Command::SaveSession("alice\ntoken-of-A2\nrust".into())));
    // Nothing seen yet: the newest page of each room.
    assert_eq!(frame_of(&commands, "history")["after"], Value::Null);
    assert_eq!(frame_of(&commands, "join")["room"], "rust");
    assert_eq!(reloaded.room().name, "lobby");

    assert!(ChatState::new().resume("").is_empty());
    assert_eq!(
        room_names(&{
            let mut chat = ChatState::new();
            chat.resume("bob\n\nrust\nNot A Room\nrust");
            chat
        }),
        ["lobby", "rust"]
    );
}

#[test]
fn a_name_typed_on_the_join_screen_is_claimed_without_a_token() {
    let mut chat = joined("alice", "A", &[]);
    chat.leave();
    chat.join("alice");
    let register = only_frame(&chat.socket_opened());
    assert_eq!(register.get("resumeToken"), None);
}

#[test]
fn a_name_taken_while_resuming_goes_back_to_the_join_screen_and_forgets_the_session() {
    let mut chat = ChatState::new();
    chat.resume("alice\nstale\nrust");
    let register = only_frame(&chat.socket_opened());
    let commands = chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::NameTaken,
            message: "the name is taken".into(),
            retry_after_ms: None,
        },
        &request_id(&register),
    ));
    assert_eq!(commands, vec![Command::SaveSession(String::new())]);
    assert_eq!(chat.screen, Screen::Join);
    assert_eq!(
        chat.join_error.as_deref(),
        Some("Could not rejoin as alice: the name is taken")
    );
    assert_eq!(room_names(&chat), ["lobby"]);
}

#[test]
fn private_messages_are_written_in_the_lobby_only() {
    let mut chat = joined("alice", "A", &[user("bob", "B")]);
    enter_room(&mut chat, "rust", &[user("bob", "B")]);
    // Clicking a member anywhere starts a private message in the lobby.
    chat.toggle_recipient("B");
    assert_eq!(chat.room().name, "lobby");
    chat.show_room("rust");
    let (commands, _) = chat.send_message("to the room", 0.0);
    let frame = only_frame(&commands);
    assert_eq!(frame["receivers"], Value::Null);
    assert_eq!(frame["room"], "rust");
    acknowledge(&mut chat, &frame);
    assert_eq!(
        chat.composer_placeholder(),
        "Message #rust… (Enter sends, Shift+Enter adds a line)"
    );
    chat.show_room(LOBBY);
    let (commands, _) = chat.send_message("just you", 0.0);
    let frame = only_frame(&commands);
    assert_eq!(frame["receivers"][0]["connectionId"], "B");
    assert_eq!(frame.get("room"), None);
}

/// One of each event, as the server writes them (the match makes a new event a
/// compile error here until it has a sample).
fn every_event() -> Vec<ServerEvent> {
    let samples = vec![
        ServerEvent::NewUser {
            room: "rust".into(),
            user_name: "bob".into(),
            connection_id: "B".into(),
        },
        ServerEvent::UserExit {
            room: LOBBY.into(),
            user_name: "bob".into(),
            connection_id: "B".into(),
        },
        message("rust", "bob", "B", "hi <b>", &mid(1)),
        ServerEvent::List {
            room: LOBBY.into(),
            users: vec![user("bob", "B")],
            cursor: None,
            count: None,
        },
        registered("alice", "A"),
        ServerEvent::Registered {
            user_name: "alice".into(),
            connection_id: "A".into(),
            resume_token: None,
            conversations: None,
        },
        ServerEvent::Joined {
            room: "rust".into(),
            users: vec![user("bob", "B"), user("carol", "C")],
            cursor: None,
            count: None,
        },
        ServerEvent::Joined {
            room: "big".into(),
            users: vec![user("bob", "B")],
            cursor: Some("42".into()),
            count: Some(250),
        },
        ServerEvent::Members {
            room: "big".into(),
            count: 251,
        },
        ServerEvent::Left {
            room: "rust".into(),
        },
        ServerEvent::History {
            room: "rust".into(),
            with: None,
            messages: vec![
                message("rust", "bob", "B", "one", &mid(1)),
                message("rust", "carol", "C", "two", &mid(2)),
            ],
            more: true,
        },
        ServerEvent::Sent {
            message_id: mid(3),
            timestamp: 7,
            delivered: 2,
        },
        ServerEvent::Pong {},
        ServerEvent::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: Some(85),
        },
        ServerEvent::Error {
            code: ErrorCode::NotAMember,
            message: "join first".into(),
            retry_after_ms: None,
        },
    ];
    for sample in &samples {
        match sample {
            ServerEvent::NewUser { .. }
            | ServerEvent::UserExit { .. }
            | ServerEvent::Message { .. }
            | ServerEvent::List { .. }
            | ServerEvent::Registered { .. }
            | ServerEvent::Joined { .. }
            | ServerEvent::Members { .. }
            | ServerEvent::Left { .. }
            | ServerEvent::History { .. }
            | ServerEvent::Sent { .. }
            | ServerEvent::Pong {}
            | ServerEvent::Error { .. } => {}
        }
    }
    samples
}

#[test]
fn every_event_reads_back_exactly_as_shared_types_writes_it() {
    for event in every_event() {
        assert_eq!(
            decode(&reply(event.clone(), "r7")),
            Some((Some("r7".to_string()), event.clone()))
        );
        assert_eq!(decode(&push(event.clone())), Some((None, event)));
    }
    // v1 servers sent no room: the lobby.
    assert_eq!(
        decode(r#"{"action":"newUser","userName":"bob","connectionId":"B"}"#),
        Some((
            None,
            ServerEvent::NewUser {
                room: LOBBY.into(),
                user_name: "bob".into(),
                connection_id: "B".into()
            }
        ))
    );
    assert_eq!(decode(r#"{"action":"somethingNew"}"#), None);
    assert_eq!(decode("not json"), None);
}

// Sign-in.

fn auth() -> AuthConfig {
    AuthConfig::from_fields(
        Some("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc".into()),
        Some("client 1".into()),
        Some("https://login.example.com/oauth2/authorize".into()),
        Some("https://login.example.com/oauth2/token".into()),
    )
    .expect("auth settings")
}
/// An unsigned JWT with these claims: the page reads them, the server checks them.
fn id_token(claims: &Value) -> String {
    format!(
        "{}.{}.sig",
        base64url(br#"{"alg":"ES256","kid":"k"}"#),
        base64url(claims.to_string().as_bytes())
    )
}

fn tokens_for(name: &str) -> Tokens {
    Tokens {
        id_token: id_token(&json!({"preferred_username": name, "sub": "s"})),
        refresh_token: Some("refresh".into()),
        expires_ms: 3_600_000,
    }
}

#[test]
fn auth_settings_need_all_four_fields_and_http_urls() {
    let a = auth();
    assert_eq!(a.client_id, "client 1");
    assert_eq!(a.token_url, "https://login.example.com/oauth2/token");
    let field = |s: &str| Some(s.to_string());
    assert_eq!(
        AuthConfig::from_fields(field("i"), None, field("http://a"), field("http://t")),
        None
    );
    assert_eq!(
        AuthConfig::from_fields(
            field("i"),
            field("c"),
            field("javascript:x"),
            field("http://t")
        ),
        None
    );
    assert!(
        AuthConfig::from_fields(field("i"), field("c"), field("http://a"), field("http://t"))
            .is_some()
    );
}

#[test]
fn base64url_round_trips_every_length_without_padding() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
        let text = base64url(&data);
        assert!(!text.contains(['=', '+', '/']), "{text}");
        assert_eq!(base64url_decode(&text), Some(data));
    }
    // RFC 7636's example: the S256 challenge of its verifier.
    assert_eq!(
        base64url(&[
            19, 211, 30, 150, 26, 26, 216, 236, 47, 22, 177, 12, 76, 152, 46, 8, 118, 168, 120,
            173, 109, 241, 68, 86, 110, 225, 137, 74, 203, 112, 249, 195
        ]),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(base64url(&[0u8; 32]).len(), 43);
    assert_eq!(base64url_decode("a*b"), None);
}

#[test]
fn sign_in_goes_to_the_authorize_url_with_pkce_s256_and_state() {
    let url = authorize_url(&auth(), "http://127.0.0.1:8080/", "st&te", "CHALLENGE");
    assert_eq!(
        url,
        "https://login.example.com/oauth2/authorize?response_type=code&client_id=client%201\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2F&scope=openid&state=st%26te\
         &code_challenge=CHALLENGE&code_challenge_method=S256"
    );
}

#[test]
fn the_code_and_the_refresh_token_are_exchanged_with_form_encoded_requests() {
    assert_eq!(
        code_exchange_form(&auth(), "c/1", "http://h/", "v"),
        "grant_type=authorization_code&client_id=client%201&code=c%2F1\
         &redirect_uri=http%3A%2F%2Fh%2F&code_verifier=v"
    );
    assert_eq!(
        refresh_form(&auth(), "r+1"),
        "grant_type=refresh_token&client_id=client%201&refresh_token=r%2B1"
    );
}

#[test]
fn the_answer_is_taken_only_with_this_tabs_state() {
    let saved = "the-state\nthe-verifier";
    assert_eq!(sign_in_callback("", Some(saved)), None);
    assert_eq!(sign_in_callback("?ws=x", None), None);
    assert_eq!(
        sign_in_callback("?code=abc&state=the-state", Some(saved)),
        Some(Ok(("abc".into(), "the-verifier".into())))
    );
    // Another state, none, or no sign-in started here: refused, not exchanged.
    for search in ["?code=abc&state=other", "?code=abc"] {
        assert!(
            matches!(sign_in_callback(search, Some(saved)), Some(Err(_))),
            "{search}"
        );
    }
    assert!(matches!(
        sign_in_callback("?code=abc&state=the-state", None),
        Some(Err(_))
    ));
    // The issuer's refusal is shown.
    let Some(Err(reason)) = sign_in_callback(
        "?error=access_denied&error_description=User+cancelled",
        Some(saved),
    ) else {
        panic!("an error");
    };
    assert_eq!(reason, "Sign-in failed: User cancelled");
}

#[test]
fn the_url_is_cleaned_of_the_answer_and_keeps_the_rest() {
    assert_eq!(without_sign_in_params("?code=a&state=b"), "");
    assert_eq!(without_sign_in_params("?ws=x&code=a&state=b"), "?ws=x");
    assert_eq!(
        without_sign_in_params("?error=e&error_description=d&x=1"),
        "?x=1"
    );
    assert_eq!(without_sign_in_params(""), "");
}

#[test]
fn tokens_come_from_the_token_answer_and_keep_the_refresh_token_on_renewal() {
    let tokens = Tokens::from_answer(
        Some("a.b.c".into()),
        Some("r".into()),
        Some(3600.0),
        1_000,
        None,
    )
    .unwrap();
    assert_eq!(tokens.id_token, "a.b.c");
    assert_eq!(tokens.refresh_token.as_deref(), Some("r"));
    assert_eq!(tokens.expires_ms, 3_601_000);
    assert_eq!(Tokens::from_storage(&tokens.to_storage()), Some(tokens));
    // A refresh answer has no refresh token: the old one stays.
    let tokens =
        Tokens::from_answer(Some("d.e.f".into()), None, Some(60.0), 0, Some("r".into())).unwrap();
    assert_eq!(tokens.refresh_token.as_deref(), Some("r"));
    assert_eq!(tokens.expires_ms, 60_000);
    assert_eq!(Tokens::from_storage(&tokens.to_storage()), Some(tokens));
    // An error answer has no ID token.
    assert_eq!(Tokens::from_answer(None, None, None, 0, None), None);
    assert_eq!(Tokens::from_storage(""), None);
}

#[test]
fn the_id_tokens_claims_are_read_from_its_payload() {
    let claims = json!({"preferred_username": "Änne", "sub": "s"});
    let tokens = Tokens {
        id_token: id_token(&claims),
        refresh_token: None,
        expires_ms: 0,
    };
    let read: Value = serde_json::from_str(&tokens.claims().unwrap()).unwrap();
    assert_eq!(read, claims);
    let garbage = Tokens {
        id_token: "not-a-jwt".into(),
        ..tokens
    };
    assert_eq!(garbage.claims(), None);
}

#[test]
fn the_name_is_preferred_username_else_cognito_username_if_usable() {
    let s = |s: &str| Some(s.to_string());
    assert_eq!(claims_name(s(" Ann "), s("u1")).as_deref(), Some("Ann"));
    assert_eq!(claims_name(None, s("Bob")).as_deref(), Some("Bob"));
    assert_eq!(claims_name(None, None), None);
    assert_eq!(claims_name(s(""), s("Bob")), None);
}

#[test]
fn tokens_are_renewed_two_minutes_before_expiry_or_halfway_for_short_ones() {
    let tokens = Tokens {
        expires_ms: 3_600_000,
        ..tokens_for("Ann")
    };
    assert_eq!(tokens.renew_delay_ms(0), 3_480_000);
    assert_eq!(tokens.renew_delay_ms(3_400_000), 100_000);
    let short = Tokens {
        expires_ms: 60_000,
        ..tokens_for("Ann")
    };
    assert_eq!(short.renew_delay_ms(0), 30_000);
    // Expired or about to: soon, but never in a tight loop.
    assert_eq!(short.renew_delay_ms(100_000), 5_000);
}

#[test]
fn signed_in_joins_as_the_tokens_name_and_nobody_signed_in_stays_on_the_join_screen() {
    let mut chat = ChatState::new();
    assert_eq!(chat.signed_in(None), Vec::new());
    assert!(chat.auth);
    assert_eq!(chat.screen, Screen::Join);

    assert_eq!(chat.signed_in(Some("Ann")), vec![Command::Connect]);
    let register = only_frame(&chat.socket_opened());
    assert_eq!(register["action"], "register");
    assert_eq!(register["userName"], "Ann");
    chat.frame(&reply(registered("Ann", "A1"), &request_id(&register)));
    assert_eq!(chat.screen, Screen::Chat);
    assert!(chat.auth);
}

#[test]
fn a_reload_carries_on_as_the_same_signed_in_name_and_starts_afresh_otherwise() {
    let session = joined("Ann", "A1", &[]).session();
    let mut chat = ChatState::new();
    assert_eq!(chat.resume(&session), vec![Command::Connect]);
    assert_eq!(chat.signed_in(Some("ann")), Vec::new());
    assert_eq!(chat.screen, Screen::Chat);

    // The tokens are gone or expired: back to Sign in, the session forgotten.
    let mut chat = ChatState::new();
    chat.resume(&session);
    let commands = chat.signed_in(None);
    assert_eq!(
        commands,
        vec![Command::Close, Command::SaveSession(String::new())]
    );
    assert_eq!(chat.screen, Screen::Join);
    assert!(chat.auth);

    // Signed in as somebody else: that name joins afresh.
    let mut chat = ChatState::new();
    chat.resume(&session);
    let commands = chat.signed_in(Some("Bob"));
    assert_eq!(
        commands,
        vec![
            Command::Close,
            Command::SaveSession(String::new()),
            Command::Connect
        ]
    );
    assert_eq!(chat.name.as_deref(), Some("Bob"));
}

#[test]
fn a_failed_sign_in_shows_its_reason_on_the_join_screen() {
    let mut chat = ChatState::new();
    chat.signed_in(None);
    chat.joining = true;
    chat.sign_in_failed("Sign-in failed: nope".into());
    assert!(!chat.joining);
    assert_eq!(chat.join_error.as_deref(), Some("Sign-in failed: nope"));
}

#[test]
fn a_renewed_token_reconnects_an_open_chat_and_registers_again_with_the_resume_token() {
    let mut chat = joined("Ann", "A1", &[]);
    chat.auth = true;
    assert_eq!(chat.token_renewed(), vec![Command::Connect]);
    assert_eq!(chat.link, Link::Connecting);
    let register = only_frame(&chat.socket_opened());
    assert_eq!(register["userName"], "Ann");
    assert_eq!(register["resumeToken"], "token-of-A1");

    // Waiting to reconnect: the reconnect uses the new token; on the join screen, nothing.
    let mut chat = joined("Ann", "A1", &[]);
    chat.socket_opened();
    chat.socket_closed(0.0, 0.5);
    assert_eq!(chat.token_renewed(), Vec::new());
    assert_eq!(ChatState::new().token_renewed(), Vec::new());
}

#[test]
fn leaving_and_a_refused_rejoin_keep_sign_in_on() {
    let mut chat = joined("Ann", "A1", &[]);
    chat.auth = true;
    chat.leave();
    assert!(chat.auth);
    assert_eq!(chat.screen, Screen::Join);
}

/// The reply to a `history {with}` frame with these messages.
fn conversation_page(frame: &Value, messages: Vec<ServerEvent>, more: bool) -> String {
    reply(
        ServerEvent::History {
            room: format!("dm:{}", "0".repeat(64)),
            with: frame["with"].as_str().map(str::to_string),
            messages,
            more,
        },
        &request_id(frame),
    )
}

/// A message to a person as the server pushes it: `room` is the conversation's id.
fn to_person(sender: &str, sender_id: &str, to: &str, text: &str, id: &str) -> ServerEvent {
    ServerEvent::Message {
        room: format!("dm:{}", "0".repeat(64)),
        sender: sender.into(),
        sender_id: sender_id.into(),
        receiver: user("Ann", "A1"),
        message: text.into(),
        message_id: id.into(),
        timestamp: 1_764_316_800_000,
        private: true,
        to: Some(to.into()),
    }
}

#[test]
fn signed_in_a_private_message_goes_to_the_person_even_while_they_are_away() {
    let mut chat = joined("Ann", "A1", &[user("Bob", "B1")]);
    chat.auth = true;
    chat.toggle_recipient("B1");
    // Bob's only tab closes: the message is still kept for him.
    chat.frame(&push(ServerEvent::UserExit {
        room: LOBBY.into(),
        user_name: "Bob".into(),
        connection_id: "B1".into(),
    }));
    assert_eq!(chat.send_blocker("lunch?"), None);
    let (commands, taken) = chat.send_message("lunch?", 0.0);
    assert!(taken);
    let frame = only_frame(&commands);
    assert_eq!(frame["to"], "Bob");
    assert!(frame.get("receivers").is_none() && frame.get("room").is_none());
    let (_, text, private, own, to, _) = last_message(&chat);
    assert_eq!(
        (text, private, own, to),
        ("lunch?", true, true, Some("Bob"))
    );

    // Without sign-in a private message still names the connection, and needs it online.
    let mut chat = joined("Ann", "A1", &[user("Bob", "B1")]);
    chat.toggle_recipient("B1");
    let frame = only_frame(&chat.send_message("hi", 0.0).0);
    assert_eq!(frame["receivers"][0]["connectionId"], "B1");
    assert!(frame.get("to").is_none());
}

#[test]
fn messages_to_a_person_show_in_the_lobby_as_private_from_either_side() {
    let mut chat = joined("Ann", "A1", &[]);
    chat.auth = true;
    chat.frame(&push(to_person(
        "Bob",
        "B1",
        "Ann",
        "hi Ann",
        "01KC0000000000000000000001",
    )));
    assert_eq!(chat.rooms[0].unread, 0, "the lobby is shown");
    let (sender, text, private, own, _, _) = last_message(&chat);
    assert_eq!((sender, text, private, own), ("Bob", "hi Ann", true, false));
    // Ann's other tab wrote to Bob: her own line, tagged with whom it went to.
    chat.frame(&push(to_person(
        "Ann",
        "A2",
        "Bob",
        "hi Bob",
        "01KC0000000000000000000002",
    )));
    let (sender, _, private, own, to, _) = last_message(&chat);
    assert_eq!((sender, private, own, to), ("Ann", true, true, Some("Bob")));
    // The same message again (pushed, then in history) shows once.
    chat.frame(&push(to_person(
        "Bob",
        "B1",
        "Ann",
        "hi Ann",
        "01KC0000000000000000000001",
    )));
    assert_eq!(
        chat.rooms[0]
            .entries
            .iter()
            .filter(|e| e.message_id.is_some())
            .count(),
        2
    );
}

#[test]
fn registering_signed_in_fetches_the_newest_conversations_not_yet_shown() {
    let mut chat = ChatState::new();
    chat.auth = true;
    chat.join("Ann");
    let register = only_frame(&chat.socket_opened());
    let conversations = (1..=7)
        .map(|i| Conversation {
            with: format!("p{i}"),
            last_message_id: format!("01KC{i:022}"),
        })
        .collect();
    let commands = chat.frame(&reply(
        ServerEvent::Registered {
            user_name: "Ann".into(),
            connection_id: "A1".into(),
            resume_token: None,
            conversations: Some(conversations),
        },
        &request_id(&register),
    ));
    let asked: Vec<Value> = sent(&commands)
        .into_iter()
        .filter(|f| f["action"] == "history" && f.get("with").is_some())
        .collect();
    let withs: Vec<&str> = asked.iter().map(|f| f["with"].as_str().unwrap()).collect();
    assert_eq!(withs, ["p1", "p2", "p3", "p4", "p5"]);
    assert!(asked.iter().all(|f| f.get("room").is_none()));

    // p1's page comes in while #lobby is shown: in the lobby, in time order.
    let page = conversation_page(
        &asked[0],
        vec![to_person(
            "p1",
            "P1",
            "Ann",
            "while you were out",
            "01KC0000000000000000000001",
        )],
        true,
    );
    assert_eq!(
        chat.frame(&page),
        Vec::new(),
        "a conversation page asks for no more"
    );
    let (sender, text, private, ..) = last_message(&chat);
    assert_eq!((sender, text, private), ("p1", "while you were out", true));
    assert!(!chat.rooms[0].more, "the lobby's own paging is untouched");
}

#[test]
fn signed_in_each_person_is_listed_once_and_ones_own_other_tabs_not_at_all() {
    let others = [
        user("Ann", "A2"),
        user("Bob", "B1"),
        user("bob", "B2"),
        user("Cy", "C1"),
    ];
    let mut chat = joined("Ann", "A1", &others);
    let listed = |chat: &ChatState| -> Vec<String> {
        chat.people(chat.lobby())
            .into_iter()
            .map(|u| u.connection_id)
            .collect()
    };
    // Anonymous connections are each someone else: all listed.
    assert_eq!(listed(&chat), ["A2", "B1", "B2", "C1"]);
    chat.auth = true;
    assert_eq!(listed(&chat), ["B1", "C1"]);
}

#[test]
fn signed_in_a_message_to_a_person_whose_ack_was_lost_shows_once_when_its_conversation_comes() {
    let mut chat = joined("Ann", "A1", &[user("Bob", "B1")]);
    chat.auth = true;
    chat.toggle_recipient("B1");
    chat.send_message("did it arrive?", 0.0);
    chat.socket_closed(0.0, 0.0);
    chat.reconnect_due();
    let register = only_frame(&chat.socket_opened());
    let commands = chat.frame(&reply(
        ServerEvent::Registered {
            user_name: "Ann".into(),
            connection_id: "A2".into(),
            resume_token: None,
            conversations: Some(vec![Conversation {
                with: "Bob".into(),
                last_message_id: "01KC0000000000000000000009".into(),
            }]),
        },
        &request_id(&register),
    ));
    let asked = sent(&commands)
        .into_iter()
        .find(|f| f["with"] == "Bob")
        .expect("Bob's conversation asked for");
    chat.frame(&conversation_page(
        &asked,
        vec![to_person(
            "Ann",
            "A1",
            "Bob",
            "did it arrive?",
            "01KC0000000000000000000009",
        )],
        false,
    ));
    let lines: Vec<(&str, &Delivery)> = chat.rooms[0]
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { text, delivery, .. } => Some((text.as_str(), delivery)),
            EntryKind::System { .. } => None,
        })
        .collect();
    assert_eq!(
        lines,
        [("did it arrive?", &Delivery::Received)],
        "one line, no longer failed"
    );
}

#[test]
fn own_messages_go_one_at_a_time_so_a_rate_limited_one_is_not_overtaken() {
    let mut chat = joined("alice", "A", &[]);
    let first = only_frame(&chat.send_message("one", 0.0).0);
    // Typed while the first is on its way: kept, shown as sending, sent after it.
    assert_eq!(chat.send_message("two", 0.0), (Vec::new(), true));
    assert_eq!(chat.send_message("three", 0.0), (Vec::new(), true));
    // The server asks to wait: nothing else goes meanwhile, then the same frame again.
    let refused = chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::RateLimited,
            message: "too many".into(),
            retry_after_ms: Some(120),
        },
        &request_id(&first),
    ));
    assert_eq!(
        refused,
        [Command::ResendLater {
            request_id: request_id(&first),
            delay_ms: 120
        }]
    );
    let again = only_frame(&chat.resend_due(&request_id(&first)));
    assert_eq!(again, first);
    let second = only_frame(&acknowledge(&mut chat, &first));
    assert_eq!(second["message"], "two");
    // A refusal ends a message's turn too.
    let third = only_frame(&chat.frame(&reply(
        ServerEvent::Error {
            code: ErrorCode::TooLarge,
            message: "no".into(),
            retry_after_ms: None,
        },
        &request_id(&second),
    )));
    assert_eq!(third["message"], "three");
    assert_eq!(acknowledge(&mut chat, &third), Vec::new());

    // A drop fails what was in flight and what waited behind it.
    let _ = chat.send_message("four", 0.0);
    let _ = chat.send_message("five", 0.0);
    chat.socket_closed(0.0, 0.0);
    let failed = chat
        .room()
        .entries
        .iter()
        .filter(|e| {
            matches!(
                &e.kind,
                EntryKind::Message {
                    delivery: Delivery::Failed { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 3, "two, four and five");
}

#[test]
fn an_own_message_without_an_answer_counts_as_not_sent_and_lets_the_next_go() {
    let mut chat = joined("alice", "A", &[]);
    let (commands, _) = chat.send_message("lost in a failed handler", 0.0);
    let first = only_frame(&commands);
    assert!(commands.contains(&Command::AnswerDue {
        request_id: request_id(&first),
        delay_ms: ANSWER_WAIT_MS
    }));
    chat.send_message("next", 0.0);
    // API Gateway's own error frame names no request of ours: ignored.
    assert_eq!(
        chat.frame(r#"{"message":"Internal server error","connectionId":"A","requestId":"x"}"#),
        Vec::new()
    );
    let next = only_frame(&chat.answer_overdue(&request_id(&first)));
    assert_eq!(next["message"], "next");
    assert!(matches!(
        chat.room().entries.iter().rev().nth(1).map(|e| &e.kind),
        Some(EntryKind::Message {
            delivery: Delivery::Failed { .. },
            ..
        })
    ));
    // Answered in time, the timer finds nothing to do.
    acknowledge(&mut chat, &next);
    assert_eq!(chat.answer_overdue(&request_id(&next)), Vec::new());
    assert_eq!(last_message(&chat).5, &Delivery::Sent { delivered: 1 });
}

#[test]
fn sign_out_goes_through_the_issuers_logout_only_when_it_has_one() {
    let auth = auth();
    assert_eq!(logout_url(&auth, "https://chat.example/"), None);
    let with = auth
        .clone()
        .with_logout_url(Some("https://issuer/logout".into()));
    assert_eq!(
        logout_url(&with, "https://chat.example/").as_deref(),
        Some(
            "https://issuer/logout?client_id=client%201&logout_uri=https%3A%2F%2Fchat.example%2F\
             &post_logout_redirect_uri=https%3A%2F%2Fchat.example%2F"
        )
    );
    // Anything but an http(s) URL is not followed.
    let bad = auth.with_logout_url(Some("javascript:alert(1)".into()));
    assert_eq!(logout_url(&bad, "https://chat.example/"), None);
}

#[test]
fn a_big_room_shows_its_count_and_pages_its_people_on_demand() {
    let mut chat = ChatState::new();
    chat.join("ana");
    let register = only_frame(&chat.socket_opened());
    let commands = chat.frame(&reply(registered("ana", "A"), &request_id(&register)));
    let list = frame_of(&commands, "list");
    // The lobby is above the server's presence limit: a page, a cursor and a count.
    chat.frame(&reply(
        ServerEvent::List {
            room: LOBBY.into(),
            users: vec![user("bob", "B"), user("carol", "C")],
            cursor: Some("43".into()),
            count: Some(250),
        },
        &request_id(&list),
    ));
    assert_eq!(names(&chat), ["bob", "carol"]);
    assert_eq!(
        chat.people_count(chat.room()),
        249,
        "the others, not the page"
    );
    assert_eq!(chat.room().more_people.as_deref(), Some("43"));

    // "Show more" asks for the next page of the shown room and adds it.
    let more = only_frame(&chat.more_people());
    assert_eq!(more["action"], "list");
    assert_eq!(more["room"], LOBBY);
    assert_eq!(more["cursor"], "43");
    chat.frame(&reply(
        ServerEvent::List {
            room: LOBBY.into(),
            users: vec![user("dora", "D")],
            cursor: None,
            count: Some(251),
        },
        &request_id(&more),
    ));
    assert_eq!(names(&chat), ["bob", "carol", "dora"]);
    assert_eq!(chat.room().more_people, None, "the last page");
    assert_eq!(chat.more_people(), Vec::new(), "nothing more to ask for");

    // Counts pushed instead of arrivals replace the count.
    chat.frame(&push(ServerEvent::Members {
        room: LOBBY.into(),
        count: 300,
    }));
    assert_eq!(chat.people_count(chat.room()), 299);
}

#[test]
fn a_small_room_counts_the_people_it_lists() {
    let chat = joined("ana", "A", &[user("bob", "B")]);
    assert_eq!(chat.people_count(chat.room()), 1);
    assert_eq!(chat.room().member_count, None);
    assert_eq!(chat.room().more_people, None);
}
