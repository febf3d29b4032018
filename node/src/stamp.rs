//! The leader's clock: a seam. Production reads the system clock; the simulator supplies
//! virtual time. (A request's randomness is derived from its idempotency key and the bank's
//! key, `intake::request_entropy`, so that a retried request becomes the same command.)

/// The leader's clock.
pub trait Stamper: Send + Sync + 'static {
    /// Wall-clock time, ms since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemStamper;

impl Stamper for SystemStamper {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A wall clock that steps by more than this, against the time the node carried forward
/// on its monotonic clock, counts as a step (`ledger_clock_steps`).
pub const CLOCK_STEP_TOLERANCE_MS: u64 = 1_000;

/// The time a node stamps its entries with: its wall clock, but never behind a time it
/// stamped or saw applied, and never standing still meanwhile. Past those it runs on the
/// node's monotonic clock. The core already keeps ledger time from going back (each entry
/// takes the later of its stamp and the ledger's time); without this, a leader whose clock
/// stepped back an hour, or lagged the previous leader's, froze ledger time until its clock
/// caught up, and every code issued meanwhile stayed valid that long. A step forward still
/// moves ledger time forward: nothing on one node tells which of its clocks is right.
pub struct LedgerClock {
    wall: std::sync::Arc<dyn Stamper>,
    carried: std::sync::Mutex<Carried>,
    steps: prometheus_client::metrics::counter::Counter,
    /// The planted bug `ClockStampsWallTime`: stamps are the wall clock's alone.
    wall_time_only: bool,
}

/// The latest time stamped or seen, when (monotonic) it was, and how far the wall clock
/// was from it then (zero or behind).
struct Carried {
    ms: u64,
    at: tokio::time::Instant,
    wall_offset_ms: i64,
}

impl Carried {
    fn now_ms(&self) -> u64 {
        self.ms.saturating_add(self.at.elapsed().as_millis() as u64)
    }
}

impl LedgerClock {
    /// `steps` counts the wall clock's steps either way.
    pub fn new(
        wall: std::sync::Arc<dyn Stamper>,
        steps: prometheus_client::metrics::counter::Counter,
    ) -> LedgerClock {
        let carried = Carried {
            ms: wall.now_ms(),
            at: tokio::time::Instant::now(),
            wall_offset_ms: 0,
        };
        LedgerClock {
            wall,
            carried: std::sync::Mutex::new(carried),
            steps,
            wall_time_only: false,
        }
    }

    /// The planted bug `ClockStampsWallTime` (the simulator's only).
    pub(crate) fn planted_wall_time_only(self) -> LedgerClock {
        LedgerClock {
            wall_time_only: true,
            ..self
        }
    }

    /// Ledger time seen applied (from any leader): the clock never stamps below it again.
    pub fn observe(&self, ledger_ms: u64) {
        let wall = self.wall.now_ms();
        let mut carried = self.lock();
        if ledger_ms > carried.now_ms() {
            *carried = Carried {
                ms: ledger_ms,
                at: tokio::time::Instant::now(),
                wall_offset_ms: offset(wall, ledger_ms),
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Carried> {
        self.carried
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Stamper for LedgerClock {
    fn now_ms(&self) -> u64 {
        LedgerClock::now_ms(self)
    }
}

impl LedgerClock {
    /// The time to stamp now: the later of the wall clock and the time carried on.
    pub fn now_ms(&self) -> u64 {
        let wall = self.wall.now_ms();
        if self.wall_time_only {
            return wall;
        }
        let mut carried = self.lock();
        let expected = carried.now_ms();
        let step = offset(wall, expected).abs_diff(carried.wall_offset_ms);
        if step > CLOCK_STEP_TOLERANCE_MS {
            self.steps.inc();
            tracing::warn!(
                wall_ms = wall,
                carried_ms = expected,
                step_ms = step,
                "the wall clock stepped; stamping no earlier than the time carried on the monotonic clock"
            );
        }
        let now = wall.max(expected);
        // Re-anchored only when the wall clock is the time: re-anchoring the carried time
        // at every stamp would drop the part of a millisecond each one lost, and stamps
        // less than a millisecond apart would hold it still.
        if wall >= expected {
            carried.ms = wall;
            carried.at = tokio::time::Instant::now();
        }
        carried.wall_offset_ms = offset(wall, now);
        now
    }
}

/// `wall - carried`, in ms.
fn offset(wall: u64, carried: u64) -> i64 {
    (wall as i128 - carried as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A wall clock following tokio's (paused) time, plus an offset a test steps.
    struct SteppedWall {
        started: tokio::time::Instant,
        offset_ms: AtomicI64,
    }

    impl Stamper for SteppedWall {
        fn now_ms(&self) -> u64 {
            let elapsed = self.started.elapsed().as_millis() as i64;
            (1_700_000_000_000 + elapsed + self.offset_ms.load(Ordering::Relaxed)) as u64
        }
    }

    fn clock() -> (Arc<SteppedWall>, LedgerClock, Counter) {
        let wall = Arc::new(SteppedWall {
            started: tokio::time::Instant::now(),
            offset_ms: AtomicI64::new(0),
        });
        let steps = Counter::default();
        (wall.clone(), LedgerClock::new(wall, steps.clone()), steps)
    }

    const HOUR_MS: i64 = 3_600_000;

    #[tokio::test(start_paused = true)]
    async fn a_clock_stepped_back_neither_goes_back_nor_stands_still() {
        let (wall, clock, steps) = clock();
        let before = clock.now_ms();
        wall.offset_ms.store(-HOUR_MS, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(5)).await;
        let after = clock.now_ms();
        assert_eq!(after, before + 5_000, "carried on the monotonic clock");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.now_ms(), before + 10_000);
        assert_eq!(steps.get(), 1, "one step, counted once");
        // Stepped back to true time: the wall clock is the time again.
        wall.offset_ms.store(0, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(clock.now_ms(), wall.now_ms());
        assert_eq!(steps.get(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stamps_less_than_a_millisecond_apart_do_not_hold_time_still() {
        let (wall, clock, _) = clock();
        let before = clock.now_ms();
        wall.offset_ms.store(-HOUR_MS, Ordering::Relaxed);
        for _ in 0..20 {
            tokio::time::advance(Duration::from_micros(500)).await;
            let _ = clock.now_ms();
        }
        assert_eq!(clock.now_ms(), before + 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_stepped_forward_moves_time_forward_and_is_counted() {
        let (wall, clock, steps) = clock();
        let before = clock.now_ms();
        wall.offset_ms.store(HOUR_MS, Ordering::Relaxed);
        let ahead = clock.now_ms();
        assert_eq!(ahead, before + HOUR_MS as u64);
        assert_eq!(steps.get(), 1);
        // Back again: the hour stays, and time runs on from it.
        wall.offset_ms.store(0, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.now_ms(), ahead + 2_000);
        assert_eq!(steps.get(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn ledger_time_seen_applied_is_a_floor_that_runs_on() {
        let (wall, clock, steps) = clock();
        let ledger_ms = wall.now_ms() + 30_000;
        clock.observe(ledger_ms);
        clock.observe(ledger_ms - 10_000);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.now_ms(), ledger_ms + 3_000);
        assert_eq!(
            steps.get(),
            0,
            "another leader's clock is not a step of this one"
        );
        // A slow drift within the tolerance is no step either.
        wall.offset_ms.store(-500, Ordering::Relaxed);
        let _ = clock.now_ms();
        assert_eq!(steps.get(), 0);
    }
}
