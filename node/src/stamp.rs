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
