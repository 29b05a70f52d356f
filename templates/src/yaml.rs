//! Template text to JSON, with CloudFormation's short-form tags (`!Ref`, `!GetAtt`,
//! `!Sub`, ...) turned into their long form (`Ref`, `Fn::GetAtt`, `Fn::Sub`, ...), so that
//! the rest of the crate sees one form only.

use std::ops::Range;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScalarStyle, Yaml, YamlData, YamlLoader};
use saphyr_parser::Parser;
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

/// `text` with string values replaced: `replace` sees each untagged string value with its
/// path (the mapping keys and sequence indices from the document root) and returns its new
/// value, or `None` to keep it.
///
/// Only the characters of a replaced value change, so the rest of the file (comments, key
/// order, indentation, quoting, blank lines) stays byte for byte as written: the reader gives
/// each value's place in the text (saphyr's spans), and the new value goes there as a
/// double-quoted scalar (a JSON string is one). Block scalars (`|`, `>`) are refused: their
/// span runs on to the next key's indentation, so there is no clean place to write one. The
/// result is read back and must equal the original document with exactly those values
/// changed.
pub fn edit_strings(
    name: &str,
    text: &str,
    mut replace: impl FnMut(&[&str], &str) -> Option<String>,
) -> Result<String, TemplateError> {
    let error = |problem: String| TemplateError::Yaml {
        name: name.to_string(),
        problem,
    };
    let mut expected = parse(name, text)?;
    // Unparsed scalars keep their style (plain, quoted, block) and tag.
    let mut loader = YamlLoader::<MarkedYaml>::default();
    loader.early_parse(false);
    Parser::new_from_str(text)
        .load(&mut loader, true)
        .map_err(|e| error(e.to_string()))?;
    if let Some(e) = loader.error() {
        return Err(error(e.to_string()));
    }
    let documents = loader.into_documents();
    let document = documents
        .first()
        .ok_or_else(|| error("expected one YAML document, found none".into()))?;
    let mut edits = Vec::new();
    collect_edits(document, &mut Vec::new(), &mut replace, &mut edits).map_err(error)?;

    // Spans count characters; the text is edited by bytes, from the end so that the spans
    // before an edit stay where they are.
    let mut bytes: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
    bytes.push(text.len());
    edits.sort_by_key(|edit| std::cmp::Reverse(edit.chars.start));
    let mut edited = text.to_string();
    for edit in &edits {
        let value = Value::from(edit.value.as_str());
        edited.replace_range(
            bytes[edit.chars.start]..bytes[edit.chars.end],
            &value.to_string(),
        );
        if let Some(slot) = expected.pointer_mut(&edit.pointer) {
            *slot = value;
        }
    }
    if parse(name, &edited)? != expected {
        return Err(error(
            "the edited text does not read back as the intended document".into(),
        ));
    }
    Ok(edited)
}

/// One value to replace: its JSON pointer, its characters in the text, and the new value.
struct Edit {
    pointer: String,
    chars: Range<usize>,
    value: String,
}

fn collect_edits(
    node: &MarkedYaml,
    path: &mut Vec<String>,
    replace: &mut impl FnMut(&[&str], &str) -> Option<String>,
    edits: &mut Vec<Edit>,
) -> Result<(), String> {
    match &node.data {
        YamlData::Representation(value, style, None) if !path.is_empty() => {
            let is_string = matches!(
                Scalar::parse_from_cow_and_metadata(value.clone(), *style, None),
                Some(Scalar::String(_))
            );
            if !is_string {
                return Ok(());
            }
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(new) = replace(&keys, value) else {
                return Ok(());
            };
            let pointer: String = keys
                .iter()
                .flat_map(|k| ["/".to_owned(), k.replace('~', "~0").replace('/', "~1")])
                .collect();
            if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                return Err(format!(
                    "{pointer} is a block scalar (| or >), which is not rewritten in place"
                ));
            }
            edits.push(Edit {
                pointer,
                chars: node.span.start.index()..node.span.end.index(),
                value: new,
            });
        }
        YamlData::Mapping(map) => {
            for (key, value) in map {
                path.push(match &key.data {
                    YamlData::Representation(key, _, _) => key.to_string(),
                    other => format!("{other:?}"),
                });
                collect_edits(value, path, replace, edits)?;
                path.pop();
            }
        }
        YamlData::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string());
                collect_edits(item, path, replace, edits)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_changes_the_chosen_values_and_nothing_else() {
        let text = "# why A\nA:\n  B: ..   # stays\n  C: 'q'\n  D: \"d\"\n  E: !Ref X\n  \
                    L: [a, 5]\n  N: 5\n\n# blank line above\nZ: z\n";
        let edited = edit_strings("t.yml", text, |path, value| match (path, value) {
            (["A", "B"], "..") => Some("/w/it's \"a\".zip".into()),
            (["A", "L", "0"], "a") => Some("é".into()),
            (["Z"], _) => Some("z2".into()),
            (["A", "E" | "N"] | ["A", "L", "1"], _) => panic!("not a string: {path:?}"),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            edited,
            "# why A\nA:\n  B: \"/w/it's \\\"a\\\".zip\"   # stays\n  C: 'q'\n  D: \"d\"\n  \
             E: !Ref X\n  L: [\"é\", 5]\n  N: 5\n\n# blank line above\nZ: \"z2\"\n"
        );
        assert_eq!(
            parse("t.yml", &edited).unwrap()["A"]["B"],
            "/w/it's \"a\".zip"
        );
        assert_eq!(edit_strings("t.yml", text, |_, _| None).unwrap(), text);
    }

    #[test]
    fn block_scalars_and_broken_yaml_are_not_edited() {
        let text = "A: >-\n  folded\n  text\nB: x\n";
        let err = edit_strings("b.yml", text, |_, _| Some("y".into())).unwrap_err();
        assert!(err.to_string().contains("/A is a block scalar"), "{err}");
        assert_eq!(
            edit_strings("b.yml", text, |path, _| (path == ["B"]).then(|| "y".into())).unwrap(),
            "A: >-\n  folded\n  text\nB: \"y\"\n"
        );
        assert!(edit_strings("b.yml", "A: [", |_, _| None).is_err());
    }

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
