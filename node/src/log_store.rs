//! The Raft log on sled: entries in tree `raft_log` (big-endian index → bincode entry), the
//! vote, the committed and the purged markers in tree `raft_meta`. Every value carries a
//! checksum (`checksum`), checked on every read: a corrupt entry or marker is a storage error,
//! never an entry applied, sent to a follower or voted on.
//!
//! Nothing is acknowledged before it is durable: an append is flushed once per batch of
//! entries (group commit) before openraft is told it is on disk, and a vote is flushed
//! before it is answered. The flush is sled's synchronous `flush`, so a simulated clock
//! never runs while a write is in flight.

use crate::blocking::{blocking, blocking_if, IN_PLACE_BYTES};
use crate::checksum::{seal, strip, unseal, Corrupt};
use crate::raft_types::{LedgerTypes, LogId, NodeId, StorageError};
use crate::watermark::{Mark, Watermark, WatermarkError};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError, Vote};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

pub(crate) const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
pub(crate) const PURGED: &[u8] = b"purged";
pub const LOG_TREE: &str = "raft_log";
pub const META_TREE: &str = "raft_meta";
/// The stored size of the entries one AppendEntries call carries, at most (a single larger
/// entry goes alone). Well inside a frame (`api::MAX_FRAME_BYTES`, 16 MiB), and small enough
/// for a follower to receive and fsync within a heartbeat interval: 256 entries of 1,024
/// transfers each (~100 KB an entry) made 25 MB payloads that timed out at 200 ms.
pub const MAX_APPEND_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The log store. Cheap to clone: replication streams read through clones.
pub struct LogStore<C> {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    /// Off only in the simulator's planted bug `log-skips-checksums`.
    verify: bool,
    /// What was durable, kept outside sled (`watermark.rs`), and what it held at open.
    watermark: Option<Arc<Watermark>>,
    durable: Option<Mark>,
    _config: PhantomData<C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            log: self.log.clone(),
            meta: self.meta.clone(),
            verify: self.verify,
            watermark: self.watermark.clone(),
            durable: self.durable.clone(),
            _config: PhantomData,
        }
    }
}

fn io_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

impl<C: LedgerTypes> LogStore<C> {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(LogStore {
            db: db.clone(),
            log: db.open_tree(LOG_TREE)?,
            meta: db.open_tree(META_TREE)?,
            verify: true,
            watermark: None,
            durable: None,
            _config: PhantomData,
        })
    }

    /// Keeps what is durable in the watermark file at `path` as well, and refuses to start
    /// on a log or vote behind what it held (sled lost writes).
    pub fn with_watermark(mut self, path: &Path) -> Result<Self, WatermarkError> {
        let (watermark, durable) = Watermark::open(path)?;
        self.watermark = Some(Arc::new(watermark));
        self.durable = durable;
        Ok(self)
    }

    /// Records in the watermark what sled now holds durably.
    fn mark(&self, change: impl FnOnce(&mut Mark)) -> std::io::Result<()> {
        match &self.watermark {
            Some(w) => w.record(change),
            None => Ok(()),
        }
    }

    /// The simulator's planted bug `log-skips-checksums`: values are read without checking
    /// their checksums. Never called by `ledger-node`.
    pub fn skipping_checksums(mut self) -> Self {
        self.verify = false;
        self
    }

    fn unseal<'a>(
        &self,
        tree: &'static str,
        key: &[u8],
        stored: &'a [u8],
    ) -> Result<&'a [u8], Corrupt> {
        if self.verify {
            unseal(tree, key, stored)
        } else {
            Ok(strip(stored))
        }
    }

    /// Decodes a stored value after checking its checksum.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        tree: &'static str,
        key: &[u8],
        stored: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<T, StorageError> {
        let bytes = self
            .unseal(tree, key, stored)
            .map_err(|e| io_error(subject.clone(), ErrorVerb::Read, e))?;
        bincode::deserialize(bytes).map_err(|e| io_error(subject, ErrorVerb::Read, e))
    }

    fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        self.db
            .flush()
            .map_err(|e| io_error(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError> {
        let Some(bytes) = self
            .meta
            .get(key)
            .map_err(|e| io_error(subject.clone(), ErrorVerb::Read, e))?
        else {
            return Ok(None);
        };
        self.decode(META_TREE, key, &bytes, subject).map(Some)
    }

    fn write_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        let bytes = bincode::serialize(value)
            .map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
        self.meta
            .insert(key, seal(key, bytes))
            .map_err(|e| io_error(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let Some((key, bytes)) = self
            .log
            .last()
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Read, e))?
        else {
            return Ok(None);
        };
        let entry: C::Entry = self.decode(LOG_TREE, &key, &bytes, ErrorSubject::Logs)?;
        Ok(Some(entry.log_id))
    }

    /// Size of the log and meta trees on disk, for metrics.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Marks a new node's log as starting after `purged` (a restored backup's position), with
/// `vote` as its vote: the markers a purge and a vote leave, without the entries.
pub(crate) fn write_restored_markers(
    meta: &sled::Tree,
    purged: LogId,
    vote: Vote<NodeId>,
) -> sled::Result<()> {
    let encoded = (|| {
        Ok::<_, bincode::Error>([
            bincode::serialize(&purged)?,
            bincode::serialize(&Some(purged))?,
            bincode::serialize(&vote)?,
        ])
    })()
    .map_err(|e| sled::Error::Unsupported(format!("encoding a marker: {e}")))?;
    let mut batch = sled::Batch::default();
    for (key, value) in [PURGED, COMMITTED, VOTE].into_iter().zip(encoded) {
        batch.insert(key, seal(key, value));
    }
    meta.apply_batch(batch)
}

/// The entries as a batch of sealed values under their big-endian indexes.
/// The entries as one sled batch, and their encoded size.
fn entries_batch<C: LedgerTypes>(
    entries: impl IntoIterator<Item = C::Entry>,
) -> Result<(sled::Batch, usize), StorageError> {
    let mut batch = sled::Batch::default();
    let mut size = 0;
    for entry in entries {
        let bytes = bincode::serialize(&entry)
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        size += bytes.len();
        let key = entry.log_id.index.to_be_bytes();
        batch.insert(&key, seal(&key, bytes));
    }
    Ok((batch, size))
}

fn bound_index(bound: Bound<&u64>, start: bool) -> Option<u64> {
    match (bound, start) {
        (Bound::Included(i), _) => Some(*i),
        (Bound::Excluded(i), true) => Some(i + 1),
        (Bound::Excluded(i), false) => Some(i.saturating_sub(1)),
        (Bound::Unbounded, true) => Some(0),
        (Bound::Unbounded, false) => None,
    }
}

impl<C: LedgerTypes> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError> {
        let start = bound_index(range.start_bound(), true).unwrap_or(0);
        if let Bound::Excluded(0) = range.end_bound() {
            return Ok(Vec::new());
        }
        let end = bound_index(range.end_bound(), false);
        let iter = match end {
            Some(end) if end < start => return Ok(Vec::new()),
            Some(end) => self.log.range(start.to_be_bytes()..=end.to_be_bytes()),
            None => self.log.range(start.to_be_bytes()..),
        };
        iter.map(|r| {
            let (key, bytes) = r.map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            self.decode(LOG_TREE, &key, &bytes, ErrorSubject::Logs)
        })
        .collect()
    }

    /// What replication sends a follower in one AppendEntries call: the entries from `start`
    /// on, before `end`, while their stored size stays within `MAX_APPEND_PAYLOAD_BYTES`
    /// (always at least one). openraft bounds a payload by count only (`max_payload_entries`)
    /// and gives the call one heartbeat interval, fsync included; entries of large batches
    /// would otherwise make payloads no follower takes in time, or no frame holds.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, StorageError> {
        let mut entries = Vec::new();
        if start >= end {
            return Ok(entries);
        }
        let mut bytes_so_far = 0usize;
        for r in self.log.range(start.to_be_bytes()..end.to_be_bytes()) {
            let (key, bytes) = r.map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            bytes_so_far = bytes_so_far.saturating_add(bytes.len());
            if !entries.is_empty() && bytes_so_far > MAX_APPEND_PAYLOAD_BYTES {
                break;
            }
            entries.push(self.decode(LOG_TREE, &key, &bytes, ErrorSubject::Logs)?);
        }
        Ok(entries)
    }
}

impl<C: LedgerTypes> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(PURGED, ErrorSubject::Logs)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        // The watermark as read at open: openraft asks for the log state only in `Raft::new`
        // (a truncation since then may have lowered the log on purpose, so this check is
        // for start-up only; do not call it after writing).
        if let Some(durable) = &self.durable {
            let vote = self.read_meta(VOTE, ErrorSubject::Vote)?;
            crate::watermark::check(durable, last_log_id, vote).map_err(|e| {
                io_error(
                    ErrorSubject::Logs,
                    ErrorVerb::Read,
                    std::io::Error::other(e),
                )
            })?;
        }
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        blocking(|| {
            self.write_meta(VOTE, vote, ErrorSubject::Vote)?;
            self.flush(ErrorSubject::Vote)?;
            self.mark(|m| m.vote = Some(*vote))
                .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))
        })
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on its own: a lost committed marker only means re-applying from the
        // last applied index, which the next flush of the log or the state covers.
        self.write_meta(COMMITTED, &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .read_meta::<Option<LogId>>(COMMITTED, ErrorSubject::Store)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = C::Entry> + Send,
        I::IntoIter: Send,
    {
        let mut last = None;
        let (batch, size) =
            entries_batch::<C>(entries.into_iter().inspect(|e| last = Some(e.log_id)))?;
        blocking_if(size > IN_PLACE_BYTES, || {
            self.log
                .apply_batch(batch)
                .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            // One fsync for the whole batch: group commit.
            let flushed = self
                .db
                .flush()
                .map_err(std::io::Error::other)
                .and_then(|_| match last {
                    Some(last) => self.mark(|m| m.last_log = Some(last)),
                    None => Ok(()),
                });
            callback.log_io_completed(flushed);
            Ok(())
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        blocking(|| self.truncate_now(log_id))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        blocking(|| self.purge_now(log_id))
    }
}

impl<C: LedgerTypes> LogStore<C> {
    fn truncate_now(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for key in self.log.range(log_id.index.to_be_bytes()..).keys() {
            batch.remove(key.map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.flush(ErrorSubject::Logs)?;
        // The log now ends before `log_id`: what is durable went back, on purpose.
        let purged: Option<LogId> = self.read_meta(PURGED, ErrorSubject::Logs)?;
        let last = self.last_entry_log_id()?.or(purged);
        self.mark(|m| m.last_log = last)
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    fn purge_now(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The marker first, durably: a crash mid-purge then only leaves extra entries.
        self.write_meta(PURGED, &log_id, ErrorSubject::Logs)?;
        self.flush(ErrorSubject::Logs)?;
        let mut batch = sled::Batch::default();
        for key in self.log.range(..=log_id.index.to_be_bytes()).keys() {
            batch.remove(key.map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::TypeConfig;
    use openraft::{CommittedLeaderId, Entry, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    /// Flips one bit of the value stored under `key` in `tree`, as a disk would.
    fn flip(tree: &sled::Tree, key: &[u8]) {
        let mut value = tree.get(key).unwrap().unwrap().to_vec();
        value[0] ^= 0x10;
        tree.insert(key, value).unwrap();
    }

    /// A bit flipped in a stored entry or marker is a storage error on every read of it
    /// (never the entry), and the scrub names it; a store planted with the bug of skipping
    /// checksums reads it without complaint.
    #[tokio::test]
    async fn a_flipped_bit_in_an_entry_or_a_marker_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let mut store = LogStore::<TypeConfig>::open(&db).unwrap();
        store
            .log
            .apply_batch(entries_batch::<TypeConfig>((1..=5).map(entry)).unwrap().0)
            .unwrap();
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
        assert_eq!(store.try_get_log_entries(1..=5).await.unwrap().len(), 5);
        assert!(crate::checksum::scrub(&db, &dir.path().join("none")).is_ok());

        flip(&store.log, &3u64.to_be_bytes());
        let error = store
            .try_get_log_entries(2..=4)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("fails its checksum"), "{error}");
        assert!(
            error.contains("raft_log") && error.contains("0000000000000003"),
            "{error}"
        );
        // Around it, entries read as before.
        assert_eq!(store.try_get_log_entries(4..=5).await.unwrap().len(), 2);
        let scrubbed = crate::checksum::scrub(&db, &dir.path().join("none"));
        assert!(
            matches!(&scrubbed, Err(crate::checksum::ScrubError::Corrupt(c)) if c.tree == "raft_log"),
            "{scrubbed:?}"
        );
        let mut skipping = store.clone().skipping_checksums();
        assert_eq!(skipping.try_get_log_entries(4..=5).await.unwrap().len(), 2);

        flip(&store.log, &5u64.to_be_bytes());
        assert!(
            store.get_log_state().await.is_err(),
            "the last entry is read at start"
        );
        flip(&store.meta, VOTE);
        let error = store.read_vote().await.unwrap_err().to_string();
        assert!(error.contains("raft_meta"), "{error}");
    }

    /// sled losing the end of the log (what it does past a damaged segment) or the vote
    /// going back is refused at start and by the scrub, once the watermark knew better.
    #[tokio::test]
    async fn a_log_or_vote_behind_the_watermark_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let watermark = dir.path().join(crate::node::WATERMARK_FILE);
        let db = sled::Config::new()
            .path(dir.path().join("sled"))
            .open()
            .unwrap();
        let mut store = LogStore::<TypeConfig>::open(&db)
            .unwrap()
            .with_watermark(&watermark)
            .unwrap();
        store
            .log
            .apply_batch(entries_batch::<TypeConfig>((1..=5).map(entry)).unwrap().0)
            .unwrap();
        store.mark(|m| m.last_log = Some(entry(5).log_id)).unwrap();
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
        let reopened = |db: &sled::Db| {
            LogStore::<TypeConfig>::open(db)
                .unwrap()
                .with_watermark(&watermark)
                .unwrap()
        };
        assert!(reopened(&db).get_log_state().await.is_ok());
        assert!(crate::checksum::scrub(&db, dir.path()).is_ok());

        store.log.remove(5u64.to_be_bytes()).unwrap();
        let error = reopened(&db).get_log_state().await.unwrap_err().to_string();
        assert!(error.contains("lost acknowledged entries"), "{error}");
        let scrubbed = crate::checksum::scrub(&db, dir.path());
        assert!(
            matches!(&scrubbed, Err(crate::checksum::ScrubError::WentBack(_))),
            "{scrubbed:?}"
        );

        store
            .log
            .apply_batch(entries_batch::<TypeConfig>([entry(5)]).unwrap().0)
            .unwrap();
        store
            .write_meta(VOTE, &Vote::<NodeId>::new(2, 2), ErrorSubject::Vote)
            .unwrap();
        let error = reopened(&db).get_log_state().await.unwrap_err().to_string();
        assert!(error.contains("vote went back"), "{error}");

        // A truncation is recorded: the shorter log is what is durable now.
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
        store.truncate(entry(4).log_id).await.unwrap();
        assert!(reopened(&db).get_log_state().await.is_ok());
    }

    /// An entry whose stored size is about `bytes`: a membership naming one node with an
    /// address that long.
    fn entry_of_size(index: u64, bytes: usize) -> Entry<TypeConfig> {
        let node = crate::raft_types::NodeAddr {
            raft: "a".repeat(bytes),
            client: String::new(),
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Membership(openraft::Membership::new(
                vec![[1].into()],
                std::collections::BTreeMap::from([(1, node)]),
            )),
        }
    }

    /// Replication reads at most `MAX_APPEND_PAYLOAD_BYTES` of entries for one call (a larger
    /// entry alone), never past `end`, and never nothing.
    #[tokio::test]
    async fn a_payload_for_a_follower_is_bounded_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let mut store = LogStore::<TypeConfig>::open(&db).unwrap();
        let big = MAX_APPEND_PAYLOAD_BYTES * 3 / 10;
        let entries = (1..=10)
            .map(|i| entry_of_size(i, big))
            .chain([entry_of_size(11, MAX_APPEND_PAYLOAD_BYTES * 2)])
            .chain((12..=20).map(entry));
        store
            .log
            .apply_batch(entries_batch::<TypeConfig>(entries).unwrap().0)
            .unwrap();

        let indexes = |entries: Vec<Entry<TypeConfig>>| {
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>()
        };
        assert_eq!(
            indexes(store.limited_get_log_entries(1, 21).await.unwrap()),
            [1, 2, 3]
        );
        assert_eq!(
            indexes(store.limited_get_log_entries(9, 21).await.unwrap()),
            [9, 10]
        );
        assert_eq!(
            indexes(store.limited_get_log_entries(11, 21).await.unwrap()),
            [11]
        );
        assert_eq!(
            indexes(store.limited_get_log_entries(12, 21).await.unwrap()),
            (12..=20).collect::<Vec<_>>()
        );
        assert_eq!(
            indexes(store.limited_get_log_entries(12, 15).await.unwrap()),
            [12, 13, 14]
        );
        assert!(store
            .limited_get_log_entries(15, 15)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .limited_get_log_entries(16, 15)
            .await
            .unwrap()
            .is_empty());
    }
}
