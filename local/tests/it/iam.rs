//! IAM as the template deploys it, with the real SDK clients: each function's own key
//! through the checking DynamoDB endpoint to dynalite and to the `@connections` API, the
//! calls its role allows going through and the others answered as AWS answers them; and
//! the template's tables made on dynalite from its own definitions.

use std::sync::Arc;

use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::get_connection::GetConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, TimeToLiveStatus};
use webchat_local::iam::dynamodb::DynamoProxy;
use webchat_local::iam::{Identities, Identity};
use webchat_local::template_tables::{create_tables, Made, TableError};
use webchat_local::{AccessKey, Config};
use webchat_templates::deployment::{resolve, Deployment, KeyElement, LocalValues};
use webchat_testkit::{management_client, Dynalite};

use crate::common;

fn local() -> LocalValues {
    LocalValues {
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        url_suffix: "amazonaws.com".into(),
        stack_name: "webchat".into(),
    }
}

fn deployment() -> Deployment {
    resolve(
        &webchat_templates::templates_dir().join("root.yml"),
        &[],
        &local(),
    )
    .expect("root.yml resolves")
}

fn table_name(d: &Deployment, logical_id: &str) -> String {
    d.tables
        .iter()
        .find(|t| t.logical_id == logical_id)
        .unwrap()
        .table_name
        .clone()
}

/// A DynamoDB client as a function's runtime builds one: its credentials, the endpoint
/// it is given, no retries so a refusal shows as it came.
fn dynamodb_client(endpoint: &str, key: &AccessKey) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(key.credentials())
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    )
}

fn identity<'a>(identities: &'a Identities, function: &str) -> &'a Arc<Identity> {
    identities.for_function(function).unwrap()
}

#[tokio::test]
async fn the_templates_tables_are_made_with_their_keys_and_ttl_and_a_changed_key_is_named() {
    let dynalite = Dynalite::start();
    let client = webchat_backend::local_client(&dynalite.endpoint());
    let d = deployment();
    let made = create_tables(&client, &d.tables).await.unwrap();
    assert_eq!(made.len(), 4);
    assert!(made.iter().all(|(_, m)| *m == Made::Created), "{made:?}");
    // Again: nothing to do.
    let again = create_tables(&client, &d.tables).await.unwrap();
    assert!(
        again.iter().all(|(_, m)| *m == Made::AlreadyThere),
        "{again:?}"
    );

    let members = table_name(&d, "MembersTable");
    let described = client
        .describe_table()
        .table_name(&members)
        .send()
        .await
        .unwrap();
    let keys: Vec<(&str, &KeyType)> = described
        .table()
        .unwrap()
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(
        keys,
        [("room", &KeyType::Hash), ("connectionId", &KeyType::Range)]
    );
    // dynalite has no UpdateTimeToLive (its DescribeTimeToLive always says DISABLED):
    // the tables are still made, and TTL is on wherever the endpoint has it.
    let ttl = client
        .describe_time_to_live()
        .table_name(&members)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    if ttl.time_to_live_status() == Some(&TimeToLiveStatus::Enabled) {
        assert_eq!(ttl.attribute_name(), Some("ttl"));
    }

    // The template's sort key changed under a table that exists: named, not ignored.
    let mut changed = d
        .tables
        .iter()
        .find(|t| t.logical_id == "MessagesTable")
        .unwrap()
        .clone();
    changed.key_schema[1] = KeyElement {
        name: "sentAt".into(),
        key_type: "RANGE".into(),
    };
    changed.attribute_definitions[1].name = "sentAt".into();
    let err = create_tables(&client, &[changed]).await.unwrap_err();
    assert!(matches!(err, TableError::Differs { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("table {} (MessagesTable) exists with the key schema room (HASH, S), messageId (RANGE, S), where the template has room (HASH, S), sentAt (RANGE, S)", table_name(&d, "MessagesTable"))),
        "{text}"
    );
}

#[tokio::test]
async fn a_function_reaches_dynamodb_only_as_its_role_allows() {
    let dynalite = Dynalite::start();
    let d = deployment();
    create_tables(
        &webchat_backend::local_client(&dynalite.endpoint()),
        &d.tables,
    )
    .await
    .unwrap();
    let identities = Arc::new(Identities::from_deployment(&d, &local()));
    let proxy = DynamoProxy::new(Arc::clone(&identities), &dynalite.endpoint())
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let connections = table_name(&d, "ConnectionsTable");
    let names = table_name(&d, "NamesTable");

    // $connect's role may put a connection row: it reaches dynalite.
    let connect = dynamodb_client(
        &proxy.endpoint(),
        &identity(&identities, "ConnectFunction").key,
    );
    connect
        .put_item()
        .table_name(&connections)
        .item("connectionId", AttributeValue::S("c1".into()))
        .send()
        .await
        .expect("PutItem on Connections is granted to $connect");

    // dynalite's own answers come back as they were: a failed condition stays one.
    let err = connect
        .put_item()
        .table_name(&connections)
        .item("connectionId", AttributeValue::S("c1".into()))
        .condition_expression("attribute_not_exists(connectionId)")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(PutItemError::is_conditional_check_failed_exception),
        "{err:?}"
    );

    // ... and nothing else: another action on that table, or the same on another table.
    let err = connect
        .get_item()
        .table_name(&connections)
        .key("connectionId", AttributeValue::S("c1".into()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    let connect_identity = identity(&identities, "ConnectFunction");
    assert_eq!(
        err.message(),
        Some(
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/{}/{} is not authorized to perform: \
                 dynamodb:GetItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/{connections} \
                 because no identity-based policy allows the dynamodb:GetItem action",
                connect_identity.role_name, connect_identity.function_name
            )
            .as_str()
        )
    );
    let err = connect
        .put_item()
        .table_name(&names)
        .item("nameKey", AttributeValue::S("ana".into()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert!(
        err.message().unwrap().contains(&format!("table/{names} ")),
        "{err:?}"
    );
    // The denied put wrote nothing.
    let admin = webchat_backend::local_client(&dynalite.endpoint());
    let scanned = admin.scan().table_name(&names).send().await.unwrap();
    assert_eq!(scanned.count(), 0);

    // $disconnect's role reads the room members and batch-deletes them: a batch names
    // each table it touches.
    let disconnect = dynamodb_client(
        &proxy.endpoint(),
        &identity(&identities, "DisconnectFunction").key,
    );
    let members = table_name(&d, "MembersTable");
    disconnect
        .query()
        .table_name(&members)
        .key_condition_expression("room = :r")
        .expression_attribute_values(":r", AttributeValue::S("lobby".into()))
        .send()
        .await
        .expect("Query on Members is granted to $disconnect");
    let err = disconnect
        .batch_get_item()
        .request_items(
            &members,
            aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .keys(std::collections::HashMap::from([
                    ("room".to_string(), AttributeValue::S("lobby".into())),
                    ("connectionId".to_string(), AttributeValue::S("c1".into())),
                ]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");

    // A key no function holds, or one's secret with another's id, is not let in.
    let stranger = AccessKey::development();
    let err = dynamodb_client(&proxy.endpoint(), &stranger)
        .list_tables()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");
    let mut forged = connect_identity.key.clone();
    forged.secret_access_key = identity(&identities, "MessageFunction")
        .key
        .secret_access_key
        .clone();
    let err = dynamodb_client(&proxy.endpoint(), &forged)
        .put_item()
        .table_name(&connections)
        .item("connectionId", AttributeValue::S("c2".into()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
}

#[tokio::test]
async fn the_sdk_reaches_the_checking_endpoint_under_a_path_too() {
    let dynalite = Dynalite::start();
    let d = deployment();
    create_tables(
        &webchat_backend::local_client(&dynalite.endpoint()),
        &d.tables,
    )
    .await
    .unwrap();
    let identities = Arc::new(Identities::from_deployment(&d, &local()));
    let router = axum::Router::new().nest_service(
        "/dynamodb",
        DynamoProxy::new(Arc::clone(&identities), &dynalite.endpoint()).router(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let connect = dynamodb_client(
        &format!("http://{addr}/dynamodb"),
        &identity(&identities, "ConnectFunction").key,
    );
    connect
        .put_item()
        .table_name(table_name(&d, "ConnectionsTable"))
        .item("connectionId", AttributeValue::S("c1".into()))
        .send()
        .await
        .expect("signed over /dynamodb and checked over the same path");
    server.abort();
}

#[tokio::test]
async fn a_management_call_the_role_does_not_grant_is_refused_as_api_gateway_refuses_it() {
    let d = deployment();
    let identities = Arc::new(Identities::from_deployment(&d, &local()));
    let gateway = common::start(Config {
        stage: d.api.stage.clone(),
        region: local().region,
        management_iam: Some(Arc::clone(&identities)),
        ..Config::default()
    })
    .await;
    let endpoint = gateway.management_endpoint();
    let client = |function: &str| {
        management_client(
            &endpoint,
            identity(&identities, function).key.credentials(),
            "us-east-1",
        )
    };

    // $disconnect's role may POST to connections, not DELETE them.
    let err = client("DisconnectFunction")
        .delete_connection()
        .connection_id("L0SM9cOFvHcCIhw=")
        .send()
        .await
        .unwrap_err();
    let raw = err.raw_response().expect("an HTTP answer");
    assert_eq!(raw.status().as_u16(), 403);
    assert_eq!(
        raw.headers().get("x-amzn-ErrorType"),
        Some("AccessDeniedException")
    );
    let disconnect = identity(&identities, "DisconnectFunction");
    assert_eq!(
        err.message(),
        Some(
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/{}/{} is not authorized to perform: \
                 execute-api:ManageConnections on resource: {}/DELETE/@connections/L0SM9cOFvHcCIhw=",
                disconnect.role_name,
                disconnect.function_name,
                d.api.execute_api_arn(&local())
            )
            .as_str()
        )
    );
    // Its POST passes the check and meets the connection's absence (410), as on AWS.
    let err = client("DisconnectFunction")
        .post_to_connection()
        .connection_id("L0SM9cOFvHcCIhw=")
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new("{}"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(PostToConnectionError::is_gone_exception),
        "{err:?}"
    );
    // register's role may DELETE; $connect's may do nothing there.
    let err = client("RegisterFunction")
        .delete_connection()
        .connection_id("L0SM9cOFvHcCIhw=")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(DeleteConnectionError::is_gone_exception),
        "{err:?}"
    );
    let err = client("ConnectFunction")
        .get_connection()
        .connection_id("L0SM9cOFvHcCIhw=")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    // The gateway's own key is the operator's (the AWS CLI's, as an administrator's on
    // AWS): not a function's, and not held to a function's role.
    let err = management_client(
        &endpoint,
        AccessKey::development().credentials(),
        "us-east-1",
    )
    .get_connection()
    .connection_id("L0SM9cOFvHcCIhw=")
    .send()
    .await
    .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(GetConnectionError::is_gone_exception),
        "{err:?}"
    );
    gateway.stop().await;
}
