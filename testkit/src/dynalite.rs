//! dynalite, started on a free loopback port from the project-local install that
//! `cargo xtask test` makes.

use crate::process::{Launch, LaunchError, Process};
use crate::{missing_prerequisite, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where `cargo xtask test` installs dynalite's node modules.
pub fn dynalite_modules() -> PathBuf {
    std::env::var_os("WEBCHAT_DYNALITE_MODULES").map_or_else(
        || workspace_root().join(".tools/dynalite/node_modules"),
        PathBuf::from,
    )
}

/// A dynalite server on 127.0.0.1, stopped when dropped.
pub struct Dynalite {
    process: Process,
    port: u16,
    data_dir: Option<PathBuf>,
}

/// The start of the launcher's ready line, followed by the port.
const READY: &str = "dynalite-port ";

// dynalite's own CLI listens on every interface; this binds loopback only, creates
// tables instantly, and prints the port it got so tests can ask for port 0.
const LAUNCHER: &str = r"
const opts = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 };
if (process.env.DYNALITE_PATH) opts.path = process.env.DYNALITE_PATH;
const server = require('dynalite')(opts);
server.listen(Number(process.env.DYNALITE_PORT || 0), '127.0.0.1', () => {
  console.log('dynalite-port ' + server.address().port);
});
";

impl Dynalite {
    /// Starts an in-memory dynalite on a free port.
    pub fn start() -> Dynalite {
        Self::spawn(None)
    }

    /// Starts dynalite keeping its data in `data_dir`, so a restart on the same port
    /// (see [`Dynalite::restart`]) finds the tables and rows again.
    pub fn start_persistent(data_dir: &Path) -> Dynalite {
        Self::spawn(Some(data_dir.to_path_buf()))
    }

    /// Stops the test binary with one line when dynalite is not installed: every test
    /// that needs it would fail the same way.
    fn spawn(data_dir: Option<PathBuf>) -> Dynalite {
        let modules = dynalite_modules();
        if !modules.join("dynalite").is_dir() {
            missing_prerequisite(&format!(
                "dynalite is not installed (no {}): run `cargo xtask test`, which installs it \
                 into .tools/, or set WEBCHAT_DYNALITE_MODULES to a node_modules that has it",
                modules.join("dynalite").display()
            ));
        }
        match Self::try_spawn(&modules, 0, data_dir) {
            Ok(dynalite) => dynalite,
            Err(LaunchError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                missing_prerequisite(
                    "dynalite needs Node.js and `node` is not on PATH: install Node.js, then run \
                     `cargo xtask test`",
                )
            }
            Err(err) => panic!("{err}"),
        }
    }

    fn try_spawn(
        modules: &Path,
        port: u16,
        data_dir: Option<PathBuf>,
    ) -> Result<Dynalite, LaunchError> {
        let mut command = Command::new("node");
        command
            .arg("-e")
            .arg(LAUNCHER)
            .env("NODE_PATH", modules)
            .env("DYNALITE_PORT", port.to_string());
        if let Some(dir) = &data_dir {
            command.env("DYNALITE_PATH", dir);
        }
        let process =
            Launch::new("dynalite", command).until_ready(READY, Duration::from_secs(20))?;
        let port = process.ready_line().parse().unwrap_or_else(|_| {
            panic!(
                "dynalite's launcher printed `{READY}{}`, not a port",
                process.ready_line()
            )
        });
        Ok(Dynalite {
            process,
            port,
            data_dir,
        })
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server, as a crash would.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port (with the same data when persistent).
    pub fn restart(&mut self) {
        self.stop();
        let modules = dynalite_modules();
        let mut last_error = None;
        // The port may linger briefly after the kill.
        for _ in 0..50 {
            match Self::try_spawn(&modules, self.port, self.data_dir.clone()) {
                Ok(fresh) => {
                    *self = fresh;
                    return;
                }
                Err(err) => last_error = Some(err),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "dynalite could not restart on port {}: {}",
            self.port,
            last_error.expect("at least one attempt")
        );
    }
}
