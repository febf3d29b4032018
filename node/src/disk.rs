//! The disk reserve. A leader whose database (`<data dir>/sled`) is on a filesystem with
//! less free space than the reserve takes no client writes (`ApiError::DiskFull`,
//! retryable, nothing applied) and keeps answering reads; it takes writes again as soon as
//! space returns. The reserve is what the node's own writes still need meanwhile: Raft's
//! blank entries and votes, the outbox's acknowledgements, a snapshot. A sled that hits
//! ENOSPC poisons itself until the process restarts, so the node refuses well before the
//! disk is full rather than at it.

use ledger_wire::api::ApiError;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The reserve `ledger-node run` keeps unless told otherwise (`--min-free-disk-mib`).
pub const DEFAULT_MIN_FREE_DISK_MIB: u64 = 256;
/// How long one reading of the free space is used before the filesystem is asked again.
pub const FREE_SPACE_READ_EVERY: Duration = Duration::from_millis(500);

/// The database folder's free space against its reserve.
#[derive(Debug)]
pub struct DiskReserve {
    path: PathBuf,
    reserve_bytes: u64,
    last: Mutex<Option<(Instant, u64)>>,
}

impl DiskReserve {
    pub fn new(path: PathBuf, reserve_bytes: u64) -> DiskReserve {
        DiskReserve {
            path,
            reserve_bytes,
            last: Mutex::new(None),
        }
    }

    /// Bytes free to an unprivileged writer on the database folder's filesystem, read at
    /// most every `FREE_SPACE_READ_EVERY`; `None` if the filesystem cannot say.
    pub fn free_bytes(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, free)) = *last {
            if at.elapsed() < FREE_SPACE_READ_EVERY {
                return Some(free);
            }
        }
        match rustix::fs::statvfs(&self.path) {
            Ok(stat) => {
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                *last = Some((Instant::now(), free));
                Some(free)
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the database folder's free space");
                None
            }
        }
    }

    /// `DiskFull` while the free space is below the reserve. A filesystem that cannot say
    /// how much is free does not stop writes (its own errors will).
    pub fn check(&self) -> Result<(), ApiError> {
        match self.free_bytes() {
            Some(free_bytes) if free_bytes < self.reserve_bytes => Err(ApiError::DiskFull {
                free_bytes,
                reserve_bytes: self.reserve_bytes,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_free_space_refuses_and_one_below_it_does_not() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let free = DiskReserve::new(dir.path().into(), 0)
            .free_bytes()
            .expect("the free space of a temporary directory");
        assert!(DiskReserve::new(dir.path().into(), 0).check().is_ok());
        let refused = DiskReserve::new(dir.path().into(), u64::MAX).check();
        match refused {
            Err(ApiError::DiskFull {
                free_bytes,
                reserve_bytes,
            }) => {
                assert_eq!(reserve_bytes, u64::MAX);
                assert!(free_bytes > 0 && free_bytes.abs_diff(free) < 1 << 30);
            }
            other => panic!("expected DiskFull, got {other:?}"),
        }
    }
}
