//! The chat's metrics: every name, the namespace and the dimensions, once.
//!
//! The code records through the [`metrics`](::metrics) facade (`counter!(DELIVERIES)`),
//! so it does not know where the figures go; a binary installs one recorder:
//! [`install_emf`] on Lambda (CloudWatch Embedded Metric Format lines on stdout, which
//! CloudWatch Logs turns into metrics: no `PutMetricData` call, no extra latency, no IAM
//! grant), [`install_prometheus`] in `webchat-local` (feature `prometheus`) (Prometheus text at `/metrics`).
//! Nothing installed means nothing recorded, at the cost of a no-op call.
//!
//! The templates' alarms and dashboard and `docs/operations.md` name the same metrics;
//! their tests read [`ALL`] to check that every metric they name is one the code emits.

/// The CloudWatch namespace of every metric below.
pub const NAMESPACE: &str = "webchat";

/// Dimension: the Lambda function (`AWS_LAMBDA_FUNCTION_NAME`), set by the recorder.
pub const FUNCTION: &str = "function";
/// Dimension: the route a frame came in on (`message`, `$default`, ...).
pub const ROUTE: &str = "route";
/// Dimension: the protocol error code of a refused frame (`rate_limited`, ...).
pub const CODE: &str = "code";

/// Client frames handled, by [`ROUTE`] (every route but `$connect` and `$disconnect`).
pub const FRAMES: &str = "frames";
/// Frames answered with an `error`, by [`ROUTE`] and [`CODE`].
pub const ERROR_REPLIES: &str = "error_replies";
/// Frames refused `rate_limited` (also in [`ERROR_REPLIES`]), by [`ROUTE`]: a client
/// sending faster than its connection's limits.
pub const RATE_LIMITED: &str = "rate_limited";
/// Messages stored in a room's or a conversation's history.
pub const MESSAGES_STORED: &str = "messages_stored";
/// Pushes API Gateway accepted (messages and announcements to other connections).
pub const DELIVERIES: &str = "deliveries";
/// Connections API Gateway reported gone (410) and the chat removed.
pub const STALE_CONNECTIONS: &str = "stale_connections";
/// Push attempts API Gateway throttled (429).
pub const PUSHES_THROTTLED: &str = "pushes_throttled";
/// Pushes tried again after a 429, a 5xx or no connection to the management API.
pub const PUSH_RETRIES: &str = "push_retries";
/// Pushes that failed for good (after their retries): a message someone did not get.
pub const PUSH_FAILURES: &str = "push_failures";
/// Time of one fan-out (every push of one message or announcement), in ms.
pub const FANOUT_DURATION: &str = "fanout_duration";
/// `history` pages served (rooms and conversations).
pub const HISTORY_PAGES: &str = "history_pages";
/// `$connect` sign-ins refused (no token, a bad or expired one: 401; a name that cannot
/// be a `userName`: 403), by the authorizer.
pub const SIGN_IN_REFUSALS: &str = "sign_in_refusals";
/// `$connect` sign-ins that could not be checked: the issuer's keys are unreachable (500).
pub const SIGN_IN_UNAVAILABLE: &str = "sign_in_unavailable";

/// What a metric counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count of events.
    Counter,
    /// A distribution of milliseconds.
    Milliseconds,
}

/// One metric: its name, what it counts in, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The name, the same in CloudWatch and Prometheus.
    pub name: &'static str,
    /// What it counts in.
    pub kind: Kind,
    /// What it means, for `/metrics`' `# HELP` and the docs.
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        help,
    }
}

/// Every metric the code emits.
pub const ALL: &[Metric] = &[
    counter(FRAMES, "client frames handled, by route"),
    counter(
        ERROR_REPLIES,
        "frames answered with an error, by route and code",
    ),
    counter(RATE_LIMITED, "frames refused rate_limited, by route"),
    counter(MESSAGES_STORED, "messages stored in history"),
    counter(DELIVERIES, "pushes API Gateway accepted"),
    counter(STALE_CONNECTIONS, "gone (410) connections removed"),
    counter(PUSHES_THROTTLED, "push attempts throttled (429)"),
    counter(
        PUSH_RETRIES,
        "pushes retried after a 429, a 5xx or no connection",
    ),
    counter(PUSH_FAILURES, "pushes that failed after their retries"),
    Metric {
        name: FANOUT_DURATION,
        kind: Kind::Milliseconds,
        help: "time of one fan-out, ms",
    },
    counter(HISTORY_PAGES, "history pages served"),
    counter(SIGN_IN_REFUSALS, "sign-ins refused (401, 403)"),
    counter(
        SIGN_IN_UNAVAILABLE,
        "sign-ins that could not be checked (500)",
    ),
];

/// Gives the installed recorder each metric's unit and meaning (EMF writes the unit,
/// Prometheus the `# HELP` line).
fn describe_all() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => {
                ::metrics::describe_counter!(metric.name, ::metrics::Unit::Count, metric.help);
            }
            Kind::Milliseconds => ::metrics::describe_histogram!(
                metric.name,
                ::metrics::Unit::Milliseconds,
                metric.help
            ),
        }
    }
}

/// The CloudWatch EMF collector: one JSON document per label set at each
/// [`Collector::flush`](metrics_cloudwatch_embedded::Collector::flush), with `function`
/// as a dimension of every metric.
pub type EmfCollector = metrics_cloudwatch_embedded::Collector;

/// Installs the EMF recorder for this process, every metric with dimension `function`
/// set to `function_name` (on Lambda, `AWS_LAMBDA_FUNCTION_NAME`). The caller flushes it
/// to stdout after each invocation, while the invocation's log stream is open.
pub fn install_emf(function_name: &str) -> Result<&'static EmfCollector, InstallError> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(FUNCTION, function_name.to_string())
        .init()
        .map_err(|err| InstallError(err.to_string()))?;
    describe_all();
    Ok(collector)
}

/// Writes the figures recorded since the last flush to stdout as EMF lines (one per
/// label set). A failed write loses them, not the invocation: it is logged.
pub fn flush_to_stdout(collector: &EmfCollector) {
    if let Err(err) = collector.flush(std::io::stdout().lock()) {
        tracing::warn!(error = %err, "could not write the metrics");
    }
}

#[cfg(feature = "prometheus")]
/// Renders what the Prometheus recorder holds, in the text exposition format.
pub type PrometheusHandle = metrics_exporter_prometheus::PrometheusHandle;

#[cfg(feature = "prometheus")]
/// Installs the Prometheus recorder for this process (once; later calls return the same
/// handle), without an HTTP listener of its own: the caller serves
/// [`PrometheusHandle::render`].
pub fn install_prometheus() -> Result<PrometheusHandle, InstallError> {
    use std::sync::OnceLock;
    static HANDLE: OnceLock<Result<PrometheusHandle, InstallError>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|err| InstallError(err.to_string()))?;
            describe_all();
            // The recorder keeps every histogram sample until upkeep folds them in; with
            // no exporter of its own, nothing else would.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .map_err(|err| InstallError(err.to_string()))?;
            Ok(handle)
        })
        .clone()
}

/// A recorder could not be installed (another one already is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallError(String);

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not install the metrics recorder: {}", self.0)
    }
}

impl std::error::Error for InstallError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_once_under_a_cloudwatch_and_prometheus_safe_name() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a name listed twice");
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }
}
