//! The chat client's behaviour as plain Rust: server frames and user actions go in, a new
//! view state and a list of [`Command`]s for the browser shell come out.
//!
//! Nothing here touches the DOM, timers, sockets or the clock: the shell passes the time
//! and random numbers in and carries out the commands, so every rule of the UI is unit
//! tested natively (`cargo test -p webchat-frontend`).

use webchat_shared_types::{
    decode_server_frame, validate_message, validate_user_name, ClientAction, ClientFrame,
    ErrorCode, ReceiverRef, ServerEvent, User, DEFAULT_STAGE, MAX_MESSAGE_CHARS,
};

/// First reconnect delay.
pub const RECONNECT_MIN_MS: f64 = 500.0;
/// Longest reconnect delay.
pub const RECONNECT_MAX_MS: f64 = 30_000.0;
/// How often an open socket sends `ping`: half of API Gateway's 10-minute idle timeout.
pub const PING_INTERVAL_MS: u32 = 5 * 60 * 1000;
/// The character counter shows once a message is this close to the limit.
pub const COUNTER_MARGIN: usize = 500;
/// The transcript keeps this many lines; older ones are dropped.
pub const MAX_ENTRIES: usize = 1000;
/// localStorage key of the last name used.
pub const NAME_STORAGE_KEY: &str = "webchat.name";

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Join,
    Chat,
}

/// The socket as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    /// No socket and none planned.
    Idle,
    /// A socket is being opened.
    Connecting,
    /// The socket is open.
    Open,
    /// The socket dropped; a new one opens at `retry_at_ms`.
    Waiting { retry_at_ms: f64 },
}

/// The connection status shown in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Offline,
    Connecting,
    Online,
    Reconnecting { secs: u64 },
}

impl Status {
    pub fn label(self) -> String {
        match self {
            Status::Offline => "offline".into(),
            Status::Connecting => "connecting".into(),
            Status::Online => "online".into(),
            Status::Reconnecting { secs } => format!("reconnecting in {secs} s"),
        }
    }

    /// A stable name for CSS classes and tests.
    pub fn key(self) -> &'static str {
        match self {
            Status::Offline => "offline",
            Status::Connecting => "connecting",
            Status::Online => "online",
            Status::Reconnecting { .. } => "reconnecting",
        }
    }
}

/// What the shell must do after a state change, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Open a new socket, first closing and detaching any existing one.
    Connect,
    /// Send this JSON text on the open socket.
    Send(String),
    /// Close and detach the socket; no events arrive from it afterwards.
    Close,
    /// Call [`Chat::reconnect_due`] after this many milliseconds (replacing any earlier timer).
    ScheduleReconnect { delay_ms: u32 },
    /// Remember this name in localStorage.
    SaveName(String),
    /// Call [`Chat::resend_due`] with this request id after this many milliseconds: the
    /// server asked to wait (`rate_limited`) before sending it again.
    ResendLater { request_id: String, delay_ms: u32 },
}

/// How an own message stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Someone else's message.
    Received,
    /// Sent, waiting for the server's `sent`.
    Pending,
    /// Acknowledged by the server.
    Sent { delivered: u32 },
    /// Refused by the server, or the socket dropped before the ack.
    Failed { reason: String },
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryKind {
    /// A join, leave or connection notice.
    System { text: String },
    Message {
        sender: String,
        text: String,
        /// Milliseconds since the epoch.
        timestamp_ms: f64,
        private: bool,
        own: bool,
        /// For own private messages: who it went to.
        to: Option<String>,
        delivery: Delivery,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unique within the page; with `version` it keys the rendered row.
    pub id: u64,
    /// Bumped whenever the entry changes, so its row is rendered again.
    pub version: u32,
    pub kind: EntryKind,
}

impl Entry {
    /// Hover text of an own message.
    pub fn title(&self) -> Option<String> {
        match &self.kind {
            EntryKind::Message {
                own: true,
                delivery,
                ..
            } => Some(match delivery {
                Delivery::Pending => "Sending…".to_string(),
                Delivery::Sent { delivered: 1 } => "Sent, delivered to 1 user".to_string(),
                Delivery::Sent { delivered } => format!("Sent, delivered to {delivered} users"),
                Delivery::Failed { reason } => format!("Not sent: {reason}"),
                Delivery::Received => String::new(),
            }),
            _ => None,
        }
    }
}

/// The chosen recipient of private messages, kept by name so it survives reconnects
/// (everybody gets a new connection id then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub user_name: String,
    /// The recipient's current connection, `None` while they are not online.
    pub connection_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Register {
        user_name: String,
    },
    /// `frame` is kept to send again when the server asks to wait and retry.
    Message {
        entry: u64,
        frame: String,
    },
}

/// The whole view state of the app.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    pub screen: Screen,
    pub link: Link,
    /// `navigator.onLine` as last reported.
    pub browser_online: bool,
    /// The name this tab registers as (also when it registers again after a reconnect).
    pub name: Option<String>,
    /// The socket is open and registered as `name`.
    pub registered: bool,
    pub my_id: Option<String>,
    /// The server's (or the local validation's) reason the last join failed.
    pub join_error: Option<String>,
    /// A join is waiting for the server's answer.
    pub joining: bool,
    /// The other online users, sorted by name.
    pub users: Vec<User>,
    pub entries: Vec<Entry>,
    /// `None` sends to everyone.
    pub recipient: Option<Recipient>,
    attempt: u32,
    next_id: u64,
    pending: Vec<(String, Pending)>,
}

impl Default for Chat {
    fn default() -> Self {
        Self::new()
    }
}

impl Chat {
    pub fn new() -> Self {
        Chat {
            screen: Screen::Join,
            link: Link::Idle,
            browser_online: true,
            name: None,
            registered: false,
            my_id: None,
            join_error: None,
            joining: false,
            users: Vec::new(),
            entries: Vec::new(),
            recipient: None,
            attempt: 0,
            next_id: 1,
            pending: Vec::new(),
        }
    }

    /// The status shown in the header at time `now_ms`.
    pub fn status(&self, now_ms: f64) -> Status {
        if !self.browser_online {
            return Status::Offline;
        }
        match self.link {
            Link::Idle => Status::Offline,
            Link::Open if self.registered => Status::Online,
            Link::Open | Link::Connecting => Status::Connecting,
            Link::Waiting { retry_at_ms } => Status::Reconnecting {
                secs: ((retry_at_ms - now_ms).max(0.0) / 1000.0).ceil() as u64,
            },
        }
    }

    /// Whether chat messages can go out now.
    pub fn online(&self) -> bool {
        self.link == Link::Open && self.registered
    }

    /// Why Send is disabled for `draft`, or `None` when it can be sent.
    pub fn send_blocker(&self, draft: &str) -> Option<String> {
        if !self.online() {
            return Some("Not connected; your text is kept until the chat is back online".into());
        }
        if let Some(Recipient {
            user_name,
            connection_id: None,
        }) = &self.recipient
        {
            return Some(format!("{user_name} is not online"));
        }
        match validate_message(draft) {
            Ok(_) => None,
            Err(refusal) => Some(refusal.message),
        }
    }

    fn next_request_id(&mut self) -> String {
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        id
    }

    fn push_entry(&mut self, kind: EntryKind) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.drain(..=self.entries.len() - MAX_ENTRIES);
        }
        self.entries.push(Entry {
            id,
            version: 0,
            kind,
        });
        id
    }

    fn system(&mut self, text: impl Into<String>) {
        self.push_entry(EntryKind::System { text: text.into() });
    }

    fn register_frame(&mut self, user_name: &str) -> Command {
        let request_id = self.next_request_id();
        self.pending.push((
            request_id.clone(),
            Pending::Register {
                user_name: user_name.to_string(),
            },
        ));
        Command::Send(
            ClientFrame {
                action: ClientAction::Register {
                    user_name: user_name.to_string(),
                },
                request_id: Some(request_id),
            }
            .to_json(),
        )
    }

    fn list_frame(&mut self) -> Command {
        let request_id = self.next_request_id();
        Command::Send(
            ClientFrame {
                action: ClientAction::List {},
                request_id: Some(request_id),
            }
            .to_json(),
        )
    }

    /// The user pressed Join with `raw_name`.
    pub fn join(&mut self, raw_name: &str) -> Vec<Command> {
        if self.joining {
            return Vec::new();
        }
        let user_name = match validate_user_name(raw_name) {
            Ok(name) => name,
            Err(refusal) => {
                self.join_error = Some(refusal.message);
                return Vec::new();
            }
        };
        self.join_error = None;
        self.joining = true;
        self.name = Some(user_name.clone());
        match self.link {
            Link::Open => vec![self.register_frame(&user_name)],
            Link::Connecting => Vec::new(),
            Link::Idle | Link::Waiting { .. } => {
                self.link = Link::Connecting;
                vec![Command::Connect]
            }
        }
    }

    /// The shell opened the socket it was asked to open.
    pub fn socket_opened(&mut self) -> Vec<Command> {
        self.link = Link::Open;
        self.registered = false;
        match self.name.clone() {
            Some(name) if self.joining || self.screen == Screen::Chat => {
                vec![self.register_frame(&name)]
            }
            _ => Vec::new(),
        }
    }

    /// The socket closed or failed to open. `random` is uniform in `[0, 1)`.
    pub fn socket_closed(&mut self, now_ms: f64, random: f64) -> Vec<Command> {
        let was_online = self.online();
        self.registered = false;
        self.my_id = None;
        for (_, pending) in std::mem::take(&mut self.pending) {
            if let Pending::Message { entry, .. } = pending {
                self.set_delivery(
                    entry,
                    Delivery::Failed {
                        reason: "the connection dropped before the server confirmed it".into(),
                    },
                );
            }
        }
        if self.screen == Screen::Join {
            // On the join screen a failure is reported, not retried behind the user's back.
            self.link = Link::Idle;
            if self.joining {
                self.joining = false;
                self.join_error = Some(
                    "Could not reach the chat server. Check your connection and try again.".into(),
                );
            }
            return Vec::new();
        }
        let delay = backoff_delay_ms(self.attempt, random);
        self.attempt = self.attempt.saturating_add(1);
        self.link = Link::Waiting {
            retry_at_ms: now_ms + delay as f64,
        };
        if was_online {
            self.system("Connection lost. Reconnecting…");
        }
        vec![Command::ScheduleReconnect { delay_ms: delay }]
    }

    /// The reconnect timer fired.
    pub fn reconnect_due(&mut self) -> Vec<Command> {
        match self.link {
            Link::Waiting { .. } if self.screen == Screen::Chat => {
                self.link = Link::Connecting;
                vec![Command::Connect]
            }
            _ => Vec::new(),
        }
    }

    /// The browser reported going offline or online.
    pub fn browser_online_changed(&mut self, online: bool) -> Vec<Command> {
        self.browser_online = online;
        if online {
            if let Link::Waiting { .. } = self.link {
                self.attempt = 0;
                return self.reconnect_due();
            }
        }
        Vec::new()
    }

    /// The user pressed Leave: close the socket and go back to the join screen.
    pub fn leave(&mut self) -> Vec<Command> {
        let name = self.name.clone();
        *self = Chat {
            browser_online: self.browser_online,
            next_id: self.next_id,
            name,
            ..Chat::new()
        };
        vec![Command::Close]
    }

    /// The ping timer fired.
    pub fn ping(&mut self) -> Vec<Command> {
        if self.link != Link::Open {
            return Vec::new();
        }
        vec![Command::Send(
            ClientFrame::new(ClientAction::Ping {}).to_json(),
        )]
    }

    /// Picks the recipient: `None` for everyone, else a connection id from the user list.
    pub fn set_recipient(&mut self, connection_id: Option<&str>) {
        self.recipient = connection_id.and_then(|id| {
            self.users
                .iter()
                .find(|user| user.connection_id == id)
                .map(|user| Recipient {
                    user_name: user.user_name.clone(),
                    connection_id: Some(user.connection_id.clone()),
                })
        });
    }

    /// A click on a user in the list: private messages to them, or back to everyone when
    /// they were already the recipient.
    pub fn toggle_recipient(&mut self, connection_id: &str) {
        let current = self
            .recipient
            .as_ref()
            .and_then(|r| r.connection_id.as_deref());
        if current == Some(connection_id) {
            self.recipient = None;
        } else {
            self.set_recipient(Some(connection_id));
        }
    }

    /// The composer's placeholder: says where the message goes.
    pub fn composer_placeholder(&self) -> String {
        match &self.recipient {
            Some(recipient) => format!(
                "Private message to {}… (Enter sends, Shift+Enter adds a line)",
                recipient.user_name
            ),
            None => "Message everyone… (Enter sends, Shift+Enter adds a line)".into(),
        }
    }

    /// The user sends `draft`. Returns the commands and whether the draft was taken
    /// (so the composer clears it); a draft that cannot go out is kept.
    pub fn send_message(&mut self, draft: &str, now_ms: f64) -> (Vec<Command>, bool) {
        if self.send_blocker(draft).is_some() {
            return (Vec::new(), false);
        }
        let Ok(text) = validate_message(draft) else {
            return (Vec::new(), false);
        };
        let receivers = self.recipient.as_ref().map(|recipient| {
            vec![ReceiverRef {
                connection_id: recipient.connection_id.clone().unwrap_or_default(),
                user_name: Some(recipient.user_name.clone()),
            }]
        });
        let to = self.recipient.as_ref().map(|r| r.user_name.clone());
        let entry = self.push_entry(EntryKind::Message {
            sender: self.name.clone().unwrap_or_default(),
            text: text.clone(),
            timestamp_ms: now_ms,
            private: to.is_some(),
            own: true,
            to,
            delivery: Delivery::Pending,
        });
        let request_id = self.next_request_id();
        let frame = ClientFrame {
            action: ClientAction::Message {
                message: text,
                receivers,
                sender: None,
            },
            request_id: Some(request_id.clone()),
        }
        .to_json();
        self.pending.push((
            request_id,
            Pending::Message {
                entry,
                frame: frame.clone(),
            },
        ));
        (vec![Command::Send(frame)], true)
    }

    /// The wait the server asked for is over: send the message again, if it is still
    /// waiting (a dropped connection has failed it meanwhile).
    pub fn resend_due(&mut self, request_id: &str) -> Vec<Command> {
        self.pending
            .iter()
            .find_map(|(id, pending)| match pending {
                Pending::Message { frame, .. } if id == request_id => {
                    Some(vec![Command::Send(frame.clone())])
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    fn set_delivery(&mut self, entry_id: u64, new: Delivery) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.id == entry_id) {
            if let EntryKind::Message { delivery, .. } = &mut entry.kind {
                *delivery = new;
                entry.version += 1;
            }
        }
    }

    fn set_timestamp(&mut self, entry_id: u64, server_ms: f64) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.id == entry_id) {
            if let EntryKind::Message { timestamp_ms, .. } = &mut entry.kind {
                *timestamp_ms = server_ms;
            }
        }
    }

    fn take_pending(&mut self, request_id: Option<&str>) -> Option<Pending> {
        let request_id = request_id?;
        let index = self.pending.iter().position(|(id, _)| id == request_id)?;
        Some(self.pending.remove(index).1)
    }

    /// A text frame arrived from the server.
    pub fn frame(&mut self, text: &str) -> Vec<Command> {
        let Ok(frame) = decode_server_frame(text) else {
            // A newer server may send events this client does not know: ignore them.
            return Vec::new();
        };
        let pending = self.take_pending(frame.request_id.as_deref());
        match frame.event {
            ServerEvent::Registered {
                user_name,
                connection_id,
            } => self.on_registered(user_name, connection_id, pending),
            ServerEvent::Error {
                code,
                message,
                retry_after_ms,
            } => {
                if let (
                    ErrorCode::RateLimited,
                    Some(Pending::Message {
                        entry,
                        frame: resend,
                    }),
                ) = (code, &pending)
                {
                    // Still pending: the same frame goes again once the wait is over.
                    if let Some(request_id) = frame.request_id.clone() {
                        self.pending.push((
                            request_id.clone(),
                            Pending::Message {
                                entry: *entry,
                                frame: resend.clone(),
                            },
                        ));
                        let delay_ms = retry_after_ms.unwrap_or(1_000).min(60_000) as u32;
                        return vec![Command::ResendLater {
                            request_id,
                            delay_ms,
                        }];
                    }
                }
                self.on_error(code, message, pending);
                Vec::new()
            }
            ServerEvent::Sent {
                timestamp,
                delivered,
                ..
            } => {
                if let Some(Pending::Message { entry, .. }) = pending {
                    self.set_timestamp(entry, timestamp as f64);
                    self.set_delivery(entry, Delivery::Sent { delivered });
                }
                Vec::new()
            }
            ServerEvent::List { users } => {
                self.on_list(users);
                Vec::new()
            }
            ServerEvent::NewUser {
                user_name,
                connection_id,
            } => {
                self.on_new_user(user_name, connection_id);
                Vec::new()
            }
            ServerEvent::UserExit {
                user_name,
                connection_id,
            } => {
                self.on_user_exit(user_name, connection_id);
                Vec::new()
            }
            ServerEvent::Message {
                sender,
                sender_id,
                message,
                timestamp,
                private,
                ..
            } => {
                let own = self.my_id.as_deref() == Some(sender_id.as_str());
                self.push_entry(EntryKind::Message {
                    sender,
                    text: message,
                    timestamp_ms: timestamp as f64,
                    private,
                    own,
                    to: None,
                    delivery: Delivery::Received,
                });
                Vec::new()
            }
            ServerEvent::Pong {} => Vec::new(),
        }
    }

    fn on_registered(
        &mut self,
        user_name: String,
        connection_id: String,
        pending: Option<Pending>,
    ) -> Vec<Command> {
        if !matches!(pending, Some(Pending::Register { .. })) {
            return Vec::new();
        }
        let rejoined = self.screen == Screen::Chat;
        self.registered = true;
        self.joining = false;
        self.join_error = None;
        self.attempt = 0;
        self.my_id = Some(connection_id);
        self.name = Some(user_name.clone());
        self.screen = Screen::Chat;
        if rejoined {
            self.system(format!("Back online as {user_name}."));
        } else {
            self.system(format!("You joined as {user_name}."));
        }
        vec![Command::SaveName(user_name), self.list_frame()]
    }

    fn on_error(&mut self, code: ErrorCode, message: String, pending: Option<Pending>) {
        match pending {
            Some(Pending::Register { user_name }) => {
                self.joining = false;
                if self.screen == Screen::Chat {
                    // Registering again after a reconnect failed (the name was taken
                    // meanwhile): back to the join screen with the reason.
                    *self = Chat {
                        browser_online: self.browser_online,
                        next_id: self.next_id,
                        link: self.link,
                        name: Some(user_name.clone()),
                        join_error: Some(format!("Could not rejoin as {user_name}: {message}")),
                        ..Chat::new()
                    };
                } else {
                    self.join_error = Some(message);
                }
            }
            Some(Pending::Message { entry, .. }) => {
                self.set_delivery(entry, Delivery::Failed { reason: message });
            }
            None => {
                if self.screen == Screen::Chat {
                    self.system(format!("Server error ({code}): {message}"));
                }
            }
        }
    }

    /// Puts `user` into the list at its place in name order (insertion keeps the list
    /// sorted without pulling a sort routine into the download).
    fn insert_user(&mut self, user: User) {
        let at = self
            .users
            .partition_point(|other| display_order(other, &user).is_lt());
        self.users.insert(at, user);
    }

    fn on_list(&mut self, users: Vec<User>) {
        self.users.clear();
        for user in users {
            if self.my_id.as_deref() != Some(user.connection_id.as_str()) {
                self.insert_user(user);
            }
        }
        if let Some(recipient) = &mut self.recipient {
            recipient.connection_id = self
                .users
                .iter()
                .find(|user| same_name(&user.user_name, &recipient.user_name))
                .map(|user| user.connection_id.clone());
        }
    }

    fn on_new_user(&mut self, user_name: String, connection_id: String) {
        if self.my_id.as_deref() == Some(connection_id.as_str()) {
            return;
        }
        if let Some(recipient) = &mut self.recipient {
            if same_name(&recipient.user_name, &user_name) {
                recipient.user_name = user_name.clone();
                recipient.connection_id = Some(connection_id.clone());
            }
        }
        // A rename arrives as a `newUser` for a known connection.
        self.users
            .retain(|user| user.connection_id != connection_id);
        self.insert_user(User {
            user_name: user_name.clone(),
            connection_id,
        });
        if self.screen == Screen::Chat {
            self.system(format!("{user_name} joined"));
        }
    }

    fn on_user_exit(&mut self, user_name: String, connection_id: String) {
        let before = self.users.len();
        self.users
            .retain(|user| user.connection_id != connection_id);
        if let Some(recipient) = &mut self.recipient {
            if recipient.connection_id.as_deref() == Some(connection_id.as_str()) {
                recipient.connection_id = None;
            }
        }
        if self.users.len() != before && self.screen == Screen::Chat {
            self.system(format!("{user_name} left"));
        }
    }
}

/// Whether two user names are the same person's: the server keeps names unique
/// case-insensitively, and a tab registers again with exactly the name it had, so ASCII
/// case folding is enough here (full Unicode folding would add its tables to the download).
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The user list's order: by name ignoring ASCII case, then by connection.
pub fn display_order(a: &User, b: &User) -> std::cmp::Ordering {
    let fold = |user: &User| {
        user.user_name
            .bytes()
            .map(|byte| byte.to_ascii_lowercase())
            .collect::<Vec<u8>>()
    };
    fold(a)
        .cmp(&fold(b))
        .then_with(|| a.connection_id.cmp(&b.connection_id))
}

/// The delay before reconnect attempt `attempt` (0 for the first): exponential from
/// 0.5 s, capped at 30 s, with "equal jitter" (half fixed, half random) so many tabs
/// dropped together do not come back together. `random` is uniform in `[0, 1)`.
pub fn backoff_delay_ms(attempt: u32, random: f64) -> u32 {
    let ceiling = (RECONNECT_MIN_MS * 2f64.powi(attempt.min(16) as i32)).min(RECONNECT_MAX_MS);
    let random = random.clamp(0.0, 1.0);
    let delay = ceiling / 2.0 + ceiling / 2.0 * random;
    delay.clamp(RECONNECT_MIN_MS, RECONNECT_MAX_MS).round() as u32
}

/// The character counter text for a draft, shown only near the limit.
pub fn counter_text(draft: &str) -> Option<String> {
    let used = draft.trim().chars().count();
    (used + COUNTER_MARGIN >= MAX_MESSAGE_CHARS).then(|| format!("{used} / {MAX_MESSAGE_CHARS}"))
}

/// Whether a key press in the composer sends (Enter) rather than adds a line
/// (Shift+Enter, or Enter while an input method is composing).
pub fn enter_sends(key: &str, shift: bool, composing: bool) -> bool {
    key == "Enter" && !shift && !composing
}

/// Time of day `hours:minutes` as shown next to messages.
pub fn clock(hours: u32, minutes: u32) -> String {
    format!("{hours:02}:{minutes:02}")
}

/// The WebSocket URL from the page's query string (`?ws=wss://…`), if it names one.
pub fn ws_url_from_query(search: &str) -> Option<String> {
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "ws")
        .map(|(_, value)| percent_decode(value))
        .filter(|url| is_ws_url(url))
}

/// What the page's `config.json` says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UiConfig {
    /// `websocketUrl`, when it names a `ws://` or `wss://` URL.
    pub websocket_url: Option<String>,
    /// `allowWsOverride`: whether `?ws=` in the page URL may pick another server.
    pub allow_ws_override: bool,
}

/// Reads `config.json` (`{"websocketUrl": "wss://…", "allowWsOverride": false}`); text
/// that is not such an object (a dev server's index.html, say) reads as no settings.
pub fn ui_config(json: &str) -> UiConfig {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(rename = "websocketUrl")]
        websocket_url: Option<String>,
        #[serde(rename = "allowWsOverride", default)]
        allow_ws_override: bool,
    }
    let Ok(raw) = serde_json::from_str::<Raw>(json) else {
        return UiConfig::default();
    };
    UiConfig {
        websocket_url: raw
            .websocket_url
            .map(|url| url.trim().to_string())
            .filter(|url| is_ws_url(url)),
        allow_ws_override: raw.allow_ws_override,
    }
}

/// The WebSocket URL the page connects to, from its query string (`location.search`),
/// its `config.json` text (`None` when there is none) and its own protocol and host:
/// `?ws=` only when the config allows overrides (else any link could send a person's name
/// and messages to a server of the link author's choosing), then the config's
/// `websocketUrl`, then `/Prod` on the page's own host.
pub fn ws_url(search: &str, config_json: Option<&str>, protocol: &str, host: &str) -> String {
    let config = config_json.map(ui_config).unwrap_or_default();
    config
        .allow_ws_override
        .then(|| ws_url_from_query(search))
        .flatten()
        .or(config.websocket_url)
        .unwrap_or_else(|| ws_url_same_host(protocol, host))
}

/// The same-host fallback: `/Prod` with `ws` or `wss` after the page's scheme.
pub fn ws_url_same_host(protocol: &str, host: &str) -> String {
    let scheme = if protocol.trim_end_matches(':') == "https" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{host}/{DEFAULT_STAGE}")
}

fn is_ws_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"));
    matches!(rest, Some(rest) if !rest.is_empty() && !rest.starts_with('/'))
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
