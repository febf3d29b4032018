//! The simulator's only source of randomness: a seeded generator, split into independent
//! streams (network, clients, faults) so that adding draws to one does not shift another.

/// splitmix64: small, fast and well mixed; plenty for fault injection.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng {
            state: seed ^ 0x5DEE_CE66_D1CE_5EED,
        }
    }

    /// An independent stream for `label`.
    pub fn stream(seed: u64, label: &str) -> Self {
        let mut h = seed;
        for b in label.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
        SimRng::new(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        ledger_testkit::driver::splitmix64(&mut self.state)
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `p` (0.0..=1.0).
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}
