//! Settings shared by every AWS SDK client the backend builds.

use aws_smithy_types::timeout::TimeoutConfig;
use std::time::Duration;

/// Short timeouts: an API Gateway route must answer within 29 s, and a DynamoDB or
/// management endpoint that is down should turn into an `internal` error, not a hang.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(12))
        .build()
}

#[cfg(feature = "local-endpoints")]
/// Credentials for local endpoints (dynalite, `webchat-local`), which accept any signature.
pub fn local_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("local", "local", None, None, "webchat-local")
}
