//! How every headless Chromium of the project starts: the browser test and the bench's
//! first paint open their sessions with the same flags.

use std::path::Path;

/// Chromium's command line for one headless session with its own fresh `profile`
/// directory and a window of `size`. Background networking and updates are off: this
/// machine reaches no Google host, and a blocked one stalls start-up. Background tabs
/// are not throttled, so several users in one test keep their timers running.
pub fn headless_args(profile: &Path, size: (u32, u32)) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={},{}", size.0, size.1),
    ])
    .collect()
}

/// chromedriver on a free loopback port, in its own process group so the browsers it
/// starts go down with it when this is dropped.
pub struct Driver {
    _process: crate::process::Process,
    /// `http://127.0.0.1:PORT`, for a WebDriver client.
    pub url: String,
}

/// Why chromedriver could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Starting chromedriver failed.
    #[error(transparent)]
    Launch(#[from] crate::process::LaunchError),
    /// No port could be found for chromedriver to listen on.
    #[error("no free port for chromedriver: {0}")]
    Port(std::io::Error),
    /// chromedriver started but did not take connections in time.
    #[error("chromedriver did not listen on port {port} within {within:?}{log}")]
    NotListening {
        /// The port it was told to listen on.
        port: u16,
        /// How long it was given.
        within: std::time::Duration,
        /// The tail of its log, for the reason.
        log: String,
    },
}

impl Driver {
    /// Starts `binary`, keeping its output in `log` when given, and waits until it
    /// accepts connections.
    pub fn start(binary: &Path, log: Option<&Path>) -> Result<Driver, DriverError> {
        use std::time::{Duration, Instant};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(DriverError::Port)?
            .port();
        let mut command = std::process::Command::new(binary);
        command.arg(format!("--port={port}"));
        let mut launch = crate::process::Launch::new("chromedriver", command).own_process_group();
        if let Some(log) = log {
            launch = launch.log_to(log);
        }
        let process = launch.spawn()?;
        let within = crate::client::WAIT;
        let deadline = Instant::now() + within;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(DriverError::NotListening {
                    port,
                    within,
                    log: log
                        .map(|l| format!(" (log: {})", l.display()))
                        .unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Driver {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}
