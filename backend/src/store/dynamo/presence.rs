//! Presence on DynamoDB: each room's member count on a row of its own, moved by the
//! same writes that move the connections' `rooms` sets; a page of a room's members; and
//! each sender's newest message id on its connection row.

use super::items::{
    is_expired, member_from_item, member_key, number, number_of, string, string_of, Item,
    CONNECTION_ID,
};
use super::{conditional, now_secs, unavailable, DynamoStore};
use crate::store::{MembersPage, StoreError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use webchat_telemetry::Causes;

/// The sort key of a room's count row, in its own partition ([`count_partition`]).
const COUNT_ROW: &str = "count";
/// On the count row: the room's members, when its count was last pushed (ms) and which.
const MEMBER_COUNT: &str = "memberCount";
const COUNT_PUSHED_AT: &str = "countPushedAt";
const COUNT_PUSHED: &str = "countPushed";
/// On a connection row: the newest message id the connection sent.
const LAST_MESSAGE_ID: &str = "lastMessageId";

/// The `Members` partition holding a room's count row: a reserved partition (it has a
/// `:`, which no room name has), so reading the room's members never reads it.
fn count_partition(room: &str) -> String {
    format!("presence:{room}")
}

impl DynamoStore {
    /// Moves the member count of each of `rooms` by `delta`: one `ADD` each, called
    /// after the `rooms` set update that decided the connection came in or went out
    /// (that update's old set says so exactly once, whatever races it) and after the
    /// member rows, which matter more. A count that could not be moved is logged, not
    /// failed: the change it counts has happened, and failing would not undo it.
    pub(super) async fn count_members(&self, rooms: &[String], delta: i64) {
        let updates = rooms.iter().map(|room| {
            self.client
                .update_item()
                .table_name(&self.tables.members)
                .set_key(Some(member_key(&count_partition(room), COUNT_ROW)))
                .update_expression("ADD #count :delta")
                .expression_attribute_names("#count", MEMBER_COUNT)
                .expression_attribute_values(":delta", number(delta))
                .send()
        });
        for (room, updated) in rooms.iter().zip(futures::future::join_all(updates).await) {
            if let Err(err) = updated {
                let err = unavailable("UpdateItem (member count)", err);
                tracing::error!(room, delta, error = %Causes(&err), "could not move a room's member count");
            }
        }
    }

    pub(super) async fn read_member_count(&self, room: &str) -> Result<u64, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.members)
            .set_key(Some(member_key(&count_partition(room), COUNT_ROW)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (member count)", e))?;
        // Below zero only if a writer stopped between its two writes: read as empty.
        Ok(output
            .item()
            .and_then(|item| number_of::<i64>(item, MEMBER_COUNT))
            .map_or(0, |count| u64::try_from(count).unwrap_or(0)))
    }

    /// A Query of the room's partition from `after` on, for one member more than asked
    /// (it says whether another page follows); reads on only past expired rows.
    pub(super) async fn read_members_page(
        &self,
        room: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<MembersPage, StoreError> {
        let want = limit.saturating_add(1);
        let mut start: Option<Item> = after.map(|after| member_key(room, after));
        let mut found = Vec::new();
        let now = now_secs();
        loop {
            let output = self
                .query_members_partition(room)
                .limit(i32::try_from(want - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Query (members page)", e))?;
            found.extend(
                output
                    .items()
                    .iter()
                    .filter(|item| !is_expired(item, now))
                    .filter_map(member_from_item),
            );
            match output.last_evaluated_key {
                Some(key) if found.len() < want => start = Some(key),
                _ => return Ok(MembersPage::from_read(found, limit)),
            }
        }
    }

    /// One conditional update of the count row: DynamoDB lets exactly one of racing
    /// Lambdas push a given change.
    pub(super) async fn claim_count_push_row(
        &self,
        room: &str,
        count: u64,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError> {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let claimed = self
            .client
            .update_item()
            .table_name(&self.tables.members)
            .set_key(Some(member_key(&count_partition(room), COUNT_ROW)))
            .update_expression("SET #at = :now, #pushed = :count")
            .condition_expression(
                "(attribute_not_exists(#at) OR #at <= :due) \
                 AND (attribute_not_exists(#pushed) OR #pushed <> :count)",
            )
            .expression_attribute_names("#at", COUNT_PUSHED_AT)
            .expression_attribute_names("#pushed", COUNT_PUSHED)
            .expression_attribute_values(":now", number(now_ms))
            .expression_attribute_values(":due", number(due_ms))
            .expression_attribute_values(":count", number(count))
            .send()
            .await;
        Ok(conditional("UpdateItem (count push)", claimed)?.is_some())
    }

    /// `SET lastMessageId = :id` on the sender's row, conditioned on the id being newer
    /// than the one there; a refusal returns the row (or, where the DynamoDB in use does
    /// not, as dynalite, one read gets it).
    pub(super) async fn record_sent_id(
        &self,
        connection_id: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, string(connection_id))
            .update_expression("SET #last = :id")
            .condition_expression(
                "attribute_exists(connectionId) AND (attribute_not_exists(#last) OR #last < :id)",
            )
            .expression_attribute_names("#last", LAST_MESSAGE_ID)
            .expression_attribute_values(":id", string(message_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let refused = match sent {
            Ok(_) => return Ok(None),
            Err(SdkError::ServiceError(failure)) => match failure.into_err() {
                UpdateItemError::ConditionalCheckFailedException(refused) => refused.item,
                err => return Err(unavailable("UpdateItem (last message id)", err)),
            },
            Err(err) => return Err(unavailable("UpdateItem (last message id)", err)),
        };
        let row = match refused {
            Some(row) => Some(row),
            None => {
                self.client
                    .get_item()
                    .table_name(&self.tables.connections)
                    .key(CONNECTION_ID, string(connection_id))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| unavailable("GetItem (connection)", e))?
                    .item
            }
        };
        // No row: the sender is gone, and its message needs no place in its order.
        Ok(row.and_then(|row| string_of(&row, LAST_MESSAGE_ID)))
    }
}
