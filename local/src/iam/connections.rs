//! The `@connections` API's IAM check: `execute-api:ManageConnections` on
//! `arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/METHOD/@connections/ID`, answered
//! as API Gateway answers a denial (403, `AccessDeniedException`).

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::{Denial, Identities, Identity};

/// The action every `@connections` call is checked for.
pub const MANAGE_CONNECTIONS: &str = "execute-api:ManageConnections";

/// A `@connections` call the caller's role does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageConnectionsDenied(pub Denial);

impl IntoResponse for ManageConnectionsDenied {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            [("x-amzn-ErrorType", "AccessDeniedException")],
            axum::Json(serde_json::json!({ "Message": self.0.message_without_reason() })),
        )
            .into_response()
    }
}

/// Whether `identity` may make this `@connections` call (`method` `POST`, `GET` or
/// `DELETE`; `connection_id` decoded).
pub fn check_manage_connections(
    identities: &Identities,
    identity: &Identity,
    method: &str,
    connection_id: &str,
) -> Result<(), ManageConnectionsDenied> {
    let resource = format!(
        "{}/{method}/@connections/{connection_id}",
        identities.execute_api_arn
    );
    match Denial::check(identity, MANAGE_CONNECTIONS, &resource) {
        None => Ok(()),
        Some(denial) => Err(ManageConnectionsDenied(denial)),
    }
}
