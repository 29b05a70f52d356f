//! A small, lenient reader of server frames for clients whose download size matters (the
//! browser UI). [`crate::decode_server_frame`] is the strict reader; the tests check that
//! both read every event the server writes the same way.

use crate::{Conversation, ErrorCode, ServerEvent, ServerFrame, User, LOBBY};

/// Reads one server frame; `None` for text that is not JSON or names an action this
/// version does not know (a newer server's event, say).
pub fn read_server_frame(text: &str) -> Option<ServerFrame> {
    let mut wire: Wire = serde_json::from_str(text).ok()?;
    let request_id = wire.request_id.take();
    Some(ServerFrame {
        event: wire.event()?,
        request_id,
    })
}

/// A server frame as it comes off the wire: every field of every event, flat.
///
/// `ServerFrame` is a flattened, internally tagged enum, which serde decodes by first
/// buffering the whole frame in its generic `Content` tree; in the browser bundle that
/// machinery was the largest part of the download after the UI framework it then used.
/// Decoding into this plain struct needs none of it. Missing fields take their defaults:
/// a client reads what it can rather than dropping a frame.
#[derive(Default)]
struct Wire {
    action: String,
    request_id: Option<String>,
    room: Option<String>,
    user_name: String,
    connection_id: String,
    sender: String,
    sender_id: String,
    receiver: Option<Box<Wire>>,
    message: String,
    message_id: String,
    timestamp: u64,
    private: bool,
    to: Option<String>,
    with: Option<String>,
    last_message_id: String,
    /// Conversations are read as frames too, as users are.
    conversations: Option<Vec<Wire>>,
    /// Users are read as frames too (their two fields are frame fields), so one reader
    /// serves for both.
    users: Vec<Wire>,
    resume_token: Option<String>,
    messages: Vec<Wire>,
    more: bool,
    delivered: u32,
    cursor: Option<String>,
    count: Option<u64>,
    code: Option<ErrorCode>,
    retry_after_ms: Option<u64>,
}

// By hand rather than derived: the derive also writes a reader for structs sent as JSON
// arrays and two more ways to match field names, none of which a frame needs.
impl<'de> serde::Deserialize<'de> for Wire {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WireVisitor)
    }
}

struct WireVisitor;

impl<'de> serde::de::Visitor<'de> for WireVisitor {
    type Value = Wire;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a frame")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
        let mut w = Wire::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "action" => w.action = map.next_value()?,
                "requestId" => w.request_id = map.next_value()?,
                "room" => w.room = map.next_value()?,
                "userName" => w.user_name = map.next_value()?,
                "connectionId" => w.connection_id = map.next_value()?,
                "sender" => w.sender = map.next_value()?,
                "senderId" => w.sender_id = map.next_value()?,
                "receiver" => w.receiver = map.next_value()?,
                "message" => w.message = map.next_value()?,
                "messageId" => w.message_id = map.next_value()?,
                "timestamp" => w.timestamp = map.next_value()?,
                "private" => w.private = map.next_value()?,
                "to" => w.to = map.next_value()?,
                "with" => w.with = map.next_value()?,
                "lastMessageId" => w.last_message_id = map.next_value()?,
                "conversations" => w.conversations = map.next_value()?,
                "users" => w.users = map.next_value()?,
                "resumeToken" => w.resume_token = map.next_value()?,
                "messages" => w.messages = map.next_value()?,
                "more" => w.more = map.next_value()?,
                "delivered" => w.delivered = map.next_value()?,
                "cursor" => w.cursor = map.next_value()?,
                "count" => w.count = map.next_value()?,
                "code" => w.code = map.next_value()?,
                "retryAfterMs" => w.retry_after_ms = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(w)
    }
}

impl Wire {
    fn user(self) -> User {
        User {
            user_name: self.user_name,
            connection_id: self.connection_id,
        }
    }

    /// The event this frame carries; `None` for an action this client does not know.
    fn event(self) -> Option<ServerEvent> {
        let room = self.room.unwrap_or_else(|| LOBBY.to_string());
        Some(match self.action.as_str() {
            "newUser" => ServerEvent::NewUser {
                room,
                user_name: self.user_name,
                connection_id: self.connection_id,
            },
            "userExit" => ServerEvent::UserExit {
                room,
                user_name: self.user_name,
                connection_id: self.connection_id,
            },
            "message" => ServerEvent::Message {
                room,
                sender: self.sender,
                sender_id: self.sender_id,
                receiver: self.receiver.map_or(
                    User {
                        user_name: String::new(),
                        connection_id: String::new(),
                    },
                    |w| w.user(),
                ),
                message: self.message,
                message_id: self.message_id,
                timestamp: self.timestamp,
                private: self.private,
                to: self.to,
            },
            "list" => ServerEvent::List {
                room,
                users: self.users.into_iter().map(Wire::user).collect(),
                cursor: self.cursor,
                count: self.count,
            },
            "members" => ServerEvent::Members {
                room,
                count: self.count?,
            },
            "registered" => ServerEvent::Registered {
                user_name: self.user_name,
                connection_id: self.connection_id,
                resume_token: self.resume_token,
                conversations: self.conversations.map(|list| {
                    list.into_iter()
                        .map(|w| Conversation {
                            with: w.with.unwrap_or_default(),
                            last_message_id: w.last_message_id,
                        })
                        .collect()
                }),
            },
            "joined" => ServerEvent::Joined {
                room,
                users: self.users.into_iter().map(Wire::user).collect(),
                cursor: self.cursor,
                count: self.count,
            },
            "left" => ServerEvent::Left { room },
            "history" => ServerEvent::History {
                room,
                with: self.with,
                messages: self.messages.into_iter().filter_map(Wire::event).collect(),
                more: self.more,
            },
            "sent" => ServerEvent::Sent {
                message_id: self.message_id,
                timestamp: self.timestamp,
                delivered: self.delivered,
            },
            "pong" => ServerEvent::Pong {},
            "error" => ServerEvent::Error {
                code: self.code?,
                message: self.message,
                retry_after_ms: self.retry_after_ms,
            },
            _ => return None,
        })
    }
}
