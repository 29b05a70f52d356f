//! `websocket.yml` resolved: its one WebSocket API, each route's integration, function
//! and route responses, its stage, its SAM functions and their Lambda permissions.

use std::collections::BTreeMap;

use serde_json::Value;
use webchat_shared_types::Route;

use crate::intrinsic::{as_list, referenced_id, render};
use crate::{IamStatement, Template, TemplateError};

const FUNCTION: &str = "AWS::Serverless::Function";

/// How one route is wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWiring {
    /// `$connect`, `register`, ...
    pub key: String,
    /// Whether a route response is configured, so the function's response body goes back
    /// to the caller.
    pub two_way: bool,
    /// Logical id of the `AWS::ApiGatewayV2::Route`.
    pub route_logical_id: String,
    /// `IntegrationType` of its integration (`AWS_PROXY` for a Lambda).
    pub integration_type: String,
    /// Logical id of the function its integration invokes.
    pub function_logical_id: String,
    /// `RouteResponseSelectionExpression` of the route.
    pub response_selection_expression: Option<String>,
    /// Logical ids of the `AWS::ApiGatewayV2::RouteResponse`s of the route.
    pub route_responses: Vec<String>,
}

/// A SAM function, with `Globals.Function` merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Logical id of the `AWS::Serverless::Function`.
    pub logical_id: String,
    /// `Runtime` (`provided.al2023` for the Rust binaries).
    pub runtime: Option<String>,
    /// `Architectures`, e.g. `arm64`.
    pub architectures: Vec<String>,
    /// `Handler`, when set.
    pub handler: Option<String>,
    /// `CodeUri`, when set.
    pub code_uri: Option<String>,
    /// Seconds.
    pub timeout: Option<u64>,
    /// `Metadata.BuildMethod`.
    pub build_method: Option<String>,
    /// `Metadata.BuildProperties.Binary`.
    pub binary: Option<String>,
    /// Logical id of the role named by `Role`, if it is one of this template's.
    pub role_logical_id: Option<String>,
    /// Environment variables as written.
    pub environment: BTreeMap<String, Value>,
}

/// An `AWS::Lambda::Permission`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaPermission {
    /// Logical id of the permission.
    pub logical_id: String,
    /// Logical id of the function it lets be invoked, when it names one of this template's.
    pub function_logical_id: Option<String>,
    /// `Action`, e.g. `lambda:InvokeFunction`.
    pub action: String,
    /// `Principal`, e.g. `apigateway.amazonaws.com`.
    pub principal: String,
    /// `SourceArn`, rendered with [`render`].
    pub source_arn: Option<String>,
}

/// `websocket.yml`, resolved.
#[derive(Debug, Clone)]
pub struct WebsocketTemplate {
    template: Template,
    api_logical_id: String,
    routes: Vec<RouteWiring>,
    stage_logical_id: String,
    stage_name: String,
}

impl WebsocketTemplate {
    /// Resolves the API, its routes (route → integration → function) and its stage.
    pub fn new(template: Template) -> Result<Self, TemplateError> {
        let shape = |problem: String| TemplateError::Shape {
            name: template.name().to_string(),
            problem,
        };
        let (api, _) = only_one(&template, "AWS::ApiGatewayV2::Api").map_err(shape)?;
        let mut routes = Vec::new();
        for (route_id, route) in template.resources_of_type("AWS::ApiGatewayV2::Route") {
            routes.push(wire(&template, route_id, &route["Properties"]).map_err(shape)?);
        }
        // Protocol order (`Route::ALL`), then routes the protocol does not know, by key.
        routes.sort_by_key(|r| {
            let known = Route::from_key(&r.key);
            (known.is_none(), known, r.key.clone())
        });
        let (stage_id, stage) = only_one(&template, "AWS::ApiGatewayV2::Stage").map_err(shape)?;
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
            routes,
            template,
        })
    }

    /// The template as a whole, for what this view does not cover.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Every route, in protocol order, then the others by key.
    pub fn routes(&self) -> Vec<RouteWiring> {
        self.routes.clone()
    }

    /// The stage's name with default parameters (`Prod`).
    pub fn stage_name(&self) -> String {
        self.stage_name.clone()
    }

    /// Logical id of the `AWS::ApiGatewayV2::Api`.
    pub fn api_logical_id(&self) -> &str {
        &self.api_logical_id
    }

    /// The API's properties.
    pub fn api(&self) -> &Value {
        &self.template.json()["Resources"][&self.api_logical_id]["Properties"]
    }

    /// Logical id of the `AWS::ApiGatewayV2::Stage`.
    pub fn stage_logical_id(&self) -> &str {
        &self.stage_logical_id
    }

    /// The stage's properties.
    pub fn stage(&self) -> &Value {
        &self.template.json()["Resources"][&self.stage_logical_id]["Properties"]
    }

    /// Every SAM function of the template, sorted by logical id.
    pub fn functions(&self) -> Vec<Function> {
        let t = &self.template;
        t.resources_of_type(FUNCTION)
            .map(|(id, resource)| {
                let props = t.function_properties(id);
                let text = |key: &str| props.get(key).and_then(|v| t.resolve_string(v));
                let number = |key: &str| text(key).and_then(|s| s.parse().ok());
                let metadata = |key: &str| {
                    resource["Metadata"]
                        .pointer(key)?
                        .as_str()
                        .map(str::to_string)
                };
                Function {
                    logical_id: id.to_string(),
                    runtime: text("Runtime"),
                    architectures: props
                        .get("Architectures")
                        .map(as_list)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|a| t.resolve_string(a))
                        .collect(),
                    handler: text("Handler"),
                    code_uri: props.get("CodeUri").map(render),
                    timeout: number("Timeout"),
                    build_method: metadata("/BuildMethod"),
                    binary: metadata("/BuildProperties/Binary"),
                    role_logical_id: props
                        .get("Role")
                        .and_then(referenced_id)
                        .filter(|r| t.resource(r).is_some()),
                    environment: props
                        .get("Environment")
                        .and_then(|e| e["Variables"].as_object())
                        .map(|m| m.clone().into_iter().collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The IAM statements that apply to a function: its role's inline policies (policies
    /// held anywhere else are [`Template::opaque_policies`]).
    pub fn function_statements(&self, function_logical_id: &str) -> Vec<IamStatement> {
        let role = self
            .functions()
            .into_iter()
            .find(|f| f.logical_id == function_logical_id)
            .and_then(|f| f.role_logical_id);
        self.template
            .iam_statements()
            .into_iter()
            .filter(|s| Some(&s.owner) == role.as_ref())
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

fn only_one<'a>(template: &'a Template, ty: &'a str) -> Result<(&'a str, &'a Value), String> {
    let found: Vec<_> = template.resources_of_type(ty).collect();
    match found[..] {
        [one] => Ok(one),
        _ => Err(format!("expected one {ty}, found {}", found.len())),
    }
}

/// Follows one route to its integration, function and route responses.
pub(crate) fn wire(
    template: &Template,
    route_id: &str,
    props: &Value,
) -> Result<RouteWiring, String> {
    let key = props["RouteKey"]
        .as_str()
        .ok_or_else(|| format!("route {route_id} has no literal RouteKey"))?;
    let target = render(&props["Target"]);
    let integration_id = target
        .strip_prefix("integrations/")
        .and_then(|rest| referenced_id(&Value::from(rest)))
        .ok_or_else(|| {
            format!("route {route_id} ({key}) has no Target integrations/<integration>: {target:?}")
        })?;
    let integration = template
        .resource(&integration_id)
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Integration")
        .ok_or_else(|| {
            format!("route {route_id} ({key}) targets {integration_id}, which is not an integration here")
        })?;
    let uri = render(&integration["Properties"]["IntegrationUri"]);
    let function_id = uri
        .split_once("/functions/")
        .and_then(|(_, rest)| rest.strip_suffix("/invocations"))
        .and_then(|f| referenced_id(&Value::from(f)))
        .filter(|f| template.resource_type(f) == Some(FUNCTION))
        .ok_or_else(|| {
            format!("integration {integration_id} of route {key} does not invoke a function of this template: {uri:?}")
        })?;
    let route_responses: Vec<String> = template
        .resources_of_type("AWS::ApiGatewayV2::RouteResponse")
        .filter(|(_, rr)| referenced_id(&rr["Properties"]["RouteId"]).as_deref() == Some(route_id))
        .map(|(id, _)| id.to_string())
        .collect();
    Ok(RouteWiring {
        key: key.to_string(),
        two_way: !route_responses.is_empty(),
        route_logical_id: route_id.to_string(),
        integration_type: integration["Properties"]["IntegrationType"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        function_logical_id: function_id,
        response_selection_expression: props["RouteResponseSelectionExpression"]
            .as_str()
            .map(str::to_string),
        route_responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_without_an_integration_is_an_error() {
        let template = Template::parse(
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
        .unwrap();
        let err = WebsocketTemplate::new(template).unwrap_err();
        assert!(err.to_string().contains("Missing"), "{err}");
    }
}
