//! The template's tables made on a DynamoDB endpoint from the template's own definitions
//! (keys, indexes, TTL), so the functions meet the schema that will be deployed. Making
//! them again is a no-op when they exist with the same keys; a table that exists with
//! other keys is an error naming it and the difference, since code written against one
//! schema would misbehave on the other.

use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use webchat_templates::deployment::{IndexSpec, KeyElement, TableSpec};

/// Why a table could not be made as the template defines it.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The endpoint refused or failed a call.
    #[error("table {table}: {operation} failed: {message}")]
    Call {
        /// The table's name.
        table: String,
        /// The DynamoDB operation.
        operation: &'static str,
        /// What the endpoint said.
        message: String,
    },
    /// The table exists, made otherwise.
    #[error(
        "table {table} ({logical_id}) exists with {difference}; delete it, or use a fresh \
         endpoint, so that it is made as the template defines it"
    )]
    Differs {
        /// The table's name.
        table: String,
        /// Its logical id in the template.
        logical_id: String,
        /// What differs, the existing table's against the template's.
        difference: String,
    },
}

/// What happened to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// It did not exist and was made.
    Created,
    /// It existed with the template's keys.
    AlreadyThere,
}

/// Makes every table (in order), each then ACTIVE with its TTL on.
pub async fn create_tables(
    client: &Client,
    tables: &[TableSpec],
) -> Result<Vec<(String, Made)>, TableError> {
    let mut out = Vec::new();
    for table in tables {
        out.push((table.table_name.clone(), create_table(client, table).await?));
    }
    Ok(out)
}

/// Makes one table as the template defines it, or checks the one there has its keys.
pub async fn create_table(client: &Client, spec: &TableSpec) -> Result<Made, TableError> {
    let call = |operation: &'static str, message: String| TableError::Call {
        table: spec.table_name.clone(),
        operation,
        message,
    };
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| call("CreateTable", e.to_string());
    let provisioned = spec.billing_mode != "PAY_PER_REQUEST";
    // The template's capacity is not read: locally it only has to be accepted.
    let throughput = || {
        ProvisionedThroughput::builder()
            .read_capacity_units(5)
            .write_capacity_units(5)
            .build()
    };
    let mut request = client
        .create_table()
        .table_name(&spec.table_name)
        .billing_mode(if provisioned {
            BillingMode::Provisioned
        } else {
            BillingMode::PayPerRequest
        });
    if provisioned {
        request = request.provisioned_throughput(throughput().map_err(invalid)?);
    }
    for attribute in &spec.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&attribute.name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()
                .map_err(invalid)?,
        );
    }
    request = request.set_key_schema(Some(key_schema(&spec.key_schema).map_err(invalid)?));
    for index in &spec.global_secondary_indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .set_key_schema(Some(key_schema(&index.key_schema).map_err(invalid)?))
            .projection(projection(index));
        if provisioned {
            gsi = gsi.provisioned_throughput(throughput().map_err(invalid)?);
        }
        request = request.global_secondary_indexes(gsi.build().map_err(invalid)?);
    }
    for index in &spec.local_secondary_indexes {
        request = request.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.key_schema).map_err(invalid)?))
                .projection(projection(index))
                .build()
                .map_err(invalid)?,
        );
    }
    let made = match request.send().await {
        Ok(_) => Made::Created,
        Err(err) if err.code() == Some("ResourceInUseException") => {
            let existing = describe(client, spec).await?;
            if let Some(difference) = difference(&existing, spec) {
                return Err(TableError::Differs {
                    table: spec.table_name.clone(),
                    logical_id: spec.logical_id.clone(),
                    difference,
                });
            }
            Made::AlreadyThere
        }
        Err(err) => return Err(call("CreateTable", DisplayErrorContext(err).to_string())),
    };
    wait_until_active(client, spec).await?;
    if let Some(attribute) = &spec.ttl_attribute {
        enable_ttl(client, spec, attribute).await?;
    }
    Ok(made)
}

fn key_schema(
    keys: &[KeyElement],
) -> Result<Vec<KeySchemaElement>, aws_sdk_dynamodb::error::BuildError> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
        })
        .collect()
}

fn projection(index: &IndexSpec) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(index.projection_type.as_str()))
        .set_non_key_attributes(
            (!index.non_key_attributes.is_empty()).then(|| index.non_key_attributes.clone()),
        )
        .build()
}

async fn describe(client: &Client, spec: &TableSpec) -> Result<TableDescription, TableError> {
    client
        .describe_table()
        .table_name(&spec.table_name)
        .send()
        .await
        .map_err(|e| TableError::Call {
            table: spec.table_name.clone(),
            operation: "DescribeTable",
            message: DisplayErrorContext(e).to_string(),
        })?
        .table
        .ok_or_else(|| TableError::Call {
            table: spec.table_name.clone(),
            operation: "DescribeTable",
            message: "no table in the answer".into(),
        })
}

/// `room (HASH, S), connectionId (RANGE, S)`.
fn keys_text<'a>(
    keys: impl Iterator<Item = (&'a str, &'a str)>,
    type_of: impl Fn(&str) -> String,
) -> String {
    keys.map(|(name, key_type)| format!("{name} ({key_type}, {})", type_of(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What about the existing table differs from the template's: its key schema (names,
/// key types and attribute types) and its indexes' names and keys.
fn difference(existing: &TableDescription, spec: &TableSpec) -> Option<String> {
    let existing_type = |name: &str| {
        existing
            .attribute_definitions()
            .iter()
            .find(|a| a.attribute_name() == name)
            .map_or_else(|| "?".into(), |a| a.attribute_type().as_str().to_string())
    };
    let template_type = |name: &str| {
        spec.attribute_definitions
            .iter()
            .find(|a| a.name == name)
            .map_or_else(|| "?".into(), |a| a.attribute_type.clone())
    };
    let existing_keys = |keys: &[KeySchemaElement]| {
        keys_text(
            keys.iter()
                .map(|k| (k.attribute_name(), k.key_type().as_str())),
            existing_type,
        )
    };
    let template_keys = |keys: &[KeyElement]| {
        keys_text(
            keys.iter().map(|k| (k.name.as_str(), k.key_type.as_str())),
            template_type,
        )
    };
    let mut differences = Vec::new();
    let (have, want) = (
        existing_keys(existing.key_schema()),
        template_keys(&spec.key_schema),
    );
    if have != want {
        differences.push(format!(
            "the key schema {have}, where the template has {want}"
        ));
    }
    let mut have: Vec<String> = existing
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            format!(
                "{} [{}]",
                i.index_name().unwrap_or_default(),
                existing_keys(i.key_schema())
            )
        })
        .collect();
    let mut want: Vec<String> = spec
        .global_secondary_indexes
        .iter()
        .map(|i| format!("{} [{}]", i.name, template_keys(&i.key_schema)))
        .collect();
    have.sort();
    want.sort();
    if have != want {
        let list = |l: &[String]| {
            if l.is_empty() {
                "none".to_string()
            } else {
                l.join("; ")
            }
        };
        differences.push(format!(
            "global secondary indexes {}, where the template has {}",
            list(&have),
            list(&want)
        ));
    }
    (!differences.is_empty()).then(|| differences.join(", and "))
}

async fn wait_until_active(client: &Client, spec: &TableSpec) -> Result<(), TableError> {
    for _ in 0..200 {
        if describe(client, spec).await?.table_status() == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(TableError::Call {
        table: spec.table_name.clone(),
        operation: "DescribeTable",
        message: "not ACTIVE after 10 s".into(),
    })
}

/// Turns TTL on unless it already is on this attribute. An endpoint without TTL (some
/// emulators) is only logged: the backend treats expired rows as gone on read anyway.
async fn enable_ttl(client: &Client, spec: &TableSpec, attribute: &str) -> Result<(), TableError> {
    let table = &spec.table_name;
    match client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
    {
        Ok(described) => {
            if let Some(d) = described.time_to_live_description() {
                let on = matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                );
                match d.attribute_name() {
                    Some(current) if on && current == attribute => return Ok(()),
                    Some(current) if on => {
                        return Err(TableError::Differs {
                            table: table.clone(),
                            logical_id: spec.logical_id.clone(),
                            difference: format!(
                                "TTL on {current}, where the template has it on {attribute}"
                            ),
                        })
                    }
                    _ => {}
                }
            }
        }
        Err(err) => {
            tracing::warn!(table, error = %DisplayErrorContext(err), "TTL not read; rows will not expire in the background");
            return Ok(());
        }
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(|e| TableError::Call {
            table: table.clone(),
            operation: "UpdateTimeToLive",
            message: e.to_string(),
        })?;
    if let Err(err) = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        tracing::warn!(table, error = %DisplayErrorContext(err), "TTL not enabled; rows will not expire in the background");
    }
    Ok(())
}
