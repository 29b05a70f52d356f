//! The gateway under test, in this process, on a free port, and the handshake as a
//! WebSocket client sees it.
//!
//! The same test bodies run in two modes, chosen by `WEBCHAT_LOCAL_MODE`: `in-process`
//! (the default: the handlers in this process) and `template` (`--template
//! templates/root.yml`: the functions' real binaries behind a Lambda Runtime API, on
//! their own dynalite; `cargo xtask test` runs the suites that matter both ways).

use std::path::PathBuf;
use webchat_local::template_mode::TemplateOptions;
use webchat_local::{Config, Running};
use webchat_testkit::Dynalite;

/// The variable that picks the mode.
pub(crate) const MODE_VAR: &str = "WEBCHAT_LOCAL_MODE";
/// Where the template mode finds the functions' binaries (default: this workspace's
/// `target/debug`, where `cargo build -p webchat-backend -p webchat-authorizer --bins`
/// puts them).
pub(crate) const FUNCTIONS_DIR_VAR: &str = "WEBCHAT_FUNCTIONS_DIR";

/// Whether this run puts the template's functions behind the routes.
pub(crate) fn template_mode() -> bool {
    match std::env::var(MODE_VAR).as_deref() {
        Ok("template") => true,
        Ok("in-process") | Err(_) => false,
        Ok(other) => panic!("{MODE_VAR}={other}: expected `in-process` or `template`"),
    }
}

/// A gateway under test, and what it needs kept alive (template mode's dynalite).
pub(crate) struct TestGateway {
    running: Running,
    _dynalite: Option<Dynalite>,
}

impl std::ops::Deref for TestGateway {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.running
    }
}

impl TestGateway {
    /// Stops the gateway, then its dynalite.
    pub(crate) async fn stop(self) {
        self.running.stop().await;
    }
}

pub(crate) async fn start(config: Config) -> TestGateway {
    let (config, dynalite) = in_mode(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    });
    let running = webchat_local::start(config).await.expect("gateway starts");
    TestGateway {
        running,
        _dynalite: dynalite,
    }
}

/// `config` as this run's mode has it; in template mode, with the dynalite it needs
/// when `config` names none.
pub(crate) fn in_mode(config: Config) -> (Config, Option<Dynalite>) {
    if !template_mode() {
        return (config, None);
    }
    let mut dynalite = None;
    let endpoint = match &config.dynamodb_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => dynalite.insert(Dynalite::start()).endpoint(),
    };
    let template = template_options(&config);
    (
        Config {
            dynamodb_endpoint: Some(endpoint),
            template: Some(template),
            ..config
        },
        dynalite,
    )
}

/// The template's functions for `config`: its rate limits as the template's
/// parameters, and a stack name of its own, so gateways sharing a dynalite do not meet.
pub(crate) fn template_options(config: &Config) -> TemplateOptions {
    let root = webchat_testkit::workspace_root();
    let functions_dir = std::env::var_os(FUNCTIONS_DIR_VAR)
        .map_or_else(|| root.join("target/debug"), PathBuf::from);
    assert!(
        webchat_local::template_mode::executable(&functions_dir, "webchat-lambda").is_some()
            && webchat_local::template_mode::executable(&functions_dir, "webchat-authorizer")
                .is_some(),
        "template mode runs the Lambda binaries from {} ({FUNCTIONS_DIR_VAR}); build them \
         first: cargo build -p webchat-backend -p webchat-authorizer --bins",
        functions_dir.display()
    );
    let limits = &config.limits;
    let mut options = TemplateOptions::new(root.join("templates/root.yml"), functions_dir);
    options.parameter_overrides = vec![
        (
            "MessageRatePerSecond".into(),
            limits.message.per_second().to_string(),
        ),
        ("MessageBurst".into(), limits.message.burst().to_string()),
        (
            "ActionRatePerSecond".into(),
            limits.action.per_second().to_string(),
        ),
        ("ActionBurst".into(), limits.action.burst().to_string()),
        ("HistoryDays".into(), limits.history_days.to_string()),
        // Big rooms go through the template's queue and fan-out function.
        ("FanoutInline".into(), config.fanout_inline.to_string()),
    ];
    options.stack_name = format!("t{:08x}", rand::random::<u32>());
    options
}

/// How a WebSocket handshake ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// 101: the socket opened.
    Accepted,
    /// Refused with this status; `message` is the JSON body's `message`.
    Refused { status: u16, message: String },
}

impl Handshake {
    pub(crate) fn refused(status: u16, message: &str) -> Handshake {
        Handshake::Refused {
            status,
            message: message.to_string(),
        }
    }
}

/// Opens a WebSocket to `url` and says how the handshake ended.
pub(crate) async fn handshake(url: &str) -> Handshake {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Handshake::Accepted,
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|json| json["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    format!("no JSON message in {:?}", String::from_utf8_lossy(body))
                });
            Handshake::Refused {
                status: response.status().as_u16(),
                message,
            }
        }
        Err(other) => panic!("handshake failed otherwise: {other}"),
    }
}

/// The `webchat-local` binary as its own process on a free port with these further
/// arguments, once its ready line is out; and the WebSocket URL that line names.
pub(crate) fn gateway_process(args: &[&str]) -> anyhow::Result<(webchat_testkit::Process, String)> {
    gateway_process_with(args, &[])
}

/// [`gateway_process`] with these environment variables too.
pub(crate) fn gateway_process_with(
    args: &[&str],
    vars: &[(&str, &str)],
) -> anyhow::Result<(webchat_testkit::Process, String)> {
    use anyhow::Context;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_webchat-local"));
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .envs(vars.iter().copied());
    // Template mode keeps its state in DynamoDB: with an endpoint, run the template.
    if template_mode() && args.contains(&"--dynamodb-endpoint") {
        let options = template_options(&Config::default());
        command
            .arg("--template")
            .arg(&options.path)
            .arg("--functions-dir")
            .arg(&options.functions_dir);
    }
    let process = webchat_testkit::Launch::new("webchat-local", command)
        .until_ready(
            webchat_local::READY_LINE_PREFIX,
            std::time::Duration::from_secs(30),
        )
        .context("webchat-local starts")?;
    let url = websocket_url(&process)?;
    Ok((process, url))
}

/// The WebSocket URL a started `webchat-local`'s ready line names.
pub(crate) fn websocket_url(process: &webchat_testkit::Process) -> anyhow::Result<String> {
    use anyhow::Context;
    Ok(process
        .ready_line()
        .split_whitespace()
        .find(|word| word.starts_with("ws://"))
        .context("the ready line names the WebSocket URL")?
        .to_string())
}
