//! Messages: to a room, to its members named as receivers, or to a person.

use super::{
    conversation_key, fan_out, internal, message_event, not_a_member, person_partition,
    ConnectionGateway, ConnectionStore, ConversationNote, HistoryStore, Refusal, Rules,
    ServerEvent, ServerFrame, StoredMessage, User,
};
use webchat_telemetry::metrics as m;

impl<S: ConnectionStore + HistoryStore, G: ConnectionGateway> Rules<'_, S, G> {
    /// `message {to}`: kept in the pair's conversation and noted in both people's
    /// conversation indexes, then pushed to every open connection of the addressed
    /// person and every other one of the sender.
    pub(super) async fn message_to(
        &self,
        connection_id: &str,
        to: String,
        message: String,
    ) -> Result<ServerEvent, Refusal> {
        let (me, sender, other) = self
            .conversation_partners(connection_id, &to, "sending a message to a person")
            .await?;
        let stored = self
            .new_stored_message(
                conversation_key(&me.sub, &other.sub),
                &sender,
                message,
                Some(other.user_name.clone()),
            )
            .await?;
        self.store.append(&stored).await.map_err(|e| internal(&e))?;
        metrics::counter!(m::MESSAGES_STORED).increment(1);
        let note = |sub, with| ConversationNote {
            sub,
            conversation: &stored.room,
            with,
            message_id: &stored.message_id,
            expires_at: stored.expires_at,
        };
        let mut notes = vec![note(&me.sub, &other.user_name)];
        if other.sub != me.sub {
            notes.push(note(&other.sub, &stored.sender));
        }
        for note in notes {
            self.store
                .note_conversation(note)
                .await
                .map_err(|e| internal(&e))?;
        }

        // A connection is one person's, so the two partitions never share one.
        let mut recipients = self
            .store
            .members(&person_partition(&other.sub))
            .await
            .map_err(|e| internal(&e))?;
        if other.sub != me.sub {
            recipients.extend(
                self.store
                    .members(&person_partition(&me.sub))
                    .await
                    .map_err(|e| internal(&e))?,
            );
        }
        Ok(self.deliver(&stored, true, recipients).await)
    }

    pub(super) async fn message(
        &self,
        connection_id: &str,
        room: String,
        message: String,
        receivers: Option<Vec<String>>,
    ) -> Result<ServerEvent, Refusal> {
        let sender = self.registered(connection_id, "sending messages").await?;
        if !sender.is_in(&room) {
            return Err(not_a_member(&room));
        }
        let private = receivers.is_some();
        // Only stored messages need a place in their sender's order: history sorts by id.
        let sent = if private {
            self.new_message(room, &sender, message, None)
        } else {
            self.new_stored_message(room, &sender, message, None)
                .await?
        };
        let recipients = match receivers {
            None => {
                // Stored before any push, so whoever gets the push (or reconnects
                // while it is under way) finds it in history.
                self.store.append(&sent).await.map_err(|e| internal(&e))?;
                metrics::counter!(m::MESSAGES_STORED).increment(1);
                self.store.members(&sent.room).await
            }
            Some(ids) => {
                let ids: Vec<String> = ids.into_iter().filter(|id| id != connection_id).collect();
                self.store.members_among(&sent.room, &ids).await
            }
        }
        .map_err(|e| internal(&e))?;
        Ok(self.deliver(&sent, private, recipients).await)
    }

    /// Pushes `message` to each of `recipients` but its sender, and answers the sender
    /// with what was delivered.
    pub(super) async fn deliver(
        &self,
        message: &StoredMessage,
        private: bool,
        recipients: Vec<User>,
    ) -> ServerEvent {
        let deliveries = recipients
            .into_iter()
            .filter(|receiver| receiver.connection_id != message.sender_id)
            .map(|receiver| {
                let id = receiver.connection_id.clone();
                (
                    id,
                    ServerFrame::push(message_event(message, receiver, private)).to_json(),
                )
            })
            .collect();
        let outcome = fan_out(self.gateway, deliveries).await;
        self.remove_gone(outcome.gone).await;
        ServerEvent::Sent {
            message_id: message.message_id.clone(),
            timestamp: message.timestamp,
            delivered: outcome.delivered,
        }
    }
}
