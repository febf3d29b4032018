//! What the leader stamps on a command: its wall clock and randomness. A seam: production
//! reads the system clock and the OS random source; the simulator supplies virtual time and a
//! seeded generator.

use rand::RngCore;

/// The leader's clock and random source.
pub trait Stamper: Send + Sync + 'static {
    /// Wall-clock time, ms since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Fresh randomness (OTP nonces, password salts).
    fn fill_random(&self, out: &mut [u8]);

    fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_random(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The system clock and the operating system's random source.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemStamper;

impl Stamper for SystemStamper {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn fill_random(&self, out: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(out);
    }
}
