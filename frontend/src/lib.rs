//! The webchat browser UI: the page's elements kept in step with the plain-Rust state
//! machine in [`state`], and the browser shell ([`shell`]) that carries out its commands
//! with a WebSocket, timers and storage.
//!
//! The DOM is written directly (web-sys) rather than through a UI framework: the state
//! machine already decides everything, so all the view has to do is put each state on
//! the page, and a framework's reactive graph and view types were most of the download
//! (docs/frontend.md has the measured sizes). [`render`] runs after every state change
//! and writes only what differs from what is on the page ([`Slot`], and rows keyed by
//! entry id and version), so focus, selections and scroll positions are left alone.
//!
//! Everything from the network is written as text; nothing is ever inserted as HTML.

pub mod shell;
pub mod state;

use state::{counter_text, enter_sends, Chat, Delivery, Entry, EntryKind, Recipient, Screen};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, Event, HtmlElement, Node};
use webchat_shared_types::{User, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_ROOM_CHARS};

/// Mounts the app into the page's body and starts the shell. Called once, by `main`.
pub fn start() {
    let Some(body) = shell::document().body() else {
        return;
    };
    let root = add(&body, "main", &[("class", "app")]);
    VIEW.with_borrow_mut(|view| {
        view.root = Some(root);
        view.name_draft = shell::load_name().unwrap_or_default();
    });
    shell::start();
    shell::with_chat(render);
}

/// What is on the page, and the view's own state (drafts, scrolling) that the chat state
/// does not hold.
#[derive(Default)]
struct View {
    root: Option<Element>,
    join: Option<JoinScreen>,
    chat: Option<ChatScreen>,
    /// The name field's text, kept while the chat screen is shown.
    name_draft: String,
    /// The composer's text.
    draft: String,
    /// The transcript sticks to its end (false once the reader scrolls up).
    following: bool,
    /// New lines below while the reader is scrolled up.
    unseen: usize,
    /// The transcript's height when an older page was asked for: once it is in, the lines
    /// being read are put back where they were.
    height_before: i32,
    /// The first and last entry ids of the transcript as last rendered.
    ends: (Option<u64>, Option<u64>),
}

thread_local! {
    static VIEW: RefCell<View> = RefCell::new(View {
        following: true,
        ..View::default()
    });
}

/// One piece of text or one attribute on the page, written only when it changes.
struct Slot {
    element: Element,
    /// The attribute, or `None` for the element's text.
    attribute: Option<&'static str>,
    shown: Option<String>,
}

impl Slot {
    fn text(element: &Element) -> Slot {
        Slot {
            element: element.clone(),
            attribute: None,
            shown: None,
        }
    }

    fn attr(element: &Element, attribute: &'static str) -> Slot {
        Slot {
            element: element.clone(),
            attribute: Some(attribute),
            shown: None,
        }
    }

    fn set(&mut self, value: &str) {
        if self.shown.as_deref() == Some(value) {
            return;
        }
        match self.attribute {
            None => self.element.set_text_content(Some(value)),
            Some(name) => {
                let _ = self.element.set_attribute(name, value);
            }
        }
        self.shown = Some(value.to_string());
    }

    /// A boolean attribute (`hidden`, `disabled`): present when `on`.
    fn flag(&mut self, on: bool) {
        let value = if on { "1" } else { "" };
        if self.shown.as_deref() == Some(value) {
            return;
        }
        if let Some(name) = self.attribute {
            let _ = self.element.toggle_attribute_with_force(name, on);
        }
        self.shown = Some(value.to_string());
    }
}

/// A new `tag` element with `attributes`, not yet on the page.
fn make(tag: &str, attributes: &[(&str, &str)]) -> Element {
    let element = shell::document()
        .create_element(tag)
        .expect_throw("createElement");
    for (name, value) in attributes {
        let _ = element.set_attribute(name, value);
    }
    element
}

/// [`make`], put at the end of `parent`.
fn add(parent: &Node, tag: &str, attributes: &[(&str, &str)]) -> Element {
    let element = make(tag, attributes);
    let _ = parent.append_child(&element);
    element
}

/// [`add`] with text in it.
fn add_text(parent: &Node, tag: &str, attributes: &[(&str, &str)], text: &str) -> Element {
    let element = add(parent, tag, attributes);
    element.set_text_content(Some(text));
    element
}

/// Calls `handler` on each `event` at `target`, for the page's lifetime. Boxed, so every
/// handler shares one copy of the glue.
fn on(target: &Element, event: &str, handler: Box<dyn FnMut(Event)>) {
    let closure = Closure::wrap(handler);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    closure.forget();
}

/// Like [`on`], for a submitted form: the page stays put.
fn on_submit(form: &Element, mut handler: Box<dyn FnMut()>) {
    on(
        form,
        "submit",
        Box::new(move |event: Event| {
            event.prevent_default();
            handler();
        }),
    );
}

/// For a click inside a list: the `attribute` of the nearest `selector` around what was
/// clicked, if there is one.
fn clicked(event: &Event, selector: &str, attribute: &str) -> Option<String> {
    event
        .target()?
        .dyn_into::<Element>()
        .ok()?
        .closest(selector)
        .ok()??
        .get_attribute(attribute)
}

fn focus(element: &Element) {
    if let Some(element) = element.dyn_ref::<HtmlElement>() {
        let _ = element.focus();
    }
}

/// The `value` of a form field (input, textarea or select).
fn value(field: &Element) -> String {
    js_sys::Reflect::get(field, &"value".into())
        .ok()
        .and_then(|value| value.as_string())
        .unwrap_or_default()
}

fn set_value(field: &Element, text: &str) {
    let _ = js_sys::Reflect::set(field, &"value".into(), &text.into());
}

/// `"true"` or `"false"`, for ARIA states and data attributes.
fn yes(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

/// Puts `chat` on the page. Runs after every state change, and every second for the
/// reconnect countdown.
pub fn render(chat: &Chat) {
    VIEW.with_borrow_mut(|view| {
        let Some(root) = view.root.clone() else {
            return;
        };
        match chat.screen {
            Screen::Join => {
                if let Some(screen) = view.chat.take() {
                    screen.element.remove();
                }
                view.join
                    .get_or_insert_with(|| JoinScreen::build(&root, &view.name_draft))
                    .render(chat);
            }
            Screen::Chat => {
                if let Some(screen) = view.join.take() {
                    screen.element.remove();
                }
                if view.chat.is_none() {
                    view.chat = Some(ChatScreen::build(&root, &view.draft));
                    view.ends = (None, None);
                    view.following = true;
                    view.unseen = 0;
                }
                let View {
                    chat: screen,
                    draft,
                    ..
                } = view;
                if let Some(screen) = screen {
                    screen.render(chat, draft);
                }
                view.follow(chat);
            }
        }
    });
}

/// Runs `f` on the view state, then renders.
fn with_view(f: impl FnOnce(&mut View)) {
    VIEW.with_borrow_mut(f);
    shell::with_chat(render);
}

/// The join screen: the name form, or with sign-in on (`config.json`'s `auth`) the
/// Sign in button, the name being the ID token's. Both are always there, one hidden.
struct JoinScreen {
    element: Element,
    lead: Slot,
    form_hidden: Slot,
    input_invalid: Slot,
    join_disabled: Slot,
    join_label: Slot,
    error: Slot,
    sign_in: SignInButton,
}

/// The Sign in button and its error line.
struct SignInButton {
    hidden: Slot,
    disabled: Slot,
    label: Slot,
    error: Slot,
}

impl JoinScreen {
    fn build(root: &Element, name_draft: &str) -> JoinScreen {
        let section = add(
            root,
            "section",
            &[
                ("class", "join"),
                ("data-testid", "join-screen"),
                ("aria-labelledby", "join-title"),
            ],
        );
        add_text(&section, "h1", &[("id", "join-title")], "Webchat");
        let lead = add(&section, "p", &[("class", "lead")]);
        let sign_in = {
            let wrap = add(&section, "div", &[("class", "sign-in"), ("hidden", "")]);
            let button = add(
                &wrap,
                "button",
                &[("type", "button"), ("data-testid", "sign-in-button")],
            );
            on(&button, "click", Box::new(|_| shell::sign_in()));
            let error = add(
                &wrap,
                "p",
                &[
                    ("class", "error"),
                    ("role", "alert"),
                    ("data-testid", "sign-in-error"),
                ],
            );
            SignInButton {
                hidden: Slot::attr(&wrap, "hidden"),
                disabled: Slot::attr(&button, "disabled"),
                label: Slot::text(&button),
                error: Slot::text(&error),
            }
        };
        let form = add(
            &section,
            "form",
            &[("data-testid", "join-form"), ("novalidate", "")],
        );
        add_text(&form, "label", &[("for", "name-input")], "Your name");
        let row = add(&form, "div", &[("class", "row")]);
        let max = MAX_NAME_CHARS.to_string();
        let input = add(
            &row,
            "input",
            &[
                ("id", "name-input"),
                ("data-testid", "name-input"),
                ("type", "text"),
                ("autocomplete", "nickname"),
                ("maxlength", &max),
                ("aria-describedby", "join-error"),
            ],
        );
        set_value(&input, name_draft);
        let field = input.clone();
        on(
            &input,
            "input",
            Box::new(move |_| {
                let text = value(&field);
                VIEW.with_borrow_mut(|view| view.name_draft = text);
            }),
        );
        let button = add(
            &row,
            "button",
            &[("type", "submit"), ("data-testid", "join-button")],
        );
        let error = add(
            &form,
            "p",
            &[
                ("id", "join-error"),
                ("class", "error"),
                ("role", "alert"),
                ("data-testid", "join-error"),
            ],
        );
        on_submit(
            &form,
            Box::new(|| {
                let name = VIEW.with_borrow(|view| view.name_draft.clone());
                shell::dispatch(move |c| c.join(&name));
            }),
        );
        focus(&input);
        JoinScreen {
            element: section,
            lead: Slot::text(&lead),
            form_hidden: Slot::attr(&form, "hidden"),
            input_invalid: Slot::attr(&input, "aria-invalid"),
            join_disabled: Slot::attr(&button, "disabled"),
            join_label: Slot::text(&button),
            error: Slot::text(&error),
            sign_in,
        }
    }

    fn render(&mut self, chat: &Chat) {
        let error = chat.join_error.as_deref().unwrap_or_default();
        let auth = chat.auth;
        let sign_in = &mut self.sign_in;
        sign_in.hidden.flag(!auth);
        sign_in.disabled.flag(chat.joining);
        sign_in.label.set(if chat.joining {
            "Signing in…"
        } else {
            "Sign in"
        });
        sign_in.error.set(error);
        self.lead.set(if auth {
            "Sign in to join the chat."
        } else {
            "Pick a name to join the chat."
        });
        self.form_hidden.flag(auth);
        self.input_invalid.set(yes(!error.is_empty()));
        self.join_disabled.flag(chat.joining);
        self.join_label
            .set(if chat.joining { "Joining…" } else { "Join" });
        self.error.set(error);
    }
}

/// The chat screen: header, rooms and members, transcript and composer.
struct ChatScreen {
    element: Element,
    me: Slot,
    status_class: Slot,
    status_key: Slot,
    status_label: Slot,
    status_announced: Slot,
    leave_id: Slot,
    leave_label: Slot,
    rooms: Element,
    rooms_shown: Vec<(String, u32, bool)>,
    room_error: Slot,
    leave_room_hidden: Slot,
    leave_room_label: Slot,
    users_title: Slot,
    user_count: Slot,
    users_hint: Slot,
    users: Element,
    users_shown: Option<(Vec<User>, Option<String>)>,
    transcript: Element,
    /// The rendered rows: entry id and version, and the element.
    rows: Vec<(u64, u32, Element)>,
    jump_hidden: Slot,
    jump_label: Slot,
    recipient: Element,
    recipient_disabled: Slot,
    options_shown: Option<(Vec<User>, Option<Recipient>)>,
    placeholder: Slot,
    send_disabled: Slot,
    send_title: Slot,
    hint: Slot,
    counter_class: Slot,
    counter: Slot,
}

impl ChatScreen {
    fn build(root: &Element, draft: &str) -> ChatScreen {
        let screen = add(
            root,
            "div",
            &[("class", "chat"), ("data-testid", "chat-screen")],
        );

        let header = add(&screen, "header", &[("class", "top")]);
        add_text(&header, "h1", &[], "Webchat");
        let me = add_text(
            &header,
            "p",
            &[("class", "me"), ("data-testid", "me")],
            "online as ",
        );
        let me = add(&me, "strong", &[]);
        let status = add(&header, "p", &[("data-testid", "status")]);
        // The countdown changes every second: show it, announce only the state.
        let status_label = add(&status, "span", &[("aria-hidden", "true")]);
        let status_announced = add(
            &status,
            "span",
            &[("class", "visually-hidden"), ("role", "status")],
        );
        let leave = add_text(
            &header,
            "button",
            &[
                ("type", "button"),
                ("class", "leave"),
                ("data-testid", "leave-button"),
            ],
            "Leave",
        );
        // With sign-in on, leaving signs out.
        on(
            &leave,
            "click",
            Box::new(|_| {
                if shell::with_chat(|c| c.auth) {
                    shell::sign_out();
                    return;
                }
                shell::dispatch(Chat::leave)
            }),
        );

        let panes = add(&screen, "div", &[("class", "panes")]);
        let aside = add(
            &panes,
            "aside",
            &[("class", "users"), ("aria-labelledby", "users-title")],
        );

        // The rooms this tab is in, the field to join another and the button to leave
        // the one shown.
        let nav = add(
            &aside,
            "nav",
            &[("class", "rooms"), ("aria-labelledby", "rooms-title")],
        );
        add_text(&nav, "h2", &[("id", "rooms-title")], "Rooms");
        let rooms = add(&nav, "ul", &[("data-testid", "room-list")]);
        // One listener for every row, now and later: rows are rebuilt as rooms change,
        // and a listener per row would outlive its row.
        on(
            &rooms,
            "click",
            Box::new(|event: Event| {
                let Some(name) = clicked(&event, "li", "data-room") else {
                    return;
                };
                VIEW.with_borrow_mut(|view| view.following = true);
                shell::dispatch(move |c| {
                    c.show_room(&name);
                    Vec::new()
                });
            }),
        );
        let join_room = add(
            &nav,
            "form",
            &[
                ("class", "join-room"),
                ("data-testid", "join-room-form"),
                ("novalidate", ""),
            ],
        );
        add_text(
            &join_room,
            "label",
            &[("for", "room-input"), ("class", "visually-hidden")],
            "Room to join",
        );
        let max = MAX_ROOM_CHARS.to_string();
        let room_input = add(
            &join_room,
            "input",
            &[
                ("id", "room-input"),
                ("data-testid", "room-input"),
                ("type", "text"),
                ("placeholder", "room name"),
                ("maxlength", &max),
                ("aria-describedby", "room-error"),
            ],
        );
        add_text(
            &join_room,
            "button",
            &[("type", "submit"), ("data-testid", "join-room-button")],
            "Join",
        );
        on_submit(
            &join_room,
            Box::new(move || {
                let raw = value(&room_input);
                if shell::dispatch_with(move |c| c.join_room(&raw)) {
                    set_value(&room_input, "");
                    with_view(|view| view.following = true);
                }
            }),
        );
        let room_error = add(
            &nav,
            "p",
            &[
                ("id", "room-error"),
                ("class", "error"),
                ("role", "alert"),
                ("data-testid", "room-error"),
            ],
        );
        // The lobby cannot be left.
        let leave_room = add(
            &nav,
            "button",
            &[
                ("type", "button"),
                ("class", "leave-room"),
                ("data-testid", "leave-room"),
            ],
        );
        on(
            &leave_room,
            "click",
            Box::new(|_| {
                shell::dispatch(|c| {
                    let name = c.room().name.clone();
                    c.leave_room(&name)
                })
            }),
        );

        // The members of the room shown.
        let title = add(&aside, "h2", &[("id", "users-title")]);
        let users_title = add(&title, "span", &[]);
        add_text(&title, "span", &[], " (");
        let user_count = add(&title, "span", &[("data-testid", "user-count")]);
        add_text(&title, "span", &[], ")");
        let users_hint = add_text(
            &aside,
            "p",
            &[("class", "hint")],
            "Nobody else is here yet.",
        );
        let users = add(&aside, "ul", &[("data-testid", "user-list")]);
        on(
            &users,
            "click",
            Box::new(|event: Event| {
                if let Some(id) = clicked(&event, "button", "data-id") {
                    shell::dispatch(move |c| {
                        c.toggle_recipient(&id);
                        Vec::new()
                    });
                }
            }),
        );

        let conversation = add(
            &panes,
            "section",
            &[("class", "conversation"), ("aria-label", "Conversation")],
        );
        let wrap = add(&conversation, "div", &[("class", "transcript-wrap")]);
        let transcript = add(
            &wrap,
            "ol",
            &[
                ("class", "transcript"),
                ("data-testid", "transcript"),
                ("role", "log"),
                ("aria-live", "polite"),
                ("aria-label", "Messages"),
                ("tabindex", "0"),
            ],
        );
        let list = transcript.clone();
        on(
            &transcript,
            "scroll",
            Box::new(move |_| {
                let at_end = list.scroll_height() - list.scroll_top() - list.client_height() <= 24;
                let top = list.scroll_top() <= 0;
                let height = list.scroll_height();
                with_view(|view| {
                    if view.following != at_end {
                        view.following = at_end;
                    }
                    if top {
                        view.height_before = height;
                    }
                });
                if top {
                    shell::dispatch(Chat::load_older);
                }
            }),
        );
        let jump = add(
            &wrap,
            "button",
            &[
                ("type", "button"),
                ("class", "jump"),
                ("data-testid", "jump-to-latest"),
            ],
        );
        on(
            &jump,
            "click",
            Box::new(|_| with_view(|view| view.following = true)),
        );

        let composer = add(
            &conversation,
            "form",
            &[("class", "composer"), ("data-testid", "composer")],
        );
        let to = add(&composer, "div", &[("class", "to")]);
        add_text(&to, "label", &[("for", "recipient")], "To");
        // Private messages are written in the lobby.
        let recipient = add(
            &to,
            "select",
            &[("id", "recipient"), ("data-testid", "recipient")],
        );
        let select = recipient.clone();
        on(
            &recipient,
            "change",
            Box::new(move |_| {
                let value = value(&select);
                shell::dispatch(move |c| {
                    if !value.starts_with('~') {
                        c.set_recipient((!value.is_empty()).then_some(value.as_str()));
                    }
                    Vec::new()
                });
            }),
        );
        let write = add(&composer, "div", &[("class", "write")]);
        add_text(
            &write,
            "label",
            &[("for", "message-input"), ("class", "visually-hidden")],
            "Message",
        );
        let textarea = add(
            &write,
            "textarea",
            &[
                ("id", "message-input"),
                ("data-testid", "message-input"),
                ("rows", "2"),
                ("aria-describedby", "composer-hint message-counter"),
            ],
        );
        set_value(&textarea, draft);
        let send_button = add_text(
            &write,
            "button",
            &[("type", "submit"), ("data-testid", "send-button")],
            "Send",
        );
        let under = add(&composer, "div", &[("class", "under")]);
        let hint = add(
            &under,
            "span",
            &[
                ("id", "composer-hint"),
                ("class", "hint"),
                ("data-testid", "composer-hint"),
            ],
        );
        let counter = add(
            &under,
            "span",
            &[
                ("id", "message-counter"),
                ("data-testid", "counter"),
                ("aria-live", "polite"),
            ],
        );

        let field = textarea.clone();
        on(
            &textarea,
            "input",
            Box::new(move |_| {
                let text = value(&field);
                with_view(|view| view.draft = text);
            }),
        );
        let field = textarea.clone();
        let send = move || {
            let text = VIEW.with_borrow(|view| view.draft.clone());
            if shell::dispatch_with(move |c| c.send_message(&text, shell::now_ms())) {
                set_value(&field, "");
                // Your own message always brings the transcript to its end.
                with_view(|view| {
                    view.draft.clear();
                    view.following = true;
                });
            }
        };
        let send_on_enter = send.clone();
        on(
            &textarea,
            "keydown",
            Box::new(move |event: Event| {
                if let Some(key) = event.dyn_ref::<web_sys::KeyboardEvent>() {
                    if enter_sends(&key.key(), key.shift_key(), key.is_composing()) {
                        event.prevent_default();
                        send_on_enter();
                    }
                }
            }),
        );
        on_submit(&composer, Box::new(send));
        focus(&textarea);

        ChatScreen {
            element: screen,
            me: Slot::text(&me),
            status_class: Slot::attr(&status, "class"),
            status_key: Slot::attr(&status, "data-status"),
            status_label: Slot::text(&status_label),
            status_announced: Slot::text(&status_announced),
            leave_id: Slot::attr(&leave, "data-testid"),
            leave_label: Slot::text(&leave),
            rooms,
            rooms_shown: Vec::new(),
            room_error: Slot::text(&room_error),
            leave_room_hidden: Slot::attr(&leave_room, "hidden"),
            leave_room_label: Slot::text(&leave_room),
            users_title: Slot::text(&users_title),
            user_count: Slot::text(&user_count),
            users_hint: Slot::attr(&users_hint, "hidden"),
            users,
            users_shown: None,
            transcript,
            rows: Vec::new(),
            jump_hidden: Slot::attr(&jump, "hidden"),
            jump_label: Slot::text(&jump),
            recipient_disabled: Slot::attr(&recipient, "disabled"),
            recipient,
            options_shown: None,
            placeholder: Slot::attr(&textarea, "placeholder"),
            send_disabled: Slot::attr(&send_button, "disabled"),
            send_title: Slot::attr(&send_button, "title"),
            hint: Slot::text(&hint),
            counter_class: Slot::attr(&counter, "class"),
            counter: Slot::text(&counter),
        }
    }

    fn render(&mut self, chat: &Chat, draft: &str) {
        self.me.set(chat.name.as_deref().unwrap_or_default());
        let status = chat.status(shell::now_ms());
        self.status_class
            .set(&format!("status status-{}", status.key()));
        self.status_key.set(status.key());
        self.status_label.set(&status.label());
        self.status_announced.set(chat.status(0.0).key());
        self.leave_id.set(if chat.auth {
            "sign-out-button"
        } else {
            "leave-button"
        });
        self.leave_label
            .set(if chat.auth { "Sign out" } else { "Leave" });
        self.render_rooms(chat);
        self.render_users(chat);
        self.render_transcript(chat);
        self.render_composer(chat, draft);
    }

    /// One button per room with its unread count in its label.
    fn render_rooms(&mut self, chat: &Chat) {
        let rooms: Vec<(String, u32, bool)> = chat
            .rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), r.unread, i == chat.current))
            .collect();
        if rooms != self.rooms_shown {
            self.rooms.set_text_content(None);
            for (name, unread, shown) in &rooms {
                let unread_text = unread.to_string();
                let row = add(
                    &self.rooms,
                    "li",
                    &[
                        ("data-testid", "room"),
                        ("data-room", name),
                        ("data-unread", &unread_text),
                    ],
                );
                let label = if *unread > 0 {
                    format!("#{name} ({unread})")
                } else {
                    format!("#{name}")
                };
                add_text(
                    &row,
                    "button",
                    &[("type", "button"), ("aria-current", yes(*shown))],
                    &label,
                );
            }
            self.rooms_shown = rooms;
        }
        self.room_error
            .set(chat.room_error.as_deref().unwrap_or_default());
        self.leave_room_hidden.flag(chat.current == 0);
        self.leave_room_label
            .set(&format!("Leave #{}", chat.room().name));
    }

    fn render_users(&mut self, chat: &Chat) {
        let room = chat.room();
        let people = chat.people(room);
        self.users_title.set(&if chat.current == 0 {
            "Online".to_string()
        } else {
            format!("In #{}", room.name)
        });
        self.user_count.set(&people.len().to_string());
        self.users_hint.flag(!people.is_empty());
        let recipient = chat
            .recipient
            .as_ref()
            .and_then(|r| r.connection_id.clone());
        if self
            .users_shown
            .as_ref()
            .is_some_and(|(users, to)| *users == people && *to == recipient)
        {
            return;
        }
        self.users.set_text_content(None);
        for user in &people {
            let row = add(
                &self.users,
                "li",
                &[("data-testid", "user"), ("data-name", &user.user_name)],
            );
            let label = format!("Send a private message to {}", user.user_name);
            let pressed = recipient.as_deref() == Some(user.connection_id.as_str());
            add_text(
                &row,
                "button",
                &[
                    ("type", "button"),
                    ("title", &label),
                    ("aria-label", &label),
                    ("aria-pressed", yes(pressed)),
                    ("data-id", &user.connection_id),
                ],
                &user.user_name,
            );
        }
        self.users_shown = Some((people, recipient));
    }

    /// Rows are kept by position and written again when their entry's id or version
    /// differs: an older page or a reconnect's gap going in above re-renders the rows
    /// below it, which keeps a keyed diff out of the download.
    fn render_transcript(&mut self, chat: &Chat) {
        let entries = &chat.room().entries;
        for (at, entry) in entries.iter().enumerate() {
            if let Some((id, version, _)) = self.rows.get(at) {
                if *id == entry.id && *version == entry.version {
                    continue;
                }
            }
            let row = entry_row(entry);
            match self.rows.get_mut(at) {
                Some(old) => {
                    let _ = self.transcript.replace_child(&row, &old.2);
                    *old = (entry.id, entry.version, row);
                }
                None => {
                    let _ = self.transcript.append_child(&row);
                    self.rows.push((entry.id, entry.version, row));
                }
            }
        }
        for (_, _, row) in self.rows.drain(entries.len().min(self.rows.len())..) {
            row.remove();
        }
    }

    fn render_composer(&mut self, chat: &Chat, draft: &str) {
        self.recipient_disabled.flag(chat.current > 0);
        let users = &chat.people(chat.lobby());
        let recipient = chat.recipient.clone();
        if !self
            .options_shown
            .as_ref()
            .is_some_and(|(shown, to)| shown == users && *to == recipient)
        {
            let select = &self.recipient;
            select.set_text_content(None);
            let everyone = add_text(select, "option", &[("value", "")], "Everyone");
            if recipient.is_none() {
                let _ = everyone.set_attribute("selected", "");
            }
            for user in users {
                let option = add_text(
                    select,
                    "option",
                    &[("value", &user.connection_id)],
                    &format!("{} (private)", user.user_name),
                );
                if recipient.as_ref().is_some_and(|r| {
                    r.connection_id.as_deref() == Some(user.connection_id.as_str())
                }) {
                    let _ = option.set_attribute("selected", "");
                }
            }
            if let Some(Recipient {
                user_name,
                connection_id: None,
            }) = &recipient
            {
                add_text(
                    select,
                    "option",
                    &[("value", "~offline"), ("disabled", ""), ("selected", "")],
                    &format!("{user_name} (offline)"),
                );
            }
            self.options_shown = Some((users.clone(), recipient));
        }
        self.placeholder.set(&chat.composer_placeholder());
        let blocker = chat.send_blocker(draft);
        self.send_disabled.flag(blocker.is_some());
        self.send_title
            .set(blocker.as_deref().unwrap_or("Send (Enter)"));
        self.hint.set(if chat.online() {
            ""
        } else {
            "Offline: your text is kept and can be sent once the chat is back."
        });
        self.counter_class
            .set(if draft.trim().chars().count() > MAX_MESSAGE_CHARS {
                "counter over"
            } else {
                "counter"
            });
        self.counter
            .set(counter_text(draft).as_deref().unwrap_or_default());
    }
}

impl View {
    /// Keeps the transcript at its end while the reader follows it; counts new lines
    /// instead while they are scrolled up; puts the lines being read back in place when
    /// an older page comes in above them.
    fn follow(&mut self, chat: &Chat) {
        let Some(screen) = &mut self.chat else {
            return;
        };
        let entries = &chat.room().entries;
        let ends = (entries.first().map(|e| e.id), entries.last().map(|e| e.id));
        let (first, last) = std::mem::replace(&mut self.ends, ends);
        let list = screen.transcript.clone();
        if self.following {
            self.unseen = 0;
            shell::next_frame(Box::new(move || list.set_scroll_top(list.scroll_height())));
        } else if ends.1 == last && ends.0 != first {
            let before = self.height_before;
            shell::next_frame(Box::new(move || {
                list.set_scroll_top(list.scroll_height() - before)
            }));
        } else if ends != (first, last) {
            self.unseen += entries
                .iter()
                .rev()
                .take_while(|e| Some(e.id) > last)
                .count();
        }
        screen.jump_hidden.flag(self.unseen == 0);
        screen.jump_label.set(&format!("{} new ↓", self.unseen));
    }
}

/// One transcript line.
fn entry_row(entry: &Entry) -> Element {
    match &entry.kind {
        EntryKind::System { text, divider } => {
            let (class, testid) = if *divider {
                ("system divider", "away-divider")
            } else {
                ("system", "system-line")
            };
            let row = make("li", &[("class", class), ("data-testid", testid)]);
            row.set_text_content(Some(text));
            row
        }
        EntryKind::Message {
            sender,
            text,
            timestamp_ms,
            private,
            own,
            to,
            delivery,
        } => {
            let (delivery_key, delivery_label) = match delivery {
                Delivery::Received => ("received", ""),
                Delivery::Pending => ("pending", "sending…"),
                Delivery::Sent { .. } => ("sent", "sent"),
                Delivery::Failed { .. } => ("failed", "not sent"),
            };
            let mut class = String::from("msg");
            if *own {
                class.push_str(" own");
            }
            if *private {
                class.push_str(" private");
            }
            class.push(' ');
            class.push_str(delivery_key);
            let row = make(
                "li",
                &[
                    ("class", &class),
                    ("data-testid", "message"),
                    ("data-sender", sender),
                    ("data-own", yes(*own)),
                    ("data-private", yes(*private)),
                    ("data-delivery", delivery_key),
                ],
            );
            if let Some(title) = entry.title() {
                let _ = row.set_attribute("title", &title);
            }
            let meta = add(&row, "div", &[("class", "meta")]);
            add_text(
                &meta,
                "span",
                &[("class", "sender"), ("data-testid", "message-sender")],
                sender,
            );
            if *private {
                let label = match to {
                    Some(to) => format!("private to {to}"),
                    None => "private".to_string(),
                };
                add_text(
                    &meta,
                    "span",
                    &[("class", "tag"), ("data-testid", "private-tag")],
                    &label,
                );
            }
            let (time, iso) = shell::local_time(*timestamp_ms);
            add_text(&meta, "time", &[("datetime", &iso)], &time);
            if *own {
                add_text(
                    &meta,
                    "span",
                    &[("class", "delivery"), ("data-testid", "delivery")],
                    delivery_label,
                );
            }
            add_text(
                &row,
                "p",
                &[("class", "text"), ("data-testid", "message-text")],
                text,
            );
            row
        }
    }
}
