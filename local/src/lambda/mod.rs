//! Functions run as Lambda runs them: each function's real binary as child processes
//! ("instances") behind a Lambda Runtime API, one invocation per instance at a time,
//! more instances on demand up to a limit, idle ones kept warm, `Timeout` enforced, and
//! Lambda's `REPORT` lines in the log.

mod instance;
pub mod runtime_api;

use axum::body::Bytes;
use instance::Instance;
use runtime_api::Outcome;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The log target of the `REPORT` lines and of why invocations failed.
pub const REPORT_TARGET: &str = "webchat_local::lambda";

/// Instances per function unless `--max-instances` says otherwise.
pub const DEFAULT_MAX_INSTANCES: u16 = 10;

/// One function as the template deploys it.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// `AWS_LAMBDA_FUNCTION_NAME`: the physical name.
    pub function_name: String,
    /// The `bootstrap` to run.
    pub executable: PathBuf,
    /// The template's variables, already mapped to local endpoints, and credentials.
    pub environment: BTreeMap<String, String>,
    /// The template's `Timeout`.
    pub timeout: Duration,
    /// The template's `MemorySize` (reported; not enforced).
    pub memory_mb: u64,
    /// The template's `Handler` (`_HANDLER`).
    pub handler: String,
    /// The region the functions run in.
    pub region: String,
    /// The account in ARNs.
    pub account_id: String,
    /// At most this many instances at once.
    pub max_instances: usize,
}

impl FunctionConfig {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.function_name
        )
    }

    /// The directory holding the executable (`LAMBDA_TASK_ROOT`).
    pub(crate) fn task_root(&self) -> PathBuf {
        self.executable
            .parent()
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    }

    /// The whole environment of an instance: what Lambda sets, then the template's
    /// variables (which Lambda forbids from overriding its reserved ones, so they come
    /// first here only where the template may set them).
    pub(crate) fn process_environment(&self, runtime_api: &str) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self.environment.clone();
        let task_root = self.task_root().display().to_string();
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.function_name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.function_name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "webchat-local".to_string()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("_HANDLER", self.handler.clone()),
            ("LAMBDA_TASK_ROOT", task_root.clone()),
            ("LAMBDA_RUNTIME_DIR", task_root),
            ("TZ", ":UTC".to_string()),
            ("LANG", "en_US.UTF-8".to_string()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
        ];
        for (key, value) in reserved {
            env.insert(key.to_string(), value);
        }
        env
    }
}

/// Why an invocation failed: what the log says, and the client sees as API Gateway's
/// `Internal server error`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The instance could not start (exec failed, init error, exit or timeout in init).
    #[error("the function could not start: {0}")]
    Start(String),
    /// The process ended during the invocation.
    #[error("{0}")]
    Crashed(String),
    /// The invocation ran past the function's `Timeout`; the instance was killed.
    #[error("Task timed out after {:.2} seconds", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The handler reported an error (`/invocation/{id}/error`).
    #[error("{error_type}: {error_message}")]
    Function {
        /// Lambda's `errorType`.
        error_type: String,
        /// Lambda's `errorMessage`.
        error_message: String,
    },
}

/// One function's instances.
pub struct Function {
    config: Arc<FunctionConfig>,
    idle: Mutex<Vec<Instance>>,
    /// One per instance that may run at once.
    permits: tokio::sync::Semaphore,
    running: std::sync::atomic::AtomicUsize,
}

/// What [`Function::invoke`] answered, with what the bench and tests watch.
#[derive(Debug)]
pub struct Invoked {
    /// The handler's response body.
    pub response: Bytes,
    /// `Some` when this invocation started a new instance: exec to first `next`.
    pub init_duration: Option<Duration>,
}

impl Function {
    /// No instance runs until the first invocation.
    pub fn new(config: FunctionConfig) -> Function {
        Function {
            permits: tokio::sync::Semaphore::new(config.max_instances.max(1)),
            config: Arc::new(config),
            idle: Mutex::new(Vec::new()),
            running: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The function's configuration.
    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    /// Instances started and not yet ended (idle or busy).
    pub fn instances(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `payload` on an idle instance, or a new one when all are busy (waiting for
    /// one once `max_instances` are).
    pub async fn invoke(&self, request_id: &str, payload: Bytes) -> Result<Invoked, InvokeError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| InvokeError::Start("the function is shutting down".to_string()))?;
        let warm = loop {
            let Some(instance) = self.lock_idle().pop() else {
                break None;
            };
            if instance.is_alive() {
                break Some(instance);
            }
            self.running
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        };
        let mut instance = if let Some(instance) = warm {
            instance
        } else {
            let instance = Instance::start(&self.config).await.inspect_err(|err| {
                tracing::warn!(target: REPORT_TARGET, "[{}] {err}", self.config.function_name);
            })?;
            self.running
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            instance
        };
        let init_duration = instance.init_duration();
        match instance.invoke(&self.config, request_id, payload).await {
            Ok(outcome) => {
                self.lock_idle().push(instance);
                match outcome {
                    Outcome::Response(response) => Ok(Invoked {
                        response,
                        init_duration,
                    }),
                    Outcome::Error {
                        error_type,
                        error_message,
                    } => Err(InvokeError::Function {
                        error_type,
                        error_message,
                    }),
                }
            }
            Err(err) => {
                // Dropping it kills the process; the next invocation starts a new one.
                drop(instance);
                self.running
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                Err(err)
            }
        }
    }

    /// Ends every idle instance.
    pub fn stop(&self) {
        let stopped = std::mem::take(&mut *self.lock_idle());
        self.running
            .fetch_sub(stopped.len(), std::sync::atomic::Ordering::SeqCst);
    }
}

/// An X-Ray trace header, as Lambda passes one (`Lambda-Runtime-Trace-Id`).
pub(crate) fn trace_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "Root=1-{seconds:08x}-{:024x};Parent={:016x};Sampled=0",
        rng.random::<u128>() >> 32,
        rng.random::<u64>()
    )
}
