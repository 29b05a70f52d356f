//! What one push costs the handler that sends it: CPU time of the thread that runs the
//! fan-out, per `PostToConnection`, with the backend's own management client.
//!
//! The client side is built as the Lambda builds it (an `SdkConfig` with a credentials
//! provider, `ManagementGateways`, `Retrying`, `fan_out`), on a current-thread runtime
//! alone on its thread, so `getrusage(RUSAGE_THREAD)` counts exactly what the handler
//! spends: the SDK, signing, HTTP/1.1, the sockets' system calls and the runtime's timers.
//! The management API is a minimal axum server on another thread answering 200, so its
//! CPU is not counted.

use anyhow::{bail, Context, Result};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use webchat_backend::{fan_out, ManagementGateways, Retrying};

/// Pushes per measured round, and rounds (the median is reported).
const PUSHES: usize = 5_000;
const ROUNDS: usize = 5;
/// Pushes before measuring: fills the connection pool and the identity cache.
const WARM_UP: usize = 1_000;

/// A message frame of the size the chat sends (sender, receiver, a short text, ids).
const FRAME: &str = r#"{"action":"message","sender":{"connectionId":"L0SM9cOFvHcCIhw=","userName":"ana"},"receiver":{"connectionId":"K1a2b3c4d5e6f7g=","userName":"bia"},"message":"hello everyone, how is it going?","messageId":"01JDXK4M6Q2ZB7W3C9V5N8R1TA","private":false}"#;

/// What one measurement found.
pub(crate) struct PushCost {
    /// Median CPU per push of the pushing thread.
    pub cpu_per_push_us: f64,
    /// Median pushes per second of wall time, for context (the server shares the cores).
    pub pushes_per_sec: f64,
}

/// Runs the management API stub and the pushing thread, and measures.
pub(crate) fn measure() -> Result<PushCost> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::Builder::new()
        .name("push-bench-api".into())
        .spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?)?;
                let app = axum::Router::new().route(
                    "/Prod/@connections/{id}",
                    axum::routing::post(|| async { axum::http::StatusCode::OK }),
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await?;
                Ok(())
            })
        })?;
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .context("the management API stub did not start")?;

    let pusher = std::thread::Builder::new()
        .name("push-bench-handler".into())
        .spawn(move || push_rounds(addr))?;
    let cost = pusher
        .join()
        .map_err(|_| anyhow::anyhow!("the pushing thread panicked"))?;
    let _ = stop_tx.send(());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the management API stub panicked"))??;
    cost
}

fn push_rounds(addr: SocketAddr) -> Result<PushCost> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIAWEBCHATBENCH0000",
                "webchat-bench-secret",
                Some("webchat-bench-session-token".to_string()),
                None,
                "bench",
            ))
            .timeout_config(webchat_backend::sdk::timeouts())
            .load()
            .await;
        let gateways = ManagementGateways::new(&sdk_config, Some(format!("http://{addr}/Prod")));
        let gateway = Retrying::new(
            gateways
                .for_event(&ApiGatewayWebsocketProxyRequest::default())
                .context("building the management client")?,
        );
        let deliveries = |n: usize| -> Vec<(String, String)> {
            (0..n)
                .map(|i| (format!("L0SM9cOF{i:07}="), FRAME.to_string()))
                .collect()
        };

        let warm = fan_out(&gateway, deliveries(WARM_UP)).await;
        if warm.delivered as usize != WARM_UP {
            bail!("warm-up: {warm:?}");
        }
        let mut cpu = Vec::with_capacity(ROUNDS);
        let mut rates = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let batch = deliveries(PUSHES);
            let (cpu_before, wall_before) = (thread_cpu()?, Instant::now());
            let outcome = fan_out(&gateway, batch).await;
            let (cpu_after, wall) = (thread_cpu()?, wall_before.elapsed());
            if outcome.delivered as usize != PUSHES {
                bail!("{PUSHES} pushes: {outcome:?}");
            }
            cpu.push(cpu_after.saturating_sub(cpu_before).as_secs_f64() * 1e6 / PUSHES as f64);
            rates.push(PUSHES as f64 / wall.as_secs_f64());
        }
        cpu.sort_by(f64::total_cmp);
        rates.sort_by(f64::total_cmp);
        println!(
            "    CPU per push in each round: {}",
            cpu.iter()
                .map(|us| format!("{us:.1} µs"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(PushCost {
            cpu_per_push_us: cpu[ROUNDS / 2],
            pushes_per_sec: rates[ROUNDS / 2],
        })
    })
}

/// User plus system CPU time of the calling thread.
fn thread_cpu() -> Result<Duration> {
    // SAFETY: getrusage writes into the zeroed struct it is given and nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrusage(RUSAGE_THREAD)");
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}
