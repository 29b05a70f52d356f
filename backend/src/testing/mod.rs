//! What tests (and the bench) need beyond the crate's public parts: a gateway that
//! records pushes, a store that is always down, a driver for the rules, and DynamoDB
//! helpers (a read-counting client, a seeded crowd). Behind the `test-support` feature.

pub mod down;
pub mod driver;
pub mod dynamo;
pub mod recording;

pub use down::DownStore;
pub use driver::Driver;
pub use dynamo::{counting_client, ItemsRead};
pub use recording::RecordingGateway;
