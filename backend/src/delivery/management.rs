//! The management API client: the SDK's for `GET` and `DELETE`, a signed post for pushes,
//! one per endpoint.

use super::signed_post::SignedPost;
use super::{classify_failure, ConnectionGateway, PostError};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The management API of one API Gateway stage.
#[derive(Debug, Clone)]
pub struct ManagementGateway {
    /// DELETE (and anything else but pushes).
    client: Client,
    /// Pushes: the same request, signed and sent without the SDK's orchestrator.
    post: Arc<SignedPost>,
}

impl ManagementGateway {
    /// A gateway for `endpoint` as `config` describes it (region, timeouts), signing as
    /// `credentials`, the provider `config` was given.
    fn from_config(
        endpoint: &str,
        config: aws_sdk_apigatewaymanagement::Config,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        ManagementGateway {
            post: Arc::new(SignedPost::new(endpoint, &config, credentials)),
            client: Client::from_conf(config),
        }
    }

    /// A client for a local management endpoint that checks no signature.
    #[cfg(feature = "local-endpoints")]
    pub fn local(endpoint: &str) -> Self {
        Self::local_signed(endpoint, "us-east-1", crate::sdk::local_credentials())
    }

    /// A client for a local management endpoint such as `webchat-local`'s, signing as
    /// `credentials` for `region`.
    #[cfg(feature = "local-endpoints")]
    pub fn local_signed(
        endpoint: &str,
        region: &str,
        credentials: aws_credential_types::Credentials,
    ) -> Self {
        let config = aws_sdk_apigatewaymanagement::Config::builder()
            .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_apigatewaymanagement::config::Region::new(
                region.to_string(),
            ))
            .credentials_provider(credentials.clone())
            .timeout_config(crate::sdk::timeouts())
            // Throttling is retried by the fan-out with its own backoff.
            .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
            .build();
        ManagementGateway::from_config(
            endpoint,
            config,
            Some(SharedCredentialsProvider::new(credentials)),
        )
    }
}

/// What a failed `operation` means for the caller.
fn classify<E>(
    operation: &str,
    err: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> PostError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let dispatch_failure = matches!(err, SdkError::DispatchFailure(_));
    classify_failure(status, code.as_deref(), dispatch_failure, || {
        (format!("{operation} failed"), Some(Box::new(err)))
    })
}

impl ConnectionGateway for ManagementGateway {
    async fn post(&self, connection_id: &str, data: &str) -> Result<(), PostError> {
        self.post.post(connection_id, data).await
    }

    async fn delete(&self, connection_id: &str) -> Result<(), PostError> {
        match self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map_err(|err| classify("DeleteConnection", err))
        {
            Ok(_) | Err(PostError::Gone) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn is_open(&self, connection_id: &str) -> Result<bool, PostError> {
        match self
            .client
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map_err(|err| classify("GetConnection", err))
        {
            Ok(_) => Ok(true),
            Err(PostError::Gone) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

/// Management clients per endpoint, built once and reused across invocations.
///
/// On AWS the endpoint is `MANAGEMENT_ENDPOINT` when set, else `https://{domainName}/{stage}`
/// from the event (a custom domain would need the variable).
pub struct ManagementGateways {
    sdk_config: aws_config::SdkConfig,
    fixed: Option<ManagementGateway>,
    by_endpoint: Mutex<HashMap<String, ManagementGateway>>,
}

/// No management endpoint to push to: neither configured nor derivable from the event.
#[derive(Debug, thiserror::Error)]
#[error("cannot tell the management endpoint: set MANAGEMENT_ENDPOINT or send events with requestContext.domainName and stage")]
pub struct NoEndpoint;

impl ManagementGateways {
    /// Clients on `sdk_config`; `fixed_endpoint` (when set and not empty) serves every event.
    pub fn new(sdk_config: &aws_config::SdkConfig, fixed_endpoint: Option<String>) -> Self {
        let fixed = fixed_endpoint
            .filter(|endpoint| !endpoint.is_empty())
            .map(|endpoint| Self::build(sdk_config, &endpoint));
        ManagementGateways {
            sdk_config: sdk_config.clone(),
            fixed,
            by_endpoint: Mutex::new(HashMap::new()),
        }
    }

    fn build(sdk_config: &aws_config::SdkConfig, endpoint: &str) -> ManagementGateway {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk_config)
            .endpoint_url(endpoint)
            .timeout_config(crate::sdk::timeouts())
            .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
            .build();
        ManagementGateway::from_config(endpoint, config, sdk_config.credentials_provider())
    }

    /// The client for the configured endpoint (`MANAGEMENT_ENDPOINT`): what serves
    /// events that did not come through the API, such as fan-out jobs.
    pub fn configured(&self) -> Result<ManagementGateway, NoEndpoint> {
        self.fixed.clone().ok_or(NoEndpoint)
    }

    /// The client for the API the event came through, built on first use.
    pub fn for_event(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<ManagementGateway, NoEndpoint> {
        if let Some(fixed) = &self.fixed {
            return Ok(fixed.clone());
        }
        let context = &event.request_context;
        let (Some(domain), Some(stage)) =
            (context.domain_name.as_deref(), context.stage.as_deref())
        else {
            return Err(NoEndpoint);
        };
        let endpoint = format!("https://{domain}/{stage}");
        let mut cache = self
            .by_endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(cache
            .entry(endpoint)
            .or_insert_with_key(|endpoint| Self::build(&self.sdk_config, endpoint))
            .clone())
    }
}
