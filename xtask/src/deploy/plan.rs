//! What a deploy or a destroy consists of: its steps, each with the calls it makes and what
//! to do when it fails. Building a plan runs nothing (`--dry-run` prints one); `execute`
//! runs it.

use std::path::{Path, PathBuf};

use super::options::{Auth, Options};
use super::Target;
use crate::lambdas;

/// The root stack's outputs that deploy reads (templates/tests/it/stacks.rs checks they exist).
pub(super) const ROOT_OUTPUTS: [&str; 4] =
    ["WebSocketURL", "SiteURL", "SiteBucket", "DistributionId"];
/// The root stack's sign-in outputs, there when sign-in is on (`AuthLogoutUrl` optional).
pub(super) const AUTH_OUTPUTS: [&str; 5] = [
    "AuthIssuer",
    "AuthClientId",
    "AuthAuthorizeUrl",
    "AuthTokenUrl",
    "AuthLogoutUrl",
];
/// The artifacts stack's output.
pub(super) const ARTIFACTS_BUCKET: &str = "ArtifactsBucket";

/// One step of a plan: what it does, and what to do when it fails.
pub(super) struct Step {
    pub(super) name: String,
    pub(super) action: Action,
    pub(super) hint: String,
    /// The stack the step works on; skipped when an earlier read found it missing.
    pub(super) needs: Option<String>,
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

pub(super) enum Action {
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
pub(super) enum Program {
    Aws,
    Sam { path: PathBuf, install: bool },
}

/// One `aws` or `sam` call. Arguments may hold `{Name}`: a value read by an earlier step
/// (a stack output, `LambdaZip`, `UiDir`).
#[derive(Clone)]
pub(super) struct Call {
    pub(super) program: Program,
    pub(super) args: Vec<String>,
}

pub(super) fn deploy_plan(
    root: &Path,
    options: &Options,
    target: &Target,
    work: &Path,
) -> Vec<Step> {
    let stack = options.stack_prefix.as_str();
    let artifacts = options.artifacts_stack();
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

pub(super) fn destroy_plan(options: &Options, target: &Target, work: &Path) -> Vec<Step> {
    let stack = options.stack_prefix.as_str();
    let artifacts = options.artifacts_stack();
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

pub(super) fn print_plan(root: &Path, plan: &[Step]) {
    println!("xtask: the plan (nothing runs):");
    for (index, step) in plan.iter().enumerate() {
        println!("xtask: [{}/{}] {}", index + 1, plan.len(), step.name);
        for line in describe(root, &step.action) {
            println!("xtask:   {line}");
        }
    }
}

/// What an action runs, for the plan and the progress.
pub(super) fn describe(root: &Path, action: &Action) -> Vec<String> {
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
    pub(super) fn program_name(&self) -> String {
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
    pub(super) fn shown(&self) -> String {
        self.shown_with(&self.args)
    }

    pub(super) fn shown_with(&self, args: &[String]) -> String {
        std::iter::once(format!("$ {}", self.program_name()))
            .chain(args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub(super) fn shell_quote(arg: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::options::parse_options;
    use crate::deploy::Task;

    fn target() -> Target {
        Target {
            region: "eu-west-1".into(),
            region_source: "--region",
            profile: Some("team".into()),
            sam: PathBuf::from("/usr/bin/sam"),
            sam_from_venv: false,
        }
    }

    fn parse(task: Task, args: &[&str]) -> Options {
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        parse_options(task, &args).unwrap()
    }

    fn calls(plan: &[Step]) -> Vec<&Call> {
        plan.iter()
            .flat_map(|step| match &step.action {
                Action::Run(calls) => calls.iter().collect(),
                Action::CheckLoggingRole(call) | Action::ReadOutputs { call, .. } => vec![call],
                Action::EmptyBucket { list, delete, .. } => vec![list, delete],
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_deploy_builds_then_deploys_artifacts_before_the_root_stack_in_one_region() {
        let root = Path::new("/w");
        let work = root.join("target/deploy/chat");
        let options = parse(
            Task::Deploy,
            &["--stack-prefix", "chat", "--auth", "cognito"],
        );
        let plan = deploy_plan(root, &options, &target(), &work);
        let names: Vec<&str> = plan.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 12, "{names:#?}");
        assert!(matches!(plan[2].action, Action::BuildLambda));
        assert!(matches!(plan[3].action, Action::BuildUi));
        assert!(names[4].contains("stack chat-artifacts"), "{}", names[4]);
        assert!(matches!(plan[6].action, Action::StageTemplates { .. }));
        assert!(names[7].contains("stack chat,"), "{}", names[7]);
        assert!(matches!(
            plan[9].action,
            Action::StageSite {
                auth: Some(Auth::Cognito),
                ..
            }
        ));
        for call in calls(&plan) {
            let shown = call.shown();
            assert!(
                shown.contains("--region eu-west-1 --profile team"),
                "{shown}"
            );
        }
        let sam_deploy = calls(&plan)
            .into_iter()
            .find(|c| matches!(c.program, Program::Sam { .. }))
            .unwrap()
            .shown();
        assert!(
            sam_deploy.starts_with(
                "$ sam deploy --template-file target/deploy/chat/templates/root.yml \
                 --stack-name chat --s3-bucket {ArtifactsBucket}"
            ),
            "{sam_deploy}"
        );
        assert!(
            sam_deploy.contains("--parameter-overrides Auth=cognito --region"),
            "{sam_deploy}"
        );

        let given = parse(
            Task::Deploy,
            &["--lambda-zip", "/z/chat.zip", "--ui-dir", "/z/dist"],
        );
        let plan = deploy_plan(root, &given, &target(), &work);
        assert!(matches!(
            &plan[2].action,
            Action::UseLambdaZip {
                authorizer: None,
                ..
            }
        ));
        assert!(matches!(&plan[3].action, Action::UseUiDir(dir) if dir == Path::new("/z/dist")));
        assert!(!calls(&plan)
            .iter()
            .any(|c| c.shown().contains("--parameter-overrides")));
    }

    #[test]
    fn a_destroy_empties_and_deletes_the_root_stack_before_the_artifacts_stack() {
        let options = parse(Task::Destroy, &["--stack-prefix", "chat"]);
        let plan = destroy_plan(&options, &target(), Path::new("/w/target/deploy/chat"));
        let names: Vec<&str> = plan.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "check the AWS credentials",
                "read the outputs of stack chat",
                "empty the bucket {SiteBucket} of stack chat, every version",
                "delete the stack chat",
                "read the outputs of stack chat-artifacts",
                "empty the bucket {ArtifactsBucket} of stack chat-artifacts, every version",
                "delete the stack chat-artifacts",
            ]
        );
        // A missing stack is noted by its read and skips the steps that need it.
        assert!(matches!(
            plan[1].action,
            Action::ReadOutputs { optional: true, .. }
        ));
        let needs: Vec<Option<&str>> = plan.iter().map(|s| s.needs.as_deref()).collect();
        assert_eq!(
            needs,
            [
                None,
                None,
                Some("chat"),
                Some("chat"),
                None,
                Some("chat-artifacts"),
                Some("chat-artifacts")
            ]
        );
    }

    #[test]
    fn arguments_are_shown_as_a_shell_would_take_them() {
        assert_eq!(shell_quote("s3://{SiteBucket}/"), "s3://{SiteBucket}/");
        assert_eq!(shell_quote("/*"), "'/*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
