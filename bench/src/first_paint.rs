//! First paint: the time from navigation to the join form being interactive, in headless
//! Chromium (Debian's, over its chromedriver) on the release UI as `webchat-local` serves
//! it on 127.0.0.1, and the time until the app itself runs (until then the form is the
//! page's placeholder, which takes typing and keeps a Join for the app).
//!
//! Every run is a new browser with an empty profile, so nothing comes from a cache: the
//! figure is a first visit's download, compile and mount. The clock is the page's own
//! (`performance.now()`, zero at navigation start); a `MutationObserver` in the page notes
//! the moment the form is there with its button enabled, so WebDriver round trips do not
//! count; it is installed before the page's own scripts run, so it sees a form that is in
//! the page from the start.

use crate::local::LocalGateway;
use anyhow::{bail, Context, Result};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use webchat_testkit::chromium::Driver;

pub(crate) const RUNS: usize = 5;
const WAIT: Duration = Duration::from_secs(30);

/// Where the browser comes from: `CHROMEDRIVER` and `CHROMIUM`, else Debian's paths
/// (`cargo xtask test` installs them).
pub(crate) struct Browser {
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
}

impl Browser {
    pub(crate) fn from_env() -> Browser {
        let path = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Browser {
            chromedriver: path("CHROMEDRIVER", "/usr/bin/chromedriver"),
            chromium: path("CHROMIUM", "/usr/bin/chromium"),
        }
    }

    /// Why the figure cannot be measured here, if it cannot.
    pub(crate) fn missing(&self) -> Option<String> {
        [&self.chromedriver, &self.chromium]
            .into_iter()
            .find(|path| !path.is_file())
            .map(|path| format!("no {}", path.display()))
    }
}

/// The two moments of one visit, in `performance.now()` milliseconds from navigation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Visit {
    /// The join form is there with its button enabled: a person can type and press Join.
    pub form: f64,
    /// The app runs and the form is its own: the page's placeholder form, if it has one
    /// (`index.html`'s `data-placeholder`), is gone. For a UI without one, the same moment.
    pub app: f64,
}

/// The moments of a [`Visit`], as the bench names them; [`Visit::at`] reads them.
pub(crate) const MOMENTS: [&str; 2] = [
    "first paint (an interactive join form)",
    "app running (the form is the app's)",
];

impl Visit {
    /// The moment named `MOMENTS[index]`.
    pub(crate) fn at(&self, index: usize) -> f64 {
        [self.form, self.app][index]
    }
}

/// Watches the page from before its own scripts run (Chrome's
/// `Page.addScriptToEvaluateOnNewDocument`), noting on `window.__firstPaint` when the join
/// form is first interactive and when the app's own form is, as the DOM changes.
const OBSERVER_JS: &str = r"
(() => {
  const seen = (window.__firstPaint = {});
  const formReady = () => {
    const input = document.querySelector('[data-testid=name-input]');
    const button = document.querySelector('[data-testid=join-button]');
    return input !== null && button !== null && !button.disabled;
  };
  const observer = new MutationObserver(() => {
    if (!formReady()) return;
    const now = performance.now();
    seen.form ??= now;
    if (document.querySelector('[data-placeholder]') === null) {
      seen.app = now;
      observer.disconnect();
    }
  });
  observer.observe(document, { childList: true, subtree: true, attributes: true });
})();
";

/// `[form, app]` once both moments are known and the page has painted content, else
/// null. A form is seen only once painted: neither moment is before the first contentful
/// paint (the stylesheet may still hold painting back when a form is in the page).
const READ_JS: &str = r"
const seen = window.__firstPaint;
const paint = performance.getEntriesByName('first-contentful-paint')[0];
if (location.href !== arguments[0] || !seen || seen.app === undefined || !paint) return null;
return [Math.max(seen.form, paint.startTime), Math.max(seen.app, paint.startTime)];
";

/// A Chrome `DevTools` command through chromedriver's `goog/cdp/execute`: the one way a
/// WebDriver session can run a script in a page before the page's own do.
#[derive(Debug)]
struct DevTools {
    command: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.command, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// One cold visit: a new browser with an empty profile opens `page`.
async fn visit(driver: &Driver, chromium: &Path, profile: &Path, page: &str) -> Result<Visit> {
    let caps = json!({
        // Return from navigation at once: the page itself times the start-up.
        "pageLoadStrategy": "none",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": webchat_testkit::chromium::headless_args(profile, (1100, 760)),
        }
    });
    let Value::Object(caps) = caps else {
        bail!("capabilities are an object");
    };
    let client: Client =
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .context("opening a Chromium session")?;
    let result = async {
        client
            .issue_cmd(DevTools {
                command: "Page.addScriptToEvaluateOnNewDocument",
                params: json!({ "source": OBSERVER_JS }),
            })
            .await
            .context("installing the page observer over chromedriver's DevTools command")?;
        client.goto(page).await?;
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = client.execute(READ_JS, vec![json!(page)]).await?;
            if let [Some(form), Some(app)] = [0, 1].map(|i| ready.get(i).and_then(Value::as_f64)) {
                return Ok(Visit { form, app });
            }
            if Instant::now() > deadline {
                bail!("the app's join form was not interactive within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    .await;
    let _ = client.close().await;
    result
}

fn check_built(dist: &Path) -> Result<()> {
    if !dist.join("index.html").is_file() {
        bail!(
            "{} has no built UI; run `trunk build --release`",
            dist.display()
        );
    }
    Ok(())
}

/// [`RUNS`] cold visits of the UI in `dist`.
pub(crate) async fn measure(
    local_bin: &Path,
    dist: &Path,
    browser: &Browser,
) -> Result<Vec<Visit>> {
    let [visits] = interleaved(local_bin, [dist], RUNS, browser).await?;
    Ok(visits)
}

/// Two builds of the UI measured in one run, so that both see the same machine: `rounds`
/// cold visits of each, interleaved (one of each per round, which goes first alternating),
/// each build served by its own `webchat-local` of the same binary. Returns the runs of
/// `old` and of `new`, each in the order of the rounds.
pub(crate) async fn measure_paired(
    local_bin: &Path,
    old: &Path,
    new: &Path,
    rounds: usize,
    browser: &Browser,
) -> Result<[Vec<Visit>; 2]> {
    interleaved(local_bin, [old, new], rounds, browser).await
}

/// `rounds` cold visits of each UI in `dists`, in rounds of one visit each, the order
/// rotating from round to round; each UI's runs in the order of the rounds.
async fn interleaved<const N: usize>(
    local_bin: &Path,
    dists: [&Path; N],
    rounds: usize,
    browser: &Browser,
) -> Result<[Vec<Visit>; N]> {
    for dist in dists {
        check_built(dist)?;
    }
    let gateways = dists
        .iter()
        .map(|dist| LocalGateway::serving(local_bin, dist))
        .collect::<Result<Vec<_>>>()?;
    let pages: Vec<String> = gateways.iter().map(LocalGateway::page_url).collect();
    let driver = Driver::start(&browser.chromedriver, None)?;
    let profiles = std::env::temp_dir().join(format!("webchat-first-paint-{}", std::process::id()));
    let mut times: [Vec<Visit>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    let mut outcome = Ok(());
    'rounds: for round in 0..rounds {
        for turn in 0..N {
            let which = (round + turn) % N;
            let profile = profiles.join(format!("{round}-{which}"));
            std::fs::create_dir_all(&profile)?;
            match visit(&driver, &browser.chromium, &profile, &pages[which]).await {
                Ok(visit) => {
                    let label = if N == 1 {
                        String::new()
                    } else {
                        format!(" ({})", dists[which].display())
                    };
                    println!(
                        "    run {}{label}: form {:.1} ms, app {:.1} ms",
                        round + 1,
                        visit.form,
                        visit.app
                    );
                    times[which].push(visit);
                }
                Err(err) => {
                    outcome = Err(err.context(format!(
                        "first paint of {}, run {}",
                        dists[which].display(),
                        round + 1
                    )));
                    break 'rounds;
                }
            }
        }
    }
    drop(driver);
    drop(gateways);
    let _ = std::fs::remove_dir_all(&profiles);
    outcome?;
    Ok(times)
}
