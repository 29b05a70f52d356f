//! The intrinsic functions the templates use, read as text: checks compare ARNs and
//! names as `Fn::Sub` would write them, whichever form the template used.

use serde_json::Value;

/// Renders an intrinsic-function value as text, as `Fn::Sub` would read it:
/// `Ref X` → `${X}`, `Fn::GetAtt [X, Arn]` → `${X.Arn}`, `Fn::Sub` → its string (with its
/// variable map substituted), `Fn::ImportValue v` → `import(v)`; anything else as JSON.
pub fn render(value: &Value) -> String {
    let Some((function, arg)) = single_entry(value) else {
        return match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    };
    match (function, arg) {
        ("Ref", _) => format!("${{{}}}", render(arg)),
        ("Fn::GetAtt", Value::Array(parts)) => {
            let parts: Vec<String> = parts.iter().map(render).collect();
            format!("${{{}}}", parts.join("."))
        }
        ("Fn::GetAtt", other) => format!("${{{}}}", render(other)),
        ("Fn::Sub", Value::Array(parts)) => {
            let mut text = parts.first().map(render).unwrap_or_default();
            for (name, v) in parts
                .get(1)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                text = text.replace(&format!("${{{name}}}"), &render(v));
            }
            text
        }
        ("Fn::Sub", other) => render(other),
        ("Fn::ImportValue", _) => format!("import({})", render(arg)),
        _ => value.to_string(),
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

/// `{ "Fn::X": arg }` as `("Fn::X", arg)`.
pub(crate) fn single_entry(value: &Value) -> Option<(&str, &Value)> {
    match value.as_object() {
        Some(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

/// A property that may be one value or a list of them, as a list.
pub(crate) fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intrinsics_render_as_sub_would_write_them() {
        assert_eq!(render(&json!({"Ref": "B"})), "${B}");
        assert_eq!(render(&json!({"Fn::GetAtt": ["B", "Arn"]})), "${B.Arn}");
        assert_eq!(render(&json!({"Fn::Sub": "x-${B}"})), "x-${B}");
        assert_eq!(
            render(&json!({"Fn::Sub": ["t/${T}", {"T": {"Ref": "Table"}}]})),
            "t/${Table}"
        );
        assert_eq!(
            render(&json!({"Fn::ImportValue": {"Fn::Sub": "${S}:T"}})),
            "import(${S}:T)"
        );
        assert_eq!(
            referenced_id(&json!({"Fn::GetAtt": ["B", "Arn"]})).as_deref(),
            Some("B")
        );
        assert_eq!(referenced_id(&json!({"Fn::Sub": "x-${B}"})), None);
    }
}
