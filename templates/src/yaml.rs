//! Template text to JSON, with CloudFormation's short-form tags (`!Ref`, `!GetAtt`,
//! `!Sub`, ...) turned into their long form (`Ref`, `Fn::GetAtt`, `Fn::Sub`, ...), so that
//! the rest of the crate sees one form only.

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{json, Map, Value};

use crate::TemplateError;

/// Parses one YAML document; `name` labels errors.
pub(crate) fn parse(name: &str, text: &str) -> Result<Value, TemplateError> {
    let error = |problem: String| TemplateError::Yaml {
        name: name.to_string(),
        problem,
    };
    let documents = Yaml::load_from_str(text).map_err(|e| error(e.to_string()))?;
    match <[Yaml; 1]>::try_from(documents) {
        Ok([document]) => to_json(document).map_err(error),
        Err(documents) => Err(error(format!(
            "expected one YAML document, found {}",
            documents.len()
        ))),
    }
}

fn to_json(node: Yaml) -> Result<Value, String> {
    Ok(match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => Value::from(s),
        Yaml::Sequence(items) => items.into_iter().map(to_json).collect::<Result<_, _>>()?,
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match to_json(key)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, to_json(value)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tag, node) => {
            let arg = to_json(*node)?;
            match tag.suffix.as_str() {
                "Ref" | "Condition" => json!({ tag.suffix.as_str(): arg }),
                // `!GetAtt Id.Attr` is the short form of `Fn::GetAtt: [Id, Attr]`.
                "GetAtt" => match arg.as_str().and_then(|s| s.split_once('.')) {
                    Some((id, attribute)) => json!({ "Fn::GetAtt": [id, attribute] }),
                    None => json!({ "Fn::GetAtt": arg }),
                },
                function => json!({ format!("Fn::{function}"): arg }),
            }
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err("an unresolved alias or unreadable scalar".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_tags_become_long_form() {
        let doc = parse(
            "t",
            "Resources:\n  A:\n    Type: X\n    Properties:\n      R: !Ref B\n      G: !GetAtt B.Arn\n      S: !Sub \"x-${B}\"\n      I:\n        Fn::ImportValue: !Sub \"${S}:T\"\n      E: !Equals [!Ref P, \"true\"]\n      N: 5\n      F: false\n",
        )
        .unwrap();
        let p = &doc["Resources"]["A"]["Properties"];
        assert_eq!(p["R"], json!({"Ref": "B"}));
        assert_eq!(p["G"], json!({"Fn::GetAtt": ["B", "Arn"]}));
        assert_eq!(p["S"], json!({"Fn::Sub": "x-${B}"}));
        assert_eq!(p["I"], json!({"Fn::ImportValue": {"Fn::Sub": "${S}:T"}}));
        assert_eq!(p["E"], json!({"Fn::Equals": [{"Ref": "P"}, "true"]}));
        assert_eq!((&p["N"], &p["F"]), (&json!(5), &json!(false)));
    }

    #[test]
    fn broken_yaml_is_an_error_that_names_the_file() {
        let err = parse("w.yml", "Resources: [").unwrap_err();
        assert!(
            err.to_string().starts_with("w.yml is not valid YAML"),
            "{err}"
        );
        // CloudFormation refuses a repeated key rather than keep one of them.
        let err = parse("d.yml", "Resources: {}\nResources: {}\n").unwrap_err();
        assert!(
            err.to_string().starts_with("d.yml is not valid YAML"),
            "{err}"
        );
    }
}
