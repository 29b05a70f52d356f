//! Test support shared by the webchat test suites and the bench: dynalite on a free port,
//! child processes that announce when they are ready, and one WebSocket chat client.

#![warn(missing_docs)]

pub mod chromium;
pub mod client;
mod dynalite;
pub mod http;
mod stalled;
pub use stalled::StalledReader;
pub mod process;
mod template_gateway;
pub use template_gateway::template_gateway_command;

pub use client::{join_many, Client, ClientError, Delivery, Inbox, Incoming, Seen};
pub use dynalite::{dynalite_modules, Dynalite};
pub use process::{Launch, LaunchError, Process};

mod management;
pub mod ui_bundle;
pub use management::management_client;

use std::path::{Path, PathBuf};

/// The repository root (this crate sits one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives inside the workspace")
        .to_path_buf()
}

/// Ends the test binary with one line saying what is missing and how to get it, for
/// something `cargo xtask test` installs or builds. Every later test needing it would fail
/// the same way, and skipping would report a pass no test earned.
pub fn missing_prerequisite(what: &str) -> ! {
    use std::io::Write;
    // Tests run in parallel: the first one here speaks, the others wait for the exit.
    static ONE_LINE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _only_this_thread = ONE_LINE.lock();
    // Straight to stderr: the test harness captures `eprintln!` and would drop it on exit.
    let _ = writeln!(std::io::stderr(), "{what}");
    std::process::exit(1)
}
