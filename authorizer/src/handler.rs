//! API Gateway's side: a WebSocket REQUEST authorizer event in, an IAM policy out.
//!
//! How API Gateway reads the answer (WebSocket APIs have no gateway responses to
//! change it): an `Allow` policy lets `$connect` run, with `context` passed to every
//! route of the connection as `requestContext.authorizer`; a `Deny` policy answers the
//! handshake 403; a function error whose message is exactly `Unauthorized` answers 401;
//! any other error answers 500.

use crate::verify::{Identity, Refusal, Verifier};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use webchat_telemetry::metrics as m;

/// The identity API Gateway hands every route: `requestContext.authorizer.sub` and
/// `requestContext.authorizer.userName`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerContext {
    /// The person's stable id from the token (`sub`): names may change, this does not.
    pub sub: String,
    /// The name the token gives the person; the only one `register` accepts from them.
    pub user_name: String,
}

impl From<&Identity> for AuthorizerContext {
    fn from(identity: &Identity) -> Self {
        AuthorizerContext {
            sub: identity.sub.clone(),
            user_name: identity.name.clone(),
        }
    }
}

/// A refusal API Gateway turns into a status. The messages are what API Gateway
/// matches on; they never carry the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthorizerError {
    /// No token, or one that does not verify: 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// The issuer's keys could not be fetched: 500, so a client retries rather than
    /// signing in again.
    #[error("the issuer's signing keys are unavailable")]
    Unavailable,
}

/// What the authorizer answers for `event`: `Allow` with the identity, `Deny` (403)
/// for a valid token whose name cannot be a `userName`, or an error (401, 500).
pub async fn authorize(
    verifier: &Verifier,
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<ApiGatewayCustomAuthorizerResponse<AuthorizerContext>, AuthorizerError> {
    let method_arn = event.method_arn.clone().unwrap_or_default();
    let Some(token) = event
        .query_string_parameters
        .first("token")
        .filter(|t| !t.is_empty())
    else {
        tracing::info!(reason = "no token", "sign-in refused");
        metrics::counter!(m::SIGN_IN_REFUSALS).increment(1);
        return Err(AuthorizerError::Unauthorized);
    };
    match verifier.verify(token).await {
        Ok(identity) => {
            tracing::info!(sub = %identity.sub, "sign-in accepted");
            Ok(policy(
                &identity.sub,
                IamPolicyEffect::Allow,
                &method_arn,
                AuthorizerContext::from(&identity),
            ))
        }
        Err(refusal @ (Refusal::NoName | Refusal::InvalidName)) => {
            tracing::info!(reason = %refusal, "sign-in denied");
            metrics::counter!(m::SIGN_IN_REFUSALS).increment(1);
            Ok(policy(
                "unknown",
                IamPolicyEffect::Deny,
                &method_arn,
                AuthorizerContext::default(),
            ))
        }
        Err(Refusal::KeysUnavailable) => {
            tracing::error!(reason = %Refusal::KeysUnavailable, "sign-in could not be checked");
            metrics::counter!(m::SIGN_IN_UNAVAILABLE).increment(1);
            Err(AuthorizerError::Unavailable)
        }
        Err(refusal) => {
            tracing::info!(reason = %refusal, "sign-in refused");
            metrics::counter!(m::SIGN_IN_REFUSALS).increment(1);
            Err(AuthorizerError::Unauthorized)
        }
    }
}

fn policy(
    principal: &str,
    effect: IamPolicyEffect,
    method_arn: &str,
    context: AuthorizerContext,
) -> ApiGatewayCustomAuthorizerResponse<AuthorizerContext> {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_string()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_string()];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".to_string());
    document.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::<AuthorizerContext>::default();
    response.principal_id = Some(principal.to_string());
    response.policy_document = document;
    response.context = context;
    response
}
