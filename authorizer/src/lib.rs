//! Sign-in for webchat: verifies the JWT a client presents on `$connect`
//! (`?token=...`) against an OpenID Connect issuer (Amazon Cognito, or webchat-local's
//! development issuer), and answers API Gateway as a Lambda REQUEST authorizer.
//!
//! [`Verifier::verify`] is the whole check; [`authorize`] wraps it for API Gateway.
//! What it checks, and why, is in `docs/auth.md`.
//!
//! Tokens never reach a log line or an error message: refusals carry a fixed reason
//! ([`Refusal`]), and only that, the issuer and the key id are logged.

#![warn(missing_docs)]

mod config;
mod handler;
mod jwks;
mod verify;

pub use config::{AuthConfig, ConfigError, AUDIENCE_VAR, ISSUER_VAR, JWKS_URL_VAR};
pub use handler::{authorize, AuthorizerContext, AuthorizerError};
pub use verify::{Identity, Refusal, Verifier, MAX_TOKEN_BYTES};
