//! One execution environment: the function's binary as a child process polling its own
//! Runtime API, one invocation at a time.

use super::runtime_api::{InitState, Invocation, Outcome, RuntimeApi};
use super::{FunctionConfig, InvokeError, REPORT_TARGET};
use axum::body::Bytes;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{oneshot, watch};

/// Lambda gives a function's init phase this long before it gives up on it.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Instance {
    api: RuntimeApi,
    /// `Some(status)` once the process has ended.
    exited: watch::Receiver<Option<ExitStatus>>,
    /// Dropping it (or sending) kills the process.
    _kill: oneshot::Sender<()>,
    pid: Option<u32>,
    /// Init Duration, reported with the first invocation only (a cold start).
    pending_init: Option<Duration>,
}

impl Instance {
    /// Starts the process and waits until it asks for its first event.
    pub(crate) async fn start(config: &Arc<FunctionConfig>) -> Result<Instance, InvokeError> {
        let started = Instant::now();
        let api = RuntimeApi::start()
            .await
            .map_err(|err| InvokeError::Start(format!("runtime API: {err}")))?;
        let mut command = tokio::process::Command::new(&config.executable);
        command
            .env_clear()
            .envs(config.process_environment(&api.addr.to_string()))
            .current_dir(config.task_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|err| {
            InvokeError::Start(format!("cannot run {}: {err}", config.executable.display()))
        })?;
        let pid = child.id();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let name = config.function_name.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "webchat_local::function", "[{name}] {line}");
                }
            });
        }
        let (exit_tx, exited) = watch::channel(None);
        let (kill, kill_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            if let Ok(status) = status {
                let _ = exit_tx.send(Some(status));
            }
        });

        let mut instance = Instance {
            api,
            exited,
            _kill: kill,
            pid,
            pending_init: None,
        };
        let mut init = instance.api.init.clone();
        let mut exited = instance.exited.clone();
        let ready = tokio::time::timeout(INIT_TIMEOUT, async {
            loop {
                match &*init.borrow_and_update() {
                    InitState::Ready => return Ok(()),
                    InitState::Failed(why) => return Err(format!("init error: {why}")),
                    InitState::Starting => {}
                }
                if let Some(status) = *exited.borrow_and_update() {
                    return Err(format!(
                        "Runtime exited during init with {}",
                        describe(status)
                    ));
                }
                tokio::select! {
                    _ = init.changed() => {}
                    _ = exited.changed() => {}
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => {
                instance.pending_init = Some(started.elapsed());
                Ok(instance)
            }
            Ok(Err(why)) => Err(InvokeError::Start(why)),
            Err(_) => Err(InvokeError::Start(format!(
                "init did not finish within {} s",
                INIT_TIMEOUT.as_secs()
            ))),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// Time from exec to the first `next`.
    pub(crate) fn init_duration(&self) -> Option<Duration> {
        self.pending_init
    }

    /// Runs one invocation; an `Err` means the instance is unusable (timed out, or its
    /// process ended) and must be dropped, which kills it.
    pub(crate) async fn invoke(
        &mut self,
        config: &FunctionConfig,
        request_id: &str,
        payload: Bytes,
    ) -> Result<Outcome, InvokeError> {
        let started = Instant::now();
        let deadline = std::time::SystemTime::now() + config.timeout;
        let deadline_ms = deadline
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let (reply, outcome) = oneshot::channel();
        let invocation = Invocation {
            request_id: request_id.to_string(),
            deadline_ms,
            function_arn: config.arn(),
            trace_id: super::trace_id(),
            payload,
            reply,
        };
        let mut exited = self.exited.clone();
        let result = tokio::time::timeout(config.timeout, async {
            if self.api.invocations.send(invocation).await.is_err() {
                return Err(InvokeError::Crashed("the runtime API stopped".to_string()));
            }
            tokio::select! {
                outcome = outcome => outcome.map_err(|_| InvokeError::Crashed("the runtime API dropped the invocation".to_string())),
                status = exited.wait_for(Option::is_some) => {
                    let why = status.map_or_else(|_| "unknown".to_string(), |s| s.map_or_else(|| "unknown".to_string(), describe));
                    Err(InvokeError::Crashed(format!("Runtime exited with error: {why}")))
                }
            }
        })
        .await;
        let duration = started.elapsed();
        let result = match result {
            Ok(result) => result,
            Err(_) => Err(InvokeError::TimedOut(config.timeout)),
        };
        self.report(config, request_id, duration);
        match &result {
            Err(InvokeError::TimedOut(timeout)) => tracing::warn!(
                target: REPORT_TARGET,
                "[{}] {request_id} Task timed out after {:.2} seconds",
                config.function_name,
                timeout.as_secs_f64()
            ),
            Err(err) => tracing::warn!(
                target: REPORT_TARGET,
                "[{}] RequestId: {request_id} Error: {err}",
                config.function_name
            ),
            Ok(Outcome::Error {
                error_type,
                error_message,
            }) => tracing::warn!(
                target: REPORT_TARGET,
                "[{}] RequestId: {request_id} Error: {error_type}: {error_message}",
                config.function_name
            ),
            Ok(Outcome::Response(_)) => {}
        }
        result
    }

    /// The `REPORT` line Lambda writes after each invocation.
    fn report(&mut self, config: &FunctionConfig, request_id: &str, duration: Duration) {
        let millis = duration.as_secs_f64() * 1000.0;
        // Lambda bills every started millisecond, at least one.
        let billed = duration.as_micros().div_ceil(1000).max(1);
        let max_memory = self
            .pid
            .and_then(peak_memory_mb)
            .map_or_else(|| "?".to_string(), |mb| mb.to_string());
        let init = self
            .pending_init
            .take()
            .map(|init| format!("\tInit Duration: {:.2} ms", init.as_secs_f64() * 1000.0))
            .unwrap_or_default();
        tracing::info!(
            target: REPORT_TARGET,
            "[{}] REPORT RequestId: {request_id}\tDuration: {millis:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {max_memory} MB{init}",
            config.function_name,
            config.memory_mb,
        );
    }
}

/// An ended process as Lambda's log words it: `exit status 1`, `signal: killed`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal: killed".to_string(),
        (None, Some(6)) => "signal: aborted".to_string(),
        (None, Some(11)) => "signal: segmentation fault".to_string(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => "unknown status".to_string(),
    }
}

/// The process's peak resident memory (`VmHWM`), in MB.
fn peak_memory_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.div_ceil(1024))
}
