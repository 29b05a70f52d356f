//! The stacks of one deployment and the intrinsic functions evaluated over them, to the
//! values CloudFormation would give them with local stand-ins for the account, the region
//! and the physical names it would make up.
//!
//! Evaluation is lazy: only what a caller asks for is resolved (a function's environment,
//! a role's policies, a table's keys), so a resource the local run never needs (a CloudFront
//! distribution, a dashboard) cannot fail it. Nested stacks are made when first needed and
//! remembered; an `Fn::ImportValue` that no loaded stack exports makes the stack beside the
//! template that would export it, named as the import names it (how `websocket.yml` deployed
//! on its own finds the tables stack it needs).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::intrinsic::{render, single_entry};
use crate::Template;

use super::LocalValues;

/// A problem, already saying where.
pub(super) type Eval<T> = Result<T, String>;

/// How deep references may chain before it must be a cycle.
const MAX_DEPTH: usize = 64;

/// Resource types that are a stack of their own.
pub(super) const NESTED_STACK_TYPES: [&str; 2] =
    ["AWS::Serverless::Application", "AWS::CloudFormation::Stack"];

/// One stack: a template deployed under a name with parameter values.
pub(super) struct Stack {
    /// The template's file name, for messages.
    pub(super) file: String,
    pub(super) path: PathBuf,
    pub(super) name: String,
    /// The template with its conditions applied (`Fn::If` and `AWS::NoValue` gone).
    pub(super) template: Template,
    /// Every parameter's value: a string, or a list for the list types.
    pub(super) parameters: BTreeMap<String, Value>,
}

impl Stack {
    /// A resource with `Condition`s applied, with its type.
    pub(super) fn resource(&self, id: &str) -> Option<(&str, &Value)> {
        let resource = self.template.resource(id)?;
        Some((resource["Type"].as_str().unwrap_or_default(), resource))
    }
}

pub(super) struct Resolver<'a> {
    pub(super) local: &'a LocalValues,
    stacks: RefCell<Vec<Rc<Stack>>>,
    /// (parent stack, logical id) → nested stack.
    children: RefCell<BTreeMap<(usize, String), usize>>,
    making: RefCell<BTreeSet<(usize, String)>>,
    depth: Cell<usize>,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(local: &'a LocalValues) -> Self {
        Self {
            local,
            stacks: RefCell::default(),
            children: RefCell::default(),
            making: RefCell::default(),
            depth: Cell::new(0),
        }
    }

    pub(super) fn stack(&self, index: usize) -> Rc<Stack> {
        Rc::clone(&self.stacks.borrow()[index])
    }

    /// `what` prefixed with its stack's template file, unless it is the first stack's
    /// (whose file every error of `resolve` names already).
    pub(super) fn located(&self, stack: usize, what: &str) -> String {
        if stack == 0 {
            what.to_string()
        } else {
            format!("{}: {what}", self.stack(stack).file)
        }
    }

    pub(super) fn stack_count(&self) -> usize {
        self.stacks.borrow().len()
    }

    /// Loads the template at `path` as stack `name`, with `overrides` for its parameters
    /// (each must be one it declares, and one of its `AllowedValues` if it lists them).
    pub(super) fn add_stack(
        &self,
        path: &Path,
        name: &str,
        overrides: &[(String, String)],
    ) -> Result<usize, crate::TemplateError> {
        let template = Template::load(path)?;
        let file = template.name().to_string();
        let parameter_error = |problem: String| crate::TemplateError::Parameter {
            template: file.clone(),
            problem,
        };
        let declared = template.json()["Parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, value) in overrides {
            let Some(definition) = declared.get(key) else {
                let known: Vec<&str> = declared.keys().map(String::as_str).collect();
                return Err(parameter_error(format!(
                    "no parameter {key} (its parameters: {})",
                    known.join(", ")
                )));
            };
            if definition["Type"] == "Number" && value.trim().parse::<f64>().is_err() {
                return Err(parameter_error(format!(
                    "{key}={value} is not a number, which its Type Number requires"
                )));
            }
            if let Some(allowed) = definition["AllowedValues"].as_array() {
                let allowed: Vec<String> = allowed.iter().map(scalar_text).collect();
                if !allowed.contains(value) {
                    return Err(parameter_error(format!(
                        "{key}={value} is not one of its AllowedValues: {}",
                        allowed.join(", ")
                    )));
                }
            }
        }
        let mut parameters = BTreeMap::new();
        for (key, definition) in &declared {
            let text = match overrides.iter().rev().find(|(k, _)| k == key) {
                Some((_, value)) => value.clone(),
                None => match &definition["Default"] {
                    Value::Null => {
                        return Err(parameter_error(format!(
                            "parameter {key} has no Default and no value was given"
                        )))
                    }
                    default => scalar_text(default),
                },
            };
            let is_list = definition["Type"]
                .as_str()
                .is_some_and(|t| t == "CommaDelimitedList" || t.starts_with("List<"));
            let value = if is_list {
                Value::Array(text.split(',').map(|s| Value::from(s.trim())).collect())
            } else {
                Value::from(text)
            };
            parameters.insert(key.clone(), value);
        }
        let pairs: Vec<(&str, &str)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let template = template.with_parameters(&pairs)?;
        let mut stacks = self.stacks.borrow_mut();
        stacks.push(Rc::new(Stack {
            file,
            path: path.to_path_buf(),
            name: name.to_string(),
            template,
            parameters,
        }));
        Ok(stacks.len() - 1)
    }

    /// Every nested stack of every loaded stack, made (the list grows as they are).
    pub(super) fn make_all_nested(&self) -> Eval<()> {
        let mut index = 0;
        while index < self.stack_count() {
            let stack = self.stack(index);
            for (id, resource) in stack.template.resources() {
                let ty = resource["Type"].as_str().unwrap_or_default();
                if NESTED_STACK_TYPES.contains(&ty)
                    && !self.making.borrow().contains(&(index, id.to_string()))
                {
                    self.nested(index, id)?;
                }
            }
            index += 1;
        }
        Ok(())
    }

    /// The nested stack `id` of stack `parent`, made on first use.
    fn nested(&self, parent: usize, id: &str) -> Eval<usize> {
        let key = (parent, id.to_string());
        if let Some(&child) = self.children.borrow().get(&key) {
            return Ok(child);
        }
        let stack = self.stack(parent);
        let at = self.located(parent, id);
        if !self.making.borrow_mut().insert(key.clone()) {
            return Err(format!(
                "{at}: its parameters depend on its own outputs (a cycle)"
            ));
        }
        let made = (|| {
            let (_, resource) = stack
                .resource(id)
                .ok_or_else(|| format!("{at}: no such nested stack"))?;
            let props = &resource["Properties"];
            let location = props
                .get("Location")
                .or_else(|| props.get("TemplateURL"))
                .ok_or_else(|| format!("{at}: Location: missing"))?;
            let location = match self.eval(parent, location)? {
                Value::String(s) => s,
                other => {
                    return Err(format!(
                        "{at}: Location: {other} is not a local template file (serverless \
                         repository applications are not resolved locally)"
                    ))
                }
            };
            let dir = stack.path.parent().unwrap_or(Path::new("."));
            let path = dir.join(&location);
            let mut parameters = Vec::new();
            for (key, value) in props["Parameters"].as_object().into_iter().flatten() {
                let value = self
                    .eval(parent, value)
                    .and_then(|v| as_parameter_text(&v))
                    .map_err(|e| format!("{at}: Parameters.{key}: {e}"))?;
                parameters.push((key.clone(), value));
            }
            let name = generated_name(&stack.name, id, 128);
            self.add_stack(&path, &name, &parameters)
                .map_err(|e| format!("{at}: {e}"))
        })();
        self.making.borrow_mut().remove(&key);
        let child = made?;
        self.children.borrow_mut().insert(key, child);
        Ok(child)
    }

    /// `value` with every intrinsic function of stack `stack` evaluated.
    pub(super) fn eval(&self, stack: usize, value: &Value) -> Eval<Value> {
        let depth = self.depth.get();
        if depth > MAX_DEPTH {
            return Err(format!(
                "references chain more than {MAX_DEPTH} deep (a cycle?) at {value}"
            ));
        }
        self.depth.set(depth + 1);
        let result = self.eval_inner(stack, value);
        self.depth.set(depth);
        result
    }

    fn eval_inner(&self, stack: usize, value: &Value) -> Eval<Value> {
        match value {
            Value::Array(items) => {
                return items.iter().map(|v| self.eval(stack, v)).collect();
            }
            Value::Object(map) if !is_intrinsic(value) => {
                let mut out = Map::new();
                for (key, item) in map {
                    out.insert(key.clone(), self.eval(stack, item)?);
                }
                return Ok(Value::Object(out));
            }
            Value::Object(_) => {}
            other => return Ok(other.clone()),
        }
        let Some((function, arg)) = single_entry(value) else {
            unreachable!("an intrinsic has one entry");
        };
        match function {
            "Ref" => {
                let name = self.text(stack, arg)?;
                self.reference(stack, &name)
            }
            "Fn::GetAtt" => {
                let (id, attribute) = match arg {
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .ok_or_else(|| format!("Fn::GetAtt {s:?} is not Id.Attribute"))?,
                    Value::Array(parts) if parts.len() == 2 => {
                        (self.text(stack, &parts[0])?, self.text(stack, &parts[1])?)
                    }
                    other => return Err(format!("Fn::GetAtt takes [Id, Attribute]: {other}")),
                };
                self.attribute(stack, &id, &attribute)
            }
            "Fn::Sub" => self.sub(stack, arg).map(Value::from),
            "Fn::Join" => {
                let [delimiter, items] = two(arg, "Fn::Join")?;
                let delimiter = self.text(stack, delimiter)?;
                let items = self.list(stack, items)?;
                let parts: Vec<String> = items
                    .iter()
                    .map(|v| scalar(v).ok_or_else(|| format!("Fn::Join: {v} is not a string")))
                    .collect::<Eval<_>>()?;
                Ok(Value::from(parts.join(&delimiter)))
            }
            "Fn::Select" => {
                let [index, items] = two(arg, "Fn::Select")?;
                let index = self.text(stack, index)?;
                let items = self.list(stack, items)?;
                let at: usize = index
                    .parse()
                    .map_err(|_| format!("Fn::Select: index {index:?} is not a number"))?;
                items
                    .get(at)
                    .cloned()
                    .ok_or_else(|| format!("Fn::Select: index {at} of a list of {}", items.len()))
            }
            "Fn::Split" => {
                let [delimiter, text] = two(arg, "Fn::Split")?;
                let delimiter = self.text(stack, delimiter)?;
                let text = self.text(stack, text)?;
                Ok(Value::Array(
                    text.split(delimiter.as_str()).map(Value::from).collect(),
                ))
            }
            "Fn::ImportValue" => {
                let name = self.text(stack, arg)?;
                self.import(&name)
                    .map_err(|e| format!("Fn::ImportValue {name}: {e}"))
            }
            "Fn::FindInMap" => {
                let keys: Vec<String> = match arg {
                    Value::Array(parts) if parts.len() == 3 => parts
                        .iter()
                        .map(|p| self.text(stack, p))
                        .collect::<Eval<_>>()?,
                    other => return Err(format!("Fn::FindInMap takes three values: {other}")),
                };
                let s = self.stack(stack);
                let found = s.template.json()["Mappings"]
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .cloned()
                    .ok_or_else(|| format!("Fn::FindInMap: no Mappings {}", keys.join(".")))?;
                self.eval(stack, &found)
            }
            "Fn::Base64" => self.eval(stack, arg),
            "Fn::GetAZs" => {
                let region = &self.local.region;
                Ok(Value::Array(
                    ["a", "b", "c"]
                        .iter()
                        .map(|z| Value::from(format!("{region}{z}")))
                        .collect(),
                ))
            }
            "Fn::If" | "Condition" | "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" => Err(
                format!("{function} outside Conditions, Resources, Outputs or Globals: {value}"),
            ),
            other => Err(format!("{other} is not resolved locally")),
        }
    }

    /// A value that must come out as one string (numbers and booleans as written).
    pub(super) fn text(&self, stack: usize, value: &Value) -> Eval<String> {
        let v = self.eval(stack, value)?;
        scalar(&v).ok_or_else(|| format!("{} is not a string but {v}", render(value)))
    }

    fn list(&self, stack: usize, value: &Value) -> Eval<Vec<Value>> {
        match self.eval(stack, value)? {
            Value::Array(items) => Ok(items),
            other => Err(format!("{other} is not a list")),
        }
    }

    fn sub(&self, stack: usize, arg: &Value) -> Eval<String> {
        let (text, variables) = match arg {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Array(parts) if parts.len() == 2 => {
                let text = parts[0]
                    .as_str()
                    .ok_or_else(|| format!("Fn::Sub: {} is not a string", parts[0]))?;
                let variables = parts[1]
                    .as_object()
                    .ok_or_else(|| format!("Fn::Sub: {} is not a mapping", parts[1]))?;
                let mut evaluated = Map::new();
                for (name, v) in variables {
                    let v = self
                        .text(stack, v)
                        .map_err(|e| format!("Fn::Sub ${name}: {e}"))?;
                    evaluated.insert(name.clone(), Value::from(v));
                }
                (text.to_string(), evaluated)
            }
            other => return Err(format!("Fn::Sub takes a string or [string, map]: {other}")),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            // `${!Literal}` is written as `${Literal}`.
            if let Some(literal) = after.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after
                .find('}')
                .ok_or_else(|| format!("Fn::Sub: unclosed ${{ in {text:?}"))?;
            let name = after[..end].trim();
            let value = if let Some(v) = variables.get(name) {
                scalar(v).unwrap_or_default()
            } else if let Some((id, attribute)) = name.split_once('.') {
                let v = self.attribute(stack, id, attribute)?;
                scalar(&v).ok_or_else(|| format!("Fn::Sub ${{{name}}} is {v}, not a string"))?
            } else {
                let v = self.reference(stack, name)?;
                scalar(&v).ok_or_else(|| format!("Fn::Sub ${{{name}}} is {v}, not a string"))?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `Ref name`: a pseudo parameter, a parameter, or a resource's physical id.
    fn reference(&self, stack: usize, name: &str) -> Eval<Value> {
        let local = self.local;
        let s = self.stack(stack);
        let pseudo = match name {
            "AWS::Region" => Some(local.region.clone()),
            "AWS::AccountId" => Some(local.account_id.clone()),
            "AWS::StackName" => Some(s.name.clone()),
            "AWS::StackId" => Some(self.stack_id(&s.name)),
            "AWS::URLSuffix" => Some(local.url_suffix.clone()),
            "AWS::Partition" => Some(local.partition().to_string()),
            "AWS::NotificationARNs" => return Ok(Value::Array(Vec::new())),
            "AWS::NoValue" => return Err("Ref AWS::NoValue where a value is needed".into()),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Value::from(value));
        }
        if let Some(value) = s.parameters.get(name) {
            return Ok(value.clone());
        }
        if s.resource(name).is_some() {
            return self.physical_id(stack, name).map(Value::from);
        }
        Err(if s.template.json()["Resources"].get(name).is_some() {
            format!("Ref {name}: that resource is not created with these parameters (its Condition is false)")
        } else {
            format!("Ref {name}: {} has no parameter or resource {name}", s.file)
        })
    }

    /// What `Ref` gives for a resource.
    pub(super) fn physical_id(&self, stack: usize, id: &str) -> Eval<String> {
        let s = self.stack(stack);
        let (ty, resource) = s
            .resource(id)
            .ok_or_else(|| self.located(stack, &format!("no resource {id}")))?;
        let props = &resource["Properties"];
        let named = |property: &str, max: usize| -> Eval<String> {
            match props.get(property) {
                Some(v) => self
                    .text(stack, v)
                    .map_err(|e| self.located(stack, &format!("{id}: {property}: {e}"))),
                None => Ok(generated_name(&s.name, id, max)),
            }
        };
        let local = self.local;
        Ok(match ty {
            "AWS::DynamoDB::Table" => named("TableName", 255)?,
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => named("FunctionName", 64)?,
            "AWS::IAM::Role" => named("RoleName", 64)?,
            "AWS::Logs::LogGroup" => named("LogGroupName", 512)?,
            "AWS::SQS::Queue" => format!(
                "https://sqs.{}.{}/{}/{}",
                local.region,
                local.url_suffix,
                local.account_id,
                self.queue_name(stack, id)?
            ),
            "AWS::SNS::Topic" => format!(
                "arn:{}:sns:{}:{}:{}",
                local.partition(),
                local.region,
                local.account_id,
                named("TopicName", 256)?
            ),
            "AWS::ApiGatewayV2::Stage" => named("StageName", 128)?,
            "AWS::S3::Bucket" => named("BucketName", 63)?.to_ascii_lowercase(),
            "AWS::ApiGatewayV2::Api" => short_id(&s.name, id, 10),
            t if t.starts_with("AWS::ApiGatewayV2::") => short_id(&s.name, id, 7),
            t if NESTED_STACK_TYPES.contains(&t) => {
                let child = self.nested(stack, id)?;
                self.stack_id(&self.stack(child).name)
            }
            _ => generated_name(&s.name, id, 128),
        })
    }

    fn queue_name(&self, stack: usize, id: &str) -> Eval<String> {
        let s = self.stack(stack);
        let props = &s.template.resource(id).map(|r| &r["Properties"]);
        let props = props.unwrap_or(&Value::Null);
        if let Some(name) = props.get("QueueName") {
            return self.text(stack, name);
        }
        let fifo = props
            .get("FifoQueue")
            .is_some_and(|f| f == true || f == "true");
        let name = generated_name(&s.name, id, if fifo { 75 } else { 80 });
        Ok(if fifo { format!("{name}.fifo") } else { name })
    }

    fn stack_id(&self, name: &str) -> String {
        let local = self.local;
        let h = hash(&["stack-id", name]);
        format!(
            "arn:{}:cloudformation:{}:{}:stack/{name}/{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            local.partition(),
            local.region,
            local.account_id,
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xffff,
            (h >> 48) & 0xffff,
            h & 0xffff_ffff_ffff
        )
    }

    /// `Fn::GetAtt id.attribute`.
    fn attribute(&self, stack: usize, id: &str, attribute: &str) -> Eval<Value> {
        let s = self.stack(stack);
        let local = self.local;
        let (ty, _) = s.resource(id).ok_or_else(|| {
            if s.template.json()["Resources"].get(id).is_some() {
                format!("Fn::GetAtt {id}.{attribute}: that resource is not created with these parameters (its Condition is false)")
            } else {
                format!("Fn::GetAtt {id}.{attribute}: {} has no resource {id}", s.file)
            }
        })?;
        let arn = |service: &str, region: &str, account: &str, rest: String| {
            Value::from(format!(
                "arn:{}:{service}:{region}:{account}:{rest}",
                local.partition()
            ))
        };
        let (region, account) = (local.region.as_str(), local.account_id.as_str());
        let found = match (ty, attribute) {
            (t, _) if NESTED_STACK_TYPES.contains(&t) => {
                let output = attribute.strip_prefix("Outputs.").ok_or_else(|| {
                    format!("Fn::GetAtt {id}.{attribute}: a nested stack has Outputs.Name only")
                })?;
                let child = self.nested(stack, id)?;
                return self.output(child, output);
            }
            ("AWS::DynamoDB::Table", "Arn") => Some(arn(
                "dynamodb",
                region,
                account,
                format!("table/{}", self.physical_id(stack, id)?),
            )),
            ("AWS::DynamoDB::Table", "StreamArn") => Some(arn(
                "dynamodb",
                region,
                account,
                format!(
                    "table/{}/stream/1970-01-01T00:00:00.000",
                    self.physical_id(stack, id)?
                ),
            )),
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => Some(arn(
                "lambda",
                region,
                account,
                format!("function:{}", self.physical_id(stack, id)?),
            )),
            ("AWS::IAM::Role", "Arn") => Some(arn(
                "iam",
                "",
                account,
                format!("role/{}", self.physical_id(stack, id)?),
            )),
            ("AWS::IAM::Role", "RoleId") => Some(Value::from(format!(
                "AROA{}",
                short_id(&s.name, id, 17).to_ascii_uppercase()
            ))),
            ("AWS::SQS::Queue", "Arn") => {
                Some(arn("sqs", region, account, self.queue_name(stack, id)?))
            }
            ("AWS::SQS::Queue", "QueueName") => Some(Value::from(self.queue_name(stack, id)?)),
            ("AWS::SQS::Queue", "QueueUrl") | ("AWS::SNS::Topic", "TopicArn") => {
                Some(Value::from(self.physical_id(stack, id)?))
            }
            ("AWS::Logs::LogGroup", "Arn") => Some(arn(
                "logs",
                region,
                account,
                format!("log-group:{}:*", self.physical_id(stack, id)?),
            )),
            ("AWS::SNS::Topic", "TopicName") => Some(Value::from(
                self.physical_id(stack, id)?
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            )),
            ("AWS::ApiGatewayV2::Api", "ApiId") => Some(Value::from(self.physical_id(stack, id)?)),
            ("AWS::ApiGatewayV2::Api", "ApiEndpoint") => Some(Value::from(format!(
                "wss://{}.execute-api.{region}.{}",
                self.physical_id(stack, id)?,
                local.url_suffix
            ))),
            _ => None,
        };
        found.ok_or_else(|| format!("Fn::GetAtt {id}.{attribute} ({ty}) is not resolved locally"))
    }

    /// Output `name` of stack `stack`, evaluated.
    pub(super) fn output(&self, stack: usize, name: &str) -> Eval<Value> {
        let s = self.stack(stack);
        let output = s
            .template
            .output(name)
            .ok_or_else(|| format!("{} has no output {name} (with these parameters)", s.file))?;
        self.eval(stack, &output["Value"])
            .map_err(|e| self.located(stack, &format!("Outputs.{name}: {e}")))
    }

    /// The value some stack exports as `name`, making the stacks that could export it.
    fn import(&self, name: &str) -> Eval<Value> {
        if let Some(found) = self.find_export(name)? {
            return Ok(found);
        }
        self.make_all_nested()?;
        if let Some(found) = self.find_export(name)? {
            return Ok(found);
        }
        if let Some(found) = self.export_from_a_template_beside(name)? {
            return Ok(found);
        }
        Err("no stack of this deployment exports it, and no template beside it would".into())
    }

    fn find_export(&self, name: &str) -> Eval<Option<Value>> {
        for index in 0..self.stack_count() {
            let s = self.stack(index);
            for (output_name, output) in s.template.json()["Outputs"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let Some(export) = output.get("Export").map(|e| &e["Name"]) else {
                    continue;
                };
                let exported = self.text(index, export).map_err(|e| {
                    self.located(index, &format!("Outputs.{output_name}.Export.Name: {e}"))
                })?;
                if exported == name {
                    return self.output(index, output_name).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Deploys, under the stack name the import implies, the first template beside the
    /// first stack's (by file name) whose exports are named `${AWS::StackName}<suffix>`
    /// with `name` ending in that suffix.
    fn export_from_a_template_beside(&self, name: &str) -> Eval<Option<Value>> {
        let first = self.stack(0);
        let dir = first.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let loaded: BTreeSet<PathBuf> = (0..self.stack_count())
            .map(|i| self.stack(i).path.clone())
            .collect();
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
            .filter(|p| !loaded.contains(p))
            .collect();
        candidates.sort();
        for path in candidates {
            let Ok(template) = Template::load(&path) else {
                continue;
            };
            let nests = template
                .resources()
                .any(|(_, r)| NESTED_STACK_TYPES.contains(&r["Type"].as_str().unwrap_or_default()));
            if nests {
                continue;
            }
            let stack_name = template.json()["Outputs"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, o)| o.get("Export"))
                .find_map(|export| {
                    let written = render(&export["Name"]);
                    let suffix = written.strip_prefix("${AWS::StackName}")?;
                    let stack_name = name.strip_suffix(suffix)?;
                    (!stack_name.is_empty() && !suffix.contains("${"))
                        .then(|| stack_name.to_string())
                });
            let Some(stack_name) = stack_name else {
                continue;
            };
            self.add_stack(&path, &stack_name, &[])
                .map_err(|e| e.to_string())?;
            if let Some(found) = self.find_export(name)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Whether `value` is `{ "Ref" | "Fn::…" | "Condition": … }`.
fn is_intrinsic(value: &Value) -> bool {
    single_entry(value)
        .is_some_and(|(k, _)| k == "Ref" || k == "Condition" || k.starts_with("Fn::"))
}

fn two<'v>(arg: &'v Value, function: &str) -> Eval<[&'v Value; 2]> {
    match arg {
        Value::Array(parts) if parts.len() == 2 => Ok([&parts[0], &parts[1]]),
        other => Err(format!("{function} takes two values: {other}")),
    }
}

/// A scalar as text; `None` for lists, maps and null.
pub(super) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn scalar_text(value: &Value) -> String {
    scalar(value).unwrap_or_else(|| value.to_string())
}

/// A nested stack's parameter as CloudFormation passes it: text, lists comma-joined.
fn as_parameter_text(value: &Value) -> Eval<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| scalar(v).ok_or_else(|| format!("{v} is not a string")))
            .collect::<Eval<Vec<_>>>()
            .map(|parts| parts.join(",")),
        other => scalar(other).ok_or_else(|| format!("{other} is not a string")),
    }
}

/// FNV-1a over the parts, so the same stack and resource get the same made-up names on
/// every run (tables made by one run are found by the next).
fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn base36(mut n: u64, len: usize, upper: bool) -> String {
    let digits: &[u8] = if upper {
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    } else {
        b"0123456789abcdefghijklmnopqrstuvwxyz"
    };
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// CloudFormation's name for a resource it names itself: `{stack}-{LogicalId}-{SUFFIX}`,
/// the stack name and logical id shortened to fit `max`.
pub(super) fn generated_name(stack: &str, id: &str, max: usize) -> String {
    let suffix = base36(hash(&[stack, id]), 12, true);
    let room = max.saturating_sub(suffix.len() + 2);
    let id_len = id.len().min(room / 2).max(room.saturating_sub(stack.len()));
    let id_part: String = id.chars().take(id_len.min(id.len())).collect();
    let stack_part: String = stack
        .chars()
        .take(room.saturating_sub(id_part.len()))
        .collect();
    format!("{stack_part}-{id_part}-{suffix}")
}

/// An id like API Gateway's (`a1b2c3d4e5`): lower-case letters and digits.
fn short_id(stack: &str, id: &str, len: usize) -> String {
    base36(hash(&["id", stack, id]), len, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_names_are_stable_and_fit() {
        let a = generated_name("webchat", "ConnectionsTable", 255);
        assert_eq!(a, generated_name("webchat", "ConnectionsTable", 255));
        assert!(a.starts_with("webchat-ConnectionsTable-"), "{a}");
        assert_eq!(a.len(), "webchat-ConnectionsTable-".len() + 12);
        let long = generated_name(&"s".repeat(80), "AVeryLongFunctionLogicalIdIndeed", 64);
        assert!(long.len() <= 64, "{long}");
        assert!(long.contains("-AVeryLong"), "{long}");
    }
}
