//! How rows look: attribute names, and rows to and from the store's types.

use crate::store::{Connection, StoredMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use webchat_shared_types::User;

pub(crate) const CONNECTION_ID: &str = "connectionId";
pub(crate) const USER_NAME: &str = "userName";
pub(crate) const CONNECTED_AT: &str = "connectedAt";
pub(crate) const TTL: &str = "ttl";
pub(crate) const NAME_KEY: &str = "nameKey";
pub(crate) const TOKEN_HASH: &str = "tokenHash";
/// The identity (`sub`) a name is bound to, with sign-in on.
pub(crate) const OWNER: &str = "owner";
pub(crate) const ROOMS: &str = "rooms";
pub(crate) const ROOM: &str = "room";
pub(crate) const MESSAGE_ID: &str = "messageId";
/// In a conversation index row: the other person's name, and the newest message id.
pub(crate) const WITH: &str = "with";
pub(crate) const LAST_MESSAGE_ID: &str = "lastMessageId";
/// Which write put a `Members` row (see [`DynamoStore::write_members`]).
pub(crate) const WRITE_ID: &str = "writeId";

pub(crate) fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

pub(crate) fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A count or a limit as a DynamoDB number, exactly as it is.
pub(crate) fn count(value: usize) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string set; DynamoDB has no empty sets, so callers never pass none.
pub(crate) fn string_set(values: &[String]) -> AttributeValue {
    AttributeValue::Ss(values.to_vec())
}

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn string_of(item: &Item, attribute: &str) -> Option<String> {
    item.get(attribute).and_then(|v| v.as_s().ok()).cloned()
}

pub(crate) fn number_of<T: std::str::FromStr>(item: &Item, attribute: &str) -> Option<T> {
    item.get(attribute)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The `rooms` set of a connection row, sorted (none when it has no set).
pub(crate) fn rooms_of(item: &Item) -> Vec<String> {
    let mut rooms = item
        .get(ROOMS)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    rooms.sort();
    rooms
}

/// A `Connections` row as reads see it (writes set single attributes).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionRow {
    connection_id: String,
    #[serde(default)]
    connected_at: i64,
    user_name: Option<String>,
    /// A string set.
    #[serde(default)]
    rooms: Vec<String>,
    owner: Option<String>,
}

/// A `Members` row of a room or of a person's partition.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberRow {
    pub room: String,
    pub connection_id: String,
    pub user_name: String,
    pub ttl: i64,
    /// Which write put it (see [`DynamoStore::write_members`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
}

/// A `Messages` row.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageRow {
    room: String,
    message_id: String,
    sender: String,
    sender_id: String,
    message: String,
    timestamp: u64,
    ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
}

/// A row as one of the store's types; `None` when the row lacks what the type needs.
fn read<Row: DeserializeOwned>(item: &Item) -> Option<Row> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item.clone()).ok()
}

/// A row to write; only a type that cannot be an item fails (none of the above).
pub(crate) fn to_item(row: &impl Serialize) -> Result<Item, serde_dynamo::Error> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(row)
}

pub(crate) fn connection_from_item(item: &Item) -> Option<Connection> {
    let mut row: ConnectionRow = read(item)?;
    row.rooms.sort();
    Some(Connection {
        connection_id: row.connection_id,
        connected_at: row.connected_at,
        user_name: row.user_name,
        rooms: row.rooms,
        owner: row.owner,
    })
}

pub(crate) fn member_from_item(item: &Item) -> Option<User> {
    let row: MemberRow = read(item)?;
    Some(User {
        user_name: row.user_name,
        connection_id: row.connection_id,
    })
}

pub(crate) fn message_from_item(item: &Item) -> Option<StoredMessage> {
    let row: MessageRow = read(item)?;
    Some(StoredMessage {
        room: row.room,
        message_id: row.message_id,
        sender: row.sender,
        sender_id: row.sender_id,
        message: row.message,
        timestamp: row.timestamp,
        expires_at: row.ttl,
        to: row.to,
    })
}

pub(crate) fn message_item(message: &StoredMessage) -> Result<Item, serde_dynamo::Error> {
    to_item(&MessageRow {
        room: message.room.clone(),
        message_id: message.message_id.clone(),
        sender: message.sender.clone(),
        sender_id: message.sender_id.clone(),
        message: message.message.clone(),
        timestamp: message.timestamp,
        ttl: message.expires_at,
        to: message.to.clone(),
    })
}

pub(crate) fn member_key(room: &str, connection_id: &str) -> Item {
    HashMap::from([
        (ROOM.to_string(), string(room)),
        (CONNECTION_ID.to_string(), string(connection_id)),
    ])
}

/// A row whose TTL has passed is dead even if DynamoDB has not deleted it yet
/// (TTL deletion can lag by days).
pub(crate) fn is_expired(item: &Item, now: i64) -> bool {
    number_of::<i64>(item, TTL).is_some_and(|ttl| ttl < now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    /// The rows written before items went through serde: the same names, the same types.
    #[test]
    fn message_rows_keep_their_attribute_names_and_types() {
        let mut message = StoredMessage {
            room: "rust".into(),
            message_id: "01JDQ7Z3M0000000000000000".into(),
            sender: "ana".into(),
            sender_id: "A".into(),
            message: "hi".into(),
            timestamp: 1_764_316_800_000,
            expires_at: 1_764_921_600,
            to: None,
        };
        let mut expected = item(&[
            (ROOM, string("rust")),
            (MESSAGE_ID, string("01JDQ7Z3M0000000000000000")),
            ("sender", string("ana")),
            ("senderId", string("A")),
            ("message", string("hi")),
            ("timestamp", number(1_764_316_800_000)),
            (TTL, number(1_764_921_600)),
        ]);
        assert_eq!(message_item(&message).unwrap(), expected);
        assert_eq!(message_from_item(&expected), Some(message.clone()));

        message.to = Some("bia".into());
        expected.insert("to".into(), string("bia"));
        assert_eq!(message_item(&message).unwrap(), expected);
        assert_eq!(message_from_item(&expected), Some(message));
    }

    #[test]
    fn member_rows_keep_their_attribute_names_and_types() {
        let row = MemberRow {
            room: "rust".into(),
            connection_id: "A".into(),
            user_name: "ana".into(),
            ttl: 1_764_327_600,
            write_id: None,
        };
        let mut expected = item(&[
            (ROOM, string("rust")),
            (CONNECTION_ID, string("A")),
            (USER_NAME, string("ana")),
            (TTL, number(1_764_327_600)),
        ]);
        assert_eq!(to_item(&row).unwrap(), expected);
        let written = MemberRow {
            write_id: Some("00000000000000ff".into()),
            ..row
        };
        expected.insert(WRITE_ID.into(), string("00000000000000ff"));
        assert_eq!(to_item(&written).unwrap(), expected);
    }

    #[test]
    fn connection_rows_are_read_with_their_rooms_sorted() {
        let row = item(&[
            (CONNECTION_ID, string("A")),
            (CONNECTED_AT, number(1_764_316_800_000)),
            (TTL, number(1_764_327_600)),
            (USER_NAME, string("ana")),
            (ROOMS, string_set(&["rust".into(), "lobby".into()])),
        ]);
        assert_eq!(
            connection_from_item(&row),
            Some(Connection {
                connection_id: "A".into(),
                connected_at: 1_764_316_800_000,
                user_name: Some("ana".into()),
                rooms: vec!["lobby".into(), "rust".into()],
                owner: None,
            })
        );
        let fresh = item(&[(CONNECTION_ID, string("B"))]);
        assert_eq!(connection_from_item(&fresh), Some(Connection::new("B", 0)));
    }
}
