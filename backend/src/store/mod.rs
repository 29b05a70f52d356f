//! Where connections, their names, their rooms and the rooms' messages live: the ports
//! the rules see ([`ports`]), and their two adapters, DynamoDB and memory.

pub mod dynamo;
pub mod memory;
mod ports;
pub mod shards;

pub use dynamo::{DynamoStore, TableNames};
pub use memory::MemoryStore;
pub use ports::*;
pub use shards::{shard_count, Shard, SHARD_SIZE};
