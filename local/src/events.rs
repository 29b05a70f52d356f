//! API Gateway's Lambda events, filled in as AWS fills them.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayRequestAuthorizer,
    ApiGatewayWebsocketProxyRequest,
};
use base64::Engine;
use http::HeaderMap;
use rand::Rng;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use webchat_shared_types::Route;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An id in API Gateway's shape: 16 base64 characters ending in `=` (11 random bytes),
/// e.g. `L0SM9cOFvHcCIhw=`. `/` is avoided because AWS ids never contain it.
pub(crate) fn connection_id() -> String {
    loop {
        let bytes: [u8; 11] = rand::rng().random();
        let id = base64::engine::general_purpose::STANDARD.encode(bytes);
        if !id.contains('/') {
            return id;
        }
    }
}

/// A request id in the shape API Gateway uses for `requestId` and `messageId`.
pub(crate) fn request_id() -> String {
    let bytes: [u8; 6] = rand::rng().random();
    format!(
        "{}=",
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)[..7]
    )
}

/// `28/Nov/2026:08:41:20 +0000`, API Gateway's `requestTime` format.
fn request_time(epoch_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rfc3339 = humantime::format_rfc3339_seconds(
        UNIX_EPOCH + std::time::Duration::from_millis(epoch_ms.max(0).cast_unsigned()),
    )
    .to_string();
    // "2026-11-28T08:41:20Z"
    let (date, time) = rfc3339.split_once('T').unwrap_or((&rfc3339, ""));
    let mut parts = date.split('-');
    let (year, month, day) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("1"),
        parts.next().unwrap_or(""),
    );
    let month = MONTHS[month.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
    format!("{day}/{month}/{year}:{} +0000", time.trim_end_matches('Z'))
}

/// What every event of one connection shares.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    pub connection_id: String,
    pub connected_at: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    /// What the authorizer accepted on `$connect` (with sign-in on).
    pub authorizer: Option<AuthorizerInfo>,
}

/// A Lambda authorizer's answer, kept for every event of its connection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuthorizerInfo {
    pub principal_id: String,
    /// The policy's `context` (`sub`, `userName`).
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// `requestContext.authorizer` as API Gateway fills it for WebSocket routes behind a
/// Lambda authorizer: `principalId` and the context's keys side by side (plus
/// `integrationLatency` on `$connect`). For WebSocket events the crate (de)serializes
/// `fields` as that flat map, so a route reads `authorizer.fields["userName"]`.
pub(crate) fn authorizer(
    conn: &ConnectionInfo,
    integration_latency_ms: Option<i64>,
) -> ApiGatewayRequestAuthorizer {
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    if let Some(info) = &conn.authorizer {
        let other = &mut authorizer.fields;
        other.extend(info.context.clone());
        other.insert("principalId".into(), info.principal_id.clone().into());
        if let Some(latency) = integration_latency_ms {
            other.insert("integrationLatency".into(), latency.into());
        }
    }
    authorizer
}

/// The REQUEST authorizer's event for a `$connect`: its headers, query string and
/// request context, with `type` and `methodArn`.
pub(crate) fn authorizer_request(
    connect: &ApiGatewayWebsocketProxyRequest,
    method_arn: &str,
) -> Option<ApiGatewayCustomAuthorizerRequestTypeRequest> {
    let mut value = serde_json::to_value(connect).ok()?;
    let object = value.as_object_mut()?;
    object.insert("type".into(), "REQUEST".into());
    object.insert("methodArn".into(), method_arn.into());
    for absent in ["body", "isBase64Encoded"] {
        object.remove(absent);
    }
    serde_json::from_value(value).ok()
}

/// The API the events claim to come from.
#[derive(Debug, Clone)]
pub(crate) struct ApiInfo {
    pub api_id: String,
    pub stage: String,
    /// `host:port` the gateway listens on, as `domainName`.
    pub domain_name: String,
}

fn base_event(
    api: &ApiInfo,
    conn: &ConnectionInfo,
    route: Route,
) -> ApiGatewayWebsocketProxyRequest {
    let event_type = match route {
        Route::Connect => "CONNECT",
        Route::Disconnect => "DISCONNECT",
        _ => "MESSAGE",
    };
    let now = now_ms();
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let context = &mut event.request_context;
    context.route_key = Some(route.key().to_string());
    context.event_type = Some(event_type.to_string());
    context.connection_id = Some(conn.connection_id.clone());
    context.connected_at = conn.connected_at;
    context.request_time_epoch = now;
    context.request_time = Some(request_time(now));
    context.request_id = Some(request_id());
    context.extended_request_id = context.request_id.clone();
    context.message_direction = Some("IN".to_string());
    context.domain_name = Some(api.domain_name.clone());
    context.stage = Some(api.stage.clone());
    context.apiid = Some(api.api_id.clone());
    context.identity.source_ip = Some(conn.source_ip.clone());
    context.identity.user_agent.clone_from(&conn.user_agent);
    context.authorizer = authorizer(conn, None);
    event.is_base64_encoded = false;
    event
}

pub(crate) fn connect_event(
    api: &ApiInfo,
    conn: &ConnectionInfo,
    headers: &HeaderMap,
    query: HashMap<String, Vec<String>>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(api, conn, Route::Connect);
    event.headers = headers.clone();
    event.multi_value_headers = headers.clone();
    if !query.is_empty() {
        // Like API Gateway: the last value of each key, and every value in the multi map.
        let single: HashMap<String, String> = query
            .iter()
            .filter_map(|(key, values)| Some((key.clone(), values.last()?.clone())))
            .collect();
        event.query_string_parameters = single.into();
        event.multi_value_query_string_parameters = query.into();
    }
    event
}

/// A client frame on `route`; binary frames arrive base64-encoded, as on AWS.
pub(crate) fn message_event(
    api: &ApiInfo,
    conn: &ConnectionInfo,
    route: Route,
    body: String,
    is_base64_encoded: bool,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(api, conn, route);
    event.request_context.message_id = Some(request_id());
    event.body = Some(body);
    event.is_base64_encoded = is_base64_encoded;
    event
}

pub(crate) fn disconnect_event(
    api: &ApiInfo,
    conn: &ConnectionInfo,
    status_code: u16,
    reason: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(api, conn, Route::Disconnect);
    event.request_context.disconnect_status_code = Some(i64::from(status_code));
    event.request_context.disconnect_reason = Some(reason.to_string());
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_have_the_aws_shape() {
        for _ in 0..200 {
            let id = connection_id();
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.ends_with('='), "{id}");
            assert!(!id.contains('/'), "{id}");
        }
    }

    fn sample() -> (ApiInfo, ConnectionInfo) {
        let api = ApiInfo {
            api_id: "abc123defg".into(),
            stage: "Prod".into(),
            domain_name: "127.0.0.1:8080".into(),
        };
        let conn = ConnectionInfo {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            connected_at: 1_764_316_800_000,
            source_ip: "127.0.0.1".into(),
            user_agent: Some("test-agent".into()),
            authorizer: None,
        };
        (api, conn)
    }

    #[test]
    fn connect_events_carry_the_handshake_headers_and_query() {
        let (api, conn) = sample();
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-protocol", "chat".parse().unwrap());
        let query = HashMap::from([(
            "token".to_string(),
            vec!["t1".to_string(), "t2".to_string()],
        )]);
        let event = connect_event(&api, &conn, &headers, query);
        assert_eq!(event.query_string_parameters.first("token"), Some("t2"));
        assert_eq!(
            event.multi_value_query_string_parameters.all("token"),
            Some(vec!["t1", "t2"])
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["headers"]["sec-websocket-protocol"], "chat");
        let context = &json["requestContext"];
        assert_eq!(context["routeKey"], "$connect");
        assert_eq!(context["eventType"], "CONNECT");
        assert_eq!(context["connectionId"], "L0SM9cOFvHcCIhw=");
        assert_eq!(context["connectedAt"], 1_764_316_800_000i64);
        assert_eq!(context["domainName"], "127.0.0.1:8080");
        assert_eq!(context["stage"], "Prod");
        assert_eq!(context["apiId"], "abc123defg");
        assert_eq!(context["identity"]["sourceIp"], "127.0.0.1");
        assert!(context["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));
        assert!(context["requestTimeEpoch"].as_i64().is_some_and(|t| t > 0));
    }

    #[test]
    fn message_and_disconnect_events_have_their_aws_fields() {
        let (api, conn) = sample();
        let message =
            serde_json::to_value(message_event(&api, &conn, Route::Ping, "{}".into(), false))
                .unwrap();
        assert_eq!(message["requestContext"]["eventType"], "MESSAGE");
        assert_eq!(message["requestContext"]["routeKey"], "ping");
        assert!(message["requestContext"]["messageId"].as_str().is_some());
        assert_eq!(message["body"], "{}");
        let gone = serde_json::to_value(disconnect_event(&api, &conn, 1001, "Going away")).unwrap();
        assert_eq!(gone["requestContext"]["eventType"], "DISCONNECT");
        assert_eq!(gone["requestContext"]["disconnectStatusCode"], 1001);
        assert_eq!(gone["requestContext"]["disconnectReason"], "Going away");
    }

    #[test]
    fn authorized_connections_carry_the_identity_in_api_gateways_websocket_shape() {
        let (api, mut conn) = sample();
        let plain =
            serde_json::to_value(message_event(&api, &conn, Route::Ping, "{}".into(), false))
                .unwrap();
        assert!(plain["requestContext"]
            .get("authorizer")
            .is_none_or(|a| a == &serde_json::json!({})));
        let mut context = serde_json::Map::new();
        context.insert("sub".into(), "sub-1".into());
        context.insert("userName".into(), "Ann".into());
        conn.authorizer = Some(AuthorizerInfo {
            principal_id: "sub-1".into(),
            context,
        });
        let event =
            serde_json::to_value(message_event(&api, &conn, Route::Ping, "{}".into(), false))
                .unwrap();
        assert_eq!(
            event["requestContext"]["authorizer"],
            serde_json::json!({"principalId": "sub-1", "sub": "sub-1", "userName": "Ann"})
        );
        let connect = connect_event(&api, &conn, &HeaderMap::new(), HashMap::new());
        let request = authorizer_request(
            &connect,
            &format!(
                "arn:aws:execute-api:us-east-1:0:a/Prod/{}",
                Route::Connect.key()
            ),
        )
        .unwrap();
        assert_eq!(request.type_.as_deref(), Some("REQUEST"));
    }

    #[test]
    fn request_time_uses_api_gateway_format() {
        assert_eq!(
            request_time(1_764_316_800_000),
            "28/Nov/2025:08:00:00 +0000"
        );
    }
}
