//! `webchat-local`: run the chat with no AWS account.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use webchat_backend::limits::{self, Limits, RateLimit};
use webchat_local::{AccessKey, Config, ManagementAuth};

// Every push allocates dozens of small buffers across threads (SDK request, hyper,
// WebSocket frame); glibc's malloc spent about a quarter of the gateway's CPU on them
// under load (perf, 200 clients all sending).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An API Gateway WebSocket API on this machine, running the webchat handlers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Stage name: the WebSocket is served at <ws://ADDR/STAGE>.
    #[arg(long, default_value = webchat_shared_types::DEFAULT_STAGE)]
    stage: String,
    /// Serve this directory (the built UI, e.g. dist/) at / with a generated /config.json.
    #[arg(long, value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Keep connections in `DynamoDB` at this endpoint (e.g. dynalite), creating the tables
    /// if missing; without it they are kept in memory.
    #[arg(long, value_name = "URL")]
    dynamodb_endpoint: Option<String>,
    /// Connections table name (with --dynamodb-endpoint).
    #[arg(long, env = "CONNECTIONS_TABLE", default_value = webchat_local::DEFAULT_CONNECTIONS_TABLE)]
    connections_table: String,
    /// Names table name (with --dynamodb-endpoint).
    #[arg(long, env = "NAMES_TABLE", default_value = webchat_local::DEFAULT_NAMES_TABLE)]
    names_table: String,
    /// Room members table name (with --dynamodb-endpoint).
    #[arg(long, env = "MEMBERS_TABLE", default_value = webchat_local::DEFAULT_MEMBERS_TABLE)]
    members_table: String,
    /// Room messages table name (with --dynamodb-endpoint).
    #[arg(long, env = "MESSAGES_TABLE", default_value = webchat_local::DEFAULT_MESSAGES_TABLE)]
    messages_table: String,
    /// Seconds without a client frame before the connection is closed (1001).
    #[arg(long, value_name = "SECS", default_value_t = webchat_shared_types::IDLE_TIMEOUT_SECS)]
    idle_timeout: u64,
    /// Seconds after which every connection is closed (1001).
    #[arg(long, value_name = "SECS", default_value_t = webchat_shared_types::MAX_CONNECTION_LIFETIME_SECS)]
    max_lifetime: u64,
    /// The region management API signatures must be scoped to.
    #[arg(long, default_value = webchat_local::DEFAULT_REGION)]
    region: String,
    /// How the @connections API checks callers: `sigv4` (as on AWS: signed with
    /// `AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY` from this environment, else a printed
    /// development key) or `none` (anyone who reaches the port).
    #[arg(long, value_enum, default_value_t = AuthMode::Sigv4)]
    management_auth: AuthMode,
    /// `message` frames each connection may send per second, on average.
    #[arg(long, conflicts_with = "template", value_name = "PER_SECOND", env = limits::MESSAGE_RATE_VAR,
          default_value_t = Limits::DEFAULT.message.per_second(),
          value_parser = |v: &str| limits::parse_rate("--message-rate", v))]
    message_rate: f64,
    /// `message` frames each connection may send at once.
    #[arg(long, conflicts_with = "template", value_name = "FRAMES", env = limits::MESSAGE_BURST_VAR,
          default_value_t = Limits::DEFAULT.message.burst(),
          value_parser = |v: &str| limits::parse_burst("--message-burst", v))]
    message_burst: u32,
    /// Other frames (`register`, `list`, `ping`, unknown actions) each connection may send
    /// per second, on average.
    #[arg(long, conflicts_with = "template", value_name = "PER_SECOND", env = limits::ACTION_RATE_VAR,
          default_value_t = Limits::DEFAULT.action.per_second(),
          value_parser = |v: &str| limits::parse_rate("--action-rate", v))]
    action_rate: f64,
    /// Other frames each connection may send at once.
    #[arg(long, conflicts_with = "template", value_name = "FRAMES", env = limits::ACTION_BURST_VAR,
          default_value_t = Limits::DEFAULT.action.burst(),
          value_parser = |v: &str| limits::parse_burst("--action-burst", v))]
    action_burst: u32,
    /// Days room messages are kept for `history` (with `--dynamodb-endpoint` they survive
    /// a restart; in memory they last as long as the process).
    #[arg(long, conflicts_with = "template", value_name = "DAYS", env = limits::HISTORY_DAYS_VAR,
          default_value_t = Limits::DEFAULT.history_days,
          value_parser = |v: &str| limits::parse_history_days("--history-days", v))]
    history_days: u32,
    /// Rooms with more members than this hear a member count every few seconds instead
    /// of each arrival and departure, and list their members a page at a time.
    #[arg(long, conflicts_with = "template", value_name = "MEMBERS", env = limits::PRESENCE_LIMIT_VAR,
          default_value_t = Limits::DEFAULT.presence_limit,
          value_parser = |v: &str| limits::parse_presence_limit("--presence-limit", v))]
    presence_limit: u32,
    /// Sign-in on `$connect`: `off` (anyone connects) or `dev` (a development `OpenID`
    /// issuer on this port; `$connect` then needs `?token=` with its ID token). `dev`
    /// only listens on a loopback address.
    #[arg(long, value_enum, default_value_t = SignInMode::Off)]
    auth: SignInMode,
    /// The client id (`aud`) the development issuer signs ID tokens for.
    #[arg(long, value_name = "ID", default_value = webchat_local::dev_issuer::DEFAULT_CLIENT_ID)]
    auth_client_id: String,
    /// Seconds the development issuer's tokens last (a few, to watch a client renew them).
    #[arg(long, value_name = "SECS", default_value_t = webchat_local::dev_issuer::DEFAULT_TOKEN_LIFETIME_SECS)]
    auth_token_lifetime: u64,
    /// Run the routes as this SAM template wires them (e.g. templates/root.yml): each
    /// function's real binary behind a Lambda Runtime API, its environment, its tables.
    /// Needs --dynamodb-endpoint. The rate limits, history days, presence limit and
    /// fan-out threshold are then the template's parameters (--parameter-overrides), not
    /// flags.
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// With --template: the template's parameters, `Key=Value` as `sam deploy` takes them.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., requires = "template")]
    parameter_overrides: Vec<String>,
    /// With --template: instances each function may run at once.
    #[arg(long, value_name = "N", default_value_t = webchat_local::lambda::DEFAULT_MAX_INSTANCES,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_instances: u16,
    /// With --template: functions reach DynamoDB and @connections only as their roles allow.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    enforce_iam: bool,
    /// With --template: every SQS queue's visibility timeout is this many seconds instead
    /// of the template's (the fan-out queue's is 120 s), so a failed job comes back, and
    /// reaches the dead-letter queue, sooner. For trying failures out; the log says so.
    #[arg(long, value_name = "SECS", requires = "template",
          value_parser = clap::value_parser!(u64).range(0..=43_200))]
    queue_visibility_timeout: Option<u64>,
    /// With --template: where the functions' binaries are (DIR/<binary>/bootstrap, as
    /// `cargo xtask lambdas --host` builds them, or DIR/<binary>).
    #[arg(long, value_name = "DIR", default_value = "target/lambda-host")]
    functions_dir: PathBuf,
    /// Rooms with more members than this are pushed to by the fan-out workers (one job
    /// per shard of the room, on an in-process queue) instead of by the message handler.
    #[arg(long, conflicts_with = "template", value_name = "MEMBERS", env = webchat_backend::delivery::FANOUT_INLINE_VAR,
          default_value_t = webchat_backend::delivery::DEFAULT_FANOUT_INLINE,
          value_parser = |v: &str| webchat_backend::delivery::parse_fanout_inline("--fanout-inline", v))]
    fanout_inline: usize,
    /// Members per fan-out job (shard); tests use a few to split small rooms.
    #[arg(long, value_name = "MEMBERS", hide = true,
          default_value_t = webchat_backend::store::SHARD_SIZE,
          value_parser = |v: &str| v.parse::<usize>().ok().filter(|n| *n > 0).ok_or("a whole number of members, at least 1"))]
    fanout_shard_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SignInMode {
    Off,
    Dev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    Sigv4,
    None,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws=warn,hyper=warn")),
        )
        .with_target(false)
        .init();

    let config = Config {
        addr: args.addr,
        stage: args.stage,
        static_dir: args.static_dir,
        dynamodb_endpoint: args.dynamodb_endpoint,
        tables: webchat_backend::TableNames {
            connections: args.connections_table,
            names: args.names_table,
            members: args.members_table,
            messages: args.messages_table,
        },
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_lifetime: Duration::from_secs(args.max_lifetime),
        deliver_disconnects: true,
        region: args.region,
        management_auth: match args.management_auth {
            AuthMode::None => ManagementAuth::Off,
            AuthMode::Sigv4 => {
                ManagementAuth::SigV4(AccessKey::from_env().unwrap_or_else(AccessKey::development))
            }
        },
        management_iam: None,
        limits: Limits {
            message: RateLimit::new(args.message_rate, args.message_burst),
            action: RateLimit::new(args.action_rate, args.action_burst),
            history_days: args.history_days,
            presence_limit: args.presence_limit,
        },
        auth: match args.auth {
            SignInMode::Off => webchat_local::Auth::Off,
            SignInMode::Dev => webchat_local::Auth::Dev {
                client_id: args.auth_client_id,
            },
        },
        auth_token_lifetime: Duration::from_secs(args.auth_token_lifetime),
        template: match args.template {
            None => None,
            Some(path) => Some(webchat_local::template_mode::TemplateOptions {
                path,
                parameter_overrides: webchat_templates::deployment::parse_parameter_overrides(
                    &args.parameter_overrides,
                )?,
                max_instances: usize::from(args.max_instances),
                enforce_iam: args.enforce_iam,
                functions_dir: args.functions_dir,
                stack_name: webchat_local::template_mode::LOCAL_STACK_NAME.to_string(),
                queue_visibility_timeout: args.queue_visibility_timeout.map(Duration::from_secs),
            }),
        },
        fanout_inline: args.fanout_inline,
        fanout_shard_size: args.fanout_shard_size,
    };
    let auth_lines = describe_auth(&config);
    let mut warnings = Vec::new();
    if matches!(config.management_auth, ManagementAuth::Off) {
        warnings.push(
            "WARNING: --management-auth none: the @connections API checks no signature; \
             anyone who reaches this port can post to or close any connection"
                .to_string(),
        );
    }
    if !config.addr.ip().is_loopback() {
        warnings.push(exposure_warning(&config));
    }
    if config.auth != webchat_local::Auth::Off {
        warnings.push(
            "WARNING: --auth dev: a development sign-in with no password; anyone who reaches \
             this machine's loopback can sign in as any name. Never use it for a deployment."
                .to_string(),
        );
    }
    let template = config.template.as_ref().map(|t| {
        format!(
            "{} (binaries from {}, up to {} instances per function, IAM {})",
            t.path.display(),
            t.functions_dir.display(),
            t.max_instances,
            if t.enforce_iam {
                "enforced"
            } else {
                "not enforced"
            }
        )
    });
    if config.template.as_ref().is_some_and(|t| !t.enforce_iam) {
        warnings.push(
            "WARNING: --enforce-iam false: the functions' DynamoDB and @connections calls are \
             not checked against their roles; a missing grant will only show on AWS"
                .to_string(),
        );
    }
    let store = match &config.dynamodb_endpoint {
        Some(endpoint) => format!("DynamoDB at {endpoint}"),
        None => "in memory".to_string(),
    };
    let serves_ui = config.static_dir.is_some();
    let config_limits = config.limits;
    let running = webchat_local::start(config).await?;
    // Scripts and tests read the first line for the URL.
    println!(
        "{}{}",
        webchat_local::READY_LINE_PREFIX,
        running.websocket_url()
    );
    println!(
        "management endpoint: {}/@connections/{{connectionId}}",
        running.management_endpoint()
    );
    println!("connections kept {store}");
    match template {
        Some(template) => {
            println!(
                "routes run by the functions of {template}; rate limits as its parameters say"
            );
        }
        None => println!(
            "rate limits per connection: message {}, other frames {}",
            config_limits.message, config_limits.action
        ),
    }
    if let Some(sqs) = running.sqs_endpoint() {
        println!(
            "SQS endpoint of the template's queues: {sqs} (JSON protocol; the functions get it \
             as AWS_ENDPOINT_URL_SQS; e.g. aws --endpoint-url {sqs} sqs list-queues)"
        );
    }
    if let Some(issuer) = running.issuer_url() {
        println!(
            "development sign-in: issuer {issuer} ({issuer}/.well-known/openid-configuration); \
             $connect needs ?token=<ID token>"
        );
    }
    for line in auth_lines {
        println!("{line}");
    }
    for warning in warnings {
        eprintln!("{warning}");
    }
    if serves_ui {
        println!("chat UI: http://{}/", running.addr());
    }
    println!(
        "metrics (Prometheus text): http://{}{}",
        running.addr(),
        webchat_local::METRICS_PATH
    );

    tokio::signal::ctrl_c().await?;
    println!("webchat-local stopping");
    running.stop().await;
    Ok(())
}

/// What the start-up banner says about the management API's credentials.
fn describe_auth(config: &Config) -> Vec<String> {
    match &config.management_auth {
        ManagementAuth::Off => vec!["management API checks no signature".to_string()],
        ManagementAuth::SigV4(key) if key.access_key_id == AccessKey::development().access_key_id => vec![
            format!(
                "management API requires SigV4 for service execute-api, region {}, with the development key:",
                config.region
            ),
            format!("  AWS_ACCESS_KEY_ID={}", key.access_key_id),
            format!("  AWS_SECRET_ACCESS_KEY={}", key.secret_access_key),
        ],
        ManagementAuth::SigV4(key) => vec![format!(
            "management API requires SigV4 for service execute-api, region {}, signed by {} (from this environment)",
            config.region, key.access_key_id
        )],
    }
}

/// Said when the gateway listens beyond this machine.
fn exposure_warning(config: &Config) -> String {
    let management = match &config.management_auth {
        ManagementAuth::Off => "post to or close any connection without credentials",
        ManagementAuth::SigV4(_) => "call the @connections API if they hold the key above",
    };
    format!(
        "WARNING: listening on {}, which is not a loopback address: anyone who can reach it \
         can open chat connections, register names, read every broadcast{}, and {management}. \
         This is a development emulator; use --addr 127.0.0.1:PORT unless you mean to share it.",
        config.addr,
        if config.static_dir.is_some() {
            ", load the UI"
        } else {
            ""
        }
    )
}
