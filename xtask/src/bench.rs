//! `cargo xtask bench`: builds the release binaries, the arm64 Lambda zip and the
//! release UI, runs `webchat-bench` (which writes `target/bench/results.json`), and puts
//! the figures in the README between `<!-- bench:start -->` and `<!-- bench:end -->`,
//! with the date and the machine.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime};

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

/// `extra` goes to `webchat-bench` as it is (`--paired-dist OLD_DIST`, `--only …`).
pub(crate) fn run(root: &Path, extra: &[String]) -> Result<()> {
    let started = Instant::now();
    let mut build = crate::tools::cargo(root);
    build.args([
        "build",
        "--release",
        "-p",
        "webchat-local",
        "-p",
        "webchat-backend",
        "-p",
        "webchat-bench",
        "--bins",
    ]);
    crate::tools::step(
        "release build of webchat-local, webchat-lambda and webchat-bench \
         (fat LTO, codegen-units=1: several minutes on 2 cores)",
        build,
    )?;
    // Sizes are of what this checkout builds now, not of whatever an earlier build left.
    crate::lambdas::build_lambdas(root)?;
    // Template mode's figures run the same binaries built for this machine.
    crate::lambdas::build_host_lambdas(root, true)?;
    crate::ui::ensure_ui_tools(root)?;
    crate::ui::build_ui(root, true)?;

    let results = root.join("target/bench/results.json");
    let status = Command::new(root.join("target/release/webchat-bench"))
        .arg("--root")
        .arg(root)
        .arg("--out")
        .arg(&results)
        .args(extra)
        .current_dir(root)
        .status()
        .context("starting target/release/webchat-bench")?;
    if !status.success() {
        bail!("webchat-bench failed ({status}); see its output above");
    }

    let text = std::fs::read_to_string(&results)
        .with_context(|| format!("reading {}", results.display()))?;
    let figures: Vec<serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", results.display()))?;
    let section = readme_section(&figures, &today(), &machine(), extra);

    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).context("reading README.md")?;
    match replace_between_markers(&readme, &section) {
        Some(updated) => {
            if updated != readme {
                std::fs::write(&readme_path, updated).context("writing README.md")?;
            }
            println!("xtask: bench: README.md table updated");
        }
        None => println!(
            "xtask: bench: README.md has no `{START}` … `{END}` markers; table not written:\n\n{section}"
        ),
    }
    println!(
        "xtask: bench: done in {:.0} s; figures in {}",
        started.elapsed().as_secs_f64(),
        results.strip_prefix(root).unwrap_or(&results).display()
    );
    Ok(())
}

/// The README text between the markers: a table and the line saying where it ran.
fn readme_section(
    figures: &[serde_json::Value],
    date: &str,
    machine: &str,
    extra: &[String],
) -> String {
    let mut out = String::from("| figure | value | goal | meets |\n|---|---:|---|:---:|\n");
    for figure in figures {
        let text = |key: &str| match &figure[key] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let unit = text("unit");
        let with_unit = |value: String| {
            if value.is_empty() || unit.is_empty() {
                value
            } else {
                format!("{value} {unit}")
            }
        };
        // "not built", "failed: …": no unit after words.
        let value = if figure["value"].is_string() {
            text("value")
        } else {
            with_unit(text("value"))
        };
        let meets = match figure["meets"].as_bool() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {} | {meets} |",
            text("name").replace('|', "\\|"),
            value.replace('|', "\\|"),
            with_unit(text("goal")),
        );
    }
    let command = std::iter::once("cargo xtask bench")
        .chain(extra.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(
        out,
        "\nMeasured {date} on {machine} with `{command}` (release builds; \
         `webchat-local` as a child process, clients on 127.0.0.1)."
    );
    out
}

/// Replaces what lies between the markers; `None` when they are missing or out of order.
fn replace_between_markers(readme: &str, section: &str) -> Option<String> {
    let start = readme.find(START)? + START.len();
    let end = start + readme[start..].find(END)?;
    Some(format!(
        "{}\n{}{}",
        &readme[..start],
        section,
        &readme[end..]
    ))
}

/// `nproc` cores, the CPU model and the memory, from /proc.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(
            || "unknown CPU".to_string(),
            |(_, m)| m.split_whitespace().collect::<Vec<_>>().join(" "),
        );
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!(", {:.0} GiB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cores} cores ({model}){memory}")
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    date_of(SystemTime::now())
}

fn date_of(time: SystemTime) -> String {
    // RFC 3339 starts with the date: "2025-11-28T12:00:00Z".
    let mut stamp = humantime::format_rfc3339_seconds(time).to_string();
    stamp.truncate("YYYY-MM-DD".len());
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_are_utc_days() {
        let day = |days: u64| UNIX_EPOCH + Duration::from_secs(days * 86_400);
        assert_eq!(date_of(day(0)), "1970-01-01");
        assert_eq!(date_of(day(20_420)), "2025-11-28");
        assert_eq!(date_of(day(11_016)), "2000-02-29");
        // The last second of a day is still that day.
        assert_eq!(date_of(day(20_421) - Duration::from_secs(1)), "2025-11-28");
    }

    #[test]
    fn the_section_goes_between_the_markers() {
        let readme = "a\n<!-- bench:start -->\nold\n<!-- bench:end -->\nb\n";
        let updated = replace_between_markers(readme, "new\n").unwrap();
        assert_eq!(
            updated,
            "a\n<!-- bench:start -->\nnew\n<!-- bench:end -->\nb\n"
        );
        assert_eq!(replace_between_markers(&updated, "new\n").unwrap(), updated);
        assert!(replace_between_markers("no markers", "x").is_none());
    }

    #[test]
    fn the_table_shows_units_goals_and_verdicts() {
        let figures: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"name":"p99","value":12.5,"unit":"ms","goal":"< 50","meets":true},
                {"name":"zip","value":"not built","unit":"MB","goal":"≤ 6","meets":null},
                {"name":"rate","value":100,"unit":"deliveries/s","goal":"≥ 50000","meets":false}]"#,
        )
        .unwrap();
        let section = readme_section(&figures, "2025-11-28", "2 cores (X)", &[]);
        assert!(
            section.contains("| p99 | 12.5 ms | < 50 ms | yes |"),
            "{section}"
        );
        assert!(
            section.contains("| zip | not built | ≤ 6 MB | – |"),
            "{section}"
        );
        assert!(
            section.contains("| rate | 100 deliveries/s | ≥ 50000 deliveries/s | **no** |"),
            "{section}"
        );
        assert!(section.contains("Measured 2025-11-28 on 2 cores (X)"));
    }
}
