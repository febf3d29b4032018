//! The Raft state machine: applies committed entries to the ledger core, stored in sled.
//!
//! A batch of entries is applied into the core's overlay, then written as one atomic sled
//! batch together with the last applied log id and membership. Durability comes from the
//! Raft log, not from a flush of the state per batch: the entries were flushed to the log
//! before openraft counted them, and sled recovers a prefix of its writes, so a node killed
//! before sled wrote the state out comes back at an earlier applied id, whole (the batch is
//! atomic), and openraft applies the rest again from the log. The log is never purged past
//! what the state has flushed: a snapshot is built only after a flush (the purge follows
//! snapshots), and an installed snapshot is flushed before it counts.
//!
//! Snapshots: `get_snapshot_builder` copies the encoded records (a memory copy on the
//! state-machine task, so it sees exactly the state at the applied index); the builder
//! serialises, checksums and persists it on its own task while applying goes on. The current
//! snapshot is one file in the data directory, replaced atomically.

use crate::blocking::{blocking, blocking_if, IN_PLACE_COMMANDS};
use crate::raft_types::{
    Applied, LedgerTypes, LogId, NodeId, Proposal, ProposalBody, SnapshotMeta, StorageError,
    StoredMembership,
};
use crate::state_store::{
    raw_records, seal_state, unseal_state, BrokenReads, SledState, StateError, META_PREFIX,
    STATE_TREE,
};
use ledger_core::command::Context;
use ledger_core::ledger::{
    decode_snapshot, encode_record, encode_snapshot, verify_snapshot, StateHasher,
};
use ledger_core::{Ledger, Outcome};
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, StorageIOError,
};
use std::io::Cursor;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

const APPLIED: &[u8] = &[META_PREFIX, b'a'];
const MEMBERSHIP: &[u8] = &[META_PREFIX, b'm'];
const SNAPSHOT_FILE: &str = "snapshot.bin";

fn io_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

fn sm_error(e: impl std::fmt::Display) -> StorageError {
    io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e)
}

fn snapshot_error(e: impl std::fmt::Display) -> StorageError {
    io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e)
}

/// The ledger state machine over sled.
pub struct StateMachine<C> {
    db: sled::Db,
    state: sled::Tree,
    /// Held for writing while a batch is applied, for reading by queries: sled applies a
    /// batch atomically for each key, not for a reader of several keys, so without it a
    /// query could see half of a batch (a transfer's debit without its credit).
    gate: Arc<RwLock<()>>,
    /// Shared with the readers.
    broken: BrokenReads,
    /// None until genesis is applied.
    ledger: Option<Ledger<SledState>>,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot_dir: PathBuf,
    snapshot_seq: Arc<AtomicU64>,
    _config: PhantomData<C>,
}

/// A consistent copy of the state (`StateReader::copy`).
pub struct StateCopy {
    /// Every record, encoded as the snapshot and the state hash see it, in key order.
    pub records: Vec<(sled::IVec, sled::IVec)>,
    pub applied: LogId,
    pub state_hash: ledger_core::types::Digest32,
}

/// Reads the ledger as last committed to sled: for queries, concurrently with applying.
#[derive(Clone)]
pub struct StateReader {
    state: sled::Tree,
    gate: Arc<RwLock<()>>,
    broken: BrokenReads,
}

impl StateReader {
    /// The ledger, if genesis has been applied. Reads of several records through it may
    /// straddle an applied batch: use `read` for anything that must be consistent.
    pub fn ledger(&self) -> Option<Ledger<SledState>> {
        Ledger::open(SledState::reporting(
            self.state.clone(),
            self.broken.clone(),
        ))
    }

    /// Where this reader's ledgers report a record they found broken (the node stops).
    pub fn broken_reads(&self) -> &BrokenReads {
        &self.broken
    }

    /// Runs `f` on the ledger with no batch applied meanwhile: every record it reads is
    /// from one and the same applied index. Keep `f` short; it holds up applying.
    pub fn read<T>(&self, f: impl FnOnce(&Ledger<SledState>, Option<u64>) -> T) -> Option<T> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let ledger = self.ledger()?;
        Some(f(&ledger, self.applied_index()))
    }

    /// A point-in-time copy of every record with the log id it holds everything up to and
    /// its state hash, for a backup; `None` before genesis. Holds up applying while it scans.
    pub fn copy(&self) -> Result<Option<StateCopy>, StateError> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let (Some(_), Some(applied)) = (self.ledger(), self.applied_log_id()) else {
            return Ok(None);
        };
        let records = raw_records(&self.state)?;
        // The records are stored as the state hash sees them: one scan, not a second one.
        let mut hasher = StateHasher::default();
        for (k, v) in &records {
            hasher.add(k, v);
        }
        Ok(Some(StateCopy {
            records,
            applied,
            state_hash: hasher.finish(),
        }))
    }

    fn applied_log_id(&self) -> Option<LogId> {
        let stored = self.state.get(APPLIED).ok()??;
        let bytes = unseal_state(APPLIED, &stored).ok()?;
        bincode::deserialize::<Option<LogId>>(&bytes).ok()?
    }

    /// The last applied log index.
    pub fn applied_index(&self) -> Option<u64> {
        self.applied_log_id().map(|l| l.index)
    }
}

impl<C: LedgerTypes> StateMachine<C> {
    /// Opens the state machine stored in `db`; snapshots go to `snapshot_dir`.
    pub fn open(db: &sled::Db, snapshot_dir: &Path) -> Result<Self, StorageError> {
        let state = db.open_tree(STATE_TREE).map_err(sm_error)?;
        std::fs::create_dir_all(snapshot_dir).map_err(snapshot_error)?;
        let read = |key: &[u8]| -> Result<Option<sled::IVec>, StorageError> {
            match state.get(key).map_err(sm_error)? {
                Some(stored) => Ok(Some(unseal_state(key, &stored).map_err(sm_error)?)),
                None => Ok(None),
            }
        };
        let applied = match read(APPLIED)? {
            Some(bytes) => bincode::deserialize(&bytes).map_err(sm_error)?,
            None => None,
        };
        let membership = match read(MEMBERSHIP)? {
            Some(bytes) => bincode::deserialize(&bytes).map_err(sm_error)?,
            None => StoredMembership::default(),
        };
        // After reading back: every record read passes its checksum and the money invariants
        // hold, or this replica must not serve.
        let ledger = caught("opening the state", || {
            let ledger = Ledger::open(SledState::new(state.clone()));
            if let Some(ledger) = &ledger {
                ledger
                    .check_invariants()
                    .unwrap_or_else(|e| panic!("state read back from disk is broken: {e}"));
            }
            ledger
        })
        .map_err(sm_error)?;
        Ok(StateMachine {
            db: db.clone(),
            state,
            gate: Arc::new(RwLock::new(())),
            broken: BrokenReads::default(),
            ledger,
            applied,
            membership,
            snapshot_dir: snapshot_dir.to_owned(),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            _config: PhantomData,
        })
    }

    pub fn reader(&self) -> StateReader {
        StateReader {
            state: self.state.clone(),
            gate: self.gate.clone(),
            broken: self.broken.clone(),
        }
    }

    fn apply_body(&mut self, index: u64, now_ms: u64, body: &ProposalBody) -> Applied {
        match body {
            ProposalBody::Genesis(config) => {
                if self.ledger.is_some() {
                    return Applied::Genesis { fresh: false };
                }
                self.ledger = Some(Ledger::genesis(
                    SledState::new(self.state.clone()),
                    config.clone(),
                ));
                Applied::Genesis { fresh: true }
            }
            ProposalBody::Commands(envelopes) => {
                let Some(ledger) = self.ledger.as_mut() else {
                    return Applied::NotInitialised;
                };
                let ctx = Context { index, now_ms };
                let outcomes: Vec<Outcome> =
                    envelopes.iter().map(|e| ledger.apply(&ctx, e)).collect();
                Applied::Outcomes(outcomes)
            }
        }
    }

    /// Writes the applied batch, the applied log id and the membership in one atomic sled
    /// batch; no flush of its own (the module's comment says why that is safe).
    fn commit(&mut self) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        if let Some(ledger) = self.ledger.as_mut() {
            ledger.store_mut().drain_into(&mut batch);
        }
        self.write(batch)
    }

    /// Adds the applied log id and membership to `batch` and applies it atomically.
    fn write(&self, mut batch: sled::Batch) -> Result<(), StorageError> {
        add_markers(&mut batch, &self.applied, &self.membership).map_err(sm_error)?;
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        self.state.apply_batch(batch).map_err(sm_error)
    }

    /// `write`, then flushed.
    fn write_durably(&self, batch: sled::Batch) -> Result<(), StorageError> {
        self.write(batch)?;
        self.db.flush().map_err(sm_error)?;
        Ok(())
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join(SNAPSHOT_FILE)
    }
}

/// How many commands applying `entry` runs (a genesis or membership entry counts as one).
fn commands_in<C: LedgerTypes>(entry: &C::Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(Proposal {
            body: ProposalBody::Commands(envelopes),
            ..
        }) => envelopes.len(),
        _ => 1,
    }
}

/// Runs `f`, turning a panic (the state store's answer to a corrupt record or a failed read)
/// into an error that says what was being done.
fn caught<T>(doing: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        format!("{doing}: {message}")
    })
}

/// Adds the markers stored with the records to `batch`: the last applied log id and the
/// membership as of it.
pub(crate) fn add_markers(
    batch: &mut sled::Batch,
    applied: &Option<LogId>,
    membership: &StoredMembership,
) -> Result<(), bincode::Error> {
    batch.insert(APPLIED, seal_state(APPLIED, bincode::serialize(applied)?));
    batch.insert(
        MEMBERSHIP,
        seal_state(MEMBERSHIP, bincode::serialize(membership)?),
    );
    Ok(())
}

/// Writes a snapshot file atomically: temporary file, fsync, rename, fsync of the folder.
pub(crate) fn persist_snapshot(
    dir: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
) -> std::io::Result<()> {
    use std::io::Write;
    let meta_bytes = bincode::serialize(meta).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.{}.tmp", meta.snapshot_id));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&(meta_bytes.len() as u64).to_be_bytes())?;
        file.write_all(&meta_bytes)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the snapshot file in `dir`, if any, and checks it: its log position, or why it is
/// unreadable (`ledger-node scrub`).
pub fn check_snapshot_file(dir: &Path) -> std::io::Result<Option<LogId>> {
    Ok(read_snapshot(&dir.join(SNAPSHOT_FILE))?.and_then(|(meta, _)| meta.last_log_id))
}

fn read_snapshot(path: &Path) -> std::io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt snapshot file");
    let len = u64::from_be_bytes(
        bytes
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let meta_end = 8usize
        .checked_add(len)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(bad)?;
    let meta: SnapshotMeta = bincode::deserialize(&bytes[8..meta_end]).map_err(|_| bad())?;
    // The records carry their own checksum: a snapshot whose bytes rotted on disk is an
    // error here, not something sent to a follower.
    verify_snapshot(&bytes[meta_end..]).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("snapshot file {}: {e}", path.display()),
        )
    })?;
    Ok(Some((meta, bytes[meta_end..].to_vec())))
}

/// Builds a snapshot from a point-in-time copy of the records.
pub struct SnapshotBuilder<C> {
    /// The records, or why they could not be read (a corrupt one: no snapshot is built).
    records: Result<Vec<(sled::IVec, sled::IVec)>, String>,
    applied: Option<LogId>,
    membership: StoredMembership,
    dir: PathBuf,
    seq: Arc<AtomicU64>,
    _config: PhantomData<C>,
}

impl<C: LedgerTypes> RaftSnapshotBuilder<C> for SnapshotBuilder<C> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError> {
        blocking(|| self.build_now())
    }
}

impl<C: LedgerTypes> SnapshotBuilder<C> {
    fn build_now(&mut self) -> Result<Snapshot<C>, StorageError> {
        let records = self
            .records
            .as_ref()
            .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        let data = encode_snapshot(records.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        persist_snapshot(&self.dir, &meta, &data).map_err(snapshot_error)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<C: LedgerTypes> RaftStateMachine<C> for StateMachine<C> {
    type SnapshotBuilder = SnapshotBuilder<C>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = C::Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let commands: usize = entries.iter().map(commands_in::<C>).sum();
        blocking_if(commands > IN_PLACE_COMMANDS, || self.apply_now(entries))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        blocking(|| self.snapshot_builder_now())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        blocking(|| self.install_now(meta, snapshot.into_inner()))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<C>>, StorageError> {
        blocking(|| {
            let Some((meta, data)) =
                read_snapshot(&self.snapshot_path()).map_err(snapshot_error)?
            else {
                return Ok(None);
            };
            Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
        })
    }
}

impl<C: LedgerTypes> StateMachine<C> {
    fn apply_now(
        &mut self,
        entries: impl IntoIterator<Item = C::Entry>,
    ) -> Result<Vec<Applied>, StorageError> {
        let mut replies = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            assert!(
                self.applied.is_none_or(|a| a.index < log_id.index),
                "applied index only grows: {:?} then {log_id}",
                self.applied
            );
            let reply = match entry.payload {
                EntryPayload::Blank => Applied::Nothing,
                EntryPayload::Normal(proposal) => {
                    // A record failing its checksum (or any other broken read) panics in the
                    // store: this replica stops with a storage error, its batch unwritten.
                    caught(&format!("applying entry {}", log_id.index), || {
                        self.apply_body(log_id.index, proposal.now_ms, &proposal.body)
                    })
                    .map_err(|e| io_error(ErrorSubject::Apply(log_id), ErrorVerb::Read, e))?
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    Applied::Nothing
                }
            };
            self.applied = Some(log_id);
            replies.push(reply);
        }
        self.commit()?;
        Ok(replies)
    }

    fn snapshot_builder_now(&mut self) -> SnapshotBuilder<C> {
        // The state is flushed before a snapshot of it counts: openraft purges the log
        // behind snapshots, and a node must never come back at an applied id whose next
        // entries are gone from its log.
        let records = match self.db.flush() {
            Ok(_) => raw_records(&self.state).map_err(|e| e.to_string()),
            Err(e) => Err(format!("flushing the state before a snapshot: {e}")),
        };
        SnapshotBuilder {
            records,
            applied: self.applied,
            membership: self.membership.clone(),
            dir: self.snapshot_dir.clone(),
            seq: self.snapshot_seq.clone(),
            _config: PhantomData,
        }
    }

    fn install_now(&mut self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        let records = decode_snapshot(&data).map_err(snapshot_error)?;
        // One atomic batch: every old record out, every snapshot record and the markers in.
        let mut batch = sled::Batch::default();
        for key in self.state.iter().keys() {
            batch.remove(key.map_err(sm_error)?);
        }
        for (key, value) in &records {
            let (k, v) = encode_record(key, value);
            let v = seal_state(&k, v);
            batch.insert(k, v);
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.write_durably(batch)?;
        persist_snapshot(&self.snapshot_dir, meta, &data).map_err(snapshot_error)?;
        self.ledger = Ledger::open(SledState::new(self.state.clone()));
        if let Some(ledger) = &self.ledger {
            ledger
                .check_invariants()
                .unwrap_or_else(|e| panic!("installed snapshot is broken: {e}"));
        }
        tracing::info!(snapshot = %meta.snapshot_id, records = records.len(), "snapshot installed");
        Ok(())
    }
}
