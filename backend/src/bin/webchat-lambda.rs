//! The Lambda function for every webchat route. Each route is deployed as its own
//! function (own role, least privilege) running this same binary: the event's
//! `routeKey` selects the handler, so one build serves all ten. The fan-out function
//! runs it too: an SQS batch of fan-out jobs is told from a WebSocket event by its shape.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use webchat_backend::delivery::sqs::SqsQueue;
use webchat_backend::delivery::{fanout_inline_from_env, FANOUT_QUEUE_URL_VAR};
use webchat_backend::fanout_edge::{handle_sqs, is_sqs_event};
use webchat_backend::{DynamoStore, Fanout, Limits, ManagementGateways, Retrying, TableNames};

#[tokio::main]
async fn main() -> Result<(), Error> {
    webchat_telemetry::init_tracing();

    let metrics = webchat_telemetry::metrics::install_emf(
        &std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
    )?;

    // A wrong setting fails the cold start, naming the variable, rather than serving
    // with limits nobody chose.
    let limits = Limits::from_env().inspect_err(|err| tracing::error!("{err}"))?;
    tracing::debug!(message = %limits.message, action = %limits.action, "rate limits per connection");
    let fanout_inline = fanout_inline_from_env().inspect_err(|err| tracing::error!("{err}"))?;

    // Clients are built once per cold start and reused by every invocation.
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(webchat_backend::sdk::timeouts())
        .load()
        .await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config),
        TableNames::from_env().inspect_err(|err| tracing::error!("{err}"))?,
    );
    let gateways = ManagementGateways::new(&sdk_config, std::env::var("MANAGEMENT_ENDPOINT").ok());
    // The functions that push to rooms have a queue (a big room's messages and member
    // counts); the fan-out function has none, so its cleanups never queue more jobs.
    let queue = std::env::var(FANOUT_QUEUE_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| SqsQueue::new(aws_sdk_sqs::Client::new(&sdk_config), url));

    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let (store, gateways, limits, queue) = (&store, &gateways, &limits, &queue);
        async move {
            let payload = event.payload;
            let response = if is_sqs_event(&payload) {
                let batch: SqsEvent = serde_json::from_value(payload)?;
                // Fan-out jobs carry no request context: the function is configured
                // with the management endpoint (MANAGEMENT_ENDPOINT).
                let gateway = Retrying::new(gateways.configured()?);
                serde_json::to_value(handle_sqs(store, &gateway, limits, batch).await)?
            } else {
                let request: ApiGatewayWebsocketProxyRequest = serde_json::from_value(payload)?;
                let gateway = Retrying::new(gateways.for_event(&request)?);
                let fanout = queue
                    .as_ref()
                    .map(|queue| Fanout::new(queue, fanout_inline));
                serde_json::to_value(
                    webchat_backend::handle_with_fanout(store, &gateway, limits, fanout, &request)
                        .await,
                )?
            };
            // Before answering: the invocation's log stream is still ours, and the
            // figures reach CloudWatch as EMF lines with no call of their own.
            webchat_telemetry::metrics::flush_to_stdout(metrics);
            Ok::<_, Error>(response)
        }
    }))
    .await
}
