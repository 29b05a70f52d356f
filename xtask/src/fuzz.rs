//! `cargo xtask fuzz [--seconds N]`: the cargo-fuzz target on frame decoding
//! (`fuzz/fuzz_targets/decode_frame.rs`) under libFuzzer for N seconds, from the committed
//! seeds. A crash fails it, naming the saved input and the command that replays it.
//!
//! cargo-fuzz builds with sanitizer flags that only a nightly toolchain takes, so this is
//! the one task that runs `cargo +nightly`; the fuzz crate is outside the workspace (its own
//! `[workspace]` and Cargo.lock) so that those flags never reach the other crates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::tools::{cargo, run};

pub(crate) const USAGE: &str =
    "  fuzz      run the cargo-fuzz target decode_frame from its seeds (installs cargo-fuzz;
            needs a nightly toolchain); a crash fails, naming the input and its replay
              --seconds N           how long to fuzz (default 60)";

/// How long `cargo xtask fuzz` and `cargo xtask test` fuzz by default.
pub(crate) const DEFAULT_SECONDS: u64 = 60;

const TARGET: &str = "decode_frame";
/// What libFuzzer learns goes here (git-ignored), so the committed seeds stay small.
const CORPUS: &str = "fuzz/corpus/decode_frame";
const SEEDS: &str = "fuzz/seeds/decode_frame";
/// Where cargo-fuzz saves an input that crashed, timed out or ran out of memory.
const ARTIFACTS: &str = "fuzz/artifacts/decode_frame";

/// Runs `cargo xtask fuzz ARGS`.
pub(crate) fn run_task(root: &Path, args: &[String]) -> Result<()> {
    fuzz(root, parse_seconds(args)?)
}

fn parse_seconds(args: &[String]) -> Result<u64> {
    use lexopt::prelude::*;
    let mut seconds = DEFAULT_SECONDS;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("seconds") => {
                let value = parser.value()?.string()?;
                seconds = match value.parse() {
                    Ok(n) if n > 0 => n,
                    _ => bail!("--seconds takes a whole number of seconds above 0, not `{value}`"),
                };
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(seconds)
}

/// Installs cargo-fuzz if missing, then fuzzes `decode_frame` for `seconds`.
pub(crate) fn fuzz(root: &Path, seconds: u64) -> Result<()> {
    ensure_nightly(root)?;
    ensure_cargo_fuzz(root)?;
    std::fs::create_dir_all(root.join(CORPUS)).with_context(|| format!("creating {CORPUS}"))?;
    let started = SystemTime::now();
    let timer = Instant::now();
    let max_time = format!("-max_total_time={seconds}");
    let args = ["fuzz", "run", TARGET, CORPUS, SEEDS, "--", &max_time];
    println!(
        "xtask: fuzzing {TARGET} for {seconds} s (the first run builds the target, a few minutes): \
         cargo +nightly {}",
        args.join(" ")
    );
    let status = nightly_cargo(root)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .context("starting `cargo +nightly fuzz run`")?;
    if status.success() {
        println!(
            "xtask: fuzz {TARGET}: no crash in {seconds} s of fuzzing ({:.0} s with the build)",
            timer.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let found = new_artifacts(&root.join(ARTIFACTS), started);
    if found.is_empty() {
        bail!(
            "`cargo +nightly fuzz run {TARGET}` failed ({status}) without saving an input: a \
             build error? See its output above"
        );
    }
    let replays: Vec<String> = found
        .iter()
        .map(|path| {
            let shown = path.strip_prefix(root).unwrap_or(path).display();
            format!("  {shown}\n  replay: cargo +nightly fuzz run {TARGET} {shown}")
        })
        .collect();
    bail!(
        "fuzzing {TARGET} found an input that breaks it ({status}); its output above says \
         which check failed. Saved:\n{}",
        replays.join("\n")
    )
}

/// `cargo +nightly` at the root, through rustup. The variables cargo sets for xtask name the
/// pinned toolchain's cargo and rustc; cargo-fuzz must get the nightly's.
fn nightly_cargo(root: &Path) -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("+nightly")
        .current_dir(root)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    command
}

fn ensure_nightly(root: &Path) -> Result<()> {
    let out = nightly_cargo(root)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "fuzzing needs a nightly Rust toolchain (cargo-fuzz builds with -Zsanitizer), and \
             `cargo +nightly` is not there: install one with `rustup toolchain install nightly`"
        ),
    }
}

/// Installs cargo-fuzz into ~/.cargo/bin when `cargo fuzz` is missing: `--locked` first
/// (the versions its release was tested with), then resolved afresh if that fails (a
/// crates.io index that lags behind its lockfile).
fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    let installed = nightly_cargo(root)
        .args(["fuzz", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    println!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked, about 2 min)");
    let locked = run(cargo(root).args(["install", "cargo-fuzz", "--locked"]));
    if let Err(error) = locked {
        println!("xtask: {error:#}; trying again without --locked");
        run(cargo(root).args(["install", "cargo-fuzz"])).context(
            "`cargo install cargo-fuzz` failed, with and without --locked; see its output above",
        )?;
    }
    Ok(())
}

/// Inputs saved under `dir` since `since`: what this run found.
fn new_artifacts(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= since)
        })
        .map(|entry| entry.path())
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn seconds_default_to_a_minute_and_must_be_positive() {
        assert_eq!(parse_seconds(&[]).unwrap(), DEFAULT_SECONDS);
        assert_eq!(parse_seconds(&args(&["--seconds", "30"])).unwrap(), 30);
        assert_eq!(parse_seconds(&args(&["--seconds=5"])).unwrap(), 5);
        for bad in [
            &["--seconds", "0"][..],
            &["--seconds", "ten"],
            &["--minutes", "1"],
        ] {
            assert!(parse_seconds(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_inputs_saved_during_the_run_are_reported() {
        let dir = crate::tools::target_dir(&crate::workspace_root()).join("tmp/fuzz-artifacts");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("crash-old"), b"x").unwrap();
        let since = SystemTime::now() + std::time::Duration::from_millis(10);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("crash-new"), b"y").unwrap();
        assert_eq!(new_artifacts(&dir, since), [dir.join("crash-new")]);
        assert!(new_artifacts(&dir.join("missing"), since).is_empty());
    }
}
