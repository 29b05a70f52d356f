//! Registering a name: a fresh resume token, taking a name over from a connection that
//! lost it, and telling the rooms.

use super::{
    internal, name_key, user_exit, Causes, Claim, ConnectionGateway, ConnectionStore, Digest,
    ErrorCode, HistoryStore, Refusal, Registration, Rules, ServerEvent, Sha256, StoreError, User,
    LOBBY, MAX_CONVERSATIONS,
};

/// A resume token: 128 random bits, as 32 hex digits. Only its hash is stored, so a
/// copy of the table does not let anyone take names over.
fn new_resume_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl<S: ConnectionStore + HistoryStore, G: ConnectionGateway> Rules<'_, S, G> {
    pub(super) async fn register(
        &self,
        connection_id: &str,
        user_name: String,
        resume_token: Option<&str>,
    ) -> Result<ServerEvent, Refusal> {
        let user_name = match self.identity {
            None => user_name,
            // Signed in: the name is the identity's, in the letter case the issuer gave.
            Some(identity) if name_key(&identity.user_name) == name_key(&user_name) => {
                identity.user_name.clone()
            }
            Some(identity) => {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!(
                        "this connection is signed in as \"{}\" and can only register that name",
                        identity.user_name
                    ),
                ))
            }
        };
        let token = new_resume_token();
        let token_hash = hash_token(&token);
        let resume_hash = resume_token.map(hash_token);
        let claim = Claim {
            user_name: &user_name,
            token_hash: &token_hash,
            resume_hash: resume_hash.as_deref(),
            owner: self.identity.map(|identity| identity.sub.as_str()),
        };
        let registration = match self.store.register(connection_id, claim).await {
            Err(StoreError::NameTaken) if self.free_if_ghost(connection_id, &user_name).await => {
                self.store.register(connection_id, claim).await
            }
            other => other,
        };
        let registration = match registration {
            Ok(registration) => registration,
            Err(StoreError::NameTaken) => {
                return Err(Refusal::new(
                    ErrorCode::NameTaken,
                    format!("the name \"{user_name}\" is taken; choose another"),
                ))
            }
            Err(err) => return Err(internal(&err)),
        };
        if let Some(dead) = &registration.evicted {
            let gone = self.announce_exit(dead).await;
            self.remove_gone(gone).await;
        }
        self.announce_registration(connection_id, &user_name, &registration)
            .await;
        if let Some(old) = &registration.taken_over {
            // The old socket may still be open (a page that lost its network); the name
            // and rooms are no longer its. Its `$disconnect` then finds nothing to announce.
            if let Err(err) = self.gateway.delete(&old.connection_id).await {
                tracing::warn!(connection_id = %old.connection_id, error = %Causes(&err), "could not close a connection whose name was taken over");
            }
        }
        // Read after the connection joined its person's partition: a message stored
        // after this read is pushed to it, one stored before is listed here.
        let conversations = match self.identity {
            Some(identity) => Some(
                self.store
                    .conversations(&identity.sub, MAX_CONVERSATIONS, self.now_secs())
                    .await
                    .map_err(|e| internal(&e))?,
            ),
            None => None,
        };
        Ok(ServerEvent::Registered {
            user_name,
            connection_id: connection_id.to_string(),
            resume_token: Some(token),
            conversations,
        })
    }

    /// When the name's holder is a connection API Gateway reports gone (its
    /// `$disconnect` was lost), removes it and says the name may be claimed again.
    pub(super) async fn free_if_ghost(&self, connection_id: &str, user_name: &str) -> bool {
        let holder = match self.store.holder(user_name).await {
            Ok(Some(holder)) if holder != connection_id => holder,
            Ok(_) => return false,
            Err(err) => {
                tracing::error!(error = %Causes(&err), "could not read who holds a name");
                return false;
            }
        };
        match self.gateway.is_open(&holder).await {
            Ok(false) => {
                tracing::info!(connection_id = %holder, "a name's holder is gone; freeing the name");
                self.remove_gone(vec![holder]).await;
                true
            }
            Ok(true) => false,
            Err(err) => {
                tracing::warn!(connection_id = %holder, error = %Causes(&err), "could not check whether a name's holder is open");
                false
            }
        }
    }

    /// Tells each room of a connection that registered what changed there: a connection
    /// taken over left it, the old name left it, the new name arrived.
    pub(super) async fn announce_registration(
        &self,
        connection_id: &str,
        user_name: &str,
        registration: &Registration,
    ) {
        let renamed = registration.previous.as_deref() != Some(user_name);
        let old = registration.taken_over.as_ref();
        for room in &registration.rooms {
            let inherited = old.is_some_and(|old| old.is_in(room));
            let mut events = Vec::new();
            if let Some(old) = old.filter(|_| inherited) {
                events.extend(old.user().map(|user| user_exit(room, user)));
            }
            if let Some(previous) = registration.previous.as_ref().filter(|_| renamed) {
                // Rooms that came only with the takeover never saw the old name.
                if !inherited || room == LOBBY {
                    events.push(user_exit(
                        room,
                        User {
                            user_name: previous.clone(),
                            connection_id: connection_id.to_string(),
                        },
                    ));
                }
            }
            if renamed || inherited {
                events.push(ServerEvent::NewUser {
                    room: room.clone(),
                    user_name: user_name.to_string(),
                    connection_id: connection_id.to_string(),
                });
            }
            if !events.is_empty() {
                let gone = self
                    .announce_presence(room, events, Some(connection_id))
                    .await;
                self.remove_gone(gone).await;
            }
        }
    }
}
