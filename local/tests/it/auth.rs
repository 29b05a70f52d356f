//! `--auth dev`: the development issuer's sign-in over real HTTP (login page, form,
//! redirect, PKCE token exchange), and `$connect` refused or accepted by the authorizer
//! over a real WebSocket handshake.

use crate::common;
use crate::common::{handshake, Handshake};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use webchat_local::{Auth, Config, Running, StartError};
use webchat_testkit::http;

const CLIENT_ID: &str = "webchat-local";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

async fn start_with_sign_in() -> common::TestGateway {
    common::start(Config {
        auth: Auth::Dev {
            client_id: CLIENT_ID.to_string(),
        },
        ..Config::default()
    })
    .await
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
        .into_bytes()
}

fn form_headers() -> Vec<(String, String)> {
    vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )]
}

/// `GET path` on the gateway.
async fn get(addr: SocketAddr, path: &str) -> http::Response {
    http::request(addr, "GET", path, &[], b"").await.unwrap()
}

/// The path part of an endpoint the discovery document names on this gateway.
fn path_of(url: &str, addr: SocketAddr) -> String {
    url.strip_prefix(&format!("http://{addr}"))
        .unwrap_or_else(|| panic!("{url} is not on {addr}"))
        .to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

struct Endpoints {
    authorize: String,
    token: String,
    logout: String,
}

async fn discover(addr: SocketAddr) -> Endpoints {
    let answer = get(addr, "/.well-known/openid-configuration").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let doc: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(doc["issuer"], format!("http://{addr}"));
    assert_eq!(
        doc["jwks_uri"],
        format!("http://{addr}/.well-known/jwks.json")
    );
    Endpoints {
        authorize: path_of(doc["authorization_endpoint"].as_str().unwrap(), addr),
        token: path_of(doc["token_endpoint"].as_str().unwrap(), addr),
        logout: path_of(doc["end_session_endpoint"].as_str().unwrap(), addr),
    }
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

/// Signs in as `name` the way a browser does Cognito's hosted UI: the login page, the
/// name form, the redirect's `code`, then the token endpoint with the PKCE verifier.
async fn sign_in(addr: SocketAddr, name: &str) -> Value {
    let endpoints = discover(addr).await;
    let (verifier, challenge) = pkce();
    let query = form(&[
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("state", "state-42"),
        ("scope", "openid profile"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let query = String::from_utf8(query).unwrap();
    let page = get(addr, &format!("{}?{query}", endpoints.authorize)).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.to_lowercase().contains("development sign-in"),
        "{}",
        page.body
    );
    assert!(page.body.contains("name=\"name\""), "{}", page.body);

    let mut fields: Vec<(&str, &str)> = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap())
        .collect();
    // The query's values are already encoded: decode the two that were.
    let decoded: Vec<(String, String)> = fields
        .drain(..)
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    let mut post: Vec<(&str, &str)> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post.push(("name", name));
    let redirect = http::request(
        addr,
        "POST",
        &endpoints.authorize,
        &form_headers(),
        &form(&post),
    )
    .await
    .unwrap();
    assert!([302, 303, 307].contains(&redirect.status), "{redirect:?}");
    let location = redirect.header("location").unwrap().to_string();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("state-42"));
    let code = percent_decode(&query_param(&location, "code").expect("a code"));

    let exchange = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", &verifier),
    ]);
    let answer = http::request(addr, "POST", &endpoints.token, &form_headers(), &exchange)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let tokens: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_u64().is_some_and(|s| s > 0));
    assert!(tokens["access_token"].as_str().is_some());

    // The code is single use.
    let again = http::request(addr, "POST", &endpoints.token, &form_headers(), &exchange)
        .await
        .unwrap();
    assert_eq!(again.status, 400, "{again:?}");
    tokens
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// What a refused sign-in answers the handshake, as API Gateway does.
fn unauthorized() -> Handshake {
    Handshake::refused(401, "Unauthorized")
}

#[tokio::test]
async fn without_a_token_connect_is_refused_401_unauthorized() {
    let running = start_with_sign_in().await;
    assert_eq!(handshake(&running.websocket_url()).await, unauthorized());
    assert_eq!(
        handshake(&format!("{}?token=", running.websocket_url())).await,
        unauthorized()
    );
    assert_eq!(running.open_connections(), 0);
    running.stop().await;
}

#[tokio::test]
async fn a_forged_token_is_refused() {
    let running = start_with_sign_in().await;
    let addr = running.addr();
    let tokens = sign_in(addr, "Ann").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let url = running.websocket_url();
    // Claims swapped for another user's under Ann's signature.
    let mallory = sign_in(addr, "Mallory").await;
    let parts: Vec<&str> = id_token.split('.').collect();
    let mallory_claims = mallory["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let forged = format!("{}.{}.{}", parts[0], mallory_claims, parts[2]);
    assert_eq!(
        handshake(&format!("{url}?token={forged}")).await,
        unauthorized()
    );
    // Unsigned.
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        parts[1]
    );
    assert_eq!(
        handshake(&format!("{url}?token={unsigned}")).await,
        unauthorized()
    );
    assert_eq!(
        handshake(&format!("{url}?token=garbage")).await,
        unauthorized()
    );
    assert_eq!(running.open_connections(), 0);
    running.stop().await;
}

#[tokio::test]
async fn a_token_from_the_dev_issuer_is_accepted() {
    let running = start_with_sign_in().await;
    let tokens = sign_in(running.addr(), "Ann").await;
    let url = format!(
        "{}?token={}",
        running.websocket_url(),
        tokens["id_token"].as_str().unwrap()
    );
    let _client = webchat_testkit::Client::join(&url, "Ann").await.unwrap();
    assert_eq!(running.open_connections(), 1);
    running.stop().await;
}

#[tokio::test]
async fn a_refresh_token_gets_new_tokens_for_the_same_name() {
    let running = start_with_sign_in().await;
    let addr = running.addr();
    let endpoints = discover(addr).await;
    let tokens = sign_in(addr, "Ann").await;
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");
    let refresh = |client_id: &'static str, token: String| {
        let token_url = endpoints.token.clone();
        async move {
            let body = form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("refresh_token", &token),
            ]);
            http::request(addr, "POST", &token_url, &form_headers(), &body)
                .await
                .unwrap()
        }
    };
    let answer = refresh(CLIENT_ID, refresh_token.to_string()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let renewed: Value = serde_json::from_str(&answer.body).unwrap();
    // As Cognito: new ID and access tokens, the refresh token is not repeated.
    assert!(renewed.get("refresh_token").is_none(), "{renewed}");
    let id_token = renewed["id_token"].as_str().expect("an ID token");
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["preferred_username"], "Ann");
    let url = format!("{}?token={id_token}", running.websocket_url());
    let _client = webchat_testkit::Client::join(&url, "Ann").await.unwrap();

    // It can be used again; an unknown one, or another client's use, cannot.
    assert_eq!(
        refresh(CLIENT_ID, refresh_token.to_string()).await.status,
        200
    );
    let unknown = refresh(CLIENT_ID, "nope".to_string()).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("invalid_grant"), "{}", unknown.body);
    assert_eq!(
        refresh("other", refresh_token.to_string()).await.status,
        400
    );
    running.stop().await;
}

#[tokio::test]
async fn a_wrong_pkce_verifier_gets_no_tokens() {
    let running = start_with_sign_in().await;
    let addr = running.addr();
    let endpoints = discover(addr).await;
    let (_, challenge) = pkce();
    let post = form(&[
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("name", "Ann"),
    ]);
    let redirect = http::request(addr, "POST", &endpoints.authorize, &form_headers(), &post)
        .await
        .unwrap();
    let location = redirect.header("location").unwrap().to_string();
    let code = percent_decode(&query_param(&location, "code").unwrap());
    let exchange = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", &"x".repeat(50)),
    ]);
    let answer = http::request(addr, "POST", &endpoints.token, &form_headers(), &exchange)
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.body.contains("invalid_grant"), "{}", answer.body);
    // Without PKCE the login page is not even offered.
    let page = get(
        addr,
        &format!(
            "{}?response_type=code&client_id={CLIENT_ID}&redirect_uri={}",
            endpoints.authorize,
            urlencode(REDIRECT_URI)
        ),
    )
    .await;
    assert_eq!(page.status, 400, "{page:?}");
    running.stop().await;
}

#[tokio::test]
async fn dev_sign_in_refuses_to_start_beyond_loopback() {
    let refused = webchat_local::start(Config {
        addr: "0.0.0.0:0".parse().unwrap(),
        auth: Auth::Dev {
            client_id: CLIENT_ID.to_string(),
        },
        ..Config::default()
    })
    .await;
    let Err(err @ StartError::AuthBeyondLoopback(_)) = refused else {
        panic!("started beyond loopback");
    };
    assert!(err.to_string().contains("loopback"), "{err}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-local"))
        .args(["--auth", "dev", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--auth dev") && stderr.contains("loopback"),
        "{stderr}"
    );
}

#[tokio::test]
async fn without_auth_connect_needs_no_token_and_no_issuer_is_served() {
    let running = common::start(Config::default()).await;
    assert_eq!(
        handshake(&running.websocket_url()).await,
        Handshake::Accepted
    );
    let answer = http::request(
        running.addr(),
        "GET",
        "/.well-known/openid-configuration",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 404);
    assert!(running.issuer_url().is_none());
    running.stop().await;
}

/// Opens a chat connection signed in with `tokens`.
async fn connect_signed_in(running: &Running, tokens: &Value) -> webchat_testkit::Client {
    let url = format!(
        "{}?token={}",
        running.websocket_url(),
        tokens["id_token"].as_str().unwrap()
    );
    webchat_testkit::Client::connect(&url).await.unwrap()
}

#[tokio::test]
async fn a_signed_in_person_registers_only_their_own_name_and_shares_it_across_tabs() {
    let running = start_with_sign_in().await;
    let ann = sign_in(running.addr(), "Ann").await;
    let mut tab1 = connect_signed_in(&running, &ann).await;
    let refused = tab1
        .request(serde_json::json!({"action":"register","userName":"Bob","requestId":"r"}))
        .await
        .unwrap();
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let first = tab1
        .request(serde_json::json!({"action":"register","userName":"Ann","requestId":"r"}))
        .await
        .unwrap();
    assert_eq!(first["action"], "registered", "{first}");
    let mut tab2 = connect_signed_in(&running, &ann).await;
    let second = tab2
        .request(serde_json::json!({"action":"register","userName":"Ann","requestId":"r"}))
        .await
        .unwrap();
    assert_eq!(second["action"], "registered", "{second}");
    // Both tabs get a message to the lobby.
    let mut bob = connect_signed_in(&running, &sign_in(running.addr(), "Bob").await).await;
    bob.request(serde_json::json!({"action":"register","userName":"Bob","requestId":"r"}))
        .await
        .unwrap();
    let sent = bob
        .request(serde_json::json!({"action":"message","message":"hi Ann","requestId":"m"}))
        .await
        .unwrap();
    assert_eq!(sent["delivered"], 2, "{sent}");
    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(
            tab.recv_action("message").await.unwrap()["message"],
            "hi Ann"
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn a_message_to_a_person_reaches_every_tab_and_waits_for_them_when_away() {
    let running = start_with_sign_in().await;
    let ann = sign_in(running.addr(), "Ann").await;
    let register =
        |name: &str| serde_json::json!({"action":"register","userName":name,"requestId":"r"});
    let mut tab1 = connect_signed_in(&running, &ann).await;
    let mut tab2 = connect_signed_in(&running, &ann).await;
    for tab in [&mut tab1, &mut tab2] {
        let registered = tab.request(register("Ann")).await.unwrap();
        assert_eq!(
            registered["conversations"],
            serde_json::json!([]),
            "{registered}"
        );
    }
    let mut bob = connect_signed_in(&running, &sign_in(running.addr(), "Bob").await).await;
    bob.request(register("Bob")).await.unwrap();

    let sent = bob
        .request(
            serde_json::json!({"action":"message","to":"ann","message":"lunch?","requestId":"m"}),
        )
        .await
        .unwrap();
    assert_eq!(sent["action"], "sent", "{sent}");
    assert_eq!(sent["delivered"], 2, "both of Ann's tabs: {sent}");
    let message_id = sent["messageId"].as_str().unwrap().to_string();
    for tab in [&mut tab1, &mut tab2] {
        let got = tab.recv_action("message").await.unwrap();
        assert_eq!(got["message"], "lunch?", "{got}");
        assert_eq!(got["sender"], "Bob");
        assert_eq!(got["to"], "Ann");
        assert_eq!(got["private"], true);
        assert_eq!(got["messageId"], message_id.as_str());
        assert!(got["room"].as_str().unwrap().starts_with("dm:"), "{got}");
    }

    // Ann closes every tab; Bob writes again while she is away.
    tab1.close().await;
    tab2.close().await;
    let away = bob
        .request(serde_json::json!({"action":"message","to":"Ann","message":"still on?","requestId":"m2"}))
        .await
        .unwrap();
    assert_eq!(away["action"], "sent", "{away}");
    let last_id = away["messageId"].as_str().unwrap().to_string();

    // She comes back on one tab: registered lists the conversation, history has both.
    let mut back = connect_signed_in(&running, &ann).await;
    let registered = back.request(register("Ann")).await.unwrap();
    assert_eq!(
        registered["conversations"],
        serde_json::json!([{"with":"Bob","lastMessageId":last_id}]),
        "{registered}"
    );
    let history = back
        .request(serde_json::json!({"action":"history","with":"bob","requestId":"h"}))
        .await
        .unwrap();
    assert_eq!(history["with"], "Bob", "{history}");
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["lunch?", "still on?"]);
    let missed = back
        .request(serde_json::json!({"action":"history","with":"Bob","after":message_id,"requestId":"h2"}))
        .await
        .unwrap();
    assert_eq!(
        missed["messages"][0]["messageId"],
        last_id.as_str(),
        "{missed}"
    );
    assert_eq!(missed["more"], false);
    running.stop().await;
}

#[tokio::test]
async fn signing_out_at_the_issuer_sends_the_browser_back() {
    let running = start_with_sign_in().await;
    let addr = running.addr();
    let endpoints = discover(addr).await;
    // Cognito's parameters, then OpenID Connect's: both come back.
    for back in ["logout_uri", "post_logout_redirect_uri"] {
        let query =
            String::from_utf8(form(&[("client_id", CLIENT_ID), (back, REDIRECT_URI)])).unwrap();
        let answer = get(addr, &format!("{}?{query}", endpoints.logout)).await;
        assert!((300..400).contains(&answer.status), "{answer:?}");
        assert_eq!(answer.header("location"), Some(REDIRECT_URI), "{answer:?}");
    }
    // Another client, or nowhere to go back to: an error page, no redirect.
    for query in [
        format!(
            "client_id=someone-else&logout_uri={}",
            urlencode(REDIRECT_URI)
        ),
        format!("client_id={CLIENT_ID}&logout_uri=javascript%3Aalert(1)"),
        format!("client_id={CLIENT_ID}"),
    ] {
        let answer = get(addr, &format!("{}?{query}", endpoints.logout)).await;
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
    }
    running.stop().await;
}
