//! `webchat-local`: an API Gateway WebSocket API on one machine.
//!
//! It speaks WebSocket to clients exactly as API Gateway does (routes selected on
//! `$request.body.action`, `$connect` during the handshake, `$disconnect` after every
//! close, frame and message limits, idle timeout, maximum lifetime) and runs the
//! backend's handlers in-process with API Gateway's own event types. The handlers reach
//! other connections the way they do on AWS: SigV4-signed requests over HTTP (the
//! backend's management client) against this gateway's `@connections` API, which checks
//! the signatures as API Gateway does.

#![warn(missing_docs)]

mod config;
pub mod dev_issuer;
pub mod event_source;
mod events;
mod fanout;
mod gateway;
mod handshake;
pub mod iam;
pub mod lambda;
mod management;
mod metrics;
pub mod outbox;
pub mod served;
pub mod sigv4;
mod socket;
pub mod sqs;
mod store;
pub mod template_mode;
pub mod template_tables;
mod ui;

pub use config::{
    Auth, Config, ManagementAuth, DEFAULT_CONNECTIONS_TABLE, DEFAULT_MEMBERS_TABLE,
    DEFAULT_MESSAGES_TABLE, DEFAULT_NAMES_TABLE, DEFAULT_REGION,
};
pub use gateway::{start, Running, StartError, READY_LINE_PREFIX};
pub use metrics::METRICS_PATH;
pub use sigv4::AccessKey;
pub use store::AnyStore;
