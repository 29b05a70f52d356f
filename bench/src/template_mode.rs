//! `webchat-local --template`: the functions' real binaries behind the Lambda Runtime API,
//! wired by `templates/root.yml`, beside the in-process figures. Cold start (exec to
//! first `next`, the `Init Duration` of the `REPORT` line), a warm invocation (the
//! `REPORT` line's `Duration`, and a `ping`'s round trip as the client sees it), and the
//! broadcast to many clients.

use crate::{
    join_many, measured, one_at_a_time, percentile, round, step, unmeasured, Figure, Goal, Inbox,
    Options,
};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use webchat_testkit::{Client, Dynalite, Launch, Process};

/// Cold starts measured, each on a fresh gateway.
const RUNS: usize = 7;

/// `webchat-local --template` as a child process with its log in a file.
struct TemplateGateway {
    _process: Process,
    url: String,
    log: PathBuf,
}

impl TemplateGateway {
    /// `fanout_inline` overrides the template's `FanoutInline`.
    fn start(
        options: &Options,
        functions: &Path,
        dynalite: &Dynalite,
        log: PathBuf,
        fanout_inline: Option<usize>,
    ) -> Result<Self> {
        use webchat_backend::limits::{MAX_BURST, MAX_RATE_PER_SECOND};
        if !options.local_bin.is_file() {
            bail!("{} not found", options.local_bin.display());
        }
        let _ = std::fs::remove_file(&log);
        let mut command = webchat_testkit::template_gateway_command(
            &options.local_bin,
            &options.root.join("templates/root.yml"),
            functions,
            &dynalite.endpoint(),
        );
        command
            // As the other figures: every connection's rate limit lifted as far as it goes.
            .arg("--parameter-overrides")
            .arg(format!("MessageRatePerSecond={MAX_RATE_PER_SECOND}"))
            .arg(format!("MessageBurst={MAX_BURST}"))
            .arg(format!("ActionRatePerSecond={MAX_RATE_PER_SECOND}"))
            .arg(format!("ActionBurst={MAX_BURST}"))
            .arg("LogLevel=warn")
            .args(fanout_inline.map(|n| format!("FanoutInline={n}")))
            // The REPORT lines only; logging every route would measure the disk.
            .env("RUST_LOG", "warn,webchat_local::lambda=info");
        let process = Launch::new("webchat-local --template", command)
            .log_to(&log)
            .until_ready(webchat_local::READY_LINE_PREFIX, Duration::from_secs(30))?;
        let url = process.ready_line().to_string();
        Ok(TemplateGateway {
            _process: process,
            url,
            log,
        })
    }

    /// The `REPORT` lines of the function whose name contains `function` so far.
    fn reports(&self, function: &str) -> Vec<Report> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(function) && line.contains("REPORT RequestId"))
            .filter_map(Report::parse)
            .collect()
    }

    /// Waits until there are `count` of them.
    async fn wait_reports(&self, function: &str, count: usize) -> Result<Vec<Report>> {
        for _ in 0..100 {
            let reports = self.reports(function);
            if reports.len() >= count {
                return Ok(reports);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("{function} wrote fewer than {count} REPORT lines in 2 s")
    }
}

/// The figures of one `REPORT` line, in ms.
struct Report {
    duration: f64,
    init: Option<f64>,
}

impl Report {
    fn parse(line: &str) -> Option<Report> {
        let field = |name: &str| {
            let at = line.find(name)? + name.len();
            line[at..].split_whitespace().next()?.parse::<f64>().ok()
        };
        Some(Report {
            duration: field("\tDuration: ").or_else(|| field(" Duration: "))?,
            init: field("Init Duration: "),
        })
    }
}

/// Where `cargo xtask bench` puts the host build of the functions.
fn functions_dir(options: &Options) -> PathBuf {
    options.root.join("target/lambda-host")
}

pub(crate) async fn figures(options: &Options, figures: &mut Vec<Figure>) -> Result<()> {
    let init_name = "template mode: Lambda init, exec to first /runtime/invocation/next (ping function, median of 7)";
    let functions = functions_dir(options);
    if !functions.join("webchat-lambda/bootstrap").is_file() {
        figures.push(unmeasured(
            init_name,
            "not built (cargo xtask lambdas --host)",
            "ms",
            Goal::None,
        ));
        return Ok(());
    }
    let dynalite = Dynalite::start();
    let log_dir = options.root.join("target/bench");
    std::fs::create_dir_all(&log_dir)?;
    let log = log_dir.join("template-mode.log");

    step(&format!(
        "template mode: {RUNS} cold starts of the ping function, then a warm ping each"
    ));
    let (mut inits, mut warm_durations, mut warm_round_trips) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let gateway = TemplateGateway::start(options, &functions, &dynalite, log.clone(), None)?;
        let mut client = Client::connect(&gateway.url).await?;
        client
            .request(json!({"action":"ping","requestId":"cold"}))
            .await?;
        let started = Instant::now();
        client
            .request(json!({"action":"ping","requestId":"warm"}))
            .await?;
        warm_round_trips.push(started.elapsed().as_secs_f64() * 1000.0);
        let reports = gateway.wait_reports("PingFunction", 2).await?;
        inits.push(
            reports[0]
                .init
                .context("the first ping's REPORT has an Init Duration")?,
        );
        warm_durations.push(reports[1].duration);
        client.close().await;
    }
    for list in [&mut inits, &mut warm_durations, &mut warm_round_trips] {
        list.sort_by(f64::total_cmp);
    }
    figures.push(measured(
        init_name,
        round(percentile(&inits, 50.0), 2),
        "ms",
        Goal::None,
    ));
    figures.push(measured(
        "template mode: warm invocation, REPORT Duration (ping, median of 7)",
        round(percentile(&warm_durations, 50.0), 2),
        "ms",
        Goal::None,
    ));
    figures.push(measured(
        "template mode: warm ping, client round trip (median of 7)",
        round(percentile(&warm_round_trips, 50.0), 2),
        "ms",
        Goal::None,
    ));

    let clients = options.template_clients;
    let broadcasts = options.template_broadcasts;
    step(&format!(
        "template mode: registering {clients} clients, then {broadcasts} broadcasts one at a time"
    ));
    // Each series on tables of its own: a gateway stopped before leaves its connections
    // behind (no `$disconnect`), and the next series' arrivals would clean them up.
    let dynalite = Dynalite::start();
    let gateway = TemplateGateway::start(options, &functions, &dynalite, log.clone(), None)?;
    let inbox = Inbox::new();
    let started = Instant::now();
    let mut peers = join_many(&gateway.url, clients, "tpl", 16, &inbox).await?;
    figures.push(measured(
        &format!("template mode: {clients} clients connect and register"),
        round(started.elapsed().as_secs_f64(), 1),
        "s",
        Goal::None,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let timed = one_at_a_time(&mut peers, &inbox, broadcasts, "template", None).await?;
    let label = format!("template mode: broadcast to {clients} clients, all delivered");
    timed.push_figures(figures, &label, clients - 1, Goal::None);
    drop(gateway);
    for peer in peers {
        peer.close().await;
    }

    // The same through the big rooms' path as deployed: every message queued on SQS, one
    // job per shard, and pushed by the fan-out function its event source mapping feeds.
    step(&format!(
        "template mode, through SQS (FanoutInline=0): registering {clients} clients, then {broadcasts} broadcasts"
    ));
    let dynalite = Dynalite::start();
    let gateway = TemplateGateway::start(options, &functions, &dynalite, log, Some(0))?;
    let inbox = Inbox::new();
    let mut peers = join_many(&gateway.url, clients, "sqs", 16, &inbox).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let timed = one_at_a_time(&mut peers, &inbox, broadcasts, "template-sqs", None).await?;
    let label = format!(
        "template mode: broadcast to {clients} clients through SQS and the fan-out function, all delivered"
    );
    timed.push_figures(figures, &label, clients - 1, Goal::None);
    if gateway.reports("FanoutFunction").is_empty() {
        bail!("the fan-out function wrote no REPORT line: the broadcasts did not go through SQS");
    }
    drop(gateway);
    for peer in peers {
        peer.close().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[test]
    fn report_lines_are_read_as_lambda_writes_them() {
        let cold = "[f] REPORT RequestId: 1\tDuration: 27.23 ms\tBilled Duration: 28 ms\tMemory Size: 128 MB\tMax Memory Used: 25 MB\tInit Duration: 94.21 ms";
        let report = Report::parse(cold).unwrap();
        assert!((report.duration - 27.23).abs() < 1e-9);
        assert_eq!(report.init, Some(94.21));
        let warm = "[f] REPORT RequestId: 2\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 25 MB";
        assert_eq!(Report::parse(warm).unwrap().init, None);
    }
}
