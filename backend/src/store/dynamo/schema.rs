//! Table creation, for the local gateway and tests (on AWS the `dynamodb.yml` stack owns
//! the tables).

use super::items::{CONNECTION_ID, MESSAGE_ID, NAME_KEY, ROOM, TTL};
use super::{unavailable, DynamoStore};
use crate::store::StoreError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use std::time::Duration;

impl DynamoStore {
    /// Creates the four tables when they do not exist, each with TTL on `ttl` (local
    /// gateway and tests; on AWS the `dynamodb.yml` stack owns them).
    pub async fn create_tables_if_missing(&self) -> Result<(), StoreError> {
        for (table, hash, range) in [
            (&self.tables.connections, CONNECTION_ID, None),
            (&self.tables.names, NAME_KEY, None),
            (&self.tables.members, ROOM, Some(CONNECTION_ID)),
            (&self.tables.messages, ROOM, Some(MESSAGE_ID)),
        ] {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            for (key, key_type) in
                std::iter::once((hash, KeyType::Hash)).chain(range.map(|r| (r, KeyType::Range)))
            {
                request = request
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
                            .key_type(key_type)
                            .build()
                            .map_err(|e| unavailable("CreateTable", e))?,
                    );
            }
            match request.send().await {
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
        Err(unavailable(
            "DescribeTable",
            format!("table {table} did not become ACTIVE"),
        ))
    }
}
