//! `webchat-local` as a child process, so the bench's clients never share its runtime.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use webchat_testkit::{Launch, Process};

pub(crate) struct LocalGateway {
    process: Process,
    pub url: String,
}

impl LocalGateway {
    /// Starts `binary --addr 127.0.0.1:0` and waits for its ready line, which carries the
    /// URL. `WEBCHAT_BENCH_GATEWAY_LOG=FILE` keeps its output (warnings and errors) for
    /// diagnosis.
    pub(crate) fn start(binary: &Path) -> Result<LocalGateway> {
        LocalGateway::start_with(binary, &[])
    }

    /// The flags that lift every connection's rate limit as far as it goes: the bench
    /// measures what the chat carries, with clients sending as fast as they can.
    fn unlimited() -> Vec<String> {
        use webchat_backend::limits::{MAX_BURST, MAX_RATE_PER_SECOND};
        let (rate, burst) = (MAX_RATE_PER_SECOND.to_string(), MAX_BURST.to_string());
        [
            "--message-rate",
            &rate,
            "--message-burst",
            &burst,
            "--action-rate",
            &rate,
            "--action-burst",
            &burst,
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// Like [`LocalGateway::start`], also serving the built UI in `dist` at `/`.
    pub(crate) fn serving(binary: &Path, dist: &Path) -> Result<LocalGateway> {
        LocalGateway::start_with(binary, &["--static-dir".as_ref(), dist.as_os_str()])
    }

    /// Like [`LocalGateway::start`], with more command-line arguments.
    pub(crate) fn start_with(binary: &Path, args: &[&OsStr]) -> Result<LocalGateway> {
        if !binary.is_file() {
            bail!(
                "{} not found; build it with `cargo build --release -p webchat-local`",
                binary.display()
            );
        }
        let mut command = Command::new(binary);
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(LocalGateway::unlimited())
            .args(args)
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

    /// `http://127.0.0.1:PORT/`: where the UI is served when started with [`LocalGateway::serving`].
    pub(crate) fn page_url(&self) -> String {
        let host = self
            .url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default();
        format!("http://{host}/")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.id()
    }

    /// How many file descriptors the child holds (sockets, mostly).
    pub(crate) fn open_fds(&self) -> Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .context("reading /proc/PID/fd")?
            .count())
    }

    /// `(VmHWM, VmRSS)` in bytes, from /proc/PID/status.
    pub(crate) fn memory(&self) -> Result<(u64, u64)> {
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
