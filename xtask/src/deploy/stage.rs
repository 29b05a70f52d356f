//! The files a deploy writes before uploading: the templates, staged to run the prebuilt
//! Lambda zips, and the UI with its config.json.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::options::Auth;

/// Copies `templates/*.yml` into `out` (emptied first), with websocket.yml's functions
/// running the prebuilt zips instead of being built from the workspace.
pub(super) fn stage_templates(
    templates: &Path,
    out: &Path,
    zip: &Path,
    authorizer_zip: &Path,
) -> Result<()> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("emptying {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for entry in
        std::fs::read_dir(templates).with_context(|| format!("reading {}", templates.display()))?
    {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if path.file_name().is_some_and(|n| n == "websocket.yml") {
            text = with_code_uris(&text, zip, authorizer_zip)?;
        }
        let staged = out.join(path.file_name().unwrap_or_default());
        std::fs::write(&staged, text).with_context(|| format!("writing {}", staged.display()))?;
    }
    Ok(())
}

/// websocket.yml with its two `CodeUri: ..` (the workspace, for `sam build`) replaced by
/// the prebuilt zips, which `sam deploy` uploads as they are: the one in
/// `Globals.Function` by the chat's, the authorizer function's by the authorizer's.
pub(super) fn with_code_uris(template: &str, zip: &Path, authorizer_zip: &Path) -> Result<String> {
    let mut found = Vec::new();
    let staged = webchat_templates::edit_strings("websocket.yml", template, |path, value| {
        if path.last() != Some(&"CodeUri") || value != ".." {
            return None;
        }
        found.push(path.join("."));
        let code = match path {
            ["Globals", "Function", "CodeUri"] => zip,
            ["Resources", "AuthorizerFunction", "Properties", "CodeUri"] => authorizer_zip,
            _ => return None,
        };
        Some(code.display().to_string())
    })?;
    found.sort();
    if found
        != [
            "Globals.Function.CodeUri",
            "Resources.AuthorizerFunction.Properties.CodeUri",
        ]
    {
        bail!(
            "websocket.yml has `CodeUri: ..` at {found:?}, expected it only in Globals.Function \
             and in AuthorizerFunction"
        );
    }
    Ok(staged)
}

/// The UI's config.json: `websocketUrl` (frontend/src/state.rs reads it) and, when the
/// stack has sign-in on, `auth` from its outputs (docs/deploy.md, "Sign-in").
pub(super) fn ui_config(outputs: &BTreeMap<String, String>, auth: Option<Auth>) -> Result<Value> {
    let get = |key: &str| outputs.get(key).map(String::as_str);
    let websocket_url = get("WebSocketURL").context("no WebSocketURL output")?;
    if !websocket_url.starts_with("wss://") {
        bail!("the WebSocket URL `{websocket_url}` is not a wss:// URL");
    }
    let mut config = serde_json::json!({ "websocketUrl": websocket_url });
    let on = get("AuthIssuer").is_some();
    match auth {
        Some(Auth::None) | None if on => bail!(
            "the stack has sign-in on (output AuthIssuer) but the deploy asked for none; \
             was the stack updated?"
        ),
        Some(Auth::Cognito | Auth::Oidc) if !on => bail!(
            "the stack has no sign-in outputs (AuthIssuer, ...) although --auth {} was given; \
             was it deployed from an older templates/root.yml?",
            auth.unwrap_or_default().name()
        ),
        _ => {}
    }
    if on {
        let mut settings = serde_json::Map::new();
        for (field, key) in [
            ("issuer", "AuthIssuer"),
            ("clientId", "AuthClientId"),
            ("authorizeUrl", "AuthAuthorizeUrl"),
            ("tokenUrl", "AuthTokenUrl"),
            ("logoutUrl", "AuthLogoutUrl"),
        ] {
            match get(key) {
                Some(value) => {
                    settings.insert(field.into(), value.into());
                }
                None if key == "AuthLogoutUrl" => {}
                None => bail!("the stack has sign-in on but no {key} output"),
            }
        }
        config["auth"] = Value::Object(settings);
    }
    Ok(config)
}

/// Copies the built UI into `out` (emptied first) and writes `config.json`, which points
/// the UI at the WebSocket API and, with sign-in on, at the issuer.
pub(super) fn stage_site(ui_dir: &Path, out: &Path, config: &Value) -> Result<()> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("emptying {}", out.display()))?;
    }
    copy_dir(ui_dir, out)?;
    std::fs::write(out.join("config.json"), format!("{config}\n"))
        .with_context(|| format!("writing {}", out.join("config.json").display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn workspace() -> PathBuf {
        crate::workspace_root()
    }

    #[test]
    fn the_websocket_template_is_staged_with_the_zips_as_its_code() {
        let text = std::fs::read_to_string(workspace().join("templates/websocket.yml")).unwrap();
        let staged = with_code_uris(
            &text,
            Path::new("/w/target/lambda/it's.zip"),
            Path::new("/w/authorizer.zip"),
        )
        .unwrap();
        assert!(staged.contains(r#"    CodeUri: "/w/target/lambda/it's.zip""#));
        assert!(staged.contains(r#"      CodeUri: "/w/authorizer.zip""#));
        assert!(!staged.contains("CodeUri: .."));
        assert_eq!(staged.lines().count(), text.lines().count());
        // The authorizer's is the one in AuthorizerFunction, the chat's the one in Globals.
        let authorizer = staged.find("  AuthorizerFunction:").unwrap();
        assert!(
            staged[authorizer..].find("/w/authorizer.zip").unwrap()
                < staged[authorizer..]
                    .find("\n  AuthorizerFunctionLogGroup:")
                    .unwrap()
        );
        let zips = (Path::new("/z.zip"), Path::new("/a.zip"));
        let twice = format!("{text}\nOther:\n  CodeUri: ..\n");
        assert!(with_code_uris(&twice, zips.0, zips.1).is_err());
        assert!(with_code_uris("Resources: {}\n", zips.0, zips.1).is_err());
        let elsewhere = text.replacen(
            "      Role: !GetAtt ConnectFunctionRole.Arn",
            "      CodeUri: ..\n      Role: !GetAtt ConnectFunctionRole.Arn",
            1,
        );
        assert!(with_code_uris(&elsewhere, zips.0, zips.1).is_err());
    }

    #[test]
    fn config_json_has_auth_exactly_when_the_stack_has_sign_in() {
        let mut outputs: BTreeMap<String, String> = [
            ("WebSocketURL", "wss://a.example/Prod"),
            ("SiteURL", "https://d.example"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let off = serde_json::json!({"websocketUrl": "wss://a.example/Prod"});
        assert_eq!(ui_config(&outputs, None).unwrap(), off);
        assert_eq!(ui_config(&outputs, Some(Auth::None)).unwrap(), off);
        assert!(ui_config(&outputs, Some(Auth::Cognito)).is_err());

        for (k, v) in [
            ("AuthIssuer", "https://issuer.example"),
            ("AuthClientId", "client"),
            ("AuthAuthorizeUrl", "https://login.example/oauth2/authorize"),
            ("AuthTokenUrl", "https://login.example/oauth2/token"),
        ] {
            outputs.insert(k.into(), v.into());
        }
        let auth = serde_json::json!({
            "issuer": "https://issuer.example",
            "clientId": "client",
            "authorizeUrl": "https://login.example/oauth2/authorize",
            "tokenUrl": "https://login.example/oauth2/token",
        });
        assert_eq!(
            ui_config(&outputs, Some(Auth::Oidc)).unwrap(),
            serde_json::json!({"websocketUrl": "wss://a.example/Prod", "auth": auth})
        );
        assert!(ui_config(&outputs, Some(Auth::None)).is_err());
        outputs.insert(
            "AuthLogoutUrl".into(),
            "https://login.example/logout".into(),
        );
        let config = ui_config(&outputs, Some(Auth::Cognito)).unwrap();
        assert_eq!(config["auth"]["logoutUrl"], "https://login.example/logout");
        outputs.remove("AuthTokenUrl");
        assert!(ui_config(&outputs, Some(Auth::Cognito)).is_err());
        outputs.insert("WebSocketURL".into(), "https://a.example/Prod".into());
        assert!(ui_config(&outputs, None).is_err());
    }
}
