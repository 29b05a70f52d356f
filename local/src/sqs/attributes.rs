//! Message attributes: the typed name-value pairs a sender attaches beside the body,
//! checked, sized and digested as SQS does, and written in the shapes the JSON protocol
//! and Lambda's SQS events carry them in.

use std::collections::BTreeMap;

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};

use super::SqsError;

/// Attributes one message carries at most.
pub const MAX_ATTRIBUTES: usize = 10;
/// A name or a data type is at most this long.
const MAX_NAME: usize = 256;

/// One attribute's value, by its transport type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// `String` and `Number` data types (and their custom `String.x` / `Number.x` forms).
    Text(String),
    /// `Binary` data types.
    Bytes(Vec<u8>),
}

/// One message attribute: its data type as given (`Number.float` stays so) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `DataType`.
    pub data_type: String,
    /// `StringValue` or `BinaryValue`.
    pub value: AttributeValue,
}

/// A message's attributes by name; SQS digests them in name order, so they are kept so.
pub type MessageAttributes = BTreeMap<String, MessageAttribute>;

fn invalid(message: String) -> SqsError {
    SqsError::invalid_parameter(message)
}

/// `MessageAttributes` of a send, as the JSON protocol writes them, checked as SQS checks
/// them; absent or `null` is none.
pub fn parse(input: Option<&Value>) -> Result<MessageAttributes, SqsError> {
    let entries = match input {
        None | Some(Value::Null) => return Ok(MessageAttributes::new()),
        Some(Value::Object(entries)) => entries,
        Some(_) => {
            return Err(invalid(
                "MessageAttributes must be a map of names to attribute values.".to_string(),
            ))
        }
    };
    if entries.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            entries.len()
        )));
    }
    entries
        .iter()
        .map(|(name, value)| Ok((check_name(name)?, attribute(name, value)?)))
        .collect()
}

fn check_name(name: &str) -> Result<String, SqsError> {
    let lower = name.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..");
    if !valid {
        return Err(invalid(format!(
            "Message (user) attribute name '{name}' is invalid. Names are 1 to {MAX_NAME} of \
             A-Z, a-z, 0-9, '_', '-' and '.', with no '.' first, last or twice in a row."
        )));
    }
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return Err(invalid(format!(
            "Message (user) attribute name '{name}' is reserved: names starting with 'AWS.' or \
             'Amazon.' are for AWS."
        )));
    }
    Ok(name.to_string())
}

fn attribute(name: &str, value: &Value) -> Result<MessageAttribute, SqsError> {
    let field = |field: &str| value.get(field).and_then(Value::as_str);
    let data_type = field("DataType").filter(|t| !t.is_empty()).ok_or_else(|| {
        invalid(format!(
            "The message attribute '{name}' must contain non-empty message attribute type."
        ))
    })?;
    let base = data_type
        .split_once('.')
        .map_or(data_type, |(base, _)| base);
    if data_type.len() > MAX_NAME || !matches!(base, "String" | "Number" | "Binary") {
        return Err(invalid(format!(
            "The type of message (user) attribute '{name}' is invalid. You must use only the \
             following supported type prefixes: Binary, Number, String."
        )));
    }
    let empty = || {
        invalid(format!(
            "Message (user) attribute '{name}' must contain a non-empty value of type '{base}'."
        ))
    };
    let value = if base == "Binary" {
        let encoded = field("BinaryValue").ok_or_else(empty)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                invalid(format!(
                    "Message (user) attribute '{name}': BinaryValue is not valid base64."
                ))
            })?;
        if bytes.is_empty() {
            return Err(empty());
        }
        AttributeValue::Bytes(bytes)
    } else {
        let text = field("StringValue")
            .filter(|s| !s.is_empty())
            .ok_or_else(empty)?;
        if base == "Number" && text.trim().parse::<f64>().is_err() {
            return Err(invalid(format!(
                "Can't cast the value of message (user) attribute '{name}' to a number."
            )));
        }
        if !text.chars().all(super::allowed_in_body) {
            return Err(super::invalid_characters());
        }
        AttributeValue::Text(text.to_string())
    };
    Ok(MessageAttribute {
        data_type: data_type.to_string(),
        value,
    })
}

impl AttributeValue {
    fn bytes(&self) -> &[u8] {
        match self {
            AttributeValue::Text(text) => text.as_bytes(),
            AttributeValue::Bytes(bytes) => bytes,
        }
    }
}

/// What the attributes add to a message's size, as SQS counts it against the queue's
/// maximum: every name, data type and value.
pub fn size(attributes: &MessageAttributes) -> usize {
    attributes
        .iter()
        .map(|(name, a)| name.len() + a.data_type.len() + a.value.bytes().len())
        .sum()
}

/// `MD5OfMessageAttributes`, by SQS's published algorithm: in name order, each name, data
/// type and value as a 4-byte big-endian length and its bytes, with a transport byte (1
/// text, 2 binary) before the value. `None` when there are none, as SQS leaves it out.
pub fn md5(attributes: &MessageAttributes) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut digest = Md5::new();
    for (name, attribute) in attributes {
        length_prefixed(&mut digest, name.as_bytes());
        length_prefixed(&mut digest, attribute.data_type.as_bytes());
        digest.update([match attribute.value {
            AttributeValue::Text(_) => 1,
            AttributeValue::Bytes(_) => 2,
        }]);
        length_prefixed(&mut digest, attribute.value.bytes());
    }
    Some(hex::encode(digest.finalize()))
}

fn length_prefixed(digest: &mut Md5, bytes: &[u8]) {
    // A message is at most 256 KiB (1 MiB for new queues), far below u32::MAX.
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    digest.update(length.to_be_bytes());
    digest.update(bytes);
}

/// The attributes a receive asked for by `MessageAttributeNames`: `All` or `.*` for every
/// one, `prefix.*` for those under a prefix, or names.
pub fn selected(attributes: &MessageAttributes, wanted: &[String]) -> MessageAttributes {
    let wants = |name: &str| {
        wanted.iter().any(|w| {
            w == "All"
                || w == ".*"
                || w == name
                || w.strip_suffix(".*")
                    .is_some_and(|prefix| name.starts_with(&format!("{prefix}.")))
        })
    };
    attributes
        .iter()
        .filter(|(name, _)| wants(name))
        .map(|(name, a)| (name.clone(), a.clone()))
        .collect()
}

fn encoded(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The JSON protocol's `MessageAttributes` of a received message.
pub fn to_json(attributes: &MessageAttributes) -> Value {
    let map: Map<String, Value> = attributes
        .iter()
        .map(|(name, a)| {
            let value = match &a.value {
                AttributeValue::Text(text) => json!({"DataType": a.data_type, "StringValue": text}),
                AttributeValue::Bytes(bytes) => {
                    json!({"DataType": a.data_type, "BinaryValue": encoded(bytes)})
                }
            };
            (name.clone(), value)
        })
        .collect();
    Value::Object(map)
}

/// A Lambda SQS event record's `messageAttributes`.
pub fn to_event_json(attributes: &MessageAttributes) -> Value {
    let map: Map<String, Value> = attributes
        .iter()
        .map(|(name, a)| {
            let mut value = json!({
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": a.data_type,
            });
            match &a.value {
                AttributeValue::Text(text) => value["stringValue"] = json!(text),
                AttributeValue::Bytes(bytes) => value["binaryValue"] = json!(encoded(bytes)),
            }
            (name.clone(), value)
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(value: &Value) -> Result<MessageAttributes, SqsError> {
        parse(Some(value))
    }

    #[test]
    fn the_digest_is_the_one_sqs_sends() {
        // An SQS ReceiveMessage response (botocore's serializer tests record it).
        let attributes = given(&json!({
            "Hello": {"StringValue": "There", "DataType": "String"},
            "General": {"StringValue": "Kenobi", "DataType": "String"},
        }))
        .unwrap();
        assert_eq!(
            md5(&attributes).as_deref(),
            Some("fca026605781cb4126a1e9044df24232")
        );
        assert_eq!(md5(&MessageAttributes::new()), None);
    }

    #[test]
    fn binary_values_travel_as_base64_and_count_their_bytes() {
        let attributes = given(&json!({
            "blob": {"DataType": "Binary.gz", "BinaryValue": "AAEC"},
            "n": {"DataType": "Number", "StringValue": "-1.5e3"},
        }))
        .unwrap();
        assert_eq!(
            attributes["blob"].value,
            AttributeValue::Bytes(vec![0, 1, 2])
        );
        assert_eq!(size(&attributes), 4 + 9 + 3 + 1 + 6 + 6);
        assert_eq!(
            to_json(&attributes)["blob"],
            json!({"DataType": "Binary.gz", "BinaryValue": "AAEC"})
        );
        let event = to_event_json(&attributes);
        assert_eq!(event["n"]["stringValue"], "-1.5e3");
        assert_eq!(event["blob"]["binaryValue"], "AAEC");
        assert_eq!(event["blob"]["dataType"], "Binary.gz");
    }

    #[test]
    fn what_sqs_refuses_is_refused_with_its_reason() {
        let refused = |value: Value, says: &str| {
            let error = given(&value).expect_err("refused");
            assert_eq!(error.code, "InvalidParameterValue");
            assert!(error.message.contains(says), "{}", error.message);
        };
        refused(json!({"a": {"DataType": "String"}}), "non-empty value");
        refused(
            json!({"a": {"DataType": "String", "StringValue": ""}}),
            "non-empty value",
        );
        refused(json!({"a": {"StringValue": "x"}}), "attribute type");
        refused(
            json!({"a": {"DataType": "Text", "StringValue": "x"}}),
            "type prefixes",
        );
        refused(
            json!({"a": {"DataType": "Number", "StringValue": "ten"}}),
            "to a number",
        );
        refused(
            json!({"a": {"DataType": "Binary", "BinaryValue": "%%"}}),
            "base64",
        );
        refused(
            json!({"AWS.trace": {"DataType": "String", "StringValue": "x"}}),
            "reserved",
        );
        refused(
            json!({"a..b": {"DataType": "String", "StringValue": "x"}}),
            "is invalid",
        );
        refused(
            json!({"a b": {"DataType": "String", "StringValue": "x"}}),
            "is invalid",
        );
        let eleven: Map<String, Value> = (0..11)
            .map(|i| {
                (
                    format!("a{i}"),
                    json!({"DataType": "String", "StringValue": "x"}),
                )
            })
            .collect();
        refused(Value::Object(eleven), "exceeds the allowed maximum [10]");
        assert!(given(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn a_receive_gets_the_attributes_it_names() {
        let attributes = given(&json!({
            "trace.id": {"DataType": "String", "StringValue": "1"},
            "trace.span": {"DataType": "String", "StringValue": "2"},
            "room": {"DataType": "String", "StringValue": "lobby"},
        }))
        .unwrap();
        let names = |wanted: &[&str]| -> Vec<String> {
            let wanted: Vec<String> = wanted.iter().map(ToString::to_string).collect();
            selected(&attributes, &wanted).into_keys().collect()
        };
        assert_eq!(names(&["All"]).len(), 3);
        assert_eq!(names(&[".*"]).len(), 3);
        assert_eq!(names(&["trace.*"]), ["trace.id", "trace.span"]);
        assert_eq!(names(&["room", "missing"]), ["room"]);
        assert!(names(&[]).is_empty());
    }
}
