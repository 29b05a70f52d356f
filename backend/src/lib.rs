//! The webchat backend: chat rules over two small ports (where connections are kept,
//! how other connections are reached), their adapters, and the API Gateway edge that
//! the Lambda binary (`webchat-lambda`) and the local gateway (`webchat-local`) share.
//!
//! - [`store`]: the store ports and their DynamoDB and in-memory adapters;
//! - [`delivery`]: the gateway port, the management API client, retries and fan-out;
//! - [`rules`]: the chat itself, one method per route;
//! - [`apigw`]: one API Gateway event in, one response out;
//! - [`fanout_edge`]: one SQS batch of fan-out jobs in, the failed ones out;
//! - [`limits`]: rate limits and retention, and their settings;
//! - [`config`]: what is wrong with a setting.
//!
//! Features: `local-endpoints` adds clients for local DynamoDB and management endpoints
//! (fixed credentials and region), for `webchat-local`; `test-support` adds
//! [`testing`]: a gateway that records pushes, a store that is always down and a driver
//! for the rules, for tests. The Lambda builds with neither.

#![warn(missing_docs)]

pub mod apigw;
pub mod config;
pub mod delivery;
pub mod fanout_edge;
pub mod limits;
pub mod rules;
pub mod sdk;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;

pub use apigw::{handle, handle_with_fanout};
pub use config::ConfigError;
pub use delivery::{
    fan_out, ConnectionGateway, FanOut, Fanout, FanoutJob, FanoutQueue, ManagementGateway,
    ManagementGateways, PostError, QueueError, Retrying, RoomPush,
};
pub use limits::{Admission, Bucket, Clock, Limits, ManualClock, RateLimit, SystemClock};
pub use rules::{new_message_id, next_message_id, Frame, Identity, Rules};
#[cfg(feature = "local-endpoints")]
pub use store::dynamo::local_client;
pub use store::{
    conversation_key, person_partition, Claim, Connection, ConnectionStore, ConversationNote,
    DynamoStore, HistorySlice, HistoryStore, Joined, MembersPage, MemoryStore, Person,
    Registration, Shard, StoreError, StoredMessage, TableNames,
};
#[cfg(feature = "test-support")]
pub use testing::{counting_client, DownStore, Driver, ItemsRead, RecordingGateway};
