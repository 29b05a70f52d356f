//! `--template` catches what would otherwise show up only on AWS: each test runs
//! `webchat-local --template` on a copy of the templates with one mistake in it, and a
//! client (and the log) sees it as it would after a deploy.

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
        let dynalite = Dynalite::start();
        let options = template_options(&Config::default());
        let log = copy.dir.join("webchat-local.log");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-local"));
        command
            .args([
                "--addr",
                "127.0.0.1:0",
                "--dynamodb-endpoint",
                &dynalite.endpoint(),
            ])
            .arg("--template")
            .arg(copy.root())
            .arg("--functions-dir")
            .arg(&options.functions_dir);
        let process = webchat_testkit::Launch::new("webchat-local --template", command)
            .log_to(&log)
            .until_ready(webchat_local::READY_LINE_PREFIX, Duration::from_secs(30))?;
        let url = process
            .ready_line()
            .split_whitespace()
            .find(|word| word.starts_with("ws://"))
            .context("the ready line names the WebSocket URL")?
            .to_string();
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
            "      Role: !GetAtt RegisterFunctionRole.Arn\n",
            &format!(
                "      Role: !GetAtt RegisterFunctionRole.Arn\n      Timeout: 1\n      \
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
