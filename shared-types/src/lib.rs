//! The webchat wire protocol as serde types.
//!
//! This crate is the protocol's one implementation in code: the Lambdas, the local
//! gateway and the browser all decode and encode frames through it, so it depends on
//! serde only and builds for `wasm32-unknown-unknown`. The spec it implements is the
//! repository's `docs/protocol.md`, included below so the crate docs and the spec
//! cannot drift apart.
//!
#![warn(missing_docs)]
#![doc = include_str!("../../docs/protocol.md")]

use serde::{Deserialize, Serialize};
use std::fmt;

mod read;
pub use read::read_server_frame;

/// Longest user name, in Unicode scalar values, after trimming.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest chat message, in Unicode scalar values, after trimming.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Most `receivers` one `message` frame may list.
pub const MAX_RECEIVERS: usize = 100;
/// Longest `requestId`, in Unicode scalar values.
pub const MAX_REQUEST_ID_CHARS: usize = 64;
/// Longest connection id a client may name (AWS ids are 16 characters).
pub const MAX_CONNECTION_ID_CHARS: usize = 128;
/// API Gateway's limit on one WebSocket frame.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// API Gateway's limit on one WebSocket message (all its frames together).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// API Gateway closes a connection that has been silent this long.
pub const IDLE_TIMEOUT_SECS: u64 = 10 * 60;
/// API Gateway closes every connection after this long.
pub const MAX_CONNECTION_LIFETIME_SECS: u64 = 2 * 60 * 60;
/// The stage name the templates deploy and the local gateway serves.
pub const DEFAULT_STAGE: &str = "Prod";
/// The room every registered connection is in; frames without `room` mean it.
pub const LOBBY: &str = "lobby";
/// Longest room name, in characters (`a-z`, `0-9`, `-`, `_`).
pub const MAX_ROOM_CHARS: usize = 32;
/// Most rooms one connection may be in, the lobby included.
pub const MAX_ROOMS_PER_CONNECTION: usize = 20;
/// Messages one `history` reply carries when the frame names no `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;
/// Most messages one `history` reply may carry.
pub const MAX_HISTORY_LIMIT: usize = 100;
/// Longest `resumeToken` a client may present (the server issues shorter ones).
pub const MAX_RESUME_TOKEN_CHARS: usize = 128;
/// Most conversations `registered` lists for a signed-in connection, newest first.
pub const MAX_CONVERSATIONS: usize = 50;
/// Members a `list` or `joined` reply carries at most when the room is paged (a room
/// above the presence limit, or a `list` with a `cursor`).
pub const LIST_PAGE_SIZE: usize = 100;
/// The longest `cursor` a `list` reply gives (hex of a connection id).
pub const MAX_CURSOR_CHARS: usize = 2 * MAX_CONNECTION_ID_CHARS;

fn lobby() -> String {
    LOBBY.to_string()
}

/// One frame a client sends: an action plus the optional correlation id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// What the frame asks for; its fields sit beside `requestId` on the wire.
    #[serde(flatten)]
    pub action: ClientAction,
    /// Any 1 to 64 characters; when present, exactly one reply (or `error`) carries it back.
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What a client asks for, tagged on `action` as API Gateway routes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ClientAction {
    /// Names this connection, or renames it; with the `resumeToken` of an earlier
    /// registration, takes the name over from that connection.
    Register {
        /// The name to go by: trimmed, 1 to 32 characters, unique among live connections.
        user_name: String,
        /// The token from the name's last `registered`, to take the name over after a reconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
    },
    /// Asks for the other members of a room (the lobby when absent).
    List {
        /// The room to list; absent means the lobby.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The `cursor` of the previous `list` reply: the next page of members.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    /// Sends a chat message to `receivers`, or to every member of the room (the lobby
    /// when absent) when they are absent; with `to`, to a signed-in person instead.
    Message {
        /// The room to send to; absent means the lobby.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The text: 1 to 4,096 characters once trimmed.
        message: String,
        /// Only these connections of the room (at most 100); such messages are not stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        receivers: Option<Vec<ReceiverRef>>,
        /// The `userName` of the signed-in person the message is addressed to (every open
        /// connection of theirs); not with `room` or `receivers`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Sent by the original client; the server ignores it and uses the registered name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
    },
    /// Keeps the connection out of API Gateway's idle timeout.
    Ping {},
    /// Enters a room.
    Join {
        /// The room: 1 to 32 of `a-z`, `0-9`, `-`, `_` (upper case is lower-cased).
        room: String,
    },
    /// Leaves a room (not the lobby).
    Leave {
        /// The room to leave.
        room: String,
    },
    /// Asks for a room's stored messages (or, with `with`, the asking person's
    /// conversation with that person): the latest, or a page before or after a message.
    History {
        /// The room to read; absent means the lobby. Not with `with`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The `userName` of the other person of a conversation; not with `room`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// A `messageId`: the page just before it (older).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// A `messageId`: the page just after it (newer), to fill the gap after a reconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// How many messages, 1 to 100 (50 when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
}

/// A recipient named by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverRef {
    /// The recipient's connection, as `newUser` or `list` gave it.
    pub connection_id: String,
    /// Sent by the original client beside the id; only the id addresses the recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// One conversation of a signed-in person, as `registered` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// The other person's `userName` (the person's own for notes to self).
    pub with: String,
    /// The newest message of the conversation: `history {with, after}` from the last
    /// one seen fetches what came since.
    pub last_message_id: String,
}

/// A registered connection as other clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The name the connection registered.
    pub user_name: String,
    /// The connection's id: what `receivers` address.
    pub connection_id: String,
}

/// One frame the server sends: an event plus, on replies, the caller's `requestId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFrame {
    /// What happened, or the reply; its fields sit beside `requestId` on the wire.
    #[serde(flatten)]
    pub event: ServerEvent,
    /// The `requestId` of the frame this answers; absent on pushed events.
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What the server tells a client, tagged on `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerEvent {
    /// A connection registered, renamed, rejoined or joined `room`; to its other members.
    NewUser {
        /// The room it entered (the lobby for frames of the original client).
        #[serde(default = "lobby")]
        room: String,
        /// The name it registered.
        user_name: String,
        /// Its id, to address it in `receivers`.
        connection_id: String,
    },
    /// A connection left `room`, ended, renamed (old name) or was taken over; to the rest.
    UserExit {
        /// The room it left.
        #[serde(default = "lobby")]
        room: String,
        /// The name it had.
        user_name: String,
        /// Its id, as `newUser` gave it.
        connection_id: String,
    },
    /// A chat message, to each recipient; also the items of a `history` reply.
    Message {
        /// The room it was sent to, or a conversation's id when `to` is set.
        #[serde(default = "lobby")]
        room: String,
        /// The sender's registered name, set by the server, never taken from the frame.
        sender: String,
        /// The sender's connection id.
        sender_id: String,
        /// The connection this copy goes to (in `history`, the asking one).
        receiver: User,
        /// The text, trimmed.
        message: String,
        /// 26 characters, assigned by the server; ids sort by time, and `history` pages by them.
        message_id: String,
        /// Milliseconds since the Unix epoch, by the server's clock.
        timestamp: u64,
        /// True when the sender listed `receivers` or addressed a person (`to`).
        private: bool,
        /// For a message addressed to a person: that person's `userName`. `room` then
        /// is the conversation's id (`dm:` and 64 hex digits), never a room name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Reply to `list`, always sent.
    List {
        /// The room listed.
        #[serde(default = "lobby")]
        room: String,
        /// Its members, the asking connection left out: all of them in a small room, one
        /// page (at most [`LIST_PAGE_SIZE`]) when paged.
        users: Vec<User>,
        /// Paged, when another page follows: send it back in `list` for that page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Paged: how many members the room has (the asking connection included).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// A room above the presence limit: how many members it has now. Pushed instead of
    /// `newUser`/`userExit`, at most once every few seconds per room, when it changed.
    Members {
        /// The room counted.
        room: String,
        /// Its members, every connection counted.
        count: u64,
    },
    /// Reply to `register` with a `requestId`: the name is this connection's.
    Registered {
        /// The name as registered (trimmed; a signed-in person's as their token spells it).
        user_name: String,
        /// This connection's id, as other clients see it.
        connection_id: String,
        /// Presented with `register` from a later connection, takes this name over.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
        /// Signed-in connections only: the person's conversations, newest first (at most
        /// [`MAX_CONVERSATIONS`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversations: Option<Vec<Conversation>>,
    },
    /// Reply to `join`: the room's other members.
    Joined {
        /// The room joined.
        room: String,
        /// Its other members; in a room above the presence limit, the first page.
        users: Vec<User>,
        /// Above the presence limit, when more members follow: `list {room, cursor}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Above the presence limit: how many members the room has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// Reply to `leave`.
    Left {
        /// The room left.
        room: String,
    },
    /// Reply to `history`: `message` events, oldest first.
    History {
        /// The room read, or the conversation's id for `history {with}`.
        room: String,
        /// Reply to `history {with}`: the other person's `userName`; `room` is then the
        /// conversation's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// `message` events exactly as they were pushed, oldest first.
        messages: Vec<ServerEvent>,
        /// Whether another page follows in the direction asked for.
        more: bool,
    },
    /// Reply to `message` with a `requestId`: the message went out.
    Sent {
        /// The id the message was given (and stored under, when it is stored).
        message_id: String,
        /// Milliseconds since the Unix epoch, by the server's clock.
        timestamp: u64,
        /// Connections the message reached; 0 when none was open (a message to a person
        /// is kept all the same).
        delivered: u32,
    },
    /// Reply to `ping` with a `requestId`.
    Pong {},
    /// The frame was refused; it changed nothing and the connection stays open.
    Error {
        /// Why, for programs to match on.
        code: ErrorCode,
        /// Why, for people to read.
        message: String,
        /// With `rate_limited`: milliseconds until one more frame of the refused kind
        /// would be allowed. Absent on other errors (and so unseen by the original client).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or a binary frame.
    BadJson,
    /// No string `action`, or not one the protocol has.
    UnknownAction,
    /// A field of the wrong type, or against one of the protocol's rules.
    InvalidField,
    /// The name is held by another live connection (or a signed-in person).
    NameTaken,
    /// The frame needs a registered connection: `register` first.
    NotRegistered,
    /// A message, frame or list over its limit.
    TooLarge,
    /// Frames of this kind came faster than the connection's budget; retry after `retryAfterMs`.
    RateLimited,
    /// A room the connection is not in.
    NotAMember,
    /// `join` of one room more than a connection may be in.
    LimitReached,
    /// Not allowed for this connection: a name not its own, or a person-to-person frame
    /// while not signed in.
    Forbidden,
    /// `to` or `with` names no signed-in person.
    UnknownUser,
    /// The service failed; the same frame may be sent again later.
    Internal,
}

impl ErrorCode {
    /// The code as it is written on the wire (`bad_json`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::NotRegistered => "not_registered",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused frame: the code and human-readable reason to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code the `error` frame carries.
    pub code: ErrorCode,
    /// The reason, for people to read.
    pub message: String,
    /// The frame's `requestId`, when it had a valid one, so the error can carry it.
    pub request_id: Option<String>,
}

impl Refusal {
    /// A refusal without a `requestId` yet (the frame may not have had a valid one).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            request_id: None,
        }
    }

    /// The same refusal answering the frame's `requestId`.
    #[must_use]
    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    /// The `error` frame that answers the refused frame.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame {
            event: ServerEvent::Error {
                code: self.code,
                message: self.message.clone(),
                retry_after_ms: None,
            },
            request_id: self.request_id.clone(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Refusal {}

/// A client frame that passed every rule of the protocol, with its text normalised
/// (names and messages trimmed, receivers without duplicates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidFrame {
    /// What the frame asks for.
    pub request: Request,
    /// The frame's `requestId`, for the reply to carry.
    pub request_id: Option<String>,
}

/// A validated client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Name this connection (see [`ClientAction::Register`]).
    Register {
        /// Trimmed, and within the protocol's rules for names.
        user_name: String,
        /// 1 to 128 printable characters; whether it is the name's current token is the
        /// server's to check.
        resume_token: Option<String>,
    },
    /// List a room's other members.
    List {
        /// A valid room name, the lobby when the frame had none.
        room: String,
        /// The page after this one, as a `list` reply gave it (hex digits).
        cursor: Option<String>,
    },
    /// Send a chat message in a room.
    Message {
        /// A valid room name, the lobby when the frame had none.
        room: String,
        /// Trimmed, 1 to 4,096 characters.
        message: String,
        /// `None` goes to the whole room; `Some` lists connection ids, deduplicated, in order.
        receivers: Option<Vec<String>>,
    },
    /// A message addressed to a signed-in person (`message` with `to`).
    MessageTo {
        /// The person's `userName`, trimmed.
        to: String,
        /// Trimmed, 1 to 4,096 characters.
        message: String,
    },
    /// Keep the connection out of the idle timeout.
    Ping,
    /// Enter a room.
    Join {
        /// A valid room name.
        room: String,
    },
    /// Leave a room; never the lobby (refused before it gets here).
    Leave {
        /// A valid room name other than the lobby.
        room: String,
    },
    /// Read a room's stored messages.
    History {
        /// A valid room name, the lobby when the frame had none.
        room: String,
        /// Which page.
        page: HistoryPage,
        /// How many messages, 1 to [`MAX_HISTORY_LIMIT`].
        limit: usize,
    },
    /// The asking person's conversation with another (`history` with `with`).
    HistoryWith {
        /// The other person's `userName`, trimmed.
        with: String,
        /// Which page.
        page: HistoryPage,
        /// How many messages, 1 to [`MAX_HISTORY_LIMIT`].
        limit: usize,
    },
}

/// Which stored messages of a room a `history` frame asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryPage {
    /// The newest ones.
    Latest,
    /// The ones just before this message id.
    Before(String),
    /// The ones just after this message id.
    After(String),
}

/// One route of the WebSocket API: API Gateway's route keys, as the templates deploy
/// them. This enum is the route table: the handlers match on it, the local gateway
/// routes with it, and the template checks compare the templates against [`Route::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// `$connect`: the handshake, before any frame.
    Connect,
    /// `$disconnect`: the connection has ended.
    Disconnect,
    /// `register`.
    Register,
    /// `list`.
    List,
    /// `message`.
    Message,
    /// `ping`.
    Ping,
    /// `join`.
    Join,
    /// `leave`.
    Leave,
    /// `history`.
    History,
    /// Frames with no known `action`.
    Default,
}

impl Route {
    /// Every route, in the order the protocol document lists them.
    pub const ALL: [Route; 10] = [
        Route::Connect,
        Route::Disconnect,
        Route::Register,
        Route::List,
        Route::Message,
        Route::Ping,
        Route::Join,
        Route::Leave,
        Route::History,
        Route::Default,
    ];

    /// The route key: `$connect`, `$disconnect`, `$default`, or the frame's `action`.
    pub const fn key(self) -> &'static str {
        match self {
            Route::Connect => "$connect",
            Route::Disconnect => "$disconnect",
            Route::Register => "register",
            Route::List => "list",
            Route::Message => "message",
            Route::Ping => "ping",
            Route::Join => "join",
            Route::Leave => "leave",
            Route::History => "history",
            Route::Default => "$default",
        }
    }

    /// The route with this key.
    pub fn from_key(key: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|route| route.key() == key)
    }

    /// Whether a client selects this route with `"action": key`.
    pub const fn is_action(self) -> bool {
        !matches!(self, Route::Connect | Route::Disconnect | Route::Default)
    }

    /// Whether API Gateway sends the handler's response body back to the caller
    /// (a two-way route: `RouteResponseSelectionExpression` set, a `$default` route response).
    pub const fn replies(self) -> bool {
        !matches!(self, Route::Connect | Route::Disconnect)
    }

    /// The route a client names with `action`, if it is one.
    pub fn from_action(action: &str) -> Option<Route> {
        Route::from_key(action).filter(|route| route.is_action())
    }

    /// The route API Gateway picks for one text frame on `$request.body.action`:
    /// [`Route::Default`] for frames that are not JSON, have no string `action`, or
    /// name an unknown one.
    pub fn of_frame(frame: &str) -> Route {
        // Parsed as `decode_client_frame` parses it (a repeated key keeps its last value), so
        // the route and the handler always agree on the action.
        let Ok(value) = serde_json::from_str::<serde_json::Value>(frame) else {
            return Route::Default;
        };
        value
            .get("action")
            .and_then(serde_json::Value::as_str)
            .and_then(Route::from_action)
            .unwrap_or(Route::Default)
    }

    /// "register, list, message or ping": the actions, for error messages.
    pub fn action_names() -> String {
        let actions: Vec<&str> = Route::ALL
            .into_iter()
            .filter(|route| route.is_action())
            .map(Route::key)
            .collect();
        match actions.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl Request {
    /// The route this request arrives on.
    pub fn route(&self) -> Route {
        match self {
            Request::Register { .. } => Route::Register,
            Request::List { .. } => Route::List,
            Request::Message { .. } | Request::MessageTo { .. } => Route::Message,
            Request::Ping => Route::Ping,
            Request::Join { .. } => Route::Join,
            Request::Leave { .. } => Route::Leave,
            Request::History { .. } | Request::HistoryWith { .. } => Route::History,
        }
    }
}

/// The refusal for a frame that names no usable action.
pub fn unknown_action(detail: &str) -> Refusal {
    Refusal::new(
        ErrorCode::UnknownAction,
        format!("{detail}; use {}", Route::action_names()),
    )
}

/// Decodes and validates one client frame.
///
/// Stages mirror how API Gateway and the handlers see a frame: it must be JSON
/// (`bad_json`), name a known `action` (`unknown_action`), have fields of the right
/// types (`invalid_field`), and respect every limit (`invalid_field`, `too_large`).
pub fn decode_client_frame(frame: &str) -> Result<ValidFrame, Refusal> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("frames are limited to {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(frame).map_err(|err| {
        Refusal::new(
            ErrorCode::BadJson,
            format!(
                "frame is not valid JSON: {}",
                truncate_for_echo(&err.to_string(), 160)
            ),
        )
    })?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(Refusal::new(
            ErrorCode::UnknownAction,
            "frame must be a JSON object with an \"action\"",
        ));
    };
    let request_id = match object.remove("requestId") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(id)) => Some(validate_request_id(id)?),
        Some(_) => {
            return Err(Refusal::new(
                ErrorCode::InvalidField,
                "requestId must be a string",
            ))
        }
    };
    let action = match object.get("action") {
        Some(serde_json::Value::String(action)) if Route::from_action(action).is_some() => {
            action.clone()
        }
        Some(serde_json::Value::String(action)) => {
            return Err(unknown_action(&format!(
                "unknown action \"{}\"",
                truncate_for_echo(action, 32)
            ))
            .with_request_id(request_id))
        }
        _ => {
            return Err(unknown_action("frame has no string \"action\"").with_request_id(request_id))
        }
    };
    let refuse =
        |code, message: String| Refusal::new(code, message).with_request_id(request_id.clone());

    let parsed: ClientAction =
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|err| {
            refuse(
                ErrorCode::InvalidField,
                // serde quotes the offending value: keep replies small whatever the frame.
                format!(
                    "invalid \"{action}\" frame: {}",
                    truncate_for_echo(&err.to_string(), 160)
                ),
            )
        })?;

    let request = validate_action(parsed).map_err(|r| r.with_request_id(request_id.clone()))?;
    Ok(ValidFrame {
        request,
        request_id,
    })
}

fn validate_action(parsed: ClientAction) -> Result<Request, Refusal> {
    let room_or_lobby = |room: Option<String>| match room {
        None => Ok(LOBBY.to_string()),
        Some(room) => validate_room(&room),
    };
    Ok(match parsed {
        ClientAction::Register {
            user_name,
            resume_token,
        } => Request::Register {
            user_name: validate_user_name(&user_name)?,
            resume_token: resume_token.map(validate_resume_token).transpose()?,
        },
        ClientAction::List { room, cursor } => Request::List {
            room: room_or_lobby(room)?,
            cursor: cursor.map(validate_cursor).transpose()?,
        },
        ClientAction::Ping {} => Request::Ping,
        ClientAction::Message {
            room,
            message,
            receivers,
            to: Some(to),
            ..
        } => {
            if room.is_some() || receivers.is_some() {
                return Err(Refusal::new(
                    ErrorCode::InvalidField,
                    "a message goes to a person (to) or to a room (room, receivers), not both",
                ));
            }
            Request::MessageTo {
                to: validate_name("to", &to)?,
                message: validate_message(&message)?,
            }
        }
        ClientAction::Message {
            room,
            message,
            receivers,
            to: None,
            ..
        } => Request::Message {
            room: room_or_lobby(room)?,
            message: validate_message(&message)?,
            receivers: receivers.map(validate_receivers).transpose()?,
        },
        ClientAction::Join { room } => Request::Join {
            room: validate_room(&room)?,
        },
        ClientAction::Leave { room } => {
            let room = validate_room(&room)?;
            if room == LOBBY {
                return Err(Refusal::new(
                    ErrorCode::InvalidField,
                    "every registered connection stays in the lobby; it cannot be left",
                ));
            }
            Request::Leave { room }
        }
        ClientAction::History {
            room,
            with,
            before,
            after,
            limit,
        } => {
            let page = match (before, after) {
                (None, None) => HistoryPage::Latest,
                (Some(before), None) => HistoryPage::Before(validate_message_id("before", before)?),
                (None, Some(after)) => HistoryPage::After(validate_message_id("after", after)?),
                (Some(_), Some(_)) => {
                    return Err(Refusal::new(
                        ErrorCode::InvalidField,
                        "history takes before or after, not both",
                    ))
                }
            };
            let limit = match limit.map(usize::try_from) {
                None => DEFAULT_HISTORY_LIMIT,
                Some(Ok(limit @ 1..=MAX_HISTORY_LIMIT)) => limit,
                Some(_) => {
                    return Err(Refusal::new(
                        ErrorCode::InvalidField,
                        format!("limit must be 1 to {MAX_HISTORY_LIMIT}"),
                    ))
                }
            };
            match with {
                Some(_) if room.is_some() => {
                    return Err(Refusal::new(
                        ErrorCode::InvalidField,
                        "history takes a room or a person (with), not both",
                    ))
                }
                Some(with) => Request::HistoryWith {
                    with: validate_name("with", &with)?,
                    page,
                    limit,
                },
                None => Request::History {
                    room: room_or_lobby(room)?,
                    page,
                    limit,
                },
            }
        }
    })
}

/// Lower-cases a room name and checks it against the protocol's rules.
pub fn validate_room(raw: &str) -> Result<String, Refusal> {
    let room = raw.to_ascii_lowercase();
    let valid = (1..=MAX_ROOM_CHARS).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(room)
    } else {
        Err(Refusal::new(
            ErrorCode::InvalidField,
            format!("room must be 1 to {MAX_ROOM_CHARS} characters of a-z, 0-9, - and _"),
        ))
    }
}

/// Whether `id` has the shape of a `messageId` (a ULID: 26 characters of Crockford's
/// base 32, upper case).
pub fn is_message_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

fn validate_message_id(field: &str, id: String) -> Result<String, Refusal> {
    if is_message_id(&id) {
        Ok(id)
    } else {
        Err(Refusal::new(
            ErrorCode::InvalidField,
            format!("{field} must be a messageId from a message event"),
        ))
    }
}

fn validate_cursor(cursor: String) -> Result<String, Refusal> {
    let valid = (2..=MAX_CURSOR_CHARS).contains(&cursor.len())
        && cursor.len().is_multiple_of(2)
        && cursor
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid {
        Ok(cursor)
    } else {
        Err(invalid_cursor())
    }
}

/// The refusal of a `list` `cursor` that no `list` reply gave: its shape here, its
/// meaning on the server.
pub fn invalid_cursor() -> Refusal {
    Refusal::new(
        ErrorCode::InvalidField,
        "cursor must be the cursor of a list reply, as it was sent",
    )
}

fn validate_resume_token(token: String) -> Result<String, Refusal> {
    let chars = token.chars().count();
    if chars == 0 || chars > MAX_RESUME_TOKEN_CHARS || token.chars().any(char::is_control) {
        return Err(Refusal::new(
            ErrorCode::InvalidField,
            format!(
                "resumeToken must be 1 to {MAX_RESUME_TOKEN_CHARS} printable characters, as registered sent it"
            ),
        ));
    }
    Ok(token)
}

fn truncate_for_echo(text: &str, max_chars: usize) -> String {
    let mut short: String = text
        .chars()
        .take(max_chars)
        .filter(|c| !c.is_control())
        .collect();
    if text.chars().count() > max_chars {
        short.push('…');
    }
    short
}

/// Characters that render as nothing or reorder text: allowing them in names would let
/// one user impersonate another with a name that looks the same.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Trims a user name and checks it against the protocol's rules.
pub fn validate_user_name(raw: &str) -> Result<String, Refusal> {
    validate_name("userName", raw)
}

/// Trims a name in `field` (`userName`, or `to` and `with`, which name a person) and
/// checks it against the rules of `userName`.
fn validate_name(field: &str, raw: &str) -> Result<String, Refusal> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(Refusal::new(
            ErrorCode::InvalidField,
            format!("{field} must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Refusal::new(
            ErrorCode::InvalidField,
            format!("{field} must not contain control characters"),
        ));
    }
    if name.chars().any(is_invisible_or_bidi) {
        return Err(Refusal::new(
            ErrorCode::InvalidField,
            format!("{field} must not contain invisible or text-direction characters"),
        ));
    }
    Ok(name.to_string())
}

/// The key under which a name is unique: names differing only in case collide.
pub fn name_key(user_name: &str) -> String {
    user_name.to_lowercase()
}

/// Trims a chat message and checks it against the protocol's rules.
pub fn validate_message(raw: &str) -> Result<String, Refusal> {
    let message = raw.trim();
    if message.is_empty() {
        return Err(Refusal::new(
            ErrorCode::InvalidField,
            "message must not be blank",
        ));
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("message is limited to {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    if message
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Refusal::new(
            ErrorCode::InvalidField,
            "message must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(message.to_string())
}

fn validate_receivers(list: Vec<ReceiverRef>) -> Result<Vec<String>, Refusal> {
    if list.len() > MAX_RECEIVERS {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("receivers is limited to {MAX_RECEIVERS} entries"),
        ));
    }
    let mut ids: Vec<String> = Vec::with_capacity(list.len());
    for receiver in list {
        let id = receiver.connection_id;
        let chars = id.chars().count();
        if chars == 0 || chars > MAX_CONNECTION_ID_CHARS || id.chars().any(char::is_control) {
            return Err(Refusal::new(
                ErrorCode::InvalidField,
                format!("receivers[].connectionId must be 1 to {MAX_CONNECTION_ID_CHARS} printable characters"),
            ));
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn validate_request_id(id: String) -> Result<String, Refusal> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_REQUEST_ID_CHARS || id.chars().any(char::is_control) {
        return Err(Refusal::new(
            ErrorCode::InvalidField,
            format!("requestId must be 1 to {MAX_REQUEST_ID_CHARS} printable characters"),
        ));
    }
    Ok(id)
}

impl ServerFrame {
    /// An event pushed to a connection that did not ask for it.
    pub fn push(event: ServerEvent) -> Self {
        ServerFrame {
            event,
            request_id: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Every field is a string, number, bool or a list of those: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ClientFrame {
    /// A frame without a `requestId`, as the original client sent them.
    pub fn new(action: ClientAction) -> Self {
        ClientFrame {
            action,
            request_id: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Decodes a frame the server sent.
pub fn decode_server_frame(frame: &str) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_str(frame)
}
