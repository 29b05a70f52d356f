//! `cargo xtask deploy` and `destroy` against stand-ins for the AWS CLI and the SAM CLI:
//! executables named `aws` and `sam`, first on PATH, that record each call and answer as
//! the real ones would, with canned stack outputs. No AWS account is needed, and the
//! Lambda and UI builds are replaced by prebuilt files (`--lambda-zip`, `--ui-dir`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

const REGION: &str = "eu-central-1";
const WSS_URL: &str = "wss://abc123.execute-api.eu-central-1.amazonaws.com/Prod";
const SITE_URL: &str = "https://d111abcdef8.cloudfront.net";

/// The stand-in, as a POSIX shell script. One call is its name on one line, then each
/// argument on a line of its own after a tab.
const STAND_IN: &str = r#"#!/bin/sh
name=$(basename "$0")
{ printf '%s\n' "$name"; for arg in "$@"; do printf '\t%s\n' "$arg"; done; } >> "$FAKE_LOG"
line="$name $*"
if [ -n "$FAKE_FAIL" ]; then
  case "$line" in *"$FAKE_FAIL"*) echo "An error occurred (ValidationError): simulated" >&2; exit 254;; esac
fi
if [ -n "$FAKE_MISSING" ]; then
  case "$line" in *"describe-stacks --stack-name $FAKE_MISSING "*)
    echo "An error occurred (ValidationError) when calling the DescribeStacks operation: Stack with id $FAKE_MISSING does not exist" >&2
    exit 254;;
  esac
fi
case "$line" in
  "aws sts get-caller-identity"*) echo '{"Account": "123456789012"}' ;;
  "aws apigateway get-account"*)
    if [ -n "$FAKE_NO_LOGGING_ROLE" ]; then echo '{"throttleSettings": {}}';
    else echo '{"cloudwatchRoleArn": "arn:aws:iam::123456789012:role/ApiGatewayLogs"}'; fi ;;
  "aws cloudformation describe-stacks --stack-name "*-artifacts" "*)
    echo '{"Stacks":[{"Outputs":[{"OutputKey":"ArtifactsBucket","OutputValue":"artifacts-bucket-1"}]}]}' ;;
  "aws cloudformation describe-stacks "*)
    auth=""
    if [ -n "$FAKE_AUTH" ]; then auth="$FAKE_AUTH,"; fi
    echo '{"Stacks":[{"Outputs":['"$auth"'
      {"OutputKey":"WebSocketURL","OutputValue":"wss://abc123.execute-api.eu-central-1.amazonaws.com/Prod"},
      {"OutputKey":"ApiId","OutputValue":"abc123"},
      {"OutputKey":"SiteURL","OutputValue":"https://d111abcdef8.cloudfront.net"},
      {"OutputKey":"SiteBucket","OutputValue":"site-bucket-1"},
      {"OutputKey":"DistributionId","OutputValue":"E2DIST"}]}]}' ;;
  "aws s3api list-object-versions"*)
    # A bucket holds two versions until they are deleted once.
    bucket=$(echo "$line" | sed 's/.*--bucket \([^ ]*\).*/\1/')
    if [ -e "$FAKE_LOG.emptied-$bucket" ]; then echo '{}';
    else echo '{"Versions":[{"Key":"index.html","VersionId":"v1"}],"DeleteMarkers":[{"Key":"old.js","VersionId":"v2"}]}'; fi ;;
  "aws s3api delete-objects"*)
    bucket=$(echo "$line" | sed 's/.*--bucket \([^ ]*\).*/\1/')
    file=$(echo "$line" | sed 's/.*--delete file:\/\/\([^ ]*\).*/\1/')
    cp "$file" "$FAKE_LOG.deleted-$bucket.json"
    touch "$FAKE_LOG.emptied-$bucket"
    echo '{}' ;;
esac
exit 0
"#;

/// A test's directory with the stand-ins, a Lambda zip and a built UI.
struct Bench {
    dir: PathBuf,
}

impl Bench {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("dist")).unwrap();
        for program in ["aws", "sam"] {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join("bin").join(program);
            std::fs::write(&path, STAND_IN).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.join("bootstrap.zip"), b"PK\x03\x04 a prebuilt zip").unwrap();
        std::fs::write(dir.join("authorizer.zip"), b"PK\x03\x04 the authorizer").unwrap();
        std::fs::write(
            dir.join("dist/index.html"),
            "<!doctype html><title>webchat</title>",
        )
        .unwrap();
        std::fs::write(dir.join("dist/app_bg.wasm"), b"\0asm").unwrap();
        Self { dir }
    }

    /// Runs `xtask ARGS` with the stand-ins first on PATH and only `env` of the AWS
    /// variables set.
    fn xtask(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .args(args)
            .env("PATH", path)
            .env("FAKE_LOG", self.log());
        for name in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "FAKE_FAIL",
            "FAKE_MISSING",
            "FAKE_NO_LOGGING_ROLE",
            "FAKE_AUTH",
            "CARGO_TARGET_DIR",
        ] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        command.output().unwrap()
    }

    fn deploy_args(&self, prefix: &'static str) -> Vec<String> {
        [
            "deploy",
            "--stack-prefix",
            prefix,
            "--region",
            REGION,
            "--profile",
            "test-profile",
            "--lambda-zip",
        ]
        .map(String::from)
        .into_iter()
        .chain([self.dir.join("bootstrap.zip").display().to_string()])
        .chain([
            "--ui-dir".into(),
            self.dir.join("dist").display().to_string(),
        ])
        .collect()
    }

    fn log(&self) -> PathBuf {
        self.dir.join("calls.log")
    }

    /// The recorded calls, each as program and arguments.
    fn calls(&self) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let mut calls: Vec<Vec<String>> = Vec::new();
        for line in log.lines() {
            match line.strip_prefix('\t') {
                Some(arg) => calls.last_mut().unwrap().push(arg.to_string()),
                None => calls.push(vec![line.to_string()]),
            }
        }
        calls
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A call's program and its words before the first option, e.g. `aws s3 sync`.
fn verb(call: &[String]) -> String {
    call.iter()
        .take_while(|a| !a.starts_with("--"))
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value after `flag` in a call.
fn flag<'a>(call: &'a [String], flag: &str) -> Option<&'a str> {
    let at = call.iter().position(|a| a == flag)?;
    call.get(at + 1).map(String::as_str)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn deploy_runs_every_step_in_order_in_one_region_and_points_the_ui_at_the_api() {
    let bench = Bench::new("deploy-ok");
    let args = bench.deploy_args("xtask-test-deploy");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Environment regions that disagree with --region must not win.
    let out = bench.xtask(
        &args,
        &[
            ("AWS_REGION", "us-west-2"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));

    let calls = bench.calls();
    let verbs: Vec<String> = calls.iter().map(|c| verb(c)).collect();
    assert_eq!(
        verbs,
        [
            "aws sts get-caller-identity",
            "aws apigateway get-account",
            "aws cloudformation deploy",
            "aws cloudformation describe-stacks",
            "sam deploy",
            "aws cloudformation describe-stacks",
            "aws s3 cp",
            "aws s3 sync",
            "aws s3 cp",
            "aws s3 cp",
            "aws s3 sync",
            "aws cloudfront create-invalidation",
        ]
    );
    for call in &calls {
        assert_eq!(flag(call, "--region"), Some(REGION), "{call:?}");
        assert_eq!(flag(call, "--profile"), Some("test-profile"), "{call:?}");
    }

    // The artifacts stack first, then the root stack into its bucket.
    assert_eq!(
        flag(&calls[2], "--stack-name"),
        Some("xtask-test-deploy-artifacts")
    );
    assert_eq!(flag(&calls[2], "--template-file"), Some("templates/s3.yml"));
    assert!(calls[2].contains(&"--no-fail-on-empty-changeset".to_string()));
    let sam_deploy = &calls[4];
    assert_eq!(flag(sam_deploy, "--stack-name"), Some("xtask-test-deploy"));
    assert_eq!(flag(sam_deploy, "--s3-bucket"), Some("artifacts-bucket-1"));
    for expected in [
        "CAPABILITY_IAM",
        "CAPABILITY_AUTO_EXPAND",
        "--no-fail-on-empty-changeset",
        "--no-confirm-changeset",
    ] {
        assert!(
            sam_deploy.contains(&expected.to_string()),
            "{expected}: {sam_deploy:?}"
        );
    }
    let template = workspace().join(flag(sam_deploy, "--template-file").unwrap());
    assert_eq!(template.file_name().unwrap(), "root.yml");
    let websocket = std::fs::read_to_string(template.with_file_name("websocket.yml")).unwrap();
    let zip = bench.dir.join("bootstrap.zip").canonicalize().unwrap();
    assert_eq!(
        websocket
            .matches(&format!("CodeUri: {}", json!(zip.display().to_string())))
            .count(),
        2,
        "the staged websocket.yml runs the given zip (which also stands in for the \
         authorizer's, not deployed without sign-in)"
    );
    assert_eq!(
        flag(sam_deploy, "--parameter-overrides"),
        None,
        "without --auth, the template's default (no sign-in)"
    );
    assert_eq!(flag(&calls[5], "--stack-name"), Some("xtask-test-deploy"));

    // The UI copy has the built files and a config.json naming the stack's wss:// URL.
    let site = workspace().join("target/deploy/xtask-test-deploy/site");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(site.join("config.json")).unwrap()).unwrap();
    assert_eq!(config, json!({ "websocketUrl": WSS_URL }));
    assert!(site.join("index.html").is_file() && site.join("app_bg.wasm").is_file());

    // Uploads go to the stack's bucket: wasm typed, entry page and config never cached,
    // stale files deleted last; then CloudFront forgets its copies.
    let uploads = &calls[6..11];
    for call in uploads {
        assert!(
            call.iter().any(|a| a.starts_with("s3://site-bucket-1/")),
            "{call:?}"
        );
    }
    assert_eq!(
        flag(&uploads[0], "--content-type"),
        Some("application/wasm")
    );
    assert_eq!(flag(&uploads[2], "--cache-control"), Some("no-cache"));
    assert!(uploads[2][3].ends_with("site/config.json"));
    assert_eq!(flag(&uploads[3], "--cache-control"), Some("no-cache"));
    assert!(uploads[3][3].ends_with("site/index.html"));
    assert!(uploads[4].contains(&"--delete".to_string()));
    assert!(!uploads[..4]
        .iter()
        .any(|c| c.contains(&"--delete".to_string())));
    assert_eq!(flag(&calls[11], "--distribution-id"), Some("E2DIST"));
    assert_eq!(flag(&calls[11], "--paths"), Some("/*"));

    assert!(stdout.contains(SITE_URL), "{stdout}");
    assert!(stdout.contains(WSS_URL), "{stdout}");
    assert!(stdout.contains("[12/12] invalidate CloudFront"), "{stdout}");
}

/// The sign-in outputs of a root stack deployed with Auth=cognito, as describe-stacks
/// gives them.
const COGNITO_OUTPUTS: &str = r#"
  {"OutputKey":"AuthIssuer","OutputValue":"https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_AbC123"},
  {"OutputKey":"AuthClientId","OutputValue":"4example0client0id"},
  {"OutputKey":"AuthAuthorizeUrl","OutputValue":"https://webchat-1.auth.eu-central-1.amazoncognito.com/oauth2/authorize"},
  {"OutputKey":"AuthTokenUrl","OutputValue":"https://webchat-1.auth.eu-central-1.amazoncognito.com/oauth2/token"},
  {"OutputKey":"AuthLogoutUrl","OutputValue":"https://webchat-1.auth.eu-central-1.amazoncognito.com/logout"}"#;

#[test]
fn deploy_with_cognito_sign_in_deploys_the_authorizer_and_gives_the_ui_the_sign_in_settings() {
    let bench = Bench::new("deploy-cognito");
    let mut args = bench.deploy_args("xtask-test-cognito");
    let authorizer_zip = bench.dir.join("authorizer.zip");
    args.extend([
        "--auth".into(),
        "cognito".into(),
        "--authorizer-zip".into(),
        authorizer_zip.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bench.xtask(&args, &[("FAKE_AUTH", COGNITO_OUTPUTS)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));

    let calls = bench.calls();
    let sam_deploy = calls.iter().find(|c| verb(c) == "sam deploy").unwrap();
    let overrides: Vec<&String> = sam_deploy
        .iter()
        .skip_while(|a| *a != "--parameter-overrides")
        .skip(1)
        .take_while(|a| !a.starts_with("--"))
        .collect();
    assert_eq!(overrides, ["Auth=cognito"]);

    // The authorizer function runs the authorizer's zip, every route the chat's.
    let template = workspace().join(flag(sam_deploy, "--template-file").unwrap());
    let websocket = std::fs::read_to_string(template.with_file_name("websocket.yml")).unwrap();
    let code = |zip: &Path| {
        format!(
            "CodeUri: {}",
            json!(zip.canonicalize().unwrap().display().to_string())
        )
    };
    assert_eq!(
        websocket
            .matches(&code(&bench.dir.join("bootstrap.zip")))
            .count(),
        1
    );
    assert_eq!(websocket.matches(&code(&authorizer_zip)).count(), 1);

    let site = workspace().join("target/deploy/xtask-test-cognito/site");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(site.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config,
        json!({
            "websocketUrl": WSS_URL,
            "auth": {
                "issuer": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_AbC123",
                "clientId": "4example0client0id",
                "authorizeUrl": "https://webchat-1.auth.eu-central-1.amazoncognito.com/oauth2/authorize",
                "tokenUrl": "https://webchat-1.auth.eu-central-1.amazoncognito.com/oauth2/token",
                "logoutUrl": "https://webchat-1.auth.eu-central-1.amazoncognito.com/logout",
            }
        })
    );
}

#[test]
fn deploy_with_another_issuer_passes_its_settings_and_the_ui_gets_its_endpoints() {
    let bench = Bench::new("deploy-oidc");
    let mut args = bench.deploy_args("xtask-test-oidc");
    args.extend(
        [
            "--auth",
            "oidc",
            "--issuer",
            "https://id.example.org",
            "--audience",
            "webchat-ui",
            "--authorize-url",
            "https://id.example.org/authorize",
            "--token-url",
            "https://id.example.org/token",
            "--authorizer-zip",
        ]
        .map(String::from),
    );
    args.push(bench.dir.join("authorizer.zip").display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outputs = r#"
      {"OutputKey":"AuthIssuer","OutputValue":"https://id.example.org"},
      {"OutputKey":"AuthClientId","OutputValue":"webchat-ui"},
      {"OutputKey":"AuthAuthorizeUrl","OutputValue":"https://id.example.org/authorize"},
      {"OutputKey":"AuthTokenUrl","OutputValue":"https://id.example.org/token"}"#;
    let out = bench.xtask(&args, &[("FAKE_AUTH", outputs)]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let calls = bench.calls();
    let sam_deploy = calls.iter().find(|c| verb(c) == "sam deploy").unwrap();
    for parameter in [
        "Auth=oidc",
        "Issuer=https://id.example.org",
        "Audience=webchat-ui",
        "OidcAuthorizeUrl=https://id.example.org/authorize",
        "OidcTokenUrl=https://id.example.org/token",
    ] {
        assert!(
            sam_deploy.contains(&parameter.to_string()),
            "{parameter}: {sam_deploy:?}"
        );
    }
    let site = workspace().join("target/deploy/xtask-test-oidc/site");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(site.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["auth"],
        json!({
            "issuer": "https://id.example.org",
            "clientId": "webchat-ui",
            "authorizeUrl": "https://id.example.org/authorize",
            "tokenUrl": "https://id.example.org/token",
        })
    );
}

#[test]
fn deploy_with_sign_in_stops_if_the_stack_has_no_sign_in_outputs() {
    let bench = Bench::new("deploy-auth-missing");
    let mut args = bench.deploy_args("xtask-test-auth-missing");
    args.extend(["--auth", "cognito", "--authorizer-zip"].map(String::from));
    args.push(bench.dir.join("authorizer.zip").display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bench.xtask(&args, &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("step 10/12 `write config.json"), "{stderr}");
    assert!(stderr.contains("no sign-in outputs"), "{stderr}");
}

#[test]
fn a_failing_step_stops_the_deploy_and_is_named_with_what_to_do() {
    let bench = Bench::new("deploy-fails");
    let args = bench.deploy_args("xtask-test-fail");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bench.xtask(&args, &[("FAKE_FAIL", "sam deploy")]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("step 8/12 `deploy the chat (stack xtask-test-fail"),
        "{stderr}"
    );
    assert!(
        stderr.contains("describe-stack-events --stack-name xtask-test-fail"),
        "{stderr}"
    );
    let calls = bench.calls();
    assert_eq!(
        verb(calls.last().unwrap()),
        "sam deploy",
        "nothing runs after the failure"
    );
}

#[test]
fn a_first_deploy_without_api_gateways_logging_role_stops_before_building() {
    let bench = Bench::new("deploy-no-role");
    let args = bench.deploy_args("xtask-test-no-role");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bench.xtask(&args, &[("FAKE_NO_LOGGING_ROLE", "1")]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("step 2/12 `check API Gateway's CloudWatch Logs role"),
        "{stderr}"
    );
    assert!(stderr.contains("One-time account setting"), "{stderr}");
    assert_eq!(bench.calls().len(), 2);
}

#[test]
fn a_dry_run_prints_the_whole_plan_and_calls_nothing() {
    let bench = Bench::new("deploy-dry-run");
    let out = bench.xtask(
        &["deploy", "--dry-run", "--stack-prefix", "xtask-test-dry"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(bench.calls(), Vec::<Vec<String>>::new());
    for expected in [
        "[1/12] check the AWS credentials",
        "[3/12] build the Lambda for arm64",
        "[4/12] build the UI",
        "$ sam deploy --template-file target/deploy/xtask-test-dry/templates/root.yml",
        "--s3-bucket {ArtifactsBucket}",
        "config.json {\"websocketUrl\": \"{WebSocketURL}\"}",
        "--bin webchat-lambda --bin webchat-authorizer",
        "$ aws s3 sync target/deploy/xtask-test-dry/site/ s3://{SiteBucket}/ --delete --region REGION",
        "[12/12] invalidate CloudFront",
        "pass --region",
    ] {
        assert!(stdout.contains(expected), "{expected}:\n{stdout}");
    }
}

#[test]
fn destroy_empties_the_buckets_and_deletes_the_stacks_root_first_in_the_environments_region() {
    let bench = Bench::new("destroy");
    let prefix = "xtask-test-destroy";
    let refused = bench.xtask(
        &["destroy", "--stack-prefix", prefix],
        &[("AWS_REGION", "eu-north-1")],
    );
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--yes"));
    assert_eq!(
        bench.calls(),
        Vec::<Vec<String>>::new(),
        "without --yes nothing runs"
    );

    let out = bench.xtask(
        &["destroy", "--stack-prefix", prefix, "--yes"],
        &[("AWS_REGION", "eu-north-1")],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let calls = bench.calls();
    let shown: Vec<String> = calls
        .iter()
        .map(|c| {
            let target = flag(c, "--stack-name")
                .or(flag(c, "--bucket"))
                .unwrap_or("");
            format!("{} {target}", verb(c))
        })
        .collect();
    assert_eq!(
        shown,
        [
            "aws sts get-caller-identity ",
            "aws cloudformation describe-stacks xtask-test-destroy",
            "aws s3api list-object-versions site-bucket-1",
            "aws s3api delete-objects site-bucket-1",
            "aws s3api list-object-versions site-bucket-1",
            "sam delete xtask-test-destroy",
            "aws cloudformation describe-stacks xtask-test-destroy-artifacts",
            "aws s3api list-object-versions artifacts-bucket-1",
            "aws s3api delete-objects artifacts-bucket-1",
            "aws s3api list-object-versions artifacts-bucket-1",
            "sam delete xtask-test-destroy-artifacts",
        ]
    );
    for call in &calls {
        assert_eq!(flag(call, "--region"), Some("eu-north-1"), "{call:?}");
        assert_eq!(flag(call, "--profile"), None, "{call:?}");
    }
    assert!(calls[5].contains(&"--no-prompts".to_string()));
    // Every version and delete marker listed is deleted.
    let deleted: Value = serde_json::from_str(
        &std::fs::read_to_string(bench.dir.join("calls.log.deleted-artifacts-bucket-1.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        deleted["Objects"],
        json!([
            {"Key": "index.html", "VersionId": "v1"},
            {"Key": "old.js", "VersionId": "v2"},
        ])
    );
}

#[test]
fn destroy_skips_a_stack_that_is_not_there() {
    let bench = Bench::new("destroy-missing");
    let prefix = "xtask-test-gone";
    let out = bench.xtask(
        &[
            "destroy",
            "--stack-prefix",
            prefix,
            "--region",
            REGION,
            "--yes",
        ],
        &[("FAKE_MISSING", prefix)],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let verbs: Vec<String> = bench.calls().iter().map(|c| verb(c)).collect();
    assert_eq!(
        verbs,
        [
            "aws sts get-caller-identity",
            "aws cloudformation describe-stacks",
            "aws cloudformation describe-stacks",
            "aws s3api list-object-versions",
            "aws s3api delete-objects",
            "aws s3api list-object-versions",
            "sam delete",
        ]
    );
    assert!(text(&out.stdout).contains("stack xtask-test-gone does not exist"));
}
