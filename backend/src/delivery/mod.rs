//! How handlers reach connections other than the caller: API Gateway's management API
//! (`POST`/`DELETE /@connections/{id}`), behind a small trait so tests can record pushes;
//! the pushes themselves go out signed without the SDK's orchestrator, retried and
//! fanned out with bounded concurrency.

mod fan_out;
mod management;
mod queue;
mod signed_post;
pub mod sqs;

pub use fan_out::{fan_out, FanOut, Retrying, FANOUT_CONCURRENCY};
pub use management::{ManagementGateway, ManagementGateways, NoEndpoint};
pub use queue::{
    fanout_inline_from_env, parse_fanout_inline, Fanout, FanoutJob, FanoutQueue, QueueError,
    RoomPush, DEFAULT_FANOUT_INLINE, FANOUT_INLINE_VAR, FANOUT_QUEUE_URL_VAR,
};

use std::future::Future;

/// Why a push to a connection failed, and so whether trying again could help.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is closed; its row is stale.
    #[error("connection is gone")]
    Gone,
    /// 429: API Gateway is throttling; worth retrying after a pause.
    #[error("throttled by API Gateway")]
    Throttled,
    /// The push did not get through, but could on a retry: a 5xx, or no connection to
    /// the management API (refused, reset, connect timeout). Nothing was delivered.
    #[error("management API unavailable: {context}")]
    Unavailable {
        /// What was tried.
        context: String,
        /// The error underneath, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Anything else, including an attempt that timed out: that push may have been
    /// delivered, so retrying it could show the message twice.
    #[error("{context}")]
    Failed {
        /// What was tried and what came of it.
        context: String,
        /// The error underneath, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl PostError {
    /// Whether the same push may be tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PostError::Throttled | PostError::Unavailable { .. })
    }

    /// [`PostError::Unavailable`] with no error underneath.
    pub fn unavailable(context: impl Into<String>) -> Self {
        PostError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// [`PostError::Failed`] with no error underneath.
    pub fn failed(context: impl Into<String>) -> Self {
        PostError::Failed {
            context: context.into(),
            source: None,
        }
    }
}

/// What a failed management call tried, and the error underneath when there is one.
type Failure = (String, Option<Box<dyn std::error::Error + Send + Sync>>);

/// How the chat reaches other connections: API Gateway's management API on AWS, a
/// socket locally, a recorder in tests.
pub trait ConnectionGateway: Send + Sync {
    /// Sends one text frame to a connection.
    fn post(
        &self,
        connection_id: &str,
        data: &str,
    ) -> impl Future<Output = Result<(), PostError>> + Send;

    /// Closes a connection; closing one that is already gone is not an error.
    fn delete(&self, connection_id: &str) -> impl Future<Output = Result<(), PostError>> + Send;

    /// Whether a connection is still open (`GET @connections/{id}`: 200, or 410 Gone).
    fn is_open(&self, connection_id: &str) -> impl Future<Output = Result<bool, PostError>> + Send;
}

/// A gateway lent out: lets wrappers such as [`Retrying`] borrow one.
impl<G: ConnectionGateway> ConnectionGateway for &G {
    fn post(
        &self,
        connection_id: &str,
        data: &str,
    ) -> impl Future<Output = Result<(), PostError>> + Send {
        (**self).post(connection_id, data)
    }

    fn delete(&self, connection_id: &str) -> impl Future<Output = Result<(), PostError>> + Send {
        (**self).delete(connection_id)
    }

    fn is_open(&self, connection_id: &str) -> impl Future<Output = Result<bool, PostError>> + Send {
        (**self).is_open(connection_id)
    }
}

/// What a failed management call means for the fan-out, from the answer's status and
/// error type, or from `dispatch_failure` (the request never got an answer because the
/// HTTP client could not send it) when there was no answer.
fn classify_failure(
    status: Option<u16>,
    code: Option<&str>,
    dispatch_failure: bool,
    describe: impl FnOnce() -> Failure,
) -> PostError {
    let unavailable = |(context, source): Failure| PostError::Unavailable { context, source };
    match (status, code) {
        (Some(410), _) | (_, Some("GoneException")) => PostError::Gone,
        (Some(429), _) | (_, Some("LimitExceededException")) => PostError::Throttled,
        (Some(500..=599), _) => unavailable(describe()),
        // Only a connect timeout surfaces here (the attempt timeout is not a dispatch
        // failure), so the request never left: safe to send again.
        _ if dispatch_failure => unavailable(describe()),
        _ => {
            let (context, source) = describe();
            PostError::Failed { context, source }
        }
    }
}
