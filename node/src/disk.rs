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

/// Where the free space is read from.
enum Source {
    /// The filesystem of the database folder, read at most every `FREE_SPACE_READ_EVERY`.
    Folder {
        path: PathBuf,
        last: Mutex<Option<(Instant, u64)>>,
    },
    /// A disk the simulator keeps: its free space as the simulation says, asked each time.
    Probe(FreeSpaceProbe),
}

/// Reads a simulated disk's free space.
pub type FreeSpaceProbe = std::sync::Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// The database folder's free space against its reserve.
pub struct DiskReserve {
    source: Source,
    reserve_bytes: u64,
}

impl std::fmt::Debug for DiskReserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Folder { path, .. } => path.display().to_string(),
            Source::Probe(_) => "a simulated disk".to_owned(),
        };
        f.debug_struct("DiskReserve")
            .field("source", &source)
            .field("reserve_bytes", &self.reserve_bytes)
            .finish()
    }
}

impl DiskReserve {
    pub fn new(path: PathBuf, reserve_bytes: u64) -> DiskReserve {
        DiskReserve {
            source: Source::Folder {
                path,
                last: Mutex::new(None),
            },
            reserve_bytes,
        }
    }

    /// A reserve on a simulated disk, whose free space `probe` gives.
    pub fn simulated(probe: FreeSpaceProbe, reserve_bytes: u64) -> DiskReserve {
        DiskReserve {
            source: Source::Probe(probe),
            reserve_bytes,
        }
    }

    /// Bytes free to an unprivileged writer on the database folder's filesystem, read at
    /// most every `FREE_SPACE_READ_EVERY`; `None` if the filesystem cannot say.
    pub fn free_bytes(&self) -> Option<u64> {
        let (path, last) = match &self.source {
            Source::Folder { path, last } => (path, last),
            Source::Probe(probe) => return probe(),
        };
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, free)) = *last {
            if at.elapsed() < FREE_SPACE_READ_EVERY {
                return Some(free);
            }
        }
        match rustix::fs::statvfs(path) {
            Ok(stat) => {
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                *last = Some((Instant::now(), free));
                Some(free)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the database folder's free space");
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

    #[test]
    fn a_simulated_disk_is_asked_each_time_and_an_unknown_free_space_stops_nothing() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let free = std::sync::Arc::new(AtomicU64::new(100));
        let probe: FreeSpaceProbe = {
            let free = free.clone();
            std::sync::Arc::new(move || match free.load(Ordering::SeqCst) {
                u64::MAX => None,
                n => Some(n),
            })
        };
        let reserve = DiskReserve::simulated(probe, 64);
        assert!(reserve.check().is_ok());
        free.store(10, Ordering::SeqCst);
        assert!(matches!(
            reserve.check(),
            Err(ApiError::DiskFull {
                free_bytes: 10,
                reserve_bytes: 64
            })
        ));
        free.store(u64::MAX, Ordering::SeqCst);
        assert!(reserve.check().is_ok());
        assert!(!format!("{reserve:?}").contains("Folder"));
    }
}
