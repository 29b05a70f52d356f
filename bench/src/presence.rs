//! Presence in big rooms on `webchat-local`: how long N clients take to register into one
//! lobby, and what one more arrival pushes to the N already there. Above the presence
//! limit (200 by default) an arrival is not announced one by one: the others hear only
//! the room's member count, at most every few seconds, so an arrival costs O(1) pushes
//! and registering N clients costs O(N), where announcing each arrival to everyone cost
//! N²/2 pushes (1,000 clients took 19 s to register).

use super::big_rooms::{raise_fd_limit_for_clients, row_name};
use super::{local, measured, round, step, Figure, Goal};
use anyhow::Result;
use std::path::Path;
use std::time::{Duration, Instant};
use webchat_testkit::{join_many, Client, Inbox, Incoming};

/// The room sizes of the rows.
pub(crate) const SIZES: [usize; 3] = [1_000, 5_000, 10_000];
/// 10,000 clients register into one `webchat-local` within this many seconds.
const REGISTER_ALL_GOAL: (usize, Goal) = (10_000, Goal::AtMost(10.0));
/// Pushes one arrival above the presence limit causes besides the count: none.
const PUSHES_PER_ARRIVAL_GOAL: Goal = Goal::AtMost(0.0);
/// Registrations in flight at once.
const PARALLEL: usize = 32;
/// Long enough for whatever an arrival pushes to arrive, on a loaded machine.
const SETTLE: Duration = Duration::from_secs(2);

/// The frames `peers` received since the last call, besides member counts: `newUser`
/// and `userExit` (kept apart by the client) and anything else queued.
async fn pushes_besides_counts(peers: &mut [Client], seen_before: usize) -> usize {
    let mut pushes = 0;
    let mut seen = 0;
    for peer in peers.iter_mut() {
        let s = peer.seen();
        seen += s.new_users.len() + s.user_exits.len();
        while let Some(incoming) = peer.next(Duration::ZERO).await {
            match incoming {
                Incoming::Text(text) if text.starts_with(r#"{"action":"members""#) => {}
                _ => pushes += 1,
            }
        }
    }
    pushes + seen - seen_before
}

/// Every announcement the clients kept apart so far.
fn announcements(peers: &[Client]) -> usize {
    peers
        .iter()
        .map(|peer| {
            let s = peer.seen();
            s.new_users.len() + s.user_exits.len()
        })
        .sum()
}

/// The rows for each of `sizes`, each on a fresh `webchat-local` with the default
/// presence limit.
pub(crate) async fn figures(
    local_bin: &Path,
    sizes: &[usize],
    figures: &mut Vec<Figure>,
) -> Result<()> {
    raise_fd_limit_for_clients(sizes)?;
    for &members in sizes {
        step(&format!(
            "presence: starting webchat-local, registering {members} clients"
        ));
        let gateway = local::LocalGateway::start(local_bin)?;
        let inbox = Inbox::new();
        let started = Instant::now();
        let mut peers = join_many(&gateway.url, members, "big", PARALLEL, &inbox).await?;
        let took = started.elapsed();
        let goal = if members == REGISTER_ALL_GOAL.0 {
            REGISTER_ALL_GOAL.1
        } else {
            Goal::None
        };
        figures.push(measured(
            &row_name(members, "register all", "s"),
            round(took.as_secs_f64(), 1),
            "s",
            goal,
        ));

        step(&format!("presence: one more arrival among {members}"));
        tokio::time::sleep(SETTLE).await;
        // Whatever registering pushed is not this arrival's.
        let _ = pushes_besides_counts(&mut peers, 0).await;
        let before = announcements(&peers);
        let newcomer = Client::join(&gateway.url, "newcomer").await?;
        tokio::time::sleep(SETTLE).await;
        let pushes = pushes_besides_counts(&mut peers, before).await;
        figures.push(measured(
            &row_name(members, "pushes per arrival", "pushes"),
            pushes as f64,
            "pushes",
            PUSHES_PER_ARRIVAL_GOAL,
        ));
        step("presence: closing clients");
        drop(gateway);
        newcomer.close().await;
        for peer in peers.drain(..) {
            peer.close().await;
        }
    }
    Ok(())
}
