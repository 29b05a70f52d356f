//! The Lambda function for every webchat route. Each route is deployed as its own
//! function (own role, least privilege) running this same binary: the event's
//! `routeKey` selects the handler, so one build serves all ten.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use webchat_backend::{DynamoStore, Limits, ManagementGateways, Retrying, TableNames};

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

    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let (store, gateways, limits) = (&store, &gateways, &limits);
            async move {
                let request = event.payload;
                let gateway = Retrying::new(gateways.for_event(&request)?);
                let response: ApiGatewayProxyResponse =
                    webchat_backend::handle(store, &gateway, limits, &request).await;
                // Before answering: the invocation's log stream is still ours, and the
                // figures reach CloudWatch as EMF lines with no call of their own.
                webchat_telemetry::metrics::flush_to_stdout(metrics);
                Ok::<_, Error>(response)
            }
        },
    ))
    .await
}
