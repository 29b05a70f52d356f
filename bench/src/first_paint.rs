//! First paint: the time from navigation to the join form being interactive, in headless
//! Chromium (Debian's, over its chromedriver) on the release UI as `webchat-local` serves
//! it on 127.0.0.1.
//!
//! Every run is a new browser with an empty profile, so nothing comes from a cache: the
//! figure is a first visit's download, compile and mount. The clock is the page's own
//! (`performance.now()`, zero at navigation start); a `MutationObserver` in the page notes
//! the moment the form is there with its button enabled, so WebDriver round trips do not
//! count.

use crate::local::LocalGateway;
use anyhow::{bail, Context, Result};
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

/// Resolves once the join form is interactive; returns `performance.now()` at that moment,
/// or null while the browser is not yet on the page (`arguments[0]`).
const READY_JS: &str = r"
const done = arguments[arguments.length - 1];
if (location.href !== arguments[0]) { done(null); return; }
const ready = () => {
  const input = document.querySelector('[data-testid=name-input]');
  const button = document.querySelector('[data-testid=join-button]');
  return input !== null && button !== null && !button.disabled;
};
if (ready()) { done(performance.now()); return; }
new MutationObserver((_, observer) => {
  if (ready()) { observer.disconnect(); done(performance.now()); }
}).observe(document, { childList: true, subtree: true, attributes: true });
";

/// One cold visit: a new browser with an empty profile opens `page`; milliseconds from
/// navigation start to the join form being interactive.
async fn visit(driver: &Driver, chromium: &Path, profile: &Path, page: &str) -> Result<f64> {
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
        client.goto(page).await?;
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = client.execute_async(READY_JS, vec![json!(page)]).await?;
            if let Some(ms) = ready.as_f64() {
                return Ok(ms);
            }
            if Instant::now() > deadline {
                bail!("the join form was not interactive within {WAIT:?}");
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

/// The figure's runs, sorted: [`RUNS`] cold visits of the UI in `dist`.
pub(crate) async fn measure(local_bin: &Path, dist: &Path, browser: &Browser) -> Result<Vec<f64>> {
    let [mut times] = interleaved(local_bin, [dist], RUNS, browser).await?;
    times.sort_by(f64::total_cmp);
    Ok(times)
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
) -> Result<[Vec<f64>; 2]> {
    interleaved(local_bin, [old, new], rounds, browser).await
}

/// `rounds` cold visits of each UI in `dists`, in rounds of one visit each, the order
/// rotating from round to round; each UI's runs in the order of the rounds.
async fn interleaved<const N: usize>(
    local_bin: &Path,
    dists: [&Path; N],
    rounds: usize,
    browser: &Browser,
) -> Result<[Vec<f64>; N]> {
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
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    let mut outcome = Ok(());
    'rounds: for round in 0..rounds {
        for turn in 0..N {
            let which = (round + turn) % N;
            let profile = profiles.join(format!("{round}-{which}"));
            std::fs::create_dir_all(&profile)?;
            match visit(&driver, &browser.chromium, &profile, &pages[which]).await {
                Ok(ms) => {
                    let label = if N == 1 {
                        String::new()
                    } else {
                        format!(" ({})", dists[which].display())
                    };
                    println!("    run {}{label}: {ms:.1} ms", round + 1);
                    times[which].push(ms);
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
