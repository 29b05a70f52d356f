//! The DynamoDB connection store.
//!
//! Two tables: `Connections` keyed by `connectionId` (with `userName`, `connectedAt`
//! and a `ttl` so rows left by a lost `$disconnect` expire) and `Names` keyed by the
//! lower-cased name. A name is claimed with a conditional put on `Names`, so DynamoDB
//! itself decides who wins a race for a name; nothing here reads-then-writes. Each
//! connection's rate-limit buckets are attributes of its `Connections` row, moved only by
//! conditional updates (see [`DynamoStore::admit`]).

use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::{Connection, ConnectionStore, Registration, StoreError};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use webchat_shared_types::name_key;

const CONNECTION_ID: &str = "connectionId";
const USER_NAME: &str = "userName";
const CONNECTED_AT: &str = "connectedAt";
const TTL: &str = "ttl";
const NAME_KEY: &str = "nameKey";
/// A bucket's theoretical arrival time, microseconds since the epoch (see [`crate::limits`]).
const MESSAGE_TAT: &str = "messageTat";
const ACTION_TAT: &str = "actionTat";
/// Conditional updates one admission may take before giving up. Every bucket only moves
/// forward, so one admission needs at most three (see [`DynamoStore::admit`]).
const ADMIT_ATTEMPTS: usize = 4;

fn tat_attribute(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Message => MESSAGE_TAT,
        Bucket::Action => ACTION_TAT,
    }
}

/// What a refused bucket update says about the row.
enum Observed {
    /// No row: the connection is gone.
    Gone,
    /// The row, with the bucket's `tat` (`None`: never used).
    Tat(Option<Micros>),
}
/// BatchGetItem's own limit, which is also the protocol's receiver limit.
const BATCH_GET_LIMIT: usize = 100;

/// The two table names, from `CONNECTIONS_TABLE` and `NAMES_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub connections: String,
    pub names: String,
}

impl TableNames {
    pub fn from_env() -> Result<Self, StoreError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                StoreError::Unavailable(format!(
                    "environment variable {name} is not set; set it to the DynamoDB table name"
                ))
            })
        };
        Ok(TableNames {
            connections: var("CONNECTIONS_TABLE")?,
            names: var("NAMES_TABLE")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    /// Scan page size; `None` lets DynamoDB fill 1 MB pages. Tests set it small to
    /// prove that every page is read.
    scan_page_size: Option<i32>,
}

fn unavailable(operation: &str, err: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(format!(
        "DynamoDB {operation} failed: {}",
        DisplayErrorContext(err)
    ))
}

/// A conditional write refused because its condition did not hold (not an outage).
fn condition_failed(err: &impl ProvideErrorMetadata) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn tat_of(item: &HashMap<String, AttributeValue>, attribute: &str) -> Option<Micros> {
    item.get(attribute)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn connection_from_item(item: &HashMap<String, AttributeValue>) -> Option<Connection> {
    let connection_id = item.get(CONNECTION_ID)?.as_s().ok()?.clone();
    let connected_at = item
        .get(CONNECTED_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let user_name = item.get(USER_NAME).and_then(|v| v.as_s().ok()).cloned();
    Some(Connection {
        connection_id,
        connected_at,
        user_name,
        rooms: Vec::new(),
    })
}

/// A row whose TTL has passed is dead even if DynamoDB has not deleted it yet
/// (TTL deletion can lag by days).
fn is_expired(item: &HashMap<String, AttributeValue>, now: i64) -> bool {
    item.get(TTL)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|ttl| ttl < now)
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        DynamoStore {
            client,
            tables,
            scan_page_size: None,
        }
    }

    pub fn with_scan_page_size(mut self, page_size: i32) -> Self {
        self.scan_page_size = Some(page_size);
        self
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Creates both tables when they do not exist (local gateway and tests; on AWS the
    /// `dynamodb.yml` stack owns them).
    pub async fn create_tables_if_missing(&self) -> Result<(), StoreError> {
        for (table, key) in [
            (&self.tables.connections, CONNECTION_ID),
            (&self.tables.names, NAME_KEY),
        ] {
            let created = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(key)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(|e| unavailable("CreateTable", e))?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(key)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(|e| unavailable("CreateTable", e))?,
                )
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(err) if err.code() == Some("ResourceInUseException") => continue,
                Err(err) => return Err(unavailable("CreateTable", err)),
            }
            self.wait_until_active(table).await?;
            // Some DynamoDB emulators lack TTL; expiry is also enforced on read, so a
            // failure here only means rows are not deleted in the background.
            let ttl = TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(|e| unavailable("UpdateTimeToLive", e))?;
            if let Err(err) = self
                .client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(ttl)
                .send()
                .await
            {
                tracing::debug!(table, error = %DisplayErrorContext(err), "TTL not enabled");
            }
        }
        Ok(())
    }

    async fn wait_until_active(&self, table: &str) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::TableStatus;
        for _ in 0..100 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| unavailable("DescribeTable", e))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {table} did not become ACTIVE"
        )))
    }

    /// One conditional update of a connection's bucket attribute (`#tat`). `Ok(None)`: it
    /// was written. `Ok(Some(item))`: its condition did not hold, and `item` is the row as
    /// DynamoDB returned it (`None` when there is no row, or the DynamoDB in use does not
    /// return rows on a failed condition, as dynalite does not).
    async fn update_bucket(
        &self,
        connection_id: &str,
        attribute: &str,
        update: &str,
        condition: &str,
        values: &[(&str, Micros)],
    ) -> Result<Option<Option<HashMap<String, AttributeValue>>>, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#tat", attribute)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, n(*value));
        }
        match request.send().await {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(failure)) => match failure.into_err() {
                UpdateItemError::ConditionalCheckFailedException(refused) => Ok(Some(refused.item)),
                err => Err(unavailable("UpdateItem (rate limit)", err)),
            },
            Err(err) => Err(unavailable("UpdateItem (rate limit)", err)),
        }
    }

    /// The bucket's state when a conditional update did not return the row: a write that
    /// changes nothing (a missing `tat` becomes `now`, which allows the same frames) and
    /// returns it, so this needs no permission beyond the updates themselves.
    async fn observe_bucket(
        &self,
        connection_id: &str,
        attribute: &str,
        now: Micros,
    ) -> Result<Observed, StoreError> {
        let probed = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id))
            .update_expression("SET #tat = if_not_exists(#tat, :now)")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_names("#tat", attribute)
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match probed {
            Ok(output) => Ok(Observed::Tat(
                output.attributes().and_then(|item| tat_of(item, attribute)),
            )),
            Err(err) if condition_failed(&err) => Ok(Observed::Gone),
            Err(err) => Err(unavailable("UpdateItem (rate limit)", err)),
        }
    }

    /// Releases a name if (and only if) `connection_id` still holds it.
    async fn release_name(&self, user_name: &str, connection_id: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.tables.names)
            .key(NAME_KEY, s(&name_key(user_name)))
            .condition_expression("connectionId = :me")
            .expression_attribute_values(":me", s(connection_id))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Ok(()),
            Err(err) => Err(unavailable("DeleteItem (name)", err)),
        }
    }
}

impl ConnectionStore for DynamoStore {
    async fn add(&self, connection: Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .item(CONNECTION_ID, s(&connection.connection_id))
            .item(CONNECTED_AT, n(connection.connected_at))
            .item(TTL, n(connection.expires_at()))
            .send()
            .await
            .map_err(|e| unavailable("PutItem (connection)", e))?;
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem (connection)", e))?;
        let now = now_secs();
        Ok(output
            .item()
            .filter(|item| !is_expired(item, now))
            .and_then(connection_from_item))
    }

    async fn register(
        &self,
        connection_id: &str,
        claim: crate::store::Claim<'_>,
    ) -> Result<Registration, StoreError> {
        let user_name = claim.user_name;
        let current = self
            .get(connection_id)
            .await?
            .ok_or_else(|| StoreError::NoSuchConnection(connection_id.to_string()))?;
        let key = name_key(user_name);
        let previous = current.user_name.clone();
        let now = now_secs();

        // Claim the name: free, already ours, or held by a row past its TTL.
        let claimed = self
            .client
            .put_item()
            .table_name(&self.tables.names)
            .item(NAME_KEY, s(&key))
            .item(USER_NAME, s(user_name))
            .item(CONNECTION_ID, s(connection_id))
            .item(TTL, n(current.expires_at()))
            .condition_expression(
                "attribute_not_exists(nameKey) OR connectionId = :me OR #ttl < :now",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":me", s(connection_id))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match claimed {
            Ok(_) => {}
            Err(err) if condition_failed(&err) => return Err(StoreError::NameTaken),
            Err(err) => return Err(unavailable("PutItem (name)", err)),
        }

        // Point the connection at its name, unless it closed meanwhile.
        let pointed = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id))
            .update_expression("SET userName = :name")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_values(":name", s(user_name))
            .send()
            .await;
        match pointed {
            Ok(_) => {}
            Err(err) if condition_failed(&err) => {
                self.release_name(user_name, connection_id).await?;
                return Err(StoreError::NoSuchConnection(connection_id.to_string()));
            }
            Err(err) => return Err(unavailable("UpdateItem (connection)", err)),
        }

        if let Some(old) = previous.as_deref().filter(|old| name_key(old) != key) {
            self.release_name(old, connection_id).await?;
        }
        Ok(Registration {
            previous,
            rooms: Vec::new(),
            taken_over: None,
        })
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem (connection)", e))?;
        let removed = output.attributes().and_then(connection_from_item);
        if let Some(name) = removed.as_ref().and_then(|c| c.user_name.as_deref()) {
            self.release_name(name, connection_id).await?;
        }
        Ok(removed)
    }

    async fn holder(&self, _user_name: &str) -> Result<Option<String>, StoreError> {
        Err(StoreError::Unavailable("not ported".into()))
    }
    async fn join(&self, _c: &str, _u: &str, _r: &str) -> Result<crate::store::Joined, StoreError> {
        Err(StoreError::Unavailable("not ported".into()))
    }
    async fn leave(&self, _c: &str, _r: &str) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("not ported".into()))
    }
    async fn members(&self, _r: &str) -> Result<Vec<webchat_shared_types::User>, StoreError> {
        Err(StoreError::Unavailable("not ported".into()))
    }
    async fn members_among(
        &self,
        _r: &str,
        _i: &[String],
    ) -> Result<Vec<webchat_shared_types::User>, StoreError> {
        Err(StoreError::Unavailable("not ported".into()))
    }

    async fn admit(
        &self,
        connection_id: &str,
        bucket: Bucket,
        limit: RateLimit,
        now: Micros,
    ) -> Result<Admission, StoreError> {
        let attribute = tat_attribute(bucket);
        let interval = limit.interval();
        let latest = limit.latest_allowed_tat(now);
        let mut observed = Observed::Tat(None);
        for _ in 0..ADMIT_ATTEMPTS {
            let refused = match observed {
                Observed::Gone => return Ok(Admission::Gone),
                Observed::Tat(Some(tat)) if tat > latest => {
                    return Ok(Admission::Limited {
                        retry_after: limit.retry_after(tat, now),
                    })
                }
                Observed::Tat(Some(tat)) if tat >= now => {
                    self.update_bucket(
                        connection_id,
                        attribute,
                        "SET #tat = #tat + :interval",
                        "attribute_exists(connectionId) AND #tat BETWEEN :now AND :latest",
                        &[(":interval", interval), (":now", now), (":latest", latest)],
                    )
                    .await?
                }
                Observed::Tat(_) => {
                    self.update_bucket(
                        connection_id,
                        attribute,
                        "SET #tat = :next",
                        "attribute_exists(connectionId) AND (attribute_not_exists(#tat) OR #tat < :now)",
                        &[(":next", now + interval), (":now", now)],
                    )
                    .await?
                }
            };
            observed = match refused {
                None => return Ok(Admission::Allowed),
                Some(Some(item)) => Observed::Tat(tat_of(&item, attribute)),
                Some(None) => self.observe_bucket(connection_id, attribute, now).await?,
            };
        }
        Err(StoreError::Unavailable(format!(
            "the rate limit of connection {connection_id} kept changing during {ADMIT_ATTEMPTS} conditional updates"
        )))
    }
}

#[cfg(feature = "local-endpoints")]
/// A DynamoDB client for a local endpoint (dynalite, DynamoDB Local): static
/// credentials and region, short timeouts so a stopped server fails fast.
pub fn local_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(crate::sdk::local_credentials())
        .timeout_config(crate::sdk::timeouts())
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2))
        .build();
    Client::from_conf(config)
}

impl crate::store::HistoryStore for DynamoStore {
    async fn append(&self, _m: &crate::store::StoredMessage) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("not ported".into()))
    }
    async fn history(
        &self,
        _r: &str,
        _p: &webchat_shared_types::HistoryPage,
        _l: usize,
        _n: i64,
    ) -> Result<crate::store::HistorySlice, StoreError> {
        Err(StoreError::Unavailable("not ported".into()))
    }
}
