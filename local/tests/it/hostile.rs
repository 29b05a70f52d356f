//! Hostile input: a named corpus of frames a broken or malicious client could send, each
//! with the answer the protocol (or the WebSocket layer) owes it, and a check that the
//! connection is still usable afterwards whenever API Gateway would keep it.
//!
//! Each case runs on a fresh connection (registered when the case needs it). After a case
//! that keeps the connection, a `ping` with a `requestId` must still `pong`; after a case
//! that ends it, the gateway must have run `$disconnect` (the name is free again).

use crate::common::start;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use webchat_local::{Config, Running};
use webchat_shared_types::MAX_FRAME_BYTES;
use webchat_testkit::{Client, Incoming};

/// What a case sends.
enum Input {
    Text(String),
    Binary(Vec<u8>),
    /// WebSocket frames written as they are (masked by the client): fragments, text frames
    /// that are not UTF-8, and so on.
    Frames(Vec<Frame>),
    /// Bytes written straight to the TCP socket after the handshake, for frames no
    /// well-behaved WebSocket library would produce.
    Raw(Vec<u8>),
}

/// What the case must get back.
#[derive(Debug)]
enum Expect {
    /// An `error` with this code, carrying exactly this `requestId` (`None`: no requestId).
    Error {
        code: &'static str,
        request_id: Option<&'static str>,
    },
    /// A reply containing these fields.
    Reply(Value),
    /// No answer at all (the frame had no usable requestId and nothing to refuse).
    Silence,
    /// The server closes the WebSocket with this code.
    Close(u16),
}

struct Case {
    name: &'static str,
    /// Register the connection first (some refusals only happen after that).
    registered: bool,
    /// Builds the input; gets the connection's own id.
    input: Box<dyn Fn(&str) -> Input>,
    expect: Expect,
}

fn error(code: &'static str) -> Expect {
    Expect::Error {
        code,
        request_id: None,
    }
}

fn error_with_id(code: &'static str, request_id: &'static str) -> Expect {
    Expect::Error {
        code,
        request_id: Some(request_id),
    }
}

fn text(name: &'static str, registered: bool, frame: impl Into<String>, expect: Expect) -> Case {
    let frame = frame.into();
    Case {
        name,
        registered,
        input: Box::new(move |_| Input::Text(frame.clone())),
        expect,
    }
}

fn built(
    name: &'static str,
    registered: bool,
    input: impl Fn(&str) -> Input + 'static,
    expect: Expect,
) -> Case {
    Case {
        name,
        registered,
        input: Box::new(input),
        expect,
    }
}

fn nested(depth: usize) -> String {
    format!(
        r#"{{"action":"ping","requestId":"deep","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// A `message` frame padded with `x`s to exactly `bytes` bytes.
fn message_of_bytes(bytes: usize) -> String {
    let shell = r#"{"action":"message","requestId":"edge","message":""}"#;
    let fill = bytes - shell.len();
    format!(
        r#"{{"action":"message","requestId":"edge","message":"{}"}}"#,
        "x".repeat(fill)
    )
}

fn receivers(count: usize) -> String {
    let list: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"connectionId":"r{i}"}}"#))
        .collect();
    format!(
        r#"{{"action":"message","message":"hi","requestId":"many","receivers":[{}]}}"#,
        list.join(",")
    )
}

fn text_fragments(parts: &[&[u8]]) -> Input {
    let last = parts.len() - 1;
    Input::Frames(
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let opcode = if i == 0 {
                    OpCode::Data(Data::Text)
                } else {
                    OpCode::Data(Data::Continue)
                };
                Frame::message(part.to_vec(), opcode, i == last)
            })
            .collect(),
    )
}

/// One client frame as RFC 6455 lays it out, with the given first byte (FIN, RSV, opcode).
fn raw_frame(first: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | u8::try_from(len).unwrap()),
        len @ 126..=65535 => {
            // 0x7E (126): a 16-bit length follows (RFC 6455 5.2); 0x7F: a 64-bit one.
            out.push(mask_bit | 0x7E);
            out.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        }
        len => {
            out.push(mask_bit | 0x7F);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn cases() -> Vec<Case> {
    let ping = br#"{"action":"ping","requestId":"raw"}"#;
    let long_name = "n".repeat(33);
    let emoji_name = "😀".repeat(32);
    let rid_65 = "r".repeat(65);
    let rid_64 = "r".repeat(64);
    let rid_64_emoji = "🦀".repeat(64);
    let big_message = "m".repeat(4097);
    let widest_message = "é".repeat(4096);
    vec![
        // ---- not JSON -------------------------------------------------------------
        text("prose", false, "hello there", error("bad_json")),
        text("empty text frame", false, "", error("bad_json")),
        text("truncated object", false, r#"{"action":"ping","requestId":"t""#, error("bad_json")),
        text("single quotes", false, "{'action':'ping'}", error("bad_json")),
        text("trailing comma", false, r#"{"action":"ping",}"#, error("bad_json")),
        text("two objects in one frame", false, r#"{"action":"ping"}{"action":"ping"}"#, error("bad_json")),
        text("byte order mark before the object", false, "\u{feff}{\"action\":\"ping\",\"requestId\":\"bom\"}", error("bad_json")),
        text("NaN", false, "NaN", error("bad_json")),
        text("lone surrogate escape", false, r#"{"action":"register","userName":"\ud800","requestId":"s"}"#, error("bad_json")),
        text("raw control byte inside a string", false, "{\"action\":\"register\",\"userName\":\"a\u{1}b\"}", error("bad_json")),
        text("number overflowing f64", false, r#"{"action":"ping","requestId":"n","x":1e999}"#, error("bad_json")),
        text("negative number overflowing f64", false, r#"{"action":"ping","requestId":"n","x":-1e999}"#, error("bad_json")),
        text("nesting past serde_json's recursion limit", false, nested(200), error("bad_json")),
        text("ten thousand levels of nesting", false, nested(10_000), error("bad_json")),
        // ---- JSON, but not an object with a known string action -------------------
        text("empty array", false, "[]", error("unknown_action")),
        text("array holding an action", false, r#"["ping"]"#, error("unknown_action")),
        text("bare string", false, r#""ping""#, error("unknown_action")),
        text("null", false, "null", error("unknown_action")),
        text("bare number", false, "42", error("unknown_action")),
        text("empty object", false, "{}", error("unknown_action")),
        text("numeric action", false, r#"{"action":42}"#, error("unknown_action")),
        text("null action", false, r#"{"action":null}"#, error("unknown_action")),
        text("array action", false, r#"{"action":["ping"]}"#, error("unknown_action")),
        text("action in upper case", false, r#"{"action":"PING"}"#, error("unknown_action")),
        text("action with a NUL", false, r#"{"action":"ping\u0000"}"#, error("unknown_action")),
        text("action named like a route key", false, r#"{"action":"$connect"}"#, error("unknown_action")),
        text("ten kilobyte action", false, format!(r#"{{"action":"{}"}}"#, "a".repeat(10_000)), error("unknown_action")),
        // ---- register -------------------------------------------------------------
        text("register without userName", false, r#"{"action":"register","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("numeric userName", false, r#"{"action":"register","userName":42,"requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("negative userName", false, r#"{"action":"register","userName":-1,"requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("huge numeric userName", false, r#"{"action":"register","userName":1.5e308,"requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("null userName", false, r#"{"action":"register","userName":null,"requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("object userName", false, r#"{"action":"register","userName":{"first":"ana"},"requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("blank userName", false, r#"{"action":"register","userName":" \t ","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("NUL in userName", false, r#"{"action":"register","userName":"ana\u0000","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("bell in userName", false, r#"{"action":"register","userName":"ana\u0007","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("escape sequence in userName", false, r#"{"action":"register","userName":"\u001b[31mred","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("right-to-left override in userName", false, r#"{"action":"register","userName":"\u202eana","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("bidi isolate in userName", false, r#"{"action":"register","userName":"\u2066ana\u2069","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("zero-width space in userName", false, r#"{"action":"register","userName":"an\u200ba","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("zero-width joiner in userName", false, r#"{"action":"register","userName":"ana\u200d","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("byte order mark in userName", false, r#"{"action":"register","userName":"\ufeffana","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("Hangul filler as userName", false, r#"{"action":"register","userName":"\u3164","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("tag characters in userName", false, r#"{"action":"register","userName":"ana\udb40\udc41","requestId":"r"}"#, error_with_id("invalid_field", "r")),
        text("33-character userName", false, json!({"action":"register","userName":long_name,"requestId":"r"}).to_string(), error_with_id("invalid_field", "r")),
        text("ten kilobyte userName", false, json!({"action":"register","userName":"n".repeat(10_000),"requestId":"r"}).to_string(), error_with_id("invalid_field", "r")),
        text("32 emoji are a valid userName", false, json!({"action":"register","userName":emoji_name,"requestId":"r"}).to_string(),
             Expect::Reply(json!({"action":"registered","userName":emoji_name,"requestId":"r"}))),
        text("userName is trimmed", false, r#"{"action":"register","userName":"  padded  ","requestId":"r"}"#,
             Expect::Reply(json!({"action":"registered","userName":"padded","requestId":"r"}))),
        // ---- message --------------------------------------------------------------
        text("message before register", false, r#"{"action":"message","message":"hi","requestId":"m"}"#, error_with_id("not_registered", "m")),
        text("message without text", true, r#"{"action":"message","requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("numeric message", true, r#"{"action":"message","message":7,"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("object message", true, r#"{"action":"message","message":{"text":"hi"},"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("blank message", true, r#"{"action":"message","message":" \n\t ","requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("NUL in message", true, r#"{"action":"message","message":"hi\u0000","requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("escape sequence in message", true, r#"{"action":"message","message":"\u001b[2Jgone","requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("4,097-character message", true, json!({"action":"message","message":big_message,"requestId":"m"}).to_string(), error_with_id("too_large", "m")),
        text("4,096 two-byte characters are a valid message", true, json!({"action":"message","message":widest_message,"requestId":"m"}).to_string(),
             Expect::Reply(json!({"action":"sent","delivered":0,"requestId":"m"}))),
        text("numeric sender", true, r#"{"action":"message","message":"hi","sender":1,"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        // ---- receivers ------------------------------------------------------------
        text("receivers as a string", true, r#"{"action":"message","message":"hi","receivers":"all","requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("receivers as numbers", true, r#"{"action":"message","message":"hi","receivers":[1,2],"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("receiver without connectionId", true, r#"{"action":"message","message":"hi","receivers":[{}],"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("empty connectionId", true, r#"{"action":"message","message":"hi","receivers":[{"connectionId":""}],"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("numeric connectionId", true, r#"{"action":"message","message":"hi","receivers":[{"connectionId":5}],"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("NUL in connectionId", true, r#"{"action":"message","message":"hi","receivers":[{"connectionId":"a\u0000"}],"requestId":"m"}"#, error_with_id("invalid_field", "m")),
        text("129-character connectionId", true, json!({"action":"message","message":"hi","receivers":[{"connectionId":"c".repeat(129)}],"requestId":"m"}).to_string(), error_with_id("invalid_field", "m")),
        text("101 receivers", true, receivers(101), error_with_id("too_large", "many")),
        text("1,000 receivers", true, receivers(1000), error_with_id("too_large", "many")),
        text("10,000 receivers do not fit in a frame", true, receivers(10_000), Expect::Close(1009)),
        text("100 unknown receivers", true, receivers(100), Expect::Reply(json!({"action":"sent","delivered":0,"requestId":"many"}))),
        text("empty receivers", true, r#"{"action":"message","message":"hi","receivers":[],"requestId":"m"}"#, Expect::Reply(json!({"action":"sent","delivered":0,"requestId":"m"}))),
        built("only itself as receiver", true, |me| Input::Text(json!({"action":"message","message":"me","requestId":"m","receivers":[{"connectionId":me},{"connectionId":me}]}).to_string()),
              Expect::Reply(json!({"action":"sent","delivered":0,"requestId":"m"}))),
        // ---- requestId ------------------------------------------------------------
        text("65-character requestId", false, json!({"action":"ping","requestId":rid_65}).to_string(), error("invalid_field")),
        text("64-character requestId", false, json!({"action":"ping","requestId":rid_64}).to_string(), Expect::Reply(json!({"action":"pong","requestId":rid_64}))),
        text("64 emoji as requestId", false, json!({"action":"ping","requestId":rid_64_emoji}).to_string(), Expect::Reply(json!({"action":"pong","requestId":rid_64_emoji}))),
        text("empty requestId", false, r#"{"action":"ping","requestId":""}"#, error("invalid_field")),
        text("numeric requestId", false, r#"{"action":"ping","requestId":42}"#, error("invalid_field")),
        text("huge numeric requestId", false, r#"{"action":"ping","requestId":123456789012345678901234567890}"#, error("invalid_field")),
        text("object requestId", false, r#"{"action":"ping","requestId":{"id":"x"}}"#, error("invalid_field")),
        text("array requestId", false, r#"{"action":"ping","requestId":["x"]}"#, error("invalid_field")),
        text("newline in requestId", false, r#"{"action":"ping","requestId":"a\nb"}"#, error("invalid_field")),
        text("null requestId counts as none", false, r#"{"action":"ping","requestId":null}"#, Expect::Silence),
        text("duplicate requestId: the last one wins", false, r#"{"action":"ping","requestId":"first","requestId":"second"}"#,
             Expect::Reply(json!({"action":"pong","requestId":"second"}))),
        text("invalid requestId on a refused frame", true, r#"{"action":"message","message":"","requestId":""}"#, error("invalid_field")),
        // ---- harmless oddities ----------------------------------------------------
        text("huge integer in an unknown field", false, r#"{"action":"ping","requestId":"n","x":123456789012345678901234567890}"#, Expect::Reply(json!({"action":"pong","requestId":"n"}))),
        text("nesting within serde_json's limit", false, nested(100), Expect::Reply(json!({"action":"pong","requestId":"deep"}))),
        text("duplicate action keys that agree", false, r#"{"action":"ping","action":"ping","requestId":"d"}"#, Expect::Reply(json!({"action":"pong","requestId":"d"}))),
        // ---- frame sizes ----------------------------------------------------------
        text("frame of exactly 32 KB", true, message_of_bytes(MAX_FRAME_BYTES), error_with_id("too_large", "edge")),
        text("frame one byte over 32 KB", true, message_of_bytes(MAX_FRAME_BYTES + 1), Expect::Close(1009)),
        text("200 KB frame", true, message_of_bytes(200 * 1024), Expect::Close(1009)),
        built("64 KB message in three fragments", true, |_| {
            let frame = message_of_bytes(64 * 1024);
            let bytes = frame.as_bytes();
            let third = bytes.len() / 3;
            text_fragments(&[&bytes[..third], &bytes[third..2 * third], &bytes[2 * third..]])
        }, error_with_id("too_large", "edge")),
        built("140 KB message in 20 KB fragments", true, |_| {
            let frame = message_of_bytes(140 * 1024);
            let parts: Vec<&[u8]> = frame.as_bytes().chunks(20 * 1024).collect();
            text_fragments(&parts)
        }, Expect::Close(1009)),
        built("frame header claiming 2^63 bytes", false, |_| {
            let mut bytes = vec![0x81, 0x80 | 127];
            bytes.extend_from_slice(&(1u64 << 63).to_be_bytes());
            bytes.extend_from_slice(&[1, 2, 3, 4]);
            Input::Raw(bytes)
        }, Expect::Close(1009)),
        // ---- binary and malformed WebSocket frames ----------------------------------
        built("binary frame", false, |_| Input::Binary(vec![0, 159, 146, 150, 255]), error("bad_json")),
        built("empty binary frame", false, |_| Input::Binary(Vec::new()), error("bad_json")),
        built("binary frame holding valid JSON", false, |_| Input::Binary(ping.to_vec()), error("bad_json")),
        built("multi-byte character split across fragments", false, |_| {
            let frame = r#"{"action":"ping","requestId":"é"}"#.as_bytes();
            let split = frame.iter().position(|b| *b == 0xc3).unwrap() + 1;
            text_fragments(&[&frame[..split], &frame[split..]])
        }, Expect::Reply(json!({"action":"pong","requestId":"é"}))),
        built("text frame that is not UTF-8", true, |_| {
            Input::Frames(vec![Frame::message(b"{\"action\":\"ping\",\"requestId\":\"\xff\xfe\"}".to_vec(), OpCode::Data(Data::Text), true)])
        }, Expect::Close(1007)),
        built("fragmented text that is not UTF-8", true, |_| text_fragments(&[b"{\"action\":\"ping\",", b"\"requestId\":\"\xc3\x28\"}"]), Expect::Close(1007)),
        built("unmasked client frame", true, move |_| Input::Raw(raw_frame(0x81, false, ping)), Expect::Close(1002)),
        built("reserved opcode", true, move |_| Input::Raw(raw_frame(0x83, true, ping)), Expect::Close(1002)),
        built("RSV1 bit without an extension", true, move |_| Input::Raw(raw_frame(0xC1, true, ping)), Expect::Close(1002)),
        built("continuation frame with nothing to continue", true, move |_| Input::Raw(raw_frame(0x80, true, ping)), Expect::Close(1002)),
        built("ping control frame over 125 bytes", true, |_| Input::Raw(raw_frame(0x89, true, &[b'p'; 126])), Expect::Close(1002)),
        built("fragmented ping control frame", true, |_| Input::Raw(raw_frame(0x09, true, b"ping")), Expect::Close(1002)),
    ]
}

/// What came back.
#[derive(Debug)]
enum Observed {
    Frame(Value),
    Close(u16),
    Dropped(#[allow(dead_code)] String),
    Nothing,
}

/// The next meaningful event on a WebSocket: announcements and control frames skipped.
async fn observe(client: &mut Client, wait: Duration) -> Observed {
    let deadline = Instant::now() + wait;
    loop {
        match client
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            None => return Observed::Nothing,
            Some(Incoming::Ended(how)) => return Observed::Dropped(how),
            Some(Incoming::Text(text)) => {
                let value: Value = match serde_json::from_str(&text) {
                    Ok(value) => value,
                    Err(_) => return Observed::Frame(json!({"notJson": text})),
                };
                if value["action"] == "newUser" || value["action"] == "userExit" {
                    continue;
                }
                return Observed::Frame(value);
            }
            Some(Incoming::Closed(code)) => return Observed::Close(code),
            Some(Incoming::Binary(data)) => {
                return Observed::Frame(json!({"binaryBytes": data.len()}))
            }
        }
    }
}

/// Reads a raw socket until the server ends it; a close frame at the start is reported
/// as `Close`, an end without one as `Dropped`.
async fn observe_raw(tcp: &mut TcpStream, wait: Duration) -> Observed {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    let ended = loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buffer)).await {
            Err(_) => return Observed::Nothing,
            Ok(Ok(0)) => break "end of stream".to_string(),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Ok(Err(err)) => break err.to_string(),
        }
    };
    // A server close frame: 0x88, unmasked length, two-byte code.
    if received.len() >= 4 && received[0] == 0x88 {
        return Observed::Close(u16::from_be_bytes([received[2], received[3]]));
    }
    if received.is_empty() {
        Observed::Dropped(ended)
    } else {
        Observed::Frame(json!({"rawBytes": received.len(), "then": ended}))
    }
}

fn matches(expect: &Expect, observed: &Observed) -> bool {
    match (expect, observed) {
        (Expect::Error { code, request_id }, Observed::Frame(frame)) => {
            frame["action"] == "error"
                && frame["code"] == *code
                && frame["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty() && m.len() < 300)
                && match request_id {
                    Some(id) => frame["requestId"] == *id,
                    None => frame.get("requestId").is_none(),
                }
        }
        (Expect::Reply(fields), Observed::Frame(frame)) => fields
            .as_object()
            .unwrap()
            .iter()
            .all(|(key, value)| frame.get(key) == Some(value)),
        (Expect::Silence, Observed::Nothing) => true,
        (Expect::Close(code), Observed::Close(got)) => code == got,
        _ => false,
    }
}

fn keeps_connection(expect: &Expect) -> bool {
    !matches!(expect, Expect::Close(_))
}

async fn wait_until_no_connections(gateway: &Running) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway.open_connections() > 0 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Runs one case; `Err` says what went wrong.
async fn run_case(gateway: &Running, number: usize, case: &Case) -> Result<()> {
    let url = gateway.websocket_url();
    if !wait_until_no_connections(gateway).await {
        bail!("connections of earlier cases are still open");
    }
    let name = format!("hostile{number}");
    let mut client = if case.registered {
        Client::join(&url, &name).await?
    } else {
        Client::connect(&url).await?
    };
    let own_id = client.connection_id.clone();
    let wait = if matches!(case.expect, Expect::Silence) {
        Duration::from_millis(400)
    } else {
        Duration::from_secs(20)
    };

    let observed = match (case.input)(&own_id) {
        Input::Raw(bytes) => {
            let mut tcp = client.into_tcp().await?;
            // The server may hang up before reading everything: a failed write is fine.
            let _ = tcp.write_all(&bytes).await;
            let observed = observe_raw(&mut tcp, wait).await;
            if !matches(&case.expect, &observed) {
                bail!("expected {:?}, got {observed:?}", case.expect);
            }
            return check_ended(gateway, case, &url, &name).await;
        }
        Input::Text(text) => {
            // Oversized frames may be cut off mid-write: only the answer matters.
            let _ = client.send_message(Message::text(text)).await;
            observe(&mut client, wait).await
        }
        Input::Binary(data) => {
            let _ = client.send_message(Message::binary(data)).await;
            observe(&mut client, wait).await
        }
        Input::Frames(frames) => {
            for frame in frames {
                if client.send_message(Message::Frame(frame)).await.is_err() {
                    break;
                }
            }
            observe(&mut client, wait).await
        }
    };
    if !matches(&case.expect, &observed) {
        bail!("expected {:?}, got {observed:?}", case.expect);
    }
    if keeps_connection(&case.expect) {
        let id = format!("after-{number}");
        client.send(json!({"action":"ping","requestId":id})).await?;
        match observe(&mut client, Duration::from_secs(20)).await {
            Observed::Frame(frame) if frame == json!({"action":"pong","requestId":id}) => {}
            other => bail!("connection not usable afterwards: ping got {other:?}"),
        }
        client.close().await;
        Ok(())
    } else {
        drop(client);
        check_ended(gateway, case, &url, &name).await
    }
}

/// After a case that ends the connection: the gateway ran `$disconnect` (the socket is
/// gone and a registered name is free again) and still serves new clients.
async fn check_ended(gateway: &Running, case: &Case, url: &str, name: &str) -> Result<()> {
    if !wait_until_no_connections(gateway).await {
        bail!("the gateway still holds the socket");
    }
    let mut next = Client::connect(url).await?;
    if case.registered {
        // `$disconnect` runs just after the socket is dropped: the name frees shortly.
        let mut attempts = 0;
        loop {
            next.send(json!({"action":"register","userName":name,"requestId":"again"}))
                .await?;
            match observe(&mut next, Duration::from_secs(20)).await {
                Observed::Frame(frame) if frame["action"] == "registered" => break,
                Observed::Frame(frame) if frame["code"] == "name_taken" && attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => bail!("the name was not freed: {other:?}"),
            }
        }
    }
    next.send(json!({"action":"ping","requestId":"next"}))
        .await?;
    match observe(&mut next, Duration::from_secs(20)).await {
        Observed::Frame(frame) if frame["action"] == "pong" => {}
        other => bail!("the next client got {other:?} to a ping"),
    }
    next.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_frame_gets_its_answer_and_the_gateway_stays_usable() {
    let gateway = start(Config::default()).await;
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
    }
    let mut failures = Vec::new();
    let started = Instant::now();
    for (number, case) in cases.iter().enumerate() {
        if let Err(problem) = run_case(&gateway, number, case).await {
            failures.push(format!("  {} (case {number}): {problem:#}", case.name));
        }
    }
    eprintln!(
        "hostile: {} cases in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Many hostile frames at once on many connections, with a well-behaved pair chatting
/// alongside: their messages all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_hostile_frames_does_not_disturb_well_behaved_clients() -> Result<()> {
    let gateway = start(Config::default()).await;
    let url = gateway.websocket_url();
    let mut ana = Client::join(&url, "ana").await?;
    let mut bia = Client::join(&url, "bia").await?;
    ana.recv_action("newUser").await?;
    let corpus: Vec<String> = cases()
        .iter()
        .filter_map(|case| match (case.input)("x") {
            Input::Text(text)
                if text.len() <= MAX_FRAME_BYTES && keeps_connection(&case.expect) =>
            {
                Some(text)
            }
            _ => None,
        })
        .collect();
    let mut attackers = Vec::new();
    for attacker in 0..4 {
        let url = url.clone();
        let corpus = corpus.clone();
        attackers.push(tokio::spawn(async move {
            let mut client = Client::connect(&url).await?;
            for frame in corpus.iter().cycle().skip(attacker * 7).take(300) {
                client.send_text(frame).await?;
            }
            client
                .send(json!({"action":"ping","requestId":"done"}))
                .await?;
            loop {
                let frame = client.recv().await?;
                if frame["requestId"] == "done" && frame["action"] == "pong" {
                    break;
                }
                // A flood runs into its connection's rate limit: wait as told, ask again.
                if frame["requestId"] == "done" && frame["code"] == "rate_limited" {
                    let wait = frame["retryAfterMs"].as_u64().unwrap_or(1000);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    client
                        .send(json!({"action":"ping","requestId":"done"}))
                        .await?;
                }
            }
            client.close().await;
            anyhow::Ok(())
        }));
    }
    // Attackers may register names and broadcast too: bia only counts ana's messages.
    for round in 0..20 {
        ana.send(json!({"action":"message","message":format!("calm {round}"),"requestId":format!("c{round}"),
                        "receivers":[{"connectionId":bia.connection_id}]}))
            .await?;
        let got = bia
            .recv_where("a message from ana", |frame| {
                frame["action"] == "message" && frame["sender"] == "ana"
            })
            .await?;
        assert_eq!(got["message"], format!("calm {round}"));
        assert_eq!(got["private"], true);
    }
    for attacker in attackers {
        attacker.await??;
    }
    ana.send(json!({"action":"ping","requestId":"end"})).await?;
    ana.recv_where("the reply to `end`", |frame| frame["requestId"] == "end")
        .await?;
    Ok(())
}

// ---- regressions: bugs these tests found, fixed since ---------------------------------

/// docs/protocol.md: a frame with a `requestId` gets exactly one reply carrying it, "the success
/// reply listed below, or an error". An unknown action used to be refused before the
/// `requestId` was read, so a client waiting on the id never heard back.
#[tokio::test]
async fn an_unknown_action_is_refused_with_the_frames_request_id() -> Result<()> {
    let gateway = start(Config::default()).await;
    let mut client = Client::connect(&gateway.websocket_url()).await?;
    client
        .send_text(r#"{"action":"dance","requestId":"r-dance"}"#)
        .await?;
    let reply = client.recv().await?;
    assert_eq!(reply["code"], "unknown_action");
    assert_eq!(reply["requestId"], "r-dance", "{reply}");
    Ok(())
}

/// With duplicate `action` keys, route selection used to refuse the frame (serde's derive
/// saw a duplicate field: `$default`) while the decoder kept the last value, so `$default`
/// registered a name; on AWS the `$default` function has no `DynamoDB` rights. Now both
/// read the last value, and a frame routed to `$default` never acts.
#[tokio::test]
async fn a_frame_routed_to_default_never_changes_anything() -> Result<()> {
    let gateway = start(Config::default()).await;
    let mut client = Client::connect(&gateway.websocket_url()).await?;
    client
        .send_text(r#"{"action":"register","action":"ping","userName":"dupe","requestId":"d"}"#)
        .await?;
    let reply = client.recv().await?;
    assert_eq!(reply, json!({"action":"pong","requestId":"d"}), "{reply}");
    client
        .send_text(r#"{"action":"ping","action":"register","userName":"dupe","requestId":"r"}"#)
        .await?;
    let reply = client.recv().await?;
    assert_eq!(
        reply["action"], "registered",
        "the last action wins: {reply}"
    );
    client
        .send(json!({"action":"list","requestId":"l"}))
        .await?;
    let list = client.recv().await?;
    assert_eq!(list["users"], json!([]), "only itself registered: {list}");
    Ok(())
}

/// RFC 6455 §8.1 and §7.4: a text frame that is not UTF-8 fails the connection with close
/// code 1007 (other protocol violations with 1002). The gateway used to end the TCP
/// connection without a close frame, so clients saw 1006.
#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007() -> Result<()> {
    let gateway = start(Config::default()).await;
    let mut client = Client::connect(&gateway.websocket_url()).await?;
    client
        .send_message(Message::Frame(Frame::message(
            b"{\"action\":\"ping\",\"x\":\"\xff\"}".to_vec(),
            OpCode::Data(Data::Text),
            true,
        )))
        .await?;
    assert_eq!(client.expect_close().await?, 1007);
    Ok(())
}

/// A wrong-typed field was refused with serde's message, which quotes the offending value
/// in full (escaped once by `Debug` and again by JSON): a 30 KB frame of `\"` got a 60 KB
/// `error` back, and a 120 KB fragmented one a reply over API Gateway's 128 KB limit.
#[tokio::test]
async fn error_replies_stay_small_whatever_the_frame() -> Result<()> {
    let gateway = start(Config::default()).await;
    let mut client = Client::connect(&gateway.websocket_url()).await?;
    let frame = format!(
        r#"{{"action":"message","message":"x","requestId":"e","receivers":"{}"}}"#,
        r#"\""#.repeat(15_000)
    );
    client.send_text(&frame).await?;
    let Some(Incoming::Text(reply)) = client.next(webchat_testkit::client::WAIT).await else {
        panic!("expected a text reply");
    };
    assert!(reply.contains("invalid_field"));
    assert!(
        reply.len() <= 1024,
        "a {}-byte frame got a {}-byte error",
        frame.len(),
        reply.len()
    );
    Ok(())
}
