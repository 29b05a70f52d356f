//! Reads the CloudFormation/SAM templates in `templates/` so that tests can check them.
//!
//! It reads what these templates use and no more: `yaml` loads a template with its
//! short-form tags in long form (and [`edit_strings`] rewrites values in a template's text,
//! keeping the rest as written: how `cargo xtask deploy` stages websocket.yml), [`intrinsic`] renders `Ref`/`Fn::GetAtt`/`Fn::Sub`/
//! `Fn::ImportValue` as text, [`iam`] reads role and bucket policies, and [`websocket`]
//! resolves `websocket.yml`'s wiring (route → integration → function, route responses,
//! stage), which other crates' tests reuse; [`deployment`] resolves a whole deployment
//! (nested stacks, parameters, every intrinsic) to local values for
//! `webchat-local --template`. E.g. to check that the local gateway emulates the same
//! stage:
//!
//! ```
//! let api = webchat_templates::websocket_template().unwrap();
//! assert_eq!(api.stage_name(), "Prod");
//! assert!(api.routes().iter().any(|r| r.key == "$connect" && !r.two_way));
//! ```

#![warn(missing_docs)]

mod conditions;
pub mod deployment;
pub mod iam;
pub mod intrinsic;
pub mod websocket;
mod yaml;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use iam::{is_wildcard_action, is_wildcard_resource, IamStatement};
pub use intrinsic::{referenced_id, render};
pub use websocket::{Function, LambdaPermission, RouteWiring, WebsocketTemplate};
pub use yaml::edit_strings;

/// Why a template could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not YAML the reader understands.
    #[error("{name} is not valid YAML: {problem}")]
    Yaml {
        /// The template's file name.
        name: String,
        /// What the parser found wrong.
        problem: String,
    },
    /// The YAML is not shaped as the template should be (no `Resources` mapping, say).
    #[error("{name}: {problem}")]
    Shape {
        /// The template's file name.
        name: String,
        /// What is missing or out of place.
        problem: String,
    },
    /// A parameter value that the template does not take.
    #[error("{template}: {problem}")]
    Parameter {
        /// The template's file name.
        template: String,
        /// Which parameter, and why.
        problem: String,
    },
    /// A `--parameter-overrides` argument that is not `Key=Value`.
    #[error("bad parameter override {token:?}: {problem} (as sam deploy --parameter-overrides spells them)")]
    Override {
        /// The argument as given.
        token: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Something the deployment needs that cannot be resolved.
    #[error("{template}: {problem}")]
    Resolve {
        /// The template `resolve` was given.
        template: String,
        /// Which template, resource and property, and why.
        problem: String,
    },
}

/// The directory that holds the templates (this crate's directory).
pub fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root (the parent of `templates/`), which the functions' `CodeUri` names.
pub fn workspace_root() -> PathBuf {
    templates_dir()
        .parent()
        .map_or_else(templates_dir, Path::to_path_buf)
}

/// Loads `templates/<file_name>`.
pub fn load(file_name: &str) -> Result<Template, TemplateError> {
    Template::load(templates_dir().join(file_name))
}

/// Loads and resolves `templates/websocket.yml`.
pub fn websocket_template() -> Result<WebsocketTemplate, TemplateError> {
    WebsocketTemplate::new(load("websocket.yml")?)
}

/// One parsed template, intrinsic functions in long form.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    doc: Value,
}

impl Template {
    /// Reads the template at `path`, short-form tags (`!Ref`, ...) turned into their long form.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self::parse(&name, &text)
    }

    /// Parses template text; `name` only labels errors and findings.
    pub fn parse(name: &str, yaml: &str) -> Result<Self, TemplateError> {
        Self::from_json(name, yaml::parse(name, yaml)?)
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

    /// The file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole document.
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

    /// The resource with this logical id.
    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.doc["Resources"].get(logical_id)
    }

    /// The `Type` of the resource with this logical id.
    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resource(logical_id)?.get("Type")?.as_str()
    }

    /// The parameter declared under this name.
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        self.doc.get("Parameters")?.get(name)
    }

    /// The output declared under this name.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.doc.get("Outputs")?.get(name)
    }

    /// The value a property resolves to at deploy time with default parameters, where that is
    /// a plain string: a literal, or a `Ref` to a parameter with a default.
    pub fn resolve_string(&self, value: &Value) -> Option<String> {
        let value = match value.get("Ref").and_then(Value::as_str) {
            Some(parameter) => self.parameter(parameter)?.get("Default")?,
            None => value,
        };
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A SAM function's properties with `Globals.Function` merged in (the function's own
    /// values win; `Environment.Variables` are merged variable by variable).
    pub fn function_properties(&self, logical_id: &str) -> Map<String, Value> {
        let own = &self.doc["Resources"][logical_id]["Properties"];
        let mut merged = self.doc["Globals"]["Function"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, value) in own.as_object().into_iter().flatten() {
            let value = if key == "Environment" {
                let variables = |e: Option<&Value>| {
                    e.and_then(|e| e["Variables"].as_object())
                        .cloned()
                        .unwrap_or_default()
                };
                let mut vars = variables(merged.get("Environment"));
                vars.extend(variables(Some(value)));
                serde_json::json!({ "Variables": vars })
            } else {
                value.clone()
            };
            merged.insert(key.clone(), value);
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// Every string value of every template rewritten (but the block scalars, which are
    /// refused): each reads back as written, and every other line stays as it was.
    #[test]
    fn the_real_templates_keep_their_comments_and_layout_when_edited() {
        let mut checked = 0;
        for entry in std::fs::read_dir(templates_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yml") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(edit_strings(&name, &text, |_, _| None).unwrap(), text);

            let mut edits = Vec::new();
            let edited = edit_strings(&name, &text, |path, value| {
                if matches!(path.last(), Some(&("Description" | "Format"))) {
                    return None;
                }
                edits.push(path.join("/"));
                Some(format!("{value} \u{2713} \"edited\""))
            })
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(edits.len() > 5, "{name}: {edits:?}");
            let doc = yaml::parse(&name, &edited).unwrap();
            let original = yaml::parse(&name, &text).unwrap();
            for edit in &edits {
                let pointer = format!("/{edit}");
                let value = original.pointer(&pointer).unwrap().as_str().unwrap();
                assert_eq!(
                    doc.pointer(&pointer).unwrap(),
                    &json!(format!("{value} \u{2713} \"edited\"")),
                    "{name}: {edit}"
                );
            }
            assert_eq!(edited.lines().count(), text.lines().count(), "{name}");
            for (before, after) in text.lines().zip(edited.lines()) {
                if before == after {
                    checked += 1;
                } else {
                    // Only values changed: the indentation and a comment after them stayed.
                    let indent = |line: &str| line.len() - line.trim_start().len();
                    assert!(
                        indent(before) == indent(after) && after.contains("edited"),
                        "{name}: {before} → {after}"
                    );
                    if let Some(comment) = before.find(" #").map(|at| &before[at..]) {
                        assert!(after.ends_with(comment), "{name}: {before} → {after}");
                    }
                }
            }
        }
        assert!(checked > 500, "{checked} unchanged lines");
    }

    #[test]
    fn parameters_resolve_to_their_defaults() {
        let t = Template::parse(
            "p.yml",
            "Parameters:\n  S: { Type: String, Default: Prod }\n  N: { Type: Number, Default: 14 }\nResources: {}\n",
        )
        .unwrap();
        assert_eq!(
            t.resolve_string(&json!({"Ref": "S"})).as_deref(),
            Some("Prod")
        );
        assert_eq!(
            t.resolve_string(&json!({"Ref": "N"})).as_deref(),
            Some("14")
        );
        assert_eq!(t.resolve_string(&json!({"Ref": "Missing"})), None);
        assert_eq!(t.resolve_string(&json!("x")).as_deref(), Some("x"));
    }
}
