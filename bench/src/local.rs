//! `webchat-local` as a child process, so the bench's clients never share its runtime.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct LocalGateway {
    child: Child,
    pub url: String,
}

impl LocalGateway {
    /// Starts `binary --addr 127.0.0.1:0` and reads the URL from its first stdout line,
    /// `webchat-local listening: ws://…`.
    pub fn start(binary: &Path) -> Result<LocalGateway> {
        LocalGateway::start_with(binary, &[])
    }

    /// Like [`LocalGateway::start`], also serving the built UI in `dist` at `/`.
    pub fn serving(binary: &Path, dist: &Path) -> Result<LocalGateway> {
        LocalGateway::start_with(binary, &["--static-dir".as_ref(), dist.as_os_str()])
    }

    fn start_with(binary: &Path, args: &[&OsStr]) -> Result<LocalGateway> {
        if !binary.is_file() {
            bail!(
                "{} not found; build it with `cargo build --release -p webchat-local`",
                binary.display()
            );
        }
        let mut child = Command::new(binary)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            // Logging every connection and route invocation would measure the terminal.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout (log lines go there too) so the child never blocks on it;
        // WEBCHAT_BENCH_GATEWAY_LOG=FILE keeps them (warnings and errors) for diagnosis.
        let mut log = std::env::var_os("WEBCHAT_BENCH_GATEWAY_LOG").and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        });
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                if !sent {
                    if let Some(url) = line.strip_prefix("webchat-local listening: ") {
                        let _ = tx.send(url.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("webchat-local printed no `webchat-local listening:` line within 20 s");
            }
        };
        Ok(LocalGateway { child, url })
    }

    /// `http://127.0.0.1:PORT/`: where the UI is served when started with [`LocalGateway::serving`].
    pub fn page_url(&self) -> String {
        let host = self
            .url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default();
        format!("http://{host}/")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

impl Drop for LocalGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
