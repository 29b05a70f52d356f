//! Test support shared by every suite that needs a real DynamoDB: dynalite, started on a
//! free loopback port, from the project-local install that `cargo xtask test` makes.

pub mod ui_bundle;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The repository root (this crate sits one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives inside the workspace")
        .to_path_buf()
}

/// Where `cargo xtask test` installs dynalite's node modules.
pub fn dynalite_modules() -> PathBuf {
    std::env::var_os("WEBCHAT_DYNALITE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/dynalite/node_modules"))
}

/// A dynalite server on 127.0.0.1, stopped when dropped.
pub struct Dynalite {
    child: Child,
    port: u16,
    data_dir: Option<PathBuf>,
}

// dynalite's own CLI listens on every interface; this binds loopback only, creates
// tables instantly, and prints the port it got so tests can ask for port 0.
const LAUNCHER: &str = r#"
const opts = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 };
if (process.env.DYNALITE_PATH) opts.path = process.env.DYNALITE_PATH;
const server = require('dynalite')(opts);
server.listen(Number(process.env.DYNALITE_PORT || 0), '127.0.0.1', () => {
  console.log('dynalite-port ' + server.address().port);
});
"#;

impl Dynalite {
    /// Starts an in-memory dynalite on a free port.
    pub fn start() -> Dynalite {
        Self::spawn(0, None)
    }

    /// Starts dynalite keeping its data in `data_dir`, so a restart on the same port
    /// (see [`Dynalite::restart`]) finds the tables and rows again.
    pub fn start_persistent(data_dir: &Path) -> Dynalite {
        Self::spawn(0, Some(data_dir.to_path_buf()))
    }

    fn spawn(port: u16, data_dir: Option<PathBuf>) -> Dynalite {
        Self::try_spawn(port, data_dir).unwrap_or_else(|err| panic!("{err}"))
    }

    fn try_spawn(port: u16, data_dir: Option<PathBuf>) -> Result<Dynalite, String> {
        let modules = dynalite_modules();
        if !modules.join("dynalite").is_dir() {
            return Err(format!(
            "dynalite is not installed at {}: run `cargo xtask test` (it installs dynalite from npm into .tools/dynalite), \
             or point WEBCHAT_DYNALITE_MODULES at a node_modules folder that has it",
            modules.display()
            ));
        }
        let mut command = Command::new("node");
        command
            .arg("-e")
            .arg(LAUNCHER)
            .env("NODE_PATH", &modules)
            .env("DYNALITE_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(dir) = &data_dir {
            command.env("DYNALITE_PATH", dir);
        }
        let mut child = command.spawn().map_err(|err| {
            format!("could not start node for dynalite ({err}); is Node.js installed?")
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("dynalite-port ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => port,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "dynalite did not start listening on port {port} within 20 s"
                ));
            }
        };
        Ok(Dynalite {
            child,
            port,
            data_dir,
        })
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server, as a crash would.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port (with the same data when persistent).
    pub fn restart(&mut self) {
        self.stop();
        let mut last_error = String::new();
        // The port may linger briefly after the kill.
        for _ in 0..50 {
            match Self::try_spawn(self.port, self.data_dir.clone()) {
                Ok(fresh) => {
                    *self = fresh;
                    return;
                }
                Err(err) => last_error = err,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dynalite could not restart: {last_error}");
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        self.stop();
    }
}
