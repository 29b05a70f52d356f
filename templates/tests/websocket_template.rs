//! Checks of templates/websocket.yml: routes, wiring, functions and least privilege.
//!
//! Each check is a function that lists the problems it finds, so that the last test can
//! prove the checks fail: it breaks copies of the template in known ways and expects each
//! check to notice.

mod recorded;

use std::collections::{BTreeMap, BTreeSet};

use recorded::{recorded, Call, Record};
use serde_json::{json, Value};
use webchat_shared_types::Route;
use webchat_templates::{render, websocket_template, Template, WebsocketTemplate};

fn api() -> WebsocketTemplate {
    websocket_template().expect("templates/websocket.yml loads and resolves")
}

/// The ARNs ManageConnections may be granted on for calls with `method` (`POST`, `GET`, `DELETE`)
/// on `@connections` of this API's stage, the stage named by parameter first, by the stage
/// resource second.
fn manage_connections_arns(api: &WebsocketTemplate, method: &str) -> [String; 2] {
    let prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}";
    let api_id = api.api_logical_id();
    ["StageName", api.stage_logical_id()]
        .map(|stage| format!("{prefix}:${{{api_id}}}/${{{stage}}}/{method}/@connections/*"))
}

/// The recorded calls of the route with this key.
fn calls<'a>(record: &'a Record, key: &str) -> impl Iterator<Item = &'a Call> {
    Route::from_key(key)
        .and_then(|route| record.get(&route))
        .into_iter()
        .flatten()
}

/// What a recorded call needs granted, as (action, rendered resource): a table's ARN as
/// `templates/dynamodb.yml` exports it, or `@connections` of this API's stage.
fn needed_grant(api: &WebsocketTemplate, call: &Call) -> (String, String) {
    let resource = match call.action.split_once(':') {
        Some(("dynamodb", _)) => format!("import(${{TableStackName}}:{}Arn)", call.on),
        _ => manage_connections_arns(api, &call.on)[0].clone(),
    };
    (call.action.clone(), resource)
}

// ---------------------------------------------------------------------------------------
// Checks

fn route_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    let wiring = api.routes();
    for route in Route::ALL {
        match wiring.iter().filter(|w| w.key == route.key()).count() {
            1 => {}
            n => problems.push(format!("route {route} appears {n} times")),
        }
    }
    for w in &wiring {
        if Route::from_key(&w.key).is_none() {
            problems.push(format!("route {} is not in the protocol", w.key));
        }
        if w.integration_type != "AWS_PROXY" {
            problems.push(format!(
                "route {} is integrated as {:?}, not AWS_PROXY",
                w.key, w.integration_type
            ));
        }
    }
    let functions: BTreeSet<&str> = wiring
        .iter()
        .map(|w| w.function_logical_id.as_str())
        .collect();
    if functions.len() != wiring.len() {
        problems.push("routes share functions; each route has its own".into());
    }
    problems
}

fn two_way_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    for w in api.routes() {
        let expected = Route::from_key(&w.key).is_some_and(Route::replies);
        let responses: Vec<&Value> = w
            .route_responses
            .iter()
            .map(|id| &api.template().resource(id).unwrap()["Properties"])
            .collect();
        if expected {
            if responses.len() != 1 {
                problems.push(format!(
                    "two-way route {} has {} route responses",
                    w.key,
                    responses.len()
                ));
            }
            if w.response_selection_expression.as_deref() != Some("$default") {
                problems.push(format!(
                    "two-way route {} has RouteResponseSelectionExpression {:?}",
                    w.key, w.response_selection_expression
                ));
            }
            for r in responses {
                if r["RouteResponseKey"] != "$default" {
                    problems.push(format!("route response of {} is not $default", w.key));
                }
            }
        } else if !responses.is_empty() || w.response_selection_expression.is_some() {
            problems.push(format!("one-way route {} has a route response", w.key));
        }
    }
    problems
}

fn wildcard_problems(api: &WebsocketTemplate) -> Vec<String> {
    let t = api.template();
    let mut problems = t.wildcard_grants();
    problems.extend(t.opaque_policies());
    problems
}

/// ManageConnections only for routes whose function was recorded calling the management
/// API, and only on `@connections` with the methods it called (POST pushes, GET asks
/// whether a connection is open, DELETE closes one).
fn manage_connections_problems(api: &WebsocketTemplate, record: &Record) -> Vec<String> {
    let mut problems = Vec::new();
    for w in api.routes() {
        let methods: BTreeSet<&str> = calls(record, &w.key)
            .filter(|c| c.action == "execute-api:ManageConnections")
            .map(|c| c.on.as_str())
            .collect();
        let allowed: Vec<String> = methods
            .iter()
            .flat_map(|m| manage_connections_arns(api, m))
            .collect();
        let statements = api.function_statements(&w.function_logical_id);
        let grants: Vec<_> = statements
            .iter()
            .filter(|s| {
                s.is_allow()
                    && s.actions
                        .iter()
                        .any(|a| a.to_ascii_lowercase().starts_with("execute-api:"))
            })
            .collect();
        for s in &grants {
            if s.actions.len() != 1 || !s.has_action("execute-api:ManageConnections") {
                problems.push(format!(
                    "{}: execute-api actions {:?}",
                    s.location(),
                    s.actions
                ));
            }
            for r in s.rendered_resources() {
                if !allowed.contains(&r) {
                    problems.push(format!("{}: ManageConnections on {r:?}", s.location()));
                }
            }
        }
        match (!methods.is_empty(), grants.is_empty()) {
            (true, true) => problems.push(format!(
                "{} calls @connections ({methods:?}) but may not",
                w.key
            )),
            (false, false) => problems.push(format!("{} never calls @connections but may", w.key)),
            _ => {}
        }
    }
    problems
}

/// Every grant of every function, as (action, rendered resource), against exactly what
/// the function was recorded calling (DynamoDB operations on tables, management API
/// calls), plus writing to its own log group.
fn grant_problems(api: &WebsocketTemplate, record: &Record) -> Vec<String> {
    let mut problems = Vec::new();
    let functions = api.functions();
    for w in api.routes() {
        let f = functions
            .iter()
            .find(|f| f.logical_id == w.function_logical_id)
            .unwrap();
        let Some(log_group) = f_log_group(api, &f.logical_id) else {
            problems.push(format!(
                "{} has no LoggingConfig.LogGroup of its own",
                w.key
            ));
            continue;
        };
        let log_streams = format!(
            "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{{log_group}}}:log-stream:*"
        );
        let mut expected: BTreeSet<(String, String)> = calls(record, &w.key)
            .map(|c| needed_grant(api, c))
            .collect();
        expected.insert(("logs:CreateLogStream".into(), log_streams.clone()));
        expected.insert(("logs:PutLogEvents".into(), log_streams));
        let mut granted = BTreeSet::new();
        for s in api
            .function_statements(&f.logical_id)
            .iter()
            .filter(|s| s.is_allow())
        {
            for a in &s.actions {
                for r in s.rendered_resources() {
                    granted.insert((a.clone(), r));
                }
            }
        }
        for extra in granted.difference(&expected) {
            problems.push(format!(
                "{} may {} on {} but does not need to",
                w.key, extra.0, extra.1
            ));
        }
        for missing in expected.difference(&granted) {
            problems.push(format!("{} needs {} on {}", w.key, missing.0, missing.1));
        }
    }
    problems
}

fn f_log_group(api: &WebsocketTemplate, function: &str) -> Option<String> {
    let props = api.template().function_properties(function);
    let id = webchat_templates::referenced_id(props.get("LoggingConfig")?.get("LogGroup")?)?;
    (api.template().resource_type(&id) == Some("AWS::Logs::LogGroup")).then_some(id)
}

fn role_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    let mut roles = BTreeMap::new();
    for f in api.functions() {
        let Some(role) = f.role_logical_id.clone() else {
            problems.push(format!("{} has no role of this template", f.logical_id));
            continue;
        };
        if let Some(other) = roles.insert(role.clone(), f.logical_id.clone()) {
            problems.push(format!("{} and {other} share role {role}", f.logical_id));
        }
        let r = &api.template().resource(&role).unwrap()["Properties"];
        let trust = &r["AssumeRolePolicyDocument"]["Statement"];
        let expected = json!([{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]);
        if trust != &expected {
            problems.push(format!("{role} is trusted by more than Lambda: {trust}"));
        }
    }
    problems
}

fn permission_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    let permissions = api.lambda_permissions();
    let api_arn = format!(
        "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{}}}/",
        api.api_logical_id()
    );
    for w in api.routes() {
        let mine: Vec<_> = permissions
            .iter()
            .filter(|p| p.function_logical_id.as_deref() == Some(w.function_logical_id.as_str()))
            .collect();
        if mine.is_empty() {
            problems.push(format!(
                "{} ({}) has no Lambda permission",
                w.function_logical_id, w.key
            ));
        }
        for p in mine {
            if p.action != "lambda:InvokeFunction" || p.principal != "apigateway.amazonaws.com" {
                problems.push(format!(
                    "{}: {} for {}",
                    p.logical_id, p.action, p.principal
                ));
            }
            let scoped = [
                format!("{api_arn}${{StageName}}/{}", w.key),
                format!("{api_arn}*/{}", w.key),
                format!("{api_arn}*"),
            ];
            match &p.source_arn {
                Some(arn) if scoped.contains(arn) => {}
                other => problems.push(format!(
                    "{}: SourceArn {other:?} is not scoped to this API",
                    p.logical_id
                )),
            }
        }
    }
    problems
}

fn function_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    let functions = api.functions();
    if functions.len() != Route::ALL.len() {
        problems.push(format!(
            "{} functions, expected one per route",
            functions.len()
        ));
    }
    let root = webchat_templates::templates_dir();
    for f in &functions {
        let id = &f.logical_id;
        if f.runtime.as_deref() != Some("provided.al2023") {
            problems.push(format!("{id}: runtime {:?}", f.runtime));
        }
        if f.architectures != ["arm64"] {
            problems.push(format!("{id}: architectures {:?}", f.architectures));
        }
        if f.handler.as_deref() != Some("bootstrap") {
            problems.push(format!("{id}: handler {:?}", f.handler));
        }
        if f.build_method.as_deref() != Some("rust-cargolambda") {
            problems.push(format!("{id}: build method {:?}", f.build_method));
        }
        if f.binary.as_deref() != Some("webchat-lambda") {
            problems.push(format!("{id}: binary {:?}", f.binary));
        }
        match f.timeout {
            Some(t) if t < 29 => {}
            t => problems.push(format!(
                "{id}: timeout {t:?} s is not under API Gateway's 29 s"
            )),
        }
        // CodeUri is relative to the template: it must be the workspace root.
        let code = f.code_uri.as_deref().map(|c| root.join(c));
        let is_root = code
            .and_then(|c| c.canonicalize().ok())
            .is_some_and(|c| c == webchat_templates::workspace_root().canonicalize().unwrap());
        if !is_root {
            problems.push(format!(
                "{id}: CodeUri {:?} is not the workspace root",
                f.code_uri
            ));
        }
    }
    problems
}

fn environment_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    let endpoint = format!(
        "https://${{{}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/${{StageName}}",
        api.api_logical_id()
    );
    let expected = [
        (
            "CONNECTIONS_TABLE",
            "import(${TableStackName}:ConnectionsTable)".to_string(),
        ),
        (
            "NAMES_TABLE",
            "import(${TableStackName}:NamesTable)".to_string(),
        ),
        (
            "MEMBERS_TABLE",
            "import(${TableStackName}:MembersTable)".to_string(),
        ),
        (
            "MESSAGES_TABLE",
            "import(${TableStackName}:MessagesTable)".to_string(),
        ),
        ("MANAGEMENT_ENDPOINT", endpoint),
        // The per-connection rate limits and the history's retention: parameters, as
        // docs/deploy.md lists them.
        (
            "MESSAGE_RATE_PER_SECOND",
            "${MessageRatePerSecond}".to_string(),
        ),
        ("MESSAGE_BURST", "${MessageBurst}".to_string()),
        (
            "ACTION_RATE_PER_SECOND",
            "${ActionRatePerSecond}".to_string(),
        ),
        ("ACTION_BURST", "${ActionBurst}".to_string()),
        ("HISTORY_DAYS", "${HistoryDays}".to_string()),
    ];
    for f in api.functions() {
        for (name, value) in &expected {
            match f.environment.get(*name) {
                Some(v) if render(v) == *value => {}
                other => problems.push(format!(
                    "{}: {name} is {:?}, expected {value}",
                    f.logical_id,
                    other.map(render)
                )),
            }
        }
    }
    problems
}

/// `$context` variables whose values are free text that may hold a double quote, so that
/// inside a JSON access log format they would break the line's JSON.
const FREE_TEXT_VARIABLES: [&str; 8] = [
    "$context.error.message",
    "$context.error.validationErrorString",
    "$context.integration.error",
    "$context.integrationErrorMessage",
    "$context.authorize.error",
    "$context.authorizer.error",
    "$context.authenticate.error",
    "$context.waf.error",
];
/// The variables API Gateway writes already quoted and escaped: "the quoted value of
/// $context.error.message".
const QUOTED_VARIABLES: [&str; 1] = ["$context.error.messageString"];

/// The access log format with every variable replaced by a value API Gateway could write:
/// quoted variables by a quoted message holding quotes, the others by a plain word.
/// Variables that are free text, or quoted ones put inside quotes, are problems.
fn fill_access_log_format(format: &str) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    let mut filled = String::new();
    let mut rest = format;
    while let Some(at) = rest.find("$context.") {
        filled.push_str(&rest[..at]);
        let name_len = rest[at..]
            .char_indices()
            .skip(1)
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_'))
            .map_or(rest.len() - at, |(i, _)| i);
        let variable = rest[at..at + name_len].trim_end_matches('.');
        let quoted_in_format = filled.ends_with('"');
        if FREE_TEXT_VARIABLES.contains(&variable) {
            problems.push(format!(
                "the access log format logs {variable}, free text that may hold a quote"
            ));
        }
        if QUOTED_VARIABLES.contains(&variable) {
            if quoted_in_format {
                problems.push(format!("{variable} is quoted already; it is put in quotes"));
            }
            filled.push_str(r#""a \"quoted\" message""#);
        } else {
            filled.push_str("word");
        }
        rest = &rest[at + variable.len()..];
    }
    filled.push_str(rest);
    if problems.is_empty() {
        Ok(filled)
    } else {
        Err(problems)
    }
}

/// The stage: deployed on every change (AutoDeploy, no deployment snapshot that goes
/// stale), created after every route and route response, and JSON access logs that stay
/// JSON whatever the values hold.
fn stage_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    let t = api.template();
    let stage = api.stage();
    if stage["AutoDeploy"] != true {
        problems.push("the stage does not deploy changes itself (AutoDeploy)".into());
    }
    if stage.get("DeploymentId").is_some() {
        problems.push("the stage is pinned to a DeploymentId".into());
    }
    for (id, _) in t.resources_of_type("AWS::ApiGatewayV2::Deployment") {
        problems.push(format!(
            "deployment {id}: CloudFormation does not redeploy it when routes change"
        ));
    }
    let depends: BTreeSet<String> = match &t.resource(api.stage_logical_id()).unwrap()["DependsOn"]
    {
        Value::String(id) => BTreeSet::from([id.clone()]),
        Value::Array(ids) => ids
            .iter()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect(),
        _ => BTreeSet::new(),
    };
    for w in api.routes() {
        for id in std::iter::once(&w.route_logical_id).chain(&w.route_responses) {
            if !depends.contains(id) {
                problems.push(format!("the stage does not wait for {id}"));
            }
        }
    }
    let format = stage["AccessLogSettings"]["Format"]
        .as_str()
        .unwrap_or_default();
    match fill_access_log_format(format) {
        Err(found) => problems.extend(found),
        Ok(filled) => match serde_json::from_str::<Value>(&filled) {
            Err(e) => problems.push(format!("the access log is not JSON ({e}): {filled}")),
            Ok(fields) => {
                for field in ["requestId", "connectionId", "routeKey", "status", "error"] {
                    if fields.get(field).is_none() {
                        problems.push(format!("the access log lacks {field}"));
                    }
                }
            }
        },
    }
    problems
}

/// A check: the problems it finds in a template.
type Check = fn(&WebsocketTemplate) -> Vec<String>;

/// All checks, by name.
fn all_checks() -> Vec<(&'static str, Check)> {
    vec![
        ("routes", route_problems),
        ("two_way", two_way_problems),
        ("wildcards", wildcard_problems),
        ("manage_connections", |api| {
            manage_connections_problems(api, recorded())
        }),
        ("grants", |api| grant_problems(api, recorded())),
        ("roles", role_problems),
        ("permissions", permission_problems),
        ("functions", function_problems),
        ("environment", environment_problems),
        ("stage", stage_problems),
    ]
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn the_api_is_a_websocket_api_that_routes_on_request_body_action() {
    let api = api();
    assert_eq!(api.api()["ProtocolType"], "WEBSOCKET");
    assert_eq!(
        api.api()["RouteSelectionExpression"],
        "$request.body.action"
    );
}

#[test]
fn every_protocol_route_is_wired_through_an_aws_proxy_integration_to_its_own_function() {
    let api = api();
    assert_eq!(route_problems(&api), Vec::<String>::new());
    let keys: Vec<String> = api.routes().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, Route::ALL.map(Route::key));
}

#[test]
fn the_template_deploys_exactly_the_routes_of_the_protocol_two_way_where_they_reply() {
    let deployed: BTreeMap<String, bool> = api()
        .routes()
        .into_iter()
        .map(|r| (r.key, r.two_way))
        .collect();
    let protocol: BTreeMap<String, bool> = Route::ALL
        .into_iter()
        .map(|route| (route.key().to_string(), route.replies()))
        .collect();
    assert_eq!(
        deployed, protocol,
        "Route::ALL must match the routes in templates/websocket.yml"
    );
}

#[test]
fn two_way_routes_have_route_responses_and_one_way_routes_do_not() {
    let api = api();
    assert_eq!(two_way_problems(&api), Vec::<String>::new());
    let two_way: Vec<String> = api
        .routes()
        .into_iter()
        .filter(|r| r.two_way)
        .map(|r| r.key)
        .collect();
    let replies: Vec<&str> = Route::ALL
        .into_iter()
        .filter(|r| r.replies())
        .map(Route::key)
        .collect();
    assert_eq!(two_way, replies);
}

#[test]
fn no_iam_statement_grants_a_wildcard_action_or_resource() {
    let api = api();
    assert!(!api.template().iam_statements().is_empty());
    assert_eq!(wildcard_problems(&api), Vec::<String>::new());
}

#[test]
fn manage_connections_is_only_on_the_connections_arns_of_the_methods_each_function_calls() {
    assert_eq!(
        manage_connections_problems(&api(), recorded()),
        Vec::<String>::new()
    );
}

#[test]
fn each_function_may_do_exactly_what_it_calls_on_the_tables_it_uses() {
    for (route, calls) in recorded() {
        println!("{route}: {calls:?}");
    }
    assert_eq!(grant_problems(&api(), recorded()), Vec::<String>::new());
}

#[test]
fn each_function_has_its_own_role_that_only_lambda_can_assume() {
    assert_eq!(role_problems(&api()), Vec::<String>::new());
}

#[test]
fn each_lambda_permission_has_a_source_arn_on_this_api_and_route() {
    assert_eq!(permission_problems(&api()), Vec::<String>::new());
}

#[test]
fn functions_are_arm64_provided_al2023_bootstrap_built_by_cargo_lambda_with_timeouts_under_29_s() {
    assert_eq!(function_problems(&api()), Vec::<String>::new());
}

#[test]
fn functions_read_the_tables_management_endpoint_limits_and_retention_from_the_environment() {
    assert_eq!(environment_problems(&api()), Vec::<String>::new());
}

#[test]
fn the_binary_the_template_builds_is_a_bin_of_the_backend_crate() {
    let manifest =
        std::fs::read_to_string(webchat_templates::workspace_root().join("backend/Cargo.toml"))
            .unwrap();
    assert!(manifest.contains("name = \"webchat-backend\""));
    assert!(
        manifest.contains("name = \"webchat-lambda\""),
        "backend/Cargo.toml has no [[bin]] webchat-lambda"
    );
}

#[test]
fn the_stage_is_prod_with_parameterised_throttling_and_access_logging() {
    let api = api();
    assert_eq!(api.stage_name(), "Prod");
    let stage = api.stage();
    let t = api.template();
    assert_eq!(
        render(&stage["ApiId"]),
        format!("${{{}}}", api.api_logical_id())
    );

    let settings = &stage["DefaultRouteSettings"];
    for (key, parameter) in [
        ("ThrottlingBurstLimit", "ThrottlingBurstLimit"),
        ("ThrottlingRateLimit", "ThrottlingRateLimit"),
    ] {
        assert_eq!(settings[key], json!({ "Ref": parameter }), "{key}");
        assert_eq!(t.parameter(parameter).unwrap()["Type"], "Number");
    }

    let destination = render(&stage["AccessLogSettings"]["DestinationArn"]);
    let group = t
        .resources_of_type("AWS::Logs::LogGroup")
        .map(|(id, _)| id)
        .find(|id| {
            destination.contains(&format!("${{{id}}}"))
                || destination.contains(&format!("${{{id}.Arn}}"))
        })
        .expect("access logs go to a log group of this template");
    assert!(t.resource(group).unwrap()["Properties"]["RetentionInDays"].is_object());
    let format = stage["AccessLogSettings"]["Format"].as_str().unwrap();
    let fields: Value = serde_json::from_str(&fill_access_log_format(format).unwrap())
        .expect("the access log format is JSON");
    for field in ["requestId", "connectionId", "routeKey", "status"] {
        assert!(fields.get(field).is_some(), "access log lacks {field}");
    }
    assert_eq!(
        fields["error"], "a \"quoted\" message",
        "the error message is logged quoted by API Gateway"
    );
}

/// Route changes reach clients without a manual `create-deployment`: the stage deploys
/// every change, and its first deployment holds every route and route response.
#[test]
fn the_stage_deploys_every_change_and_waits_for_every_route_and_route_response() {
    assert_eq!(stage_problems(&api()), Vec::<String>::new());
    assert_eq!(api().stage()["AutoDeploy"], true);
}

#[test]
fn access_log_values_holding_quotes_cannot_break_its_json() {
    let broken = r#"{"requestId":"$context.requestId","error":"$context.error.message"}"#;
    assert!(fill_access_log_format(broken).unwrap_err()[0].contains("$context.error.message,"));
    let quoted_twice = r#"{"error":"$context.error.messageString"}"#;
    assert!(fill_access_log_format(quoted_twice).is_err());
    assert_eq!(
        fill_access_log_format(r#"{"id":"$context.requestId","e":$context.error.messageString}"#)
            .unwrap(),
        r#"{"id":"word","e":"a \"quoted\" message"}"#
    );
    assert!(fill_access_log_format(r#"{"e":"$context.integration.error"}"#).is_err());
}

#[test]
fn outputs_give_the_websocket_url_management_endpoint_and_api_id() {
    let api = api();
    let t = api.template();
    let host = format!(
        "${{{}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}",
        api.api_logical_id()
    );
    let stage = format!("${{{}}}", api.stage_logical_id());
    assert_eq!(
        render(&t.output("WebSocketURL").unwrap()["Value"]),
        format!("wss://{host}/{stage}")
    );
    assert_eq!(
        render(&t.output("ManagementEndpoint").unwrap()["Value"]),
        format!("https://{host}/{stage}")
    );
    assert_eq!(
        render(&t.output("ApiId").unwrap()["Value"]),
        format!("${{{}}}", api.api_logical_id())
    );
}

/// Breaks copies of websocket.yml in known ways; each check must notice its breakage.
#[test]
fn the_checks_catch_a_broken_template() {
    let original = api().template().json().clone();
    type Edit = fn(&mut Value);
    let breakages: Vec<(&str, &str, Edit)> = vec![
        ("routes", "a route renamed", |d| {
            d["Resources"]["PingRoute"]["Properties"]["RouteKey"] = json!("pong")
        }),
        ("routes", "a non-proxy integration", |d| {
            d["Resources"]["ListIntegration"]["Properties"]["IntegrationType"] = json!("AWS")
        }),
        ("two_way", "a two-way route without route response", |d| {
            d["Resources"]["PingRouteResponse"]["Properties"]["RouteId"] =
                json!({"Ref": "ListRoute"})
        }),
        (
            "two_way",
            "a one-way route with a selection expression",
            |d| {
                d["Resources"]["ConnectRoute"]["Properties"]["RouteResponseSelectionExpression"] =
                    json!("$default")
            },
        ),
        ("wildcards", "a wildcard resource", |d| {
            d["Resources"]["ListFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]
                ["Statement"][0]["Resource"] = json!("*")
        }),
        ("wildcards", "a wildcard action", |d| {
            d["Resources"]["ListFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]
                ["Statement"][0]["Action"] = json!(["dynamodb:*"])
        }),
        ("wildcards", "a managed policy", |d| {
            d["Resources"]["PingFunctionRole"]["Properties"]["ManagedPolicyArns"] =
                json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"])
        }),
        (
            "manage_connections",
            "ManageConnections for a function that does not push",
            |d| {
                let statements = &mut d["Resources"]["ListFunctionRole"]["Properties"]["Policies"]
                    [0]["PolicyDocument"]["Statement"];
                statements.as_array_mut().unwrap().push(json!({
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/POST/@connections/*"}
            }));
            },
        ),
        ("manage_connections", "ManageConnections beyond POST", |d| {
            let s = &mut d["Resources"]["MessageFunctionRole"]["Properties"]["Policies"][2]
                ["PolicyDocument"]["Statement"][0];
            s["Resource"] = json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/*/@connections/*"});
        }),
        ("grants", "an action the function does not call", |d| {
            d["Resources"]["ListFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]
                ["Statement"][0]["Action"] = json!(["dynamodb:Scan", "dynamodb:PutItem"])
        }),
        ("grants", "an action the function needs, missing", |d| {
            d["Resources"]["ConnectFunctionRole"]["Properties"]["Policies"]
                .as_array_mut()
                .unwrap()
                .truncate(1)
        }),
        ("roles", "two functions sharing a role", |d| {
            d["Resources"]["PingFunction"]["Properties"]["Role"] =
                json!({"Fn::GetAtt": ["DefaultFunctionRole", "Arn"]})
        }),
        ("permissions", "a permission without SourceArn", |d| {
            d["Resources"]["MessagePermission"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("SourceArn");
        }),
        ("permissions", "a permission for any API", |d| {
            d["Resources"]["ListPermission"]["Properties"]["SourceArn"] = json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*"})
        }),
        ("functions", "x86_64", |d| {
            d["Globals"]["Function"]["Architectures"] = json!(["x86_64"])
        }),
        ("functions", "a 29 s timeout", |d| {
            d["Resources"]["MessageFunction"]["Properties"]["Timeout"] = json!(29)
        }),
        ("functions", "another binary", |d| {
            d["Resources"]["ListFunction"]["Metadata"]["BuildProperties"]["Binary"] = json!("other")
        }),
        ("functions", "the wrong CodeUri", |d| {
            d["Globals"]["Function"]["CodeUri"] = json!(".")
        }),
        ("stage", "no AutoDeploy", |d| {
            d["Resources"]["Stage"]["Properties"]["AutoDeploy"] = json!(false)
        }),
        ("stage", "a stage that does not wait for a route", |d| {
            d["Resources"]["Stage"]["DependsOn"]
                .as_array_mut()
                .unwrap()
                .retain(|id| id != "PingRoute")
        }),
        ("stage", "a deployment snapshot", |d| {
            d["Resources"]["Deployment"] = json!({
                "Type": "AWS::ApiGatewayV2::Deployment",
                "Properties": {"ApiId": {"Ref": "WebSocketApi"}}
            });
            d["Resources"]["Stage"]["Properties"]["DeploymentId"] = json!({"Ref": "Deployment"});
        }),
        ("stage", "the error message unquoted", |d| {
            let format = &mut d["Resources"]["Stage"]["Properties"]["AccessLogSettings"]["Format"];
            *format = json!(format
                .as_str()
                .unwrap()
                .replace("$context.error.messageString", "\"$context.error.message\""));
        }),
        ("environment", "no retention for history", |d| {
            d["Globals"]["Function"]["Environment"]["Variables"]
                .as_object_mut()
                .unwrap()
                .remove("HISTORY_DAYS");
        }),
        ("grants", "history without its table", |d| {
            d["Resources"]["HistoryFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]
                ["Statement"]
                .as_array_mut()
                .unwrap()
                .retain(|s| s["Sid"] != "MessagesTable")
        }),
        (
            "stage",
            "a stage that does not wait for a new route's response",
            |d| {
                d["Resources"]["Stage"]["DependsOn"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|id| id != "HistoryRouteResponse")
            },
        ),
        ("environment", "a missing variable", |d| {
            d["Resources"]["ListFunction"]["Properties"]["Environment"] =
                json!({"Variables": {"NAMES_TABLE": "x"}})
        }),
    ];
    let checks = all_checks();
    for (check, what, edit) in breakages {
        let mut doc = original.clone();
        edit(&mut doc);
        let broken =
            WebsocketTemplate::new(Template::from_json("broken.yml", doc).unwrap()).unwrap();
        let (_, run) = checks.iter().find(|(name, _)| *name == check).unwrap();
        assert!(
            !run(&broken).is_empty(),
            "check {check} did not notice {what}"
        );
    }
    // A backend that calls more than the template grants is caught too.
    type Grow = fn(&mut Record);
    let growths: Vec<(&str, &str, Grow)> = vec![
        ("grants", "list writing a connection", |r| {
            let list = r.entry(Route::List).or_default();
            list.insert(Call::new("dynamodb:PutItem", "ConnectionsTable"));
        }),
        (
            "grants",
            "register scanning every connection, as v1 did",
            |r| {
                let register = r.entry(Route::Register).or_default();
                register.insert(Call::new("dynamodb:Scan", "ConnectionsTable"));
            },
        ),
        ("manage_connections", "ping pushing", |r| {
            let ping = r.entry(Route::Ping).or_default();
            ping.insert(Call::new("execute-api:ManageConnections", "POST"));
        }),
        ("grants", "message closing connections", |r| {
            let message = r.entry(Route::Message).or_default();
            message.insert(Call::new("execute-api:ManageConnections", "DELETE"));
        }),
        ("grants", "join asking whether a connection is open", |r| {
            let join = r.entry(Route::Join).or_default();
            join.insert(Call::new("execute-api:ManageConnections", "GET"));
        }),
        ("grants", "history writing messages", |r| {
            let history = r.entry(Route::History).or_default();
            history.insert(Call::new("dynamodb:PutItem", "MessagesTable"));
        }),
    ];
    let api = api();
    for (check, what, grow) in growths {
        let mut record = recorded().clone();
        grow(&mut record);
        let found = match check {
            "grants" => grant_problems(&api, &record),
            _ => manage_connections_problems(&api, &record),
        };
        assert!(!found.is_empty(), "check {check} did not notice {what}");
    }
    // And the unbroken template passes every check.
    for (name, run) in checks {
        assert_eq!(run(&api), Vec::<String>::new(), "check {name}");
    }
}
