//! `cargo xtask deploy` and `cargo xtask destroy`: the whole chat onto AWS, or off it, in
//! one command.
//!
//! Deploy builds the arm64 Lambda zip and the release UI, deploys the artifacts bucket
//! (templates/s3.yml, stack `<prefix>-artifacts`) and the root stack (templates/root.yml,
//! stack `<prefix>`: tables, WebSocket API, hosting) with `sam deploy`, writes the UI's
//! `config.json` from the root stack's `WebSocketURL` (and, with sign-in on, its `Auth*`
//! outputs), uploads the UI and invalidates CloudFront. Destroy empties both buckets and
//! deletes the stacks, root first.
//!
//! Every `aws` and `sam` call gets `--region` (and `--profile` when one is given): the AWS
//! CLI and the SAM CLI look for the region in different places (SAM ignores `AWS_REGION`),
//! and a deploy split across two regions fails in confusing ways. `--dry-run` prints the
//! plan, every call included, and runs nothing.
//!
//! `options` reads the command line, `plan` turns it into steps (pure: nothing runs),
//! `execute` runs them, and `stage` writes the files a deploy uploads.

mod execute;
mod options;
mod plan;
mod stage;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::tools::target_dir;
use options::{parse_options, Options};
use plan::{deploy_plan, destroy_plan, print_plan, Call, Program};

pub(crate) const USAGE: &str =
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

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
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

/// Runs `cargo xtask deploy|destroy ARGS`.
pub(crate) fn run(root: &Path, task: Task, args: &[String]) -> Result<()> {
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
        options.artifacts_stack(),
        options.stack_prefix,
    );
    if options.dry_run || (task == Task::Destroy && !options.yes) {
        print_plan(root, &plan);
        if task == Task::Destroy && !options.yes && !options.dry_run {
            bail!("nothing was deleted: re-run with --yes to run the steps above");
        }
        return Ok(());
    }
    let started = Instant::now();
    let vars = execute::execute(root, &plan)?;
    let var = |name: &str| {
        vars.get(name)
            .with_context(|| format!("no {name}: the step that reads it did not run"))
    };
    match task {
        Task::Deploy => println!(
            "xtask: deployed in {:.0} s\n\
             xtask:   the chat:        {}\n\
             xtask:   WebSocket API:   {}\n\
             xtask: (CloudFront may take a few minutes to serve the new UI everywhere)",
            started.elapsed().as_secs_f64(),
            var("SiteURL")?,
            var("WebSocketURL")?,
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
        let mut args: Vec<String> = args.iter().map(ToString::to_string).collect();
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
