//! Rate limits (GCRA) decided by DynamoDB: each bucket's theoretical arrival time lives
//! on the connection's row and moves only by conditional updates.

use super::items::{number, string, Item, CONNECTION_ID};
use super::{conditional, unavailable, DynamoStore};
use crate::limits::{Admission, Bucket, Micros, RateLimit};
use crate::store::StoreError;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

/// A bucket's theoretical arrival time, microseconds since the epoch (see [`crate::limits`]).
const MESSAGE_TAT: &str = "messageTat";
const ACTION_TAT: &str = "actionTat";
/// Conditional updates one admission may take before giving up. Every bucket only moves
/// forward, so one admission needs at most three (see [`DynamoStore::admit_frame`]).
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

fn tat_of(item: &Item, attribute: &str) -> Option<Micros> {
    item.get(attribute)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

impl DynamoStore {
    /// GCRA with conditional updates only, so DynamoDB decides every race between Lambdas
    /// handling one connection. DynamoDB has no `max`, so `tat = max(tat, now) + interval`
    /// is two updates, each conditioned on the case it is right for:
    ///
    /// - idle (`tat` unset or before `now`): `SET tat = now + interval`;
    /// - within the burst (`now <= tat <= latest`): `SET tat = tat + interval`;
    /// - over (`tat > latest`): nothing is written and the frame is limited.
    ///
    /// It starts with the idle case (a person typing), and a refused update returns the
    /// row (`ALL_OLD`), which says which case holds: one update per frame, also for every
    /// frame of a flood. Every update also requires the row, so a gone connection is never
    /// recreated by its bucket.
    pub(super) async fn admit_frame(
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
        Err(unavailable(
            "UpdateItem (rate limit)",
            format!(
                "the rate limit of connection {connection_id} kept changing during {ADMIT_ATTEMPTS} conditional updates"
            ),
        ))
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
    ) -> Result<Option<Option<Item>>, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, string(connection_id))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#tat", attribute)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, number(*value));
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
            .key(CONNECTION_ID, string(connection_id))
            .update_expression("SET #tat = if_not_exists(#tat, :now)")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_names("#tat", attribute)
            .expression_attribute_values(":now", number(now))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        Ok(match conditional("UpdateItem (rate limit)", probed)? {
            Some(output) => {
                Observed::Tat(output.attributes().and_then(|item| tat_of(item, attribute)))
            }
            None => Observed::Gone,
        })
    }
}
