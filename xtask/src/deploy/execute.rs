//! Runs a plan's steps in order, carrying the values they read (stack outputs, the zips,
//! the UI directory) into later calls.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::plan::{Action, Call, Program, Step};
use super::stage::{stage_site, stage_templates, ui_config};
use crate::{lambdas, ui};

/// Runs the steps in order, printing progress; a failing step stops the run, named with
/// what to do. Returns the values read (stack outputs, `LambdaZip`, `UiDir`).
pub(super) fn execute(root: &Path, plan: &[Step]) -> Result<BTreeMap<String, String>> {
    let mut run = Run {
        root: root.to_path_buf(),
        vars: BTreeMap::new(),
        missing: BTreeSet::new(),
    };
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
    Ok(run.vars)
}

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
        let status = command.status().map_err(|e| not_started(call, &e))?;
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
        let out = command.output().map_err(|e| not_started(call, &e))?;
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

fn not_started(call: &Call, error: &std::io::Error) -> anyhow::Error {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
