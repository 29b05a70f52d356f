//! Room and conversation messages, and each person's conversation index: the
//! [`HistoryStore`] on DynamoDB.

use super::items::{
    is_expired, member_key, message_from_item, message_item, number, string, string_of, Item,
    LAST_MESSAGE_ID, ROOM, TTL, WITH,
};
use super::{conditional, unavailable, DynamoStore};
use crate::store::{
    conversations_partition, ConversationNote, HistorySlice, HistoryStore, StoreError,
    StoredMessage,
};
use webchat_shared_types::{Conversation, HistoryPage};

impl DynamoStore {
    /// One page of a room's messages read in one direction, oldest or newest first, as
    /// DynamoDB returns them, skipping expired ones: `want` rows unless the room runs out.
    async fn query_messages(
        &self,
        room: &str,
        bound: Option<(&str, &str)>,
        newest_first: bool,
        want: usize,
        now_secs: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.tables.messages)
                .expression_attribute_names("#room", ROOM)
                .expression_attribute_values(":room", string(room))
                .scan_index_forward(!newest_first)
                .consistent_read(true)
                .limit(i32::try_from(want - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            request = match bound {
                Some((op, id)) => request
                    .key_condition_expression(format!("#room = :room AND messageId {op} :id"))
                    .expression_attribute_values(":id", string(id)),
                None => request.key_condition_expression("#room = :room"),
            };
            let output = request
                .send()
                .await
                .map_err(|e| unavailable("Query (messages)", e))?;
            found.extend(
                output
                    .items()
                    .iter()
                    .filter(|item| !is_expired(item, now_secs))
                    .filter_map(message_from_item),
            );
            // Expired rows not yet deleted are the only reason to read on.
            match output.last_evaluated_key {
                Some(key) if found.len() < want => start = Some(key),
                _ => return Ok(found),
            }
        }
    }
}

impl HistoryStore for DynamoStore {
    async fn append(&self, message: &StoredMessage) -> Result<(), StoreError> {
        let item = message_item(message).map_err(|e| unavailable("PutItem (message)", e))?;
        self.client
            .put_item()
            .table_name(&self.tables.messages)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem (message)", e))?;
        Ok(())
    }

    /// One Query of the room's partition, from the newest down (newest, `before`) or from
    /// `after` up, for one row more than asked: that row says whether another page
    /// follows. Never a Scan.
    async fn history(
        &self,
        room: &str,
        page: &HistoryPage,
        limit: usize,
        now_secs: i64,
    ) -> Result<HistorySlice, StoreError> {
        let (bound, newest_first) = match page {
            HistoryPage::Latest => (None, true),
            HistoryPage::Before(id) => (Some(("<", id.as_str())), true),
            HistoryPage::After(id) => (Some((">", id.as_str())), false),
        };
        let read = self
            .query_messages(room, bound, newest_first, limit.saturating_add(1), now_secs)
            .await?;
        Ok(HistorySlice::from_read(read, limit, page))
    }

    /// One conditional `UpdateItem` of the person's index row for the conversation: it
    /// only ever moves to a newer message, however the senders race.
    async fn note_conversation(&self, note: ConversationNote<'_>) -> Result<(), StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.tables.members)
            .set_key(Some(member_key(
                &conversations_partition(note.sub),
                note.conversation,
            )))
            .update_expression("SET #with = :with, #last = :id, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#last) OR #last < :id")
            .expression_attribute_names("#with", WITH)
            .expression_attribute_names("#last", LAST_MESSAGE_ID)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":with", string(note.with))
            .expression_attribute_values(":id", string(note.message_id))
            .expression_attribute_values(":ttl", number(note.expires_at))
            .send()
            .await;
        // Refused: a newer message of the conversation is noted already.
        conditional("UpdateItem (conversation)", updated)?;
        Ok(())
    }

    /// A paginated Query of the person's index partition: one row per conversation,
    /// sorted here by their newest message.
    async fn conversations(
        &self,
        sub: &str,
        limit: usize,
        now_secs: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        let mut found = self
            .live_items(
                self.query_members_partition(&conversations_partition(sub)),
                "Query (conversations)",
                now_secs,
                |item| {
                    Some(Conversation {
                        with: string_of(item, WITH)?,
                        last_message_id: string_of(item, LAST_MESSAGE_ID)?,
                    })
                },
            )
            .await?;
        found.sort_by(|a, b| b.last_message_id.cmp(&a.last_message_id));
        found.truncate(limit);
        Ok(found)
    }
}
