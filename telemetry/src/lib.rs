//! What webchat's binaries tell the people who run them: one logging set-up for the
//! Lambda functions, errors written out with their causes, and
//!
//! - [`metrics`]: the metric names, their namespace and dimensions, in one place for
//!   the code that emits them, the templates' alarms and dashboard, and the docs; and
//!   the recorders that publish them (CloudWatch Embedded Metric Format on Lambda,
//!   Prometheus text in `webchat-local`).

#![warn(missing_docs)]

pub mod metrics;

use std::error::Error;
use std::fmt;
use tracing_subscriber::EnvFilter;

/// Logs as JSON lines on stdout, at the level `RUST_LOG` asks for (`info` when it is
/// unset or unreadable), without our own timestamps: CloudWatch stamps every line.
/// Call once, first thing in `main`.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .init();
}

/// An error and every cause under it, `: `-separated, for a log line: errors keep their
/// cause as [`Error::source`] instead of in their own text.
pub struct Causes<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outage(std::io::Error);

    impl fmt::Display for Outage {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the store is unavailable")
        }
    }

    impl Error for Outage {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_cause_is_written_after_the_error() {
        let err = Outage(std::io::Error::other("connection refused"));
        assert_eq!(
            Causes(&err).to_string(),
            "the store is unavailable: connection refused"
        );
    }
}
