//! A template as CloudFormation deploys it for given parameter values: its `Conditions`
//! evaluated, resources and outputs whose condition is false left out, `Fn::If` replaced
//! by the branch it picks (and `AWS::NoValue` by nothing). So checks can look at what a
//! deployment with sign-in off, or on, really holds.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::intrinsic::single_entry;
use crate::{Template, TemplateError};

impl Template {
    /// The template as deployed with `parameters` (the others at their defaults).
    pub fn with_parameters(&self, parameters: &[(&str, &str)]) -> Result<Template, TemplateError> {
        let shape = |problem: String| TemplateError::Shape {
            name: self.name().to_string(),
            problem,
        };
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for (name, definition) in self.json()["Parameters"].as_object().into_iter().flatten() {
            if let Some(default) = self.resolve_string(&definition["Default"]) {
                values.insert(name.clone(), default);
            }
        }
        for (name, value) in parameters {
            if self.parameter(name).is_none() {
                return Err(shape(format!("no parameter {name}")));
            }
            values.insert(name.to_string(), value.to_string());
        }
        let conditions = self.json()["Conditions"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut evaluated = BTreeMap::new();
        for name in conditions.keys() {
            let value = condition(name, &conditions, &values, 0).map_err(shape)?;
            evaluated.insert(name.clone(), value);
        }
        let holds = |item: &Value| -> Result<bool, String> {
            match item.get("Condition").map(|c| c.as_str()) {
                None => Ok(true),
                Some(Some(name)) => evaluated
                    .get(name)
                    .copied()
                    .ok_or_else(|| format!("unknown condition {name}")),
                Some(None) => Err("a Condition that is not a name".into()),
            }
        };
        let mut doc = self.json().clone();
        for section in ["Resources", "Outputs"] {
            let Some(items) = doc.get_mut(section).and_then(Value::as_object_mut) else {
                continue;
            };
            let mut kept = Map::new();
            for (id, item) in std::mem::take(items) {
                if holds(&item).map_err(|e| shape(format!("{id}: {e}")))? {
                    let mut item = pick(&item, &evaluated).map_err(shape)?.unwrap_or_default();
                    if let Some(item) = item.as_object_mut() {
                        item.remove("Condition");
                    }
                    kept.insert(id, item);
                }
            }
            *items = kept;
        }
        if let Some(globals) = doc.get("Globals").cloned() {
            doc["Globals"] = pick(&globals, &evaluated)
                .map_err(shape)?
                .unwrap_or_default();
        }
        Template::from_json(self.name(), doc)
    }
}

/// A named condition's value.
fn condition(
    name: &str,
    conditions: &Map<String, Value>,
    parameters: &BTreeMap<String, String>,
    depth: usize,
) -> Result<bool, String> {
    let definition = conditions
        .get(name)
        .ok_or_else(|| format!("unknown condition {name}"))?;
    if depth > conditions.len() {
        return Err(format!("condition {name} refers to itself"));
    }
    truth(definition, conditions, parameters, depth + 1)
}

fn truth(
    value: &Value,
    conditions: &Map<String, Value>,
    parameters: &BTreeMap<String, String>,
    depth: usize,
) -> Result<bool, String> {
    let args = |v: &Value| -> Result<Vec<bool>, String> {
        v.as_array()
            .ok_or_else(|| format!("not a list: {v}"))?
            .iter()
            .map(|a| truth(a, conditions, parameters, depth))
            .collect()
    };
    match single_entry(value) {
        Some(("Condition", Value::String(other))) => {
            condition(other, conditions, parameters, depth)
        }
        Some(("Fn::Not", v)) => match args(v)?[..] {
            [one] => Ok(!one),
            _ => Err(format!("Fn::Not takes one condition: {v}")),
        },
        Some(("Fn::And", v)) => Ok(args(v)?.into_iter().all(|b| b)),
        Some(("Fn::Or", v)) => Ok(args(v)?.into_iter().any(|b| b)),
        Some(("Fn::Equals", Value::Array(pair))) if pair.len() == 2 => {
            let [a, b] = [&pair[0], &pair[1]].map(|v| text(v, parameters));
            Ok(a? == b?)
        }
        _ => Err(format!("a condition this crate does not evaluate: {value}")),
    }
}

/// A value inside `Fn::Equals`: a literal or a parameter's value.
fn text(value: &Value, parameters: &BTreeMap<String, String>) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => match single_entry(value) {
            Some(("Ref", Value::String(name))) => parameters
                .get(name)
                .cloned()
                .ok_or_else(|| format!("parameter {name} has no value")),
            _ => Err(format!("a value this crate does not evaluate: {value}")),
        },
    }
}

/// `value` with every `Fn::If` replaced by its branch; `None` for `AWS::NoValue`.
fn pick(value: &Value, conditions: &BTreeMap<String, bool>) -> Result<Option<Value>, String> {
    if let Some(("Ref", Value::String(name))) = single_entry(value) {
        if name == "AWS::NoValue" {
            return Ok(None);
        }
    }
    if let Some(("Fn::If", Value::Array(parts))) = single_entry(value) {
        let [name, yes, no] = &parts[..] else {
            return Err(format!("Fn::If takes three arguments: {value}"));
        };
        let name = name.as_str().unwrap_or_default();
        let branch = match conditions.get(name) {
            Some(true) => yes,
            Some(false) => no,
            None => return Err(format!("Fn::If on unknown condition {name:?}")),
        };
        return pick(branch, conditions);
    }
    Ok(Some(match value {
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(pick(item, conditions)?);
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                if let Some(item) = pick(item, conditions)? {
                    out.insert(key.clone(), item);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Template;

    #[test]
    fn conditions_pick_resources_outputs_and_branches() {
        let t = Template::parse(
            "c.yml",
            r#"
Parameters:
  Mode: { Type: String, Default: off }
  Extra: { Type: String, Default: "" }
Conditions:
  On: !Not [!Equals [!Ref Mode, off]]
  Both: !And [!Condition On, !Not [!Equals [!Ref Extra, ""]]]
Resources:
  Always:
    Type: X
    Properties:
      Kind: !If [On, on, off]
      Maybe: !If [Both, !Ref Extra, !Ref AWS::NoValue]
      List: [a, !If [On, b, !Ref AWS::NoValue]]
  Sometimes: { Type: Y, Condition: On }
Outputs:
  O: { Condition: Both, Value: x }
"#,
        )
        .unwrap();
        let off = t.with_parameters(&[]).unwrap();
        assert_eq!(off.resources().count(), 1);
        assert_eq!(
            off.resource("Always").unwrap()["Properties"],
            json!({"Kind": "off", "List": ["a"]})
        );
        assert!(off.output("O").is_none());
        let on = t
            .with_parameters(&[("Mode", "on"), ("Extra", "e")])
            .unwrap();
        assert_eq!(
            on.resource("Always").unwrap()["Properties"],
            json!({"Kind": "on", "Maybe": {"Ref": "Extra"}, "List": ["a", "b"]})
        );
        assert_eq!(on.resource("Sometimes").unwrap(), &json!({"Type": "Y"}));
        assert!(on.output("O").is_some());
        assert!(t.with_parameters(&[("Nope", "x")]).is_err());
    }
}
