//! How rows look: attribute names, and rows to and from the store's types.

use crate::store::{Connection, StoredMessage};
use aws_sdk_dynamodb::types::AttributeValue;
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
pub(crate) const SENDER: &str = "sender";
pub(crate) const SENDER_ID: &str = "senderId";
pub(crate) const MESSAGE: &str = "message";
pub(crate) const TIMESTAMP: &str = "timestamp";
/// The name a conversation's message was addressed to.
pub(crate) const TO: &str = "to";
/// In a conversation index row: the other person's name, and the newest message id.
pub(crate) const WITH: &str = "with";
pub(crate) const LAST_MESSAGE_ID: &str = "lastMessageId";
/// Which write put a `Members` row (see [`DynamoStore::write_members`]).
pub(crate) const WRITE_ID: &str = "writeId";

pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string set; DynamoDB has no empty sets, so callers never pass none.
pub(crate) fn ss(values: &[String]) -> AttributeValue {
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

pub(crate) fn connection_from_item(item: &Item) -> Option<Connection> {
    Some(Connection {
        connection_id: string_of(item, CONNECTION_ID)?,
        connected_at: number_of(item, CONNECTED_AT).unwrap_or(0),
        user_name: string_of(item, USER_NAME),
        rooms: rooms_of(item),
        owner: string_of(item, OWNER),
    })
}

pub(crate) fn member_from_item(item: &Item) -> Option<User> {
    Some(User {
        user_name: string_of(item, USER_NAME)?,
        connection_id: string_of(item, CONNECTION_ID)?,
    })
}

pub(crate) fn message_from_item(item: &Item) -> Option<StoredMessage> {
    Some(StoredMessage {
        room: string_of(item, ROOM)?,
        message_id: string_of(item, MESSAGE_ID)?,
        sender: string_of(item, SENDER)?,
        sender_id: string_of(item, SENDER_ID)?,
        message: string_of(item, MESSAGE)?,
        timestamp: number_of(item, TIMESTAMP)?,
        expires_at: number_of(item, TTL)?,
        to: string_of(item, TO),
    })
}

pub(crate) fn member_key(room: &str, connection_id: &str) -> Item {
    HashMap::from([
        (ROOM.to_string(), s(room)),
        (CONNECTION_ID.to_string(), s(connection_id)),
    ])
}

/// A row whose TTL has passed is dead even if DynamoDB has not deleted it yet
/// (TTL deletion can lag by days).
pub(crate) fn is_expired(item: &Item, now: i64) -> bool {
    number_of::<i64>(item, TTL).is_some_and(|ttl| ttl < now)
}
