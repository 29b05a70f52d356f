//! The templates resolved as `webchat-local --template` runs them: what a deployment of
//! `root.yml`, or of `websocket.yml` on its own, is with local values.

use std::path::{Path, PathBuf};

use webchat_templates::deployment::{
    parse_parameter_overrides, resolve, Deployment, EventSourceSpec, KeyElement, LocalValues,
    RedrivePolicy,
};
use webchat_templates::{templates_dir, TemplateError};

fn local() -> LocalValues {
    LocalValues {
        region: "eu-west-3".into(),
        account_id: "210987654321".into(),
        url_suffix: "amazonaws.com".into(),
        stack_name: "chat".into(),
    }
}

fn deploy(file: &str, overrides: &[&str]) -> Result<Deployment, TemplateError> {
    let overrides: Vec<String> = overrides.iter().map(ToString::to_string).collect();
    resolve(
        &templates_dir().join(file),
        &parse_parameter_overrides(&overrides)?,
        &local(),
    )
}

fn key(name: &str, key_type: &str) -> KeyElement {
    KeyElement {
        name: name.into(),
        key_type: key_type.into(),
    }
}

/// The routes, functions, tables and grants every deployment of the chat has.
fn assert_the_chat_as_deployed(d: &Deployment, table_prefix: &str) {
    let local = local();
    let routes: Vec<(&str, &str, bool)> = d
        .api
        .routes
        .iter()
        .map(|r| (r.key.as_str(), r.function.as_str(), r.two_way))
        .collect();
    assert_eq!(
        routes,
        [
            ("$connect", "ConnectFunction", false),
            ("$default", "DefaultFunction", true),
            ("$disconnect", "DisconnectFunction", false),
            ("history", "HistoryFunction", true),
            ("join", "JoinFunction", true),
            ("leave", "LeaveFunction", true),
            ("list", "ListFunction", true),
            ("message", "MessageFunction", true),
            ("ping", "PingFunction", true),
            ("register", "RegisterFunction", true),
        ]
    );
    assert_eq!(d.api.route_selection_expression, "$request.body.action");
    assert_eq!(d.api.stage, "Prod");
    assert_eq!(d.api.api_id.len(), 10);
    assert_eq!(
        d.api.management_endpoint(&local),
        format!(
            "https://{}.execute-api.eu-west-3.amazonaws.com/Prod",
            d.api.api_id
        )
    );

    // Tables: the backend's keys, TTL on `ttl`, named as CloudFormation names them.
    let table = |logical: &str| {
        d.tables
            .iter()
            .find(|t| t.logical_id == logical)
            .unwrap_or_else(|| panic!("no {logical}: {:#?}", d.tables))
    };
    assert_eq!(d.tables.len(), 4);
    for (logical, keys) in [
        ("ConnectionsTable", vec![key("connectionId", "HASH")]),
        ("NamesTable", vec![key("nameKey", "HASH")]),
        (
            "MembersTable",
            vec![key("room", "HASH"), key("connectionId", "RANGE")],
        ),
        (
            "MessagesTable",
            vec![key("room", "HASH"), key("messageId", "RANGE")],
        ),
    ] {
        let t = table(logical);
        assert_eq!(t.key_schema, keys, "{logical}");
        assert_eq!(t.ttl_attribute.as_deref(), Some("ttl"), "{logical}");
        assert_eq!(t.billing_mode, "PAY_PER_REQUEST");
        assert!(
            t.table_name
                .starts_with(&format!("{table_prefix}-{logical}-")),
            "{}",
            t.table_name
        );
        assert_eq!(
            t.arn,
            format!(
                "arn:aws:dynamodb:eu-west-3:210987654321:table/{}",
                t.table_name
            )
        );
    }

    // Functions: Globals merged, their own values, every variable resolved.
    // Ten route functions and the fan-out function the fan-out queue feeds.
    assert_eq!(d.functions.len(), 11);
    for f in d.functions.values() {
        assert_eq!(f.binary, "webchat-lambda", "{}", f.logical_id);
        let limits = if f.logical_id == "FanoutFunction" {
            (20, 1769)
        } else {
            (10, 128)
        };
        assert_eq!((f.timeout_seconds, f.memory_mb), limits, "{}", f.logical_id);
        assert_eq!(
            (f.handler.as_str(), f.runtime.as_str()),
            ("bootstrap", "provided.al2023")
        );
        let env = &f.environment;
        assert_eq!(
            env["CONNECTIONS_TABLE"],
            table("ConnectionsTable").table_name
        );
        assert_eq!(env["NAMES_TABLE"], table("NamesTable").table_name);
        assert_eq!(env["MEMBERS_TABLE"], table("MembersTable").table_name);
        assert_eq!(env["MESSAGES_TABLE"], table("MessagesTable").table_name);
        assert_eq!(
            env["MANAGEMENT_ENDPOINT"],
            d.api.management_endpoint(&local)
        );
        assert_eq!(env["RUST_LOG"], "info");
        assert_eq!(env["HISTORY_DAYS"], "7");
        assert_eq!(env["MESSAGE_RATE_PER_SECOND"], "10");
        assert!(f.role_arn.ends_with(&format!(":role/{}", f.role_name)));
        assert!(f.opaque_policies.is_empty(), "{:?}", f.opaque_policies);
        assert!(!env.values().any(|v| v.contains("${")), "{env:?}");
    }
    assert!(d.functions["ConnectFunction"]
        .function_name
        .contains("-ConnectFunction-"));
    // The fan-out queue: the message function sends to it, the fan-out function is fed by it.
    let queue = d
        .queues
        .iter()
        .find(|q| q.logical_id == "FanoutQueue")
        .expect("the fan-out queue");
    assert_eq!(
        d.functions["MessageFunction"].environment["FANOUT_QUEUE_URL"],
        queue.url
    );
    assert_eq!(d.functions["FanoutFunction"].queue_events, ["FanoutQueue"]);
    // What the event source mapping and the queue's redrive need.
    let dead_letters = d
        .queue("FanoutDeadLetterQueue")
        .expect("the dead-letter queue");
    assert_eq!(queue.visibility_timeout_seconds, 120);
    assert_eq!(queue.message_retention_seconds, 3600);
    assert_eq!(
        queue.redrive,
        Some(RedrivePolicy {
            dead_letter_target_arn: dead_letters.arn.clone(),
            max_receive_count: 3,
        })
    );
    assert_eq!(dead_letters.redrive, None);
    assert_eq!(dead_letters.visibility_timeout_seconds, 30, "SQS's default");
    assert_eq!(dead_letters.message_retention_seconds, 1_209_600);
    assert_eq!(
        d.event_sources,
        [EventSourceSpec {
            logical_id: "FanoutEventSource".into(),
            function: "FanoutFunction".into(),
            queue: "FanoutQueue".into(),
            batch_size: 10,
            maximum_concurrency: Some(100),
            report_batch_item_failures: true,
            enabled: true,
        }]
    );

    // Grants, resources resolved to the tables' and the API's ARNs.
    let grants = |function: &str, action: &str| -> Vec<String> {
        d.functions[function]
            .statements
            .iter()
            .filter(|s| s.is_allow() && s.has_action(action))
            .flat_map(|s| s.resources.iter().map(|r| r.as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(
        grants("ConnectFunction", "dynamodb:PutItem"),
        [table("ConnectionsTable").arn.clone()]
    );
    assert!(grants("ConnectFunction", "dynamodb:DeleteItem").is_empty());
    assert!(grants("ConnectFunction", "execute-api:ManageConnections").is_empty());
    assert_eq!(
        grants("DisconnectFunction", "execute-api:ManageConnections"),
        [format!(
            "{}/POST/@connections/*",
            d.api.execute_api_arn(&local)
        )]
    );
    assert!(grants("MessageFunction", "dynamodb:PutItem").contains(&table("MessagesTable").arn));
}

#[test]
fn the_root_stack_resolves_to_its_routes_functions_tables_and_grants() {
    let d = deploy("root.yml", &[]).unwrap();
    // Nested stacks are named `{parent}-{LogicalId}-{SUFFIX}`, and so their tables.
    let tables_stack = d.tables[0]
        .table_name
        .split("-ConnectionsTable-")
        .next()
        .unwrap();
    assert!(tables_stack.starts_with("chat-Tables-"), "{tables_stack}");
    assert_the_chat_as_deployed(&d, tables_stack);
    assert_eq!(d.api.authorizer, None);
    assert!(!d.functions.contains_key("AuthorizerFunction"));
    // The same run resolves the same names.
    assert_eq!(deploy("root.yml", &[]).unwrap(), d);
}

#[test]
fn the_websocket_stack_alone_imports_from_the_table_stack_beside_it() {
    // websocket.yml imports `${TableStackName}:…`; dynamodb.yml beside it exports
    // `${AWS::StackName}:…`, so it is deployed as the stack TableStackName names.
    let d = deploy("websocket.yml", &[]).unwrap();
    assert_the_chat_as_deployed(&d, "webchat-dynamodb");
    let d = deploy("websocket.yml", &["TableStackName=tables"]).unwrap();
    assert_the_chat_as_deployed(&d, "tables");
}

#[test]
fn overrides_reach_the_nested_stacks_and_turn_the_authorizer_on() {
    let d = deploy(
        "root.yml",
        &[
            "Auth=oidc Issuer=https://issuer.example/realm Audience=webchat-local",
            "StageName=Dev",
            "LogLevel=debug",
        ],
    )
    .unwrap();
    let authorizer = d.api.authorizer.as_ref().expect("an authorizer");
    assert_eq!(authorizer.function, "AuthorizerFunction");
    assert_eq!(
        authorizer.identity_source,
        ["route.request.querystring.token"]
    );
    let f = &d.functions["AuthorizerFunction"];
    assert_eq!(f.binary, "webchat-authorizer");
    assert_eq!(f.environment["AUTH_ISSUER"], "https://issuer.example/realm");
    assert_eq!(f.environment["AUTH_AUDIENCE"], "webchat-local");
    assert_eq!(d.api.stage, "Dev");
    let register = &d.functions["RegisterFunction"];
    assert_eq!(register.environment["RUST_LOG"], "debug");
    assert!(register.environment["MANAGEMENT_ENDPOINT"].ends_with("/Dev"));
    assert!(register.statements.iter().any(|s| s
        .resources
        .iter()
        .any(|r| r.as_str().unwrap().contains("/Dev/POST/@connections/*"))));
}

#[test]
fn a_bad_parameter_is_a_clear_error() {
    let err = deploy("root.yml", &["Nope=1"]).unwrap_err().to_string();
    assert!(err.starts_with("root.yml: no parameter Nope"), "{err}");
    let err = deploy("root.yml", &["Auth=maybe"]).unwrap_err().to_string();
    assert!(
        err.contains("Auth=maybe is not one of its AllowedValues: none, cognito, oidc"),
        "{err}"
    );
    let err = deploy("root.yml", &["HistoryDays=seven"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("HistoryDays=seven is not a number"), "{err}");
    for spelling in ["Auth:oidc", "--Auth=oidc", "Auth=\"oidc"] {
        let err = deploy("root.yml", &[spelling]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "bad parameter override {:?}",
                spelling.split(' ').next().unwrap()
            )) && err.contains("sam deploy --parameter-overrides"),
            "{err}"
        );
    }
}

/// A copy of the templates in a directory of their own, `edit` applied to websocket.yml.
fn edited_copy(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["root.yml", "dynamodb.yml", "hosting.yml"] {
        std::fs::copy(templates_dir().join(file), dir.join(file)).unwrap();
    }
    let text = std::fs::read_to_string(templates_dir().join("websocket.yml")).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(dir.join("websocket.yml"), edited).unwrap();
    dir
}

#[test]
fn an_unresolvable_reference_names_the_template_resource_and_property() {
    let dir = edited_copy("unresolvable-reference", |t| {
        t.replacen("RUST_LOG: !Ref LogLevel", "RUST_LOG: !Ref LogLevle", 1)
    });
    let err = resolve(&dir.join("root.yml"), &[], &local())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("websocket.yml: ConnectFunction: Environment.Variables.RUST_LOG: Ref LogLevle: websocket.yml has no parameter or resource LogLevle"),
        "{err}"
    );
    assert!(err.starts_with("root.yml: websocket.yml: "), "{err}");
    let err = resolve(&dir.join("websocket.yml"), &[], &local())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "websocket.yml: ConnectFunction: Environment.Variables.RUST_LOG: Ref LogLevle: \
         websocket.yml has no parameter or resource LogLevle"
    );

    let dir = edited_copy("unresolvable-import", |t| {
        t.replacen(
            "${TableStackName}:NamesTable\"",
            "${TableStackName}:NameTable\"",
            1,
        )
    });
    let err = resolve(&dir.join("websocket.yml"), &[], &local())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Environment.Variables.NAMES_TABLE: Fn::ImportValue webchat-dynamodb:NameTable: no stack of this deployment exports it"),
        "{err}"
    );

    let dir = edited_copy("unresolvable-attribute", |t| {
        t.replacen(
            "!GetAtt ConnectFunctionRole.Arn",
            "!GetAtt ConnectFunctionRole.Nope",
            1,
        )
    });
    let err = resolve(&dir.join("websocket.yml"), &[], &local())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ConnectFunction: Role: Fn::GetAtt ConnectFunctionRole.Nope (AWS::IAM::Role) is not resolved locally"),
        "{err}"
    );
}

#[test]
fn queues_feeding_functions_and_the_other_intrinsics_resolve() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("queue-stack");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("stack.yml"),
        r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Names: { Type: CommaDelimitedList, Default: "a,b,c" }
Mappings:
  Sizes: { Fanout: { Memory: 256 } }
Globals:
  Function:
    Runtime: provided.al2023
    Handler: bootstrap
    Environment: { Variables: { SHARED: shared } }
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action }
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref Api, StageName: Prod }
  Fanout:
    Type: AWS::SQS::Queue
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: $default, Target: !Sub "integrations/${Integration}" }
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Front.Arn}/invocations"
  Front:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: front } }
    Properties:
      Environment:
        Variables:
          QUEUE_URL: !Ref Fanout
          QUEUE_ARN: !GetAtt Fanout.Arn
          SECOND: !Select [1, !Ref Names]
          JOINED: !Join ["+", !Split [",", "x,y"]]
          LITERAL: !Sub "${!NotAVariable}-${AWS::AccountId}"
          MEMORY: !FindInMap [Sizes, Fanout, Memory]
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      FunctionName: !Sub "${AWS::StackName}-worker"
      MemorySize: !FindInMap [Sizes, Fanout, Memory]
      Policies:
        - Statement:
            - Effect: Allow
              Action: sqs:ReceiveMessage
              Resource: !GetAtt Fanout.Arn
        - AWSLambdaBasicExecutionRole
      Events:
        Queue: { Type: SQS, Properties: { Queue: !GetAtt Fanout.Arn, BatchSize: 10 } }
  Other:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: { FunctionName: !Ref Other, EventSourceArn: !GetAtt Fanout.Arn }
"#,
    )
    .unwrap();
    let d = resolve(&dir.join("stack.yml"), &[], &local()).unwrap();
    let [queue] = &d.queues[..] else {
        panic!("{:?}", d.queues)
    };
    assert!(queue.queue_name.starts_with("chat-Fanout-"), "{queue:?}");
    assert_eq!(
        queue.url,
        format!(
            "https://sqs.eu-west-3.amazonaws.com/210987654321/{}",
            queue.queue_name
        )
    );
    let env = &d.functions["Front"].environment;
    assert_eq!(env["QUEUE_URL"], queue.url);
    assert_eq!(env["QUEUE_ARN"], queue.arn);
    assert_eq!(env["SECOND"], "b");
    assert_eq!(env["JOINED"], "x+y");
    assert_eq!(env["LITERAL"], "${NotAVariable}-210987654321");
    assert_eq!(env["MEMORY"], "256");
    assert_eq!(env["SHARED"], "shared");
    assert_eq!(d.functions["Front"].timeout_seconds, 3, "Lambda's default");
    let worker = &d.functions["Worker"];
    assert_eq!(worker.function_name, "chat-worker");
    assert_eq!(worker.memory_mb, 256);
    assert_eq!(worker.queue_events, ["Fanout"]);
    assert_eq!(d.functions["Other"].queue_events, ["Fanout"]);
    assert!(d.functions["Front"].queue_events.is_empty());
    assert_eq!(worker.statements.len(), 1);
    assert_eq!(
        worker.statements[0].resources,
        [serde_json::json!(queue.arn)]
    );
    assert_eq!(
        worker.opaque_policies.len(),
        1,
        "{:?}",
        worker.opaque_policies
    );
    assert_eq!(d.api.function_for("$default"), Some("Front"));
}

#[test]
fn event_sources_take_their_batch_concurrency_and_response_types_and_queues_their_redrive() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("event-source-stack");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("stack.yml"),
        r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Concurrency: { Type: Number, Default: 7 }
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: { ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action }
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref Api, StageName: Prod }
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 45
      MaximumMessageSize: 2048
      DelaySeconds: 2
      RedrivePolicy: !Sub '{"deadLetterTargetArn": "${Dead.Arn}", "maxReceiveCount": "5"}'
  Dead:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Events:
        FromJobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 4
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: { MaximumConcurrency: !Ref Concurrency }
  Other:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: { FunctionName: !Ref Other, EventSourceArn: !GetAtt Dead.Arn, Enabled: false }
"#,
    )
    .unwrap();
    let d = resolve(&dir.join("stack.yml"), &[], &local()).unwrap();
    let jobs = d.queue("Jobs").unwrap();
    let dead = d.queue("Dead").unwrap();
    assert_eq!(jobs.visibility_timeout_seconds, 45);
    assert_eq!(jobs.maximum_message_size, 2048);
    assert_eq!(jobs.delay_seconds, 2);
    assert_eq!(jobs.message_retention_seconds, 345_600, "SQS's default");
    assert_eq!(
        jobs.redrive,
        Some(RedrivePolicy {
            dead_letter_target_arn: dead.arn.clone(),
            max_receive_count: 5
        })
    );
    assert_eq!(dead.maximum_message_size, 1_048_576, "SQS's default");
    assert_eq!(
        d.event_sources,
        [
            EventSourceSpec {
                logical_id: "Mapping".into(),
                function: "Other".into(),
                queue: "Dead".into(),
                batch_size: 10,
                maximum_concurrency: None,
                report_batch_item_failures: false,
                enabled: false,
            },
            EventSourceSpec {
                logical_id: "WorkerFromJobs".into(),
                function: "Worker".into(),
                queue: "Jobs".into(),
                batch_size: 4,
                maximum_concurrency: Some(7),
                report_batch_item_failures: true,
                enabled: true,
            },
        ]
    );

    // A redrive count SQS refuses is an error naming the queue.
    let text = std::fs::read_to_string(dir.join("stack.yml")).unwrap();
    std::fs::write(
        dir.join("bad.yml"),
        text.replace(r#""maxReceiveCount": "5""#, r#""maxReceiveCount": "0""#),
    )
    .unwrap();
    let err = resolve(&dir.join("bad.yml"), &[], &local()).unwrap_err();
    assert!(
        err.to_string()
            .contains("Jobs: RedrivePolicy: maxReceiveCount \"0\" is not 1 to 1000"),
        "{err}"
    );
}
