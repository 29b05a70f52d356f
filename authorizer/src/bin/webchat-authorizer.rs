//! The Lambda REQUEST authorizer for `$connect` when sign-in is on: verifies
//! `?token=` against `AUTH_ISSUER`'s keys and answers API Gateway with an IAM policy.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use futures::FutureExt;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::panic::AssertUnwindSafe;
use webchat_authorizer::{AuthConfig, Verifier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    webchat_telemetry::init_tracing();

    let metrics = webchat_telemetry::metrics::install_emf(
        &std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
    )?;

    // A missing or wrong setting fails the cold start, naming the variable.
    let config = AuthConfig::from_env().inspect_err(|err| tracing::error!("{err}"))?;
    // Built once per cold start; the keys it fetches serve every invocation.
    let verifier = Verifier::new(config).inspect_err(|err| tracing::error!("{err}"))?;
    if let Err(err) = verifier.prefetch().await {
        // Not fatal: the first token tries again.
        tracing::warn!(error = %err, "could not fetch the issuer's keys at start");
    }

    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
            let verifier = &verifier;
            async move {
                // A panic would be reported with its message; answer a plain 500 instead.
                let answer =
                    AssertUnwindSafe(webchat_authorizer::authorize(verifier, &event.payload))
                        .catch_unwind()
                        .await;
                // Before answering, while the invocation's log stream is still ours.
                webchat_telemetry::metrics::flush_to_stdout(metrics);
                match answer {
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(refusal)) => Err(Error::from(refusal.to_string())),
                    Err(_) => {
                        tracing::error!("the authorizer panicked");
                        Err(Error::from("internal error"))
                    }
                }
            }
        },
    ))
    .await
}
