//! The web UI in a real browser: headless Chromium driven over WebDriver (Debian's
//! chromedriver) against the real `webchat-local` gateway serving the built UI.
//!
//! Run it with `cargo xtask test`, which installs chromium and chromedriver, builds the UI
//! into `dist/` and builds `webchat-local` first; without them the test binary stops at
//! once with one line saying so. Inputs: `WEBCHAT_DIST` (default `<workspace>/dist`),
//! `WEBCHAT_LOCAL_BIN` (default `<workspace>/target/debug/webchat-local`), `CHROMEDRIVER`
//! (default `/usr/bin/chromedriver`), `CHROMIUM` (default `/usr/bin/chromium`).
//! Screenshots of every step go to `<workspace>/target/e2e/` (the rooms test's to
//! `<workspace>/target/e2e-rooms/`, the sign-in test's to `<workspace>/target/e2e-auth/`).
//! The rooms test keeps the chat on dynalite (installed by `cargo xtask test` into
//! `.tools/`), so history outlives a gateway restart. The sign-in test runs the gateway
//! with `--auth dev` and signs in through its development issuer's login page. The
//! tests take turns: each drives up to three Chromiums, which is all two cores can carry.
//! At three points (the join screen, a room's chat between two people, the sign-in
//! screen) the tests run axe-core in the page and fail on any violation of impact
//! `serious` or `critical`; axe-core's `axe.min.js` comes from `WEBCHAT_AXE` (default
//! `<workspace>/.tools/axe-core/node_modules/axe-core/axe.min.js`, where `cargo xtask test`
//! installs it).

use anyhow::{bail, Context, Result};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::json;
use std::fs;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use webchat_testkit::chromium::Driver;
use webchat_testkit::{missing_prerequisite, workspace_root, Dynalite, Launch, Process};

const WAIT: Duration = Duration::from_secs(20);
/// Covers the reconnect backoff (up to 30 s between attempts) after the gateway is back.
const RECONNECT_WAIT: Duration = Duration::from_mins(1);
const XSS: &str = r#"<img src=x onerror="window.__xss=1">"#;

fn env_path(name: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map_or(default, PathBuf::from)
}

/// A running `webchat-local` serving the built UI.
struct Gateway {
    process: Process,
    addr: String,
}

impl Gateway {
    /// Starts the gateway on `addr` (`127.0.0.1:0` for a free port) and waits for its
    /// ready line.
    /// `store` is a DynamoDB endpoint (dynalite) to keep the chat in, instead of memory.
    fn start(bin: &Path, dist: &Path, addr: &str, log: &Path, store: Option<&str>) -> Result<Self> {
        match store {
            Some(endpoint) => {
                Gateway::start_with(bin, dist, addr, log, &["--dynamodb-endpoint", endpoint])
            }
            None => Gateway::start_with(bin, dist, addr, log, &[]),
        }
    }

    /// [`Gateway::start`] with these further arguments for webchat-local.
    fn start_with(bin: &Path, dist: &Path, addr: &str, log: &Path, extra: &[&str]) -> Result<Self> {
        let mut log_file = fs::OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(
            log_file,
            "--- webchat-local --addr {addr} {}",
            extra.join(" ")
        )?;
        let mut command = Command::new(bin);
        command
            .args(["--addr", addr, "--stage", "Prod", "--static-dir"])
            .arg(dist)
            .args(extra);
        let process = Launch::new("webchat-local", command)
            .log_to(log)
            .until_ready(webchat_local::READY_LINE_PREFIX, WAIT)?;
        let url = process.ready_line();
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if !addr.contains(':') {
            bail!("cannot read the address from webchat-local's URL {url:?}");
        }
        eprintln!("e2e: webchat-local listening at {url}");
        Ok(Gateway { process, addr })
    }

    /// Starts the gateway again on the same address, retrying while the port is still busy.
    fn restart_on(
        bin: &Path,
        dist: &Path,
        addr: &str,
        log: &Path,
        store: Option<&str>,
    ) -> Result<Self> {
        let deadline = Instant::now() + WAIT;
        loop {
            match Gateway::start(bin, dist, addr, log, store) {
                Ok(gateway) => return Ok(gateway),
                Err(err) if Instant::now() < deadline => {
                    eprintln!("e2e: restart on {addr} failed ({err:#}); retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn page_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn stop(mut self) {
        self.process.kill();
    }
}

/// What a page shows, read in one script call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct View {
    screen: String,
    status: Option<String>,
    me: Option<String>,
    join_error: String,
    users: Vec<String>,
    messages: Vec<Message>,
    system: Vec<String>,
    transcript_imgs: u32,
    xss: String,
    rooms: Vec<Room>,
    room_error: String,
    away_dividers: u32,
}

/// One entry of the room list.
#[derive(Debug, Clone, Deserialize)]
struct Room {
    name: String,
    current: bool,
    unread: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct Message {
    sender: String,
    text: String,
    private: bool,
    own: bool,
    delivery: String,
    title: String,
}

impl View {
    fn has(&self, sender: &str, text: &str) -> bool {
        self.message(sender, text).is_some()
    }

    fn message(&self, sender: &str, text: &str) -> Option<&Message> {
        self.messages
            .iter()
            .find(|m| m.sender == sender && m.text == text)
    }

    /// The room shown.
    fn room(&self) -> Option<&str> {
        self.rooms
            .iter()
            .find(|room| room.current)
            .map(|room| room.name.as_str())
    }

    fn room_names(&self) -> Vec<&str> {
        self.rooms.iter().map(|room| room.name.as_str()).collect()
    }

    fn unread(&self, room: &str) -> Option<u32> {
        self.rooms
            .iter()
            .find(|r| r.name == room)
            .map(|room| room.unread)
    }

    /// The texts of the messages shown, in order.
    fn texts(&self) -> Vec<&str> {
        self.messages.iter().map(|m| m.text.as_str()).collect()
    }

    fn sorted_users(&self) -> Vec<String> {
        let mut users = self.users.clone();
        users.sort();
        users
    }
}

const VIEW_JS: &str = r"
const q = (s, r = document) => Array.from(r.querySelectorAll(s));
const one = (s) => document.querySelector(s);
return {
  screen: one('[data-testid=chat-screen]') ? 'chat' : one('[data-testid=join-screen]') ? 'join' : 'none',
  status: one('[data-testid=status]') ? one('[data-testid=status]').dataset.status : null,
  me: one('[data-testid=me] strong') ? one('[data-testid=me] strong').textContent : null,
  joinError: one('[data-testid=join-error]') ? one('[data-testid=join-error]').textContent : '',
  users: q('[data-testid=user]').map(e => e.dataset.name),
  messages: q('[data-testid=message]').map(e => ({
    sender: e.dataset.sender,
    text: e.querySelector('[data-testid=message-text]').textContent,
    private: e.dataset.private === 'true',
    own: e.dataset.own === 'true',
    delivery: e.dataset.delivery,
    title: e.title || '',
  })),
  system: q('[data-testid=system-line]').map(e => e.textContent),
  transcriptImgs: q('[data-testid=transcript] img').length,
  xss: typeof window.__xss,
  rooms: q('[data-testid=room]').map(e => ({
    name: e.dataset.room,
    current: e.querySelector('button').getAttribute('aria-current') === 'true',
    unread: Number(e.dataset.unread || 0),
  })),
  roomError: one('[data-testid=room-error]') ? one('[data-testid=room-error]').textContent : '',
  awayDividers: q('[data-testid=away-divider]').length,
};
";

/// One browser window, one chat user.
struct User {
    name: &'static str,
    client: Client,
}

impl User {
    async fn open(
        driver: &Driver,
        name: &'static str,
        chromium: &Path,
        profile: &Path,
        size: (u32, u32),
    ) -> Result<Self> {
        fs::create_dir_all(profile)?;
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": webchat_testkit::chromium::headless_args(profile, size),
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .with_context(|| format!("opening a Chromium session for {name}"))?;
        Ok(User { name, client })
    }

    async fn view(&self) -> Result<View> {
        let value = self.client.execute(VIEW_JS, Vec::new()).await?;
        serde_json::from_value(value).context("reading the page state")
    }

    /// Waits until `check` accepts this page's view; fails with the last view seen.
    async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&View) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let view = self.view().await?;
            if let Some(found) = check(&view) {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: timed out after {timeout:?} waiting for {what}; the page shows {view:#?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn join(&self, name: &str) -> Result<()> {
        // The page's placeholder form takes typing until the app runs, but the app then
        // puts its own field in its place, and WebDriver would type into the old one: a
        // person just goes on typing (a test of its own covers the hand-over).
        self.app_running().await?;
        let input = self
            .client
            .wait()
            .for_element(Locator::Css("[data-testid=name-input]"))
            .await?;
        input.clear().await?;
        input.send_keys(name).await?;
        self.client
            .find(Locator::Css("[data-testid=join-button]"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// Waits until the app runs: the page's placeholder join form is gone.
    async fn app_running(&self) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while self
            .client
            .execute(PLACEHOLDER_SHOWN_JS, Vec::new())
            .await?
            .as_bool()
            .unwrap_or(true)
        {
            if Instant::now() > deadline {
                bail!(
                    "{}: the app did not take over the join form within {WAIT:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Signs in with the Sign in button and the development issuer's login page, as
    /// `name`.
    async fn sign_in(&self, name: &str) -> Result<()> {
        self.client
            .wait()
            .for_element(Locator::Css("[data-testid=sign-in-button]"))
            .await?
            .click()
            .await?;
        let input = self
            .client
            .wait()
            .for_element(Locator::Css("input[name=name]"))
            .await?;
        let url = self.client.current_url().await?;
        if !url.path().ends_with("/oauth2/authorize") {
            bail!(
                "{}: Sign in led to {url}, not the issuer's login page",
                self.name
            );
        }
        input.send_keys(name).await?;
        self.client
            .find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// The tab's sessionStorage item `key`.
    async fn session_item(&self, key: &str) -> Result<Option<String>> {
        let value = self
            .client
            .execute(
                "return sessionStorage.getItem(arguments[0]);",
                vec![json!(key)],
            )
            .await?;
        Ok(value.as_str().map(str::to_string))
    }

    async fn type_message(&self, keys: &str) -> Result<()> {
        let input = self
            .client
            .find(Locator::Css("[data-testid=message-input]"))
            .await?;
        input.send_keys(keys).await?;
        Ok(())
    }

    /// Types `text` and presses Enter.
    async fn say(&self, text: &str) -> Result<()> {
        self.type_message(&format!("{text}{}", char::from(Key::Enter)))
            .await
    }

    /// Types a room name into the room field and presses its Join button.
    async fn join_room(&self, room: &str) -> Result<()> {
        let input = self
            .client
            .find(Locator::Css("[data-testid=room-input]"))
            .await?;
        input.clear().await?;
        input.send_keys(room).await?;
        self.client
            .find(Locator::Css("[data-testid=join-room-button]"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// Clicks a room in the room list.
    async fn show_room(&self, room: &str) -> Result<()> {
        self.client
            .find(Locator::Css(&format!(
                "[data-testid=room][data-room=\"{room}\"] button"
            )))
            .await?
            .click()
            .await?;
        Ok(())
    }

    async fn click_send(&self) -> Result<()> {
        self.client
            .find(Locator::Css("[data-testid=send-button]"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    async fn choose_recipient(&self, label: &str) -> Result<()> {
        self.client
            .find(Locator::Css("[data-testid=recipient]"))
            .await?
            .select_by_label(label)
            .await?;
        Ok(())
    }

    async fn screenshot(&self, dir: &Path, file: &str) -> Result<()> {
        let png = self.client.screenshot().await?;
        let path = dir.join(file);
        fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("e2e: screenshot {}", path.display());
        Ok(())
    }
}

/// axe-core's browser script.
fn axe_path() -> PathBuf {
    env_path(
        "WEBCHAT_AXE",
        workspace_root().join(".tools/axe-core/node_modules/axe-core/axe.min.js"),
    )
}

/// What axe-core found on a page, as [`AXE_RUN_JS`] reports it.
#[derive(Debug, Deserialize)]
struct AxeReport {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    violations: Vec<AxeViolation>,
}

#[derive(Debug, Deserialize)]
struct AxeViolation {
    id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    impact: Option<String>,
    help: String,
    #[serde(rename = "helpUrl")]
    help_url: String,
    /// One CSS selector path per offending element.
    targets: Vec<String>,
}

impl AxeViolation {
    fn fails(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

impl std::fmt::Display for AxeViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} [{}] at {}",
            self.id,
            self.impact.as_deref().unwrap_or("no impact"),
            self.help,
            self.help_url,
            self.targets.join(", ")
        )
    }
}

/// Runs axe-core (already injected) on the whole document with its default rules.
const AXE_RUN_JS: &str = r"
const done = arguments[arguments.length - 1];
window.axe.run(document, { resultTypes: ['violations'] }).then(
  (results) => done({
    violations: results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      targets: v.nodes.map((n) => n.target.map(String).join(' ')),
    })),
  }),
  (error) => done({ error: String(error) }),
);
";

/// Runs axe-core in the page `user` shows now (`screen` names it in the output): prints
/// every violation, and fails when any has impact `serious` or `critical`.
async fn check_accessibility(user: &User, screen: &str) -> Result<()> {
    let path = axe_path();
    let axe = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading axe-core's {}: install it with `cargo xtask test`, or set WEBCHAT_AXE",
            path.display()
        )
    })?;
    // The script defines `window.axe` as it runs.
    user.client
        .execute(&format!("{axe}\nreturn typeof window.axe;"), Vec::new())
        .await
        .context("injecting axe-core")?;
    let report = user
        .client
        .execute_async(AXE_RUN_JS, Vec::new())
        .await
        .context("running axe-core")?;
    let report: AxeReport = serde_json::from_value(report).context("reading axe-core's results")?;
    if let Some(error) = report.error {
        bail!("{}: axe-core failed on the {screen}: {error}", user.name);
    }
    for violation in &report.violations {
        eprintln!("e2e: axe on the {screen}: {violation}");
    }
    let failing: Vec<String> = report
        .violations
        .iter()
        .filter(|v| v.fails())
        .map(|v| format!("  {v}"))
        .collect();
    if !failing.is_empty() {
        bail!(
            "{}: the {screen} has {} serious or critical accessibility violation(s):\n{}",
            user.name,
            failing.len(),
            failing.join("\n")
        );
    }
    eprintln!(
        "e2e: axe on the {screen}: no serious or critical violations ({} minor or moderate)",
        report.violations.len()
    );
    Ok(())
}

/// Stops the test binary with one line when something `cargo xtask test` provides is
/// missing.
fn require(path: &Path, what: &str) {
    if !path.exists() {
        missing_prerequisite(&format!(
            "{what} not found at {}: run `cargo xtask test`, which installs chromium and \
             chromedriver, builds the UI into dist/ and builds webchat-local before this test",
            path.display()
        ));
    }
}

async fn step<F, Fut>(name: &str, f: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    eprintln!("e2e: step {name}");
    f().await.with_context(|| format!("step \"{name}\""))
}

/// The two tests take turns (see the file's header).
static BROWSERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a browser test needs: the tools, the built UI and gateway, a fresh output
/// directory and a directory for Chromium profiles, removed when dropped.
struct Setup {
    dist: PathBuf,
    local_bin: PathBuf,
    chromedriver: PathBuf,
    chromium: PathBuf,
    out: PathBuf,
    profiles: PathBuf,
}

impl Setup {
    /// `out` is the output directory under the workspace; `name` tells the test's
    /// profiles apart.
    fn new(out: &str, name: &str) -> Result<Setup> {
        let root = workspace_root();
        let setup = Setup {
            dist: env_path("WEBCHAT_DIST", root.join("dist")),
            local_bin: env_path("WEBCHAT_LOCAL_BIN", root.join("target/debug/webchat-local")),
            chromedriver: env_path("CHROMEDRIVER", PathBuf::from("/usr/bin/chromedriver")),
            chromium: env_path("CHROMIUM", PathBuf::from("/usr/bin/chromium")),
            out: root.join(out),
            profiles: std::env::temp_dir().join(format!("webchat-{name}-{}", std::process::id())),
        };
        require(&setup.chromedriver, "chromedriver");
        require(&setup.chromium, "Chromium");
        require(
            &setup.dist.join("index.html"),
            "the built UI (dist/index.html)",
        );
        require(&setup.local_bin, "the webchat-local binary");
        let axe = axe_path();
        if !axe.is_file() {
            missing_prerequisite(&format!(
                "axe-core not found at {}: run `cargo xtask test` (installs it into \
                 .tools/axe-core), or `npm install --prefix .tools/axe-core axe-core@4` at the \
                 workspace root, or set WEBCHAT_AXE to an axe.min.js",
                axe.display()
            ));
        }
        let _ = fs::remove_dir_all(&setup.out);
        fs::create_dir_all(&setup.out)?;
        Ok(setup)
    }

    fn gateway_log(&self) -> PathBuf {
        self.out.join("webchat-local.log")
    }

    async fn open(&self, driver: &Driver, name: &'static str, profile: &str) -> Result<User> {
        User::open(
            driver,
            name,
            &self.chromium,
            &self.profiles.join(profile),
            (1100, 760),
        )
        .await
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.profiles);
    }
}

/// Whether the page still shows `index.html`'s placeholder join form.
const PLACEHOLDER_SHOWN_JS: &str = "return document.querySelector('[data-placeholder]') !== null;";

/// Holds the app back until the test calls `window.releaseApp()`: copies `dist` to `to`
/// with its loader (trunk's module script) waiting before it starts the wasm.
fn hold_app(dist: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(dist)? {
        let entry = entry?;
        fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    // webchat-local would serve the precompressed pages, which still start the app.
    for compressed in ["index.html.br", "index.html.gz"] {
        let _ = fs::remove_file(to.join(compressed));
    }
    let index = fs::read_to_string(dist.join("index.html"))?;
    let start = "const wasm = await init(";
    if !index.contains(start) {
        bail!("dist/index.html has no `{start}`: trunk's loader changed; update this test");
    }
    let held = index.replacen(
        start,
        &format!("await new Promise((resolve) => {{ window.releaseApp = resolve; }});\n{start}"),
        1,
    );
    fs::write(to.join("index.html"), held)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_typed_before_the_app_runs_joins_once_it_runs() -> Result<()> {
    let _turn = BROWSERS.lock().await;
    let setup = Setup::new("target/e2e-placeholder", "e2e-placeholder")?;
    let held = setup.out.join("dist-held");
    hold_app(&setup.dist, &held)?;
    let gateway = Gateway::start(
        &setup.local_bin,
        &held,
        "127.0.0.1:0",
        &setup.gateway_log(),
        None,
    )?;
    let driver = Driver::start(
        &setup.chromedriver,
        Some(&setup.out.join("chromedriver.log")),
    )?;
    let dana = setup.open(&driver, "dana", "dana").await?;
    let result = async {
        dana.client.goto(&gateway.page_url()).await?;
        step(
            "the form shows and takes a Join before the app runs",
            || async {
                let shown = dana
                    .client
                    .execute(PLACEHOLDER_SHOWN_JS, Vec::new())
                    .await?;
                if shown.as_bool() != Some(true) {
                    bail!("the page shows no placeholder join form while the app is held back");
                }
                check_accessibility(&dana, "join screen before the app runs").await?;
                let input = dana
                    .client
                    .find(Locator::Css("[data-testid=name-input]"))
                    .await?;
                input.send_keys("dana").await?;
                let button = dana
                    .client
                    .find(Locator::Css("[data-testid=join-button]"))
                    .await?;
                button.click().await?;
                let label = button.text().await?;
                if label != "Joining…" || button.attr("disabled").await?.is_none() {
                    bail!("after Join the button reads {label:?} and is not disabled");
                }
                Ok(())
            },
        )
        .await?;
        step("the app runs and joins with the name typed", || async {
            dana.client
                .execute("window.releaseApp();", Vec::new())
                .await?;
            dana.wait_for("the chat screen as dana", WAIT, |v| {
                (v.screen == "chat"
                    && v.me.as_deref() == Some("dana")
                    && v.status.as_deref() == Some("online"))
                .then_some(())
            })
            .await?;
            let shown = dana
                .client
                .execute(PLACEHOLDER_SHOWN_JS, Vec::new())
                .await?;
            if shown.as_bool() != Some(false) {
                bail!("the placeholder form is still on the page beside the app");
            }
            Ok(())
        })
        .await
    }
    .await;
    if result.is_err() {
        let _ = dana.screenshot(&setup.out, "placeholder-failure.png").await;
    }
    let _ = dana.client.close().await;
    gateway.stop();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_chat_in_real_browsers() -> Result<()> {
    let _turn = BROWSERS.lock().await;
    let setup = Setup::new("target/e2e", "e2e")?;
    run(
        &setup.out,
        &setup.dist,
        &setup.local_bin,
        &setup.chromedriver,
        &setup.chromium,
        &setup.gateway_log(),
        &setup.profiles,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_users_chat_and_sign_out_in_real_browsers() -> Result<()> {
    let _turn = BROWSERS.lock().await;
    let setup = Setup::new("target/e2e-auth", "e2e-auth")?;
    let out = &setup.out;
    // The same UI as every other test: sign-in is on because config.json says so.
    let gateway = Gateway::start_with(
        &setup.local_bin,
        &setup.dist,
        "127.0.0.1:0",
        &setup.gateway_log(),
        // Tokens of 30 s: the page renews them after 15 s, so the test sees it happen.
        &["--auth", "dev", "--auth-token-lifetime", "30"],
    )?;
    let page = gateway.page_url();
    let driver = Driver::start(&setup.chromedriver, Some(&out.join("chromedriver.log")))?;
    let ana = setup.open(&driver, "ana", "ana").await?;
    let ben = setup.open(&driver, "ben", "ben").await?;

    step("sign in through the development issuer", || async {
        for user in [&ana, &ben] {
            user.client.goto(&page).await?;
            user.wait_for("the Sign in screen", WAIT, |v| {
                (v.screen == "join").then_some(())
            })
            .await?;
            // No name form: the name is the sign-in's.
            let button = user
                .client
                .wait()
                .for_element(Locator::Css("[data-testid=sign-in-button]"))
                .await?;
            let deadline = Instant::now() + WAIT;
            while !button.is_displayed().await? {
                if Instant::now() > deadline {
                    bail!("{}: the Sign in button stays hidden", user.name);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let form = user
                .client
                .find(Locator::Css("[data-testid=join-form]"))
                .await?;
            if form.is_displayed().await? {
                bail!("{}: the name form is shown with sign-in on", user.name);
            }
        }
        ana.screenshot(out, "01-sign-in-screen.png").await?;
        check_accessibility(&ana, "sign-in screen").await?;
        ana.sign_in("ana").await?;
        ana.wait_for("the chat as ana", WAIT, |v| {
            (v.status.as_deref() == Some("online") && v.me.as_deref() == Some("ana")).then_some(())
        })
        .await?;
        let url = ana.client.current_url().await?;
        if url
            .query()
            .is_some_and(|q| q.contains("code=") || q.contains("state="))
        {
            bail!("the page URL still holds the sign-in's answer: {url}");
        }
        if ana.session_item("webchat.tokens").await?.is_none() {
            bail!("no tokens in sessionStorage after signing in");
        }
        ben.sign_in("ben").await?;
        ben.wait_for("the chat as ben, with ana", WAIT, |v| {
            (v.status.as_deref() == Some("online")
                && v.me.as_deref() == Some("ben")
                && v.users == ["ana"])
            .then_some(())
        })
        .await?;
        ana.wait_for("ben in the list", WAIT, |v| {
            (v.users == ["ben"]).then_some(())
        })
        .await?;
        Ok(())
    })
    .await?;

    step("signed-in users chat", || async {
        ana.say("hello from a signed-in ana").await?;
        ben.wait_for("ana's message", WAIT, |v| {
            v.has("ana", "hello from a signed-in ana").then_some(())
        })
        .await?;
        ben.say("ben here, signed in too").await?;
        ana.wait_for("ben's reply", WAIT, |v| {
            v.has("ben", "ben here, signed in too").then_some(())
        })
        .await?;
        ana.screenshot(out, "02-signed-in-chat.png").await?;
        Ok(())
    })
    .await?;

    step(
        "a private message goes to the person and is still there after a reload",
        || async {
            let text = "just for ben, kept for him";
            // Clicking a person in the list makes them the recipient.
            ana.client
                .find(Locator::Css("[data-testid=user][data-name=ben] button"))
                .await?
                .click()
                .await?;
            ana.say(text).await?;
            ana.wait_for("the private message sent", WAIT, |v| {
                v.message("ana", text)
                    .filter(|m| m.private && m.delivery == "sent")
                    .map(drop)
            })
            .await?;
            ben.wait_for("ana's private message", WAIT, |v| {
                v.message("ana", text).filter(|m| m.private).map(drop)
            })
            .await?;
            // A reload starts a new transcript: the message comes back from the pair's
            // stored conversation.
            ben.client.refresh().await?;
            ben.wait_for("the private message again after the reload", WAIT, |v| {
                (v.status.as_deref() == Some("online"))
                    .then(|| v.message("ana", text).filter(|m| m.private).map(drop))
                    .flatten()
            })
            .await?;
            ben.screenshot(out, "02-private-after-reload.png").await?;
            ana.choose_recipient("Everyone").await
        },
    )
    .await?;

    step(
        "the tokens are renewed and the socket reconnects with them",
        || async {
            let first = ana.session_item("webchat.tokens").await?;
            for user in [&ana, &ben] {
                let back = format!("Back online as {}.", user.name);
                user.wait_for("a reconnect with renewed tokens", RECONNECT_WAIT, |v| {
                    (v.system.contains(&back) && v.status.as_deref() == Some("online"))
                        .then_some(())
                })
                .await?;
            }
            if ana.session_item("webchat.tokens").await? == first {
                bail!("the tokens in sessionStorage were not renewed");
            }
            ana.say("said after renewing").await?;
            ben.wait_for("ana's message after renewing", WAIT, |v| {
                v.has("ana", "said after renewing").then_some(())
            })
            .await?;
            Ok(())
        },
    )
    .await?;

    step("sign out", || async {
        ana.client
            .find(Locator::Css("[data-testid=sign-out-button]"))
            .await?
            .click()
            .await?;
        // Signing out goes through the issuer's logout endpoint (config.json's
        // `logoutUrl`), which sends the browser back to the page.
        let deadline = Instant::now() + WAIT;
        while !fs::read_to_string(setup.gateway_log())?
            .contains(webchat_local::dev_issuer::SIGN_OUT_LOG)
        {
            if Instant::now() > deadline {
                bail!("signing out never reached the issuer's logout endpoint");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ana.client
            .wait()
            .for_element(Locator::Css("[data-testid=sign-in-button]"))
            .await?;
        let url = ana.client.current_url().await?;
        if url.as_str() != page.as_str() {
            bail!("after signing out the browser is at {url}, not back at {page}");
        }
        ana.wait_for("the Sign in screen again", WAIT, |v| {
            (v.screen == "join").then_some(())
        })
        .await?;
        if ana.session_item("webchat.tokens").await?.is_some() {
            bail!("the tokens outlived signing out");
        }
        // The socket is closed: the others see ana leave.
        ben.wait_for("ana gone from the list", WAIT, |v| {
            v.users.is_empty().then_some(())
        })
        .await?;
        ana.screenshot(out, "03-signed-out.png").await?;
        // A reload stays signed out.
        ana.client.refresh().await?;
        ana.client
            .wait()
            .for_element(Locator::Css("[data-testid=sign-in-button]"))
            .await?;
        Ok(())
    })
    .await?;

    for user in [ana, ben] {
        let _ = user.client.close().await;
    }
    gateway.stop();
    drop(driver);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_history_and_rejoining_in_real_browsers() -> Result<()> {
    let _turn = BROWSERS.lock().await;
    let setup = Setup::new("target/e2e-rooms", "e2e-rooms")?;
    let out = &setup.out;
    let dynalite = Dynalite::start();
    let store = dynalite.endpoint();
    let mut gateway = Gateway::start(
        &setup.local_bin,
        &setup.dist,
        "127.0.0.1:0",
        &setup.gateway_log(),
        Some(&store),
    )?;
    let addr = gateway.addr.clone();
    let page = gateway.page_url();
    let driver = Driver::start(&setup.chromedriver, Some(&out.join("chromedriver.log")))?;
    let ana = setup.open(&driver, "ana", "ana").await?;
    let ben = setup.open(&driver, "ben", "ben").await?;
    let cid = setup.open(&driver, "cid", "cid").await?;
    let said = [
        ("ana", "hello rust"),
        ("ben", "hi ana, rust here"),
        ("ben", "said while ana looked at the lobby"),
    ];

    step("two people chat in a room other than the lobby", || async {
        for user in [&ana, &ben] {
            user.client.goto(&page).await?;
            user.join(user.name).await?;
            user.wait_for("the chat", WAIT, |v| {
                (v.status.as_deref() == Some("online") && v.room_names() == ["lobby"]).then_some(())
            })
            .await?;
        }
        // Room names are lower-cased, as the server does.
        ana.join_room("Rust").await?;
        ana.wait_for("#rust shown", WAIT, |v| {
            (v.room_names() == ["lobby", "rust"] && v.room() == Some("rust")).then_some(())
        })
        .await?;
        ben.join_room("rust").await?;
        ben.wait_for("ana among #rust's members", WAIT, |v| {
            (v.room() == Some("rust") && v.users == ["ana"]).then_some(())
        })
        .await?;
        ana.wait_for("ben among #rust's members", WAIT, |v| {
            (v.users == ["ben"]).then_some(())
        })
        .await?;
        ana.say(said[0].1).await?;
        ben.wait_for("ana's message in #rust", WAIT, |v| {
            v.has(said[0].0, said[0].1).then_some(())
        })
        .await?;
        ben.say(said[1].1).await?;
        ana.wait_for("ben's reply in #rust", WAIT, |v| {
            v.has(said[1].0, said[1].1).then_some(())
        })
        .await?;
        ana.screenshot(out, "01-room-chat.png").await?;
        check_accessibility(&ana, "chat screen of a room with two people").await?;

        // The lobby has none of it; a message in #rust meanwhile shows as unread.
        ana.show_room("lobby").await?;
        ana.wait_for("the lobby without #rust's messages", WAIT, |v| {
            (v.room() == Some("lobby") && v.messages.is_empty()).then_some(())
        })
        .await?;
        ben.say(said[2].1).await?;
        ana.wait_for("one unread in #rust", WAIT, |v| {
            (v.unread("rust") == Some(1)).then_some(())
        })
        .await?;
        ana.screenshot(out, "02-unread.png").await?;
        ana.show_room("rust").await?;
        ana.wait_for("#rust read", WAIT, |v| {
            (v.unread("rust") == Some(0) && v.has(said[2].0, said[2].1)).then_some(())
        })
        .await?;

        ana.join_room("no spaces!").await?;
        let view = ana
            .wait_for("the room name refused", WAIT, |v| {
                (!v.room_error.is_empty()).then(|| v.clone())
            })
            .await?;
        if view.room_names() != ["lobby", "rust"] {
            bail!("a refused room name changed the list: {:?}", view.rooms);
        }
        ana.screenshot(out, "03-bad-room-name.png").await
    })
    .await?;

    step(
        "a third person joins the room and sees its last messages",
        || async {
            cid.client.goto(&page).await?;
            cid.join("cid").await?;
            cid.wait_for("the chat", WAIT, |v| {
                (v.status.as_deref() == Some("online")).then_some(())
            })
            .await?;
            cid.join_room("rust").await?;
            cid.wait_for("#rust's history and members", WAIT, |v| {
                (v.room() == Some("rust")
                    && v.texts() == said.map(|(_, text)| text)
                    && v.sorted_users() == ["ana", "ben"])
                .then_some(())
            })
            .await?;
            ana.wait_for("cid among #rust's members", WAIT, |v| {
                (v.sorted_users() == ["ben", "cid"]).then_some(())
            })
            .await?;
            cid.screenshot(out, "04-history-on-join.png").await
        },
    )
    .await?;

    step(
        "a reload keeps the rooms and shows their history",
        || async {
            cid.client.refresh().await?;
            cid.wait_for("back in the chat as cid, in #rust", WAIT, |v| {
                (v.screen == "chat"
                    && v.status.as_deref() == Some("online")
                    && v.me.as_deref() == Some("cid")
                    && v.room_names() == ["lobby", "rust"])
                .then_some(())
            })
            .await?;
            cid.show_room("rust").await?;
            cid.wait_for("#rust's messages, once each", WAIT, |v| {
                (v.texts() == said.map(|(_, text)| text)).then_some(())
            })
            .await?;
            cid.screenshot(out, "05-after-reload.png").await
        },
    )
    .await?;

    step(
        "scrolling to the top of a room brings its older messages",
        || async {
            // Written over a plain socket: sixty messages by hand would take the browser a while.
            let mut writer =
                webchat_testkit::Client::join(&format!("ws://{addr}/Prod"), "writer").await?;
            writer
                .request(json!({"action": "join", "room": "paging", "requestId": "j"}))
                .await?;
            let lines: Vec<String> = (1..=60).map(|i| format!("line {i:02}")).collect();
            for (i, line) in lines.iter().enumerate() {
                loop {
                    let reply = writer
                        .request(json!({
                            "action": "message", "room": "paging", "message": line,
                            "requestId": format!("m{i}"),
                        }))
                        .await?;
                    if reply["action"] == "sent" {
                        break;
                    }
                    // Over the rate limit: wait as told, then send it again.
                    let wait = reply["retryAfterMs"]
                        .as_u64()
                        .with_context(|| format!("neither sent nor rate_limited: {reply}"))?;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
            writer.close().await;
            cid.join_room("paging").await?;
            cid.wait_for("the newest 50 lines", WAIT, |v| {
                (v.room() == Some("paging") && v.texts() == lines[10..]).then_some(())
            })
            .await?;
            cid.client
                .execute(
                    "document.querySelector('[data-testid=transcript]').scrollTop = 0;",
                    Vec::new(),
                )
                .await?;
            cid.wait_for("all 60 lines, once each, in order", WAIT, |v| {
                (v.texts() == lines).then_some(())
            })
            .await?;
            cid.screenshot(out, "06-older-page.png").await?;
            cid.show_room("rust").await
        },
    )
    .await?;

    let gap = ["said in the gap", "and once more in the gap"];
    step(
        "a page whose connection drops fills the gap once it is back, under a divider",
        || async {
            let url = format!("ws://{addr}/Prod");
            let mut writer = webchat_testkit::Client::join(&url, "gap-writer").await?;
            writer
                .request(serde_json::json!({"action":"join","room":"rust","requestId":"j"}))
                .await?;
            let members = writer
                .request(serde_json::json!({"action":"list","room":"rust","requestId":"l"}))
                .await?;
            let ana_id = members["users"]
                .as_array()
                .and_then(|users| users.iter().find(|u| u["userName"] == "ana"))
                .and_then(|u| u["connectionId"].as_str())
                .context("ana is in #rust")?
                .to_string();
            let seen_before = ana.view().await?.texts().len();
            // API Gateway may drop any socket (network change, its 2-hour limit): here
            // through the management API, as a Lambda would.
            webchat_testkit::management_client(
                &format!("http://{addr}/Prod"),
                webchat_local::AccessKey::development().credentials(),
                webchat_local::DEFAULT_REGION,
            )
            .delete_connection()
            .connection_id(&ana_id)
            .send()
            .await
            .context("DeleteConnection of ana's page")?;
            // Said before the page's first reconnect attempt: only history can bring these.
            for text in gap {
                writer
                    .request(serde_json::json!({"action":"message","room":"rust","message":text,"requestId":"g"}))
                    .await?;
            }
            ana.wait_for("the gap filled once, under one divider", RECONNECT_WAIT, |v| {
                let texts = v.texts();
                (v.status.as_deref() == Some("online")
                    && texts.len() == seen_before + gap.len()
                    && texts[seen_before..] == gap
                    && v.away_dividers == 1)
                    .then_some(())
            })
            .await?;
            ana.screenshot(out, "06b-gap-filled.png").await?;
            writer.close().await;
            Ok(())
        },
    )
    .await?;

    let away = [
        ("ana", "said while ben was away"),
        ("cid", "also while ben was away"),
    ];
    step(
        "the gateway restarts while a page is closed; back, that person sees what was said meanwhile",
        || async {
            // Closing the window drops its socket at once (a page left for another URL
            // may keep it open in the back/forward cache).
            ben.client.clone().close().await?;
            ana.wait_for("ben gone from #rust", WAIT, |v| {
                (v.users == ["cid"]).then_some(())
            })
            .await?;
            gateway_stop(&mut gateway);
            for user in [&ana, &cid] {
                user.wait_for("the connection to drop", WAIT, |v| {
                    (v.status.as_deref() != Some("online")).then_some(())
                })
                .await?;
            }
            gateway = Gateway::restart_on(
                &setup.local_bin,
                &setup.dist,
                &addr,
                &setup.gateway_log(),
                Some(&store),
            )?;
            for (user, other) in [(&ana, "cid"), (&cid, "ana")] {
                user.wait_for("online again, back in #rust", RECONNECT_WAIT, |v| {
                    (v.status.as_deref() == Some("online")
                        && v.room() == Some("rust")
                        && v.users == [other])
                        .then_some(())
                })
                .await?;
            }
            // As people do, talk a moment after coming back: each page first asks for
            // what it missed, and a message that overtook its own push into that answer
            // is (rightly) shown under "while you were away".
            tokio::time::sleep(Duration::from_secs(2)).await;
            ana.say(away[0].1).await?;
            cid.say(away[1].1).await?;
            let all: Vec<&str> = said
                .iter()
                .map(|(_, text)| *text)
                .chain(gap)
                .chain(away.iter().map(|(_, text)| *text))
                .collect();
            // Nothing was said while they were reconnecting: no new "while you were away"
            // (ana keeps the one from the gap before).
            for (user, dividers) in [(&ana, 1), (&cid, 0)] {
                user.wait_for("every message once, in order", WAIT, |v| {
                    (v.texts() == all && v.away_dividers == dividers).then_some(())
                })
                .await?;
            }
            let ben = setup.open(&driver, "ben", "ben-again").await?;
            ben.client.goto(&page).await?;
            ben.join("ben").await?;
            ben.wait_for("the chat", WAIT, |v| {
                (v.status.as_deref() == Some("online")).then_some(())
            })
            .await?;
            ben.join_room("rust").await?;
            ben.wait_for("what was said meanwhile, once each", WAIT, |v| {
                (v.room() == Some("rust") && v.texts() == all).then_some(())
            })
            .await?;
            ben.screenshot(out, "07-back-after-restart.png").await?;
            ana.screenshot(out, "07-after-restart-ana.png").await?;
            let _ = ben.client.close().await;
            Ok(())
        },
    )
    .await?;

    for user in [ana, cid] {
        let _ = user.client.close().await;
    }
    gateway.stop();
    drop(driver);
    drop(dynalite);
    Ok(())
}

async fn run(
    out: &Path,
    dist: &Path,
    local_bin: &Path,
    chromedriver: &Path,
    chromium: &Path,
    gateway_log: &Path,
    profiles: &Path,
) -> Result<()> {
    let mut gateway = Gateway::start(local_bin, dist, "127.0.0.1:0", gateway_log, None)?;
    let addr = gateway.addr.clone();
    let page = gateway.page_url();
    let driver = Driver::start(chromedriver, Some(&out.join("chromedriver.log")))?;

    let alice = User::open(
        &driver,
        "alice",
        chromium,
        &profiles.join("alice"),
        (1100, 760),
    )
    .await?;
    let bob = User::open(&driver, "bob", chromium, &profiles.join("bob"), (1100, 760)).await?;
    // carol is on a phone-sized window.
    let carol = User::open(
        &driver,
        "carol",
        chromium,
        &profiles.join("carol"),
        (390, 800),
    )
    .await?;
    let users = [&alice, &bob, &carol];
    for user in users {
        user.client.goto(&page).await?;
    }

    step("join and see each other", || async {
        alice
            .wait_for("the join screen", WAIT, |v| {
                (v.screen == "join").then_some(())
            })
            .await?;
        alice.screenshot(out, "01-join-screen.png").await?;
        check_accessibility(&alice, "join screen").await?;
        alice.join("alice").await?;
        alice
            .wait_for("the chat screen", WAIT, |v| {
                (v.screen == "chat" && v.status.as_deref() == Some("online")).then_some(())
            })
            .await?;
        bob.join("bob").await?;
        bob.wait_for("alice in the list", WAIT, |v| {
            (v.users == ["alice"]).then_some(())
        })
        .await?;
        alice
            .wait_for("bob in the list", WAIT, |v| {
                (v.users == ["bob"]).then_some(())
            })
            .await?;
        let me = alice.view().await?.me;
        if me.as_deref() != Some("alice") {
            bail!("header shows {me:?}, expected \"online as alice\"");
        }
        alice.screenshot(out, "02-joined.png").await
    })
    .await?;

    step("a taken name shows the server's error", || async {
        carol.join("alice").await?;
        let error = carol
            .wait_for("the join error", WAIT, |v| {
                (v.screen == "join" && !v.join_error.trim().is_empty())
                    .then(|| v.join_error.clone())
            })
            .await?;
        eprintln!("e2e: join error shown: {error:?}");
        carol.screenshot(out, "03-name-taken.png").await?;
        carol.join("carol").await?;
        for (user, others) in [
            (&alice, ["bob", "carol"]),
            (&bob, ["alice", "carol"]),
            (&carol, ["alice", "bob"]),
        ] {
            user.wait_for("the other two in the list", WAIT, |v| {
                (v.screen == "chat" && v.sorted_users() == others).then_some(())
            })
            .await?;
        }
        carol.screenshot(out, "04-three-joined-narrow.png").await
    })
    .await?;

    step("messages both ways with sender names", || async {
        alice.say("Hello from alice").await?;
        bob.wait_for("alice's message", WAIT, |v| {
            v.has("alice", "Hello from alice").then_some(())
        })
        .await?;
        carol
            .wait_for("alice's message", WAIT, |v| {
                v.has("alice", "Hello from alice").then_some(())
            })
            .await?;
        let own = alice
            .wait_for("the sent ack", WAIT, |v| {
                v.message("alice", "Hello from alice")
                    .filter(|m| m.own && m.delivery == "sent")
                    .cloned()
            })
            .await?;
        if !own.title.contains("delivered to 2") {
            bail!(
                "own message title {:?} should give the delivered count 2",
                own.title
            );
        }
        // Shift+Enter adds a line; the Send button sends.
        bob.type_message(&format!(
            "Hi alice,{}{}{}bob here",
            char::from(Key::Shift),
            char::from(Key::Enter),
            char::from(Key::Shift)
        ))
        .await?;
        bob.click_send().await?;
        alice
            .wait_for("bob's two-line reply", WAIT, |v| {
                v.has("bob", "Hi alice,\nbob here").then_some(())
            })
            .await?;
        // Blank text is not sent.
        bob.type_message(&format!("   {}", char::from(Key::Enter)))
            .await?;
        alice.screenshot(out, "05-messages.png").await?;
        bob.screenshot(out, "05-messages-bob.png").await
    })
    .await?;

    step("a private message reaches only its target", || async {
        alice.choose_recipient("bob (private)").await?;
        alice.say("secret for bob").await?;
        let private = bob
            .wait_for("the private message", WAIT, |v| {
                v.message("alice", "secret for bob").cloned()
            })
            .await?;
        if !private.private {
            bail!("bob's copy of the private message is not marked private: {private:?}");
        }
        alice.choose_recipient("Everyone").await?;
        alice.say("public after secret").await?;
        // Frames arrive in order: once carol has the later public message, the private
        // one would have arrived before it.
        let view = carol
            .wait_for("the public message", WAIT, |v| {
                v.has("alice", "public after secret").then(|| v.clone())
            })
            .await?;
        if view
            .messages
            .iter()
            .any(|m| m.text.contains("secret for bob"))
        {
            bail!("carol received the private message: {:#?}", view.messages);
        }
        if alice
            .view()
            .await?
            .message("alice", "secret for bob")
            .is_none_or(|m| !m.private)
        {
            bail!("alice's own private message is not marked private");
        }
        bob.screenshot(out, "06-private-bob.png").await?;
        carol.screenshot(out, "06-private-carol.png").await
    })
    .await?;

    step("markup shows as text and runs nothing", || async {
        carol.say(XSS).await?;
        for user in [&alice, &bob] {
            user.wait_for("the markup as text", WAIT, |v| {
                v.has("carol", XSS).then_some(())
            })
            .await?;
        }
        // Give a broken image's onerror time to fire, were it an element.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for user in users {
            let view = user.view().await?;
            if view.xss != "undefined" || view.transcript_imgs != 0 {
                bail!(
                    "{}: window.__xss is {} and the transcript has {} <img>",
                    user.name,
                    view.xss,
                    view.transcript_imgs
                );
            }
        }
        alice.screenshot(out, "07-markup-as-text.png").await
    })
    .await?;

    step(
        "the gateway restarts and the pages reconnect by themselves",
        || async {
            gateway_stop(&mut gateway);
            for user in users {
                user.wait_for("the connection to drop", WAIT, |v| {
                    (v.screen == "chat" && v.status.as_deref() != Some("online")).then_some(())
                })
                .await?;
            }
            alice.screenshot(out, "08-reconnecting.png").await?;
            gateway = Gateway::restart_on(local_bin, dist, &addr, gateway_log, None)?;
            for (user, others) in [
                (&alice, ["bob", "carol"]),
                (&bob, ["alice", "carol"]),
                (&carol, ["alice", "bob"]),
            ] {
                user.wait_for("online again with the others listed", RECONNECT_WAIT, |v| {
                    (v.screen == "chat"
                        && v.status.as_deref() == Some("online")
                        && v.me.as_deref() == Some(user.name)
                        && v.sorted_users() == others)
                        .then_some(())
                })
                .await?;
            }
            let system = alice.view().await?.system;
            if !system
                .iter()
                .any(|line| line.starts_with("Back online as alice"))
            {
                bail!("alice's transcript does not say she is back online: {system:?}");
            }
            bob.say("bob is back").await?;
            for user in [&alice, &carol] {
                user.wait_for("bob's message after the restart", WAIT, |v| {
                    v.has("bob", "bob is back").then_some(())
                })
                .await?;
            }
            alice.say("alice too").await?;
            bob.wait_for("alice's message after the restart", WAIT, |v| {
                v.has("alice", "alice too").then_some(())
            })
            .await?;
            alice.screenshot(out, "09-reconnected.png").await?;
            carol.screenshot(out, "09-reconnected-carol.png").await
        },
    )
    .await?;

    for user in [alice, bob, carol] {
        let _ = user.client.close().await;
    }
    gateway.stop();
    drop(driver);
    Ok(())
}

/// Stops the gateway abruptly, as a crash or redeploy would.
fn gateway_stop(gateway: &mut Gateway) {
    gateway.process.kill();
}
