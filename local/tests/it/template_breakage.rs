//! `--template` catches what would otherwise show up only on AWS: each test runs
//! `webchat-local --template` on a copy of the templates with one mistake in it, and a
//! client (and the log) sees it as it would after a deploy (a missing SQS grant among
//! them); and the unbroken template's authorizer guards `$connect` with sign-in on.

use crate::common::{self, template_options};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use webchat_local::Config;
use webchat_testkit::{Client, Dynalite};

/// A copy of `templates/*.yml` in a scratch directory, removed when dropped.
struct TemplateCopy {
    dir: PathBuf,
}

impl TemplateCopy {
    /// The templates, each passed through `edit(file name, text)`.
    fn new(name: &str, edit: impl Fn(&str, String) -> String) -> Result<TemplateCopy> {
        let dir =
            std::env::temp_dir().join(format!("webchat-template-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let source = webchat_testkit::workspace_root().join("templates");
        for entry in std::fs::read_dir(&source)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yml") {
                let file = path
                    .file_name()
                    .context("a file name")?
                    .to_string_lossy()
                    .to_string();
                let text = std::fs::read_to_string(&path)?;
                std::fs::write(dir.join(&file), edit(&file, text))?;
            }
        }
        Ok(TemplateCopy { dir })
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root.yml")
    }
}

impl Drop for TemplateCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} occurs once in the template"
    );
    text.replacen(from, to, 1)
}

/// `webchat-local --template` on `copy`, with its log kept.
struct Broken {
    _process: webchat_testkit::Process,
    url: String,
    log: PathBuf,
    _dynalite: Dynalite,
    _copy: TemplateCopy,
}

impl Broken {
    fn start(copy: TemplateCopy) -> Result<Broken> {
        Broken::start_with(copy, &[])
    }

    fn start_with(copy: TemplateCopy, args: &[&str]) -> Result<Broken> {
        let dynalite = Dynalite::start();
        let options = template_options(&Config::default());
        let log = copy.dir.join("webchat-local.log");
        let mut command = webchat_testkit::template_gateway_command(
            Path::new(env!("CARGO_BIN_EXE_webchat-local")),
            &copy.root(),
            &options.functions_dir,
            &dynalite.endpoint(),
        );
        command.args(args);
        let process = webchat_testkit::Launch::new("webchat-local --template", command)
            .log_to(&log)
            .until_ready(webchat_local::READY_LINE_PREFIX, Duration::from_secs(30))?;
        let url = crate::common::websocket_url(&process)?;
        Ok(Broken {
            _process: process,
            url,
            log,
            _dynalite: dynalite,
            _copy: copy,
        })
    }

    /// Waits (a little) until the log has a line containing every one of `words`.
    async fn log_line_with(&self, words: &[&str]) -> Option<String> {
        for _ in 0..50 {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|line| words.iter().all(|w| line.contains(w)))
            {
                return Some(line.to_string());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// API Gateway's answer to a frame whose function failed.
fn assert_internal_server_error(reply: &Value) {
    assert_eq!(reply["message"], "Internal server error", "{reply}");
    assert!(
        reply["connectionId"]
            .as_str()
            .is_some_and(|id| id.len() == 16),
        "{reply}"
    );
    assert!(reply["requestId"].is_string(), "{reply}");
}

#[tokio::test]
async fn a_renamed_environment_variable_fails_the_cold_start_and_refuses_the_handshake(
) -> Result<()> {
    let copy = TemplateCopy::new("renamed-env", |file, text| {
        if file == "websocket.yml" {
            replace_once(
                &text,
                "        CONNECTIONS_TABLE:\n",
                "        CONNECTION_TABLE:\n",
            )
        } else {
            text
        }
    })?;
    let gateway = Broken::start(copy)?;
    assert_eq!(
        common::handshake(&gateway.url).await,
        common::Handshake::refused(500, "Internal server error"),
        "a $connect function that cannot start refuses the handshake, as on AWS"
    );
    let line = gateway.log_line_with(&["CONNECTIONS_TABLE"]).await;
    assert!(
        line.is_some(),
        "the log names the missing variable:\n{}",
        gateway.log_text()
    );
    Ok(())
}

#[tokio::test]
async fn a_function_past_its_timeout_is_killed_and_the_client_gets_internal_server_error(
) -> Result<()> {
    // DynamoDB that accepts connections and never answers: the register function waits
    // on it past its one-second Timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_endpoint = format!("http://{}", silent.local_addr()?);
    let copy = TemplateCopy::new("timeout", |file, text| {
        if file != "websocket.yml" {
            return text;
        }
        replace_once(
            &text,
            "        LogGroup: !Ref RegisterFunctionLogGroup\n      Environment:\n        \
             Variables:\n",
            &format!(
                "        LogGroup: !Ref RegisterFunctionLogGroup\n      Timeout: 1\n      \
                 Environment:\n        Variables:\n          AWS_ENDPOINT_URL_DYNAMODB: \
                 {silent_endpoint}\n"
            ),
        )
    })?;
    let gateway = Broken::start(copy)?;
    let mut client = Client::connect(&gateway.url).await?;
    client
        .send(json!({"action":"register","userName":"ana","requestId":"r"}))
        .await?;
    let reply = client.recv().await?;
    assert_internal_server_error(&reply);
    let line = gateway
        .log_line_with(&["Task timed out after 1.00 seconds"])
        .await;
    assert!(
        line.is_some(),
        "the log says the task timed out:\n{}",
        gateway.log_text()
    );
    drop(silent);
    Ok(())
}

/// `text` through `webchat_templates::edit_strings`, replacing each value `from` whose
/// path starts with `under` by `to`; at least one must be.
fn edit_values(file: &str, text: &str, under: &[&str], from: &str, to: &str) -> String {
    let mut edited = 0;
    let out = webchat_templates::edit_strings(file, text, |path, value| {
        (path.starts_with(under) && value == from).then(|| {
            edited += 1;
            to.to_string()
        })
    })
    .expect("the template edits");
    assert!(edited > 0, "{file} has {from:?} under {under:?}");
    out
}

/// Connects and registers `name`, expecting it to work.
async fn registered(url: &str, name: &str) -> Result<Client> {
    let mut client = Client::connect(url).await?;
    let reply = client
        .request(json!({"action":"register","userName":name,"requestId":"r"}))
        .await?;
    assert_eq!(reply["action"], "registered", "{reply}");
    Ok(client)
}

#[tokio::test]
async fn a_route_wired_to_the_wrong_function_meets_that_functions_role() -> Result<()> {
    // `list` runs the ping function, whose role may not read the room's members.
    let copy = TemplateCopy::new("wrong-route", |file, text| {
        if file == "websocket.yml" {
            replace_once(
                &text,
                "      Target: !Sub \"integrations/${ListIntegration}\"\n",
                "      Target: !Sub \"integrations/${PingIntegration}\"\n",
            )
        } else {
            text
        }
    })?;
    let gateway = Broken::start(copy)?;
    let mut ana = registered(&gateway.url, "ana").await?;
    let reply = ana
        .request(json!({"action":"list","requestId":"l"}))
        .await?;
    assert_eq!(
        reply["action"], "error",
        "list answered by the ping function's role fails: {reply}"
    );
    let line = gateway
        .log_line_with(&[
            "AccessDeniedException",
            "PingFunction",
            // Whichever read of the room's members list makes first.
            "is not authorized to perform: dynamodb:",
        ])
        .await;
    assert!(
        line.is_some(),
        "the log names the denial, the function and the action:\n{}",
        gateway.log_text()
    );
    Ok(())
}

#[tokio::test]
async fn a_removed_grant_answers_the_request_with_an_error_and_logs_access_denied() -> Result<()> {
    let copy = TemplateCopy::new("removed-grant", |file, text| {
        if file == "websocket.yml" {
            edit_values(
                file,
                &text,
                &["Resources", "RegisterFunctionRole"],
                "dynamodb:PutItem",
                "dynamodb:DescribeTable",
            )
        } else {
            text
        }
    })?;
    let gateway = Broken::start(copy)?;
    let mut client = Client::connect(&gateway.url).await?;
    let reply = client
        .request(json!({"action":"register","userName":"ana","requestId":"r"}))
        .await?;
    assert_eq!(
        reply["action"], "error",
        "register without its PutItem grant fails: {reply}"
    );
    let line = gateway
        .log_line_with(&[
            "AccessDeniedException",
            "RegisterFunction",
            "dynamodb:PutItem",
        ])
        .await;
    assert!(
        line.is_some(),
        "the log names AccessDeniedException, the function and the action:\n{}",
        gateway.log_text()
    );
    Ok(())
}

#[tokio::test]
async fn a_message_function_denied_the_fanout_queue_still_delivers_to_a_big_room() -> Result<()> {
    let copy = TemplateCopy::new("no-send-message", |file, text| {
        if file == "websocket.yml" {
            edit_values(
                file,
                &text,
                &["Resources", "MessageFunctionRole"],
                "sqs:SendMessage",
                "sqs:GetQueueAttributes",
            )
        } else {
            text
        }
    })?;
    // Three members are a big room: the message function queues its job.
    let gateway = Broken::start_with(copy, &["--parameter-overrides", "FanoutInline=2"])?;
    let mut members = Vec::new();
    for name in ["ana", "ben", "cy"] {
        let mut client = registered(&gateway.url, name).await?;
        let joined = client
            .request(json!({"action": "join", "room": "big", "requestId": "j"}))
            .await?;
        assert_eq!(joined["action"], "joined", "{joined}");
        members.push(client);
    }
    let sent = members[0]
        .request(
            json!({"action": "message", "room": "big", "message": "still here", "requestId": "m"}),
        )
        .await?;
    assert_eq!(sent["action"], "sent", "{sent}");
    // SQS refused the job; the handler pushed it itself.
    for member in &mut members[1..] {
        let frame = member
            .recv_where("the message", |f: &Value| f["action"] == "message")
            .await?;
        assert_eq!(frame["message"], "still here", "{frame}");
    }
    let denied = gateway
        .log_line_with(&["AccessDenied", "MessageFunction", "sqs:SendMessage"])
        .await;
    // The function met SQS's AccessDenied, naming the action, and pushed the job itself.
    let pushed = gateway
        .log_line_with(&[
            "MessageFunction",
            "pushing a fan-out job the queue refused from the handler",
            "AccessDenied",
            "is not authorized to perform: sqs:SendMessage",
        ])
        .await;
    assert!(
        denied.is_some() && pushed.is_some(),
        "the log names AccessDenied, the function and the action:\n{}",
        gateway.log_text()
    );
    Ok(())
}

#[tokio::test]
async fn a_fanout_role_that_may_not_receive_from_its_queue_stops_the_start_naming_the_mapping() {
    // Lambda polls with the function's role: CreateEventSourceMapping (and the deploy)
    // fails without sqs:ReceiveMessage on the queue.
    let copy = TemplateCopy::new("no-receive-message", |file, text| {
        if file == "websocket.yml" {
            edit_values(
                file,
                &text,
                &["Resources", "FanoutFunctionRole"],
                "sqs:ReceiveMessage",
                "sqs:ListQueues",
            )
        } else {
            text
        }
    })
    .expect("a copy");
    let dynalite = Dynalite::start();
    let mut options = template_options(&Config::default());
    options.path = copy.root();
    let started = webchat_local::start(Config {
        addr: "127.0.0.1:0".parse().expect("an address"),
        dynamodb_endpoint: Some(dynalite.endpoint()),
        template: Some(options),
        ..Config::default()
    })
    .await;
    let Err(err) = started else {
        panic!("the start is refused");
    };
    let message = format!("{:#}", anyhow::Error::new(err));
    assert!(
        message.contains("event source FanoutEventSource")
            && message.contains("does not have permissions to call ReceiveMessage on SQS")
            && message.contains("sqs:ReceiveMessage"),
        "{message}"
    );
}

#[tokio::test]
async fn a_table_whose_sort_key_changed_fails_the_writes_that_use_the_old_one() -> Result<()> {
    let copy = TemplateCopy::new("sort-key", |file, text| {
        if file == "dynamodb.yml" {
            edit_values(
                file,
                &text,
                &["Resources", "MembersTable", "Properties"],
                "connectionId",
                "memberId",
            )
        } else {
            text
        }
    })?;
    let gateway = Broken::start(copy)?;
    let mut ana = Client::connect(&gateway.url).await?;
    let reply = ana
        .request(json!({"action":"register","userName":"ana","requestId":"r"}))
        .await?;
    assert_eq!(
        reply["action"], "error",
        "register, which joins the lobby's Members partition, fails: {reply}"
    );
    let line = gateway.log_line_with(&["ValidationException"]).await;
    assert!(
        line.is_some(),
        "the log says DynamoDB refused the key:\n{}",
        gateway.log_text()
    );
    Ok(())
}

#[tokio::test]
async fn with_sign_in_the_templates_own_authorizer_function_guards_connect() -> Result<()> {
    let copy = TemplateCopy::new("sign-in", |_, text| text)?;
    let gateway = Broken::start_with(copy, &["--auth", "dev"])?;
    assert_eq!(
        common::handshake(&gateway.url).await,
        common::Handshake::refused(401, "Unauthorized"),
        "no token: the authorizer answers Unauthorized"
    );
    let line = gateway
        .log_line_with(&["AuthorizerFunction", "REPORT RequestId"])
        .await;
    assert!(
        line.is_some(),
        "the template's AuthorizerFunction ran:\n{}",
        gateway.log_text()
    );
    Ok(())
}

#[test]
fn flags_the_template_sets_are_refused_beside_it_naming_both() {
    // In template mode the template's parameters set these; a flag beside it would be
    // silently ignored, so it is refused instead.
    for flag in ["--presence-limit", "--fanout-inline", "--message-rate"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-local"))
            .args(["--template", "templates/root.yml"])
            .args(["--dynamodb-endpoint", "http://127.0.0.1:9"])
            .args([flag, "5"])
            .output()
            .expect("webchat-local runs");
        assert_eq!(output.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains("--template"),
            "{flag}: {stderr}"
        );
    }
}
