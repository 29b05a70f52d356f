//! The webchat backend: chat logic over two small traits (where connections are kept,
//! how other connections are reached), their AWS implementations, and test doubles.
//!
//! The Lambda binary (`webchat-lambda`) and the local gateway (`webchat-local`) both
//! call [`chat::handle`] with API Gateway's own event and response types.

pub mod chat;
pub mod dynamo;
pub mod gateway;
pub mod memory;
pub mod recording;
pub mod sdk;
pub mod store;

pub use chat::handle;
pub use dynamo::{DynamoStore, TableNames};
pub use gateway::{ConnectionGateway, ManagementGateway, ManagementGateways, PostError};
pub use memory::MemoryStore;
pub use recording::RecordingGateway;
pub use store::{Connection, ConnectionStore, Registration, StoreError};
