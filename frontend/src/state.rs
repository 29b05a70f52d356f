//! The chat client's behaviour as plain Rust: server frames and user actions go in, a new
//! view state and a list of [`Command`]s for the browser shell come out.
//!
//! Nothing here touches the DOM, timers, sockets or the clock: the shell passes the time
//! and random numbers in and carries out the commands, so every rule of the UI is unit
//! tested natively (`cargo test -p webchat-frontend`).

use webchat_shared_types::{
    read_server_frame, validate_message, validate_room, validate_user_name, ClientAction,
    ClientFrame, ErrorCode, ReceiverRef, ServerEvent, User, DEFAULT_STAGE, LOBBY,
    MAX_MESSAGE_CHARS, MAX_ROOMS_PER_CONNECTION,
};

/// First reconnect delay.
pub const RECONNECT_MIN_MS: f64 = 500.0;
/// Longest reconnect delay.
pub const RECONNECT_MAX_MS: f64 = 30_000.0;
/// How often an open socket sends `ping`: half of API Gateway's 10-minute idle timeout.
pub const PING_INTERVAL_MS: u32 = 5 * 60 * 1000;
/// The character counter shows once a message is this close to the limit.
pub const COUNTER_MARGIN: usize = 500;
/// Each room's transcript keeps this many lines as new ones arrive; older ones are dropped
/// (and can be paged back in from the room's history).
pub const MAX_ENTRIES: usize = 1000;
/// localStorage key of the last name used.
pub const NAME_STORAGE_KEY: &str = "webchat.name";
/// sessionStorage key of this tab's session ([`ChatState::session`]): kept per tab, so a
/// reload rejoins as before while another tab starts afresh.
pub const SESSION_STORAGE_KEY: &str = "webchat.session";
/// How long an own message waits for the server's answer before it counts as not sent:
/// more than the handler's 10 s Lambda timeout and a rate-limited wait or two.
pub const ANSWER_WAIT_MS: u32 = 30_000;
/// At most this many of a signed-in person's conversations are fetched when a tab
/// registers (the newest, each its newest page): enough for what came while away, few
/// enough to stay well inside the rate limit with every room being rejoined too.
pub const CONVERSATIONS_FETCHED: usize = 5;
/// The line that marks where messages fetched after a reconnect begin.
pub const AWAY_TEXT: &str = "While you were away";
/// sessionStorage key of the sign-in tokens ([`Tokens::to_storage`]).
pub const TOKENS_STORAGE_KEY: &str = "webchat.tokens";
/// sessionStorage key of a sign-in on its way through the issuer: its `state`, then its
/// PKCE code verifier.
pub const SIGN_IN_STORAGE_KEY: &str = "webchat.signin";
/// ID tokens are renewed this long before they expire (sooner for short-lived ones).
pub const RENEW_BEFORE_MS: u64 = 120_000;

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Choosing a name (or signing in) before the chat.
    Join,
    /// The chat: rooms, people, transcript and composer.
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
    Waiting {
        /// When, by `Date.now()`.
        retry_at_ms: f64,
    },
}

/// The connection status shown in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The browser says it is offline.
    Offline,
    /// A socket is being opened.
    Connecting,
    /// Connected and registered.
    Online,
    /// The socket dropped; the next try is in `secs` seconds.
    Reconnecting {
        /// Seconds until the next try.
        secs: u64,
    },
}

impl Status {
    /// The words the header shows.
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
    /// Call [`ChatState::reconnect_due`] after this many milliseconds (replacing any earlier timer).
    ScheduleReconnect {
        /// How long to wait.
        delay_ms: u32,
    },
    /// Remember this name in localStorage.
    SaveName(String),
    /// Keep this text in sessionStorage under [`SESSION_STORAGE_KEY`] (remove it when empty).
    SaveSession(String),
    /// Call [`ChatState::resend_due`] with this request id after this many milliseconds: the
    /// server asked to wait (`rate_limited`) before sending it again.
    ResendLater {
        /// The message to send again.
        request_id: String,
        /// How long the server asked to wait.
        delay_ms: u32,
    },
    /// Call [`ChatState::answer_overdue`] with this request id after this many milliseconds:
    /// an own message that has no answer by then never will.
    AnswerDue {
        /// The message waiting for its answer.
        request_id: String,
        /// How long to wait for it.
        delay_ms: u32,
    },
}

/// How an own message stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Someone else's message, or an own one from the room's history.
    Received,
    /// Sent, waiting for the server's `sent`.
    Pending,
    /// Acknowledged by the server.
    Sent {
        /// How many connections it was pushed to.
        delivered: u32,
    },
    /// Refused by the server, or the socket dropped before the ack.
    Failed {
        /// What the person is told.
        reason: String,
    },
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryKind {
    /// A join, leave or connection notice; `divider` marks where the messages fetched
    /// after a reconnect begin.
    System {
        /// What is shown.
        text: String,
        /// Whether this is the "while you were away" divider.
        divider: bool,
    },
    /// A message someone (or this person) sent.
    Message {
        /// Who sent it.
        sender: String,
        /// What it says, shown as text (never as markup).
        text: String,
        /// Milliseconds since the epoch.
        timestamp_ms: f64,
        /// Sent to one person, not to a room.
        private: bool,
        /// Sent by this person.
        own: bool,
        /// For own private messages: who it went to.
        to: Option<String>,
        /// How it stands, for own messages.
        delivery: Delivery,
    },
}

/// One line of a room's transcript, as the view keys and shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unique within the page; with `version` it keys the rendered row.
    pub id: u64,
    /// Bumped whenever the entry changes, so its row is rendered again.
    pub version: u32,
    /// The server's id of a message (an own one once `sent` names it): no message is
    /// shown twice, however many ways it arrives (pushed, in history, own).
    pub message_id: Option<String>,
    /// What the line is.
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

/// One room this tab is in: its members and its transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    /// The room's name (the lobby's too).
    pub name: String,
    /// The other members, sorted by name.
    pub users: Vec<User>,
    /// The transcript, oldest first.
    pub entries: Vec<Entry>,
    /// Messages that arrived while another room was shown.
    pub unread: u32,
    /// The server has older messages than the first one shown.
    pub more: bool,
    /// In a room above the server's presence limit: its member count (this tab
    /// included), which the server pushes instead of each arrival and departure.
    pub member_count: Option<u64>,
    /// In such a room, when more members can be listed: where the next page starts.
    pub more_people: Option<String>,
    /// An older page was asked for and has not come yet.
    loading: bool,
    /// Set at each registration: the newest message seen before it, so the room asks
    /// for what was sent after it.
    since: Option<String>,
    /// The gap since the last registration has its divider.
    marked: bool,
}

impl Room {
    fn new(name: &str) -> Room {
        Room {
            name: name.to_string(),
            users: Vec::new(),
            entries: Vec::new(),
            unread: 0,
            more: false,
            member_count: None,
            more_people: None,
            loading: false,
            since: None,
            marked: false,
        }
    }

    fn message_ids(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.entries.iter().filter_map(|e| e.message_id.as_deref())
    }

    fn has(&self, message_id: &str) -> bool {
        self.message_ids().any(|id| id == message_id)
    }

    /// Finds the own message shown as failed that `stored` (an own message from the
    /// room's history) is, and marks it as what it was: stored, with the server's id and
    /// time. False when there is none.
    fn confirm_lost_ack(&mut self, stored: &Entry) -> bool {
        let EntryKind::Message {
            own: true,
            text: stored_text,
            timestamp_ms: stored_ms,
            private: stored_private,
            to: stored_to,
            ..
        } = &stored.kind
        else {
            return false;
        };
        // Only room messages and messages to a person are stored: a private message to a
        // connection never comes back, and the same text to a room is another message.
        let failed = self.entries.iter_mut().find(|e| {
            e.message_id.is_none()
                && matches!(&e.kind, EntryKind::Message {
                    own: true,
                    delivery: Delivery::Failed { .. },
                    text,
                    private,
                    to,
                    ..
                } if text == stored_text
                    && private == stored_private
                    && match (to, stored_to) {
                        (None, None) => true,
                        (Some(a), Some(b)) => same_name(a, b),
                        _ => false,
                    })
        });
        let Some(entry) = failed else {
            return false;
        };
        entry.message_id.clone_from(&stored.message_id);
        if let EntryKind::Message {
            delivery,
            timestamp_ms,
            ..
        } = &mut entry.kind
        {
            *delivery = Delivery::Received;
            *timestamp_ms = *stored_ms;
        }
        entry.version += 1;
        true
    }

    /// Appends a line, dropping the oldest past [`MAX_ENTRIES`].
    fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
        self.trim();
    }

    fn trim(&mut self) -> usize {
        let over = self.entries.len().saturating_sub(MAX_ENTRIES);
        self.entries.drain(..over);
        over
    }

    /// Puts a message at its place in time: message ids sort by time, so before the first
    /// line with a later id, else at the end (after notices and own messages not yet
    /// acknowledged); the oldest lines past [`MAX_ENTRIES`] go. Returns where it went.
    fn insert_in_order(&mut self, entry: Entry) -> usize {
        let id = entry.message_id.as_deref().unwrap_or_default();
        let at = self
            .entries
            .iter()
            .position(|e| e.message_id.as_deref().is_some_and(|other| other > id))
            .unwrap_or(self.entries.len());
        self.entries.insert(at, entry);
        at.saturating_sub(self.trim())
    }

    /// Puts `user` into the list at its place in name order (insertion keeps the list
    /// sorted without pulling a sort routine into the download).
    fn insert_user(&mut self, user: User) {
        self.users
            .retain(|other| other.connection_id != user.connection_id);
        let at = self
            .users
            .partition_point(|other| display_order(other, &user).is_lt());
        self.users.insert(at, user);
    }
}

/// The chosen recipient of private messages, kept by name so it survives reconnects
/// (everybody gets a new connection id then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Their name.
    pub user_name: String,
    /// The recipient's current connection, `None` while they are not online.
    pub connection_id: Option<String>,
}

/// Which page of a room's history a `history` frame asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// The newest messages: a room joined afresh, or a page loaded anew.
    Latest,
    /// The page before the first message shown: the reader scrolled to the top.
    Older,
    /// What came after the last message seen: the gap a reconnect left.
    Gap,
    /// The newest messages of a conversation with a person (sign-in on), shown in the
    /// lobby among the other private messages.
    Conversation,
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
    /// `show`: the user asked for this room, so it is shown once joined.
    Join {
        room: String,
        show: bool,
    },
    History {
        page: Page,
    },
    /// The next page of a big room's members.
    People {
        room: String,
    },
}

/// The whole view state of the app.
// Its flags are independent facts the view shows (online, registered, signing in…),
// not one state spelled as booleans.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq)]
pub struct ChatState {
    /// Which screen is shown.
    pub screen: Screen,
    /// The socket, as far as this state knows.
    pub link: Link,
    /// `navigator.onLine` as last reported.
    pub browser_online: bool,
    /// The name this tab registers as (also when it registers again after a reconnect).
    pub name: Option<String>,
    /// The socket is open and registered as `name`.
    pub registered: bool,
    /// This tab's connection id, once `registered` says it.
    pub my_id: Option<String>,
    /// The server's (or the local validation's) reason the last join failed.
    pub join_error: Option<String>,
    /// A join is waiting for the server's answer.
    pub joining: bool,
    /// The rooms this tab is in: the lobby first, then in the order they were joined.
    /// Never empty.
    pub rooms: Vec<Room>,
    /// The room shown, an index into `rooms`.
    pub current: usize,
    /// Why the last room could not be joined.
    pub room_error: Option<String>,
    /// Private messages go to a lobby member; `None` sends to the whole room.
    pub recipient: Option<Recipient>,
    /// Sign-in is required (`config.json` has `auth`): the join screen offers Sign in,
    /// and the name registered is the ID token's.
    pub auth: bool,
    /// From the last `registered`: lets the next automatic `register` take the name
    /// over from a connection the server still thinks is open.
    resume_token: Option<String>,
    attempt: u32,
    next_id: u64,
    pending: Vec<(String, Pending)>,
    /// Own messages waiting for the one before them to be answered: one message is in
    /// flight at a time, so a message the server asks to send again later (rate limited)
    /// is never overtaken by the next one.
    queued: Vec<(String, Pending)>,
}

impl Default for ChatState {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatState {
    /// A tab that has just opened: the join screen, no socket.
    pub fn new() -> Self {
        ChatState {
            screen: Screen::Join,
            link: Link::Idle,
            browser_online: true,
            name: None,
            registered: false,
            my_id: None,
            join_error: None,
            joining: false,
            rooms: vec![Room::new(LOBBY)],
            current: 0,
            room_error: None,
            recipient: None,
            auth: false,
            resume_token: None,
            attempt: 0,
            next_id: 1,
            pending: Vec::new(),
            queued: Vec::new(),
        }
    }

    /// The room shown.
    pub fn room(&self) -> &Room {
        self.rooms.get(self.current).unwrap_or(&self.rooms[0])
    }

    /// The lobby: every registered connection's room, and where private messages go.
    pub fn lobby(&self) -> &Room {
        &self.rooms[0]
    }

    fn room_index(&self, name: &str) -> Option<usize> {
        self.rooms.iter().position(|room| room.name == name)
    }

    fn room_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|room| room.name == name)
    }

    /// How many others are in `room`: the server's count in a big room (it lists those
    /// a page at a time), else those listed.
    pub fn people_count(&self, room: &Room) -> usize {
        match room.member_count {
            Some(count) => usize::try_from(count.saturating_sub(1)).unwrap_or(usize::MAX),
            None => self.people(room).len(),
        }
    }

    /// Asks for the next page of the shown room's members, when a big room has one.
    pub fn more_people(&mut self) -> Vec<Command> {
        let room = self.room();
        let Some(cursor) = room.more_people.clone() else {
            return Vec::new();
        };
        let name = room.name.clone();
        vec![self.request(
            ClientAction::List {
                room: Some(name.clone()),
                cursor: Some(cursor),
            },
            Pending::People { room: name },
        )]
    }

    /// The members of `room` as the page lists them. With sign-in on, each person once
    /// (every tab of theirs is a connection of its own) and not oneself (one's other
    /// tabs); without it, every other connection (names are unique then anyway).
    pub fn people(&self, room: &Room) -> Vec<User> {
        let mut people: Vec<User> = Vec::with_capacity(room.users.len());
        for user in &room.users {
            let repeated = people
                .last()
                .is_some_and(|last| same_name(&last.user_name, &user.user_name));
            let me = self
                .name
                .as_deref()
                .is_some_and(|name| same_name(name, &user.user_name));
            if !(self.auth && (repeated || me)) {
                people.push(user.clone());
            }
        }
        people
    }

    /// The recipient of what the composer sends: private messages only from the lobby.
    fn recipient_here(&self) -> Option<&Recipient> {
        self.recipient.as_ref().filter(|_| self.current == 0)
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
        // Signed in, a message to a person is kept for them while they are away.
        if let Some(Recipient {
            user_name,
            connection_id: None,
        }) = self.recipient_here().filter(|_| !self.auth)
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

    fn entry(&mut self, message_id: Option<String>, kind: EntryKind) -> Entry {
        let id = self.next_id;
        self.next_id += 1;
        Entry {
            id,
            version: 0,
            message_id,
            kind,
        }
    }

    /// Adds a notice to room `index`.
    fn system_in(&mut self, index: usize, text: String) {
        let entry = self.entry(
            None,
            EntryKind::System {
                text,
                divider: false,
            },
        );
        if let Some(room) = self.rooms.get_mut(index) {
            room.push(entry);
        }
    }

    /// Adds a notice about the connection to every room, so it is seen wherever one looks.
    fn system_everywhere(&mut self, text: &str) {
        for index in 0..self.rooms.len() {
            self.system_in(index, text.to_string());
        }
    }

    /// A frame with a fresh `requestId`, remembered with what its reply completes.
    fn request(&mut self, action: ClientAction, pending: Pending) -> Command {
        let request_id = self.next_request_id();
        self.pending.push((request_id.clone(), pending));
        Command::Send(
            ClientFrame {
                action,
                request_id: Some(request_id),
            }
            .to_json(),
        )
    }

    fn register_frame(&mut self, user_name: &str, resume_token: Option<String>) -> Command {
        self.request(
            ClientAction::Register {
                user_name: user_name.to_string(),
                resume_token,
            },
            Pending::Register {
                user_name: user_name.to_string(),
            },
        )
    }

    fn list_frame(&mut self) -> Command {
        let request_id = self.next_request_id();
        Command::Send(
            ClientFrame {
                action: ClientAction::List {
                    room: None,
                    cursor: None,
                },
                request_id: Some(request_id),
            }
            .to_json(),
        )
    }

    fn join_frame(&mut self, room: &str, show: bool) -> Command {
        self.request(
            ClientAction::Join {
                room: room.to_string(),
            },
            Pending::Join {
                room: room.to_string(),
                show,
            },
        )
    }

    fn history_frame(&mut self, room: &str, page: Page, from: Option<String>) -> Command {
        let (before, after) = match page {
            Page::Latest | Page::Conversation => (None, None),
            Page::Older => (from, None),
            Page::Gap => (None, from),
        };
        // A conversation is asked for by the other person's name.
        let (room, with) = match page {
            Page::Conversation => (None, Some(room.to_string())),
            _ => (Some(room.to_string()), None),
        };
        self.request(
            ClientAction::History {
                room,
                with,
                before,
                after,
                limit: None,
            },
            Pending::History { page },
        )
    }

    /// Fills room `name` in after a (re)registration: what came after the last message
    /// seen, or the newest messages when none was.
    fn catch_up(&mut self, name: &str) -> Option<Command> {
        let since = self.room_mut(name)?.since.take();
        let page = if since.is_some() {
            Page::Gap
        } else {
            Page::Latest
        };
        Some(self.history_frame(name, page, since))
    }

    /// What [`SESSION_STORAGE_KEY`] keeps: the name, its resume token and the rooms
    /// other than the lobby, one per line (room names have no white space).
    pub fn session(&self) -> String {
        let Some(name) = &self.name else {
            return String::new();
        };
        let mut text = format!("{name}\n{}", self.resume_token.as_deref().unwrap_or(""));
        for room in &self.rooms[1..] {
            text.push('\n');
            text.push_str(&room.name);
        }
        text
    }

    fn save_session(&self) -> Command {
        Command::SaveSession(self.session())
    }

    /// The page loaded with this tab's saved [`ChatState::session`]: back into the chat as
    /// that name, in those rooms, as after a reconnect. Anything unreadable is ignored.
    pub fn resume(&mut self, saved: &str) -> Vec<Command> {
        let mut lines = saved.lines();
        let Some(Ok(name)) = lines.next().map(validate_user_name) else {
            return Vec::new();
        };
        self.resume_token = lines
            .next()
            .filter(|token| !token.is_empty())
            .map(str::to_string);
        for room in lines.filter_map(|line| validate_room(line).ok()) {
            if self.room_index(&room).is_none() && self.rooms.len() < MAX_ROOMS_PER_CONNECTION {
                self.rooms.push(Room::new(&room));
            }
        }
        self.name = Some(name);
        self.screen = Screen::Chat;
        self.link = Link::Connecting;
        vec![Command::Connect]
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
        // A token only ever resumes automatically; a name typed in claims it afresh.
        self.resume_token = None;
        match self.link {
            Link::Open => vec![self.register_frame(&user_name, None)],
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
                let token = self.resume_token.clone();
                vec![self.register_frame(&name, token)]
            }
            _ => Vec::new(),
        }
    }

    /// The socket closed or failed to open. `random` is uniform in `[0, 1)`.
    pub fn socket_closed(&mut self, now_ms: f64, random: f64) -> Vec<Command> {
        let was_online = self.online();
        self.registered = false;
        self.my_id = None;
        let waiting = std::mem::take(&mut self.pending)
            .into_iter()
            .chain(std::mem::take(&mut self.queued));
        for (_, pending) in waiting {
            if let Pending::Message { entry, .. } = pending {
                self.set_delivery(
                    entry,
                    Delivery::Failed {
                        reason: "the connection dropped before the server confirmed it".into(),
                    },
                );
            }
        }
        for room in &mut self.rooms {
            room.loading = false;
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
            retry_at_ms: now_ms + f64::from(delay),
        };
        if was_online {
            self.system_everywhere("Connection lost. Reconnecting…");
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

    /// The user pressed Leave: close the socket, forget this tab's session and go back
    /// to the join screen.
    pub fn leave(&mut self) -> Vec<Command> {
        let name = self.name.clone();
        *self = ChatState {
            browser_online: self.browser_online,
            next_id: self.next_id,
            name,
            auth: self.auth,
            ..ChatState::new()
        };
        vec![Command::Close, Command::SaveSession(String::new())]
    }

    /// Sign-in is on and the shell has looked for tokens: `name` is who they say signed
    /// in, `None` when nobody is. A tab back from a reload as that name carries on; one
    /// signed in as somebody else, or not at all, starts afresh; a new sign-in joins.
    pub fn signed_in(&mut self, name: Option<&str>) -> Vec<Command> {
        self.auth = true;
        self.joining = false;
        let same = matches!((name, &self.name), (Some(a), Some(b)) if same_name(a, b));
        let mut commands = Vec::new();
        if self.screen == Screen::Chat {
            if same {
                return commands;
            }
            commands = self.leave();
        }
        if let Some(name) = name {
            commands.extend(self.join(name));
        }
        commands
    }

    /// Signing in failed (the issuer said no, or its answer was unusable).
    pub fn sign_in_failed(&mut self, reason: String) -> Vec<Command> {
        self.joining = false;
        self.join_error = Some(reason);
        Vec::new()
    }

    /// The ID token was renewed: an open socket is replaced by one that carries the new
    /// token (API Gateway checks it only at `$connect`), registering again as after a
    /// reconnect. A socket waiting to reconnect uses it when it does.
    pub fn token_renewed(&mut self) -> Vec<Command> {
        match self.link {
            Link::Open | Link::Connecting if self.screen == Screen::Chat => {
                self.link = Link::Connecting;
                self.registered = false;
                vec![Command::Connect]
            }
            _ => Vec::new(),
        }
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

    /// Shows room `name` and clears its unread count.
    pub fn show_room(&mut self, name: &str) {
        if let Some(index) = self.room_index(name) {
            self.current = index;
            self.rooms[index].unread = 0;
        }
    }

    /// The user asked to join the room typed as `raw`. Returns the commands and whether
    /// the text was taken (so the field clears); a name that cannot be joined is kept,
    /// with the reason in `room_error`.
    pub fn join_room(&mut self, raw: &str) -> (Vec<Command>, bool) {
        let room = match validate_room(raw.trim()) {
            Ok(room) => room,
            Err(refusal) => {
                self.room_error = Some(refusal.message);
                return (Vec::new(), false);
            }
        };
        self.room_error = None;
        if self.room_index(&room).is_some() {
            self.show_room(&room);
            return (Vec::new(), true);
        }
        if !self.online() {
            self.room_error = Some("Not connected; join the room once the chat is back".into());
            return (Vec::new(), false);
        }
        (vec![self.join_frame(&room, true)], true)
    }

    /// The user left room `name` (never the lobby): it goes from the list at once. Only
    /// while online: a rejoin with the resume token puts the new connection back in every
    /// room the old one was in, so a room left offline would quietly come back.
    pub fn leave_room(&mut self, name: &str) -> Vec<Command> {
        let Some(index) = self.room_index(name).filter(|&index| index > 0) else {
            return Vec::new();
        };
        if !self.online() {
            self.room_error = Some("Not connected; leave the room once the chat is back".into());
            return Vec::new();
        }
        self.rooms.remove(index);
        self.room_error = None;
        if self.current == index {
            self.current = 0;
        } else if self.current > index {
            self.current -= 1;
        }
        vec![
            self.save_session(),
            Command::Send(
                ClientFrame::new(ClientAction::Leave {
                    room: name.to_string(),
                })
                .to_json(),
            ),
        ]
    }

    /// The reader scrolled to the top of the transcript: ask for the page before it.
    pub fn load_older(&mut self) -> Vec<Command> {
        let room = self.room();
        if !self.online() || !room.more || room.loading {
            return Vec::new();
        }
        let (name, first) = (
            room.name.clone(),
            room.message_ids().next().map(str::to_string),
        );
        let Some(first) = first else {
            return Vec::new();
        };
        let index = self.current;
        self.rooms[index].loading = true;
        vec![self.history_frame(&name, Page::Older, Some(first))]
    }

    /// Picks the recipient: `None` for everyone, else a connection id from the lobby.
    pub fn set_recipient(&mut self, connection_id: Option<&str>) {
        self.recipient = connection_id.and_then(|id| {
            self.lobby()
                .users
                .iter()
                .find(|user| user.connection_id == id)
                .map(|user| Recipient {
                    user_name: user.user_name.clone(),
                    connection_id: Some(user.connection_id.clone()),
                })
        });
    }

    /// A click on a user in the list: private messages to them (in the lobby, where
    /// private messages are written), or back to everyone when they were already the
    /// recipient.
    pub fn toggle_recipient(&mut self, connection_id: &str) {
        let current = self
            .recipient_here()
            .and_then(|r| r.connection_id.as_deref());
        if current == Some(connection_id) {
            self.recipient = None;
        } else {
            self.set_recipient(Some(connection_id));
            if self.recipient.is_some() {
                self.show_room(LOBBY);
            }
        }
    }

    /// The composer's placeholder: says where the message goes.
    pub fn composer_placeholder(&self) -> String {
        match (self.recipient_here(), self.current) {
            (Some(recipient), _) => format!(
                "Private message to {}… (Enter sends, Shift+Enter adds a line)",
                recipient.user_name
            ),
            (None, 0) => "Message everyone… (Enter sends, Shift+Enter adds a line)".into(),
            (None, _) => format!(
                "Message #{}… (Enter sends, Shift+Enter adds a line)",
                self.room().name
            ),
        }
    }

    /// The user sends `draft` to the room shown. Returns the commands and whether the
    /// draft was taken (so the composer clears it); a draft that cannot go out is kept.
    pub fn send_message(&mut self, draft: &str, now_ms: f64) -> (Vec<Command>, bool) {
        if self.send_blocker(draft).is_some() {
            return (Vec::new(), false);
        }
        let Ok(text) = validate_message(draft) else {
            return (Vec::new(), false);
        };
        let recipient = self.recipient_here().cloned();
        // Signed in, a private message goes to the person (every tab of theirs, and kept
        // for them); otherwise to the one connection chosen.
        let receivers = recipient.as_ref().filter(|_| !self.auth).map(|recipient| {
            vec![ReceiverRef {
                connection_id: recipient.connection_id.clone().unwrap_or_default(),
                user_name: Some(recipient.user_name.clone()),
            }]
        });
        let to = recipient.map(|r| r.user_name);
        let to_person = to.clone().filter(|_| self.auth);
        let entry = self.entry(
            None,
            EntryKind::Message {
                sender: self.name.clone().unwrap_or_default(),
                text: text.clone(),
                timestamp_ms: now_ms,
                private: to.is_some(),
                own: true,
                to,
                delivery: Delivery::Pending,
            },
        );
        let entry_id = entry.id;
        let index = self.current;
        self.rooms[index].push(entry);
        // The lobby is the room a frame without one means: v1's frame, unchanged.
        let room = (index > 0).then(|| self.rooms[index].name.clone());
        let request_id = self.next_request_id();
        let frame = ClientFrame {
            action: ClientAction::Message {
                room,
                message: text,
                receivers,
                to: to_person,
                sender: None,
            },
            request_id: Some(request_id.clone()),
        }
        .to_json();
        self.queued.push((
            request_id,
            Pending::Message {
                entry: entry_id,
                frame,
            },
        ));
        (self.send_next_message(), true)
    }

    /// Sends the first queued own message, unless one is still waiting for its answer.
    fn send_next_message(&mut self) -> Vec<Command> {
        let in_flight = self
            .pending
            .iter()
            .any(|(_, pending)| matches!(pending, Pending::Message { .. }));
        if in_flight || self.queued.is_empty() {
            return Vec::new();
        }
        let (request_id, next) = self.queued.remove(0);
        let Pending::Message { frame, .. } = &next else {
            return Vec::new();
        };
        let commands = vec![
            Command::Send(frame.clone()),
            Command::AnswerDue {
                request_id: request_id.clone(),
                delay_ms: ANSWER_WAIT_MS,
            },
        ];
        self.pending.push((request_id, next));
        commands
    }

    /// An own message's answer is overdue: when the handler failed (a Lambda timeout,
    /// say), API Gateway answers with a frame that does not name the request, so the
    /// message is marked not sent and the next one goes.
    pub fn answer_overdue(&mut self, request_id: &str) -> Vec<Command> {
        let Some(at) = self.pending.iter().position(|(id, pending)| {
            id == request_id && matches!(pending, Pending::Message { .. })
        }) else {
            return Vec::new();
        };
        if let (_, Pending::Message { entry, .. }) = self.pending.remove(at) {
            self.set_delivery(
                entry,
                Delivery::Failed {
                    reason: "the server did not answer".into(),
                },
            );
        }
        self.send_next_message()
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

    fn find_entry(&mut self, entry_id: u64) -> Option<(usize, usize)> {
        self.rooms.iter().enumerate().find_map(|(r, room)| {
            room.entries
                .iter()
                .position(|e| e.id == entry_id)
                .map(|at| (r, at))
        })
    }

    fn set_delivery(&mut self, entry_id: u64, new: Delivery) {
        if let Some((r, at)) = self.find_entry(entry_id) {
            let entry = &mut self.rooms[r].entries[at];
            if let EntryKind::Message { delivery, .. } = &mut entry.kind {
                *delivery = new;
                entry.version += 1;
            }
        }
    }

    /// The server acknowledged an own message: it takes the server's id and time. When a
    /// history page brought it first, that copy stays where time puts it and becomes the
    /// own line.
    fn on_sent(&mut self, entry_id: u64, message_id: String, server_ms: f64, delivered: u32) {
        let Some((r, at)) = self.find_entry(entry_id) else {
            return;
        };
        let room = &mut self.rooms[r];
        let keep = if room.has(&message_id) {
            room.entries.remove(at);
            room.entries
                .iter()
                .position(|e| e.message_id.as_deref() == Some(message_id.as_str()))
                .unwrap_or_default()
        } else {
            at
        };
        if let Some(entry) = room.entries.get_mut(keep) {
            entry.message_id = Some(message_id);
            entry.version += 1;
            if let EntryKind::Message {
                timestamp_ms,
                delivery,
                own,
                ..
            } = &mut entry.kind
            {
                *timestamp_ms = server_ms;
                *delivery = Delivery::Sent { delivered };
                *own = true;
            }
        }
        // Messages that were stored before this one but pushed while it waited for its
        // answer came in below it; the room's order is the server's (ids sort by time),
        // so it moves down past them, as every other page shows it.
        let mut at = keep;
        while at + 1 < room.entries.len() && stored_before(&room.entries[at + 1], &room.entries[at])
        {
            room.entries.swap(at, at + 1);
            at += 1;
        }
    }

    fn take_pending(&mut self, request_id: Option<&str>) -> Option<Pending> {
        let request_id = request_id?;
        let index = self.pending.iter().position(|(id, _)| id == request_id)?;
        Some(self.pending.remove(index).1)
    }

    /// A `message` event as a transcript line: its room, and the line keyed by its id.
    /// Own messages are known by name too, as those in history came from earlier
    /// connections.
    fn message_entry(&mut self, event: ServerEvent) -> Option<(String, Entry)> {
        let ServerEvent::Message {
            room,
            sender,
            sender_id,
            message,
            message_id,
            timestamp,
            private,
            to,
            ..
        } = event
        else {
            return None;
        };
        let own = self.my_id.as_deref() == Some(sender_id.as_str())
            || self.name.as_deref() == Some(sender.as_str());
        // Messages to a person (their `room` is the conversation's id) are shown in the
        // lobby, with the other private messages.
        let room = if to.is_some() {
            LOBBY.to_string()
        } else {
            room
        };
        let entry = self.entry(
            Some(message_id),
            EntryKind::Message {
                sender,
                text: message,
                timestamp_ms: timestamp as f64,
                private,
                own,
                to: to.filter(|_| own),
                delivery: Delivery::Received,
            },
        );
        Some((room, entry))
    }

    /// A text frame arrived from the server.
    pub fn frame(&mut self, text: &str) -> Vec<Command> {
        let Some((request_id, event)) = decode(text) else {
            // A newer server may send events this client does not know: ignore them.
            return Vec::new();
        };
        let pending = self.take_pending(request_id.as_deref());
        match event {
            ServerEvent::Registered {
                user_name,
                connection_id,
                resume_token,
                conversations,
            } => {
                let mut commands =
                    self.on_registered(user_name, connection_id, resume_token, pending.as_ref());
                // Signed in: the newest conversations, so what came while away shows.
                for conversation in conversations
                    .unwrap_or_default()
                    .into_iter()
                    .take(CONVERSATIONS_FETCHED)
                {
                    if !self.rooms[0].has(&conversation.last_message_id) {
                        commands.push(self.history_frame(
                            &conversation.with,
                            Page::Conversation,
                            None,
                        ));
                    }
                }
                commands
            }
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
                    if let Some(request_id) = request_id {
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
                let mut commands = self.on_error(code, message, pending);
                commands.extend(self.send_next_message());
                commands
            }
            ServerEvent::Sent {
                message_id,
                timestamp,
                delivered,
            } => {
                if let Some(Pending::Message { entry, .. }) = pending {
                    self.on_sent(entry, message_id, timestamp as f64, delivered);
                }
                self.send_next_message()
            }
            ServerEvent::List {
                room,
                users,
                cursor,
                count,
            } => {
                if matches!(pending, Some(Pending::People { .. })) {
                    if let Some(target) = self.room_mut(&room) {
                        for user in users {
                            target.insert_user(user);
                        }
                    }
                } else {
                    self.set_members(&room, users);
                }
                self.set_paging(&room, cursor, count);
                Vec::new()
            }
            ServerEvent::Joined {
                room,
                users,
                cursor,
                count,
            } => {
                let commands = self.on_joined(&room, users, pending.as_ref());
                self.set_paging(&room, cursor, count);
                commands
            }
            ServerEvent::Members { room, count } => {
                if let Some(target) = self.room_mut(&room) {
                    target.member_count = Some(count);
                }
                Vec::new()
            }
            ServerEvent::Left { .. } | ServerEvent::Pong {} => Vec::new(),
            ServerEvent::History {
                room,
                messages,
                more,
                ..
            } => match pending {
                Some(Pending::History {
                    page: Page::Conversation,
                }) => self.on_history(LOBBY, messages, false, Page::Conversation),
                Some(Pending::History { page }) => self.on_history(&room, messages, more, page),
                _ => Vec::new(),
            },
            ServerEvent::NewUser {
                room,
                user_name,
                connection_id,
            } => {
                self.on_new_user(&room, &user_name, connection_id);
                Vec::new()
            }
            ServerEvent::UserExit {
                room,
                user_name,
                connection_id,
            } => {
                self.on_user_exit(&room, &user_name, &connection_id);
                Vec::new()
            }
            event @ ServerEvent::Message { .. } => {
                if let Some((room, entry)) = self.message_entry(event) {
                    let current = self.current;
                    if let Some(index) = self.room_index(&room) {
                        let room = &mut self.rooms[index];
                        if !room.has(entry.message_id.as_deref().unwrap_or_default()) {
                            if index != current {
                                room.unread += 1;
                            }
                            room.insert_in_order(entry);
                        }
                    }
                }
                Vec::new()
            }
        }
    }

    fn on_registered(
        &mut self,
        user_name: String,
        connection_id: String,
        resume_token: Option<String>,
        pending: Option<&Pending>,
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
        self.resume_token = resume_token;
        self.screen = Screen::Chat;
        for room in &mut self.rooms {
            let last = room.message_ids().next_back().map(str::to_string);
            room.since = last;
            room.marked = false;
        }
        if rejoined {
            self.system_everywhere(&format!("Back online as {user_name}."));
        } else {
            self.system_in(0, format!("You joined as {user_name}."));
        }
        let mut commands = vec![
            Command::SaveName(user_name),
            self.save_session(),
            self.list_frame(),
        ];
        commands.extend(self.catch_up(LOBBY));
        // The server put this connection in the lobby only: the other rooms are joined
        // again, and each catches up once it is in.
        let others: Vec<String> = self.rooms[1..].iter().map(|r| r.name.clone()).collect();
        for room in others {
            commands.push(self.join_frame(&room, false));
        }
        commands
    }

    fn on_joined(
        &mut self,
        room: &str,
        users: Vec<User>,
        pending: Option<&Pending>,
    ) -> Vec<Command> {
        let show = matches!(pending, Some(Pending::Join { show: true, .. }));
        if self.room_index(room).is_none() {
            // Left while its rejoin was on the way: the `leave` went after the `join`,
            // so the server agrees it is left.
            if !show {
                return Vec::new();
            }
            self.rooms.push(Room::new(room));
        }
        self.set_members(room, users);
        if show {
            self.show_room(room);
        }
        let mut commands = vec![self.save_session()];
        commands.extend(self.catch_up(room));
        commands
    }

    fn on_history(
        &mut self,
        name: &str,
        messages: Vec<ServerEvent>,
        more: bool,
        page: Page,
    ) -> Vec<Command> {
        let Some(index) = self.room_index(name) else {
            return Vec::new();
        };
        let last = messages.last().and_then(|m| match m {
            ServerEvent::Message { message_id, .. } => Some(message_id.clone()),
            _ => None,
        });
        let mut fresh = Vec::new();
        for message in messages {
            if let Some((_, entry)) = self.message_entry(message) {
                fresh.push(entry);
            }
        }
        let mut divider = (page == Page::Gap && !self.rooms[index].marked).then(|| {
            self.entry(
                None,
                EntryKind::System {
                    text: AWAY_TEXT.into(),
                    divider: true,
                },
            )
        });
        let shown = index == self.current;
        let room = &mut self.rooms[index];
        let mut front = 0;
        for entry in fresh {
            if room.has(entry.message_id.as_deref().unwrap_or_default()) {
                continue;
            }
            // An own message whose `sent` was lost with the socket was stored all the
            // same: it is the line already shown as not sent, not a second one.
            if room.confirm_lost_ack(&entry) {
                continue;
            }
            let own = matches!(entry.kind, EntryKind::Message { own: true, .. });
            match page {
                Page::Older => {
                    room.entries.insert(front, entry);
                    front += 1;
                }
                Page::Latest => {
                    room.insert_in_order(entry);
                }
                Page::Conversation => {
                    room.insert_in_order(entry);
                    if !shown && !own {
                        room.unread += 1;
                    }
                }
                Page::Gap => {
                    let at = room.insert_in_order(entry);
                    // Only a gap that held messages is marked.
                    if let Some(divider) = divider.take() {
                        room.entries.insert(at, divider);
                        room.marked = true;
                    }
                    if !shown && !own {
                        room.unread += 1;
                    }
                }
            }
        }
        match page {
            Page::Gap if more => vec![self.history_frame(name, Page::Gap, last)],
            Page::Gap | Page::Conversation => Vec::new(),
            Page::Latest | Page::Older => {
                room.more = more;
                room.loading = false;
                Vec::new()
            }
        }
    }

    fn on_error(
        &mut self,
        code: ErrorCode,
        message: String,
        pending: Option<Pending>,
    ) -> Vec<Command> {
        match pending {
            Some(Pending::Register { user_name }) => {
                self.joining = false;
                if self.screen == Screen::Chat {
                    // Registering again after a reconnect or reload failed (the name was
                    // taken meanwhile): back to the join screen with the reason.
                    *self = ChatState {
                        browser_online: self.browser_online,
                        next_id: self.next_id,
                        link: self.link,
                        name: Some(user_name.clone()),
                        join_error: Some(format!("Could not rejoin as {user_name}: {message}")),
                        auth: self.auth,
                        ..ChatState::new()
                    };
                    return vec![Command::SaveSession(String::new())];
                }
                self.join_error = Some(message);
            }
            Some(Pending::Message { entry, .. }) => {
                self.set_delivery(entry, Delivery::Failed { reason: message });
            }
            Some(Pending::Join { room, .. }) => {
                // A room rejoined after a reconnect that cannot be is dropped too.
                if let Some(index) = self.room_index(&room).filter(|&index| index > 0) {
                    self.rooms.remove(index);
                    if self.current >= index {
                        self.current = 0;
                    }
                }
                self.room_error = Some(if code == ErrorCode::LimitReached {
                    format!(
                        "Could not join #{room}: you are in {MAX_ROOMS_PER_CONNECTION} rooms, the most there can be. Leave one first."
                    )
                } else {
                    format!("Could not join #{room}: {message}")
                });
                return vec![self.save_session()];
            }
            // The list stays as it is; "Show more" asks again.
            Some(Pending::People { .. }) => {}
            Some(Pending::History { .. }) => {
                // The page stays as it is; scrolling up asks again.
                for room in &mut self.rooms {
                    room.loading = false;
                }
            }
            None => {
                if self.screen == Screen::Chat {
                    let current = self.current;
                    self.system_in(current, format!("Server error ({code}): {message}"));
                }
            }
        }
        Vec::new()
    }

    /// A big room's count and next page, as a `list` or `joined` reply gave them.
    fn set_paging(&mut self, room: &str, cursor: Option<String>, count: Option<u64>) {
        if let Some(target) = self.room_mut(room) {
            target.more_people = cursor;
            target.member_count = count;
        }
    }

    fn set_members(&mut self, room: &str, users: Vec<User>) {
        let me = self.my_id.clone();
        let Some(target) = self.room_mut(room) else {
            return;
        };
        target.users.clear();
        for user in users {
            if me.as_deref() != Some(user.connection_id.as_str()) {
                target.insert_user(user);
            }
        }
        if room == LOBBY {
            self.refresh_recipient();
        }
    }

    /// Points the recipient at their connection in the lobby: the same one (under a new
    /// name after a rename), else the one with their name (after either side reconnected),
    /// else none while they are away.
    fn refresh_recipient(&mut self) {
        let lobby = &self.rooms[0].users;
        if let Some(recipient) = &mut self.recipient {
            let user = lobby
                .iter()
                .find(|u| recipient.connection_id.as_deref() == Some(u.connection_id.as_str()))
                .or_else(|| {
                    lobby
                        .iter()
                        .find(|u| same_name(&u.user_name, &recipient.user_name))
                });
            recipient.connection_id = user.map(|u| u.connection_id.clone());
            if let Some(user) = user {
                recipient.user_name = user.user_name.clone();
            }
        }
    }

    fn on_new_user(&mut self, room: &str, user_name: &str, connection_id: String) {
        if self.my_id.as_deref() == Some(connection_id.as_str()) {
            return;
        }
        let Some(index) = self.room_index(room) else {
            return;
        };
        // A rename arrives as a `newUser` for a known connection.
        let target = &mut self.rooms[index];
        let known = target
            .users
            .iter()
            .any(|u| u.connection_id == connection_id);
        if let Some(count) = target.member_count.as_mut().filter(|_| !known) {
            *count += 1;
        }
        self.rooms[index].insert_user(User {
            user_name: user_name.to_string(),
            connection_id,
        });
        if index == 0 {
            self.refresh_recipient();
        }
        if self.screen == Screen::Chat {
            self.system_in(index, format!("{user_name} joined"));
        }
    }

    fn on_user_exit(&mut self, room: &str, user_name: &str, connection_id: &str) {
        let Some(index) = self.room_index(room) else {
            return;
        };
        let target = &mut self.rooms[index];
        if let Some(count) = target.member_count.as_mut() {
            *count = count.saturating_sub(1);
        }
        let users = &mut target.users;
        let before = users.len();
        users.retain(|user| user.connection_id != connection_id);
        let gone = users.len() != before;
        if index == 0 {
            self.refresh_recipient();
        }
        if gone && self.screen == Screen::Chat {
            self.system_in(index, format!("{user_name} left"));
        }
    }
}

/// A server frame's `requestId` and event; `None` for text that is not a frame this
/// client knows.
fn decode(text: &str) -> Option<(Option<String>, ServerEvent)> {
    let frame = read_server_frame(text)?;
    Some((frame.request_id, frame.event))
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
    // Not through [`query_param`]: that one is only in builds with sign-in.
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "ws")
        .map(|(_, value)| percent_decode(value))
        .filter(|url| is_ws_url(url))
}

/// The decoded value of `key` in a query string (`location.search`).
pub fn query_param(search: &str, key: &str) -> Option<String> {
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, value)| percent_decode(value))
}

/// What the page's `config.json` says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UiConfig {
    /// `websocketUrl`, when it names a `ws://` or `wss://` URL.
    pub websocket_url: Option<String>,
    /// `allowWsOverride`: whether `?ws=` in the page URL may pick another server.
    pub allow_ws_override: bool,
}

/// Where to sign in (`config.json`'s `auth`): an OpenID Connect issuer's authorization
/// code flow with PKCE, as Cognito's hosted UI and `webchat-local --auth dev` run it.
///
/// The JSON the sign-in reads (this, the token endpoint's answer, the ID token's
/// claims) is parsed by the browser's `JSON.parse` in the shell, which hands the fields
/// over: serde's derived readers for them cost more of the download than all the rest
/// of the sign-in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The token issuer (`iss`).
    pub issuer: String,
    /// The app client id tokens are issued for.
    pub client_id: String,
    /// Where the browser is sent to sign in (the authorization endpoint).
    pub authorize_url: String,
    /// Where a code or refresh token is exchanged for tokens.
    pub token_url: String,
    /// The issuer's logout endpoint (`logoutUrl`), when it has one: Sign out ends the
    /// issuer's session there too, so the next Sign in on a shared computer asks again.
    pub logout_url: Option<String>,
}

impl AuthConfig {
    /// From `auth`'s `issuer`, `clientId`, `authorizeUrl` and `tokenUrl`: all four must
    /// be there, and the URLs http(s).
    pub fn from_fields(
        issuer: Option<String>,
        client_id: Option<String>,
        authorize_url: Option<String>,
        token_url: Option<String>,
    ) -> Option<AuthConfig> {
        Some(AuthConfig {
            issuer: issuer.filter(|i| !i.is_empty())?,
            client_id: client_id.filter(|c| !c.is_empty())?,
            authorize_url: http_url(authorize_url)?,
            token_url: http_url(token_url)?,
            logout_url: None,
        })
    }

    /// With `auth`'s `logoutUrl`, when it is an http(s) URL.
    #[must_use]
    pub fn with_logout_url(mut self, logout_url: Option<String>) -> AuthConfig {
        self.logout_url = http_url(logout_url);
        self
    }
}

/// `url` when it is an http(s) URL: the page never follows any other kind from config.
fn http_url(url: Option<String>) -> Option<String> {
    url.filter(|u| u.starts_with("https://") || u.starts_with("http://"))
}

/// Where Sign out sends the browser when the issuer has a logout endpoint, to come back
/// to `return_to`: Cognito's `/logout` reads `client_id` and `logout_uri`, an OpenID
/// Connect `end_session_endpoint` `client_id` and `post_logout_redirect_uri`; each
/// ignores the other's.
pub fn logout_url(auth: &AuthConfig, return_to: &str) -> Option<String> {
    let endpoint = auth.logout_url.as_deref()?;
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    Some(format!(
        "{endpoint}{separator}{}",
        form_encode(&[
            ("client_id", &auth.client_id),
            ("logout_uri", return_to),
            ("post_logout_redirect_uri", return_to),
        ])
    ))
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

/// The sign-in's tokens as kept in sessionStorage.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    /// The ID token `$connect` is given (`?token=`).
    pub id_token: String,
    /// Renews the ID token without signing in again, when the issuer gave one.
    pub refresh_token: Option<String>,
    /// When the ID token expires, by this browser's clock (from `expires_in`, so a
    /// clock set wrong does not matter). Whole milliseconds: formatting or parsing an
    /// `f64` would add std's float code, over 30 KB, to the download.
    pub expires_ms: u64,
}

impl Tokens {
    /// The token endpoint's answer (its `id_token`, `refresh_token` and `expires_in`)
    /// at `now_ms`. A refresh answer carries no refresh token: `kept` is the one to keep
    /// then.
    pub fn from_answer(
        id_token: Option<String>,
        refresh_token: Option<String>,
        expires_in: Option<f64>,
        now_ms: u64,
        kept: Option<String>,
    ) -> Option<Tokens> {
        Some(Tokens {
            id_token: id_token.filter(|t| !t.is_empty())?,
            refresh_token: refresh_token.or(kept),
            expires_ms: now_ms + expires_in.unwrap_or(3600.0) as u64 * 1000,
        })
    }

    /// One per line: the ID token, the refresh token (or nothing), the expiry.
    pub fn to_storage(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.id_token,
            self.refresh_token.as_deref().unwrap_or(""),
            self.expires_ms
        )
    }

    /// Reads what [`Tokens::to_storage`] wrote; `None` for anything else.
    pub fn from_storage(text: &str) -> Option<Tokens> {
        let mut lines = text.lines();
        let id_token = lines.next().filter(|t| !t.is_empty())?.to_string();
        let refresh_token = lines.next().filter(|t| !t.is_empty()).map(str::to_string);
        let expires_ms = lines.next()?.parse().ok()?;
        Some(Tokens {
            id_token,
            refresh_token,
            expires_ms,
        })
    }

    /// The ID token's claims, as JSON text. The signature is the server's to check, not
    /// the page's.
    pub fn claims(&self) -> Option<String> {
        let payload = base64url_decode(self.id_token.split('.').nth(1)?)?;
        Some(String::from_utf8_lossy(&payload).into_owned())
    }

    /// How long to wait at `now_ms` before renewing: until [`RENEW_BEFORE_MS`] before
    /// expiry, but at least half the time left and at least 5 s.
    pub fn renew_delay_ms(&self, now_ms: u64) -> u32 {
        let left = self.expires_ms.saturating_sub(now_ms);
        left.saturating_sub(RENEW_BEFORE_MS)
            .max(left / 2)
            .clamp(5_000, i32::MAX as u64) as u32
    }
}

/// The name to register from the ID token's claims: its `preferred_username`, else its
/// `cognito:username`, if it is a usable user name.
pub fn claims_name(
    preferred_username: Option<String>,
    cognito_username: Option<String>,
) -> Option<String> {
    validate_user_name(&preferred_username.or(cognito_username)?).ok()
}

/// `data` in base64url without padding, as PKCE and JWTs write it.
pub fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Reads base64url, padded or not; `None` for any other character.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

/// `key=value&…`, form-encoded.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        for byte in value.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(byte as char);
                }
                _ => {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    out.push('%');
                    out.push(HEX[(byte >> 4) as usize] as char);
                    out.push(HEX[(byte & 15) as usize] as char);
                }
            }
        }
    }
    out
}

/// Where Sign in sends the browser: the issuer's authorization endpoint asking for a
/// code (PKCE S256) to come back to `redirect_uri` with `state`.
pub fn authorize_url(
    auth: &AuthConfig,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> String {
    let separator = if auth.authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!(
        "{}{separator}{}",
        auth.authorize_url,
        form_encode(&[
            ("response_type", "code"),
            ("client_id", &auth.client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid"),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
    )
}

/// The token request for `code`, proved with the PKCE `verifier`.
pub fn code_exchange_form(
    auth: &AuthConfig,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> String {
    form_encode(&[
        ("grant_type", "authorization_code"),
        ("client_id", &auth.client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ])
}

/// The token request renewing the ID token with `refresh_token`.
pub fn refresh_form(auth: &AuthConfig, refresh_token: &str) -> String {
    form_encode(&[
        ("grant_type", "refresh_token"),
        ("client_id", &auth.client_id),
        ("refresh_token", refresh_token),
    ])
}

/// The page came back from the issuer: `Some` when its query string (`location.search`)
/// has a `code` or an `error`. `Ok` holds the code and the PKCE verifier of the sign-in
/// this tab started ([`SIGN_IN_STORAGE_KEY`]'s `saved`); a `state` that is not that
/// sign-in's is refused, so a link cannot sign the page in as someone else.
pub fn sign_in_callback(
    search: &str,
    saved: Option<&str>,
) -> Option<Result<(String, String), String>> {
    let code = query_param(search, "code");
    if code.is_none() {
        return query_param(search, "error").map(|error| {
            Err(match query_param(search, "error_description") {
                Some(description) => format!("Sign-in failed: {description}"),
                None => format!("Sign-in failed: {error}"),
            })
        });
    }
    let state = query_param(search, "state");
    Some(
        match (code, saved.and_then(|saved| saved.split_once('\n'))) {
            (Some(code), Some((saved_state, verifier)))
                if state.as_deref() == Some(saved_state) =>
            {
                Ok((code, verifier.to_string()))
            }
            _ => {
                Err("Sign-in failed: the answer was not for this page's sign-in. Try again.".into())
            }
        },
    )
}

/// The query string without the sign-in's answer (`code`, `state`, `error`…), for
/// `history.replaceState`: `""` when nothing else is left.
pub fn without_sign_in_params(search: &str) -> String {
    let kept: Vec<&str> = search
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !pair.is_empty()
                && !matches!(
                    key,
                    "code" | "state" | "error" | "error_description" | "session_state"
                )
        })
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// Whether `a` is a stored message that the server stored before the stored message `b`:
/// message ids sort by time.
fn stored_before(a: &Entry, b: &Entry) -> bool {
    matches!((&a.message_id, &b.message_id), (Some(a), Some(b)) if a < b)
}

#[cfg(test)]
mod tests;
