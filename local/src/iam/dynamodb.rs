//! A DynamoDB endpoint that checks each call against the caller's role and forwards the
//! allowed ones to the real endpoint (dynalite), relaying its answer as it is.
//!
//! Each request's `SigV4` signature (service `dynamodb`) names the function that sent it;
//! `X-Amz-Target` gives the action (`DynamoDB_20120810.PutItem` → `dynamodb:PutItem`) and
//! the body the tables it touches: `TableName` (with `IndexName`, `…/index/NAME`), every
//! table of `BatchGetItem`/`BatchWriteItem`, and for transactions each item's own action
//! (`TransactWriteItems` is checked as `PutItem`, `UpdateItem`, `DeleteItem` or
//! `ConditionCheckItem` on each item's table, `TransactGetItems` as `GetItem`, as IAM
//! does). Calls that name no table (`ListTables`, `PartiQL`) are checked on resource `*`.
//! A denied call is answered as DynamoDB answers it: 400 `AccessDeniedException`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{Denial, Identities};
use crate::served::Served;
use crate::sigv4;

/// The signing name of DynamoDB.
pub const SERVICE: &str = "dynamodb";

/// The most a DynamoDB request may carry (16 MB, `BatchWriteItem`'s limit), plus room.
const BODY_LIMIT: usize = 17 * 1024 * 1024;

const TARGET_PREFIX: &str = "DynamoDB_20120810.";

/// The checking endpoint's state.
pub struct DynamoProxy {
    identities: Arc<Identities>,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for DynamoProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoProxy")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl DynamoProxy {
    /// A proxy that checks calls against `identities` and forwards the allowed ones to
    /// `upstream` (an `http://` endpoint, e.g. dynalite's).
    pub fn new(identities: Arc<Identities>, upstream: &str) -> Arc<DynamoProxy> {
        Arc::new(DynamoProxy {
            identities,
            upstream: upstream.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// The proxy as a router: it answers `POST` at any path, so it can also be nested
    /// under a path of another server (signatures are checked over the path as sent).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// Serves the proxy on `addr` (port 0 picks a free one).
    pub async fn start(self: Arc<Self>, addr: SocketAddr) -> std::io::Result<Served> {
        Served::start(self.router(), addr, "the DynamoDB proxy").await
    }
}

/// An error as DynamoDB sends it (`__type` and `Message`, the JSON 1.0 protocol).
fn dynamodb_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", error_type),
            ("content-type", "application/x-amz-json-1.0"),
        ],
        serde_json::json!({
            "__type": format!("com.amazon.coral.service#{error_type}"),
            "Message": message,
        })
        .to_string(),
    )
        .into_response()
}

async fn handle(State(proxy): State<Arc<DynamoProxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return dynamodb_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Request entity too large",
        );
    };
    // Nested under a path, the signature still covers the path the client sent.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let signed = sigv4::Request::new(&parts.method, uri, &parts.headers, &body);
    let identity = match proxy.identities.verify(&signed, SERVICE, SystemTime::now()) {
        Ok(identity) => identity,
        Err(refusal) => {
            let error_type = refusal.error_type();
            tracing::info!(target: "webchat_local::iam", "DynamoDB call refused: {error_type}");
            return dynamodb_error(
                StatusCode::BAD_REQUEST,
                error_type,
                &format!("{:#}", anyhow::Error::new(refusal)),
            );
        }
    };
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default();
    if operation.is_empty() {
        return dynamodb_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "no X-Amz-Target DynamoDB_20120810.<operation>",
        );
    }
    // A body that is not JSON touches nothing: the endpoint answers it as malformed.
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return forward(&proxy, parts.headers, body).await;
    };
    for (action, resource) in requested(operation, &json, &proxy.identities) {
        if let Some(denial) = Denial::check(&identity, &action, &resource) {
            return dynamodb_error(
                StatusCode::BAD_REQUEST,
                "AccessDeniedException",
                &denial.message(),
            );
        }
    }
    forward(&proxy, parts.headers, body).await
}

/// The (action, resource ARN) pairs a call needs, as IAM checks them.
fn requested(operation: &str, body: &Value, identities: &Identities) -> Vec<(String, String)> {
    let table_arn = |name: &str| {
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            format!(
                "arn:aws:dynamodb:{}:{}:table/{name}",
                identities.region, identities.account_id
            )
        }
    };
    let action = |op: &str| format!("dynamodb:{op}");
    let mut out = Vec::new();
    match operation {
        "BatchGetItem" | "BatchWriteItem" => {
            for table in body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(t, _)| t)
            {
                out.push((action(operation), table_arn(table)));
            }
        }
        "TransactWriteItems" | "TransactGetItems" => {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                for (kind, op) in [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                    ("Get", "GetItem"),
                ] {
                    if let Some(table) = item[kind]["TableName"].as_str() {
                        out.push((action(op), table_arn(table)));
                    }
                }
            }
        }
        _ => match body["TableName"].as_str() {
            Some(table) => {
                let mut arn = table_arn(table);
                if let Some(index) = body["IndexName"].as_str() {
                    arn = format!("{arn}/index/{index}");
                }
                out.push((action(operation), arn));
            }
            None => out.push((action(operation), "*".to_string())),
        },
    }
    if out.is_empty() {
        out.push((action(operation), "*".to_string()));
    }
    out
}

/// Sends the call on as it came (its signature is not checked again there) and relays
/// the answer.
async fn forward(proxy: &DynamoProxy, headers: http::HeaderMap, body: Bytes) -> Response {
    let mut request = http::Request::new(Full::new(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = match format!("{}/", proxy.upstream).parse() {
        Ok(uri) => uri,
        Err(_) => {
            return dynamodb_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "the DynamoDB endpoint is not a URL",
            )
        }
    };
    for (name, value) in &headers {
        if !matches!(name.as_str(), "host" | "connection" | "content-length") {
            request.headers_mut().append(name, value.clone());
        }
    }
    let answer = match proxy.client.request(request).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::error!(%error, upstream = %proxy.upstream, "DynamoDB endpoint unreachable");
            return dynamodb_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the DynamoDB endpoint behind webchat-local is unreachable",
            );
        }
    };
    let (parts, body) = answer.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::error!(%error, "DynamoDB endpoint's answer broke off");
            return dynamodb_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the DynamoDB endpoint's answer broke off",
            );
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "content-length"
        ) {
            response.headers_mut().append(name, value.clone());
        }
    }
    if !response.headers().contains_key("content-type") {
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use webchat_templates::deployment::{Api, Deployment, LocalValues};

    fn identities() -> Identities {
        let deployment = Deployment {
            api: Api {
                logical_id: "Api".into(),
                api_id: "abc".into(),
                stage: "Prod".into(),
                route_selection_expression: String::new(),
                routes: Vec::new(),
                authorizer: None,
            },
            functions: std::collections::BTreeMap::default(),
            tables: Vec::new(),
            queues: Vec::new(),
            event_sources: Vec::new(),
        };
        Identities::from_deployment(&deployment, &LocalValues::default())
    }

    #[test]
    fn each_call_names_the_actions_and_tables_iam_checks() {
        let ids = identities();
        let arn = |t: &str| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{t}");
        let pair = |a: &str, r: String| (a.to_string(), r);
        assert_eq!(
            requested("PutItem", &json!({"TableName": "T"}), &ids),
            [pair("dynamodb:PutItem", arn("T"))]
        );
        assert_eq!(
            requested("Query", &json!({"TableName": "T", "IndexName": "I"}), &ids),
            [pair("dynamodb:Query", format!("{}/index/I", arn("T")))]
        );
        assert_eq!(
            requested(
                "BatchWriteItem",
                &json!({"RequestItems": {"A": [], "B": []}}),
                &ids
            ),
            [
                pair("dynamodb:BatchWriteItem", arn("A")),
                pair("dynamodb:BatchWriteItem", arn("B"))
            ]
        );
        assert_eq!(
            requested(
                "TransactWriteItems",
                &json!({"TransactItems": [
                    {"Put": {"TableName": "A"}},
                    {"ConditionCheck": {"TableName": "B"}},
                    {"Delete": {"TableName": "C"}},
                ]}),
                &ids
            ),
            [
                pair("dynamodb:PutItem", arn("A")),
                pair("dynamodb:ConditionCheckItem", arn("B")),
                pair("dynamodb:DeleteItem", arn("C"))
            ]
        );
        assert_eq!(
            requested("ListTables", &json!({}), &ids),
            [pair("dynamodb:ListTables", "*".into())]
        );
        assert_eq!(
            requested("GetItem", &json!({"TableName": arn("X")}), &ids),
            [pair("dynamodb:GetItem", arn("X"))]
        );
    }
}
