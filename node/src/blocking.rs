//! Storage work that does not hold an async worker. openraft's storage traits are async, but
//! sled's writes, its fsync, applying a batch of commands and copying the state for a
//! snapshot are synchronous and can take from a millisecond to seconds. Run inline on the
//! node's multi-thread runtime (one worker per core: two here), such a call holds its worker
//! and every task queued behind it: with both workers in storage calls the whole process
//! stops, heartbeats are neither sent nor read, and followers stand for election under load.
//!
//! [`blocking`] runs a call through `block_in_place` on a multi-thread runtime (the worker's
//! queue moves to another thread for the call's length) and in place on a current-thread
//! runtime, which has no other worker: the simulator's, whose determinism needs the call to
//! finish before any other task runs, and the unit tests'. Moving the queue costs thread
//! wake-ups on the commit path, so small calls stay in place ([`blocking_if`] with the
//! bounds below): moving every call took one client's p50 from 0.58 to 1.05 ms.

use tokio::runtime::{Handle, RuntimeFlavor};

/// A batch of at most this many commands is applied in place.
pub const IN_PLACE_COMMANDS: usize = 64;
/// Log entries of at most this many encoded bytes are appended in place.
pub const IN_PLACE_BYTES: usize = 16 * 1024;

/// Runs `f` without holding an async worker of a multi-thread runtime; in place otherwise.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// [`blocking`] when `heavy`, in place otherwise.
pub fn blocking_if<T>(heavy: bool, f: impl FnOnce() -> T) -> T {
    if heavy {
        blocking(f)
    } else {
        f()
    }
}
