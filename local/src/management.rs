//! The `@connections` management API, as API Gateway serves it at
//! `https://{api}.execute-api.{region}.amazonaws.com/{stage}/@connections/{id}`.
//! Any SigV4 signature is accepted; errors carry `x-amzn-ErrorType` so AWS SDKs
//! surface `GoneException`, `PayloadTooLargeException` and so on.

use crate::{Gateway, Outbound};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use webchat_shared_types::MAX_MESSAGE_BYTES;

pub(crate) fn routes(stage: &str) -> Router<Arc<Gateway>> {
    let methods = || {
        post(post_to_connection)
            .get(get_connection)
            .delete(delete_connection)
    };
    Router::new()
        .route(&format!("/{stage}/@connections/{{id}}"), methods())
        .route("/@connections/{id}", methods())
}

fn aws_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-ErrorType", error_type)],
        Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

fn gone(id: &str) -> Response {
    aws_error(
        StatusCode::GONE,
        "GoneException",
        &format!("connection {id} is not open"),
    )
}

async fn post_to_connection(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_MESSAGE_BYTES {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!(
                "data is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                body.len()
            ),
        );
    }
    let Some(connection) = gateway.connection(&id) else {
        return gone(&id);
    };
    let frame = match String::from_utf8(body.to_vec()) {
        Ok(text) => Outbound::Text(text),
        Err(not_text) => Outbound::Binary(not_text.into_bytes()),
    };
    if connection.outbound.send(frame).is_err() {
        return gone(&id);
    }
    StatusCode::OK.into_response()
}

fn rfc3339(epoch_ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(epoch_ms.max(0) as u64))
        .to_string()
}

async fn get_connection(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let Some(connection) = gateway.connection(&id) else {
        return gone(&id);
    };
    let info = &connection.info;
    Json(serde_json::json!({
        "connectedAt": rfc3339(info.connected_at),
        "lastActiveAt": rfc3339(connection.last_active_ms.load(Ordering::Relaxed)),
        "identity": {
            "sourceIp": info.source_ip,
            "userAgent": info.user_agent,
        },
    }))
    .into_response()
}

async fn delete_connection(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Response {
    let Some(connection) = gateway.connection(&id) else {
        return gone(&id);
    };
    if connection
        .outbound
        .send(Outbound::Close {
            code: 1000,
            reason: "Connection deleted",
        })
        .is_err()
    {
        return gone(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}
