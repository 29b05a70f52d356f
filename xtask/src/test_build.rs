//! One debug build of the whole workspace's tests, which every step of `cargo xtask test`
//! runs from.
//!
//! Cargo picks dependency features from the packages a command names: `-p webchat-local`
//! builds another feature set than `--workspace` (the UI's macros turn on proc-macro2's
//! `span-locations`, and with it every derive is rebuilt). The steps that once named their
//! own packages (the Lambda binaries, the template-mode suites, the browser test) each
//! rebuilt much of the graph: on a fresh clone some 3.5 minutes and 4 GB of `target/` more.
//! So `cargo test --workspace --no-run` builds once, and the steps run its executables.

use crate::tools::{cargo, step_output};
use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The executables one `cargo test --workspace --no-run` built.
pub(crate) struct TestBuild {
    artifacts: Vec<Artifact>,
}

#[derive(Debug, PartialEq)]
struct Artifact {
    package: String,
    /// The package's directory: cargo runs its tests from there.
    package_dir: PathBuf,
    target: String,
    kind: String,
    executable: PathBuf,
}

impl TestBuild {
    /// Builds every test and binary of the workspace (no-op when up to date).
    pub(crate) fn build(root: &Path) -> Result<Self> {
        let mut build = cargo(root);
        build.args([
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ]);
        let json = step_output(
            "build the workspace's tests and binaries (cargo test --workspace --no-run)",
            build,
        )?;
        let artifacts = json.lines().filter_map(artifact).collect();
        Ok(Self { artifacts })
    }

    /// A binary target's executable, e.g. `webchat-lambda`.
    pub(crate) fn bin(&self, name: &str) -> Result<&Path> {
        self.find(|a| a.kind == "bin" && a.target == name)
            .map(|a| a.executable.as_path())
            .with_context(|| format!("the test build made no binary `{name}`"))
    }

    /// An integration test target of a package, as a command run as `cargo test` runs it
    /// (from the package's directory), with `filters` for the test harness.
    pub(crate) fn test_command(
        &self,
        package: &str,
        target: &str,
        filters: &[&str],
    ) -> Result<Command> {
        let artifact = self
            .find(|a| a.kind == "test" && a.package == package && a.target == target)
            .ok_or_else(|| anyhow!("the test build made no test `{target}` of {package}"))?;
        let mut command = Command::new(&artifact.executable);
        command.current_dir(&artifact.package_dir).args(filters);
        Ok(command)
    }

    fn find(&self, wanted: impl Fn(&Artifact) -> bool) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| wanted(a))
    }
}

/// One `compiler-artifact` line of cargo's JSON output that built an executable.
fn artifact(line: &str) -> Option<Artifact> {
    let message: Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let executable = PathBuf::from(message["executable"].as_str()?);
    let manifest = Path::new(message["manifest_path"].as_str()?);
    let target = &message["target"];
    // A unit-test harness of a bin has kind "bin" too; only the real binary is built
    // without `profile.test`.
    let kind = match target["kind"][0].as_str()? {
        "bin" if message["profile"]["test"] == true => "unit-test",
        kind => kind,
    };
    Some(Artifact {
        package: package_name(message["package_id"].as_str()?, manifest)?,
        package_dir: manifest.parent()?.to_path_buf(),
        target: target["name"].as_str()?.to_string(),
        kind: kind.to_string(),
        executable,
    })
}

/// A package id's name: `path+file:///w/local#webchat-local@0.1.0` names it, and
/// `path+file:///w/xtask#0.1.0` leaves it to the directory.
fn package_name(id: &str, manifest: &Path) -> Option<String> {
    let (_, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _)) => Some(name.to_string()),
        None => Some(manifest.parent()?.file_name()?.to_str()?.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::artifact;
    use std::path::Path;

    #[test]
    fn an_integration_test_is_found_by_package_and_target() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/local#webchat-local@0.1.0","manifest_path":"/w/local/Cargo.toml","target":{"kind":["test"],"name":"it"},"profile":{"test":true},"executable":"/w/target/debug/deps/it-1"}"#;
        let found = artifact(line).expect("an executable");
        assert_eq!(found.package, "webchat-local");
        assert_eq!(found.package_dir, Path::new("/w/local"));
        assert_eq!((found.target.as_str(), found.kind.as_str()), ("it", "test"));
        assert_eq!(found.executable, Path::new("/w/target/debug/deps/it-1"));
    }

    #[test]
    fn a_binary_is_told_from_its_unit_test_harness() {
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/xtask#0.1.0","manifest_path":"/w/xtask/Cargo.toml","target":{"kind":["bin"],"name":"xtask"},"profile":{"test":false},"executable":"/w/target/debug/xtask"}"#;
        let harness = bin
            .replace(r#""test":false"#, r#""test":true"#)
            .replace("debug/xtask", "debug/deps/xtask-1");
        let bin = artifact(bin).expect("the binary");
        assert_eq!((bin.package.as_str(), bin.kind.as_str()), ("xtask", "bin"));
        assert_eq!(artifact(&harness).expect("the harness").kind, "unit-test");
    }

    #[test]
    fn lines_that_built_no_executable_are_skipped() {
        let lib = r#"{"reason":"compiler-artifact","package_id":"registry+x#serde@1.0.0","manifest_path":"/r/serde/Cargo.toml","target":{"kind":["lib"],"name":"serde"},"profile":{"test":false},"executable":null}"#;
        assert_eq!(artifact(lib), None);
        assert_eq!(
            artifact(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(artifact("not json"), None);
    }
}
