//! How every headless Chromium of the project starts: the browser test and the bench's
//! first paint open their sessions with the same flags.

use std::path::Path;

/// Chromium's command line for one headless session with its own fresh `profile`
/// directory and a window of `size`. Background networking and updates are off: this
/// machine reaches no Google host, and a blocked one stalls start-up. Background tabs
/// are not throttled, so several users in one test keep their timers running.
pub fn headless_args(profile: &Path, size: (u32, u32)) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={},{}", size.0, size.1),
    ])
    .collect()
}
