//! `webchat-local`: run the chat with no AWS account.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use webchat_local::Config;

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
    /// Stage name: the WebSocket is served at ws://ADDR/STAGE.
    #[arg(long, default_value = webchat_shared_types::DEFAULT_STAGE)]
    stage: String,
    /// Serve this directory (the built UI, e.g. dist/) at / with a generated /config.json.
    #[arg(long, value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Keep connections in DynamoDB at this endpoint (e.g. dynalite), creating the tables
    /// if missing; without it they are kept in memory.
    #[arg(long, value_name = "URL")]
    dynamodb_endpoint: Option<String>,
    /// Connections table name (with --dynamodb-endpoint).
    #[arg(long, env = "CONNECTIONS_TABLE", default_value = "webchat-connections")]
    connections_table: String,
    /// Names table name (with --dynamodb-endpoint).
    #[arg(long, env = "NAMES_TABLE", default_value = "webchat-names")]
    names_table: String,
    /// Seconds without a client frame before the connection is closed (1001).
    #[arg(long, value_name = "SECS", default_value_t = webchat_shared_types::IDLE_TIMEOUT_SECS)]
    idle_timeout: u64,
    /// Seconds after which every connection is closed (1001).
    #[arg(long, value_name = "SECS", default_value_t = webchat_shared_types::MAX_CONNECTION_LIFETIME_SECS)]
    max_lifetime: u64,
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
        },
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_lifetime: Duration::from_secs(args.max_lifetime),
        deliver_disconnects: true,
    };
    let store = match &config.dynamodb_endpoint {
        Some(endpoint) => format!("DynamoDB at {endpoint}"),
        None => "in memory".to_string(),
    };
    let serves_ui = config.static_dir.is_some();
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
    if serves_ui {
        println!("chat UI: http://{}/", running.addr());
    }

    tokio::signal::ctrl_c().await?;
    println!("webchat-local stopping");
    running.stop().await;
    Ok(())
}
