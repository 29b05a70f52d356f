//! A room's shard rows on DynamoDB. Beside its `Members` row in the room's partition,
//! every room membership has a second row in the room's shard partition, `shards:<room>`,
//! whose sort key is the member's [`shard_hash`] (eight hex digits), `#`, and its
//! connection id: a shard, being a range of hashes, is then one `Query` with
//! `BETWEEN`, whatever K is. Both rows are written by the same writes with the same
//! `writeId`, so every conditional delete that keeps the member rows right keeps the
//! shard rows right too. Person and conversation partitions (keys with a `:`) have none.

use super::items::{is_expired, string, to_item, Item, CONNECTION_ID, ROOM};
use super::{unavailable, DynamoStore};
use crate::store::shards::shard_hash;
use crate::store::{Shard, StoreError};
use std::collections::HashMap;
use webchat_shared_types::User;

/// A shard row, as stored.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShardRow {
    room: String,
    connection_id: String,
    member_id: String,
    user_name: String,
    ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    write_id: Option<String>,
}

/// The partition holding a room's shard rows; `None` for partitions that are not rooms.
pub(crate) fn shard_partition(room: &str) -> Option<String> {
    (!room.contains(':')).then(|| format!("shards:{room}"))
}

fn sort_key(connection_id: &str) -> String {
    format!("{:08x}#{connection_id}", shard_hash(connection_id))
}

/// The key of a member's shard row in `room`, when `room` is a room.
pub(crate) fn shard_key(room: &str, connection_id: &str) -> Option<Item> {
    Some(HashMap::from([
        (ROOM.to_string(), string(&shard_partition(room)?)),
        (CONNECTION_ID.to_string(), string(&sort_key(connection_id))),
    ]))
}

/// The shard row of a member row being written, when `room` is a room.
pub(crate) fn shard_item(
    room: &str,
    connection_id: &str,
    user_name: &str,
    ttl: i64,
    write_id: Option<&str>,
) -> Option<Result<Item, serde_dynamo::Error>> {
    Some(to_item(&ShardRow {
        room: shard_partition(room)?,
        connection_id: sort_key(connection_id),
        member_id: connection_id.to_string(),
        user_name: user_name.to_string(),
        ttl,
        write_id: write_id.map(str::to_string),
    }))
}

fn member_of_shard_row(item: &Item) -> Option<User> {
    let row: ShardRow = serde_dynamo::aws_sdk_dynamodb_1::from_item(item.clone()).ok()?;
    Some(User {
        user_name: row.user_name,
        connection_id: row.member_id,
    })
}

impl DynamoStore {
    /// One shard of a room: a `Query` of the room's shard partition between the
    /// shard's lowest and highest hash.
    pub(crate) async fn query_shard(
        &self,
        room: &str,
        shard: Shard,
    ) -> Result<Vec<User>, StoreError> {
        let Some(partition) = shard_partition(room) else {
            return Ok(Vec::new());
        };
        let (low, high) = shard.hash_range();
        let query = self
            .client
            .query()
            .table_name(&self.tables.members)
            .key_condition_expression("#room = :room AND #id BETWEEN :low AND :high")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_names("#id", CONNECTION_ID)
            .expression_attribute_values(":room", string(&partition))
            .expression_attribute_values(":low", string(&format!("{low:08x}")))
            // `~` sorts after every character of a connection id.
            .expression_attribute_values(":high", string(&format!("{high:08x}~")))
            .consistent_read(true);
        self.live_items(
            query,
            "Query (shard)",
            super::now_secs(),
            member_of_shard_row,
        )
        .await
    }

    /// The members of a room if it has at most `limit`: a `Query` of the room's
    /// partition that stops once it has read more than `limit`.
    pub(crate) async fn members_if_at_most(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Option<Vec<User>>, StoreError> {
        let page = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        let mut pages = self
            .query_members_partition(room)
            .limit(self.page_size.map_or(page, |size| size.min(page)))
            .into_paginator()
            .items()
            .send();
        let now = super::now_secs();
        let mut members = Vec::new();
        let mut read = 0usize;
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| unavailable("Query (members)", e))?;
            read += 1;
            if read > limit {
                return Ok(None);
            }
            if !is_expired(&item, now) {
                members.extend(super::items::member_from_item(&item));
            }
        }
        Ok(Some(members))
    }
}
