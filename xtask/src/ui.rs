//! The web UI tasks: installing its build tools, building it with trunk, and the
//! real-browser test.
//!
//! Tools are installed once per machine, only when missing or at the wrong version:
//! the `wasm32-unknown-unknown` target (rustup); `trunk` and `wasm-bindgen-cli` (cargo
//! install, into `$CARGO_HOME/bin`); `wasm-opt` from npm's `binaryen` 123 (Debian 12's
//! `binaryen` 108 writes broken output, see [`WASM_OPT_VERSION`]); and for the browser
//! test Debian's `chromium` and `chromium-driver`. trunk always runs offline, so it uses
//! these and never downloads anything itself.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::tools::{cargo, ensure_rust_target, output, run, step, target_dir};

/// trunk 0.22 needs a newer Rust than the workspace pins.
pub const TRUNK_VERSION: &str = "0.21.14";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Issue 4's budget for the UI download: wasm + js, gzip.
/// KB here are 1,000 bytes, as in `cargo xtask bench`, so both report the same figure.
pub const BUNDLE_BUDGET_GZIP: u64 = 150_000;

/// Installs whatever the UI build needs and is missing.
pub fn ensure_ui_tools(root: &Path) -> Result<()> {
    ensure_rust_target(root, WASM_TARGET)?;
    ensure_trunk(root)?;
    ensure_wasm_bindgen(root)?;
    ensure_wasm_opt()?;
    Ok(())
}

/// Installs Debian's Chromium and chromedriver if chromedriver is missing.
pub fn ensure_browser(_root: &Path) -> Result<()> {
    if Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    println!("xtask: installing chromium and chromium-driver with apt-get (about 2 min)");
    apt_install(&["chromium", "chromium-driver"]).context(
        "installing the browser for the UI test failed; install Debian's `chromium` and \
         `chromium-driver` packages (they provide /usr/bin/chromium and /usr/bin/chromedriver)",
    )?;
    if !Path::new(CHROMEDRIVER).exists() {
        bail!("apt-get installed chromium-driver but {CHROMEDRIVER} is still missing");
    }
    Ok(())
}

/// Builds the UI with `trunk build --offline [--release]` at the root; returns `dist/`.
/// A release build also checks the download against the size budget.
pub fn build_ui(root: &Path, release: bool) -> Result<PathBuf> {
    let started = Instant::now();
    let mut args = vec!["build", "--offline"];
    if release {
        args.push("--release");
    }
    println!("xtask: trunk {}", args.join(" "));
    let status = Command::new(tool("trunk"))
        .args(&args)
        .current_dir(root)
        .env("PATH", tool_path())
        // trunk reads NO_COLOR as a bool flag and rejects the usual `NO_COLOR=1`.
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .status()
        .context("running trunk; `cargo xtask dev` or `cargo xtask test` install it")?;
    if !status.success() {
        bail!(
            "`trunk {}` failed (see its output above). If it complains about a missing \
             wasm-bindgen or wasm-opt, run `cargo xtask dev` once to install the tools.",
            args.join(" ")
        );
    }
    let dist = root.join("dist");
    if !dist.join("index.html").exists() {
        bail!("trunk finished but {} has no index.html", dist.display());
    }
    let size = bundle_size(&dist)?;
    println!(
        "xtask: UI built into {} in {:.0?}: wasm + js {} raw, {} gzip (budget {})",
        dist.display(),
        started.elapsed(),
        kb(size.raw),
        kb(size.gzip),
        kb(BUNDLE_BUDGET_GZIP)
    );
    if release && size.gzip > BUNDLE_BUDGET_GZIP {
        bail!(
            "the UI download is {} gzip, over the {} budget; see what grew with \
             `twiggy top dist/*.wasm` or drop dependencies from frontend/Cargo.toml",
            kb(size.gzip),
            kb(BUNDLE_BUDGET_GZIP)
        );
    }
    Ok(dist)
}

/// The real-browser test: tools, browser, release UI, `webchat-local`, then
/// `cargo test -p webchat-e2e` against them.
pub fn browser_test(root: &Path) -> Result<()> {
    ensure_ui_tools(root)?;
    ensure_browser(root)?;
    let dist = build_ui(root, true)?;

    let mut build = cargo(root);
    build.args(["build", "-p", "webchat-local", "--bin", "webchat-local"]);
    step("cargo build --bin webchat-local", build)?;
    let local_bin = target_dir(root).join("debug").join("webchat-local");

    println!("xtask: cargo test -p webchat-e2e (three headless Chromium users; screenshots in target/e2e/)");
    let status = cargo(root)
        .args(["test", "-p", "webchat-e2e", "--", "--nocapture"])
        .env("WEBCHAT_DIST", &dist)
        .env("WEBCHAT_LOCAL_BIN", &local_bin)
        .stdin(Stdio::null())
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!(
            "the browser test failed (see above). Screenshots and the chromedriver and \
             webchat-local logs are in {}",
            target_dir(root).join("e2e").display()
        );
    }
    Ok(())
}

fn ensure_trunk(root: &Path) -> Result<()> {
    let want = format!("trunk {TRUNK_VERSION}");
    if version_of("trunk").is_some_and(|v| v == want) {
        return Ok(());
    }
    println!("xtask: installing trunk {TRUNK_VERSION} (about 9 min)");
    // --locked: resolved afresh, trunk 0.21's lightningcss alpha meets a newer cssparser
    // that it does not compile with.
    run(cargo(root).args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))
        .with_context(|| {
            format!("`cargo install trunk --version {TRUNK_VERSION} --locked` failed")
        })?;
    match version_of("trunk") {
        Some(v) if v == want => Ok(()),
        other => bail!(
            "installed trunk {TRUNK_VERSION} but `trunk --version` says {other:?}; \
             is another trunk earlier on PATH?"
        ),
    }
}

fn ensure_wasm_bindgen(root: &Path) -> Result<()> {
    let version = locked_version(root, "wasm-bindgen")?;
    let want = format!("wasm-bindgen {version}");
    if version_of("wasm-bindgen").is_some_and(|v| v == want) {
        return Ok(());
    }
    println!("xtask: installing wasm-bindgen-cli {version} to match Cargo.lock (about 3 min)");
    run(cargo(root).args(["install", "wasm-bindgen-cli", "--version", &version]))
        .with_context(|| format!("`cargo install wasm-bindgen-cli --version {version}` failed"))?;
    match version_of("wasm-bindgen") {
        Some(v) if v == want => Ok(()),
        other => bail!(
            "installed wasm-bindgen-cli {version} but `wasm-bindgen --version` says {other:?}; \
             is another wasm-bindgen earlier on PATH?"
        ),
    }
}

/// The binaryen release whose `wasm-opt` trunk uses (`Trunk.toml` pins `version_123`).
/// Not Debian 12's `binaryen` (108): it points wasm-bindgen's `__wbindgen_externrefs`
/// export at the function table, and the app dies at start-up with
/// "WebAssembly.Table.set(): Argument 1 is invalid for table". The npm package is
/// binaryen compiled to WebAssembly: a minute to install, where building binaryen's C++
/// from crates.io (`cargo install wasm-opt`) takes most of an hour on two cores.
pub const WASM_OPT_VERSION: u32 = 123;
/// Where `npm install -g` puts it: `/usr/local/bin` comes before Debian's `/usr/bin`.
const NPM_PREFIX: &str = "/usr/local";

/// The binaryen version of the `wasm-opt` trunk would find ("wasm-opt version 123 (...)").
fn wasm_opt_version() -> Option<u32> {
    version_of("wasm-opt")?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

fn ensure_wasm_opt() -> Result<()> {
    let found = wasm_opt_version();
    if found == Some(WASM_OPT_VERSION) {
        return Ok(());
    }
    match found {
        Some(version) => println!(
            "xtask: wasm-opt is binaryen {version}; installing binaryen {WASM_OPT_VERSION} from \
             npm into {NPM_PREFIX} (about 1 min)"
        ),
        None => println!(
            "xtask: installing wasm-opt (binaryen {WASM_OPT_VERSION}) from npm into {NPM_PREFIX} \
             (about 1 min)"
        ),
    }
    if version_of("npm").is_none() {
        println!("xtask: installing nodejs and npm with apt-get (the npm binaryen runs on node)");
        apt_install(&["nodejs", "npm"]).context("installing nodejs and npm failed")?;
    }
    let package = format!("binaryen@{WASM_OPT_VERSION}");
    run(&mut as_root(&[
        "npm",
        "install",
        "--global",
        "--prefix",
        NPM_PREFIX,
        "--no-audit",
        "--no-fund",
        &package,
    ]))
    .with_context(|| format!("`npm install -g --prefix {NPM_PREFIX} {package}` failed"))?;
    match wasm_opt_version() {
        Some(version) if version == WASM_OPT_VERSION => Ok(()),
        other => bail!(
            "installed {package} into {NPM_PREFIX}/bin but the wasm-opt on PATH is binaryen \
             {other:?}; put {NPM_PREFIX}/bin before /usr/bin on PATH"
        ),
    }
}

/// `PROGRAM ARGS…`, through sudo when not root.
fn as_root(args: &[&str]) -> Command {
    let root_user = output(Command::new("id").arg("-u"))
        .map(|uid| uid.trim() == "0")
        .unwrap_or(false);
    let mut command = if root_user {
        Command::new(args[0])
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg(args[0]);
        sudo
    };
    command.args(&args[1..]).stdin(Stdio::null());
    command
}

/// `apt-get update` then `apt-get install -y PACKAGES`, through sudo when not root.
fn apt_install(packages: &[&str]) -> Result<()> {
    run(as_root(&["apt-get", "update"]).env("DEBIAN_FRONTEND", "noninteractive"))
        .context("`apt-get update` failed")?;
    let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    run(as_root(&install).env("DEBIAN_FRONTEND", "noninteractive"))
        .with_context(|| format!("`apt-get install {}` failed", packages.join(" ")))
}

/// The version of `package` that Cargo.lock pins.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock_path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
            {
                return Ok(version.to_string());
            }
        }
    }
    bail!(
        "{package} is not in Cargo.lock; run `cargo metadata` (or any cargo build) to resolve \
         the frontend's dependencies first"
    )
}

/// First line of `NAME --version`, or `None` when the tool is missing or fails.
fn version_of(name: &str) -> Option<String> {
    let out = Command::new(tool(name))
        .arg("--version")
        .env("PATH", tool_path())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

fn cargo_home_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
        .join("bin")
}

/// PATH with `$CARGO_HOME/bin` first, where `cargo install` puts trunk and wasm-bindgen
/// (trunk looks wasm-bindgen and wasm-opt up on PATH).
fn tool_path() -> OsString {
    let mut dirs = vec![cargo_home_bin()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// A tool by name: from `$CARGO_HOME/bin` if it is there, else from PATH.
fn tool(name: &str) -> PathBuf {
    let installed = cargo_home_bin().join(name);
    if installed.exists() {
        installed
    } else {
        PathBuf::from(name)
    }
}

/// Bytes the browser downloads to start the app: every `.wasm` and `.js` in dist.
pub struct BundleSize {
    pub raw: u64,
    pub gzip: u64,
}

pub fn bundle_size(dist: &Path) -> Result<BundleSize> {
    let mut size = BundleSize { raw: 0, gzip: 0 };
    for entry in std::fs::read_dir(dist).with_context(|| format!("reading {}", dist.display()))? {
        let path = entry?.path();
        let counted = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("wasm") | Some("js")
        );
        if !counted {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&bytes)?;
        size.raw += bytes.len() as u64;
        size.gzip += encoder.finish()?.len() as u64;
    }
    Ok(size)
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}
