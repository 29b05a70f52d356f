//! The stores the rules run on in these tests, set up once: the in-memory store, and the
//! DynamoDB store (a real SDK client against dynalite) with its tables made.

use webchat_backend::{
    local_client, Driver, DynamoStore, Limits, MemoryStore, RecordingGateway, TableNames,
};
use webchat_testkit::Dynalite;

/// Now: DynamoDB rows carry TTLs, which the store checks against the system clock.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_micros()
        .try_into()
        .expect("the clock is before the year 294,000")
}

/// The tables' names, as the deployed template names them without a stack prefix.
pub(crate) fn tables() -> TableNames {
    TableNames {
        connections: "Connections".into(),
        names: "Names".into(),
        members: "Members".into(),
        messages: "Messages".into(),
    }
}

/// The DynamoDB store over `client`, its tables made.
pub(crate) async fn dynamo_store_on(client: aws_sdk_dynamodb::Client) -> DynamoStore {
    let store = DynamoStore::new(client, tables());
    store
        .create_tables_if_missing()
        .await
        .expect("tables are created");
    store
}

/// The DynamoDB store on `dynalite`, its tables made.
pub(crate) async fn dynamo_store(dynalite: &Dynalite) -> DynamoStore {
    dynamo_store_on(local_client(&dynalite.endpoint())).await
}

/// The rules over the in-memory store with `limits`, a gateway that records pushes, and
/// the clock at now.
pub(crate) fn memory_driver(limits: Limits) -> Driver<MemoryStore> {
    Driver::over(MemoryStore::new(), RecordingGateway::new())
        .with_limits(limits)
        .with_clock_at(now_micros())
}

/// [`memory_driver`] over the DynamoDB store on a dynalite of its own, kept as long as
/// the driver.
pub(crate) async fn dynamo_driver(limits: Limits) -> Driver<DynamoStore> {
    let dynalite = Dynalite::start();
    let store = dynamo_store(&dynalite).await;
    Driver::over(store, RecordingGateway::new())
        .with_limits(limits)
        .with_clock_at(now_micros())
        .keeping(dynalite)
}

/// Runs each rule named on both stores: `memory_store::rule` with the calling module's
/// `memory()`, `dynamo_store::rule` with its `dynamo()`.
macro_rules! on_every_store {
    ($($rule:ident),* $(,)?) => {
        mod memory_store {
            $(#[tokio::test]
            async fn $rule() {
                super::$rule(super::memory()).await
            })*
        }
        mod dynamo_store {
            $(#[tokio::test]
            async fn $rule() {
                super::$rule(super::dynamo().await).await
            })*
        }
    };
}
pub(crate) use on_every_store;
