//! Rooms: who is in one, joining and leaving.

use super::{
    internal, not_a_member, not_registered, user_exit, ConnectionGateway, ConnectionStore,
    ErrorCode, HistoryStore, Joined, Refusal, Rules, ServerEvent, StoreError, User, LOBBY,
    MAX_ROOMS_PER_CONNECTION,
};

impl<S: ConnectionStore + HistoryStore, G: ConnectionGateway> Rules<'_, S, G> {
    pub(super) async fn list(
        &self,
        connection_id: &str,
        room: String,
        cursor: Option<String>,
    ) -> Result<ServerEvent, Refusal> {
        // The lobby's list is v1's `list`, answered for any connection.
        if room != LOBBY {
            let connection = self
                .store
                .get(connection_id)
                .await
                .map_err(|e| internal(&e))?;
            if !connection.is_some_and(|c| c.is_in(&room)) {
                return Err(not_a_member(&room));
            }
        }
        let listing = self
            .members_for(&room, connection_id, cursor.as_deref())
            .await?;
        Ok(ServerEvent::List {
            room,
            users: listing.users,
            cursor: listing.cursor,
            count: listing.count,
        })
    }

    /// The members of a room but one, sorted by name as people read them.
    pub(super) async fn others_in(
        &self,
        room: &str,
        connection_id: &str,
    ) -> Result<Vec<User>, Refusal> {
        let mut users: Vec<User> = self
            .store
            .members(room)
            .await
            .map_err(|e| internal(&e))?
            .into_iter()
            .filter(|user| user.connection_id != connection_id)
            .collect();
        users.sort_by_key(|user| user.user_name.to_lowercase());
        Ok(users)
    }

    pub(super) async fn join(
        &self,
        connection_id: &str,
        room: String,
    ) -> Result<ServerEvent, Refusal> {
        let connection = self.registered(connection_id, "joining rooms").await?;
        let user_name = connection.user_name.clone().unwrap_or_default();
        let joined = match self.store.join(connection_id, &user_name, &room).await {
            Ok(joined) => joined,
            Err(StoreError::RoomLimit) => {
                return Err(Refusal::new(
                    ErrorCode::LimitReached,
                    format!(
                        "a connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms, the lobby included; leave one first"
                    ),
                ))
            }
            Err(StoreError::NoSuchConnection(_)) => return Err(not_registered("joining rooms")),
            Err(err) => return Err(internal(&err)),
        };
        if joined == Joined::Added {
            let event = ServerEvent::NewUser {
                room: room.clone(),
                user_name,
                connection_id: connection_id.to_string(),
            };
            let gone = self
                .announce_presence(&room, vec![event], Some(connection_id))
                .await;
            self.remove_gone(gone).await;
        }
        let listing = self.members_for(&room, connection_id, None).await?;
        Ok(ServerEvent::Joined {
            room,
            users: listing.users,
            cursor: listing.cursor,
            count: listing.count,
        })
    }

    pub(super) async fn leave(
        &self,
        connection_id: &str,
        room: String,
    ) -> Result<ServerEvent, Refusal> {
        let connection = self.registered(connection_id, "leaving rooms").await?;
        if !self
            .store
            .leave(connection_id, &room)
            .await
            .map_err(|e| internal(&e))?
        {
            return Err(not_a_member(&room));
        }
        if let Some(user) = connection.user() {
            let gone = self
                .announce_presence(&room, vec![user_exit(&room, user)], None)
                .await;
            self.remove_gone(gone).await;
        }
        Ok(ServerEvent::Left { room })
    }
}
