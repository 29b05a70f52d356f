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

/// A Lambda request id (`Lambda-Runtime-Aws-Request-Id`, the `REPORT` line's): a
/// version 4 UUID, as Lambda's are.
pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
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

#[cfg(test)]
pub(crate) mod tests {
    //! The Runtime API and the instances with a tiny fake runtime (a Python script); the
    //! real `webchat-lambda` runs behind them in the `template_breakage` tests and every
    //! suite's template mode.

    use super::{Function, FunctionConfig, InvokeError};
    use axum::body::Bytes;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    /// Polls `next`, then does what `FAKE_MODE` says: `echo` answers with the event and
    /// the headers it came with (after `FAKE_DELAY` seconds), `error` reports a handler
    /// error, `exit` exits 3 mid-invocation, `hang` never answers, `init-error` reports
    /// a failed start, `sqs` appends the batch's records to the file `FAKE_RECORD` (a JSON
    /// line), waits `FAKE_DELAY` seconds and reports the records whose body is `fail` as
    /// batch item failures.
    const FAKE_RUNTIME: &str = r#"#!/usr/bin/env python3
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
mode = os.environ["FAKE_MODE"]
def post(path, body, headers={}):
    request = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST", headers=headers)
    urllib.request.urlopen(request).read()
if mode == "init-error":
    post("/init/error", {"errorType": "Runtime.ConfigError", "errorMessage": "no config"})
    sys.exit(1)
while True:
    with urllib.request.urlopen(api + "/invocation/next") as answer:
        event = answer.read().decode()
        headers = {k.lower(): v for k, v in answer.headers.items()}
    rid = headers["lambda-runtime-aws-request-id"]
    if mode == "echo":
        time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
        post("/invocation/" + rid + "/response", {"event": event, "headers": headers, "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"], "memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "home": os.environ.get("HOME")})
    elif mode == "error":
        post("/invocation/" + rid + "/error", {"errorType": "Boom", "errorMessage": "bad"}, {"Lambda-Runtime-Function-Error-Type": "Boom"})
    elif mode == "sqs":
        records = json.loads(event)["Records"]
        with open(os.environ["FAKE_RECORD"], "a") as f:
            f.write(json.dumps(records) + "\n")
        time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
        post("/invocation/" + rid + "/response", {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "fail"]})
    elif mode == "exit":
        sys.exit(3)
    elif mode == "hang":
        time.sleep(60)
"#;

    /// The fake runtime as an executable file, removed when dropped.
    pub(crate) struct FakeRuntime(PathBuf);

    impl FakeRuntime {
        pub(crate) fn new() -> FakeRuntime {
            use std::os::unix::fs::PermissionsExt;
            let dir = std::env::temp_dir().join(format!(
                "webchat-fake-runtime-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("bootstrap");
            std::fs::write(&path, FAKE_RUNTIME).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            FakeRuntime(path)
        }

        pub(crate) fn function(
            &self,
            mode: &str,
            timeout: Duration,
            max_instances: usize,
        ) -> Function {
            self.function_with(mode, timeout, max_instances, &[])
        }

        /// The directory the script is in (removed with it).
        pub(crate) fn dir(&self) -> &std::path::Path {
            self.0.parent().unwrap_or(&self.0)
        }

        pub(crate) fn function_with(
            &self,
            mode: &str,
            timeout: Duration,
            max_instances: usize,
            extra: &[(&str, &str)],
        ) -> Function {
            let mut environment = BTreeMap::from([("FAKE_MODE".to_string(), mode.to_string())]);
            for (key, value) in extra {
                environment.insert((*key).to_string(), (*value).to_string());
            }
            Function::new(FunctionConfig {
                function_name: "fake-function".to_string(),
                executable: self.0.clone(),
                environment,
                timeout,
                memory_mb: 256,
                handler: "bootstrap".to_string(),
                region: "eu-west-1".to_string(),
                account_id: "123456789012".to_string(),
                max_instances,
            })
        }
    }

    impl Drop for FakeRuntime {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    const EVENT: &str = r#"{"hello":"world"}"#;

    #[tokio::test]
    async fn an_event_reaches_the_runtime_with_lambdas_headers_and_the_instance_stays_warm() {
        let fake = FakeRuntime::new();
        let function = fake.function("echo", Duration::from_secs(10), 10);
        let cold = function.invoke("req-1", Bytes::from(EVENT)).await.unwrap();
        assert!(
            cold.init_duration.is_some(),
            "a cold start reports its init"
        );
        let answer: serde_json::Value = serde_json::from_slice(&cold.response).unwrap();
        assert_eq!(answer["event"], EVENT);
        let headers = &answer["headers"];
        assert_eq!(headers["lambda-runtime-aws-request-id"], "req-1");
        assert_eq!(
            headers["lambda-runtime-invoked-function-arn"],
            "arn:aws:lambda:eu-west-1:123456789012:function:fake-function"
        );
        assert!(headers["lambda-runtime-trace-id"]
            .as_str()
            .is_some_and(|t| t.starts_with("Root=1-")));
        let deadline: u128 = headers["lambda-runtime-deadline-ms"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(
            deadline > now && deadline <= now + 10_000,
            "{deadline} vs {now}"
        );
        assert_eq!(answer["name"], "fake-function");
        assert_eq!(answer["memory"], "256");
        assert_eq!(
            answer["home"],
            serde_json::Value::Null,
            "only Lambda's environment"
        );

        let warm = function.invoke("req-2", Bytes::from(EVENT)).await.unwrap();
        assert!(warm.init_duration.is_none(), "the same instance, warm");
        assert_eq!(function.instances(), 1);
        function.stop();
    }

    #[tokio::test]
    async fn busy_instances_make_more_up_to_the_limit() {
        let fake = FakeRuntime::new();
        let function =
            fake.function_with("echo", Duration::from_secs(10), 2, &[("FAKE_DELAY", "0.3")]);
        let ids: Vec<String> = (0..4).map(|i| format!("req-{i}")).collect();
        let answers =
            futures::future::join_all(ids.iter().map(|id| function.invoke(id, Bytes::from(EVENT))))
                .await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(function.instances(), 2, "no more than --max-instances");
        function.stop();
    }

    #[tokio::test]
    async fn a_handler_error_fails_the_invocation_and_keeps_the_instance() {
        let fake = FakeRuntime::new();
        let function = fake.function("error", Duration::from_secs(10), 10);
        match function.invoke("req-1", Bytes::from(EVENT)).await {
            Err(InvokeError::Function {
                error_type,
                error_message,
            }) => assert_eq!(
                (error_type.as_str(), error_message.as_str()),
                ("Boom", "bad")
            ),
            other => panic!("expected the handler's error, got {other:?}"),
        }
        assert_eq!(function.instances(), 1);
        function.stop();
    }

    #[tokio::test]
    async fn a_crash_fails_the_invocation_and_the_next_one_gets_a_new_instance() {
        let fake = FakeRuntime::new();
        let function = fake.function("exit", Duration::from_secs(10), 10);
        match function.invoke("req-1", Bytes::from(EVENT)).await {
            Err(InvokeError::Crashed(why)) => {
                assert_eq!(why, "Runtime exited with error: exit status 3");
            }
            other => panic!("expected a crash, got {other:?}"),
        }
        assert_eq!(function.instances(), 0);
        let again = function.invoke("req-2", Bytes::from(EVENT)).await;
        assert!(matches!(again, Err(InvokeError::Crashed(_))), "{again:?}");
    }

    #[tokio::test]
    async fn an_invocation_past_the_timeout_kills_the_instance() {
        let fake = FakeRuntime::new();
        let function = fake.function("hang", Duration::from_secs(1), 10);
        let started = std::time::Instant::now();
        let result = function.invoke("req-1", Bytes::from(EVENT)).await;
        assert!(
            matches!(result, Err(InvokeError::TimedOut(t)) if t == Duration::from_secs(1)),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(function.instances(), 0);
        assert_eq!(
            result.unwrap_err().to_string(),
            "Task timed out after 1.00 seconds"
        );
    }

    #[tokio::test]
    async fn an_init_error_fails_the_start_with_what_the_runtime_said() {
        let fake = FakeRuntime::new();
        let function = fake.function("init-error", Duration::from_secs(10), 10);
        match function.invoke("req-1", Bytes::from(EVENT)).await {
            Err(InvokeError::Start(why)) => {
                assert!(why.contains("Runtime.ConfigError: no config"), "{why}");
            }
            other => panic!("expected a failed start, got {other:?}"),
        }
        assert_eq!(function.instances(), 0);
    }
}
