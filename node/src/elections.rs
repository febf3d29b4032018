//! Breaking a tie that openraft's own timers cannot. openraft 0.9 draws a node's election
//! timeout once, at `Raft::new`, and looks at it only on its tick (every 1.5 heartbeat
//! intervals: 300 ms in production, 75 ms in the simulator). Two voters whose timeouts fall
//! within one tick of each other and whose ticks come together call their elections at the
//! same tick, round after round, each voting for itself; with the remaining voter unable to
//! win (its log is behind) and each one vote short of a majority, no leader is ever elected.
//! The simulator found it (its seed 83: 120 virtual s without a leader on a healthy network,
//! two nodes with timeouts of 538 and 594 ms both calling at every eighth 75 ms tick).
//!
//! While no leader is known for `stall_after`, a voter calls an election itself after a delay
//! of its own, drawn from its seed: whoever calls first stands alone in a newer term.

use crate::raft_types::LedgerTypes;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// When a leaderless voter calls an election of its own.
#[derive(Clone, Copy, Debug)]
pub struct Nudge {
    /// How long without a known leader before calling one.
    pub stall_after: Duration,
    /// The largest random delay before calling it.
    pub max_delay: Duration,
    /// Seeds the delays (the simulator's seed makes them part of the run).
    pub seed: u64,
}

impl Nudge {
    /// Twice the longest election timeout without a leader, then up to one election
    /// timeout more.
    pub fn for_config(config: &openraft::Config, seed: u64) -> Nudge {
        Nudge {
            stall_after: Duration::from_millis(2 * config.election_timeout_max),
            max_delay: Duration::from_millis(config.election_timeout_max),
            seed,
        }
    }
}

/// Watches `raft` and calls an election when it has been leaderless for too long.
pub async fn run<C: LedgerTypes>(raft: openraft::Raft<C>, id: u64, nudge: Nudge) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(nudge.seed);
    let check_every = (nudge.stall_after / 4).max(Duration::from_millis(10));
    let mut leaderless_since = None;
    loop {
        tokio::time::sleep(check_every).await;
        if !leaderless_voter(&raft, id) {
            leaderless_since = None;
            continue;
        }
        let since = *leaderless_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < nudge.stall_after {
            continue;
        }
        let delay = rng.gen_range(0..=nudge.max_delay.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if leaderless_voter(&raft, id) {
            tracing::info!(
                id,
                stalled_ms = since.elapsed().as_millis() as u64,
                "no leader: calling an election"
            );
            if raft.trigger().elect().await.is_err() {
                return;
            }
        }
        leaderless_since = None;
    }
}

/// Whether this node is a voter that knows of no leader.
fn leaderless_voter<C: LedgerTypes>(raft: &openraft::Raft<C>, id: u64) -> bool {
    let m = raft.metrics().borrow().clone();
    m.running_state.is_ok()
        && m.current_leader.is_none()
        && m.membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id)
}
