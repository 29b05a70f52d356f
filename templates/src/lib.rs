//! Reads the CloudFormation/SAM templates in `templates/` so that tests can check them.
//!
//! Templates are parsed with `serde_yaml`, CloudFormation's short-form tags (`!Sub`,
//! `!Ref`, `!GetAtt`, ...) are turned into their long form (`Fn::Sub`, `Ref`,
//! `Fn::GetAtt`, ...), and the result is kept as a `serde_json::Value`.
//!
//! [`websocket_template`] loads `websocket.yml` and resolves its wiring (route → integration
//! → function, route responses, stage), which other crates' tests reuse, e.g. to check that
//! the local gateway emulates the same routes and stage:
//!
//! ```
//! let api = webchat_templates::websocket_template().unwrap();
//! assert_eq!(api.stage_name(), "Prod");
//! assert!(api.routes().iter().any(|r| r.key == "$connect" && !r.two_way));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The route keys of the wire protocol (PROTOCOL.md), in the order the protocol lists them.
pub const PROTOCOL_ROUTES: [&str; 7] = [
    "$connect",
    "$disconnect",
    "register",
    "list",
    "message",
    "ping",
    "$default",
];

/// Why a template could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} is not valid YAML: {source}")]
    Yaml {
        name: String,
        source: serde_yaml::Error,
    },
    #[error("{name}: {problem}")]
    Shape { name: String, problem: String },
}

/// The directory that holds the templates (this crate's directory).
pub fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root (the parent of `templates/`), which the functions' `CodeUri` names.
pub fn workspace_root() -> PathBuf {
    templates_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(templates_dir)
}

/// Loads `templates/<file_name>`.
pub fn load(file_name: &str) -> Result<Template, TemplateError> {
    Template::load(templates_dir().join(file_name))
}

/// Loads and resolves `templates/websocket.yml`.
pub fn websocket_template() -> Result<WebsocketTemplate, TemplateError> {
    WebsocketTemplate::new(load("websocket.yml")?)
}

// ---------------------------------------------------------------------------------------
// Generic template

/// One parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    doc: Value,
}

impl Template {
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::parse(&name, &text)
    }

    /// Parses template text; `name` only labels errors and findings.
    pub fn parse(name: &str, yaml: &str) -> Result<Self, TemplateError> {
        let raw: serde_yaml::Value =
            serde_yaml::from_str(yaml).map_err(|source| TemplateError::Yaml {
                name: name.to_string(),
                source,
            })?;
        Self::from_json(name, to_json(raw))
    }

    /// Wraps an already-parsed document (e.g. a test's edited copy of a template).
    pub fn from_json(name: &str, doc: Value) -> Result<Self, TemplateError> {
        if !doc.get("Resources").is_some_and(Value::is_object) {
            return Err(TemplateError::Shape {
                name: name.to_string(),
                problem: "no Resources mapping".into(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            doc,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole document, tags in long form.
    pub fn json(&self) -> &Value {
        &self.doc
    }

    /// Every resource as (logical id, resource), sorted by logical id.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.doc["Resources"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The resources of one type, e.g. `AWS::ApiGatewayV2::Route`.
    pub fn resources_of_type<'a>(
        &'a self,
        ty: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.resources().filter(move |(_, r)| r["Type"] == ty)
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.doc["Resources"].get(logical_id)
    }

    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resource(logical_id)?.get("Type")?.as_str()
    }

    pub fn parameter(&self, name: &str) -> Option<&Value> {
        self.doc.get("Parameters")?.get(name)
    }

    pub fn output(&self, name: &str) -> Option<&Value> {
        self.doc.get("Outputs")?.get(name)
    }

    /// The value a property resolves to at deploy time with default parameters, where that is
    /// a plain string: a literal, or a `Ref` to a parameter with a default.
    pub fn resolve_string(&self, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                let name = value.get("Ref")?.as_str()?;
                let default = self.parameter(name)?.get("Default")?;
                match default {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            }
        }
    }

    /// A function's properties with SAM's `Globals.Function` merged in (the function's own
    /// values win; `Environment.Variables` are merged variable by variable).
    pub fn function_properties(&self, logical_id: &str) -> Map<String, Value> {
        let own = self
            .resource(logical_id)
            .and_then(|r| r.get("Properties"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let is_sam = self.resource_type(logical_id) == Some("AWS::Serverless::Function");
        let globals = self
            .doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(Value::as_object);
        let (true, Some(globals)) = (is_sam, globals) else {
            return own;
        };
        let mut merged = globals.clone();
        for (key, value) in own {
            if key == "Environment" {
                let mut vars = merged
                    .get("Environment")
                    .and_then(|e| e.get("Variables"))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Some(own_vars) = value.get("Variables").and_then(Value::as_object) {
                    vars.extend(own_vars.clone());
                }
                merged.insert(key, serde_json::json!({ "Variables": vars }));
            } else {
                merged.insert(key, value);
            }
        }
        merged
    }

    /// Every IAM policy statement in the template: inline role policies, IAM policies,
    /// resource policies (S3 bucket, SQS, SNS) and SAM functions' inline `Policies`.
    /// Trust policies (`AssumeRolePolicyDocument`) are not included.
    pub fn iam_statements(&self) -> Vec<IamStatement> {
        let mut out = Vec::new();
        for (id, resource) in self.resources() {
            let props = &resource["Properties"];
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" => {
                    for policy in as_list(&props["Policies"]) {
                        let name = policy["PolicyName"].as_str().map(str::to_string);
                        push_statements(&mut out, id, name, &policy["PolicyDocument"]);
                    }
                }
                "AWS::IAM::Policy"
                | "AWS::IAM::ManagedPolicy"
                | "AWS::IAM::RolePolicy"
                | "AWS::S3::BucketPolicy"
                | "AWS::SQS::QueuePolicy"
                | "AWS::SNS::TopicPolicy" => {
                    let name = props["PolicyName"]
                        .as_str()
                        .or(props["ManagedPolicyName"].as_str())
                        .map(str::to_string);
                    push_statements(&mut out, id, name, &props["PolicyDocument"]);
                }
                "AWS::Serverless::Function" => {
                    for policy in as_list(&props["Policies"]) {
                        if policy.get("Statement").is_some() {
                            push_statements(&mut out, id, None, policy);
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Policies whose statements this crate cannot see, which least privilege cannot be
    /// checked for: managed policy ARNs on roles, and SAM functions' managed policy names or
    /// policy templates. Each entry is "<logical id>: <what>".
    pub fn opaque_policies(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, resource) in self.resources() {
            let props = &resource["Properties"];
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" => {
                    for arn in as_list(&props["ManagedPolicyArns"]) {
                        out.push(format!("{id}: managed policy {}", render(arn)));
                    }
                }
                "AWS::Serverless::Function" => {
                    for policy in as_list(&props["Policies"]) {
                        if policy.get("Statement").is_none() {
                            out.push(format!("{id}: policy {}", render(policy)));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Allow statements that grant more than named actions on named resources: a wildcard
    /// action or resource (see [`is_wildcard_action`] and [`is_wildcard_resource`]), a
    /// `NotAction`/`NotResource`, or a `*` principal. Deny statements are guards, not
    /// grants, and are not reported. Each finding names the template, owner and problem.
    pub fn wildcard_grants(&self) -> Vec<String> {
        let mut out = Vec::new();
        for st in self.iam_statements().iter().filter(|s| s.is_allow()) {
            let at = format!("{}: {}", self.name, st.location());
            for action in st.actions.iter().filter(|a| is_wildcard_action(a)) {
                out.push(format!("{at}: wildcard action {action:?}"));
            }
            for resource in st.resources.iter().filter(|r| is_wildcard_resource(r)) {
                out.push(format!("{at}: wildcard resource {:?}", render(resource)));
            }
            if st.has_not_action {
                out.push(format!("{at}: NotAction grants everything else"));
            }
            if st.has_not_resource {
                out.push(format!("{at}: NotResource grants everything else"));
            }
            if st.resources.is_empty() {
                out.push(format!("{at}: no Resource"));
            }
            if let Some(principal) = &st.principal {
                if principal == "*" || principal.get("AWS").is_some_and(|p| p == "*") {
                    out.push(format!("{at}: wildcard principal"));
                }
            }
        }
        out
    }
}

fn push_statements(out: &mut Vec<IamStatement>, owner: &str, policy: Option<String>, doc: &Value) {
    for (index, st) in as_list(&doc["Statement"]).into_iter().enumerate() {
        let strings = |key: &str| -> Vec<String> {
            as_list(&st[key])
                .into_iter()
                .map(|a| a.as_str().map(str::to_string).unwrap_or_else(|| render(a)))
                .collect()
        };
        let has_not_action = st.get("NotAction").is_some();
        let has_not_resource = st.get("NotResource").is_some();
        out.push(IamStatement {
            owner: owner.to_string(),
            policy_name: policy.clone(),
            sid: st["Sid"].as_str().map(str::to_string),
            index,
            effect: st["Effect"].as_str().unwrap_or_default().to_string(),
            actions: if has_not_action {
                strings("NotAction")
            } else {
                strings("Action")
            },
            resources: as_list(if has_not_resource {
                &st["NotResource"]
            } else {
                &st["Resource"]
            })
            .into_iter()
            .cloned()
            .collect(),
            has_not_action,
            has_not_resource,
            principal: st.get("Principal").cloned(),
        });
    }
}

/// One statement of an IAM policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct IamStatement {
    /// Logical id of the resource that holds the policy (role, bucket policy, function).
    pub owner: String,
    pub policy_name: Option<String>,
    pub sid: Option<String>,
    /// Position within its policy document.
    pub index: usize,
    pub effect: String,
    /// `Action` (or `NotAction`, then `has_not_action`), one string each.
    pub actions: Vec<String>,
    /// `Resource` (or `NotResource`, then `has_not_resource`) as written.
    pub resources: Vec<Value>,
    pub has_not_action: bool,
    pub has_not_resource: bool,
    pub principal: Option<Value>,
}

impl IamStatement {
    pub fn is_allow(&self) -> bool {
        self.effect == "Allow"
    }

    /// Whether it lists `action` (IAM action names are case-insensitive).
    pub fn has_action(&self, action: &str) -> bool {
        !self.has_not_action && self.actions.iter().any(|a| a.eq_ignore_ascii_case(action))
    }

    /// The resources, rendered with [`render`].
    pub fn rendered_resources(&self) -> Vec<String> {
        self.resources.iter().map(render).collect()
    }

    /// "owner/policy/sid-or-index", for messages.
    pub fn location(&self) -> String {
        let policy = self.policy_name.as_deref().unwrap_or("policy");
        match &self.sid {
            Some(sid) => format!("{}/{policy}/{sid}", self.owner),
            None => format!("{}/{policy}/#{}", self.owner, self.index),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Wildcards

/// An action that matches more than one action: `*`, `s3:*`, `dynamodb:Get*`, `s3:?et`.
pub fn is_wildcard_action(action: &str) -> bool {
    action.contains('*') || action.contains('?')
}

/// A resource that is not scoped to a named resource: `*`; an ARN with a wildcard in its
/// partition, service, region or account, or in the resource's name (`table/*`,
/// `log-group:*`, `arn:aws:s3:::*`). A wildcard *under* a named resource is scoped and
/// allowed: `${Bucket.Arn}/*`, `...:log-group:${Group}:log-stream:*`,
/// `...:${Api}/${Stage}/POST/@connections/*`. `Ref`, `Fn::GetAtt` and `Fn::ImportValue`
/// name one resource. `Fn::If` is a wildcard when either branch is.
pub fn is_wildcard_resource(resource: &Value) -> bool {
    if let Some(args) = resource.get("Fn::If").and_then(Value::as_array) {
        return args.iter().skip(1).any(is_wildcard_resource);
    }
    if resource.get("Ref").is_some()
        || resource.get("Fn::GetAtt").is_some()
        || resource.get("Fn::ImportValue").is_some()
    {
        return false;
    }
    let rendered = render(resource);
    // Placeholders stand for one named value each; wildcards can't hide in them.
    let text = replace_placeholders(&rendered, "X");
    if text == "*" {
        return true;
    }
    if let Some(rest) = text.strip_prefix("arn:") {
        let fields: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, name] = fields[..] else {
            return text.contains('*');
        };
        if [partition, service, region, account]
            .iter()
            .any(|f| f.contains('*'))
        {
            return true;
        }
        let segments: Vec<&str> = name.split(['/', ':']).collect();
        let named = if service == "s3" {
            // arn:aws:s3:::bucket/key: the bucket is the name.
            &segments[..1]
        } else {
            // arn:aws:dynamodb:r:a:table/name, arn:aws:logs:r:a:log-group:name, and
            // arn:aws:execute-api:r:a:api/stage/...: the first two segments name it.
            &segments[..segments.len().min(2)]
        };
        return named.iter().any(|s| s.contains('*') || s.is_empty());
    }
    // `${Bucket.Arn}/*`, `import(...)`, literals: the leading name must be wildcard-free.
    let head = text.split(['/', ':']).next().unwrap_or_default();
    head.contains('*') || head.is_empty()
}

fn replace_placeholders(text: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let mut depth = 0usize;
        let mut end = None;
        for (i, c) in rest[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(start + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        match end {
            Some(end) => {
                out.push_str(with);
                rest = &rest[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Renders an intrinsic-function value as text, as `Fn::Sub` would read it:
/// `Ref X` → `${X}`, `Fn::GetAtt [X, Arn]` → `${X.Arn}`, `Fn::Sub` → its string (with its
/// variable map substituted), `Fn::Join` → the joined parts, `Fn::ImportValue v` →
/// `import(v)`, `Fn::If [c, a, b]` → `if(c, a, b)`; anything else as JSON.
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next().expect("one entry");
            match key.as_str() {
                "Ref" => format!("${{{}}}", render(arg)),
                "Fn::GetAtt" => match arg {
                    Value::Array(parts) => format!(
                        "${{{}}}",
                        parts.iter().map(render).collect::<Vec<_>>().join(".")
                    ),
                    other => format!("${{{}}}", render(other)),
                },
                "Fn::Sub" => match arg {
                    Value::Array(parts) => {
                        let mut text = parts.first().map(render).unwrap_or_default();
                        if let Some(vars) = parts.get(1).and_then(Value::as_object) {
                            for (name, v) in vars {
                                text = text.replace(&format!("${{{name}}}"), &render(v));
                            }
                        }
                        text
                    }
                    other => render(other),
                },
                "Fn::Join" => {
                    let sep = arg.get(0).map(render).unwrap_or_default();
                    let parts = arg.get(1).map(as_list).unwrap_or_default();
                    parts.into_iter().map(render).collect::<Vec<_>>().join(&sep)
                }
                "Fn::ImportValue" => format!("import({})", render(arg)),
                "Fn::If" => format!(
                    "if({})",
                    as_list(arg)
                        .into_iter()
                        .map(render)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => value.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// The logical id named by a `${Id}` or `${Id.Attr}` rendering, e.g. from `!Ref Id` or
/// `!GetAtt Id.Arn`.
pub fn referenced_id(value: &Value) -> Option<String> {
    let text = render(value);
    let inner = text.strip_prefix("${")?.strip_suffix('}')?;
    let id = inner.split('.').next()?;
    (!id.is_empty() && !id.contains(['$', '{', '}', ':'])).then(|| id.to_string())
}

// ---------------------------------------------------------------------------------------
// websocket.yml

/// A route of the WebSocket API and the function behind it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// `$connect`, `register`, ...
    pub key: String,
    /// Whether a route response is configured, so the function's response body goes back
    /// to the caller.
    pub two_way: bool,
    pub function_logical_id: String,
}

/// How one route is wired, in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWiring {
    pub route_logical_id: String,
    pub key: String,
    pub integration_logical_id: String,
    pub integration_type: String,
    pub function_logical_id: String,
    /// `RouteResponseSelectionExpression` of the route.
    pub response_selection_expression: Option<String>,
    /// Logical ids of the `AWS::ApiGatewayV2::RouteResponse`s of the route.
    pub route_responses: Vec<String>,
}

/// A Lambda function, with SAM globals merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub logical_id: String,
    pub resource_type: String,
    pub runtime: Option<String>,
    pub architectures: Vec<String>,
    pub handler: Option<String>,
    pub code_uri: Option<String>,
    /// Seconds.
    pub timeout: Option<u64>,
    pub memory_size: Option<u64>,
    /// `Metadata.BuildMethod`.
    pub build_method: Option<String>,
    /// `Metadata.BuildProperties.Binary`.
    pub binary: Option<String>,
    /// Logical id of the role named by `Role`, if it is one of this template's.
    pub role_logical_id: Option<String>,
    /// Environment variables as written (intrinsics in long form).
    pub environment: BTreeMap<String, Value>,
}

/// An `AWS::Lambda::Permission`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaPermission {
    pub logical_id: String,
    pub function_logical_id: Option<String>,
    pub action: String,
    pub principal: String,
    /// `SourceArn`, rendered with [`render`].
    pub source_arn: Option<String>,
}

/// `websocket.yml`, resolved.
#[derive(Debug, Clone)]
pub struct WebsocketTemplate {
    template: Template,
    api_logical_id: String,
    wiring: Vec<RouteWiring>,
    stage_logical_id: String,
    stage_name: String,
}

impl WebsocketTemplate {
    /// Resolves the API, its routes (route → integration → function) and its stage.
    pub fn new(template: Template) -> Result<Self, TemplateError> {
        let shape = |problem: String| TemplateError::Shape {
            name: template.name.clone(),
            problem,
        };
        let apis: Vec<&str> = template
            .resources_of_type("AWS::ApiGatewayV2::Api")
            .map(|(id, _)| id)
            .collect();
        let [api] = apis[..] else {
            return Err(shape(format!(
                "expected one AWS::ApiGatewayV2::Api, found {}",
                apis.len()
            )));
        };

        let mut wiring = Vec::new();
        for (route_id, route) in template.resources_of_type("AWS::ApiGatewayV2::Route") {
            let props = &route["Properties"];
            let key = props["RouteKey"]
                .as_str()
                .ok_or_else(|| shape(format!("route {route_id} has no literal RouteKey")))?;
            let target = render(&props["Target"]);
            let integration_id = target
                .strip_prefix("integrations/")
                .and_then(|rest| referenced_id(&Value::String(rest.to_string())))
                .ok_or_else(|| {
                    shape(format!(
                        "route {route_id} ({key}) has no Target integrations/<integration>: {target:?}"
                    ))
                })?;
            let integration = template
                .resource(&integration_id)
                .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Integration")
                .ok_or_else(|| {
                    shape(format!(
                        "route {route_id} ({key}) targets {integration_id}, which is not an integration here"
                    ))
                })?;
            let uri = render(&integration["Properties"]["IntegrationUri"]);
            let function_id = uri
                .split_once("/functions/")
                .and_then(|(_, rest)| rest.strip_suffix("/invocations"))
                .and_then(|f| referenced_id(&Value::String(f.to_string())))
                .filter(|f| {
                    matches!(
                        template.resource_type(f),
                        Some("AWS::Serverless::Function" | "AWS::Lambda::Function")
                    )
                })
                .ok_or_else(|| {
                    shape(format!(
                        "integration {integration_id} of route {key} does not invoke a function of this template: {uri:?}"
                    ))
                })?;
            let route_responses = template
                .resources_of_type("AWS::ApiGatewayV2::RouteResponse")
                .filter(|(_, rr)| {
                    referenced_id(&rr["Properties"]["RouteId"]).as_deref() == Some(route_id)
                })
                .map(|(id, _)| id.to_string())
                .collect();
            wiring.push(RouteWiring {
                route_logical_id: route_id.to_string(),
                key: key.to_string(),
                integration_logical_id: integration_id,
                integration_type: integration["Properties"]["IntegrationType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                function_logical_id: function_id,
                response_selection_expression: props["RouteResponseSelectionExpression"]
                    .as_str()
                    .map(str::to_string),
                route_responses,
            });
        }
        wiring.sort_by_key(|w| route_order(&w.key));

        let stages: Vec<(&str, &Value)> = template
            .resources_of_type("AWS::ApiGatewayV2::Stage")
            .collect();
        let [(stage_id, stage)] = stages[..] else {
            return Err(shape(format!(
                "expected one AWS::ApiGatewayV2::Stage, found {}",
                stages.len()
            )));
        };
        let stage_name = template
            .resolve_string(&stage["Properties"]["StageName"])
            .ok_or_else(|| {
                shape(format!(
                    "stage {stage_id} has no StageName (literal or parameter default)"
                ))
            })?;

        Ok(Self {
            api_logical_id: api.to_string(),
            stage_logical_id: stage_id.to_string(),
            stage_name,
            wiring,
            template,
        })
    }

    /// Parses and resolves template text (for tests of the checks themselves).
    pub fn parse(name: &str, yaml: &str) -> Result<Self, TemplateError> {
        Self::new(Template::parse(name, yaml)?)
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Every route, in protocol order, then the others by key.
    pub fn routes(&self) -> Vec<Route> {
        self.wiring
            .iter()
            .map(|w| Route {
                key: w.key.clone(),
                two_way: !w.route_responses.is_empty(),
                function_logical_id: w.function_logical_id.clone(),
            })
            .collect()
    }

    /// The stage's name with default parameters (`Prod`).
    pub fn stage_name(&self) -> String {
        self.stage_name.clone()
    }

    pub fn route_wiring(&self) -> &[RouteWiring] {
        &self.wiring
    }

    pub fn api_logical_id(&self) -> &str {
        &self.api_logical_id
    }

    pub fn api(&self) -> &Value {
        &self
            .template
            .resource(&self.api_logical_id)
            .expect("resolved")["Properties"]
    }

    pub fn stage_logical_id(&self) -> &str {
        &self.stage_logical_id
    }

    pub fn stage(&self) -> &Value {
        &self
            .template
            .resource(&self.stage_logical_id)
            .expect("resolved")["Properties"]
    }

    /// Every Lambda function of the template, sorted by logical id.
    pub fn functions(&self) -> Vec<Function> {
        let t = &self.template;
        let mut out = Vec::new();
        for (id, resource) in t.resources() {
            let ty = resource["Type"].as_str().unwrap_or_default();
            if !matches!(ty, "AWS::Serverless::Function" | "AWS::Lambda::Function") {
                continue;
            }
            let props = t.function_properties(id);
            let text = |key: &str| props.get(key).and_then(|v| t.resolve_string(v));
            let number = |key: &str| {
                props
                    .get(key)
                    .and_then(|v| t.resolve_string(v))
                    .and_then(|s| s.parse().ok())
            };
            let code_uri = match props.get("CodeUri").or(props.get("Code")) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(render(other)),
                None => None,
            };
            out.push(Function {
                logical_id: id.to_string(),
                resource_type: ty.to_string(),
                runtime: text("Runtime"),
                architectures: props
                    .get("Architectures")
                    .map(as_list)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|a| t.resolve_string(a))
                    .collect(),
                handler: text("Handler"),
                code_uri,
                timeout: number("Timeout"),
                memory_size: number("MemorySize"),
                build_method: resource["Metadata"]["BuildMethod"]
                    .as_str()
                    .map(str::to_string),
                binary: resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .map(str::to_string),
                role_logical_id: props
                    .get("Role")
                    .and_then(referenced_id)
                    .filter(|r| t.resource(r).is_some()),
                environment: props
                    .get("Environment")
                    .and_then(|e| e.get("Variables"))
                    .and_then(Value::as_object)
                    .map(|m| m.clone().into_iter().collect())
                    .unwrap_or_default(),
            });
        }
        out
    }

    /// The IAM statements that apply to a function: its role's inline policies, IAM
    /// policies attached to that role, and SAM inline `Policies`.
    pub fn function_statements(&self, function_logical_id: &str) -> Vec<IamStatement> {
        let t = &self.template;
        let role = self
            .functions()
            .into_iter()
            .find(|f| f.logical_id == function_logical_id)
            .and_then(|f| f.role_logical_id);
        let attached: Vec<&str> = t
            .resources()
            .filter(|(_, r)| {
                r["Type"] == "AWS::IAM::Policy" || r["Type"] == "AWS::IAM::ManagedPolicy"
            })
            .filter(|(_, r)| {
                as_list(&r["Properties"]["Roles"])
                    .into_iter()
                    .any(|x| referenced_id(x) == role)
            })
            .map(|(id, _)| id)
            .collect();
        t.iam_statements()
            .into_iter()
            .filter(|s| {
                s.owner == function_logical_id
                    || Some(&s.owner) == role.as_ref()
                    || attached.contains(&s.owner.as_str())
            })
            .collect()
    }

    /// Every `AWS::Lambda::Permission`, sorted by logical id.
    pub fn lambda_permissions(&self) -> Vec<LambdaPermission> {
        self.template
            .resources_of_type("AWS::Lambda::Permission")
            .map(|(id, r)| {
                let p = &r["Properties"];
                LambdaPermission {
                    logical_id: id.to_string(),
                    function_logical_id: referenced_id(&p["FunctionName"]),
                    action: render(&p["Action"]),
                    principal: render(&p["Principal"]),
                    source_arn: p.get("SourceArn").map(render),
                }
            })
            .collect()
    }
}

fn route_order(key: &str) -> (usize, String) {
    let position = PROTOCOL_ROUTES
        .iter()
        .position(|k| *k == key)
        .unwrap_or(PROTOCOL_ROUTES.len());
    (position, key.to_string())
}

// ---------------------------------------------------------------------------------------
// YAML → JSON

fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Converts YAML to JSON, turning CloudFormation's short-form tags into their long form.
fn to_json(value: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => render(&to_json(other)),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = to_json(tagged.value);
            let (key, arg) = match tag {
                "Ref" => ("Ref".to_string(), inner),
                "Condition" => ("Condition".to_string(), inner),
                "GetAtt" => {
                    let arg = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((id, attr)) => serde_json::json!([id, attr]),
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), arg)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut map = Map::new();
            map.insert(key, arg);
            Value::Object(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_form_tags_become_long_form() {
        let t = Template::parse(
            "t",
            "Resources:\n  A:\n    Type: X\n    Properties:\n      R: !Ref B\n      G: !GetAtt B.Arn\n      S: !Sub \"x-${B}\"\n      I:\n        Fn::ImportValue: !Sub \"${S}:T\"\n",
        )
        .unwrap();
        let p = &t.resource("A").unwrap()["Properties"];
        assert_eq!(p["R"], json!({"Ref": "B"}));
        assert_eq!(p["G"], json!({"Fn::GetAtt": ["B", "Arn"]}));
        assert_eq!(p["S"], json!({"Fn::Sub": "x-${B}"}));
        assert_eq!(render(&p["I"]), "import(${S}:T)");
        assert_eq!(referenced_id(&p["G"]).as_deref(), Some("B"));
    }

    #[test]
    fn wildcard_actions_are_detected() {
        for a in ["*", "s3:*", "dynamodb:Get*", "s3:?etObject"] {
            assert!(is_wildcard_action(a), "{a}");
        }
        assert!(!is_wildcard_action("dynamodb:GetItem"));
    }

    #[test]
    fn wildcard_resources_are_detected() {
        for r in [
            json!("*"),
            json!("arn:aws:s3:::*"),
            json!("arn:aws:dynamodb:us-east-1:123456789012:table/*"),
            json!({"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:*:${AWS::AccountId}:${Api}/Prod/POST/@connections/*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:*/Prod/POST/@connections/*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*"}),
            json!({"Fn::Join": ["", ["arn:aws:lambda:", {"Ref": "AWS::Region"}, ":*:function:*"]]}),
            json!({"Fn::If": ["C", {"Ref": "T"}, "*"]}),
        ] {
            assert!(is_wildcard_resource(&r), "{r}");
        }
        for r in [
            json!({"Fn::GetAtt": ["Table", "Arn"]}),
            json!({"Ref": "Bucket"}),
            json!({"Fn::ImportValue": {"Fn::Sub": "${TableStackName}:ConnectionsTableArn"}}),
            json!({"Fn::Sub": "${Bucket.Arn}/*"}),
            json!("arn:aws:s3:::my-bucket/*"),
            json!({"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Group}:log-stream:*"}),
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/${StageName}/POST/@connections/*"}),
            json!({"Fn::Sub": ["arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${T}", {"T": {"Ref": "Table"}}]}),
        ] {
            assert!(!is_wildcard_resource(&r), "{r}");
        }
    }

    const SNIPPET: &str = r#"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal: { Service: lambda.amazonaws.com }
            Action: sts:AssumeRole
      ManagedPolicyArns:
        - !Sub "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
      Policies:
        - PolicyName: too-much
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: dynamodb:*
                Resource: !GetAtt Table.Arn
              - Effect: Allow
                Action: execute-api:ManageConnections
                Resource: "*"
              - Effect: Allow
                NotAction: iam:*
                Resource: !GetAtt Table.Arn
              - Sid: Guard
                Effect: Deny
                Action: "*"
                Resource: "*"
"#;

    #[test]
    fn wildcard_grants_in_a_snippet_are_reported_and_deny_guards_are_not() {
        let t = Template::parse("snippet.yml", SNIPPET).unwrap();
        let found = t.wildcard_grants();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].contains("Role/too-much/#0: wildcard action \"dynamodb:*\""));
        assert!(found[1].contains("Role/too-much/#1: wildcard resource \"*\""));
        assert!(found.iter().any(|f| f.contains("NotAction")));
        assert!(!found.iter().any(|f| f.contains("Guard")));
        assert_eq!(t.iam_statements().len(), 4, "trust policy is not a grant");
        assert_eq!(t.opaque_policies().len(), 1);
    }

    #[test]
    fn sam_globals_are_merged_into_functions() {
        let t = Template::parse(
            "g.yml",
            r#"
Globals:
  Function:
    Runtime: provided.al2023
    Timeout: 10
    Environment: { Variables: { A: "1", B: "2" } }
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 5
      Environment: { Variables: { B: "3" } }
"#,
        )
        .unwrap();
        let p = t.function_properties("F");
        assert_eq!(p["Runtime"], "provided.al2023");
        assert_eq!(p["Timeout"], 5);
        assert_eq!(p["Environment"]["Variables"], json!({"A": "1", "B": "3"}));
    }

    #[test]
    fn a_route_without_an_integration_is_an_error() {
        let err = WebsocketTemplate::parse(
            "w.yml",
            r#"
Resources:
  Api: { Type: AWS::ApiGatewayV2::Api }
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties: { ApiId: !Ref Api, RouteKey: ping, Target: !Sub "integrations/${Missing}" }
  S:
    Type: AWS::ApiGatewayV2::Stage
    Properties: { ApiId: !Ref Api, StageName: Prod }
"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Missing"), "{err}");
    }
}
