//! The storage boundary: the production log store and state machine, wrapped so that the
//! simulator can slow a disk down or fill it, and plant the storage bugs (a store that
//! acknowledges before flushing; one that goes on after a write failed for want of space; a
//! state machine that applies an entry twice).

use crate::SimConfig;
use ledger_node::log_store::LogStore;
use ledger_node::raft_types::{Applied, NodeId};
use ledger_node::state_machine::StateMachine;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Per node, (log index, virtual ms) of appended entries a crash may lose.
pub type Unflushed = Arc<Mutex<BTreeMap<NodeId, Vec<(u64, u64)>>>>;

/// How much acknowledged log the `storage-acks-before-flush` bug loses at a crash: sled's
/// default background flush interval, what a store relying on it would lose.
pub const LOST_WRITES_MS: u64 = 500;

/// How full a node's simulated disk is (a disk not in `FullDisks` has room).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fullness {
    /// Below the node's reserve: the node refuses client writes (`DiskFull`), its own writes
    /// still succeed.
    BelowReserve,
    /// Nothing left: every write fails, as sled's do on ENOSPC.
    NoSpace,
}

/// The nodes whose disks the nemesis filled.
pub type FullDisks = Arc<Mutex<BTreeMap<NodeId, Fullness>>>;

/// The reserve each simulated node keeps (`--min-free-disk-mib` in production).
pub const SIM_RESERVE_BYTES: u64 = 64 << 20;
/// What a write to a disk with no space left fails with (what the OS tells sled).
pub const NO_SPACE: &str = "No space left on device (os error 28)";

/// A node's free space as the simulation says: half the reserve, none, or plenty.
pub fn free_bytes(disks: &FullDisks, id: NodeId) -> Option<u64> {
    Some(match fullness(disks, id) {
        Some(Fullness::BelowReserve) => SIM_RESERVE_BYTES / 2,
        Some(Fullness::NoSpace) => 0,
        None => 1 << 40,
    })
}

/// How full a node's disk is; `None`: it has room.
pub fn fullness(disks: &FullDisks, id: NodeId) -> Option<Fullness> {
    disks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .copied()
}

/// Fails a write (to `subject`) when node `id`'s disk has no space left.
fn room(
    disks: &FullDisks,
    id: NodeId,
    subject: openraft::ErrorSubject<NodeId>,
) -> Result<(), ledger_node::raft_types::StorageError> {
    match fullness(disks, id) {
        Some(Fullness::NoSpace) => Err(openraft::StorageIOError::new(
            subject,
            openraft::ErrorVerb::Write,
            openraft::AnyError::error(NO_SPACE),
        )
        .into()),
        _ => Ok(()),
    }
}

/// The production log store; with the storage bug planted, it also notes what it appended
/// and when, so that a crash can lose it (as a store that acknowledged before flushing would).
pub struct SimLogStore {
    pub inner: LogStore<SimConfig>,
    pub id: NodeId,
    pub disk_delay_ms: u64,
    pub started: tokio::time::Instant,
    pub unflushed: Option<Unflushed>,
    pub disks: FullDisks,
    /// The `log-ignores-full-disk` bug: an append that found no space is reported done.
    pub ignores_full_disk: bool,
}

impl Clone for SimLogStore {
    fn clone(&self) -> Self {
        SimLogStore {
            inner: self.inner.clone(),
            id: self.id,
            disk_delay_ms: self.disk_delay_ms,
            started: self.started,
            unflushed: self.unflushed.clone(),
            disks: self.disks.clone(),
            ignores_full_disk: self.ignores_full_disk,
        }
    }
}

type StorageResult<T> = Result<T, ledger_node::raft_types::StorageError>;

impl openraft::RaftLogReader<SimConfig> for SimLogStore {
    async fn try_get_log_entries<
        RB: std::ops::RangeBounds<u64> + Clone + std::fmt::Debug + Send,
    >(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<openraft::Entry<SimConfig>>> {
        self.inner.try_get_log_entries(range).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StorageResult<Vec<openraft::Entry<SimConfig>>> {
        self.inner.limited_get_log_entries(start, end).await
    }
}

impl openraft::storage::RaftLogStorage<SimConfig> for SimLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<openraft::LogState<SimConfig>> {
        self.inner.get_log_state().await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &openraft::Vote<NodeId>) -> StorageResult<()> {
        room(&self.disks, self.id, openraft::ErrorSubject::Vote)?;
        self.inner.save_vote(vote).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<openraft::Vote<NodeId>>> {
        self.inner.read_vote().await
    }

    async fn save_committed(
        &mut self,
        committed: Option<ledger_node::raft_types::LogId>,
    ) -> StorageResult<()> {
        room(&self.disks, self.id, openraft::ErrorSubject::Store)?;
        self.inner.save_committed(committed).await
    }

    async fn read_committed(&mut self) -> StorageResult<Option<ledger_node::raft_types::LogId>> {
        self.inner.read_committed().await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: openraft::storage::LogFlushed<SimConfig>,
    ) -> StorageResult<()>
    where
        I: IntoIterator<Item = openraft::Entry<SimConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if self.disk_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.disk_delay_ms)).await;
        }
        if let Err(e) = room(&self.disks, self.id, openraft::ErrorSubject::Logs) {
            if !self.ignores_full_disk {
                return Err(e);
            }
            // The bug: nothing was written, and the entries are reported durable.
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        if let Some(unflushed) = &self.unflushed {
            let at = self.started.elapsed().as_millis() as u64;
            let mut u = unflushed.lock().unwrap_or_else(|p| p.into_inner());
            u.entry(self.id)
                .or_default()
                .extend(entries.iter().map(|e| (e.log_id.index, at)));
        }
        self.inner.append(entries, callback).await
    }

    async fn truncate(&mut self, log_id: ledger_node::raft_types::LogId) -> StorageResult<()> {
        room(&self.disks, self.id, openraft::ErrorSubject::Logs)?;
        self.inner.truncate(log_id).await
    }

    async fn purge(&mut self, log_id: ledger_node::raft_types::LogId) -> StorageResult<()> {
        room(&self.disks, self.id, openraft::ErrorSubject::Logs)?;
        self.inner.purge(log_id).await
    }
}

/// The production state machine, or (for the `node-applies-twice` bug) one that applies a
/// committed entry a second time now and then, or (`state-acks-before-flush`) one that
/// reports as applied what it had applied before a crash that lost it.
pub struct SimStateMachine {
    pub inner: StateMachine<SimConfig>,
    pub applies_twice: bool,
    /// The `state-acks-before-flush` bug: the applied log id reported at start, whatever the
    /// state holds (as if every applied batch had been durable).
    pub claims_applied: Option<ledger_node::raft_types::LogId>,
    pub id: NodeId,
    pub disks: FullDisks,
}

impl openraft::storage::RaftStateMachine<SimConfig> for SimStateMachine {
    type SnapshotBuilder = <StateMachine<SimConfig> as openraft::storage::RaftStateMachine<
        SimConfig,
    >>::SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<ledger_node::raft_types::LogId>,
            ledger_node::raft_types::StoredMembership,
        ),
        ledger_node::raft_types::StorageError,
    > {
        let (applied, membership) = self.inner.applied_state().await?;
        Ok((applied.max(self.claims_applied), membership))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<Applied>, ledger_node::raft_types::StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<SimConfig>> + Send,
        I::IntoIter: Send,
    {
        room(&self.disks, self.id, openraft::ErrorSubject::StateMachine)?;
        let entries: Vec<_> = entries.into_iter().collect();
        let again: Vec<_> = if self.applies_twice {
            entries
                .iter()
                .filter(|e| {
                    e.log_id.index % 40 == 0
                        && matches!(e.payload, openraft::EntryPayload::Normal(_))
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let replies = self.inner.apply(entries).await?;
        if !again.is_empty() {
            let _ = self.inner.apply(again).await;
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.inner.get_snapshot_builder().await
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, ledger_node::raft_types::StorageError> {
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &ledger_node::raft_types::SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), ledger_node::raft_types::StorageError> {
        room(&self.disks, self.id, openraft::ErrorSubject::StateMachine)?;
        self.inner.install_snapshot(meta, snapshot).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::Snapshot<SimConfig>>, ledger_node::raft_types::StorageError> {
        self.inner.get_current_snapshot().await
    }
}
