//! Checks of templates/websocket.yml: routes, wiring, functions and least privilege.
//!
//! Each check is a function that lists the problems it finds, so that the last test can
//! prove the checks fail: it breaks copies of the template in known ways and expects each
//! check to notice.

use std::collections::{BTreeMap, BTreeSet};

use crate::recorded::{recorded, Call, Record};
use serde_json::{json, Value};
use webchat_shared_types::Route;
use webchat_templates::{render, websocket_template, Template, WebsocketTemplate};

fn api() -> WebsocketTemplate {
    websocket_template().expect("templates/websocket.yml loads and resolves")
}

/// The ARNs `ManageConnections` may be granted on for calls with `method` (`POST`, `GET`, `DELETE`)
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
        // A queue of this template, by its logical id.
        Some(("sqs", _)) => format!("${{{}.Arn}}", call.on),
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

/// `ManageConnections` only for routes whose function was recorded calling the management
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
    let authorizers = authorizer_functions(api);
    let fed_by_queues = queue_fed_functions(api);
    if functions.len() != Route::ALL.len() + authorizers.len() + fed_by_queues.len() {
        problems.push(format!(
            "{} functions, expected one per route, {} authorizer and {} fed by a queue",
            functions.len(),
            authorizers.len(),
            fed_by_queues.len()
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
        let binary = if authorizers.contains(id) {
            AUTHORIZER_BINARY
        } else {
            "webchat-lambda"
        };
        if f.binary.as_deref() != Some(binary) {
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

/// The functions an event source mapping feeds (the fan-out function).
fn queue_fed_functions(api: &WebsocketTemplate) -> BTreeSet<String> {
    api.template()
        .resources_of_type("AWS::Lambda::EventSourceMapping")
        .filter_map(|(_, mapping)| {
            webchat_templates::referenced_id(&mapping["Properties"]["FunctionName"])
        })
        .collect()
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
        ("PRESENCE_LIMIT", "${PresenceLimit}".to_string()),
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

/// The stage: deployed on every change (`AutoDeploy`, no deployment snapshot that goes
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
    problems.extend(token_logging_problems(stage));
    problems
}

/// What in an access log format could write the request's parameters, the sign-in token
/// in `?token=` among them.
const REQUEST_PARAMETER_VARIABLES: [&str; 5] = [
    "querystring",
    "$request.",
    "$method.request",
    "$input.",
    "$context.requestOverride",
];

/// The sign-in token travels in the query string of `$connect` (docs/auth.md), so nothing
/// the stage logs may hold it: no request parameters in the access log format, and no
/// execution logs with full requests (data trace) on any route.
fn token_logging_problems(stage: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let format = stage["AccessLogSettings"]["Format"]
        .as_str()
        .unwrap_or_default();
    for variable in REQUEST_PARAMETER_VARIABLES {
        if format
            .to_ascii_lowercase()
            .contains(&variable.to_ascii_lowercase())
        {
            problems.push(format!(
                "the access log format logs request parameters ({variable}); the sign-in token is one"
            ));
        }
    }
    let mut settings = vec![(
        "DefaultRouteSettings".to_string(),
        &stage["DefaultRouteSettings"],
    )];
    for (route, s) in stage["RouteSettings"].as_object().into_iter().flatten() {
        settings.push((format!("RouteSettings.{route}"), s));
    }
    for (at, s) in settings {
        if s["DataTraceEnabled"] != false {
            problems.push(format!(
                "{at}: DataTraceEnabled is not false; data trace logs whole requests, tokens included"
            ));
        }
    }
    problems
}

// ---- sign-in -----------------------------------------------------------------------

const AUTHORIZER_BINARY: &str = "webchat-authorizer";
const IDENTITY_SOURCE: &str = "route.request.querystring.token";

/// The parameters of each way to deploy sign-in.
fn auth_modes() -> [(&'static str, Vec<(&'static str, &'static str)>); 3] {
    [
        ("none", vec![("Auth", "none")]),
        ("cognito", vec![("Auth", "cognito")]),
        (
            "oidc",
            vec![
                ("Auth", "oidc"),
                ("Issuer", "https://issuer.example"),
                ("Audience", "client-1"),
                ("OidcAuthorizeUrl", "https://issuer.example/authorize"),
                ("OidcTokenUrl", "https://issuer.example/token"),
            ],
        ),
    ]
}

/// The template as deployed with these parameters.
fn deployed(
    api: &WebsocketTemplate,
    parameters: &[(&str, &str)],
) -> Result<WebsocketTemplate, String> {
    api.template()
        .with_parameters(parameters)
        .and_then(WebsocketTemplate::new)
        .map_err(|e| e.to_string())
}

/// The functions an `AWS::ApiGatewayV2::Authorizer` of the template invokes.
fn authorizer_functions(api: &WebsocketTemplate) -> BTreeSet<String> {
    api.template()
        .resources_of_type("AWS::ApiGatewayV2::Authorizer")
        .filter_map(|(_, a)| {
            let uri = render(&a["Properties"]["AuthorizerUri"]);
            let (_, rest) = uri.split_once("/functions/")?;
            webchat_templates::referenced_id(&Value::from(rest.strip_suffix("/invocations")?))
        })
        .collect()
}

/// Every logical id a value refers to (`Ref`, `Fn::GetAtt`, `${Id}` and `${Id.Attr}` in
/// `Fn::Sub`), pseudo parameters left out.
fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("Ref", Value::String(id)) => {
                        out.insert(id.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(id) = parts.first().and_then(Value::as_str) {
                            out.insert(id.to_string());
                        }
                    }
                    ("Fn::Sub", sub) => {
                        let text = match sub {
                            Value::Array(parts) => parts.first().and_then(Value::as_str),
                            other => other.as_str(),
                        }
                        .unwrap_or_default();
                        let names: BTreeSet<&str> = sub
                            .get(1)
                            .and_then(Value::as_object)
                            .into_iter()
                            .flat_map(|m| m.keys().map(String::as_str))
                            .collect();
                        for part in text.split("${").skip(1) {
                            let Some((name, _)) = part.split_once('}') else {
                                continue;
                            };
                            let id = name.split('.').next().unwrap_or_default();
                            if !names.contains(id) && !id.starts_with('!') {
                                out.insert(id.to_string());
                            }
                        }
                        if let Value::Array(parts) = sub {
                            parts.iter().skip(1).for_each(|p| references(p, out));
                        }
                    }
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// References to what the template does not hold: a resource left out by its condition
/// and still named (an `AuthorizerId` without `Fn::If`, say) breaks the deployment.
fn dangling_references(t: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let known =
        |id: &str| id.starts_with("AWS::") || t.parameter(id).is_some() || t.resource(id).is_some();
    let doc = t.json();
    let sections = [
        ("Resources", &doc["Resources"]),
        ("Outputs", &doc["Outputs"]),
        ("Globals", &doc["Globals"]),
    ];
    for (section, items) in sections {
        for (id, item) in items.as_object().into_iter().flatten() {
            let mut found = BTreeSet::new();
            references(item, &mut found);
            for name in found.into_iter().filter(|n| !known(n)) {
                problems.push(format!(
                    "{section}.{id} refers to {name}, which is not deployed"
                ));
            }
        }
    }
    problems
}

/// With `Auth=none` nothing about sign-in is deployed: no authorizer, no user pool, no
/// role or function for them, `$connect` open as before, no sign-in outputs; whatever
/// sign-in adds is under a condition, so the unconditional template is today's chat.
fn auth_off_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    let off = match deployed(api, &[("Auth", "none")]) {
        Ok(off) => off,
        Err(e) => return vec![e],
    };
    let defaults = match deployed(api, &[]) {
        Ok(d) => d,
        Err(e) => return vec![e],
    };
    if defaults.template().json() != off.template().json() {
        problems.push("Auth does not default to none".into());
    }
    let t = off.template();
    for (id, r) in t.resources() {
        let ty = r["Type"].as_str().unwrap_or_default();
        if ty.starts_with("AWS::Cognito::") || ty == "AWS::ApiGatewayV2::Authorizer" {
            problems.push(format!("with Auth=none, {id} ({ty}) is deployed"));
        }
    }
    for f in off.functions() {
        if f.binary.as_deref() == Some(AUTHORIZER_BINARY) {
            problems.push(format!(
                "with Auth=none, the authorizer {} is deployed",
                f.logical_id
            ));
        }
    }
    for w in off.routes() {
        let props = &t.resource(&w.route_logical_id).unwrap()["Properties"];
        if props["AuthorizationType"] != "NONE" || props.get("AuthorizerId").is_some() {
            problems.push(format!(
                "with Auth=none, route {} has AuthorizationType {} and AuthorizerId {}",
                w.key, props["AuthorizationType"], props["AuthorizerId"]
            ));
        }
    }
    for (name, _) in t.json()["Outputs"].as_object().into_iter().flatten() {
        if name.starts_with("Auth") {
            problems.push(format!("with Auth=none, output {name} exists"));
        }
    }
    problems.extend(dangling_references(t));
    problems
}

/// With sign-in on (Cognito or another issuer): one REQUEST authorizer reading
/// `?token=`, on `$connect` and no other route, running webchat-authorizer, which only
/// API Gateway may invoke, for this API's authorizer, and whose role may write its own
/// logs and nothing else; its environment names the issuer and audience.
fn authorizer_problems(api: &WebsocketTemplate) -> Vec<String> {
    let mut problems = Vec::new();
    for (mode, parameters) in auth_modes().into_iter().filter(|(m, _)| *m != "none") {
        let on = match deployed(api, &parameters) {
            Ok(on) => on,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let mut found = authorizer_problems_in(&on, mode);
        found.extend(dangling_references(on.template()));
        problems.extend(found.into_iter().map(|p| format!("Auth={mode}: {p}")));
    }
    problems
}

fn authorizer_problems_in(api: &WebsocketTemplate, mode: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let t = api.template();
    let authorizers: Vec<(&str, &Value)> = t
        .resources_of_type("AWS::ApiGatewayV2::Authorizer")
        .collect();
    let [(authorizer_id, authorizer)] = authorizers[..] else {
        return vec![format!("{} authorizers, expected one", authorizers.len())];
    };
    let a = &authorizer["Properties"];
    if a["AuthorizerType"] != "REQUEST" {
        problems.push(format!("authorizer type {}", a["AuthorizerType"]));
    }
    if a["IdentitySource"] != json!([IDENTITY_SOURCE]) {
        problems.push(format!(
            "identity source {}, expected [{IDENTITY_SOURCE}]",
            a["IdentitySource"]
        ));
    }
    if render(&a["ApiId"]) != format!("${{{}}}", api.api_logical_id()) {
        problems.push(format!("authorizer of API {}", render(&a["ApiId"])));
    }
    // On $connect only: the other routes run on a connection already authorized.
    for w in api.routes() {
        let props = &t.resource(&w.route_logical_id).unwrap()["Properties"];
        let attached = props.get("AuthorizerId").map(render);
        let expected = (w.key == "$connect").then(|| format!("${{{authorizer_id}}}"));
        let kind = if expected.is_some() { "CUSTOM" } else { "NONE" };
        if attached != expected || props["AuthorizationType"] != kind {
            problems.push(format!(
                "route {}: AuthorizationType {} and AuthorizerId {attached:?}, expected {kind} and {expected:?}",
                w.key, props["AuthorizationType"]
            ));
        }
    }
    let functions = authorizer_functions(api);
    let Some(function) = functions.first() else {
        return [
            problems,
            vec!["the authorizer invokes no function of this template".into()],
        ]
        .concat();
    };
    let Some(f) = api
        .functions()
        .into_iter()
        .find(|f| &f.logical_id == function)
    else {
        return [problems, vec![format!("{function} is not a SAM function")]].concat();
    };
    if f.binary.as_deref() != Some(AUTHORIZER_BINARY) {
        problems.push(format!("{function} runs {:?}", f.binary));
    }
    let routed: BTreeSet<String> = api
        .routes()
        .into_iter()
        .map(|w| w.function_logical_id)
        .collect();
    if routed.contains(function) {
        problems.push(format!("{function} also serves a route"));
    }
    // Only API Gateway, only for this authorizer of this API.
    let source = format!(
        "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{}}}/authorizers/${{{authorizer_id}}}",
        api.api_logical_id()
    );
    let permissions: Vec<_> = api
        .lambda_permissions()
        .into_iter()
        .filter(|p| p.function_logical_id.as_deref() == Some(function))
        .collect();
    if permissions.is_empty() {
        problems.push(format!("{function} has no Lambda permission"));
    }
    for p in permissions {
        if p.action != "lambda:InvokeFunction"
            || p.principal != "apigateway.amazonaws.com"
            || p.source_arn.as_deref() != Some(&source)
        {
            problems.push(format!(
                "{}: {} for {} from {:?}, expected from {source}",
                p.logical_id, p.action, p.principal, p.source_arn
            ));
        }
    }
    // Its own logs, nothing else: no tables, no @connections.
    match f_log_group(api, function) {
        None => problems.push(format!(
            "{function} has no LoggingConfig.LogGroup of its own"
        )),
        Some(group) => {
            let streams = format!(
                "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{{group}}}:log-stream:*"
            );
            let allowed = BTreeSet::from([
                ("logs:CreateLogStream".to_string(), streams.clone()),
                ("logs:PutLogEvents".to_string(), streams),
            ]);
            let mut granted = BTreeSet::new();
            let statements = api.function_statements(function);
            if f.role_logical_id.is_none() {
                problems.push(format!("{function} has no role of this template"));
            }
            for s in &statements {
                if !s.is_allow() {
                    continue;
                }
                for action in &s.actions {
                    for r in s.rendered_resources() {
                        granted.insert((action.clone(), r));
                    }
                }
            }
            for extra in granted.difference(&allowed) {
                problems.push(format!("{function} may {} on {}", extra.0, extra.1));
            }
            for missing in allowed.difference(&granted) {
                problems.push(format!("{function} may not {} on {}", missing.0, missing.1));
            }
        }
    }
    let (issuer, audience) = match mode {
        "cognito" => (
            "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}",
            "${UserPoolClient}",
        ),
        _ => ("${Issuer}", "${Audience}"),
    };
    for (name, expected) in [("AUTH_ISSUER", issuer), ("AUTH_AUDIENCE", audience)] {
        let value = f.environment.get(name).map(render);
        if value.as_deref() != Some(expected) {
            problems.push(format!(
                "{function}: {name} is {value:?}, expected {expected}"
            ));
        }
    }
    let cognito: Vec<&str> = t
        .resources()
        .filter(|(_, r)| {
            r["Type"]
                .as_str()
                .is_some_and(|ty| ty.starts_with("AWS::Cognito::"))
        })
        .map(|(id, _)| id)
        .collect();
    if mode == "cognito" {
        problems.extend(cognito_problems(t));
    } else if !cognito.is_empty() {
        problems.push(format!(
            "Cognito resources {cognito:?} without Auth=cognito"
        ));
    }
    problems
}

/// The user pool's app client is a browser's: no secret, the authorization code flow only
/// (the UI sends a PKCE challenge, and Cognito then requires its verifier), the OpenID
/// scopes, somewhere to return to; and the hosted UI has a domain.
fn cognito_problems(t: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let pools: Vec<_> = t.resources_of_type("AWS::Cognito::UserPool").collect();
    let [(pool, _)] = pools[..] else {
        return vec![format!("{} user pools, expected one", pools.len())];
    };
    let of_pool = |ty: &'static str| -> Vec<&Value> {
        t.resources_of_type(ty)
            .filter(|(_, r)| render(&r["Properties"]["UserPoolId"]) == format!("${{{pool}}}"))
            .map(|(_, r)| &r["Properties"])
            .collect()
    };
    let clients = of_pool("AWS::Cognito::UserPoolClient");
    if clients.len() != 1 {
        problems.push(format!(
            "{} app clients of {pool}, expected one",
            clients.len()
        ));
    }
    for c in clients {
        if c["GenerateSecret"] != false {
            problems.push("the app client has a secret; a browser cannot keep one".into());
        }
        if c["AllowedOAuthFlows"] != json!(["code"]) || c["AllowedOAuthFlowsUserPoolClient"] != true
        {
            problems.push(format!(
                "the app client's flows are {}",
                c["AllowedOAuthFlows"]
            ));
        }
        let scopes: BTreeSet<&str> = c["AllowedOAuthScopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if scopes != BTreeSet::from(["openid", "profile", "email"]) {
            problems.push(format!("the app client's scopes are {scopes:?}"));
        }
        for key in ["CallbackURLs", "LogoutURLs"] {
            if c[key].as_array().is_none_or(Vec::is_empty) && c[key].get("Fn::Split").is_none() {
                problems.push(format!("the app client has no {key}"));
            }
        }
    }
    if of_pool("AWS::Cognito::UserPoolDomain").len() != 1 {
        problems.push(format!("{pool} has no hosted UI domain"));
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
        ("authorizer", authorizer_problems),
        ("auth_off", auth_off_problems),
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

#[test]
fn sign_in_is_a_request_authorizer_on_connect_only_that_reads_the_token_and_may_only_log() {
    assert_eq!(authorizer_problems(&api()), Vec::<String>::new());
}

#[test]
fn with_auth_none_nothing_about_sign_in_is_deployed() {
    assert_eq!(auth_off_problems(&api()), Vec::<String>::new());
}

/// Whichever sign-in is chosen, the chat is the same: the routes of `Route::ALL`, the same
/// grants, roles, permissions and stage.
#[test]
fn every_check_passes_with_each_way_of_signing_in() {
    let api = api();
    for (mode, parameters) in auth_modes() {
        let deployed = deployed(&api, &parameters).unwrap();
        let keys: Vec<String> = deployed.routes().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, Route::ALL.map(Route::key), "Auth={mode}");
        // Those two deploy the template with each mode themselves.
        let per_mode = ["authorizer", "auth_off"];
        for (name, run) in all_checks()
            .into_iter()
            .filter(|(name, _)| !per_mode.contains(name))
        {
            assert_eq!(
                run(&deployed),
                Vec::<String>::new(),
                "Auth={mode}: check {name}"
            );
        }
        let authorizers = authorizer_functions(&deployed);
        assert_eq!(
            authorizers.len(),
            usize::from(mode != "none"),
            "Auth={mode}"
        );
    }
}

#[test]
fn the_sign_in_token_cannot_reach_the_stage_logs() {
    let api = api();
    assert_eq!(token_logging_problems(api.stage()), Vec::<String>::new());
    let format = api.stage()["AccessLogSettings"]["Format"].as_str().unwrap();
    for variable in REQUEST_PARAMETER_VARIABLES {
        assert!(!format
            .to_ascii_lowercase()
            .contains(&variable.to_ascii_lowercase()));
    }
    assert_eq!(
        api.stage()["DefaultRouteSettings"]["DataTraceEnabled"],
        false
    );
}

/// Breaks copies of websocket.yml in known ways; each check must notice its breakage.
#[test]
fn the_checks_catch_a_broken_template() {
    type Grow = fn(&mut Record);
    type Edit = fn(&mut Value);
    let original = api().template().json().clone();
    let breakages: Vec<(&str, &str, Edit)> = vec![
        ("routes", "a route renamed", |d| {
            d["Resources"]["PingRoute"]["Properties"]["RouteKey"] = json!("pong");
        }),
        ("routes", "a non-proxy integration", |d| {
            d["Resources"]["ListIntegration"]["Properties"]["IntegrationType"] = json!("AWS");
        }),
        ("two_way", "a two-way route without route response", |d| {
            d["Resources"]["PingRouteResponse"]["Properties"]["RouteId"] =
                json!({"Ref": "ListRoute"});
        }),
        (
            "two_way",
            "a one-way route with a selection expression",
            |d| {
                d["Resources"]["ConnectRoute"]["Properties"]["RouteResponseSelectionExpression"] =
                    json!("$default");
            },
        ),
        ("wildcards", "a wildcard resource", |d| {
            d["Resources"]["ListFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]
                ["Statement"][0]["Resource"] = json!("*");
        }),
        ("wildcards", "a wildcard action", |d| {
            d["Resources"]["ListFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]
                ["Statement"][0]["Action"] = json!(["dynamodb:*"]);
        }),
        ("wildcards", "a managed policy", |d| {
            d["Resources"]["PingFunctionRole"]["Properties"]["ManagedPolicyArns"] =
                json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]);
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
                ["Statement"][0]["Action"] = json!(["dynamodb:Scan", "dynamodb:PutItem"]);
        }),
        ("grants", "an action the function needs, missing", |d| {
            d["Resources"]["ConnectFunctionRole"]["Properties"]["Policies"]
                .as_array_mut()
                .unwrap()
                .truncate(1);
        }),
        ("roles", "two functions sharing a role", |d| {
            d["Resources"]["PingFunction"]["Properties"]["Role"] =
                json!({"Fn::GetAtt": ["DefaultFunctionRole", "Arn"]});
        }),
        ("permissions", "a permission without SourceArn", |d| {
            d["Resources"]["MessagePermission"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("SourceArn");
        }),
        ("permissions", "a permission for any API", |d| {
            d["Resources"]["ListPermission"]["Properties"]["SourceArn"] = json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*"});
        }),
        ("functions", "x86_64", |d| {
            d["Globals"]["Function"]["Architectures"] = json!(["x86_64"]);
        }),
        ("functions", "a 29 s timeout", |d| {
            d["Resources"]["MessageFunction"]["Properties"]["Timeout"] = json!(29);
        }),
        ("functions", "another binary", |d| {
            d["Resources"]["ListFunction"]["Metadata"]["BuildProperties"]["Binary"] =
                json!("other");
        }),
        ("functions", "the wrong CodeUri", |d| {
            d["Globals"]["Function"]["CodeUri"] = json!(".");
        }),
        ("stage", "no AutoDeploy", |d| {
            d["Resources"]["Stage"]["Properties"]["AutoDeploy"] = json!(false);
        }),
        ("stage", "a stage that does not wait for a route", |d| {
            d["Resources"]["Stage"]["DependsOn"]
                .as_array_mut()
                .unwrap()
                .retain(|id| id != "PingRoute");
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
        ("environment", "no presence limit", |d| {
            d["Globals"]["Function"]["Environment"]["Variables"]
                .as_object_mut()
                .unwrap()
                .remove("PRESENCE_LIMIT");
        }),
        ("grants", "history without its table", |d| {
            d["Resources"]["HistoryFunctionRole"]["Properties"]["Policies"][1]["PolicyDocument"]
                ["Statement"]
                .as_array_mut()
                .unwrap()
                .retain(|s| s["Sid"] != "MessagesTable");
        }),
        (
            "stage",
            "a stage that does not wait for a new route's response",
            |d| {
                d["Resources"]["Stage"]["DependsOn"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|id| id != "HistoryRouteResponse");
            },
        ),
        ("environment", "a missing variable", |d| {
            d["Resources"]["ListFunction"]["Properties"]["Environment"] =
                json!({"Variables": {"NAMES_TABLE": "x"}});
        }),
        ("authorizer", "the authorizer on register too", |d| {
            let register = &mut d["Resources"]["RegisterRoute"]["Properties"];
            register["AuthorizationType"] = json!({"Fn::If": ["AuthOn", "CUSTOM", "NONE"]});
            register["AuthorizerId"] =
                json!({"Fn::If": ["AuthOn", {"Ref": "Authorizer"}, {"Ref": "AWS::NoValue"}]});
        }),
        ("authorizer", "$connect without the authorizer", |d| {
            let connect = &mut d["Resources"]["ConnectRoute"]["Properties"];
            connect["AuthorizationType"] = json!("NONE");
            connect.as_object_mut().unwrap().remove("AuthorizerId");
        }),
        ("authorizer", "the token read from a header", |d| {
            d["Resources"]["Authorizer"]["Properties"]["IdentitySource"] =
                json!(["route.request.header.Authorization"]);
        }),
        ("authorizer", "a TOKEN-less JWT authorizer type", |d| {
            d["Resources"]["Authorizer"]["Properties"]["AuthorizerType"] = json!("JWT");
        }),
        ("authorizer", "the authorizer reading the tables", |d| {
            d["Resources"]["AuthorizerFunctionRole"]["Properties"]["Policies"]
                .as_array_mut()
                .unwrap()
                .push(json!({"PolicyName": "dynamodb", "PolicyDocument": {"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem",
                    "Resource": {"Fn::ImportValue": {"Fn::Sub": "${TableStackName}:NamesTableArn"}}}]}}));
        }),
        ("authorizer", "the authorizer pushing to connections", |d| {
            d["Resources"]["AuthorizerFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
                ["Statement"]
                .as_array_mut()
                .unwrap()
                .push(json!({"Effect": "Allow", "Action": "execute-api:ManageConnections",
                    "Resource": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/POST/@connections/*"}}));
        }),
        ("authorizer", "an authorizer any API may invoke", |d| {
            d["Resources"]["AuthorizerPermission"]["Properties"]
                .as_object_mut()
                .unwrap()
                .remove("SourceArn");
        }),
        ("authorizer", "an app client with a secret", |d| {
            d["Resources"]["UserPoolClient"]["Properties"]["GenerateSecret"] = json!(true);
        }),
        ("authorizer", "the implicit flow", |d| {
            d["Resources"]["UserPoolClient"]["Properties"]["AllowedOAuthFlows"] =
                json!(["code", "implicit"]);
        }),
        ("authorizer", "the audience of another client", |d| {
            d["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
                ["AUTH_AUDIENCE"] = json!({"Ref": "Audience"});
        }),
        (
            "functions",
            "the authorizer built from the chat's binary",
            |d| {
                d["Resources"]["AuthorizerFunction"]["Metadata"]["BuildProperties"]["Binary"] =
                    json!("webchat-lambda");
            },
        ),
        ("auth_off", "a user pool without its condition", |d| {
            d["Resources"]["UserPool"]
                .as_object_mut()
                .unwrap()
                .remove("Condition");
        }),
        ("auth_off", "the authorizer attached without Fn::If", |d| {
            d["Resources"]["ConnectRoute"]["Properties"]["AuthorizerId"] =
                json!({"Ref": "Authorizer"});
        }),
        ("auth_off", "sign-in on by default", |d| {
            d["Parameters"]["Auth"]["Default"] = json!("cognito");
        }),
        ("stage", "the query string in the access log", |d| {
            let format = &mut d["Resources"]["Stage"]["Properties"]["AccessLogSettings"]["Format"];
            *format = json!(format.as_str().unwrap().replace(
                "\"routeKey\":",
                "\"token\":\"$request.querystring.token\",\"routeKey\":"
            ));
        }),
        ("stage", "data trace on", |d| {
            d["Resources"]["Stage"]["Properties"]["DefaultRouteSettings"]["DataTraceEnabled"] =
                json!(true);
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
