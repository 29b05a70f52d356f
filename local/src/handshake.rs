//! The `$connect` handshake: the authorizer (with sign-in on), then the `$connect`
//! handler, then the upgrade; a refusal by either answers the handshake, as on API Gateway.

use crate::dev_issuer;
use crate::events::{self, ConnectionInfo};
use crate::gateway::{Gateway, Handlers};
use crate::socket;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use webchat_shared_types::{Route, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};

/// With sign-in on: the authorizer `$connect` runs first, and the issuer it trusts.
pub(crate) struct SignIn {
    pub verifier: webchat_authorizer::Verifier,
    pub issuer: Arc<dev_issuer::DevIssuer>,
}

impl SignIn {
    /// The development issuer at `issuer_url` (this gateway), and the authorizer on its
    /// real verifying path: discovery and JWKS over HTTP, from this gateway.
    pub(crate) fn dev(
        issuer_url: String,
        client_id: &str,
        token_lifetime: Duration,
    ) -> Result<SignIn, Box<dyn std::error::Error + Send + Sync>> {
        let auth_config = webchat_authorizer::AuthConfig::new(&issuer_url, client_id, None)?;
        let issuer = dev_issuer::DevIssuer::new(
            issuer_url,
            client_id.to_string(),
            token_lifetime.as_secs().max(1),
        )?;
        let verifier = webchat_authorizer::Verifier::new(auth_config)?;
        Ok(SignIn {
            verifier,
            issuer: Arc::new(issuer),
        })
    }
}

/// The WebSocket handshake: `$connect` runs before the upgrade, and a non-2xx answer
/// refuses it with that status, as on API Gateway.
pub(crate) async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let mut info = ConnectionInfo {
        authorizer: None,
        connection_id: events::connection_id(),
        connected_at: events::now_ms(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let mut query_map: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in query {
        query_map.entry(key).or_default().push(value);
    }
    let mut event = events::connect_event(&gateway.api, &info, &headers, query_map);
    tracing::info!(target: "webchat_local::connection", "connect {} from {}", info.connection_id, info.source_ip);
    let template_authorizer =
        matches!(&gateway.handlers, Handlers::Template(d) if d.has_authorizer());
    if gateway.sign_in.is_some() || template_authorizer {
        let started = std::time::Instant::now();
        match authorize(&gateway, &event).await {
            Ok(authorizer) => {
                let latency = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                info.authorizer = Some(authorizer);
                // Every later event of the connection carries the identity; `$connect`'s
                // also has the authorizer's latency, as on AWS.
                event.request_context.authorizer = events::authorizer(&info, Some(latency));
            }
            Err(status) => {
                tracing::info!(target: "webchat_local::connection", "connect {} refused by the authorizer with {}", info.connection_id, status);
                return refusal(status);
            }
        }
    }
    let response = gateway.invoke(&event).await;
    if !(200..300).contains(&response.status_code) {
        let status = u16::try_from(response.status_code)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::info!(target: "webchat_local::connection", "connect {} refused with {}", info.connection_id, status);
        return refusal(status);
    }
    // `$connect` succeeded, so a handshake that fails now must still end in `$disconnect`.
    let failed = (gateway.clone(), info.clone());
    // Chat frames are small: 4 KB buffers instead of tungstenite's 128 KB each way keep
    // a thousand idle connections at a few megabytes (they grow for larger frames).
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_failed_upgrade(move |err| {
            let (gateway, info) = failed;
            tracing::info!(target: "webchat_local::connection", error = &err as &dyn std::error::Error, "upgrade of {} failed", info.connection_id);
            tokio::spawn(async move {
                let event = events::disconnect_event(&gateway.api, &info, 1006, "Upgrade failed");
                gateway.invoke(&event).await;
            });
        })
        .on_upgrade(move |socket| socket::run(gateway, info, socket))
}

/// A refused handshake, as API Gateway answers one: the status, and its reason as the
/// message, in API Gateway's words for a 500 (its `Internal server error`) and the
/// canonical reason for any other status.
fn refusal(status: StatusCode) -> Response {
    let reason = if status == StatusCode::INTERNAL_SERVER_ERROR {
        "Internal server error"
    } else {
        status.canonical_reason().unwrap_or("Error")
    };
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "message": reason }).to_string(),
    )
        .into_response()
}

/// Runs the authorizer as API Gateway would for `$connect`: an `Allow` policy gives the
/// connection its identity; `Unauthorized` answers 401, `Deny` 403, any other failure 500.
async fn authorize(
    gateway: &Gateway,
    connect: &aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest,
) -> Result<events::AuthorizerInfo, StatusCode> {
    use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
    use aws_lambda_events::iam::IamPolicyEffect;
    let internal = StatusCode::INTERNAL_SERVER_ERROR;
    let method_arn = format!(
        "arn:aws:execute-api:{}:000000000000:{}/{}/{}",
        gateway.config.region,
        gateway.api.api_id,
        gateway.api.stage,
        Route::Connect.key()
    );
    let request = events::authorizer_request(connect, &method_arn).ok_or(internal)?;
    let response: ApiGatewayCustomAuthorizerResponse<serde_json::Value> =
        match (&gateway.handlers, &gateway.sign_in) {
            (Handlers::Template(dispatcher), _) if dispatcher.has_authorizer() => {
                dispatcher.authorize(&request).await?
            }
            (_, Some(sign_in)) => {
                match webchat_authorizer::authorize(&sign_in.verifier, &request).await {
                    Err(webchat_authorizer::AuthorizerError::Unauthorized) => {
                        return Err(StatusCode::UNAUTHORIZED)
                    }
                    Err(webchat_authorizer::AuthorizerError::Unavailable) => return Err(internal),
                    Ok(response) => serde_json::to_value(response)
                        .and_then(serde_json::from_value)
                        .map_err(|_| internal)?,
                }
            }
            _ => return Err(internal),
        };
    let statements = &response.policy_document.statement;
    let allowed = !statements.is_empty()
        && statements
            .iter()
            .all(|s| s.effect == IamPolicyEffect::Allow);
    if !allowed {
        return Err(StatusCode::FORBIDDEN);
    }
    let serde_json::Value::Object(context) = response.context else {
        return Err(internal);
    };
    Ok(events::AuthorizerInfo {
        principal_id: response.principal_id.unwrap_or_default(),
        context,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Auth, Config};
    use crate::gateway;

    /// The development issuer never signs a name that is not a valid `userName`, so a
    /// token with one (the authorizer's `Deny`, e.g. a Cognito user with such a name) is
    /// signed here with its key.
    #[tokio::test]
    async fn a_token_whose_name_the_authorizer_denies_is_refused_403_forbidden() {
        let running = gateway::start(Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            auth: Auth::Dev {
                client_id: "webchat-local".to_string(),
            },
            ..Config::default()
        })
        .await
        .expect("gateway starts");
        let issuer = running.dev_issuer().expect("sign-in is on");
        let tokens = issuer
            .tokens("bell\u{7}name", issuer.client_id(), None)
            .expect("signed");
        let url = format!(
            "{}?token={}",
            running.websocket_url(),
            tokens["id_token"].as_str().unwrap()
        );
        match tokio_tungstenite::connect_async(&url).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 403);
                let body: serde_json::Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .expect("a JSON body");
                assert_eq!(body, serde_json::json!({"message": "Forbidden"}));
            }
            other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
        }
        assert_eq!(running.open_connections(), 0);
        running.stop().await;
    }
}
