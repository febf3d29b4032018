//! The run's trace: every fault, start, crash, leader and operation, hashed (the line a seed
//! prints) and kept as text (the file a failing seed writes).

use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// A handle on the run's trace; clones share it.
#[derive(Clone)]
pub struct Trace {
    hash: Arc<Mutex<Sha256>>,
    lines: Arc<Mutex<Vec<String>>>,
    started: tokio::time::Instant,
}

impl Trace {
    pub fn new(started: tokio::time::Instant) -> Trace {
        Trace {
            hash: Arc::new(Mutex::new(Sha256::new())),
            lines: Arc::default(),
            started,
        }
    }

    /// Virtual ms since the run started.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Adds a line (ending in a newline).
    pub fn line(&self, line: &str) {
        lock(&self.hash).update(line.as_bytes());
        let stamped = format!("[{:>7} ms] {line}", self.elapsed_ms());
        if std::env::var_os("LEDGER_SIM_TRACE").is_some() {
            eprint!("{stamped}");
        }
        lock(&self.lines).push(stamped);
    }

    /// The first 8 bytes of the trace's hash, in hex.
    pub fn hash(&self) -> String {
        let h = lock(&self.hash).clone();
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }
}

/// Locks a mutex, whether or not a panicking holder poisoned it: the simulator's state stays
/// usable for the report.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
