//! Big rooms: for rooms of 1,000, 5,000 and 10,000 members on `webchat-local`, the time
//! until a broadcast reached every member (p50, p99), through the sharded path (the
//! fan-out workers); and the SVG plot of every `big room {N}: …` row against N, beside
//! the results table, so the growth curve is seen, not inferred.

use crate::{local, measured, one_at_a_time, percentile, round, step, Figure, Goal, Options};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use webchat_testkit::{join_many, Inbox};

/// A broadcast to a 10,000-member room, every member reached.
const BROADCAST_P99_GOAL_MS: f64 = 1_000.0;
/// The members the bench puts in one room, one run each.
pub(crate) const SIZES: [usize; 3] = [1_000, 5_000, 10_000];
/// Low enough that every size above goes through the fan-out workers (the default,
/// 1,000, would push to the 1,000-member room inline).
const FANOUT_INLINE: &str = "500";
/// What every row of this part starts with; the plot reads the rows by it.
const ROW_PREFIX: &str = "big room ";
/// Each client holds one socket in the bench and one in `webchat-local`, which also
/// needs some for its management API; both processes inherit this process's limit.
const SPARE_FDS: u64 = 1_024;

/// The row `big room {members}: {what} ({unit})`.
pub(crate) fn row_name(members: usize, what: &str, unit: &str) -> String {
    format!("{ROW_PREFIX}{members}: {what} ({unit})")
}

/// The broadcast rows for each of `sizes`: the room is the lobby every client joins on
/// `register`, so it holds all of them.
pub(crate) async fn figures(
    options: &Options,
    sizes: &[usize],
    broadcasts: usize,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    raise_fd_limit_for_clients(sizes)?;
    for &members in sizes {
        step(&format!(
            "big room {members}: starting webchat-local (--fanout-inline {FANOUT_INLINE}), registering {members} clients"
        ));
        let gateway = local::LocalGateway::start_with(
            &options.local_bin,
            &["--fanout-inline".as_ref(), FANOUT_INLINE.as_ref()],
        )?;
        let inbox = Inbox::new();
        let started = Instant::now();
        let mut peers = join_many(&gateway.url, members, "big", 16, &inbox).await?;
        println!(
            "    {members} registered in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // The last announcements drain before anything is timed.
        settle(&inbox).await;
        step(&format!(
            "big room {members}: {broadcasts} broadcasts, one at a time"
        ));
        let tag = format!("big{members}");
        let timed = one_at_a_time(&mut peers, &inbox, broadcasts, &tag, None).await?;
        let goal = |p99: bool| {
            if p99 && members >= 10_000 {
                Goal::AtMost(BROADCAST_P99_GOAL_MS)
            } else {
                Goal::None
            }
        };
        for (p, name) in [(50.0, "p50"), (99.0, "p99")] {
            figures.push(measured(
                &row_name(members, &format!("broadcast {name}"), "ms"),
                round(percentile(&timed.completions, p), 1),
                "ms",
                goal(name == "p99"),
            ));
        }
        drop(gateway);
        for peer in peers {
            peer.kill().await;
        }
    }
    Ok(())
}

/// Waits until no delivery has arrived for a moment (at most 30 s).
async fn settle(inbox: &Inbox) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = inbox.count();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = inbox.count();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Room for the largest of `sizes` clients at once (see [`SPARE_FDS`]).
pub(crate) fn raise_fd_limit_for_clients(sizes: &[usize]) -> Result<()> {
    let largest = sizes.iter().copied().max().unwrap_or(0);
    raise_fd_limit(
        u64::try_from(largest)
            .unwrap_or(u64::MAX)
            .saturating_add(SPARE_FDS),
    )
}

/// Raises this process's soft limit on open files to at least `needed` (up to the hard
/// limit), or says why the bench cannot hold that many sockets.
fn raise_fd_limit(needed: u64) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max < needed {
        bail!(
            "open files: need {needed}, hard limit {} (raise it: ulimit -Hn)",
            limit.rlim_max
        );
    }
    crate::step(&format!(
        "raising the open-files soft limit from {} to {needed}",
        limit.rlim_cur
    ));
    limit.rlim_cur = needed;
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
        bail!("setrlimit: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `(members, what, value, unit)` of every `big room {N}: …` row with a number.
fn big_room_rows(figures: &[serde_json::Value]) -> Vec<(usize, String, f64, String)> {
    figures
        .iter()
        .filter_map(|figure| {
            let name = figure["name"].as_str()?;
            let (members, what) = name.strip_prefix(ROW_PREFIX)?.split_once(": ")?;
            Some((
                members.parse().ok()?,
                what.to_string(),
                figure["value"].as_f64()?,
                figure["unit"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Plots every `big room {N}: …` row of the results file `results` against N, one
/// panel per kind of row, into `svg`. Writes nothing when there are no such rows.
pub(crate) fn plot(results: &Path, svg: &Path) -> Result<bool> {
    use plotters::prelude::*;
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("reading {}", results.display()))?;
    let figures: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    let mut series: BTreeMap<String, (String, Vec<(f64, f64)>)> = BTreeMap::new();
    for (members, what, value, unit) in big_room_rows(&figures) {
        let entry = series.entry(what).or_insert_with(|| (unit, Vec::new()));
        #[allow(
            clippy::cast_precision_loss,
            reason = "member counts are far below 2^52"
        )]
        entry.1.push((members as f64, value));
    }
    if series.is_empty() {
        return Ok(false);
    }
    let panels = series.len();
    let height = u32::try_from(260 * panels).unwrap_or(u32::MAX);
    let root = SVGBackend::new(svg, (720, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = series
        .values()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(0.0, f64::max)
        * 1.05;
    for ((what, (unit, points)), area) in series.iter_mut().zip(root.split_evenly((panels, 1))) {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("big room: {what}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("members in the room")
            .x_label_formatter(&|members| format!("{members:.0}"))
            .y_desc(unit.as_str())
            .draw()?;
        chart.draw_series(LineSeries::new(points.iter().copied(), &BLUE))?;
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 4, BLUE.filled())),
        )?;
    }
    root.present()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plot_reads_every_big_room_row_by_name_and_nothing_else() {
        let figures = vec![
            json!({"name": row_name(1000, "broadcast p99", "ms"), "value": 40.0, "unit": "ms"}),
            json!({"name": row_name(10000, "broadcast p99", "ms"), "value": 400.0, "unit": "ms"}),
            json!({"name": "big room 5000: register all (s)", "value": 3.0, "unit": "s"}),
            json!({"name": "big room 5000: broadcast p50 (ms)", "value": "failed: x", "unit": "ms"}),
            json!({"name": "broadcast to 1000 clients, all delivered: p99", "value": 50.0, "unit": "ms"}),
        ];
        let rows = big_room_rows(&figures);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[2],
            (5000, "register all (s)".to_string(), 3.0, "s".into())
        );

        let dir = std::env::temp_dir().join(format!("big-rooms-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let results = dir.join("results.json");
        std::fs::write(&results, serde_json::to_string(&figures).unwrap()).unwrap();
        let svg = dir.join("big-rooms.svg");
        assert!(plot(&results, &svg).unwrap());
        let drawn = std::fs::read_to_string(&svg).unwrap();
        assert!(
            drawn.starts_with("<svg"),
            "{}",
            &drawn[..80.min(drawn.len())]
        );
        assert!(drawn.contains("register all (s)") && drawn.contains("broadcast p99 (ms)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
