//! `/metrics`: the chat's figures in the Prometheus text format, the same metrics the
//! Lambda functions publish to CloudWatch (`webchat_telemetry::metrics` names them).
//! Rendered by this gateway's own router: no second port to find.

use axum::routing::get;
use axum::Router;

/// Where the figures are served.
pub const METRICS_PATH: &str = "/metrics";

/// The `/metrics` route, installing the process's Prometheus recorder on first use. A
/// process that already has another recorder serves no `/metrics` and says why.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let handle = match webchat_telemetry::metrics::install_prometheus() {
        Ok(handle) => handle,
        Err(err) => {
            tracing::warn!("{err}; {METRICS_PATH} is not served");
            return Router::new();
        }
    };
    Router::new().route(
        METRICS_PATH,
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}
