//! The web UI tasks: installing its build tools, building it with trunk, and the
//! real-browser test.
//!
//! Tools are installed only when missing or at the wrong version: the
//! `wasm32-unknown-unknown` target (rustup); `trunk` and `wasm-bindgen-cli` (cargo
//! install, into `$CARGO_HOME/bin`, once per machine); `wasm-opt` from npm's `binaryen`
//! 123 into the project's `.tools/binaryen` (Debian 12's `binaryen` 108 writes broken
//! output, see [`WASM_OPT_VERSION`]); npm's `terser` (pinned, [`TERSER`]) into
//! `.tools/terser` for the release build's JavaScript ([`minify_glue`]); and for the
//! browser test Debian's `chromium` and `chromium-driver` and npm's `axe-core` (pinned,
//! [`AXE_CORE`]) into `.tools/axe-core`.
//! A release build also writes `.br` and `.gz` beside each compressible file of `dist/`
//! ([`precompress`]). trunk always runs offline: it takes wasm-bindgen and wasm-opt from
//! the first match on its PATH (if the version differs it fails, never downloads), so
//! xtask runs it with `.tools/binaryen` first on PATH.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use webchat_testkit::ui_bundle;

use crate::test_build::TestBuild;
use crate::tools::{
    cargo, ensure_rust_target, npm_install, output, path_with, run, step, target_dir,
};

/// trunk 0.22 needs a newer Rust than the workspace pins.
pub(crate) const TRUNK_VERSION: &str = "0.21.14";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Where the browser test looks for chromedriver unless `CHROMEDRIVER` says otherwise.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// binaryen's npm prefix, under the workspace root.
const BINARYEN: &str = ".tools/binaryen";
/// The accessibility checker the browser test runs in its pages, from npm.
const AXE_CORE: &str = "axe-core@4.14.1";
/// axe-core's npm prefix, under the workspace root.
const AXE_CORE_PREFIX: &str = ".tools/axe-core";
/// The minifier of wasm-bindgen's JavaScript glue in release builds, from npm: trunk's own
/// (`minify = "on_release"`) fails on that glue and ships it as it is.
const TERSER: &str = "terser@5.51.4";
/// terser's npm prefix, under the workspace root.
const TERSER_PREFIX: &str = ".tools/terser";

/// Installs whatever the UI build needs and is missing.
pub(crate) fn ensure_ui_tools(root: &Path) -> Result<()> {
    ensure_rust_target(root, WASM_TARGET)?;
    ensure_trunk(root)?;
    ensure_wasm_bindgen(root)?;
    ensure_wasm_opt(root)?;
    ensure_npm_package(
        root,
        TERSER,
        TERSER_PREFIX,
        &terser_script(root),
        "the release UI's JavaScript minifier",
    )?;
    Ok(())
}

/// Installs what the browser test needs and is missing: axe-core into
/// `.tools/axe-core`, and Debian's Chromium and chromedriver if chromedriver is missing.
pub(crate) fn ensure_browser(root: &Path) -> Result<()> {
    ensure_axe_core(root)?;
    // The browser test honours CHROMEDRIVER and CHROMIUM: someone who set them brought
    // their own.
    if let Some(own) = std::env::var_os("CHROMEDRIVER") {
        let own = PathBuf::from(own);
        if !own.is_file() {
            bail!(
                "CHROMEDRIVER is set to {}, which does not exist",
                own.display()
            );
        }
        return Ok(());
    }
    if Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    println!("xtask: installing chromium and chromium-driver with apt-get (about 2 min)");
    apt_install(&["chromium", "chromium-driver"]).context(
        "the browser test needs Chromium and chromedriver; install them by hand: \
         `sudo apt-get install chromium chromium-driver` on Debian or Ubuntu, or elsewhere a \
         Chromium and its matching chromedriver, then set CHROMIUM and CHROMEDRIVER to \
         their paths",
    )?;
    if !Path::new(CHROMEDRIVER).exists() {
        bail!(
            "apt-get installed chromium-driver but {CHROMEDRIVER} is still missing; set \
             CHROMEDRIVER to where it put chromedriver"
        );
    }
    Ok(())
}

/// `axe.min.js`, which the browser test injects into its pages (`WEBCHAT_AXE`).
fn axe_script(root: &Path) -> PathBuf {
    root.join(AXE_CORE_PREFIX)
        .join("node_modules/axe-core/axe.min.js")
}

/// Installs the pinned axe-core into `.tools/axe-core` unless that version is there.
fn ensure_axe_core(root: &Path) -> Result<()> {
    ensure_npm_package(
        root,
        AXE_CORE,
        AXE_CORE_PREFIX,
        &axe_script(root),
        "the accessibility checks of the browser test",
    )
}

fn terser_script(root: &Path) -> PathBuf {
    root.join(TERSER_PREFIX)
        .join("node_modules/terser/bin/terser")
}

/// Installs npm's `spec` (`name@version`) into `prefix` unless that version is there
/// with its file `needed`.
fn ensure_npm_package(
    root: &Path,
    spec: &str,
    prefix: &str,
    needed: &Path,
    purpose: &str,
) -> Result<()> {
    let (name, version) = spec.split_once('@').expect("name@version");
    let installed = || {
        let manifest = root
            .join(prefix)
            .join("node_modules")
            .join(name)
            .join("package.json");
        std::fs::read_to_string(manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|package| package["version"] == version)
            && needed.is_file()
    };
    if installed() {
        return Ok(());
    }
    npm_install(root, prefix, spec, purpose)?;
    if !installed() {
        bail!(
            "installed {spec} into {prefix} but {} is missing or another version; delete \
             {prefix} and retry",
            needed.display()
        );
    }
    Ok(())
}

/// Builds the UI with `trunk build --offline [--release]` at the root; returns `dist/`.
/// A release build also checks the download against the size budget.
pub(crate) fn build_ui(root: &Path, release: bool) -> Result<PathBuf> {
    let started = Instant::now();
    let mut args = vec!["build", "--offline"];
    if release {
        args.push("--release");
    }
    println!("xtask: trunk {}", args.join(" "));
    let status = tool_command(root, "trunk")?
        .args(&args)
        .current_dir(root)
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
    if release {
        minify_glue(root, &dist)?;
    }
    let size = ui_bundle::measure(&dist)?;
    println!(
        "xtask: UI built into {} in {:.0?}: wasm + js {} raw, {} gzip (budget {})",
        dist.display(),
        started.elapsed(),
        kb(size.raw),
        kb(size.gzip),
        kb(ui_bundle::BUDGET_GZIP)
    );
    if release && size.gzip > ui_bundle::BUDGET_GZIP {
        bail!(
            "the UI download is {} gzip, over the {} budget; see what grew with \
             `twiggy top dist/*.wasm` or drop dependencies from frontend/Cargo.toml",
            kb(size.gzip),
            kb(ui_bundle::BUDGET_GZIP)
        );
    }
    precompress(&dist)?;
    Ok(dist)
}

/// Minifies wasm-bindgen's JavaScript glue (the `.js` files at the top of `dist`) with
/// terser in place, and gives index.html's `integrity` attributes, which trunk computed
/// for the files as they were, the new files' hashes. Exported names stay (the page
/// imports them), and so do property names (the wasm's imports are looked up by them).
fn minify_glue(root: &Path, dist: &Path) -> Result<()> {
    let index_path = dist.join("index.html");
    let mut index = std::fs::read_to_string(&index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let entries = std::fs::read_dir(dist).with_context(|| format!("listing {}", dist.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_file() || !has_extension(&path, &["js"]) {
            continue;
        }
        let before = std::fs::read(&path)?;
        let mut terser = Command::new("node");
        terser
            .arg(terser_script(root))
            .arg(&path)
            .args(["--module", "--compress", "--mangle", "--output"])
            .arg(&path)
            .stdin(Stdio::null());
        run(&mut terser).with_context(|| format!("minifying {} with terser", path.display()))?;
        let after = std::fs::read(&path)?;
        index = index.replace(&integrity(&before), &integrity(&after));
    }
    std::fs::write(&index_path, index).with_context(|| format!("writing {}", index_path.display()))
}

/// A subresource integrity value as trunk writes it: `sha384-` and the digest in base64.
fn integrity(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes))
    )
}

/// The built files worth compressing for the wire: WebAssembly and text. Images and
/// fonts are compressed already.
const COMPRESSIBLE: &[&str] = &[
    "wasm",
    "js",
    "mjs",
    "html",
    "css",
    "json",
    "svg",
    "txt",
    "xml",
    "map",
    "webmanifest",
];
/// The precompressed siblings' suffixes: what `webchat-local` serves in their file's
/// place when the browser accepts them.
const PRECOMPRESSED: &[&str] = &["br", "gz"];

/// Whether `path` is a precompressed sibling that [`precompress`] wrote.
pub(crate) fn is_precompressed(path: &Path) -> bool {
    has_extension(path, PRECOMPRESSED)
}

fn has_extension(path: &Path, set: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| set.contains(&e))
}

/// Writes `NAME.br` (brotli, best quality) and `NAME.gz` (`gzip -9`) beside each
/// compressible file of `dist`, with the encoders the size figures use
/// ([`ui_bundle::brotli`], [`ui_bundle::gzip`]). Every `.br` and `.gz` already there
/// goes first: trunk writes none, and one left from an earlier build could outlive its
/// file or hold its old content. A sibling no smaller than its file is not written (the
/// file itself is the better answer). Hidden directories (trunk's `.stage/`) are left
/// alone.
pub(crate) fn precompress(dist: &Path) -> Result<()> {
    let started = Instant::now();
    let mut files = Vec::new();
    list_files(dist, &mut files)?;
    for path in files.iter().filter(|path| is_precompressed(path)) {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    let (mut raw, mut written) = (0u64, [0u64; 2]);
    for path in files
        .iter()
        .filter(|path| has_extension(path, COMPRESSIBLE))
    {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        raw += bytes.len() as u64;
        let encoded = [ui_bundle::brotli(&bytes), ui_bundle::gzip(&bytes)];
        for ((suffix, encoded), total) in PRECOMPRESSED.iter().zip(encoded).zip(&mut written) {
            let encoded = encoded.with_context(|| format!("compressing {}", path.display()))?;
            if encoded.len() >= bytes.len() {
                continue;
            }
            let mut sibling = path.clone().into_os_string();
            sibling.push(".");
            sibling.push(suffix);
            std::fs::write(&sibling, &encoded)
                .with_context(|| format!("writing {}", Path::new(&sibling).display()))?;
            *total += encoded.len() as u64;
        }
    }
    println!(
        "xtask: precompressed {} of dist/ in {:.0?}: {} brotli, {} gzip",
        kb(raw),
        started.elapsed(),
        kb(written[0]),
        kb(written[1])
    );
    Ok(())
}

/// The files under `dir` at any depth, except in hidden directories.
fn list_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if !entry.file_name().to_string_lossy().starts_with('.') {
                list_files(&path, found)?;
            }
        } else {
            found.push(path);
        }
    }
    Ok(())
}

/// The real-browser test: tools, browser and release UI, then webchat-e2e's `browser`
/// test from the workspace's test build, with its `webchat-local`.
pub(crate) fn browser_test(root: &Path, built: &TestBuild) -> Result<()> {
    ensure_ui_tools(root)?;
    ensure_browser(root)?;
    let dist = build_ui(root, true)?;

    let mut browser = built.test_command("webchat-e2e", "browser", &["--nocapture"])?;
    browser
        .env("WEBCHAT_DIST", &dist)
        .env("WEBCHAT_LOCAL_BIN", built.bin("webchat-local")?)
        .env("WEBCHAT_AXE", axe_script(root));
    step(
        "the browser test (three headless Chromium users; screenshots in target/e2e/)",
        browser,
    )
    .with_context(|| {
        format!(
            "the browser test failed. Screenshots and the chromedriver and webchat-local \
             logs are in {}",
            target_dir(root).join("e2e").display()
        )
    })
}

fn ensure_trunk(root: &Path) -> Result<()> {
    let want = format!("trunk {TRUNK_VERSION}");
    if version_of(root, "trunk").is_some_and(|v| v == want) {
        return Ok(());
    }
    println!("xtask: installing trunk {TRUNK_VERSION} (about 9 min)");
    // --locked: resolved afresh, trunk 0.21's lightningcss alpha meets a newer cssparser
    // that it does not compile with.
    run(cargo(root).args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))
        .with_context(|| {
            format!("`cargo install trunk --version {TRUNK_VERSION} --locked` failed")
        })?;
    match version_of(root, "trunk") {
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
    if version_of(root, "wasm-bindgen").is_some_and(|v| v == want) {
        return Ok(());
    }
    println!("xtask: installing wasm-bindgen-cli {version} to match Cargo.lock (about 3 min)");
    run(cargo(root).args(["install", "wasm-bindgen-cli", "--version", &version]))
        .with_context(|| format!("`cargo install wasm-bindgen-cli --version {version}` failed"))?;
    match version_of(root, "wasm-bindgen") {
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
/// "`WebAssembly.Table.set()`: Argument 1 is invalid for table". The npm package is
/// binaryen compiled to WebAssembly: a minute to install, where building binaryen's C++
/// from crates.io (`cargo install wasm-opt`) takes most of an hour on two cores.
pub(crate) const WASM_OPT_VERSION: u32 = 123;

/// Where npm puts binaryen's commands; first on trunk's PATH.
fn binaryen_bin(root: &Path) -> PathBuf {
    root.join(BINARYEN).join("node_modules").join(".bin")
}

/// The binaryen version of a `wasm-opt` ("wasm-opt version 123 (`version_123`)").
fn wasm_opt_version(wasm_opt: &Path) -> Option<u32> {
    first_line_of_version(Command::new(wasm_opt))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Installs binaryen into `.tools/binaryen` unless its wasm-opt is there at the pinned
/// version. Always the project's own copy: whatever else is on PATH, trunk finds this one
/// first.
fn ensure_wasm_opt(root: &Path) -> Result<()> {
    let wasm_opt = binaryen_bin(root).join("wasm-opt");
    let found = wasm_opt_version(&wasm_opt);
    if found == Some(WASM_OPT_VERSION) {
        return Ok(());
    }
    if let Some(version) = found {
        println!("xtask: {BINARYEN} has binaryen {version}; replacing it with {WASM_OPT_VERSION}");
    }
    npm_install(
        root,
        BINARYEN,
        &format!("binaryen@{WASM_OPT_VERSION}"),
        "trunk's wasm-opt for the release UI build",
    )?;
    match wasm_opt_version(&wasm_opt) {
        Some(version) if version == WASM_OPT_VERSION => Ok(()),
        other => bail!(
            "installed binaryen {WASM_OPT_VERSION} into {BINARYEN} but `{} --version` reports \
             binaryen {other:?}; delete {BINARYEN} and retry",
            wasm_opt.display()
        ),
    }
}

/// `PROGRAM ARGS…`, through `sudo -n` when not root (it fails rather than waits for a
/// password nobody can type: stdin is closed).
fn as_root(args: &[&str]) -> Result<Command> {
    let root_user = output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let mut command = if root_user {
        Command::new(args[0])
    } else {
        if first_line_of_version(Command::new("sudo")).is_none() {
            bail!("not running as root and sudo is not installed");
        }
        let mut sudo = Command::new("sudo");
        sudo.arg("-n").arg(args[0]);
        sudo
    };
    command.args(&args[1..]).stdin(Stdio::null());
    Ok(command)
}

/// `apt-get update` then `apt-get install -y PACKAGES`, through sudo when not root. Its
/// errors say which of these stood in the way: no apt-get, no root, no network.
fn apt_install(packages: &[&str]) -> Result<()> {
    if first_line_of_version(Command::new("apt-get")).is_none() {
        bail!("apt-get is not available (this is not a Debian or Ubuntu system)");
    }
    let mut update = as_root(&["apt-get", "update"])?;
    run(update.env("DEBIAN_FRONTEND", "noninteractive")).context(
        "`apt-get update` failed: without root (sudo asks for a password?) or without \
         access to the Debian mirrors (offline?) nothing can be installed",
    )?;
    let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    run(as_root(&install)?.env("DEBIAN_FRONTEND", "noninteractive"))
        .with_context(|| format!("`apt-get install {}` failed", packages.join(" ")))
}

/// The version of `package` that Cargo.lock pins: the first match, which is the one
/// trunk picks for wasm-bindgen too.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock_path = root.join("Cargo.lock");
    let lock = cargo_lock::Lockfile::load(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    lock.packages
        .iter()
        .find(|p| p.name.as_str() == package)
        .map(|p| p.version.to_string())
        .with_context(|| {
            format!(
                "{package} is not in Cargo.lock; run `cargo metadata` (or any cargo build) to \
                 resolve the frontend's dependencies first"
            )
        })
}

/// First line of `NAME --version`, run with the tools' PATH; `None` when the tool is
/// missing or fails.
fn version_of(root: &Path, name: &str) -> Option<String> {
    first_line_of_version(tool_command(root, name).ok()?)
}

fn first_line_of_version(mut command: Command) -> Option<String> {
    let out = command
        .arg("--version")
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

/// The PATH trunk and the UI tools run with: the project's binaryen first (trunk takes
/// the first wasm-opt on PATH and, offline, fails on a version other than the pinned
/// one), then `$CARGO_HOME/bin` where `cargo install` puts trunk and wasm-bindgen, then
/// the PATH xtask was given.
fn tool_path(root: &Path) -> Result<OsString> {
    path_with([binaryen_bin(root), cargo_home_bin()])
}

/// `name` looked up on, and run with, the UI tools' PATH.
fn tool_command(root: &Path, name: &str) -> Result<Command> {
    let path = tool_path(root)?;
    // Command searches the PATH given to the child when one is set.
    let mut command = Command::new(name);
    command.env("PATH", path);
    Ok(command)
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", ui_bundle::kb(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precompressing_writes_smaller_siblings_and_leaves_none_stale() {
        let dist = std::env::temp_dir().join(format!("xtask-precompress-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dist);
        std::fs::create_dir_all(dist.join("snippets/app-1")).unwrap();
        std::fs::create_dir_all(dist.join(".stage")).unwrap();
        let js = b"export function start() { return 1; }\n".repeat(200);
        let wasm: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dist.join("app.js"), &js).unwrap();
        std::fs::write(dist.join("app_bg.wasm"), &wasm).unwrap();
        std::fs::write(dist.join("snippets/app-1/inline0.js"), &js).unwrap();
        // Too small to gain from compression.
        std::fs::write(dist.join("tiny.css"), b"a{}").unwrap();
        std::fs::write(dist.join("logo.png"), &wasm).unwrap();
        std::fs::write(dist.join(".stage/app.js"), &js).unwrap();
        // Left from an earlier build: one whose file is gone, one with old content.
        std::fs::write(dist.join("gone_bg.wasm.br"), b"old").unwrap();
        std::fs::write(dist.join("app.js.gz"), b"old").unwrap();

        precompress(&dist).unwrap();

        let read = |name: &str| std::fs::read(dist.join(name)).ok();
        assert_eq!(read("app.js.br"), Some(ui_bundle::brotli(&js).unwrap()));
        assert_eq!(read("app.js.gz"), Some(ui_bundle::gzip(&js).unwrap()));
        assert_eq!(
            read("app_bg.wasm.br"),
            Some(ui_bundle::brotli(&wasm).unwrap())
        );
        assert_eq!(
            read("app_bg.wasm.gz"),
            Some(ui_bundle::gzip(&wasm).unwrap())
        );
        assert!(read("snippets/app-1/inline0.js.br").is_some());
        for absent in [
            "gone_bg.wasm.br",
            "tiny.css.br",
            "tiny.css.gz",
            "logo.png.br",
            "logo.png.gz",
            ".stage/app.js.br",
        ] {
            assert_eq!(read(absent), None, "{absent}");
        }
        // Run again (trunk rebuilt nothing): the same files.
        precompress(&dist).unwrap();
        assert_eq!(read("app.js.gz"), Some(ui_bundle::gzip(&js).unwrap()));
        let _ = std::fs::remove_dir_all(&dist);
    }

    #[test]
    fn integrity_is_written_as_trunk_writes_it() {
        // `openssl dgst -sha384 -binary | base64` of the same bytes.
        assert_eq!(
            integrity(b"export const a = 1;\n"),
            "sha384-ahaEXmBsbkboBjx3r5Cwgp0YemMIe12Xuh6StMdeTQrr1ocwQmyv+hkfTwmx/5NP"
        );
    }

    #[test]
    fn versions_come_from_the_workspace_lockfile() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert_eq!(
            locked_version(root, "xtask").unwrap(),
            env!("CARGO_PKG_VERSION")
        );
        let missing = locked_version(root, "no-such-package").unwrap_err();
        assert!(
            missing.to_string().contains("not in Cargo.lock"),
            "{missing}"
        );
    }
}
