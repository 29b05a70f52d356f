//! The SQS endpoint the functions are given (`AWS_ENDPOINT_URL_SQS`) and the operator
//! can point the AWS CLI or an SDK at: SQS's JSON protocol (`X-Amz-Target:
//! AmazonSQS.<Operation>`, `application/x-amz-json-1.0`), which current SDKs and the
//! AWS CLI v2 speak, for the operations the chat and an operator need.
//!
//! Every call's `SigV4` signature (service `sqs`) is checked. A function's key is held to
//! its role as IAM would hold it (with `--enforce-iam`): the action is `sqs:<Operation>`
//! (a batch as its single call: `SendMessageBatch` as `sqs:SendMessage`), the resource
//! the queue's ARN (`*` for `ListQueues`); a denial is SQS's `AccessDenied`. The
//! operator's key (the one the gateway prints, or `AWS_ACCESS_KEY_ID` from its
//! environment) is accepted unchecked, as an administrator's would be.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::attributes::{self, MessageAttributes};
use super::{Outgoing, Queue, Queues, Sent, SqsError, BATCH_LIMIT, MAX_WAIT};
use crate::iam::{Denial, Identities, Identity};
use crate::served::Served;
use crate::sigv4::{self, AccessKey};

/// The signing name of SQS.
pub const SERVICE: &str = "sqs";

const TARGET_PREFIX: &str = "AmazonSQS.";

/// A batch's bodies together, SQS's limit.
const BATCH_BYTES: usize = 1_048_576;

/// The most a request may carry: a full batch, JSON-escaped, with room.
const BODY_LIMIT: usize = 4 * BATCH_BYTES;

/// The endpoint's state.
pub struct SqsEndpoint {
    queues: Arc<Queues>,
    /// With IAM enforced: the functions' identities and roles.
    identities: Option<Arc<Identities>>,
    /// Accepted unchecked (and the functions' key while IAM is not enforced).
    operator: AccessKey,
}

impl std::fmt::Debug for SqsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsEndpoint")
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

impl SqsEndpoint {
    /// An endpoint for `queues`, holding function keys to their roles when `identities`
    /// is given, and accepting `operator`'s key unchecked.
    pub fn new(
        queues: Arc<Queues>,
        identities: Option<Arc<Identities>>,
        operator: AccessKey,
    ) -> Arc<SqsEndpoint> {
        Arc::new(SqsEndpoint {
            queues,
            identities,
            operator,
        })
    }

    /// The endpoint as a router answering `POST` at any path.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// Serves on `addr` (port 0 picks a free one).
    pub async fn start(self: Arc<Self>, addr: SocketAddr) -> std::io::Result<Served> {
        Served::start(self.router(), addr, "the SQS endpoint").await
    }
}

fn json_response(status: StatusCode, body: &Value, query_error: Option<String>) -> Response {
    let mut response = (
        status,
        [
            ("content-type", "application/x-amz-json-1.0".to_string()),
            ("x-amzn-RequestId", uuid::Uuid::new_v4().to_string()),
        ],
        body.to_string(),
    )
        .into_response();
    if let Some(value) = query_error.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert("x-amzn-query-error", value);
    }
    response
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        json_response(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            &json!({
                "__type": format!("com.amazonaws.sqs#{}", self.code),
                "message": self.message,
            }),
            Some(format!("{};Sender", self.query_code)),
        )
    }
}

/// SQS's answer to a call the caller's role does not allow.
fn access_denied(denial: &Denial) -> Response {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({
            "__type": "com.amazon.coral.service#AccessDeniedException",
            "message": denial.message(),
        }),
        Some("AccessDenied;Sender".to_string()),
    )
}

/// Who signed a call.
enum Caller {
    /// The operator's key: not checked against any role.
    Operator,
    /// A function's key: held to its role.
    Function(Arc<Identity>),
}

impl Caller {
    /// `SenderId` as SQS reports it: the role's session for a function.
    fn sender_id(&self, operator: &AccessKey) -> String {
        match self {
            Caller::Operator => operator.access_key_id.clone(),
            Caller::Function(identity) => {
                format!("{}:{}", identity.key.access_key_id, identity.function_name)
            }
        }
    }
}

async fn handle(State(endpoint): State<Arc<SqsEndpoint>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return SqsError::new(
            "BatchRequestTooLong",
            "AWS.SimpleQueueService.BatchRequestTooLong",
            format!("The request is over {BODY_LIMIT} bytes."),
        )
        .into_response();
    };
    let signed = sigv4::Request::new(&parts.method, &parts.uri, &parts.headers, &body);
    let caller = match verify(&endpoint, &signed) {
        Ok(caller) => caller,
        Err(refusal) => {
            let error_type = refusal.error_type();
            tracing::info!(target: "webchat_local::iam", "SQS call refused: {error_type}");
            return json_response(
                StatusCode::FORBIDDEN,
                &json!({
                    "__type": format!("com.amazon.coral.service#{error_type}"),
                    "message": format!("{:#}", anyhow::Error::new(refusal)),
                }),
                None,
            );
        }
    };
    let Some(operation) = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
    else {
        return SqsError::new(
            "InvalidAction",
            "InvalidAction",
            "webchat-local serves SQS's JSON protocol only: X-Amz-Target: AmazonSQS.<Operation> with application/x-amz-json-1.0 (current SDKs and the AWS CLI v2 send it)",
        )
        .into_response();
    };
    let input = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(input)) => input,
        Ok(_) | Err(_) if body.is_empty() => Map::new(),
        _ => {
            return SqsError::new(
                "InvalidParameterValue",
                "InvalidParameterValue",
                "The request body is not a JSON object.",
            )
            .into_response()
        }
    };
    match call(&endpoint, &caller, operation, &input).await {
        Ok(output) => json_response(StatusCode::OK, &output, None),
        Err(Refused::Sqs(error)) => error.into_response(),
        Err(Refused::Denied(denial)) => access_denied(&denial),
    }
}

fn verify(endpoint: &SqsEndpoint, signed: &sigv4::Request<'_>) -> Result<Caller, sigv4::Refusal> {
    let now = SystemTime::now();
    let key_id = sigv4::access_key_id(signed.headers)?;
    if key_id == endpoint.operator.access_key_id {
        sigv4::verify_for(
            signed,
            &endpoint.operator,
            &endpoint.queues.region,
            SERVICE,
            now,
        )?;
        return Ok(Caller::Operator);
    }
    match &endpoint.identities {
        Some(identities) => identities
            .verify(signed, SERVICE, now)
            .map(Caller::Function),
        None => Err(sigv4::Refusal::UnknownKey),
    }
}

/// Why a call was not served.
enum Refused {
    Sqs(SqsError),
    Denied(Denial),
}

impl From<SqsError> for Refused {
    fn from(error: SqsError) -> Refused {
        Refused::Sqs(error)
    }
}

/// The IAM action an operation is authorised as.
fn iam_action(operation: &str) -> String {
    let action = match operation {
        "SendMessageBatch" => "SendMessage",
        "DeleteMessageBatch" => "DeleteMessage",
        "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
        other => other,
    };
    format!("sqs:{action}")
}

fn string<'a>(input: &'a Map<String, Value>, name: &str) -> Result<&'a str, SqsError> {
    match input.get(name) {
        None | Some(Value::Null) => Err(SqsError::missing_parameter(name)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(SqsError::invalid_parameter(format!(
            "Value {other} for parameter {name} is invalid. Reason: not a string."
        ))),
    }
}

fn integer(input: &Map<String, Value>, name: &str) -> Result<Option<i64>, SqsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            SqsError::invalid_parameter(format!(
                "Value {value} for parameter {name} is invalid. Reason: not an integer."
            ))
        }),
    }
}

fn names(input: &Map<String, Value>, name: &str) -> Vec<String> {
    input
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn entries<'a>(
    input: &'a Map<String, Value>,
    operation: &str,
) -> Result<Vec<&'a Map<String, Value>>, SqsError> {
    let entries: Vec<&Map<String, Value>> = input
        .get("Entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect();
    if entries.is_empty() {
        return Err(SqsError::new(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            format!("There should be at least one {operation}RequestEntry in the request."),
        ));
    }
    if entries.len() > BATCH_LIMIT {
        return Err(SqsError::new(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {BATCH_LIMIT}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for entry in &entries {
        let id = string(entry, "Id")?;
        let valid = !id.is_empty()
            && id.len() <= 80
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(SqsError::new(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::new(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(entries)
}

fn failed(id: &str, error: &SqsError) -> Value {
    json!({"Id": id, "SenderFault": true, "Code": error.query_code, "Message": error.message})
}

/// The queue a call names (by `QueueUrl`), once its caller may make the call on it.
fn queue_for<'a>(
    endpoint: &'a SqsEndpoint,
    caller: &Caller,
    operation: &str,
    input: &Map<String, Value>,
) -> Result<&'a Arc<Queue>, Refused> {
    let url = string(input, "QueueUrl")?;
    let (account, name) = Queues::parse_url(url).ok_or_else(SqsError::no_queue)?;
    authorize(caller, operation, &endpoint.queues.arn_for(account, name))?;
    Ok(endpoint.queues.by_url(url)?)
}

fn authorize(caller: &Caller, operation: &str, resource: &str) -> Result<(), Refused> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Function(identity) => {
            match Denial::check(identity, &iam_action(operation), resource) {
                None => Ok(()),
                Some(denial) => Err(Refused::Denied(denial)),
            }
        }
    }
}

/// A message's attributes as its input (`SendMessage`'s, or one entry of a batch) gives them.
fn attributes_of(input: &Map<String, Value>) -> Result<MessageAttributes, SqsError> {
    attributes::parse(input.get("MessageAttributes"))
}

/// A send's message from its input and its attributes as read from it; a missing body is
/// reported before bad attributes, and those before a bad delay.
fn outgoing(
    input: &Map<String, Value>,
    attributes: Result<MessageAttributes, SqsError>,
) -> Result<Outgoing, SqsError> {
    Ok(Outgoing {
        body: string(input, "MessageBody")?.to_string(),
        attributes: attributes?,
        delay_seconds: integer(input, "DelaySeconds")?,
    })
}

/// What `SendMessage` answers, and each successful entry of a batch besides its `Id`.
fn sent_json(sent: Sent) -> Value {
    let mut answer = json!({"MessageId": sent.message_id, "MD5OfMessageBody": sent.md5_of_body});
    if let Some(md5) = sent.md5_of_attributes {
        answer["MD5OfMessageAttributes"] = json!(md5);
    }
    answer
}

/// `ChangeMessageVisibility`'s input, or one entry of a batch.
fn change_visibility(
    queues: &Queues,
    queue: &Queue,
    input: &Map<String, Value>,
) -> Result<(), SqsError> {
    let seconds = integer(input, "VisibilityTimeout")?
        .ok_or_else(|| SqsError::missing_parameter("VisibilityTimeout"))?;
    queues.change_visibility(queue, string(input, "ReceiptHandle")?, seconds)
}

async fn call(
    endpoint: &SqsEndpoint,
    caller: &Caller,
    operation: &str,
    input: &Map<String, Value>,
) -> Result<Value, Refused> {
    let queues = &endpoint.queues;
    let sender = || caller.sender_id(&endpoint.operator);
    Ok(match operation {
        "SendMessage" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            let message = outgoing(input, attributes_of(input))?;
            sent_json(queues.send(queue, message, &sender())?)
        }
        "SendMessageBatch" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            let entries = entries(input, operation)?;
            // Each entry's attributes are read once: they count towards the batch's size
            // and then go with its message.
            let read: Vec<_> = entries.iter().map(|entry| attributes_of(entry)).collect();
            let total: usize = entries
                .iter()
                .zip(&read)
                .map(|(entry, attributes)| {
                    string(entry, "MessageBody").map_or(0, str::len)
                        + attributes.as_ref().map_or(0, attributes::size)
                })
                .sum();
            if total > BATCH_BYTES {
                return Err(SqsError::new(
                    "BatchRequestTooLong",
                    "AWS.SimpleQueueService.BatchRequestTooLong",
                    format!("Batch requests cannot be longer than {BATCH_BYTES} bytes. You have sent {total} bytes."),
                )
                .into());
            }
            let (mut successful, mut failures) = (Vec::new(), Vec::new());
            for (entry, attributes) in entries.into_iter().zip(read) {
                let id = string(entry, "Id")?;
                let sent = outgoing(entry, attributes)
                    .and_then(|message| queues.send(queue, message, &sender()));
                match sent {
                    Ok(sent) => {
                        let mut answer = sent_json(sent);
                        answer["Id"] = json!(id);
                        successful.push(answer);
                    }
                    Err(error) => failures.push(failed(id, &error)),
                }
            }
            json!({"Successful": successful, "Failed": failures})
        }
        "ReceiveMessage" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            let max = integer(input, "MaxNumberOfMessages")?.unwrap_or(1);
            let max = usize::try_from(max)
                .ok()
                .filter(|m| (1..=BATCH_LIMIT).contains(m))
                .ok_or_else(|| SqsError::invalid_parameter(format!(
                    "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
                )))?;
            let visibility = integer(input, "VisibilityTimeout")?
                .map(|v| {
                    u64::try_from(v)
                        .ok()
                        .filter(|v| *v <= 43_200)
                        .map(Duration::from_secs)
                        .ok_or_else(|| SqsError::invalid_parameter(format!(
                            "Value {v} for parameter VisibilityTimeout is invalid. Reason: must be between 0 and 43200."
                        )))
                })
                .transpose()?;
            let wait = integer(input, "WaitTimeSeconds")?
                .map(|w| {
                    u64::try_from(w)
                        .ok()
                        .map(Duration::from_secs)
                        .filter(|w| *w <= MAX_WAIT)
                        .ok_or_else(|| SqsError::invalid_parameter(format!(
                            "Value {w} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
                        )))
                })
                .transpose()?;
            let mut wanted = names(input, "AttributeNames");
            wanted.extend(names(input, "MessageSystemAttributeNames"));
            let all = wanted.iter().any(|n| n == "All");
            let wanted_attributes = names(input, "MessageAttributeNames");
            let messages: Vec<Value> = queues
                .receive(queue, max, visibility, wait)
                .await
                .into_iter()
                .map(|m| {
                    let attributes: Map<String, Value> = m
                        .attributes()
                        .into_iter()
                        .filter(|(name, _)| all || wanted.iter().any(|w| w == name))
                        .map(|(name, value)| (name.to_string(), Value::from(value)))
                        .collect();
                    let mut message = json!({
                        "MessageId": m.message_id,
                        "ReceiptHandle": m.receipt_handle,
                        "MD5OfBody": m.md5_of_body,
                        "Body": m.body,
                    });
                    if !attributes.is_empty() {
                        message["Attributes"] = Value::Object(attributes);
                    }
                    // As SQS: only the attributes asked for, and the digest of those.
                    let chosen = attributes::selected(&m.message_attributes, &wanted_attributes);
                    if let Some(md5) = attributes::md5(&chosen) {
                        message["MessageAttributes"] = attributes::to_json(&chosen);
                        message["MD5OfMessageAttributes"] = json!(md5);
                    }
                    message
                })
                .collect();
            if messages.is_empty() {
                json!({})
            } else {
                json!({"Messages": messages})
            }
        }
        "DeleteMessage" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            queues.delete(queue, string(input, "ReceiptHandle")?)?;
            json!({})
        }
        "DeleteMessageBatch" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            let (mut successful, mut failures) = (Vec::new(), Vec::new());
            for entry in entries(input, operation)? {
                let id = string(entry, "Id")?;
                match string(entry, "ReceiptHandle").and_then(|h| queues.delete(queue, h)) {
                    Ok(()) => successful.push(json!({"Id": id})),
                    Err(error) => failures.push(failed(id, &error)),
                }
            }
            json!({"Successful": successful, "Failed": failures})
        }
        "ChangeMessageVisibility" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            change_visibility(queues, queue, input)?;
            json!({})
        }
        "ChangeMessageVisibilityBatch" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            let (mut successful, mut failures) = (Vec::new(), Vec::new());
            for entry in entries(input, operation)? {
                let id = string(entry, "Id")?;
                match change_visibility(queues, queue, entry) {
                    Ok(()) => successful.push(json!({"Id": id})),
                    Err(error) => failures.push(failed(id, &error)),
                }
            }
            json!({"Successful": successful, "Failed": failures})
        }
        "GetQueueUrl" => {
            let name = string(input, "QueueName")?;
            let account = match input.get("QueueOwnerAWSAccountId") {
                Some(Value::String(account)) => account.as_str(),
                _ => queues.account_id.as_str(),
            };
            authorize(caller, operation, &queues.arn_for(account, name))?;
            let queue = queues
                .by_name(name)
                .filter(|_| account == queues.account_id)
                .ok_or_else(SqsError::no_queue)?;
            json!({"QueueUrl": queue.url})
        }
        "GetQueueAttributes" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            // No names, no attributes, as SQS answers (the CLI asks for All).
            let attributes = queues.attributes(queue, &names(input, "AttributeNames"))?;
            json!({"Attributes": attributes})
        }
        "ListQueues" => {
            authorize(caller, operation, "*")?;
            let prefix = match input.get("QueueNamePrefix") {
                Some(Value::String(p)) => p.as_str(),
                _ => "",
            };
            let max = integer(input, "MaxResults")?
                .map(|m| {
                    usize::try_from(m)
                        .ok()
                        .filter(|m| (1..=1000).contains(m))
                        .ok_or_else(|| SqsError::invalid_parameter(format!(
                            "Value {m} for parameter MaxResults is invalid. Reason: must be between 1 and 1000."
                        )))
                })
                .transpose()?
                .unwrap_or(1000);
            let urls: Vec<&str> = queues
                .all()
                .filter(|q| q.name.starts_with(prefix))
                .take(max)
                .map(|q| q.url.as_str())
                .collect();
            json!({"QueueUrls": urls})
        }
        "PurgeQueue" => {
            let queue = queue_for(endpoint, caller, operation, input)?;
            queues.purge(queue);
            json!({})
        }
        other => {
            return Err(SqsError::new(
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                format!("webchat-local does not serve {other}: the template declares the queues, and the chat and an operator use SendMessage(Batch), ReceiveMessage, DeleteMessage(Batch), ChangeMessageVisibility, GetQueueUrl, GetQueueAttributes, ListQueues and PurgeQueue"),
            )
            .into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::iam_action;

    #[test]
    fn batch_operations_are_authorised_as_their_single_actions() {
        assert_eq!(iam_action("SendMessageBatch"), "sqs:SendMessage");
        assert_eq!(iam_action("DeleteMessageBatch"), "sqs:DeleteMessage");
        assert_eq!(iam_action("ReceiveMessage"), "sqs:ReceiveMessage");
    }
}
