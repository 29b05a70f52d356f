//! The AWS tooling tasks: `cfn-lint` and `sam validate --lint` on the templates, and the
//! arm64 Lambda build.
//!
//! They use Python tools from PyPI, installed on first use into a project-local venv at
//! `.tools/venv` (git-ignored), at the versions pinned below: `cfn-lint`, `aws-sam-cli`,
//! `cargo-lambda` and `ziglang` (the Zig toolchain cargo-lambda links with when
//! cross-compiling). Nothing is installed globally except, through rustup, the
//! `aarch64-unknown-linux-gnu` standard library.

use std::ffi::OsString;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::tools::{ensure_rust_target, path_with, run};

/// The venv, relative to the workspace root.
const VENV: &str = ".tools/venv";
/// The one Lambda binary every route's function of templates/websocket.yml runs.
const LAMBDA_BINARY: &str = "webchat-lambda";
/// The `$connect` authorizer's binary (templates/websocket.yml, with sign-in on).
const AUTHORIZER_BINARY: &str = "webchat-authorizer";
/// Lambda's arm64 (Graviton) target.
const ARM64_TARGET: &str = "aarch64-unknown-linux-gnu";

// The tools' versions, pinned so that every machine lints and builds alike; a newer
// cfn-lint brings new rules, a newer Zig may not link what the older one did. Together
// they build webchat-lambda, aws-lc-sys included. aws-sam-cli 1.170 accepts this cfn-lint.
const CFN_LINT: Pin = Pin("cfn-lint", "1.58.0");
const AWS_SAM_CLI: Pin = Pin("aws-sam-cli", "1.170.0");
const CARGO_LAMBDA: Pin = Pin("cargo-lambda", "1.9.2");
const ZIGLANG: Pin = Pin("ziglang", "0.17.1");

/// A PyPI package at one version.
#[derive(Clone, Copy)]
struct Pin(&'static str, &'static str);

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=={}", self.0, self.1)
    }
}

/// Runs cfn-lint on every `templates/*.yml`; fails if it reports anything.
pub(crate) fn cfn_lint(root: &Path) -> Result<()> {
    let venv = Venv::ensure(root)?;
    venv.ensure_packages(&[CFN_LINT])?;

    let templates = templates(root)?;
    let names: Vec<String> = templates
        .iter()
        .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
        .collect();
    println!("xtask: cfn-lint {}", names.join(" "));
    let status = Command::new(venv.bin("cfn-lint"))
        .args(&names)
        .current_dir(root)
        .stdin(Stdio::null())
        .status()
        .context("running cfn-lint from .tools/venv")?;
    if !status.success() {
        bail!(
            "cfn-lint reported problems in templates/*.yml (exit status {}); see its output above",
            status.code().map_or("signal".into(), |c| c.to_string())
        );
    }
    println!("xtask: cfn-lint: {} templates clean", templates.len());
    Ok(())
}

/// Runs `sam validate --lint` (SAM's own template checks, through cfn-lint) on every
/// `templates/*.yml`, root stack included; fails if any is reported.
pub(crate) fn sam_validate(root: &Path) -> Result<()> {
    let sam = sam_cli(root)?;
    let templates = templates(root)?;
    for template in &templates {
        let name = template.strip_prefix(root).unwrap_or(template);
        println!("xtask: sam validate --lint {}", name.display());
        let status = Command::new(&sam)
            .args(["validate", "--lint", "--template-file"])
            .arg(name)
            // Lint rules check resource availability in a region; any region where every
            // service here exists will do, and naming one keeps SAM from asking AWS config.
            .args(["--region", "us-east-1"])
            .current_dir(root)
            .env("SAM_CLI_TELEMETRY", "0")
            .stdin(Stdio::null())
            .status()
            .context("running sam from .tools/venv")?;
        if !status.success() {
            bail!(
                "sam validate --lint reported problems in {} ({status}); see its output above",
                name.display()
            );
        }
    }
    println!(
        "xtask: sam validate --lint: {} templates valid",
        templates.len()
    );
    Ok(())
}

/// The SAM CLI of `.tools/venv`, installed at its pinned version when missing.
pub(crate) fn sam_cli(root: &Path) -> Result<PathBuf> {
    let venv = Venv::ensure(root)?;
    // Together, so pip keeps the pinned cfn-lint that aws-sam-cli also uses.
    venv.ensure_packages(&[CFN_LINT, AWS_SAM_CLI])?;
    Ok(venv.bin("sam"))
}

/// `aws-sam-cli==…`, for messages.
pub(crate) fn sam_cli_pin() -> String {
    AWS_SAM_CLI.to_string()
}

/// The zips `cargo xtask lambdas` builds.
pub(crate) struct LambdaZips {
    /// `webchat-lambda`: every route's function.
    pub chat: PathBuf,
    /// `webchat-authorizer`: the `$connect` authorizer, deployed with sign-in on.
    pub authorizer: PathBuf,
}

/// Builds `webchat-lambda` and `webchat-authorizer` for arm64 Lambda (provided.al2023)
/// with cargo-lambda, in one cargo build, and prints the zips' paths and sizes. Every
/// route's function in templates/websocket.yml runs the first; the authorizer the second.
pub(crate) fn build_lambdas(root: &Path) -> Result<LambdaZips> {
    let started = Instant::now();
    let venv = Venv::ensure(root)?;
    venv.ensure_packages(&[CARGO_LAMBDA, ZIGLANG])?;
    ensure_rust_target(root, ARM64_TARGET)?;

    let lambda_dir = root.join("target").join("lambda");
    println!(
        "xtask: building {LAMBDA_BINARY} and {AUTHORIZER_BINARY} for arm64 ({ARM64_TARGET}, \
         release) with cargo-lambda and zig"
    );
    let status = Command::new(venv.bin("cargo-lambda"))
        .args(["lambda", "build", "--release", "--arm64"])
        .args(["--bin", LAMBDA_BINARY, "--bin", AUTHORIZER_BINARY])
        .args(["--output-format", "zip"])
        .arg("--lambda-dir")
        .arg(&lambda_dir)
        .current_dir(root)
        // cargo-lambda finds zig through `python3 -m ziglang` in the venv.
        .env("PATH", venv.path_with_bin()?)
        .env("VIRTUAL_ENV", &venv.dir)
        .stdin(Stdio::null())
        .status()
        .context("running cargo-lambda from .tools/venv")?;
    if !status.success() {
        bail!("cargo lambda build failed ({status}); see its output above");
    }
    let zips = LambdaZips {
        chat: checked_zip(root, &lambda_dir, LAMBDA_BINARY, "serves every route")?,
        authorizer: checked_zip(
            root,
            &lambda_dir,
            AUTHORIZER_BINARY,
            "is the $connect authorizer (deployed with sign-in on)",
        )?,
    };
    println!(
        "xtask: lambdas built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(zips)
}

/// `target/lambda/<binary>/bootstrap.zip`, checked to hold an arm64 `bootstrap`.
fn checked_zip(root: &Path, lambda_dir: &Path, binary: &str, role: &str) -> Result<PathBuf> {
    let zip = lambda_dir.join(binary).join("bootstrap.zip");
    let zip_size = std::fs::metadata(&zip)
        .with_context(|| {
            format!(
                "cargo-lambda reported success but {} is missing",
                zip.display()
            )
        })?
        .len();
    println!(
        "xtask: {} ({}) {role}",
        zip.strip_prefix(root).unwrap_or(&zip).display(),
        human_size(zip_size)
    );
    // Check what Lambda will run: the zip's `bootstrap`.
    let file = std::fs::File::open(&zip).with_context(|| format!("opening {}", zip.display()))?;
    let bootstrap = bootstrap_of(file).with_context(|| {
        format!(
            "reading bootstrap from {}; delete it and run `cargo xtask lambdas` again",
            zip.display()
        )
    })?;
    if !is_aarch64_elf(&bootstrap) {
        bail!(
            "the bootstrap in {} is not an arm64 (aarch64) ELF executable",
            zip.display()
        );
    }
    println!(
        "xtask:   its bootstrap is an aarch64 ELF executable of {}",
        human_size(bootstrap.len() as u64)
    );
    Ok(zip)
}

/// `templates/*.yml`, sorted.
fn templates(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join("templates");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml"))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("no templates/*.yml to lint");
    }
    Ok(found)
}

/// The project-local Python venv.
struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// Creates `.tools/venv` unless it is there already.
    fn ensure(root: &Path) -> Result<Self> {
        let venv = Self {
            dir: root.join(VENV),
        };
        if !venv.python().exists() {
            println!("xtask: creating a Python venv in {VENV}");
            let python = std::env::var_os("XTASK_PYTHON").unwrap_or_else(|| "python3".into());
            run(Command::new(&python).args(["-m", "venv"]).arg(&venv.dir)).with_context(|| {
                format!(
                    "creating {VENV} with {} -m venv (is python3 with venv installed?)",
                    python.to_string_lossy()
                )
            })?;
        }
        Ok(venv)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    fn python(&self) -> PathBuf {
        self.bin("python3")
    }

    /// Installs the pinned packages that are missing from the venv or at another version,
    /// with one `pip install` so that their requirements are resolved together.
    fn ensure_packages(&self, pins: &[Pin]) -> Result<()> {
        let wanted: Vec<String> = pins
            .iter()
            .filter(|pin| self.installed_version(pin.0).as_deref() != Some(pin.1))
            .map(Pin::to_string)
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        println!("xtask: installing {} into {VENV}", wanted.join(" "));
        run(Command::new(self.python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&wanted))
        .with_context(|| format!("installing {} from PyPI into {VENV}", wanted.join(" ")))
    }

    /// The installed version of a package, from `pip show`.
    fn installed_version(&self, package: &str) -> Option<String> {
        let out = Command::new(self.python())
            .args(["-m", "pip", "show", package])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("Version:"))
            .map(|version| version.trim().to_string())
    }

    /// `PATH` with the venv's bin directory first.
    fn path_with_bin(&self) -> Result<OsString> {
        path_with([self.dir.join("bin")])
    }
}

/// The `bootstrap` entry of a Lambda zip: the executable Lambda runs.
fn bootstrap_of(zip: impl Read + Seek) -> zip::result::ZipResult<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(zip)?;
    let mut entry = archive.by_name("bootstrap")?;
    let mut bytes = Vec::with_capacity(entry.size().try_into().unwrap_or(0));
    entry.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// An ELF executable for aarch64: magic, and `e_machine` (offset 18, little-endian) 183.
fn is_aarch64_elf(bytes: &[u8]) -> bool {
    bytes.len() > 20 && bytes.starts_with(b"\x7fELF") && bytes[18] == 183 && bytes[19] == 0
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB, {bytes} bytes", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB, {bytes} bytes", bytes as f64 / 1024.0)
    }
}

/// Where `cargo xtask lambdas --host` puts each binary (under the target directory), as
/// `<binary>/bootstrap` the way cargo-lambda lays out a build, for `webchat-local
/// --template --functions-dir`.
pub(crate) const HOST_LAMBDA_DIR: &str = "lambda-host";

/// The Lambda binaries for this machine, for `webchat-local --template`: built by Cargo
/// (cargo-lambda's host build is the same `cargo build`, and cargo-lambda is not
/// installed unless a deploy asked for it) and copied to
/// `target/lambda-host/<binary>/bootstrap`. Returns that directory.
pub(crate) fn build_host_lambdas(root: &Path, release: bool) -> Result<PathBuf> {
    let started = Instant::now();
    let mut build = crate::tools::cargo(root);
    build.args(["build", "-p", "webchat-backend", "--bin", LAMBDA_BINARY]);
    build.args(["-p", "webchat-authorizer", "--bin", AUTHORIZER_BINARY]);
    if release {
        build.arg("--release");
    }
    println!(
        "xtask: building {LAMBDA_BINARY} and {AUTHORIZER_BINARY} for this machine ({})",
        if release { "release" } else { "debug" }
    );
    run(&mut build)?;
    let build_dir = crate::tools::target_dir(root).join(if release { "release" } else { "debug" });
    let dir = crate::tools::target_dir(root).join(HOST_LAMBDA_DIR);
    for binary in [LAMBDA_BINARY, AUTHORIZER_BINARY] {
        let target = dir.join(binary);
        std::fs::create_dir_all(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let bootstrap = target.join("bootstrap");
        // Replaced, not overwritten: an instance of the old one may still be running.
        let _ = std::fs::remove_file(&bootstrap);
        std::fs::copy(build_dir.join(binary), &bootstrap).with_context(|| {
            format!(
                "copying {} to {}",
                build_dir.join(binary).display(),
                bootstrap.display()
            )
        })?;
    }
    println!(
        "xtask: {} holds {LAMBDA_BINARY}/bootstrap and {AUTHORIZER_BINARY}/bootstrap ({:.0} s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch64_elf_headers_are_recognised() {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[18] = 183;
        assert!(is_aarch64_elf(&header));
        header[18] = 62; // x86-64
        assert!(!is_aarch64_elf(&header));
        assert!(!is_aarch64_elf(b"#!/bin/sh\n"));
    }

    fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .unix_permissions(0o755);
        for (name, contents) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(contents).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn the_bootstrap_is_read_stored_or_deflated_wherever_it_sits() {
        let binary = b"\x7fELF and the rest of a binary".repeat(100);
        for method in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
        ] {
            let zip = zip_of(
                &[("README", b"not this one"), ("bootstrap", &binary)],
                method,
            );
            assert_eq!(
                bootstrap_of(std::io::Cursor::new(zip)).unwrap(),
                binary,
                "{method:?}"
            );
        }
    }

    #[test]
    fn a_zip_without_bootstrap_or_no_zip_at_all_is_an_error() {
        let zip = zip_of(
            &[("bootstrap.sh", b"#!/bin/sh\n")],
            zip::CompressionMethod::Deflated,
        );
        assert!(bootstrap_of(std::io::Cursor::new(zip)).is_err());
        assert!(bootstrap_of(std::io::Cursor::new(b"not a zip".to_vec())).is_err());
    }

    #[test]
    fn sizes_read_as_kib_or_mib() {
        assert_eq!(human_size(2048), "2.0 KiB, 2048 bytes");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB, 3145728 bytes");
    }
}
