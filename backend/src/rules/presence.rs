//! Presence that scales: a room with at most the presence limit of members hears each
//! arrival and departure (`newUser`, `userExit`); a bigger one hears its member count
//! (`members`) at most once every [`PRESENCE_INTERVAL`], and only when it changed, and
//! its members are listed a page at a time.
//!
//! Lambdas have no timers, so the count is pushed by the arrival or departure that
//! finds the interval passed: a count is stale at most until the next change after
//! the interval, and every `list` and `joined` of a big room carries the count as it is.

use super::{internal, Causes, ConnectionGateway, ConnectionStore, HistoryStore, Refusal, Rules};
use crate::delivery::RoomPush;
use crate::limits::PRESENCE_INTERVAL;
use webchat_shared_types::{invalid_cursor, ServerEvent, ServerFrame, User, LIST_PAGE_SIZE};

/// The cursor a `list` reply gives for the page after `connection_id`: opaque to
/// clients (hex), which shared-types checks the shape of.
fn cursor_after(connection_id: &str) -> String {
    hex::encode(connection_id.as_bytes())
}

/// The connection id a cursor pages after.
fn page_after(cursor: &str) -> Result<String, Refusal> {
    hex::decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid_cursor)
}

/// A room's members as `list` and `joined` carry them.
pub(super) struct Listing {
    /// The members, the asking connection left out.
    pub users: Vec<User>,
    /// Paged, when another page follows.
    pub cursor: Option<String>,
    /// Paged: the room's member count.
    pub count: Option<u64>,
}

impl<S: ConnectionStore + HistoryStore, G: ConnectionGateway> Rules<'_, S, G> {
    /// Whether a room of `count` members hears counts rather than each person.
    pub(super) fn is_big(&self, count: u64) -> bool {
        count > u64::from(self.limits.presence_limit)
    }

    /// Tells `room` that people came or went (`events`: `newUser`, `userExit`): each
    /// one to every member but `except` while the room is within the presence limit,
    /// else its member count, when it is due. Returns the recipients API Gateway
    /// reported gone.
    pub(super) async fn announce_presence(
        &self,
        room: &str,
        events: Vec<ServerEvent>,
        except: Option<&str>,
    ) -> Vec<String> {
        match self.store.member_count(room).await {
            Ok(count) if self.is_big(count) => self.push_count(room, count).await,
            Ok(_) => self.announce(room, events, except).await,
            Err(err) => {
                // Without the count the room is announced to as a small one would be.
                tracing::error!(room, error = %Causes(&err), "could not count a room's members");
                self.announce(room, events, except).await
            }
        }
    }

    /// Pushes `room`'s member count to every member, if no other push of it happened
    /// within [`PRESENCE_INTERVAL`] and the last one pushed another count.
    async fn push_count(&self, room: &str, count: u64) -> Vec<String> {
        let now_ms = i64::try_from(self.now_ms()).unwrap_or(i64::MAX);
        let interval_ms = i64::try_from(PRESENCE_INTERVAL.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .claim_count_push(room, count, now_ms, now_ms.saturating_sub(interval_ms))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Vec::new(),
            Err(err) => {
                tracing::error!(room, error = %Causes(&err), "could not record a member count push");
                return Vec::new();
            }
        }
        // A big room is reached the way its messages are: sharded through the fan-out
        // workers once it is past the inline limit.
        let frame = ServerFrame::push(ServerEvent::Members {
            room: room.to_string(),
            count,
        })
        .to_json();
        match self.push_room(room, &RoomPush::Frame { frame }, None).await {
            Ok(outcome) => outcome.gone,
            Err(err) => {
                tracing::error!(room, error = %Causes(&err), "could not push a room's member count");
                Vec::new()
            }
        }
    }

    /// The members of `room` other than `connection_id`: all of them, sorted by name,
    /// with no cursor or count, when the room is within the presence limit and no
    /// `cursor` is given (as the original protocol answered); else one page after
    /// `cursor`, with the next page's cursor and the room's count.
    pub(super) async fn members_for(
        &self,
        room: &str,
        connection_id: &str,
        cursor: Option<&str>,
    ) -> Result<Listing, Refusal> {
        let count = self
            .store
            .member_count(room)
            .await
            .map_err(|e| internal(&e))?;
        if cursor.is_none() && !self.is_big(count) {
            return Ok(Listing {
                users: self.others_in(room, connection_id).await?,
                cursor: None,
                count: None,
            });
        }
        let after = cursor.map(page_after).transpose()?;
        let page = self
            .store
            .members_page(room, after.as_deref(), LIST_PAGE_SIZE)
            .await
            .map_err(|e| internal(&e))?;
        Ok(Listing {
            users: page
                .users
                .into_iter()
                .filter(|user| user.connection_id != connection_id)
                .collect(),
            cursor: page.next.as_deref().map(cursor_after),
            count: Some(count),
        })
    }
}
