//! The `@connections` management API, as API Gateway serves it at
//! `https://{api}.execute-api.{region}.amazonaws.com/{stage}/@connections/{id}`.
//! Every request must be signed with `SigV4` (unless `--management-auth none`), and errors
//! carry `x-amzn-ErrorType`, so AWS SDKs surface `GoneException`,
//! `InvalidSignatureException` and so on as they do on AWS.

use crate::config::ManagementAuth;
use crate::gateway::Gateway;
use crate::iam;
use crate::outbox::Frame;
use crate::sigv4;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use webchat_shared_types::MAX_MESSAGE_BYTES;

pub(crate) fn routes(stage: &str, gateway: Arc<Gateway>) -> Router<Arc<Gateway>> {
    let methods = || {
        post(post_to_connection)
            .get(get_connection)
            .delete(delete_connection)
    };
    Router::new()
        .route(&format!("/{stage}/@connections/{{id}}"), methods())
        .route("/@connections/{id}", methods())
        .route_layer(middleware::from_fn_with_state(gateway, require_signature))
}

/// The most body a signed request may have: the signature covers the body, so it is read
/// whole before anything else; larger ones are refused as too large, as they would be.
const SIGNED_BODY_LIMIT: usize = 2 * MAX_MESSAGE_BYTES;

/// Refuses a request whose `SigV4` signature is missing or wrong before any handler runs,
/// so a refusal delivers and deletes nothing.
async fn require_signature(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    // In template mode each function signs with its own key and its role decides.
    let iam = gateway.config.management_iam.clone();
    // The gateway's own key (the operator's, as an administrator's on AWS) still works.
    let key = match (&iam, &gateway.config.management_auth) {
        (_, ManagementAuth::SigV4(key)) => Some(key),
        // `--management-auth none`: anyone unsigned may; a function's call is still checked.
        (Some(_), ManagementAuth::Off) if !request.headers().contains_key("authorization") => {
            return next.run(request).await
        }
        (Some(_), ManagementAuth::Off) => None,
        (None, ManagementAuth::Off) => return next.run(request).await,
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, SIGNED_BODY_LIMIT).await else {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!("the request body is over {SIGNED_BODY_LIMIT} bytes"),
        );
    };
    let signed = sigv4::Request::new(&parts.method, &parts.uri, &parts.headers, &body);
    let now = std::time::SystemTime::now();
    let operator = key
        .filter(|key| sigv4::access_key_id(&parts.headers).is_ok_and(|id| id == key.access_key_id));
    let checked = match (&iam, key) {
        (Some(_), Some(key)) if operator.is_some() => {
            sigv4::verify(&signed, key, &gateway.config.region, now).map(|()| None)
        }
        (Some(identities), _) => identities
            .verify(&signed, sigv4::SERVICE, now)
            .map(|identity| Some((identities, identity))),
        (None, Some(key)) => {
            sigv4::verify(&signed, key, &gateway.config.region, now).map(|()| None)
        }
        (None, None) => Ok(None),
    };
    if let Ok(Some((identities, identity))) = &checked {
        let id = parts.uri.path().rsplit('/').next().unwrap_or_default();
        let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
        if let Err(denied) =
            iam::check_manage_connections(identities, identity, parts.method.as_str(), &id)
        {
            return denied.into_response();
        }
    }
    if let Err(refusal) = checked {
        tracing::info!(
            target: "webchat_local::management",
            "{} {} refused: {}",
            parts.method,
            parts.uri.path(),
            refusal.error_type()
        );
        // With its causes: the message is the caller's only clue to what was wrong.
        let error_type = refusal.error_type();
        return aws_error(
            StatusCode::FORBIDDEN,
            error_type,
            &format!("{:#}", anyhow::Error::new(refusal)),
        );
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
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
        Ok(text) => Frame::Text(text),
        Err(not_text) => Frame::Binary(not_text.into_bytes()),
    };
    // Closing, or past its outbox's bound and closing now: gone either way, so the
    // handlers clean it up and announce `userExit`.
    if connection.outbox.push(frame).is_err() {
        return gone(&id);
    }
    StatusCode::OK.into_response()
}

fn rfc3339(epoch_ms: i64) -> String {
    humantime::format_rfc3339_millis(
        UNIX_EPOCH + Duration::from_millis(epoch_ms.max(0).cast_unsigned()),
    )
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
    if connection.outbox.closing().is_some() {
        return gone(&id);
    }
    connection.outbox.close(1000, "Connection deleted");
    StatusCode::NO_CONTENT.into_response()
}
