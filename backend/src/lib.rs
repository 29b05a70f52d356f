//! The webchat backend: chat rules over two small traits (where connections are kept,
//! how other connections are reached), their AWS implementations, and the API Gateway
//! edge that the Lambda binary (`webchat-lambda`) and the local gateway
//! (`webchat-local`) share.
//!
//! Features: `local-endpoints` adds clients for local DynamoDB and management endpoints
//! (fixed credentials and region), for `webchat-local`; `test-support` adds a gateway
//! that records pushes, a store that is always down and a harness that drives the rules,
//! for tests. The Lambda builds with neither.

pub mod apigw;
pub mod chat;
#[cfg(feature = "test-support")]
pub mod down;
pub mod dynamo;
#[cfg(feature = "test-support")]
pub mod dynamo_test_support;
pub mod gateway;
#[cfg(feature = "test-support")]
pub mod harness;
pub mod limits;
pub mod memory;
pub mod push;
#[cfg(feature = "test-support")]
pub mod recording;
pub mod sdk;
mod signed_post;
pub mod store;

pub use apigw::handle;
pub use chat::{Chat, Frame, Identity};
#[cfg(feature = "test-support")]
pub use down::DownStore;
pub use dynamo::{DynamoStore, TableNames};
pub use gateway::{ConnectionGateway, ManagementGateway, ManagementGateways, PostError};
#[cfg(feature = "test-support")]
pub use harness::Harness;
pub use limits::{Admission, Bucket, Clock, Limits, ManualClock, RateLimit, SystemClock};
pub use memory::MemoryStore;
pub use push::{fan_out, FanOut, Retrying};
#[cfg(feature = "test-support")]
pub use recording::RecordingGateway;
pub use store::{
    conversation_key, person_partition, Claim, Connection, ConnectionStore, ConversationNote,
    HistorySlice, HistoryStore, Joined, Person, Registration, StoreError, StoredMessage,
};
