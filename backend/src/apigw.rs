//! The API Gateway edge: one WebSocket proxy event in, one proxy response out. The
//! Lambda binary and `webchat-local` both hand their events to [`handle`], so the
//! mapping between API Gateway and the chat rules exists once.

use crate::delivery::{ConnectionGateway, Fanout};
use crate::limits::Limits;
use crate::rules::{Frame, Identity, Rules};
use crate::store::{ConnectionStore, HistoryStore};
use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
    ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::encodings::Body;
use webchat_shared_types::{Route, ServerEvent};
use webchat_telemetry::metrics as m;
use webchat_telemetry::Causes;

/// Handles one API Gateway WebSocket event for any route, each connection held to `limits`.
pub async fn handle<S, G>(
    store: &S,
    gateway: &G,
    limits: &Limits,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: ConnectionStore + HistoryStore,
    G: ConnectionGateway,
{
    handle_with_fanout(store, gateway, limits, None, event).await
}

/// [`handle`], with pushes to rooms above `fanout`'s threshold handed to its queue.
pub async fn handle_with_fanout<S, G>(
    store: &S,
    gateway: &G,
    limits: &Limits,
    fanout: Option<Fanout<'_>>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: ConnectionStore + HistoryStore,
    G: ConnectionGateway,
{
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else {
        tracing::warn!("event without requestContext.connectionId");
        return status(400);
    };
    // A route key this build does not know is a frame for `$default`, which only refuses.
    let route = context
        .route_key
        .as_deref()
        .and_then(Route::from_key)
        .unwrap_or(Route::Default);
    let identity = identity(context);
    let rules = Rules::new(store, gateway)
        .with_limits(*limits)
        .with_identity(identity.as_ref())
        .with_fanout(fanout);
    match route {
        Route::Connect => {
            let connected_at = (context.connected_at > 0).then_some(context.connected_at);
            match rules.connect(connection_id, connected_at).await {
                Ok(()) => status(200),
                Err(err) => {
                    tracing::error!(connection_id, error = %Causes(&err), "could not record the connection");
                    status(500)
                }
            }
        }
        Route::Disconnect => match rules.disconnect(connection_id).await {
            Ok(()) => status(200),
            Err(err) => {
                tracing::error!(connection_id, error = %Causes(&err), "could not remove the connection");
                status(500)
            }
        },
        _ => {
            metrics::counter!(m::FRAMES, m::ROUTE => route.key()).increment(1);
            let frame = if event.is_base64_encoded {
                Frame::Binary
            } else {
                Frame::Text(event.body.as_deref().unwrap_or(""))
            };
            let mut response = status(200);
            if let Some(reply) = rules.frame(route, connection_id, frame).await {
                if let ServerEvent::Error { code, .. } = &reply.event {
                    metrics::counter!(m::ERROR_REPLIES, m::ROUTE => route.key(), m::CODE => code.as_str()).increment(1);
                }
                response.body = Some(Body::Text(reply.to_json()));
            }
            response
        }
    }
}

/// The signed-in identity the Lambda authorizer put in the connection's context
/// (`requestContext.authorizer`: `sub` and `userName` beside `principalId`), if any. Only
/// API Gateway writes it, so a client cannot claim one.
fn identity(context: &ApiGatewayWebsocketProxyRequestContext) -> Option<Identity> {
    let field = |name: &str| {
        context
            .authorizer
            .fields
            .get(name)
            .and_then(|value| value.as_str())
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    Some(Identity {
        sub: field("sub")?,
        user_name: field("userName")?,
    })
}

fn status(code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = code;
    response
}
