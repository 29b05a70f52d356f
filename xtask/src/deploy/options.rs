//! `cargo xtask deploy|destroy` options: what was asked for, checked before anything runs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::Task;

const DEFAULT_PREFIX: &str = "webchat";
/// Nested stacks are named `<prefix>-<LogicalId>-<13 characters>`, and the hosting stack's
/// origin access control name (`<its stack name>-site`) must stay within 64 characters.
const MAX_PREFIX_LEN: usize = 32;

/// Sign-in on `$connect` (templates/websocket.yml's `Auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Auth {
    #[default]
    None,
    Cognito,
    Oidc,
}

impl Auth {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "none" => Auth::None,
            "cognito" => Auth::Cognito,
            "oidc" => Auth::Oidc,
            other => bail!("--auth takes none, cognito or oidc, not `{other}`"),
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Cognito => "cognito",
            Auth::Oidc => "oidc",
        }
    }
}

#[derive(Default)]
pub(super) struct Options {
    pub(super) stack_prefix: String,
    pub(super) region: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) parameters: Vec<String>,
    /// `--auth`; `None` when not given (the template's default, none).
    pub(super) auth: Option<Auth>,
    /// `--issuer` and the other oidc settings, as template parameters.
    pub(super) oidc: Vec<(&'static str, String)>,
    pub(super) authorizer_zip: Option<PathBuf>,
    pub(super) lambda_zip: Option<PathBuf>,
    pub(super) ui_dir: Option<PathBuf>,
    pub(super) dry_run: bool,
    pub(super) yes: bool,
}

pub(super) fn parse_options(task: Task, args: &[String]) -> Result<Options> {
    use lexopt::prelude::*;
    let mut options = Options {
        stack_prefix: DEFAULT_PREFIX.into(),
        ..Options::default()
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        let deploy = task == Task::Deploy;
        match arg {
            Long("stack-prefix") => options.stack_prefix = parser.value()?.string()?,
            Long("region") => options.region = Some(parser.value()?.string()?),
            Long("profile") => options.profile = Some(parser.value()?.string()?),
            Long("parameter") if deploy => {
                let parameter = parser.value()?.string()?;
                if !parameter.contains('=') {
                    bail!("--parameter takes KEY=VALUE, not `{parameter}`");
                }
                if parameter.split('=').next() == Some("Auth") {
                    bail!("turn sign-in on or off with --auth, not --parameter {parameter}");
                }
                options.parameters.push(parameter);
            }
            Long("auth") if deploy => options.auth = Some(Auth::parse(&parser.value()?.string()?)?),
            Long(flag @ ("issuer" | "audience" | "authorize-url" | "token-url" | "logout-url"))
                if deploy =>
            {
                let (parameter, flag) = match flag {
                    "issuer" => ("Issuer", "--issuer"),
                    "audience" => ("Audience", "--audience"),
                    "authorize-url" => ("OidcAuthorizeUrl", "--authorize-url"),
                    "token-url" => ("OidcTokenUrl", "--token-url"),
                    _ => ("OidcLogoutUrl", "--logout-url"),
                };
                let value = parser.value()?.string()?;
                if flag != "--audience" && !value.starts_with("https://") {
                    bail!("{flag} takes an https:// URL, not `{value}`");
                }
                options.oidc.push((parameter, value));
            }
            Long("authorizer-zip") if deploy => {
                options.authorizer_zip = Some(parser.value()?.into());
            }
            Long("lambda-zip") if deploy => options.lambda_zip = Some(parser.value()?.into()),
            Long("ui-dir") if deploy => options.ui_dir = Some(parser.value()?.into()),
            Long("dry-run") => options.dry_run = true,
            Long("yes") if !deploy => options.yes = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    check_auth(&options)?;
    let prefix = &options.stack_prefix;
    let valid = prefix.len() <= MAX_PREFIX_LEN
        && prefix.starts_with(|c: char| c.is_ascii_alphabetic())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        bail!(
            "--stack-prefix `{prefix}`: a letter, then letters, digits and hyphens, at most \
             {MAX_PREFIX_LEN} characters (CloudFormation stack names, and nested stacks add to it)"
        );
    }
    Ok(options)
}

/// `--auth` and the settings that go with it agree.
fn check_auth(options: &Options) -> Result<()> {
    let auth = options.auth.unwrap_or_default();
    let given: BTreeSet<&str> = options.oidc.iter().map(|(p, _)| *p).collect();
    if given.len() != options.oidc.len() {
        bail!("--issuer, --audience, --authorize-url, --token-url and --logout-url go once each");
    }
    match auth {
        Auth::Oidc => {
            let missing: Vec<&str> = [
                ("Issuer", "--issuer"),
                ("Audience", "--audience"),
                ("OidcAuthorizeUrl", "--authorize-url"),
                ("OidcTokenUrl", "--token-url"),
            ]
            .into_iter()
            .filter(|(p, _)| !given.contains(p))
            .map(|(_, flag)| flag)
            .collect();
            if !missing.is_empty() {
                bail!("--auth oidc needs {}", missing.join(", "));
            }
        }
        _ if !given.is_empty() => bail!(
            "--issuer, --audience and the endpoint URLs go with --auth oidc (Cognito's come \
             from the stack)"
        ),
        _ => {}
    }
    if auth != Auth::None && options.lambda_zip.is_some() && options.authorizer_zip.is_none() {
        bail!(
            "--lambda-zip with --auth {} needs --authorizer-zip too (cargo xtask lambdas builds \
             both)",
            auth.name()
        );
    }
    if options.authorizer_zip.is_some() && options.lambda_zip.is_none() {
        bail!("--authorizer-zip goes with --lambda-zip");
    }
    Ok(())
}

/// Runs `cargo xtask deploy|destroy ARGS`.
impl Options {
    pub(super) fn artifacts_stack(&self) -> String {
        format!("{}-artifacts", self.stack_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_options_go_together() {
        let parse = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(ToString::to_string).collect();
            parse_options(Task::Deploy, &args)
        };
        assert_eq!(
            parse(&["--auth", "cognito"]).unwrap().auth,
            Some(Auth::Cognito)
        );
        assert_eq!(parse(&[]).unwrap().auth, None);
        assert!(parse(&["--auth", "saml"]).is_err());
        let oidc = [
            "--auth",
            "oidc",
            "--issuer",
            "https://i.example",
            "--audience",
            "c",
            "--authorize-url",
            "https://i.example/a",
            "--token-url",
            "https://i.example/t",
        ];
        let options = parse(&oidc).unwrap();
        assert_eq!(options.oidc.len(), 4);
        assert!(parse(&oidc[..oidc.len() - 2]).is_err(), "no token URL");
        assert!(parse(&[&oidc[..], &["--issuer", "https://again.example"]].concat()).is_err());
        assert!(parse(&["--auth", "cognito", "--issuer", "https://i.example"]).is_err());
        assert!(parse(&["--issuer", "https://i.example"]).is_err());
        let mut http = oidc;
        http[3] = "http://i.example";
        assert!(parse(&http).is_err());
        assert!(parse(&["--parameter", "Auth=cognito"]).is_err());
        assert!(parse(&["--auth", "cognito", "--lambda-zip", "z"]).is_err());
        assert!(parse(&[
            "--auth",
            "cognito",
            "--lambda-zip",
            "z",
            "--authorizer-zip",
            "a"
        ])
        .is_ok());
        assert!(parse(&["--lambda-zip", "z"]).is_ok());
        assert!(parse(&["--authorizer-zip", "a"]).is_err());
        assert!(parse_options(Task::Destroy, &["--auth".into(), "none".into()]).is_err());
    }

    #[test]
    fn stack_prefixes_must_make_valid_stack_names() {
        let parse =
            |prefix: &str| parse_options(Task::Deploy, &["--stack-prefix".into(), prefix.into()]);
        assert_eq!(parse("chat-2").unwrap().stack_prefix, "chat-2");
        for bad in ["2chat", "my_chat", "", &"x".repeat(MAX_PREFIX_LEN + 1)] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse_options(Task::Deploy, &["--yes".into()]).is_err());
        assert!(parse_options(Task::Destroy, &["--ui-dir".into(), "d".into()]).is_err());
        assert!(parse_options(Task::Deploy, &["--parameter".into(), "NoEquals".into()]).is_err());
    }
}
