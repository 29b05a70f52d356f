//! Project tasks, run as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! - `test`: installs what the checks need, then format, lints, the wasm build of the
//!   protocol crate, cfn-lint, every test, a minute of fuzzing, the full-size load tests,
//!   and the real-browser test. CI runs this.
//! - `dev`: installs the UI tools, builds the UI, and serves the whole chat with
//!   `webchat-local` at <http://127.0.0.1:8080/>; `dev --auth` with sign-in at its
//!   development issuer (`webchat-local --auth dev`); `dev --template` runs the routes as
//!   `templates/root.yml` wires them, each function's real binary as its own process, on
//!   dynalite.
//! - `ui`: installs the UI tools and builds the release UI into `dist/`, checking its
//!   download against the size budget.
//! - `bench`: the speed and size figures, written to `target/bench/results.json`.
//! - `lambdas`: the arm64 Lambda builds (the chat and the sign-in authorizer) with
//!   cargo-lambda; `lambdas --host` the same binaries for this machine, for
//!   `webchat-local --template`.
//! - `deploy`, `destroy`: the whole chat onto AWS, or off it (docs/deploy.md).
//! - `fuzz`: the cargo-fuzz target on frame decoding, for a minute (`--seconds N`).

mod bench;
mod deploy;
mod fuzz;
mod lambdas;
mod test_build;
mod tools;
mod ui;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use test_build::TestBuild;
use tools::{cargo, step};

fn usage() -> String {
    format!(
        "usage: cargo xtask <task>

tasks:
  test      install what is missing, then fmt, clippy, wasm build, cfn-lint and sam validate,
            all tests, 60 s of fuzzing, the full-size load tests, browser test
  dev       build the UI and serve the chat at http://127.0.0.1:8080/ (extra args go to webchat-local;
            --auth: sign in first, at webchat-local's development issuer; --template [FILE]: the
            functions' real binaries, built for this machine, wired by templates/root.yml, on dynalite)
  ui        build the release UI into dist/ (with .br and .gz copies to serve) and check its size
            against the budget
  bench     measure speed and size figures into target/bench/results.json and the README
            (arguments after it go to webchat-bench, e.g. --paired-dist OLD_DIST)
  lambdas   build the Lambda binaries (webchat-lambda, webchat-authorizer) for arm64 with
            cargo-lambda (zips in target/lambda/<binary>/); --host: for this machine, for
            webchat-local --template (target/lambda-host/<binary>/bootstrap; --debug: unoptimised)
{}
{}",
        fuzz::USAGE,
        deploy::USAGE
    )
}

/// The local test suites that run in template mode too: the protocol, rooms and rejoin,
/// rate limits, sign-in and the management API, and big rooms (through the template's
/// SQS queue and fan-out function).
const TEMPLATE_MODE_SUITES: &[&str] = &[
    "gateway::",
    "rejoin::",
    "rate_limit::",
    "auth::",
    "fanout::",
];

/// dynalite, the DynamoDB implementation the tests run against.
const DYNALITE: &str = "dynalite@3.2.2";

fn main() -> Result<()> {
    let root = workspace_root();
    let mut args = std::env::args().skip(1);
    let task = args.next();
    // `cargo xtask dev -- --addr …` passes the `--` through; it is not for the task.
    let rest: Vec<String> = args.skip_while(|arg| arg == "--").collect();
    match task.as_deref() {
        Some("test") => test(&root),
        Some("dev") => dev(&root, &rest),
        Some("ui") => {
            ui::ensure_ui_tools(&root)?;
            ui::build_ui(&root, true).map(drop)
        }
        Some("bench") => bench::run(&root, &rest),
        Some("lambdas") if rest.iter().any(|arg| arg == "--host") => {
            let release = !rest.iter().any(|arg| arg == "--debug");
            lambdas::build_host_lambdas(&root, release).map(drop)
        }
        Some("lambdas") => lambdas::build_lambdas(&root).map(|_| ()),
        Some("deploy") => deploy::run(&root, deploy::Task::Deploy, &rest),
        Some("destroy") => deploy::run(&root, deploy::Task::Destroy, &rest),
        Some("fuzz") => fuzz::run_task(&root, &rest),
        Some("-h" | "--help" | "help") => {
            println!("{}", usage());
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{}", usage()),
        None => bail!("no task given\n\n{}", usage()),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Installs dynalite into `.tools/dynalite` (project-local, git-ignored) when missing.
fn ensure_dynalite(root: &Path) -> Result<()> {
    let prefix = ".tools/dynalite";
    if root
        .join(prefix)
        .join("node_modules/dynalite/package.json")
        .is_file()
    {
        return Ok(());
    }
    tools::npm_install(root, prefix, DYNALITE, "the DynamoDB the tests run against")
}

fn test(root: &Path) -> Result<()> {
    let started = Instant::now();
    ensure_dynalite(root)?;
    ui::ensure_ui_tools(root)?;
    ui::ensure_browser(root)?;

    let mut fmt = cargo(root);
    fmt.args(["fmt", "--all", "--check"]);
    step("cargo fmt --check", fmt)?;

    let mut clippy = cargo(root);
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    step("cargo clippy -D warnings", clippy)?;

    // The protocol crate is shared with the browser: it must build for wasm.
    let mut wasm = cargo(root);
    wasm.args([
        "build",
        "-p",
        "webchat-shared-types",
        "--target",
        "wasm32-unknown-unknown",
    ]);
    step("shared-types for wasm32", wasm)?;

    lambdas::cfn_lint(root)?;
    lambdas::sam_validate(root)?;

    // The frame decoder under libFuzzer from the committed seeds; a crash fails the run.
    fuzz::fuzz(root, fuzz::DEFAULT_SECONDS)?;

    let built = TestBuild::build(root)?;
    // The Lambda binaries that template mode runs (its suites below, and the breakage
    // tests among the others), from the target directory.
    let functions = built
        .bin("webchat-lambda")?
        .parent()
        .context("the Lambda binary has no directory")?
        .to_path_buf();
    // Template mode starts the authorizer from the same directory: it must be there too.
    built.bin("webchat-authorizer")?;
    let mut tests = cargo(root);
    tests
        .args(["test", "--workspace", "--exclude", "webchat-e2e"])
        .env("WEBCHAT_FUNCTIONS_DIR", &functions);
    step("cargo test", tests)?;

    // The suites that matter once more, with the template's functions behind the routes
    // (`webchat-local --template`): the same test bodies, another launcher.
    let mut template_mode = built.test_command("webchat-local", "it", TEMPLATE_MODE_SUITES)?;
    template_mode
        .env("WEBCHAT_LOCAL_MODE", "template")
        .env("WEBCHAT_FUNCTIONS_DIR", &functions);
    step(
        "the suites in template mode (webchat-local --template)",
        template_mode,
    )?;

    // A million pushes through the SDK and back: minutes unoptimised, about two in
    // the `load-test` profile (Cargo.toml says why it exists).
    let mut load = cargo(root);
    load.args([
        "test",
        "--profile",
        "load-test",
        "-p",
        "webchat-local",
        "--test",
        "it",
        "--",
        "load::",
        "--ignored",
        "--nocapture",
    ]);
    step("full-size load tests (load-test profile)", load)?;

    ui::browser_test(root, &built)?;
    println!(
        "xtask: test: every check passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask dev` arguments as webchat-local's: `--auth` alone is `--auth dev`.
fn dev_args(extra: &[String]) -> Vec<String> {
    let mut args = Vec::with_capacity(extra.len() + 1);
    let mut iter = extra.iter().peekable();
    while let Some(arg) = iter.next() {
        args.push(arg.clone());
        if arg == "--auth" && iter.peek().is_none_or(|next| next.starts_with("--")) {
            args.push("dev".to_string());
        }
    }
    args
}

/// `--template [FILE]` taken out of `dev`'s arguments: the template to run, if asked.
fn take_template(args: &mut Vec<String>) -> Option<PathBuf> {
    let at = args.iter().position(|arg| arg == "--template")?;
    args.remove(at);
    if at < args.len() && !args[at].starts_with("--") {
        Some(PathBuf::from(args.remove(at)))
    } else {
        Some(PathBuf::from("templates/root.yml"))
    }
}

fn dev(root: &Path, extra: &[String]) -> Result<()> {
    let mut extra = dev_args(extra);
    let template = take_template(&mut extra);
    ui::ensure_ui_tools(root)?;
    let dist = ui::build_ui(root, true)?;
    // Kept until webchat-local ends: its tables, and what the functions store.
    let mut _dynalite = None;
    if let Some(template) = template {
        let functions = lambdas::build_host_lambdas(root, true)?;
        ensure_dynalite(root)?;
        let dynalite = webchat_testkit::Dynalite::start();
        println!(
            "xtask: template mode: {} wired by {} on dynalite at {}",
            functions.display(),
            template.display(),
            dynalite.endpoint()
        );
        extra.extend([
            "--template".to_string(),
            template.display().to_string(),
            "--functions-dir".to_string(),
            functions.display().to_string(),
            "--dynamodb-endpoint".to_string(),
            dynalite.endpoint(),
        ]);
        _dynalite = Some(dynalite);
    }
    println!("xtask: starting webchat-local; open http://127.0.0.1:8080/ (Ctrl-C stops it)");
    println!("xtask: its metrics (Prometheus text): http://127.0.0.1:8080/metrics");
    let mut serve = cargo(root);
    serve
        .args([
            "run",
            "--release",
            "--bin",
            "webchat-local",
            "--",
            "--static-dir",
        ])
        .arg(&dist)
        .args(&extra);
    step("webchat-local", serve)
}

#[cfg(test)]
mod tests {
    use super::{dev_args, take_template};
    use std::path::PathBuf;

    #[test]
    fn dev_template_alone_means_the_root_template() {
        let mut given = args(&["--template", "--auth", "dev"]);
        assert_eq!(
            take_template(&mut given),
            Some(PathBuf::from("templates/root.yml"))
        );
        assert_eq!(given, args(&["--auth", "dev"]));
        let mut given = args(&["--template", "templates/websocket.yml"]);
        assert_eq!(
            take_template(&mut given),
            Some(PathBuf::from("templates/websocket.yml"))
        );
        assert!(given.is_empty());
        assert_eq!(take_template(&mut args(&["--auth", "dev"])), None);
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn dev_auth_alone_means_the_development_issuer() {
        assert_eq!(dev_args(&args(&["--auth"])), args(&["--auth", "dev"]));
        assert_eq!(
            dev_args(&args(&["--auth", "--addr", "127.0.0.1:9000"])),
            args(&["--auth", "dev", "--addr", "127.0.0.1:9000"])
        );
        assert_eq!(
            dev_args(&args(&["--auth", "dev"])),
            args(&["--auth", "dev"])
        );
        assert_eq!(dev_args(&args(&["--auth=dev"])), args(&["--auth=dev"]));
        assert!(dev_args(&[]).is_empty());
    }
}
