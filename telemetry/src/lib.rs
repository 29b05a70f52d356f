//! What webchat's binaries tell the people who run them.
//!
//! - [`metrics`]: the metric names, their namespace and dimensions, in one place for
//!   the code that emits them, the templates' alarms and dashboard, and the docs; and
//!   the recorders that publish them (CloudWatch Embedded Metric Format on Lambda,
//!   Prometheus text in `webchat-local`).

pub mod metrics;
