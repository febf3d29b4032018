//! Backups of a running node and restores into a new cluster.
//!
//! `backup_begin` takes a consistent copy of the node's state (every record at one applied
//! log id, under the same gate as a query) and holds it, encoded as the ledger's snapshot,
//! for `backup_chunk` calls; `ledger-node backup` fetches it and writes a backup file:
//!
//! ```text
//! "LEDGBAK1" | format version (u32, BE) | manifest length (u32, BE) | manifest (bincode)
//!            | snapshot bytes (the manifest's `bytes`, SHA-256 `sha256`) | SHA-256 of all before
//! ```
//!
//! `ledger-node restore` checks every layer of that (file checksum, manifest, snapshot
//! checksum and records, state hash, the money invariants) and writes a node's data
//! directory from it: the records, the applied log id, the new cluster's membership, the log
//! purged up to the backup's position and the snapshot openraft sends to nodes that join
//! later. Every member of the new cluster is restored from the same file and started without
//! `--init`; they elect a leader among themselves and go on from the backup's log position.

use crate::raft_types::{LogId, NodeAddr, SnapshotMeta, StoredMembership};
use crate::state_machine::StateCopy;
use crate::state_store::SledState;
use ledger_core::ledger::{decode_snapshot, encode_record, encode_snapshot};
use ledger_core::types::Digest32;
use ledger_core::Ledger;
use ledger_wire::api::{ApiError, BackupManifest, NodeInfo, BACKUP_CHUNK_BYTES};
use openraft::{CommittedLeaderId, Membership, Vote};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first bytes of a backup file.
pub const BACKUP_MAGIC: &[u8; 8] = b"LEDGBAK1";
/// The backup file format this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// Longest manifest a backup file may carry.
pub const MAX_MANIFEST_BYTES: u32 = 64 * 1024;
/// How long a node holds a prepared backup for `backup_chunk` calls.
pub const BACKUP_HOLD: Duration = Duration::from_secs(10 * 60);

/// Why a backup could not be written, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the copy fetched does not match its manifest (length or SHA-256): nothing written")]
    Mismatch,
    #[error("{0} already exists: a backup never overwrites a file")]
    FileExists(PathBuf),
    #[error("{0} is not a ledger backup (its first bytes are not {BACKUP_MAGIC:?})")]
    NotABackup(PathBuf),
    #[error("{path} is backup format {found}; this build reads format {BACKUP_FORMAT}")]
    UnsupportedFormat { path: PathBuf, found: u32 },
    #[error("{path} is damaged: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("{0} already holds a node's data: restore writes only into a new data directory")]
    DataDirInUse(PathBuf),
    #[error("node {id} is not one of the members given (--member)")]
    NotAMember { id: u64 },
    #[error("the restored state hashes to {found:?}, the backup says {expected:?}")]
    StateHashMismatch { expected: Digest32, found: Digest32 },
    #[error("the restored state breaks the ledger's invariants: {0}")]
    Invariants(String),
    #[error("the database in {path}: {source}")]
    Storage { path: PathBuf, source: sled::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

fn digest(bytes: &[u8]) -> Digest32 {
    Digest32(Sha256::digest(bytes).into())
}

/// A backup a node has prepared and holds for chunked reads.
struct Prepared {
    manifest: BackupManifest,
    bytes: Arc<Vec<u8>>,
    at: Instant,
}

/// The node's prepared backup, if any (one at a time: a new one replaces it).
#[derive(Default)]
pub struct Backups {
    slot: Mutex<Option<Prepared>>,
}

impl Backups {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Prepared>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encodes `copy` and holds it under a new manifest.
    pub fn prepare(
        &self,
        copy: StateCopy,
        node_id: u64,
        linearizable: bool,
        taken_ms: u64,
    ) -> BackupManifest {
        let bytes = encode_snapshot(copy.records.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let mut slot = self.slot();
        // Any id unlike the previous one names the new copy; the clock keeps ids of a
        // restarted node's copies apart too.
        let backup_id = slot
            .as_ref()
            .map_or(taken_ms, |p| p.manifest.backup_id.max(taken_ms) + 1);
        let manifest = BackupManifest {
            backup_id,
            node_id,
            applied_term: copy.applied.leader_id.term,
            applied_index: copy.applied.index,
            linearizable,
            state_hash: copy.state_hash,
            records: copy.records.len() as u64,
            bytes: bytes.len() as u64,
            sha256: digest(&bytes),
            taken_ms,
        };
        *slot = Some(Prepared {
            manifest: manifest.clone(),
            bytes: Arc::new(bytes),
            at: Instant::now(),
        });
        manifest
    }

    /// Up to `BACKUP_CHUNK_BYTES` of prepared backup `backup_id` from `offset`; empty at the
    /// end. The copy is let go once its last chunk is read or `BACKUP_HOLD` has passed.
    pub fn chunk(&self, backup_id: u64, offset: u64) -> Result<Vec<u8>, ApiError> {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|p| p.at.elapsed() > BACKUP_HOLD) {
            *slot = None;
        }
        let prepared = slot
            .as_ref()
            .filter(|p| p.manifest.backup_id == backup_id)
            .ok_or_else(|| ApiError::NotAllowed {
                reason: format!(
                    "backup {backup_id} is not held here (replaced by a newer one, fetched to \
                     the end, or older than {} s): begin again",
                    BACKUP_HOLD.as_secs()
                ),
            })?;
        let len = prepared.bytes.len() as u64;
        if offset > len {
            return Err(ApiError::NotAllowed {
                reason: format!("offset {offset} is past the backup's {len} bytes"),
            });
        }
        let end = len.min(offset + u64::from(BACKUP_CHUNK_BYTES));
        let chunk = prepared.bytes[offset as usize..end as usize].to_vec();
        if end == len {
            *slot = None;
        }
        Ok(chunk)
    }
}

/// Writes a backup file of `bytes` as `manifest` describes them (checked), never over an
/// existing file: a temporary file, fsync, rename, fsync of the folder.
pub fn write_file(path: &Path, manifest: &BackupManifest, bytes: &[u8]) -> Result<(), BackupError> {
    if bytes.len() as u64 != manifest.bytes || digest(bytes) != manifest.sha256 {
        return Err(BackupError::Mismatch);
    }
    if path.exists() {
        return Err(BackupError::FileExists(path.to_owned()));
    }
    let encoded = bincode::serialize(manifest).expect("a manifest always serializes");
    let mut out = Vec::with_capacity(bytes.len() + encoded.len() + 64);
    out.extend_from_slice(BACKUP_MAGIC);
    out.extend_from_slice(&BACKUP_FORMAT.to_be_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    out.extend_from_slice(&encoded);
    out.extend_from_slice(bytes);
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| BackupError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let tmp = dir.join(format!(".{}.partial", name.to_string_lossy()));
    {
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&out).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))
}

/// Reads and checks a backup file: magic, format, file checksum, manifest, and the
/// snapshot's length and checksum. Returns the manifest and the snapshot bytes.
pub fn read_file(path: &Path) -> Result<(BackupManifest, Vec<u8>), BackupError> {
    let file = std::fs::read(path).map_err(io(path))?;
    let corrupt = |what: &str| BackupError::Corrupt {
        path: path.to_owned(),
        what: what.to_owned(),
    };
    if file.len() < 8 || &file[..8] != BACKUP_MAGIC {
        return Err(BackupError::NotABackup(path.to_owned()));
    }
    let be_u32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(file.get(at..at + 4)?.try_into().ok()?))
    };
    let format = be_u32(8).ok_or_else(|| corrupt("cut short in its header"))?;
    if format != BACKUP_FORMAT {
        return Err(BackupError::UnsupportedFormat {
            path: path.to_owned(),
            found: format,
        });
    }
    if file.len() < 16 + 32 {
        return Err(corrupt("cut short in its header"));
    }
    let (body, checksum) = file.split_at(file.len() - 32);
    if Sha256::digest(body).as_slice() != checksum {
        return Err(corrupt(
            "its checksum does not match (cut short or changed)",
        ));
    }
    let manifest_len = be_u32(12).ok_or_else(|| corrupt("cut short in its header"))?;
    if manifest_len > MAX_MANIFEST_BYTES {
        return Err(corrupt("its manifest is longer than any backup writes"));
    }
    let manifest_end = 16 + manifest_len as usize;
    let manifest: BackupManifest = body
        .get(16..manifest_end)
        .and_then(|m| bincode::deserialize(m).ok())
        .ok_or_else(|| corrupt("its manifest does not decode"))?;
    let snapshot = &body[manifest_end.min(body.len())..];
    if snapshot.len() as u64 != manifest.bytes || digest(snapshot) != manifest.sha256 {
        return Err(corrupt("its state is not the one its manifest describes"));
    }
    Ok((manifest, snapshot.to_vec()))
}

/// What a restore wrote.
#[derive(Debug)]
pub struct Restored {
    pub manifest: BackupManifest,
    pub records: usize,
}

/// Writes node `id`'s data directory of a new cluster of `members` from a backup file.
/// `data_dir` must not hold a node's data yet; nothing is left in it when the restore fails.
pub fn restore(
    file: &Path,
    data_dir: &Path,
    id: u64,
    members: &[NodeInfo],
) -> Result<Restored, BackupError> {
    if !members.iter().any(|m| m.id == id) {
        return Err(BackupError::NotAMember { id });
    }
    let (manifest, snapshot) = read_file(file)?;
    let records = decode_snapshot(&snapshot).map_err(|e| BackupError::Corrupt {
        path: file.to_owned(),
        what: format!("its state does not decode: {e}"),
    })?;
    let sled_path = data_dir.join("sled");
    let snapshot_dir = data_dir.join("snapshots");
    if sled_path.exists() || snapshot_dir.exists() {
        return Err(BackupError::DataDirInUse(data_dir.to_owned()));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let written = write_data_dir(&manifest, &snapshot, &records, data_dir, id, members);
    if written.is_err() {
        // Leave the folder as it was: a half-written node must never start.
        let _ = std::fs::remove_dir_all(&sled_path);
        let _ = std::fs::remove_dir_all(&snapshot_dir);
    }
    written?;
    Ok(Restored {
        records: records.len(),
        manifest,
    })
}

fn write_data_dir(
    manifest: &BackupManifest,
    snapshot: &[u8],
    records: &[(ledger_core::state::Key, ledger_core::state::Value)],
    data_dir: &Path,
    id: u64,
    members: &[NodeInfo],
) -> Result<(), BackupError> {
    let sled_path = data_dir.join("sled");
    let storage = |source| BackupError::Storage {
        path: sled_path.clone(),
        source,
    };
    let applied = LogId::new(
        CommittedLeaderId::new(manifest.applied_term, id),
        manifest.applied_index,
    );
    let voters: BTreeSet<u64> = members.iter().map(|m| m.id).collect();
    let nodes: BTreeMap<u64, NodeAddr> = members
        .iter()
        .map(|m| (m.id, crate::node::node_addr(m)))
        .collect();
    let membership = StoredMembership::new(Some(applied), Membership::new(vec![voters], nodes));

    let db = sled::Config::new()
        .path(&sled_path)
        .open()
        .map_err(storage)?;
    let state = db.open_tree("state").map_err(storage)?;
    let mut batch = sled::Batch::default();
    for (key, value) in records {
        let (k, v) = encode_record(key, value);
        let v = crate::state_store::seal_state(&k, v);
        batch.insert(k, v);
    }
    crate::state_machine::add_markers(&mut batch, &Some(applied), &membership).map_err(|e| {
        storage(sled::Error::Unsupported(format!(
            "encoding the markers: {e}"
        )))
    })?;
    state.apply_batch(batch).map_err(storage)?;
    // The log starts after the backup's position; the vote is at its term, so the first
    // election of the new cluster is for a later one.
    let meta = db.open_tree("raft_meta").map_err(storage)?;
    crate::log_store::write_restored_markers(&meta, applied, Vote::new(applied.leader_id.term, id))
        .map_err(storage)?;
    db.flush().map_err(storage)?;

    let ledger = Ledger::open(SledState::new(state))
        .ok_or_else(|| BackupError::Invariants("the backup holds no ledger (no genesis)".into()))?;
    let found = ledger.state_hash();
    if found != manifest.state_hash {
        return Err(BackupError::StateHashMismatch {
            expected: manifest.state_hash,
            found,
        });
    }
    ledger
        .check_invariants()
        .map_err(|e| BackupError::Invariants(e.to_string()))?;
    drop(ledger);
    drop(db);

    // The snapshot openraft sends to a node that joins the restored cluster later.
    let snapshot_dir = data_dir.join("snapshots");
    std::fs::create_dir_all(&snapshot_dir).map_err(io(&snapshot_dir))?;
    let meta = SnapshotMeta {
        last_log_id: Some(applied),
        last_membership: membership,
        snapshot_id: format!(
            "restored-{}-{}-{}",
            manifest.applied_term, manifest.applied_index, manifest.backup_id
        ),
    };
    crate::state_machine::persist_snapshot(&snapshot_dir, &meta, snapshot)
        .map_err(io(&snapshot_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(bytes: &[u8]) -> BackupManifest {
        BackupManifest {
            backup_id: 7,
            node_id: 1,
            applied_term: 3,
            applied_index: 42,
            linearizable: true,
            state_hash: Digest32([9; 32]),
            records: 0,
            bytes: bytes.len() as u64,
            sha256: digest(bytes),
            taken_ms: 1,
        }
    }

    #[test]
    fn a_file_reads_back_and_any_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.ledger");
        let snapshot = encode_snapshot(Vec::<(Vec<u8>, Vec<u8>)>::new());
        write_file(&path, &manifest(&snapshot), &snapshot).unwrap();
        let (read, bytes) = read_file(&path).unwrap();
        assert_eq!(read, manifest(&snapshot));
        assert_eq!(bytes, snapshot);
        assert!(matches!(
            write_file(&path, &manifest(&snapshot), &snapshot),
            Err(BackupError::FileExists(_))
        ));

        let good = std::fs::read(&path).unwrap();
        for at in [0, 9, 14, 20, good.len() - 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let refused = read_file(&path).unwrap_err();
            assert!(
                matches!(
                    refused,
                    BackupError::NotABackup(_)
                        | BackupError::UnsupportedFormat { .. }
                        | BackupError::Corrupt { .. }
                ),
                "byte {at}: {refused}"
            );
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(matches!(read_file(&path), Err(BackupError::Corrupt { .. })));
    }

    #[test]
    fn chunks_cover_the_copy_once_and_a_replaced_copy_is_refused() {
        let backups = Backups::default();
        let copy = || StateCopy {
            records: (0u32..3)
                .map(|i| (i.to_be_bytes().to_vec().into(), vec![1u8; 10].into()))
                .collect(),
            applied: LogId::new(CommittedLeaderId::new(2, 1), 10),
            state_hash: Digest32([1; 32]),
        };
        let first = backups.prepare(copy(), 1, true, 100);
        let second = backups.prepare(copy(), 1, true, 100);
        assert_ne!(first.backup_id, second.backup_id);
        assert!(matches!(
            backups.chunk(first.backup_id, 0),
            Err(ApiError::NotAllowed { .. })
        ));
        assert!(backups.chunk(second.backup_id, second.bytes + 1).is_err());
        let bytes = backups.chunk(second.backup_id, 0).unwrap();
        assert_eq!(bytes.len() as u64, second.bytes);
        assert_eq!(digest(&bytes), second.sha256);
        // Fetched to the end: let go.
        assert!(backups.chunk(second.backup_id, 0).is_err());
    }
}
