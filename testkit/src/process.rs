//! Child processes for the tests and the bench (dynalite, `webchat-local`, chromedriver):
//! started with their output captured, waited for until they print a ready line, and
//! killed when dropped. When one fails to start, the error carries what it printed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How many of the last output lines an error quotes.
const TAIL_LINES: usize = 60;

/// Why a child process did not come up.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program could not be started at all.
    #[error("could not start {name} ({program}): {source}")]
    Spawn {
        /// What the process is called in messages.
        name: String,
        /// The program run.
        program: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// It ran but did not announce itself in time.
    #[error("{name} printed no `{prefix}` line within {within:?}; its output so far:\n{output}")]
    NotReady {
        /// What the process is called in messages.
        name: String,
        /// The start of the line that says it is ready.
        prefix: String,
        /// How long it was given.
        within: Duration,
        /// The last lines it printed.
        output: String,
    },
    /// It ended before announcing itself.
    #[error("{name} ended ({status}) before printing `{prefix}`; its output:\n{output}")]
    Exited {
        /// What the process is called in messages.
        name: String,
        /// The start of the line that says it is ready.
        prefix: String,
        /// How it ended.
        status: String,
        /// The last lines it printed.
        output: String,
    },
}

/// What to start and how; [`Launch::until_ready`] or [`Launch::spawn`] starts it.
pub struct Launch {
    name: String,
    command: Command,
    log: Option<PathBuf>,
    own_group: bool,
}

impl Launch {
    /// Starts `command` when asked, calling it `name` in messages and logs.
    pub fn new(name: impl Into<String>, command: Command) -> Launch {
        Launch {
            name: name.into(),
            command,
            log: None,
            own_group: false,
        }
    }

    /// Also appends every line the process prints to `path`, for a look afterwards.
    #[must_use]
    pub fn log_to(mut self, path: &Path) -> Launch {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Runs it in a process group of its own and kills the whole group: chromedriver's
    /// browsers must go down with it. Not the default, so that Ctrl-C in a terminal still
    /// reaches the other children.
    #[must_use]
    pub fn own_process_group(mut self) -> Launch {
        self.own_group = true;
        self
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(self) -> Result<Process, LaunchError> {
        self.start(None).map(|(process, _)| process)
    }

    /// Starts the process and waits until a stdout line starts with `prefix`; the rest of
    /// that line is [`Process::ready_line`]. A process that ends or stays silent fails with
    /// its output so far.
    pub fn until_ready(self, prefix: &str, within: Duration) -> Result<Process, LaunchError> {
        let name = self.name.clone();
        let (mut process, ready) = self.start(Some(prefix.to_string()))?;
        let ready = ready.expect("a ready channel when a prefix is given");
        match ready.recv_timeout(within) {
            Ok(line) => {
                process.ready = line;
                Ok(process)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                process.kill();
                Err(LaunchError::NotReady {
                    name,
                    prefix: prefix.trim_end().to_string(),
                    within,
                    output: process.output(),
                })
            }
            // Its stdout closed: it exited (or is about to).
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let deadline = Instant::now() + Duration::from_secs(2);
                let status = loop {
                    match process.child.try_wait() {
                        Ok(Some(status)) => break status.to_string(),
                        _ if Instant::now() > deadline => break "stdout closed".to_string(),
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                };
                process.kill();
                Err(LaunchError::Exited {
                    name,
                    prefix: prefix.trim_end().to_string(),
                    status,
                    output: process.output(),
                })
            }
        }
    }

    fn start(
        mut self,
        prefix: Option<String>,
    ) -> Result<(Process, Option<mpsc::Receiver<String>>), LaunchError> {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.own_group {
            use std::os::unix::process::CommandExt;
            self.command.process_group(0);
        }
        let mut child = self.command.spawn().map_err(|source| LaunchError::Spawn {
            name: self.name.clone(),
            program: self.command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let log = self.log.as_ref().and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
                .map(|file| Arc::new(Mutex::new(file)))
        });
        let output = Arc::new(Output::default());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = match prefix {
            Some(prefix) => {
                let (tx, rx) = mpsc::channel();
                (Some((prefix, tx)), Some(rx))
            }
            None => (None, None),
        };
        drain(stdout, output.clone(), log.clone(), ready_tx);
        drain(stderr, output.clone(), log, None);
        Ok((
            Process {
                child,
                own_group: self.own_group,
                output,
                ready: String::new(),
            },
            ready_rx,
        ))
    }
}

/// The last lines a process printed, and how many of its pipes reached their end.
#[derive(Default)]
struct Output {
    tail: Mutex<VecDeque<String>>,
    closed_pipes: AtomicUsize,
}

/// Reads one pipe to its end on a thread (so the child never blocks on a full pipe),
/// keeping the last lines, copying them to the log, and reporting the ready line once.
fn drain(
    pipe: impl Read + Send + 'static,
    output: Arc<Output>,
    log: Option<Arc<Mutex<File>>>,
    mut ready: Option<(String, mpsc::Sender<String>)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(log) = &log {
                let _ = writeln!(
                    log.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    "{line}"
                );
            }
            if let Some(rest) = ready
                .as_ref()
                .and_then(|(p, _)| line.strip_prefix(p.as_str()))
            {
                let (_, tx) = ready.take().expect("checked above");
                let _ = tx.send(rest.trim().to_string());
            }
            let mut tail = output
                .tail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        output.closed_pipes.fetch_add(1, Ordering::SeqCst);
    });
}

/// A running child process, killed when dropped.
pub struct Process {
    child: Child,
    own_group: bool,
    output: Arc<Output>,
    ready: String,
}

impl Process {
    /// The ready line after its prefix (for `webchat-local`, the WebSocket URL).
    pub fn ready_line(&self) -> &str {
        &self.ready
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The last lines it printed (stdout and stderr), for an error message.
    fn output(&self) -> String {
        let tail = self
            .output
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tail.is_empty() {
            "(nothing)".to_string()
        } else {
            tail.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }

    /// Kills it (with its process group, when it has one), as a crash would.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.own_group {
                // Negative pid: the process group this child leads.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", self.child.id())])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // Let the readers take in its last lines, unless something it started keeps
        // the pipes open.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.output.closed_pipes.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
