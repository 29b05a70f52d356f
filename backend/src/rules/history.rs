//! Stored messages: a room's history and a conversation's, page by page.

use super::{
    conversation_key, internal, message_event, not_a_member, unknown_user, Connection,
    ConnectionGateway, ConnectionStore, ErrorCode, HistoryPage, HistoryStore, Identity, Person,
    Refusal, Rules, ServerEvent,
};
use webchat_telemetry::metrics as m;

impl<'a, S: ConnectionStore + HistoryStore, G: ConnectionGateway> Rules<'a, S, G> {
    pub(super) async fn history(
        &self,
        connection_id: &str,
        room: String,
        page: HistoryPage,
        limit: usize,
    ) -> Result<ServerEvent, Refusal> {
        let connection = self.registered(connection_id, "reading history").await?;
        if !connection.is_in(&room) {
            return Err(not_a_member(&room));
        }
        let (messages, more) = self.stored_page(&connection, &room, &page, limit).await?;
        Ok(ServerEvent::History {
            room,
            with: None,
            messages,
            more,
        })
    }

    /// One page of a room's or a conversation's stored messages, as the `message` events
    /// `connection` got or would have got; and whether more follow.
    pub(super) async fn stored_page(
        &self,
        connection: &Connection,
        room: &str,
        page: &HistoryPage,
        limit: usize,
    ) -> Result<(Vec<ServerEvent>, bool), Refusal> {
        let slice = self
            .store
            .history(room, page, limit, self.now_secs())
            .await
            .map_err(|e| internal(&e))?;
        metrics::counter!(m::HISTORY_PAGES).increment(1);
        let receiver = connection.user();
        let messages = slice
            .messages
            .into_iter()
            .filter_map(|stored| {
                Some(message_event(
                    &stored,
                    receiver.clone()?,
                    stored.to.is_some(),
                ))
            })
            .collect();
        Ok((messages, slice.more))
    }

    /// The signed-in person sending a frame about a conversation, and the other person,
    /// named by `name`: `forbidden` for an anonymous connection, `not_registered` before
    /// `register`, `unknown_user` for a name no signed-in person owns.
    pub(super) async fn conversation_partners(
        &self,
        connection_id: &str,
        name: &str,
        what: &str,
    ) -> Result<(&'a Identity, Connection, Person), Refusal> {
        let Some(identity) = self.identity else {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("{what} needs a signed-in connection"),
            ));
        };
        let connection = self.registered(connection_id, what).await?;
        let person = self
            .store
            .person(name)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| unknown_user(name))?;
        Ok((identity, connection, person))
    }

    /// `history {with}`: the asking person's conversation with `with`, paged as a room's.
    pub(super) async fn history_with(
        &self,
        connection_id: &str,
        with: String,
        page: HistoryPage,
        limit: usize,
    ) -> Result<ServerEvent, Refusal> {
        let (me, connection, other) = self
            .conversation_partners(connection_id, &with, "reading a conversation")
            .await?;
        let room = conversation_key(&me.sub, &other.sub);
        let (messages, more) = self.stored_page(&connection, &room, &page, limit).await?;
        Ok(ServerEvent::History {
            room,
            with: Some(other.user_name),
            messages,
            more,
        })
    }
}
