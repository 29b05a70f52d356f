//! `webchat-local` as a child process, so the bench's clients never share its runtime.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use webchat_testkit::{Launch, Process};

pub struct LocalGateway {
    process: Process,
    pub url: String,
}

impl LocalGateway {
    /// Starts `binary --addr 127.0.0.1:0` (connections in memory) and waits for its ready
    /// line, which carries the URL. `WEBCHAT_BENCH_GATEWAY_LOG=FILE` keeps its output
    /// (warnings and errors) for diagnosis.
    pub fn start(binary: &Path) -> Result<LocalGateway> {
        Self::start_with(binary, None)
    }

    /// The same, keeping connections in the DynamoDB at `dynamodb_endpoint` when given.
    pub fn start_with(binary: &Path, dynamodb_endpoint: Option<&str>) -> Result<LocalGateway> {
        if !binary.is_file() {
            bail!(
                "{} not found; build it with `cargo build --release -p webchat-local`",
                binary.display()
            );
        }
        let mut command = Command::new(binary);
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(
                dynamodb_endpoint
                    .map(|endpoint| ["--dynamodb-endpoint", endpoint])
                    .into_iter()
                    .flatten(),
            )
            // Logging every connection and route invocation would measure the terminal.
            .env("RUST_LOG", "warn");
        let mut launch = Launch::new("webchat-local", command);
        if let Some(log) = std::env::var_os("WEBCHAT_BENCH_GATEWAY_LOG") {
            launch = launch.log_to(Path::new(&log));
        }
        let process =
            launch.until_ready(webchat_local::READY_LINE_PREFIX, Duration::from_secs(20))?;
        let url = process.ready_line().to_string();
        Ok(LocalGateway { process, url })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// How many file descriptors the child holds (sockets, mostly).
    pub fn open_fds(&self) -> Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .context("reading /proc/PID/fd")?
            .count())
    }

    /// `(VmHWM, VmRSS)` in bytes, from /proc/PID/status.
    pub fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading /proc/PID/status")?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} missing from /proc/PID/status"))?;
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .context("no value")?
                .parse()?;
            Ok(kb * 1024)
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }
}
