//! The real API Gateway management client, pointed at a local endpoint.

use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};

/// The `aws-sdk-apigatewaymanagement` client for `endpoint`, signing with `credentials`
/// for `region`, with no retries so a refusal shows as it came.
pub fn management_client(
    endpoint: &str,
    credentials: Credentials,
    region: &str,
) -> aws_sdk_apigatewaymanagement::Client {
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials)
        .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}
