//! `cargo xtask deploy` and `cargo xtask destroy`: the whole chat onto AWS, or off it, in
//! one command.
//!
//! Deploy builds the arm64 Lambda zip and the release UI, deploys the artifacts bucket
//! (templates/s3.yml, stack `<prefix>-artifacts`) and the root stack (templates/root.yml,
//! stack `<prefix>`: tables, WebSocket API, hosting) with `sam deploy`, writes the UI's
//! `config.json` from the root stack's `WebSocketURL` (and, with sign-in on, its `Auth*`
//! outputs), uploads the UI and invalidates CloudFront. Destroy empties both buckets and deletes the stacks, root first.
//!
//! Every `aws` and `sam` call gets `--region` (and `--profile` when one is given): the AWS
//! CLI and the SAM CLI look for the region in different places (SAM ignores `AWS_REGION`),
//! and a deploy split across two regions fails in confusing ways. `--dry-run` prints the
//! plan, every call included, and runs nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::tools::target_dir;
use crate::{lambdas, ui};

pub const USAGE: &str =
    "  deploy    build the Lambda and the UI, deploy the stacks, upload the UI; prints its URL
              --stack-prefix NAME   stacks NAME-artifacts and NAME (default webchat)
              --region REGION       default: AWS_REGION, AWS_DEFAULT_REGION, the profile's
              --profile PROFILE     an AWS CLI profile
              --parameter KEY=VALUE a parameter of templates/root.yml (repeatable)
              --auth none|cognito|oidc  sign-in on $connect (default none; docs/deploy.md)
              --issuer URL --audience ID --authorize-url URL --token-url URL [--logout-url URL]
                                    with --auth oidc: the issuer, the UI's client id and
                                    the issuer's endpoints the UI signs in with
              --lambda-zip PATH     deploy this bootstrap.zip instead of building one
              --authorizer-zip PATH with --lambda-zip and sign-in on: the authorizer's zip
              --ui-dir PATH         upload this built UI instead of building one
              --dry-run             print every step and call, run nothing
  destroy   empty the buckets and delete the stacks, root first
              --stack-prefix, --region, --profile, --dry-run as for deploy
              --yes                 really delete (without it, prints what would go)";

const DEFAULT_PREFIX: &str = "webchat";
/// Nested stacks are named `<prefix>-<LogicalId>-<13 characters>`, and the hosting stack's
/// origin access control name (`<its stack name>-site`) must stay within 64 characters.
const MAX_PREFIX_LEN: usize = 32;
/// The root stack's outputs that deploy reads (templates/tests/stacks.rs checks they exist).
const ROOT_OUTPUTS: [&str; 4] = ["WebSocketURL", "SiteURL", "SiteBucket", "DistributionId"];
/// The root stack's sign-in outputs, there when sign-in is on (`AuthLogoutUrl` optional).
const AUTH_OUTPUTS: [&str; 5] = [
    "AuthIssuer",
    "AuthClientId",
    "AuthAuthorizeUrl",
    "AuthTokenUrl",
    "AuthLogoutUrl",
];
/// The artifacts stack's output.
const ARTIFACTS_BUCKET: &str = "ArtifactsBucket";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Deploy,
    Destroy,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Deploy => "deploy",
            Task::Destroy => "destroy",
        }
    }
}

/// Sign-in on `$connect` (templates/websocket.yml's `Auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Auth {
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

    fn name(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Cognito => "cognito",
            Auth::Oidc => "oidc",
        }
    }
}

#[derive(Default)]
struct Options {
    stack_prefix: String,
    region: Option<String>,
    profile: Option<String>,
    parameters: Vec<String>,
    /// `--auth`; `None` when not given (the template's default, none).
    auth: Option<Auth>,
    /// `--issuer` and the other oidc settings, as template parameters.
    oidc: Vec<(&'static str, String)>,
    authorizer_zip: Option<PathBuf>,
    lambda_zip: Option<PathBuf>,
    ui_dir: Option<PathBuf>,
    dry_run: bool,
    yes: bool,
}

fn parse_options(task: Task, args: &[String]) -> Result<Options> {
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
                options.authorizer_zip = Some(parser.value()?.into())
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
pub fn run(root: &Path, task: Task, args: &[String]) -> Result<()> {
    let options = parse_options(task, args)?;
    let target = Target::resolve(root, &options)?;
    let work = target_dir(root).join("deploy").join(&options.stack_prefix);
    let plan = match task {
        Task::Deploy => deploy_plan(root, &options, &target, &work),
        Task::Destroy => destroy_plan(&options, &target, &work),
    };
    println!(
        "xtask: {} in region {} ({}){}; stacks {} and {}",
        task.name(),
        target.region,
        target.region_source,
        target
            .profile
            .as_deref()
            .map(|p| format!(", profile {p}"))
            .unwrap_or_default(),
        artifacts_stack(&options),
        options.stack_prefix,
    );
    if options.dry_run || (task == Task::Destroy && !options.yes) {
        print_plan(root, &plan);
        if task == Task::Destroy && !options.yes && !options.dry_run {
            bail!("nothing was deleted: re-run with --yes to run the steps above");
        }
        return Ok(());
    }
    let mut run = Run {
        root: root.to_path_buf(),
        vars: BTreeMap::new(),
        missing: BTreeSet::new(),
    };
    let started = Instant::now();
    let total = plan.len();
    for (index, step) in plan.iter().enumerate() {
        let number = index + 1;
        println!("xtask: [{number}/{total}] {}", step.name);
        if let Some(stack) = step.needs.as_ref().filter(|s| run.missing.contains(*s)) {
            println!("xtask:   skipped: stack {stack} does not exist");
            continue;
        }
        let step_started = Instant::now();
        run.step(step).map_err(|error| {
            anyhow::anyhow!(
                "step {number}/{total} `{}` failed: {error:#}\nWhat to do: {}",
                step.name,
                step.hint
            )
        })?;
        println!(
            "xtask:   ok in {:.0} s",
            step_started.elapsed().as_secs_f64()
        );
    }
    match task {
        Task::Deploy => println!(
            "xtask: deployed in {:.0} s\n\
             xtask:   the chat:        {}\n\
             xtask:   WebSocket API:   {}\n\
             xtask: (CloudFront may take a few minutes to serve the new UI everywhere)",
            started.elapsed().as_secs_f64(),
            run.var("SiteURL")?,
            run.var("WebSocketURL")?,
        ),
        Task::Destroy => println!(
            "xtask: destroyed in {:.0} s",
            started.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}

/// Where the calls go: the region (and where it came from), the profile, and the SAM CLI.
struct Target {
    region: String,
    region_source: &'static str,
    profile: Option<String>,
    /// `sam` from PATH, else the pinned one in .tools/venv (installed when first used).
    sam: PathBuf,
    sam_from_venv: bool,
}

impl Target {
    fn resolve(root: &Path, options: &Options) -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let found = options
            .region
            .clone()
            .map(|r| (r, "--region"))
            .or_else(|| env("AWS_REGION").map(|r| (r, "AWS_REGION")))
            .or_else(|| env("AWS_DEFAULT_REGION").map(|r| (r, "AWS_DEFAULT_REGION")));
        let (region, region_source) = match found {
            Some(found) => found,
            // A dry run runs nothing, not even `aws configure`.
            None if options.dry_run => ("REGION".to_string(), "not set: pass --region"),
            None => (
                profile_region(options.profile.as_deref())?,
                "the AWS CLI profile",
            ),
        };
        let (sam, sam_from_venv) = match on_path("sam") {
            Some(sam) => (sam, false),
            None => (root.join(".tools/venv/bin/sam"), true),
        };
        Ok(Self {
            region,
            region_source,
            profile: options.profile.clone(),
            sam,
            sam_from_venv,
        })
    }

    fn call(&self, program: Program, args: &[&str]) -> Call {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--region".to_string(), self.region.clone()]);
        if let Some(profile) = &self.profile {
            args.extend(["--profile".to_string(), profile.clone()]);
        }
        Call { program, args }
    }

    fn aws(&self, args: &[&str]) -> Call {
        self.call(Program::Aws, args)
    }

    fn sam(&self, args: &[&str]) -> Call {
        self.call(
            Program::Sam {
                path: self.sam.clone(),
                install: self.sam_from_venv,
            },
            args,
        )
    }
}

/// The region of the AWS CLI profile in use (`aws configure get region`).
fn profile_region(profile: Option<&str>) -> Result<String> {
    let mut command = Command::new("aws");
    command.args(["configure", "get", "region"]);
    if let Some(profile) = profile {
        command.args(["--profile", profile]);
    }
    let out = command.stdin(Stdio::null()).output();
    let region = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|r| !r.is_empty());
    region.context(
        "no AWS region: pass --region REGION (or set AWS_REGION, or give the profile one \
         with `aws configure set region REGION`)",
    )
}

/// An executable named `name` in a directory of PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| {
            path.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn artifacts_stack(options: &Options) -> String {
    format!("{}-artifacts", options.stack_prefix)
}

// ---------------------------------------------------------------------------------------
// Plans

/// One step of a plan: what it does, and what to do when it fails.
struct Step {
    name: String,
    action: Action,
    hint: String,
    /// The stack the step works on; skipped when an earlier read found it missing.
    needs: Option<String>,
}

impl Step {
    fn new(name: impl Into<String>, action: Action, hint: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            action,
            hint: hint.into(),
            needs: None,
        }
    }

    fn needs(mut self, stack: &str) -> Self {
        self.needs = Some(stack.to_string());
        self
    }

    /// A `ReadOutputs` step that also reads these outputs when the stack has them.
    fn reading(mut self, outputs: &[&'static str]) -> Self {
        if let Action::ReadOutputs { if_there, .. } = &mut self.action {
            if_there.extend(outputs);
        }
        self
    }
}

enum Action {
    /// Commands, in order.
    Run(Vec<Call>),
    /// Fails unless the account has API Gateway's CloudWatch Logs role.
    CheckLoggingRole(Call),
    BuildLambda,
    /// The chat's zip, and the authorizer's (without sign-in, the chat's stands in: the
    /// template's authorizer function is not deployed, but SAM still packages its code).
    UseLambdaZip {
        chat: PathBuf,
        authorizer: Option<PathBuf>,
    },
    BuildUi,
    UseUiDir(PathBuf),
    /// Reads a stack's outputs into the variables; `optional`: a missing stack is noted.
    ReadOutputs {
        stack: String,
        call: Call,
        keys: Vec<&'static str>,
        optional: bool,
        /// Outputs read when the stack has them.
        if_there: Vec<&'static str>,
    },
    /// Copies templates/*.yml to `out`, the websocket stack's code pointing at the zip.
    StageTemplates {
        out: PathBuf,
    },
    /// Copies the UI to `out` and writes its config.json.
    StageSite {
        out: PathBuf,
        /// `--auth`, checked against the stack's sign-in outputs.
        auth: Option<Auth>,
    },
    /// Deletes every object version of a bucket, in batches.
    EmptyBucket {
        list: Call,
        delete: Call,
        batch_file: PathBuf,
    },
}

#[derive(Clone)]
enum Program {
    Aws,
    Sam { path: PathBuf, install: bool },
}

/// One `aws` or `sam` call. Arguments may hold `{Name}`: a value read by an earlier step
/// (a stack output, `LambdaZip`, `UiDir`).
#[derive(Clone)]
struct Call {
    program: Program,
    args: Vec<String>,
}

fn deploy_plan(root: &Path, options: &Options, target: &Target, work: &Path) -> Vec<Step> {
    let stack = options.stack_prefix.as_str();
    let artifacts = artifacts_stack(options);
    let region = target.region.as_str();
    let templates = work.join("templates");
    let site = work.join("site");
    let relative = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let events = |s: &str| {
        format!(
            "The stack's events say why: aws cloudformation describe-stack-events --stack-name \
             {s} --region {region} --max-items 20"
        )
    };
    let sam_hint = if target.sam_from_venv {
        format!(
            " (the SAM CLI is {}, pip-installed on first use)",
            lambdas::sam_cli_pin()
        )
    } else {
        String::new()
    };

    let mut plan = vec![
        Step::new(
            "check the AWS credentials",
            Action::Run(vec![target.aws(&["sts", "get-caller-identity"])]),
            "Install the AWS CLI v2 and give it credentials (`aws configure`, or `aws sso login \
             --profile P` and --profile P).",
        ),
        Step::new(
            "check API Gateway's CloudWatch Logs role (an account setting)",
            Action::CheckLoggingRole(target.aws(&[
                "apigateway",
                "get-account",
                "--output",
                "json",
            ])),
            "See docs/deploy.md, \"One-time account setting\".",
        ),
    ];
    plan.push(match &options.lambda_zip {
        Some(zip) => Step::new(
            format!("use the Lambda zip {}", zip.display()),
            Action::UseLambdaZip {
                chat: zip.clone(),
                authorizer: options.authorizer_zip.clone(),
            },
            "Pass the bootstrap.zips that `cargo xtask lambdas` builds, or leave --lambda-zip out.",
        ),
        None => Step::new(
            "build the Lambda for arm64 (cargo xtask lambdas)",
            Action::BuildLambda,
            "`cargo xtask lambdas` alone shows the same build.",
        ),
    });
    plan.push(match &options.ui_dir {
        Some(dir) => Step::new(
            format!("use the built UI in {}", dir.display()),
            Action::UseUiDir(dir.clone()),
            "Pass a directory trunk built (with index.html), or leave --ui-dir out.",
        ),
        None => Step::new(
            "build the UI (trunk build --release)",
            Action::BuildUi,
            "`cargo xtask dev` builds the same UI and installs its tools.",
        ),
    });
    plan.extend([
        Step::new(
            format!("deploy the artifacts bucket (stack {artifacts}, templates/s3.yml)"),
            Action::Run(vec![target.aws(&[
                "cloudformation",
                "deploy",
                "--stack-name",
                &artifacts,
                "--template-file",
                "templates/s3.yml",
                "--no-fail-on-empty-changeset",
            ])]),
            events(&artifacts),
        ),
        read_outputs(target, &artifacts, vec![ARTIFACTS_BUCKET], false),
        Step::new(
            format!(
                "stage the templates in {}, the functions' code being the Lambda zips",
                relative(&templates)
            ),
            Action::StageTemplates {
                out: templates.clone(),
            },
            "Check that templates/websocket.yml still has `CodeUri: ..` in Globals.Function and \
             in AuthorizerFunction.",
        ),
    ]);
    let root_template = relative(&templates.join("root.yml"));
    let mut sam_deploy = vec![
        "deploy",
        "--template-file",
        &root_template,
        "--stack-name",
        stack,
        "--s3-bucket",
        "{ArtifactsBucket}",
        "--s3-prefix",
        stack,
        "--capabilities",
        "CAPABILITY_IAM",
        "CAPABILITY_AUTO_EXPAND",
        "--no-confirm-changeset",
        "--no-fail-on-empty-changeset",
    ];
    let mut parameters = options.parameters.clone();
    if let Some(auth) = options.auth {
        parameters.push(format!("Auth={}", auth.name()));
    }
    parameters.extend(options.oidc.iter().map(|(p, v)| format!("{p}={v}")));
    if !parameters.is_empty() {
        sam_deploy.push("--parameter-overrides");
        sam_deploy.extend(parameters.iter().map(String::as_str));
    }
    let site_arg = format!("{}/", relative(&site));
    let index = relative(&site.join("index.html"));
    let config = relative(&site.join("config.json"));
    plan.extend([
        Step::new(
            format!("deploy the chat (stack {stack}, templates/root.yml: tables, WebSocket API, hosting)"),
            Action::Run(vec![target.sam(&sam_deploy)]),
            format!(
                "{}{sam_hint}. A first deploy that failed leaves the stack in ROLLBACK_COMPLETE, \
                 which cannot be updated: `cargo xtask destroy --yes` (same options), then deploy again.",
                events(stack)
            ),
        ),
        read_outputs(target, stack, ROOT_OUTPUTS.to_vec(), false).reading(&AUTH_OUTPUTS),
        Step::new(
            format!(
                "write config.json (websocketUrl{}) into the UI copy in {}",
                if options.auth.unwrap_or_default() == Auth::None { "" } else { ", auth" },
                relative(&site)
            ),
            Action::StageSite {
                out: site.clone(),
                auth: options.auth,
            },
            "The root stack's WebSocketURL output must be a wss:// URL, and with sign-in on it \
             must have the Auth* outputs of templates/root.yml.",
        ),
        Step::new(
            "upload the UI: new files first, index.html and config.json (never cached) next, stale files last",
            Action::Run(vec![
                // The browser needs WebAssembly served as application/wasm.
                target.aws(&[
                    "s3", "cp", &site_arg, "s3://{SiteBucket}/", "--recursive", "--exclude", "*",
                    "--include", "*.wasm", "--content-type", "application/wasm",
                ]),
                target.aws(&[
                    "s3", "sync", &site_arg, "s3://{SiteBucket}/", "--exclude", "*.wasm",
                    "--exclude", "index.html", "--exclude", "config.json",
                ]),
                target.aws(&[
                    "s3", "cp", &config, "s3://{SiteBucket}/config.json", "--cache-control",
                    "no-cache", "--content-type", "application/json",
                ]),
                target.aws(&[
                    "s3", "cp", &index, "s3://{SiteBucket}/index.html", "--cache-control",
                    "no-cache", "--content-type", "text/html",
                ]),
                // Only now that the new index.html is up: the old UI's files go.
                target.aws(&["s3", "sync", &site_arg, "s3://{SiteBucket}/", "--delete"]),
            ]),
            "The bucket is the root stack's SiteBucket output; re-run `cargo xtask deploy` (an \
             unchanged stack is skipped) or the failed `aws s3` call above.",
        ),
        Step::new(
            "invalidate CloudFront's copies",
            Action::Run(vec![target.aws(&[
                "cloudfront",
                "create-invalidation",
                "--distribution-id",
                "{DistributionId}",
                "--paths",
                "/*",
            ])]),
            "The new UI is uploaded; until the invalidation runs, CloudFront may serve the \
             old files for up to a day. Re-run the call above.",
        ),
    ]);
    plan
}

fn destroy_plan(options: &Options, target: &Target, work: &Path) -> Vec<Step> {
    let stack = options.stack_prefix.as_str();
    let artifacts = artifacts_stack(options);
    let empty = |bucket: &str, stack: &str| {
        Step::new(
            format!("empty the bucket {{{bucket}}} of stack {stack}, every version"),
            Action::EmptyBucket {
                list: target.aws(&[
                    "s3api",
                    "list-object-versions",
                    "--bucket",
                    &format!("{{{bucket}}}"),
                    "--max-items",
                    "500",
                    "--output",
                    "json",
                ]),
                delete: target.aws(&[
                    "s3api",
                    "delete-objects",
                    "--bucket",
                    &format!("{{{bucket}}}"),
                    "--delete",
                    &format!("file://{}", work.join("delete-batch.json").display()),
                    "--output",
                    "json",
                ]),
                batch_file: work.join("delete-batch.json"),
            },
            "Re-run `cargo xtask destroy --yes`; it carries on from where it stopped.",
        )
        .needs(stack)
    };
    let delete = |stack: &str| {
        Step::new(
            format!("delete the stack {stack}"),
            Action::Run(vec![target.sam(&[
                "delete",
                "--stack-name",
                stack,
                "--no-prompts",
            ])]),
            format!(
                "The stack's events say why: aws cloudformation describe-stack-events \
                 --stack-name {stack} --region {} --max-items 20",
                target.region
            ),
        )
        .needs(stack)
    };
    vec![
        Step::new(
            "check the AWS credentials",
            Action::Run(vec![target.aws(&["sts", "get-caller-identity"])]),
            "Give the AWS CLI credentials (`aws configure`, or `aws sso login --profile P`).",
        ),
        read_outputs(target, stack, vec!["SiteBucket"], true),
        empty("SiteBucket", stack),
        delete(stack),
        read_outputs(target, &artifacts, vec![ARTIFACTS_BUCKET], true),
        empty(ARTIFACTS_BUCKET, &artifacts),
        delete(&artifacts),
    ]
}

fn read_outputs(target: &Target, stack: &str, keys: Vec<&'static str>, optional: bool) -> Step {
    Step::new(
        format!("read the outputs of stack {stack}"),
        Action::ReadOutputs {
            stack: stack.to_string(),
            call: target.aws(&[
                "cloudformation",
                "describe-stacks",
                "--stack-name",
                stack,
                "--output",
                "json",
            ]),
            keys,
            optional,
            if_there: Vec::new(),
        },
        "Is the stack there, in this region? `aws cloudformation describe-stacks` shows it.",
    )
}

fn print_plan(root: &Path, plan: &[Step]) {
    println!("xtask: the plan (nothing runs):");
    for (index, step) in plan.iter().enumerate() {
        println!("xtask: [{}/{}] {}", index + 1, plan.len(), step.name);
        for line in describe(root, &step.action) {
            println!("xtask:   {line}");
        }
    }
}

/// What an action runs, for the plan and the progress.
fn describe(root: &Path, action: &Action) -> Vec<String> {
    let relative = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    match action {
        Action::Run(calls) => calls.iter().map(Call::shown).collect(),
        Action::CheckLoggingRole(call) => vec![
            call.shown(),
            "(fails unless cloudwatchRoleArn is set)".into(),
        ],
        Action::BuildLambda => vec![
            "cargo-lambda build --release --arm64 --bin webchat-lambda --bin webchat-authorizer \
             (.tools/venv)"
                .into(),
        ],
        Action::UseLambdaZip { chat, authorizer } => {
            let mut lines = vec![format!("{} must be a file", chat.display())];
            lines.extend(
                authorizer
                    .iter()
                    .map(|a| format!("{} must be a file", a.display())),
            );
            lines
        }
        Action::BuildUi => vec!["trunk build --offline --release → dist/".into()],
        Action::UseUiDir(dir) => vec![format!("{} must hold index.html", dir.display())],
        Action::ReadOutputs {
            call,
            keys,
            if_there,
            ..
        } => {
            let names = |keys: &[&str]| {
                keys.iter()
                    .map(|k| format!("{{{k}}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut lines = vec![call.shown(), format!("→ {}", names(keys))];
            if !if_there.is_empty() {
                lines.push(format!("→ if there: {}", names(if_there)));
            }
            lines
        }
        Action::StageTemplates { out } => vec![format!(
            "templates/*.yml → {}, websocket.yml's `CodeUri: ..` → {{LambdaZip}}",
            relative(out)
        )],
        Action::StageSite { out, auth } => {
            let mut lines = vec![format!(
                "{{UiDir}} → {}, plus config.json {{\"websocketUrl\": \"{{WebSocketURL}}\"}}",
                relative(out)
            )];
            if auth.unwrap_or_default() != Auth::None {
                lines.push(
                    "and \"auth\": {\"issuer\": \"{AuthIssuer}\", \"clientId\": \"{AuthClientId}\", \
                     \"authorizeUrl\": \"{AuthAuthorizeUrl}\", \"tokenUrl\": \"{AuthTokenUrl}\", \
                     \"logoutUrl\": \"{AuthLogoutUrl}\" (if there)}"
                        .into(),
                );
            }
            lines
        }
        Action::EmptyBucket { list, delete, .. } => vec![
            list.shown(),
            delete.shown(),
            "(repeated until the list is empty)".into(),
        ],
    }
}

impl Call {
    fn program_name(&self) -> String {
        match &self.program {
            Program::Aws => "aws".into(),
            Program::Sam { path, .. }
                if path.is_absolute() && path.ends_with(".tools/venv/bin/sam") =>
            {
                ".tools/venv/bin/sam".into()
            }
            Program::Sam { .. } => "sam".into(),
        }
    }

    /// The call as a shell line.
    fn shown(&self) -> String {
        self.shown_with(&self.args)
    }

    fn shown_with(&self, args: &[String]) -> String {
        std::iter::once(format!("$ {}", self.program_name()))
            .chain(args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+{}".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------------------------------
// Running

struct Run {
    root: PathBuf,
    /// Values read so far, by name: stack outputs, `LambdaZip`, `UiDir`.
    vars: BTreeMap<String, String>,
    /// Stacks found not to exist.
    missing: BTreeSet<String>,
}

impl Run {
    fn step(&mut self, step: &Step) -> Result<()> {
        match &step.action {
            Action::Run(calls) => {
                for call in calls {
                    self.call(call)?;
                }
                Ok(())
            }
            Action::CheckLoggingRole(call) => {
                let account: Value = serde_json::from_str(&self.output(call)?.stdout)
                    .context("reading `aws apigateway get-account`'s JSON")?;
                match account["cloudwatchRoleArn"].as_str() {
                    Some(arn) if !arn.is_empty() => {
                        println!("xtask:   {arn}");
                        Ok(())
                    }
                    _ => bail!(
                        "this account has no CloudWatch Logs role for API Gateway in this \
                         region, so the WebSocket API's access logs cannot be set up. Set it \
                         once with the three commands in docs/deploy.md (\"One-time account \
                         setting\"), then deploy again"
                    ),
                }
            }
            Action::BuildLambda => {
                let zips = lambdas::build_lambdas(&self.root)?;
                self.set("LambdaZip", &zips.chat);
                self.set("AuthorizerZip", &zips.authorizer);
                Ok(())
            }
            Action::UseLambdaZip { chat, authorizer } => {
                for zip in std::iter::once(chat).chain(authorizer) {
                    if !zip.is_file() {
                        bail!("{} is not a file", zip.display());
                    }
                }
                let chat = chat.canonicalize()?;
                let authorizer = match authorizer {
                    Some(zip) => zip.canonicalize()?,
                    None => chat.clone(),
                };
                self.set("LambdaZip", &chat);
                self.set("AuthorizerZip", &authorizer);
                Ok(())
            }
            Action::BuildUi => {
                ui::ensure_ui_tools(&self.root)?;
                let dist = ui::build_ui(&self.root, true)?;
                self.set("UiDir", &dist);
                Ok(())
            }
            Action::UseUiDir(dir) => {
                if !dir.join("index.html").is_file() {
                    bail!("{} has no index.html", dir.display());
                }
                self.set("UiDir", dir);
                Ok(())
            }
            Action::ReadOutputs {
                stack,
                call,
                keys,
                optional,
                if_there,
            } => self.read_outputs(stack, call, keys, *optional, if_there),
            Action::StageTemplates { out } => stage_templates(
                &self.root.join("templates"),
                out,
                Path::new(self.var("LambdaZip")?),
                Path::new(self.var("AuthorizerZip")?),
            ),
            Action::StageSite { out, auth } => {
                let config = ui_config(&self.vars, *auth)?;
                stage_site(Path::new(self.var("UiDir")?), out, &config)
            }
            Action::EmptyBucket {
                list,
                delete,
                batch_file,
            } => self.empty_bucket(list, delete, batch_file),
        }
    }

    /// A value an earlier step read.
    fn var(&self, name: &str) -> Result<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("no {name}: the step that reads it did not run"))
    }

    fn set(&mut self, name: &str, path: &Path) {
        self.vars
            .insert(name.to_string(), path.display().to_string());
    }

    /// The call's arguments with `{Name}`s replaced.
    fn resolve(&self, call: &Call) -> Result<Vec<String>> {
        call.args
            .iter()
            .map(|arg| {
                let mut arg = arg.clone();
                for (name, value) in &self.vars {
                    arg = arg.replace(&format!("{{{name}}}"), value);
                }
                match arg.find('{').zip(arg.find('}')) {
                    Some((open, close)) if open < close => {
                        bail!("no value for {} in `{arg}`", &arg[open..=close])
                    }
                    _ => Ok(arg),
                }
            })
            .collect()
    }

    /// The command for a call, which it shows as it will run.
    fn command(&self, call: &Call) -> Result<Command> {
        let program: OsString = match &call.program {
            Program::Aws => "aws".into(),
            Program::Sam { path, install } => {
                if *install {
                    lambdas::sam_cli(&self.root)?;
                }
                path.into()
            }
        };
        let args = self.resolve(call)?;
        println!("xtask:   {}", call.shown_with(&args));
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        Ok(command)
    }

    /// Runs a call with its output shown.
    fn call(&self, call: &Call) -> Result<()> {
        let mut command = self.command(call)?;
        let status = command.status().map_err(|e| not_started(call, e))?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}); see its output above",
                call.program_name()
            );
        }
        Ok(())
    }

    /// Runs a call and keeps its output; its standard error is shown if it fails.
    fn output(&self, call: &Call) -> Result<Captured> {
        let mut command = self.command(call)?;
        let out = command.output().map_err(|e| not_started(call, e))?;
        let captured = Captured {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if !captured.success {
            bail!(
                "`{}` failed ({}): {}",
                call.program_name(),
                out.status,
                captured.stderr.trim()
            );
        }
        Ok(captured)
    }

    fn read_outputs(
        &mut self,
        stack: &str,
        call: &Call,
        keys: &[&'static str],
        optional: bool,
        if_there: &[&'static str],
    ) -> Result<()> {
        let described = match self.output(call) {
            Ok(captured) => captured.stdout,
            Err(e) if optional && format!("{e:#}").contains("does not exist") => {
                println!("xtask:   stack {stack} does not exist");
                self.missing.insert(stack.to_string());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let outputs = stack_outputs(&described)
            .with_context(|| format!("reading the outputs of stack {stack}"))?;
        for key in keys {
            let value = outputs.get(*key).with_context(|| {
                format!(
                    "stack {stack} has no output {key}; was it deployed from an older \
                     template? `cargo xtask deploy` updates it"
                )
            })?;
            println!("xtask:   {key} = {value}");
            self.vars.insert(key.to_string(), value.clone());
        }
        for key in if_there {
            if let Some(value) = outputs.get(*key) {
                println!("xtask:   {key} = {value}");
                self.vars.insert(key.to_string(), value.clone());
            }
        }
        Ok(())
    }

    fn empty_bucket(&self, list: &Call, delete: &Call, batch_file: &Path) -> Result<()> {
        let mut deleted = 0;
        loop {
            let versions = object_versions(&self.output(list)?.stdout)?;
            if versions.is_empty() {
                println!("xtask:   {deleted} object versions deleted; the bucket is empty");
                return Ok(());
            }
            if let Some(dir) = batch_file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let batch = serde_json::json!({ "Objects": versions, "Quiet": true });
            std::fs::write(batch_file, batch.to_string())
                .with_context(|| format!("writing {}", batch_file.display()))?;
            let answer = self.output(delete)?.stdout;
            let errors = serde_json::from_str::<Value>(&answer)
                .ok()
                .and_then(|a| a["Errors"].as_array().filter(|e| !e.is_empty()).cloned());
            if let Some(errors) = errors {
                bail!(
                    "S3 did not delete {} object versions: {}",
                    errors.len(),
                    errors[0]
                );
            }
            deleted += versions.len();
        }
    }
}

struct Captured {
    success: bool,
    stdout: String,
    stderr: String,
}

fn not_started(call: &Call, error: std::io::Error) -> anyhow::Error {
    let what = match (&call.program, error.kind()) {
        (Program::Aws, std::io::ErrorKind::NotFound) => {
            "the AWS CLI (`aws`) is not on PATH: install AWS CLI v2 (see \
             https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)"
                .to_string()
        }
        (Program::Sam { .. }, std::io::ErrorKind::NotFound) => format!(
            "the SAM CLI (`sam`) is not on PATH: `pip install {}`, or take it off PATH so \
             that xtask installs it into .tools/venv",
            lambdas::sam_cli_pin()
        ),
        _ => format!("starting {} failed: {error}", call.program_name()),
    };
    anyhow::anyhow!(what)
}

/// `describe-stacks` JSON → the first stack's outputs by key.
fn stack_outputs(json: &str) -> Result<BTreeMap<String, String>> {
    let described: Value = serde_json::from_str(json).context("not JSON")?;
    let outputs = described["Stacks"][0]["Outputs"].as_array();
    Ok(outputs
        .into_iter()
        .flatten()
        .filter_map(|o| {
            Some((
                o["OutputKey"].as_str()?.to_string(),
                o["OutputValue"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// `list-object-versions` JSON → `[{Key, VersionId}]` of its versions and delete markers.
fn object_versions(json: &str) -> Result<Vec<Value>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let listed: Value = serde_json::from_str(json).context("reading list-object-versions' JSON")?;
    Ok(["Versions", "DeleteMarkers"]
        .iter()
        .filter_map(|kind| listed[kind].as_array())
        .flatten()
        .map(|v| serde_json::json!({ "Key": v["Key"], "VersionId": v["VersionId"] }))
        .collect())
}

/// Copies `templates/*.yml` into `out` (emptied first), with websocket.yml's functions
/// running the prebuilt zips instead of being built from the workspace.
fn stage_templates(templates: &Path, out: &Path, zip: &Path, authorizer_zip: &Path) -> Result<()> {
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
fn with_code_uris(template: &str, zip: &Path, authorizer_zip: &Path) -> Result<String> {
    let is_code_uri = |line: &str| line.trim() == "CodeUri: ..";
    // The section (`Globals:`, `Resources:`) and the entry in it (`  Function:`,
    // `  AuthorizerFunction:`) a line is in.
    let mut section = "";
    let mut entry = "";
    let mut found = Vec::new();
    let mut lines = Vec::new();
    for line in template.lines() {
        if !line.starts_with([' ', '#']) && line.ends_with(':') {
            section = line;
        } else if line.starts_with("  ")
            && !line.starts_with("   ")
            && line.trim_end().ends_with(':')
        {
            entry = line.trim();
        }
        if !is_code_uri(line) {
            lines.push(line.to_string());
            continue;
        }
        let code = match (section, entry) {
            ("Globals:", "Function:") => zip,
            ("Resources:", "AuthorizerFunction:") => authorizer_zip,
            _ => bail!(
                "websocket.yml has `CodeUri: ..` in {section} {entry}, expected only in \
                        Globals.Function and AuthorizerFunction"
            ),
        };
        found.push(entry);
        let quoted = serde_json::to_string(&code.display().to_string())?;
        lines.push(line.replace("..", &quoted));
    }
    if found != ["Function:", "AuthorizerFunction:"] {
        bail!(
            "websocket.yml has `CodeUri: ..` in {found:?}, expected one in Globals.Function \
             and one in AuthorizerFunction"
        );
    }
    Ok(lines.join("\n") + "\n")
}

/// The UI's config.json: `websocketUrl` (frontend/src/state.rs reads it) and, when the
/// stack has sign-in on, `auth` from its outputs (docs/deploy.md, "Sign-in").
fn ui_config(outputs: &BTreeMap<String, String>, auth: Option<Auth>) -> Result<Value> {
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
fn stage_site(ui_dir: &Path, out: &Path, config: &Value) -> Result<()> {
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

    #[test]
    fn auth_options_go_together() {
        let parse = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
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
    fn stack_outputs_and_object_versions_are_read_from_the_cli_json() {
        let described = r#"{"Stacks":[{"StackName":"s","Outputs":[
            {"OutputKey":"SiteBucket","OutputValue":"b-1"},
            {"OutputKey":"SiteURL","OutputValue":"https://d.cloudfront.net"}]}]}"#;
        let outputs = stack_outputs(described).unwrap();
        assert_eq!(outputs["SiteBucket"], "b-1");
        assert_eq!(outputs.len(), 2);
        assert!(stack_outputs(r#"{"Stacks":[{"StackName":"s"}]}"#)
            .unwrap()
            .is_empty());

        let listed = r#"{"Versions":[{"Key":"a","VersionId":"1","Size":3}],
            "DeleteMarkers":[{"Key":"b","VersionId":"2"}],"NextToken":"t"}"#;
        assert_eq!(
            object_versions(listed).unwrap(),
            [
                serde_json::json!({"Key": "a", "VersionId": "1"}),
                serde_json::json!({"Key": "b", "VersionId": "2"}),
            ]
        );
        assert!(object_versions("").unwrap().is_empty());
        assert!(object_versions(r#"{"RequestCharged": null}"#)
            .unwrap()
            .is_empty());
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

    #[test]
    fn arguments_are_shown_as_a_shell_would_take_them() {
        assert_eq!(shell_quote("s3://{SiteBucket}/"), "s3://{SiteBucket}/");
        assert_eq!(shell_quote("/*"), "'/*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
