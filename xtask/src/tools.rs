//! Running commands and installing Rust targets: what every task shares.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// `cargo` as the one running xtask, so the pinned toolchain is used throughout.
pub(crate) fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

/// Runs a named step with its output shown, printing how long it took; fails with its
/// name.
pub(crate) fn step(name: &str, mut command: Command) -> Result<()> {
    timed(name, || run(&mut command))
}

/// [`step`] for a command whose standard output is read, not shown: it is returned.
pub(crate) fn step_output(name: &str, mut command: Command) -> Result<String> {
    timed(name, || output(&mut command))
}

fn timed<T>(name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("xtask: {name}");
    let started = Instant::now();
    let done = work().with_context(|| format!("`{name}` failed; see its output above"))?;
    println!(
        "xtask: {name}: ok in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(done)
}

/// Runs a command with its output shown; fails on a non-zero exit.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// A command's standard output; its errors are shown as they come.
pub(crate) fn output(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The build directory, honouring `CARGO_TARGET_DIR`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Adds a Rust target's standard library through rustup when the toolchain in use (the
/// one rust-toolchain.toml pins) lacks it.
pub(crate) fn ensure_rust_target(root: &Path, target: &str) -> Result<()> {
    // Run at the root so rustup answers for the pinned toolchain.
    let Ok(installed) = output(
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(root),
    ) else {
        println!("xtask: rustup not found; assuming the {target} standard library is installed");
        return Ok(());
    };
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    println!("xtask: adding the Rust target {target} (rustup target add)");
    run(Command::new("rustup")
        .args(["target", "add", target])
        .current_dir(root))
    .with_context(|| format!("`rustup target add {target}` failed"))
}

/// PATH with `dirs` first, then the PATH xtask was given: how xtask's commands find the
/// tools it installed under `.tools/`.
pub(crate) fn path_with(dirs: impl IntoIterator<Item = PathBuf>) -> Result<OsString> {
    let mut paths: Vec<PathBuf> = dirs.into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).context("building PATH (a directory name holds a `:`?)")
}

/// Installs an npm `package` (`name@version`) into `prefix` under the workspace root,
/// e.g. `.tools/dynalite`: project-local, git-ignored, nothing global. `purpose` says in
/// the progress line what it is for.
pub(crate) fn npm_install(root: &Path, prefix: &str, package: &str, purpose: &str) -> Result<()> {
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(root.join(prefix))
        .arg(package)
        .current_dir(root);
    step(
        &format!("npm install {package} into {prefix} ({purpose})"),
        npm,
    )
    .with_context(|| {
        format!(
            "{package} could not be installed from npm; install Node.js and npm (Debian: \
             `apt-get install nodejs npm`), check that registry.npmjs.org is reachable, and retry"
        )
    })
}
