//! The API Gateway edge: one WebSocket proxy event in, one proxy response out. The
//! Lambda binary and `webchat-local` both hand their events to [`handle`], so the
//! mapping between API Gateway and the chat rules exists once.

use crate::chat::{Chat, Frame};
use crate::gateway::ConnectionGateway;
use crate::limits::Limits;
use crate::store::{ConnectionStore, HistoryStore};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use webchat_shared_types::Route;

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
    let chat = Chat::new(store, gateway).with_limits(*limits);
    match route {
        Route::Connect => {
            let connected_at = (context.connected_at > 0).then_some(context.connected_at);
            match chat.connect(connection_id, connected_at).await {
                Ok(()) => status(200),
                Err(err) => {
                    tracing::error!(connection_id, error = %err, "could not record the connection");
                    status(500)
                }
            }
        }
        Route::Disconnect => match chat.disconnect(connection_id).await {
            Ok(()) => status(200),
            Err(err) => {
                tracing::error!(connection_id, error = %err, "could not remove the connection");
                status(500)
            }
        },
        _ => {
            let frame = if event.is_base64_encoded {
                Frame::Binary
            } else {
                Frame::Text(event.body.as_deref().unwrap_or(""))
            };
            let mut response = status(200);
            if let Some(reply) = chat.frame(route, connection_id, frame).await {
                response.body = Some(Body::Text(reply.to_json()));
            }
            response
        }
    }
}

fn status(code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = code;
    response
}
