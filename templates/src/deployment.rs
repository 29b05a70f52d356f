//! What a deployment of the templates *is*, resolved to local values: the WebSocket API
//! and its routes, each function with its environment, limits, binary and grants, and the
//! tables with their keys. `webchat-local --template` runs this.
//!
//! ```
//! use webchat_templates::deployment::{resolve, LocalValues};
//! let local = LocalValues::default();
//! let root = webchat_templates::templates_dir().join("root.yml");
//! let deployment = resolve(&root, &[], &local).unwrap();
//! assert_eq!(deployment.api.stage, "Prod");
//! assert_eq!(deployment.api.function_for("ping"), Some("PingFunction"));
//! ```
//!
//! Parameters take their defaults, the overrides (as `sam deploy --parameter-overrides`
//! spells them) and, for nested stacks, what the parent passes; conditions are evaluated
//! and resources whose condition is false left out. `Ref`, `Fn::GetAtt`, `Fn::Sub`,
//! `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap` and `Fn::ImportValue` (one
//! stack's exports feeding another's imports) resolve with [`LocalValues`] for the region,
//! account and URL suffix. Physical names CloudFormation makes up are made up the same way
//! (`{stack}-{LogicalId}-{SUFFIX}`), stable from run to run.

mod resolver;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::intrinsic::{as_list, referenced_id, render};
use crate::{IamStatement, TemplateError};
use resolver::{scalar, Eval, Resolver};

/// What stands in for the AWS account the template would be deployed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalValues {
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account_id: String,
    /// `AWS::URLSuffix` (`amazonaws.com`).
    pub url_suffix: String,
    /// The name of the stack `resolve` deploys (nested stacks are named after it).
    pub stack_name: String,
}

impl Default for LocalValues {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            url_suffix: "amazonaws.com".into(),
            stack_name: "webchat".into(),
        }
    }
}

impl LocalValues {
    /// `AWS::Partition`.
    pub fn partition(&self) -> &'static str {
        "aws"
    }
}

/// A deployment resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// The one WebSocket API.
    pub api: Api,
    /// Every function, by logical id.
    pub functions: BTreeMap<String, FunctionSpec>,
    /// Every DynamoDB table, in stack then logical-id order.
    pub tables: Vec<TableSpec>,
    /// Every SQS queue.
    pub queues: Vec<QueueSpec>,
    /// Every SQS event source mapping (`AWS::Lambda::EventSourceMapping`, or the one SAM
    /// makes for an `Events` entry of type `SQS`), in stack then logical-id order.
    pub event_sources: Vec<EventSourceSpec>,
}

impl Deployment {
    /// The table with this physical name.
    pub fn table(&self, table_name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.table_name == table_name)
    }

    /// The queue with this logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }
}

/// The WebSocket API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Its logical id.
    pub logical_id: String,
    /// What `Ref` gives: the id in its URLs.
    pub api_id: String,
    /// The stage's name.
    pub stage: String,
    /// `RouteSelectionExpression`, e.g. `$request.body.action`.
    pub route_selection_expression: String,
    /// Every route, by key.
    pub routes: Vec<DeployedRoute>,
    /// The `$connect` route's authorizer, when it has one.
    pub authorizer: Option<AuthorizerSpec>,
}

impl Api {
    /// The `@connections` endpoint as the templates write it
    /// (`https://{api_id}.execute-api.{region}.{url_suffix}/{stage}`).
    pub fn management_endpoint(&self, local: &LocalValues) -> String {
        format!(
            "https://{}.execute-api.{}.{}/{}",
            self.api_id, local.region, local.url_suffix, self.stage
        )
    }

    /// The logical id of the function a route key invokes.
    pub fn function_for(&self, route_key: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| r.key == route_key)
            .map(|r| r.function.as_str())
    }

    /// The ARN the management API's `@connections` resources start with
    /// (`arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE`).
    pub fn execute_api_arn(&self, local: &LocalValues) -> String {
        format!(
            "arn:{}:execute-api:{}:{}:{}/{}",
            local.partition(),
            local.region,
            local.account_id,
            self.api_id,
            self.stage
        )
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedRoute {
    /// `$connect`, `register`, ...
    pub key: String,
    /// Logical id of the function its integration invokes.
    pub function: String,
    /// Whether a route response sends the function's answer back.
    pub two_way: bool,
}

/// A Lambda REQUEST authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerSpec {
    /// Logical id of its function.
    pub function: String,
    /// `IdentitySource`, e.g. `route.request.querystring.token`.
    pub identity_source: Vec<String>,
}

/// One function as Lambda would run it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// Its logical id.
    pub logical_id: String,
    /// `FunctionName`, or the name CloudFormation would make up.
    pub function_name: String,
    /// Its ARN.
    pub arn: String,
    /// `Metadata.BuildProperties.Binary`: the workspace binary its `bootstrap` is.
    pub binary: String,
    /// `Handler`.
    pub handler: String,
    /// `Runtime`.
    pub runtime: String,
    /// `Architectures` (Lambda's default: `x86_64`).
    pub architectures: Vec<String>,
    /// `Timeout` (Lambda's default: 3).
    pub timeout_seconds: u64,
    /// `MemorySize` (Lambda's default: 128).
    pub memory_mb: u64,
    /// `Environment.Variables`, `Globals` merged in, resolved.
    pub environment: BTreeMap<String, String>,
    /// The name of its role (what `assumed-role/ROLE/FUNCTION` names).
    pub role_name: String,
    /// Its role's ARN.
    pub role_arn: String,
    /// Its role's statements (inline policies, and `AWS::IAM::Policy`s attached to it),
    /// every `Action` and `Resource` resolved (resources are strings: ARNs or patterns).
    pub statements: Vec<IamStatement>,
    /// Policies it has whose statements are not read (managed policies, SAM policy
    /// templates): they may grant more than `statements` says.
    pub opaque_policies: Vec<String>,
    /// The SQS queues (logical ids) whose messages Lambda feeds it (SAM `Events` of type
    /// SQS, or an `AWS::Lambda::EventSourceMapping`).
    pub queue_events: Vec<String>,
}

/// One DynamoDB table as `CreateTable` would make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Its logical id.
    pub logical_id: String,
    /// `TableName`, or the name CloudFormation would make up.
    pub table_name: String,
    /// Its ARN.
    pub arn: String,
    /// `AttributeDefinitions`.
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// `KeySchema`.
    pub key_schema: Vec<KeyElement>,
    /// `GlobalSecondaryIndexes`.
    pub global_secondary_indexes: Vec<IndexSpec>,
    /// `LocalSecondaryIndexes`.
    pub local_secondary_indexes: Vec<IndexSpec>,
    /// `TimeToLiveSpecification.AttributeName`, when enabled.
    pub ttl_attribute: Option<String>,
    /// `BillingMode` (`PROVISIONED` when not written, as CloudFormation's default).
    pub billing_mode: String,
    /// `StreamSpecification.StreamViewType`, when it has a stream.
    pub stream_view_type: Option<String>,
}

/// An attribute of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDefinition {
    /// `AttributeName`.
    pub name: String,
    /// `AttributeType`: `S`, `N` or `B`.
    pub attribute_type: String,
}

/// One part of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    /// `AttributeName`.
    pub name: String,
    /// `KeyType`: `HASH` or `RANGE`.
    pub key_type: String,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// `IndexName`.
    pub name: String,
    /// `KeySchema`.
    pub key_schema: Vec<KeyElement>,
    /// `Projection.ProjectionType` (`ALL`, `KEYS_ONLY`, `INCLUDE`).
    pub projection_type: String,
    /// `Projection.NonKeyAttributes`.
    pub non_key_attributes: Vec<String>,
}

/// An SQS queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Its logical id.
    pub logical_id: String,
    /// Its name.
    pub queue_name: String,
    /// Its URL (what `Ref` gives).
    pub url: String,
    /// Its ARN.
    pub arn: String,
    /// `VisibilityTimeout` in seconds (SQS's default: 30).
    pub visibility_timeout_seconds: u64,
    /// `MessageRetentionPeriod` in seconds (SQS's default: 345,600, four days).
    pub message_retention_seconds: u64,
    /// `MaximumMessageSize` in bytes (SQS's default and most: 1,048,576).
    pub maximum_message_size: u64,
    /// `DelaySeconds` (default 0).
    pub delay_seconds: u64,
    /// `ReceiveMessageWaitTimeSeconds` (default 0).
    pub receive_wait_seconds: u64,
    /// `FifoQueue`.
    pub fifo: bool,
    /// `RedrivePolicy`: where a message goes after too many receives.
    pub redrive: Option<RedrivePolicy>,
}

/// A queue's `RedrivePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// `deadLetterTargetArn`: the dead-letter queue's ARN.
    pub dead_letter_target_arn: String,
    /// `maxReceiveCount`: receives before a message moves there.
    pub max_receive_count: u32,
}

/// SQS's defaults for what a queue's template leaves out.
pub const SQS_DEFAULT_VISIBILITY_TIMEOUT: u64 = 30;
/// Four days.
pub const SQS_DEFAULT_RETENTION: u64 = 345_600;
/// 1 MiB, also the most SQS takes.
pub const SQS_DEFAULT_MAXIMUM_MESSAGE_SIZE: u64 = 1_048_576;
/// Lambda's default `BatchSize` for an SQS source.
pub const SQS_DEFAULT_BATCH_SIZE: u32 = 10;

/// Lambda polling a queue and invoking a function with its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSourceSpec {
    /// The mapping's logical id (SAM's is `{Function}{EventName}`).
    pub logical_id: String,
    /// The function's logical id.
    pub function: String,
    /// The queue's logical id.
    pub queue: String,
    /// `BatchSize` (default 10): messages per invocation at most.
    pub batch_size: u32,
    /// `ScalingConfig.MaximumConcurrency`: invocations at once at most.
    pub maximum_concurrency: Option<u32>,
    /// `FunctionResponseTypes` has `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `Enabled` (default true).
    pub enabled: bool,
}

/// Reads `Key=Value` arguments as `sam deploy --parameter-overrides` takes them: one or
/// more pairs an argument, separated by spaces (a value with spaces in double quotes), or
/// CloudFormation's `ParameterKey=K,ParameterValue=V`.
pub fn parse_parameter_overrides(args: &[String]) -> Result<Vec<(String, String)>, TemplateError> {
    let bad = |token: &str, why: &str| TemplateError::Override {
        token: token.to_string(),
        problem: why.to_string(),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for arg in args {
        for token in split_quoted(arg).map_err(|why| bad(arg, why))? {
            let (key, value) = if let Some(rest) = token.strip_prefix("ParameterKey=") {
                rest.split_once(",ParameterValue=")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| bad(&token, "expected ParameterKey=K,ParameterValue=V"))?
            } else {
                token
                    .split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| bad(&token, "expected Key=Value"))?
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(bad(
                    &token,
                    "a parameter's name is letters and digits only, before the =",
                ));
            }
            if out.iter().any(|(k, _)| *k == key) {
                return Err(bad(&token, "that parameter is given twice"));
            }
            out.push((key, value));
        }
    }
    Ok(out)
}

/// `a=1 b="x y"` → `["a=1", "b=x y"]`.
fn split_quoted(arg: &str) -> Result<Vec<String>, &'static str> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in arg.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    tokens.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err("a double quote is not closed");
    }
    if started {
        tokens.push(current);
    }
    Ok(tokens)
}

/// Resolves the template at `template` (a root with nested stacks, or one stack file)
/// deployed as stack `local.stack_name` with `overrides` for its parameters.
pub fn resolve(
    template: &Path,
    overrides: &[(String, String)],
    local: &LocalValues,
) -> Result<Deployment, TemplateError> {
    let resolver = Resolver::new(local);
    let root = resolver.add_stack(template, &local.stack_name, overrides)?;
    let file = resolver.stack(root).file.clone();
    let fail = |problem: String| TemplateError::Resolve {
        template: file.clone(),
        problem,
    };
    resolver.make_all_nested().map_err(fail)?;

    let mut apis = Vec::new();
    let mut functions = BTreeMap::new();
    let mut tables = Vec::new();
    let mut queues = Vec::new();
    let mut event_sources = Vec::new();
    // Stacks may be added while this runs (an import made a stack beside the template).
    let mut index = 0;
    while index < resolver.stack_count() {
        let stack = resolver.stack(index);
        let at = |id: &str, e: String| fail(resolver.located(index, &format!("{id}: {e}")));
        for (id, resource) in stack.template.resources() {
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::ApiGatewayV2::Api" => {
                    let protocol = resolver
                        .text(index, &resource["Properties"]["ProtocolType"])
                        .unwrap_or_default();
                    if protocol == "WEBSOCKET" {
                        apis.push(api(&resolver, index, id).map_err(|e| at(id, e))?);
                    }
                }
                "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                    event_sources
                        .extend(sam_sqs_events(&resolver, index, id).map_err(|e| at(id, e))?);
                    let spec = function(&resolver, index, id).map_err(|e| at(id, e))?;
                    if functions.insert(id.to_string(), spec).is_some() {
                        return Err(fail(format!(
                            "two stacks define a function {id}; logical ids must differ"
                        )));
                    }
                }
                "AWS::DynamoDB::Table" => {
                    tables.push(table(&resolver, index, id).map_err(|e| at(id, e))?);
                }
                "AWS::SQS::Queue" => {
                    queues.push(queue(&resolver, index, id).map_err(|e| at(id, e))?);
                }
                "AWS::Lambda::EventSourceMapping" => {
                    if let Some(mapping) =
                        event_source_mapping(&resolver, index, id).map_err(|e| at(id, e))?
                    {
                        event_sources.push(mapping);
                    }
                }
                _ => {}
            }
        }
        index += 1;
    }
    let api = match <[Api; 1]>::try_from(apis) {
        Ok([api]) => api,
        Err(apis) => {
            return Err(fail(format!(
            "expected one WebSocket API (AWS::ApiGatewayV2::Api, ProtocolType WEBSOCKET), found {}",
            apis.len()
        )))
        }
    };
    for route in &api.routes {
        if !functions.contains_key(&route.function) {
            return Err(fail(format!(
                "route {} invokes {}, which is not a function of this deployment",
                route.key, route.function
            )));
        }
    }
    for source in &event_sources {
        if !queues.iter().any(|q| q.logical_id == source.queue) {
            return Err(fail(format!(
                "event source {} reads queue {}, which is not a queue of this deployment",
                source.logical_id, source.queue
            )));
        }
    }
    Ok(Deployment {
        api,
        functions,
        tables,
        queues,
        event_sources,
    })
}

fn api(resolver: &Resolver<'_>, stack: usize, id: &str) -> Eval<Api> {
    let s = resolver.stack(stack);
    let t = &s.template;
    let props = &t.resource(id).map_or(&Value::Null, |r| &r["Properties"]);
    let route_selection_expression = resolver
        .text(stack, &props["RouteSelectionExpression"])
        .map_err(|e| format!("RouteSelectionExpression: {e}"))?;
    let belongs = |p: &Value| referenced_id(&p["ApiId"]).as_deref() == Some(id);
    let stages: Vec<_> = t
        .resources_of_type("AWS::ApiGatewayV2::Stage")
        .filter(|(_, r)| belongs(&r["Properties"]))
        .collect();
    let [(stage_id, stage)] = stages[..] else {
        return Err(format!(
            "expected one stage of this API, found {}",
            stages.len()
        ));
    };
    let stage = resolver
        .text(stack, &stage["Properties"]["StageName"])
        .map_err(|e| format!("stage {stage_id}: StageName: {e}"))?;
    let mut routes = Vec::new();
    let mut authorizer = None;
    for (route_id, route) in t.resources_of_type("AWS::ApiGatewayV2::Route") {
        let p = &route["Properties"];
        if !belongs(p) {
            continue;
        }
        let wiring = crate::websocket::wire(t, route_id, p)?;
        let authorization = p
            .get("AuthorizationType")
            .map(|v| resolver.text(stack, v))
            .transpose()
            .map_err(|e| format!("{route_id}: AuthorizationType: {e}"))?;
        if authorization.as_deref() == Some("CUSTOM") {
            let authorizer_id = referenced_id(&p["AuthorizerId"]).ok_or_else(|| {
                format!("{route_id}: AuthorizationType CUSTOM with no AuthorizerId")
            })?;
            authorizer = Some(authorizer_spec(resolver, stack, &authorizer_id)?);
        }
        routes.push(DeployedRoute {
            key: wiring.key,
            function: wiring.function_logical_id,
            two_way: wiring.two_way,
        });
    }
    routes.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Api {
        logical_id: id.to_string(),
        api_id: resolver.physical_id(stack, id)?,
        stage,
        route_selection_expression,
        routes,
        authorizer,
    })
}

fn authorizer_spec(resolver: &Resolver<'_>, stack: usize, id: &str) -> Eval<AuthorizerSpec> {
    let s = resolver.stack(stack);
    let (ty, resource) = s
        .resource(id)
        .ok_or_else(|| format!("authorizer {id} is not a resource here"))?;
    if ty != "AWS::ApiGatewayV2::Authorizer" {
        return Err(format!("{id} is a {ty}, not an authorizer"));
    }
    let p = &resource["Properties"];
    let uri = render(&p["AuthorizerUri"]);
    let function = uri
        .split_once("/functions/")
        .and_then(|(_, rest)| rest.strip_suffix("/invocations"))
        .and_then(|f| referenced_id(&Value::from(f)))
        .filter(|f| s.resource(f).is_some())
        .ok_or_else(|| format!("authorizer {id}: AuthorizerUri does not invoke a function of this template: {uri:?}"))?;
    let identity_source = resolver
        .eval(stack, &p["IdentitySource"])
        .map_err(|e| format!("authorizer {id}: IdentitySource: {e}"))?;
    Ok(AuthorizerSpec {
        function,
        identity_source: as_list(&identity_source)
            .into_iter()
            .filter_map(scalar)
            .collect(),
    })
}

fn function(resolver: &Resolver<'_>, stack: usize, id: &str) -> Eval<FunctionSpec> {
    let s = resolver.stack(stack);
    let t = &s.template;
    let (ty, resource) = s.resource(id).ok_or_else(|| "gone".to_string())?;
    let props: serde_json::Map<String, Value> = if ty == "AWS::Serverless::Function" {
        t.function_properties(id)
    } else {
        resource["Properties"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let text = |key: &str| -> Eval<Option<String>> {
        props
            .get(key)
            .map(|v| resolver.text(stack, v).map_err(|e| format!("{key}: {e}")))
            .transpose()
    };
    let number = |key: &str, default: u64| -> Eval<u64> {
        match text(key)? {
            None => Ok(default),
            Some(n) => n
                .parse()
                .map_err(|_| format!("{key}: {n:?} is not a whole number")),
        }
    };
    let mut environment = BTreeMap::new();
    for (name, value) in props
        .get("Environment")
        .and_then(|e| e["Variables"].as_object())
        .into_iter()
        .flatten()
    {
        let value = resolver
            .text(stack, value)
            .map_err(|e| format!("Environment.Variables.{name}: {e}"))?;
        environment.insert(name.clone(), value);
    }
    let binary = resource["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .map(str::to_string)
        .ok_or("no Metadata.BuildProperties.Binary: which workspace binary is its bootstrap")?;
    let architectures = match props.get("Architectures") {
        Some(v) => as_list(&resolver.eval(stack, v)?)
            .into_iter()
            .filter_map(scalar)
            .collect(),
        None => vec!["x86_64".to_string()],
    };
    let function_name = resolver.physical_id(stack, id)?;
    let local = resolver.local;
    let arn = format!(
        "arn:{}:lambda:{}:{}:function:{function_name}",
        local.partition(),
        local.region,
        local.account_id
    );

    let mut opaque_policies = Vec::new();
    let mut statements = Vec::new();
    let role_id = props
        .get("Role")
        .and_then(referenced_id)
        .filter(|r| s.resource(r).is_some_and(|(ty, _)| ty == "AWS::IAM::Role"));
    let role = props
        .get("Role")
        .map(|role| resolver.text(stack, role).map_err(|e| format!("Role: {e}")))
        .transpose()?;
    let (role_name, role_arn) = match (&role_id, role) {
        (Some(role_id), Some(arn)) => {
            let name = resolver.physical_id(stack, role_id)?;
            for statement in t.iam_statements() {
                if &statement.owner == role_id {
                    statements.push(resolved_statement(resolver, stack, statement)?);
                }
            }
            // Policies that name the role.
            for (policy_id, policy) in t.resources() {
                let ty = policy["Type"].as_str().unwrap_or_default();
                let p = &policy["Properties"];
                let names_role = as_list(&p["Roles"])
                    .into_iter()
                    .any(|r| referenced_id(r).as_deref() == Some(role_id));
                if !names_role {
                    continue;
                }
                if ty == "AWS::IAM::Policy" || ty == "AWS::IAM::ManagedPolicy" {
                    for (index, st) in as_list(&p["PolicyDocument"]["Statement"])
                        .into_iter()
                        .enumerate()
                    {
                        statements.push(resolved_statement(
                            resolver,
                            stack,
                            statement_of(policy_id, p["PolicyName"].as_str(), index, st),
                        )?);
                    }
                }
            }
            let role = &t
                .resource(role_id)
                .map_or(&Value::Null, |r| &r["Properties"]);
            for arn in as_list(&role["ManagedPolicyArns"]) {
                opaque_policies.push(format!("{role_id}: managed policy {}", render(arn)));
            }
            (name, arn)
        }
        (_, Some(arn)) => {
            // A role made elsewhere: its policies are not in these templates.
            opaque_policies.push(format!("Role {arn}, made outside these templates"));
            let name = arn.rsplit('/').next().unwrap_or_default().to_string();
            (name, arn)
        }
        (_, None) => {
            // SAM makes `{Id}Role` with the function's `Policies`.
            let name = resolver::generated_name(&s.name, &format!("{id}Role"), 64);
            for (index, policy) in props
                .get("Policies")
                .map(as_list)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                if policy.get("Statement").is_some() {
                    for (n, st) in as_list(&policy["Statement"]).into_iter().enumerate() {
                        statements.push(resolved_statement(
                            resolver,
                            stack,
                            statement_of(id, Some(&format!("Policies[{index}]")), n, st),
                        )?);
                    }
                } else {
                    opaque_policies.push(format!("{id}: Policies[{index}] {}", render(policy)));
                }
            }
            let arn = format!(
                "arn:{}:iam::{}:role/{name}",
                local.partition(),
                local.account_id
            );
            (name, arn)
        }
    };

    let mut queue_events = Vec::new();
    for (_, event) in props
        .get("Events")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if event["Type"] == "SQS" {
            if let Some(queue) = referenced_id(&event["Properties"]["Queue"]) {
                queue_events.push(queue);
            }
        }
    }
    for (_, mapping) in t.resources_of_type("AWS::Lambda::EventSourceMapping") {
        let p = &mapping["Properties"];
        if referenced_id(&p["FunctionName"]).as_deref() == Some(id) {
            if let Some(source) = referenced_id(&p["EventSourceArn"]) {
                if s.resource(&source)
                    .is_some_and(|(ty, _)| ty == "AWS::SQS::Queue")
                {
                    queue_events.push(source);
                }
            }
        }
    }

    Ok(FunctionSpec {
        logical_id: id.to_string(),
        function_name,
        arn,
        binary,
        handler: text("Handler")?.unwrap_or_default(),
        runtime: text("Runtime")?.unwrap_or_default(),
        architectures,
        timeout_seconds: number("Timeout", 3)?,
        memory_mb: number("MemorySize", 128)?,
        environment,
        role_name,
        role_arn,
        statements,
        opaque_policies,
        queue_events,
    })
}

fn statement_of(owner: &str, policy: Option<&str>, index: usize, st: &Value) -> IamStatement {
    let has_not_action = st.get("NotAction").is_some();
    let has_not_resource = st.get("NotResource").is_some();
    IamStatement {
        owner: owner.to_string(),
        policy_name: policy.map(str::to_string),
        sid: st["Sid"].as_str().map(str::to_string),
        index,
        effect: st["Effect"].as_str().unwrap_or_default().to_string(),
        actions: as_list(
            &st[if has_not_action {
                "NotAction"
            } else {
                "Action"
            }],
        )
        .into_iter()
        .map(render)
        .collect(),
        resources: as_list(
            &st[if has_not_resource {
                "NotResource"
            } else {
                "Resource"
            }],
        )
        .into_iter()
        .cloned()
        .collect(),
        has_not_action,
        has_not_resource,
        principal: st.get("Principal").cloned(),
    }
}

/// The statement with its resources evaluated to strings (a list-valued one flattened).
fn resolved_statement(
    resolver: &Resolver<'_>,
    stack: usize,
    mut statement: IamStatement,
) -> Eval<IamStatement> {
    let location = statement.location();
    let mut resources = Vec::new();
    for resource in &statement.resources {
        let value = resolver
            .eval(stack, resource)
            .map_err(|e| format!("{location}: Resource: {e}"))?;
        for item in as_list(&value) {
            let text = scalar(item)
                .ok_or_else(|| format!("{location}: Resource: {item} is not a string"))?;
            resources.push(Value::from(text));
        }
    }
    statement.resources = resources;
    Ok(statement)
}

fn table(resolver: &Resolver<'_>, stack: usize, id: &str) -> Eval<TableSpec> {
    let s = resolver.stack(stack);
    let raw = s
        .template
        .resource(id)
        .map_or(&Value::Null, |r| &r["Properties"]);
    let p = resolver.eval(stack, raw)?;
    let text = |v: &Value, what: &str| -> Eval<String> {
        scalar(v).ok_or_else(|| format!("{what}: {v} is not a string"))
    };
    let keys = |v: &Value, what: &str| -> Eval<Vec<KeyElement>> {
        as_list(v)
            .into_iter()
            .map(|k| {
                Ok(KeyElement {
                    name: text(&k["AttributeName"], what)?,
                    key_type: text(&k["KeyType"], what)?,
                })
            })
            .collect()
    };
    let indexes = |v: &Value, what: &str| -> Eval<Vec<IndexSpec>> {
        as_list(v)
            .into_iter()
            .map(|i| {
                Ok(IndexSpec {
                    name: text(&i["IndexName"], what)?,
                    key_schema: keys(&i["KeySchema"], what)?,
                    projection_type: scalar(&i["Projection"]["ProjectionType"])
                        .unwrap_or_else(|| "KEYS_ONLY".into()),
                    non_key_attributes: as_list(&i["Projection"]["NonKeyAttributes"])
                        .into_iter()
                        .filter_map(scalar)
                        .collect(),
                })
            })
            .collect()
    };
    let attribute_definitions = as_list(&p["AttributeDefinitions"])
        .into_iter()
        .map(|a| {
            Ok(AttributeDefinition {
                name: text(&a["AttributeName"], "AttributeDefinitions")?,
                attribute_type: text(&a["AttributeType"], "AttributeDefinitions")?,
            })
        })
        .collect::<Eval<Vec<_>>>()?;
    let key_schema = keys(&p["KeySchema"], "KeySchema")?;
    if key_schema.is_empty() {
        return Err("KeySchema: missing".into());
    }
    let ttl = &p["TimeToLiveSpecification"];
    let enabled = ttl["Enabled"] == true || ttl["Enabled"] == "true";
    let table_name = resolver.physical_id(stack, id)?;
    let local = resolver.local;
    Ok(TableSpec {
        logical_id: id.to_string(),
        arn: format!(
            "arn:{}:dynamodb:{}:{}:table/{table_name}",
            local.partition(),
            local.region,
            local.account_id
        ),
        table_name,
        attribute_definitions,
        key_schema,
        global_secondary_indexes: indexes(&p["GlobalSecondaryIndexes"], "GlobalSecondaryIndexes")?,
        local_secondary_indexes: indexes(&p["LocalSecondaryIndexes"], "LocalSecondaryIndexes")?,
        ttl_attribute: if enabled {
            Some(text(&ttl["AttributeName"], "TimeToLiveSpecification")?)
        } else {
            None
        },
        billing_mode: scalar(&p["BillingMode"]).unwrap_or_else(|| "PROVISIONED".into()),
        stream_view_type: scalar(&p["StreamSpecification"]["StreamViewType"]),
    })
}

fn queue(resolver: &Resolver<'_>, stack: usize, id: &str) -> Eval<QueueSpec> {
    let url = resolver.physical_id(stack, id)?;
    let local = resolver.local;
    let queue_name = url.rsplit('/').next().unwrap_or_default().to_string();
    let s = resolver.stack(stack);
    let raw = s
        .template
        .resource(id)
        .map_or(&Value::Null, |r| &r["Properties"]);
    let number = |key: &str, default: u64| -> Eval<u64> {
        match raw.get(key) {
            None => Ok(default),
            Some(v) => {
                let text = resolver.text(stack, v).map_err(|e| format!("{key}: {e}"))?;
                text.parse()
                    .map_err(|_| format!("{key}: {text:?} is not a whole number"))
            }
        }
    };
    let redrive = match raw.get("RedrivePolicy") {
        None => None,
        Some(policy) => {
            let mut policy = resolver
                .eval(stack, policy)
                .map_err(|e| format!("RedrivePolicy: {e}"))?;
            // CloudFormation takes it as a map or as its JSON text.
            if let Value::String(text) = &policy {
                policy = serde_json::from_str(text)
                    .map_err(|e| format!("RedrivePolicy: not JSON: {e}"))?;
            }
            let target = scalar(&policy["deadLetterTargetArn"])
                .ok_or("RedrivePolicy: no deadLetterTargetArn")?;
            let count =
                scalar(&policy["maxReceiveCount"]).ok_or("RedrivePolicy: no maxReceiveCount")?;
            let max_receive_count = count
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    format!("RedrivePolicy: maxReceiveCount {count:?} is not 1 to 1000")
                })?;
            Some(RedrivePolicy {
                dead_letter_target_arn: target,
                max_receive_count,
            })
        }
    };
    let fifo = match raw.get("FifoQueue") {
        None => false,
        Some(v) => resolver.text(stack, v)? == "true",
    };
    Ok(QueueSpec {
        logical_id: id.to_string(),
        arn: format!(
            "arn:{}:sqs:{}:{}:{queue_name}",
            local.partition(),
            local.region,
            local.account_id
        ),
        queue_name,
        url,
        visibility_timeout_seconds: number("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_TIMEOUT)?,
        message_retention_seconds: number("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)?,
        maximum_message_size: number("MaximumMessageSize", SQS_DEFAULT_MAXIMUM_MESSAGE_SIZE)?,
        delay_seconds: number("DelaySeconds", 0)?,
        receive_wait_seconds: number("ReceiveMessageWaitTimeSeconds", 0)?,
        fifo,
        redrive,
    })
}

/// What an SQS event source's properties say, for `function` reading `queue`
/// (the properties of an `AWS::Lambda::EventSourceMapping`, or of a SAM `SQS` event).
fn event_source_from(
    resolver: &Resolver<'_>,
    stack: usize,
    logical_id: String,
    function: String,
    queue: String,
    p: &Value,
) -> Eval<EventSourceSpec> {
    let text = |key: &str, v: &Value| resolver.text(stack, v).map_err(|e| format!("{key}: {e}"));
    let batch_size = match p.get("BatchSize") {
        None => SQS_DEFAULT_BATCH_SIZE,
        Some(v) => {
            let n = text("BatchSize", v)?;
            n.parse::<u32>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| format!("BatchSize: {n:?} is not 1 to 10000"))?
        }
    };
    let maximum_concurrency = match p
        .get("ScalingConfig")
        .and_then(|s| s.get("MaximumConcurrency"))
    {
        None => None,
        Some(v) => {
            let n = text("ScalingConfig.MaximumConcurrency", v)?;
            Some(
                n.parse::<u32>()
                    .ok()
                    .filter(|n| (2..=1000).contains(n))
                    .ok_or_else(|| {
                        format!("ScalingConfig.MaximumConcurrency: {n:?} is not 2 to 1000")
                    })?,
            )
        }
    };
    let mut report_batch_item_failures = false;
    if let Some(types) = p.get("FunctionResponseTypes") {
        let types = resolver
            .eval(stack, types)
            .map_err(|e| format!("FunctionResponseTypes: {e}"))?;
        report_batch_item_failures = as_list(&types)
            .into_iter()
            .filter_map(scalar)
            .any(|t| t == "ReportBatchItemFailures");
    }
    let enabled = match p.get("Enabled") {
        None => true,
        Some(v) => text("Enabled", v)? != "false",
    };
    Ok(EventSourceSpec {
        logical_id,
        function,
        queue,
        batch_size,
        maximum_concurrency,
        report_batch_item_failures,
        enabled,
    })
}

/// An `AWS::Lambda::EventSourceMapping` that reads a queue of this stack into a function
/// of it; `None` for other sources (streams, Kafka).
fn event_source_mapping(
    resolver: &Resolver<'_>,
    stack: usize,
    id: &str,
) -> Eval<Option<EventSourceSpec>> {
    let s = resolver.stack(stack);
    let p = s
        .template
        .resource(id)
        .map_or(&Value::Null, |r| &r["Properties"]);
    let Some(queue) = referenced_id(&p["EventSourceArn"])
        .filter(|q| s.resource(q).is_some_and(|(ty, _)| ty == "AWS::SQS::Queue"))
    else {
        return Ok(None);
    };
    let function = referenced_id(&p["FunctionName"])
        .filter(|f| s.resource(f).is_some())
        .ok_or("FunctionName: not a function of this template")?;
    event_source_from(resolver, stack, id.to_string(), function, queue, p).map(Some)
}

/// The event source mappings SAM makes for a function's `Events` of type `SQS`.
fn sam_sqs_events(resolver: &Resolver<'_>, stack: usize, id: &str) -> Eval<Vec<EventSourceSpec>> {
    let s = resolver.stack(stack);
    let Some((ty, _)) = s.resource(id) else {
        return Ok(Vec::new());
    };
    if ty != "AWS::Serverless::Function" {
        return Ok(Vec::new());
    }
    let props = s.template.function_properties(id);
    let mut out = Vec::new();
    for (name, event) in props
        .get("Events")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if event["Type"] != "SQS" {
            continue;
        }
        let p = &event["Properties"];
        let queue = referenced_id(&p["Queue"])
            .ok_or_else(|| format!("Events.{name}.Queue: not a queue of this template"))?;
        out.push(
            event_source_from(
                resolver,
                stack,
                format!("{id}{name}"),
                id.to_string(),
                queue,
                p,
            )
            .map_err(|e| format!("Events.{name}: {e}"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_as_sam_spells_them() {
        let args = |a: &[&str]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            parse_parameter_overrides(&args(&[
                "Auth=oidc Issuer=https://x/y",
                "Audience=\"a b\"",
                "ParameterKey=StageName,ParameterValue=Dev",
                "Empty=",
            ]))
            .unwrap(),
            vec![
                ("Auth".to_string(), "oidc".to_string()),
                ("Issuer".into(), "https://x/y".into()),
                ("Audience".into(), "a b".into()),
                ("StageName".into(), "Dev".into()),
                ("Empty".into(), String::new()),
            ]
        );
        for bad in ["Auth", "=x", "Au-th=x", "A=1 A=2", "A=\"x"] {
            let err = parse_parameter_overrides(&args(&[bad])).unwrap_err();
            assert!(err.to_string().contains("--parameter-overrides"), "{err}");
        }
    }
}
