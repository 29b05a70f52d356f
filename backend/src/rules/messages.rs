//! Messages: to a room, to its members named as receivers, or to a person.

use super::{
    conversation_key, fan_out, internal, message_event, not_a_member, person_partition,
    ConnectionGateway, ConnectionStore, ConversationNote, HistoryStore, Refusal, Rules,
    ServerEvent, ServerFrame, StoreError, StoredMessage, User,
};
use crate::delivery::FanOut;
use crate::delivery::{Fanout, FanoutJob, RoomPush};
use crate::store::{shard_count, Shard};
use webchat_telemetry::metrics as m;
use webchat_telemetry::Causes;

/// What a push to a whole room came to.
#[derive(Debug, Default)]
pub(super) struct RoomOutcome {
    /// Members it reached, or, handed to the fan-out workers, the members it goes to.
    pub reached: u32,
    /// Members API Gateway reported gone, for the caller to clean up after.
    pub gone: Vec<String>,
}

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
        // Only stored messages need a place in their sender's order: history sorts by id.
        let sent = match &receivers {
            None => {
                self.new_stored_message(room, &sender, message, None)
                    .await?
            }
            Some(_) => self.new_message(room, &sender, message, None),
        };
        let Some(ids) = receivers else {
            // Stored before any push, so whoever gets the push (or reconnects while it
            // is under way) finds it in history.
            self.store.append(&sent).await.map_err(|e| internal(&e))?;
            metrics::counter!(m::MESSAGES_STORED).increment(1);
            let push = RoomPush::Message {
                message: sent.clone(),
            };
            let outcome = self
                .push_room(&sent.room, &push, Some(connection_id))
                .await
                .map_err(|e| internal(&e))?;
            self.remove_gone(outcome.gone).await;
            return Ok(ServerEvent::Sent {
                message_id: sent.message_id,
                timestamp: sent.timestamp,
                delivered: outcome.reached,
            });
        };
        let ids: Vec<String> = ids.into_iter().filter(|id| id != connection_id).collect();
        let recipients = self
            .store
            .members_among(&sent.room, &ids)
            .await
            .map_err(|e| internal(&e))?;
        Ok(self.deliver(&sent, true, recipients).await)
    }

    /// Pushes `push` to every member of `room` but `except`: itself when the room has at
    /// most the fan-out threshold of members (or no fan-out queue is set up), else one
    /// job per shard of the room for the fan-out workers, which then do the pushing and
    /// the cleanup of gone connections. The one place that decides how a room is
    /// reached, so every push to a whole room takes the same path.
    pub(super) async fn push_room(
        &self,
        room: &str,
        push: &RoomPush,
        except: Option<&str>,
    ) -> Result<RoomOutcome, StoreError> {
        let members = match self.fanout {
            None => self.store.members(room).await?,
            Some(fanout) => match self.store.members_up_to(room, fanout.inline_limit).await? {
                Some(members) => members,
                None => return self.queue_room(fanout, room, push, except).await,
            },
        };
        let outcome = self.push_to(members, push, except).await;
        Ok(RoomOutcome {
            reached: outcome.delivered,
            gone: outcome.gone,
        })
    }

    /// Queues one fan-out job per shard of a big room; a job the queue refuses is
    /// pushed here instead, so a queue outage slows a message down but loses nothing.
    async fn queue_room(
        &self,
        fanout: Fanout<'_>,
        room: &str,
        push: &RoomPush,
        except: Option<&str>,
    ) -> Result<RoomOutcome, StoreError> {
        // The kept count, one read: it sets only how many shards the hash range is cut
        // into, and every cut covers all members, so a count a little off costs at most
        // an empty job or a larger one.
        let size = usize::try_from(self.store.member_count(room).await?).unwrap_or(usize::MAX);
        let jobs: Vec<FanoutJob> = Shard::all(shard_count(size, fanout.shard_size))
            .map(|shard| FanoutJob {
                room: room.to_string(),
                shard,
                except: except.map(str::to_string),
                push: push.clone(),
            })
            .collect();
        // The gone members of refused jobs pushed here go back to the caller to clean up,
        // as the inline path's do (cleaning up announces, which can come back here).
        let mut gone = Vec::new();
        for (job, err) in fanout.queue.enqueue(jobs).await {
            tracing::warn!(room, shard = job.shard.index, error = %Causes(&err), "pushing a fan-out job the queue refused from the handler");
            match self.store.shard_members(&job.room, job.shard).await {
                Ok(members) => {
                    let outcome = self.push_to(members, &job.push, except).await;
                    gone.extend(outcome.gone);
                }
                Err(err) => {
                    tracing::error!(room, shard = job.shard.index, error = %Causes(&err), "could not push a fan-out job the queue refused");
                }
            }
        }
        // The sender is a member, and gets `sent` instead.
        let recipients = size.saturating_sub(usize::from(except.is_some()));
        Ok(RoomOutcome {
            reached: u32::try_from(recipients).unwrap_or(u32::MAX),
            gone,
        })
    }

    /// A fan-out worker's job: pushes to the members of one shard of a room, then
    /// removes those API Gateway reports gone. An error means the shard's members could
    /// not be read and nothing was pushed, so the job may be tried again whole.
    pub async fn deliver_shard(&self, job: &FanoutJob) -> Result<FanOut, StoreError> {
        let members = self.store.shard_members(&job.room, job.shard).await?;
        let mut outcome = self
            .push_to(members, &job.push, job.except.as_deref())
            .await;
        self.remove_gone(outcome.gone.clone()).await;
        outcome.gone.sort();
        Ok(outcome)
    }

    /// Pushes `push` to each of `members` but `except`, without cleaning up after gone
    /// ones (the caller does).
    async fn push_to(&self, members: Vec<User>, push: &RoomPush, except: Option<&str>) -> FanOut {
        let deliveries = members
            .into_iter()
            .filter(|member| Some(member.connection_id.as_str()) != except)
            .map(|member| {
                let frame = match push {
                    RoomPush::Message { message } => {
                        let id = member.connection_id.clone();
                        return (
                            id,
                            ServerFrame::push(message_event(message, member, false)).to_json(),
                        );
                    }
                    RoomPush::Frame { frame } => frame.clone(),
                };
                (member.connection_id, frame)
            })
            .collect();
        fan_out(self.gateway, deliveries).await
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
