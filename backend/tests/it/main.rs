//! The backend's integration tests, one binary: each would link the AWS SDK and the
//! crate on its own, and linking is much of a test run.

mod apigw;
mod chat;
mod dynamo_store;
mod fanout;
mod lambda_config;
mod layout;
mod management_push;
mod metrics_emf;
mod presence;
mod rooms;
mod stores;
