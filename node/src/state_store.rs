//! The ledger core's storage seam backed by a sled tree.
//!
//! Records are stored under `Key::encode` (tag byte first, all below 0xFF) with values in
//! `encode_record`'s bincode; the state machine's own markers (last applied, membership) sit
//! in the same tree under the 0xFF prefix, so one `sled::Batch` on one tree makes "entries
//! applied + their idempotency records + last applied index" atomic.
//!
//! Every stored value ends with its checksum (`checksum::seal`), checked on every read.
//!
//! Writes go to an overlay until the state machine commits a whole batch of Raft entries.
//! Reads see the overlay first. A sled error, a record failing its checksum or an undecodable
//! one is a broken disk or a bug: the read panics rather than serve wrong money. While
//! applying, the state machine turns that into a storage error that stops Raft; any other
//! read (a query, the outbox, webhooks) first reports it to the node's `BrokenReads`, and the
//! node stops (`RunningNode::failed`).

use crate::checksum::{seal, unseal, Corrupt};
use ledger_core::ledger::{decode_record, encode_record};
use ledger_core::state::{Key, Store, Value, WriteSet};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Prefix of the state machine's own markers in the state tree.
pub const META_PREFIX: u8 = 0xFF;
/// The sled tree of the state.
pub const STATE_TREE: &str = "state";

/// A failed read of the state tree.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading the state: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

/// The value stored under `key` in the state tree, its checksum checked and removed.
pub fn unseal_state(key: &[u8], stored: &sled::IVec) -> Result<sled::IVec, Corrupt> {
    unseal(STATE_TREE, key, stored).map(sled::IVec::from)
}

/// `value` sealed with its checksum under `key`, for the state tree.
pub fn seal_state(key: &[u8], value: Vec<u8>) -> Vec<u8> {
    seal(key, value)
}

/// Where reads of one node's state report that they found it broken: the first report is
/// kept, and whoever subscribed hears of it.
#[derive(Clone)]
pub struct BrokenReads(Arc<tokio::sync::watch::Sender<Option<String>>>);

impl Default for BrokenReads {
    fn default() -> Self {
        BrokenReads(Arc::new(tokio::sync::watch::Sender::new(None)))
    }
}

impl BrokenReads {
    fn report(&self, what: &str) {
        self.0.send_if_modified(|first| {
            first
                .is_none()
                .then(|| *first = Some(what.to_owned()))
                .is_some()
        });
    }

    /// The first report, if any.
    pub fn first(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Resolves with the first report (at once if there was one).
    pub async fn reported(&self) -> String {
        let mut seen = self.0.subscribe();
        let first = match seen.wait_for(Option::is_some).await {
            Ok(first) => first.clone(),
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        match first {
            Some(first) => first,
            None => std::future::pending().await,
        }
    }
}

/// The ledger's state in a sled tree, plus the writes not yet committed.
pub struct SledState {
    tree: sled::Tree,
    overlay: BTreeMap<Key, Option<Value>>,
    broken: Option<BrokenReads>,
}

impl SledState {
    pub fn new(tree: sled::Tree) -> Self {
        SledState {
            tree,
            overlay: BTreeMap::new(),
            broken: None,
        }
    }

    /// A state whose broken reads are reported to `broken` before they panic.
    pub fn reporting(tree: sled::Tree, broken: BrokenReads) -> Self {
        SledState {
            broken: Some(broken),
            ..SledState::new(tree)
        }
    }

    /// A read found the state broken: reported, then a panic (no answer is better than a
    /// wrong one).
    fn broken(&self, what: String) -> ! {
        if let Some(broken) = &self.broken {
            broken.report(&what);
        }
        panic!("{what}")
    }

    fn decode(&self, k: &[u8], v: &[u8]) -> (Key, Value) {
        let v = unseal(STATE_TREE, k, v).unwrap_or_else(|e| self.broken(e.to_string()));
        decode_record(k, v)
            .unwrap_or_else(|| self.broken(format!("undecodable state record at key {k:02x?}")))
    }

    fn decode_row(&self, row: sled::Result<(sled::IVec, sled::IVec)>) -> (Key, Value) {
        let (k, v) = row.unwrap_or_else(|e| self.broken(format!("state scan failed: {e}")));
        self.decode(&k, &v)
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Moves the pending writes into `batch`, checking on the way that they move no money
    /// out of nothing: the balances they change must sum to what they summed to before, and
    /// no customer balance may be negative. A violation is a bug: crash before writing.
    pub fn drain_into(&mut self, batch: &mut sled::Batch) {
        let mut delta: i128 = 0;
        for (key, value) in std::mem::take(&mut self.overlay) {
            let encoded = key.encode();
            if let Key::Account(id) = key {
                let old = self.stored(&key).map_or(0, |v| balance(&v));
                let new = value.as_ref().map_or(0, balance);
                assert!(
                    id.is_internal() || new >= 0,
                    "account {id} would be written with a negative balance {new}"
                );
                delta += i128::from(new) - i128::from(old);
            }
            match value {
                Some(v) => {
                    let value = seal(&encoded, encode_record(&key, &v).1);
                    batch.insert(encoded, value)
                }
                None => batch.remove(encoded),
            }
        }
        assert_eq!(delta, 0, "a batch of postings changed the sum of balances");
    }

    fn stored(&self, key: &Key) -> Option<Value> {
        let bytes = self
            .tree
            .get(key.encode())
            .unwrap_or_else(|e| self.broken(format!("state read failed: {e}")))?;
        Some(self.decode(&key.encode(), &bytes).1)
    }
}

fn balance(value: &Value) -> i64 {
    match value {
        Value::Account(a) => a.balance_fen,
        other => panic!("account key holds {other:?}"),
    }
}

/// The first key after every ledger record.
fn end_of_records() -> Vec<u8> {
    vec![META_PREFIX]
}

impl Store for SledState {
    fn get(&self, key: &Key) -> Option<Value> {
        match self.overlay.get(key) {
            Some(v) => v.clone(),
            None => self.stored(key),
        }
    }

    fn range(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)> {
        if from >= to {
            return Vec::new();
        }
        let stored = self.tree.range(from.encode()..to.encode());
        let stored = stored.map(|row| self.decode_row(row));
        merge(stored, self.overlay.range(*from..*to), limit, false)
    }

    fn range_rev(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)> {
        if from >= to {
            return Vec::new();
        }
        let stored = self.tree.range(from.encode()..to.encode()).rev();
        let stored = stored.map(|row| self.decode_row(row));
        merge(stored, self.overlay.range(*from..*to).rev(), limit, true)
    }

    fn write(&mut self, writes: WriteSet) {
        for (key, value) in writes {
            self.overlay.insert(key, value);
        }
    }

    fn scan(&self, visit: &mut dyn FnMut(&Key, &Value)) {
        let mut merged: BTreeMap<Key, Option<Value>> = BTreeMap::new();
        let stored = self
            .tree
            .range(..end_of_records())
            .map(|row| self.decode_row(row));
        if self.overlay.is_empty() {
            for (k, v) in stored {
                visit(&k, &v);
            }
            return;
        }
        for (k, v) in stored {
            merged.insert(k, Some(v));
        }
        for (k, v) in &self.overlay {
            merged.insert(*k, v.clone());
        }
        for (k, v) in merged {
            if let Some(v) = v {
                visit(&k, &v);
            }
        }
    }
}

/// Merges stored records with pending writes, both in key order (descending when
/// `descending`), stopping at `limit`: pending writes replace stored records, pending
/// deletions hide them.
fn merge<'a>(
    stored: impl Iterator<Item = (Key, Value)>,
    pending: impl Iterator<Item = (&'a Key, &'a Option<Value>)>,
    limit: usize,
    descending: bool,
) -> Vec<(Key, Value)> {
    use std::cmp::Ordering;
    let mut stored = stored.peekable();
    let mut pending = pending.peekable();
    let mut rows = Vec::new();
    while rows.len() < limit {
        // `Less` means the stored record comes first in the iteration order.
        let order = match (stored.peek(), pending.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((sk, _)), Some((pk, _))) if descending => pk.cmp(&sk),
            (Some((sk, _)), Some((pk, _))) => sk.cmp(pk),
        };
        if order == Ordering::Equal {
            stored.next(); // replaced or deleted by the pending write
        }
        if order == Ordering::Less {
            rows.push(stored.next().expect("peeked"));
        } else {
            let (k, v) = pending.next().expect("peeked");
            if let Some(v) = v {
                rows.push((*k, v.clone()));
            }
        }
    }
    rows
}

/// Every ledger record of a tree, encoded, in key order, each checked against its checksum
/// (and without it): the input of a snapshot and of a backup.
pub fn raw_records(tree: &sled::Tree) -> Result<Vec<(sled::IVec, sled::IVec)>, StateError> {
    tree.range(..end_of_records())
        .map(|row| {
            let (k, v) = row?;
            let v = unseal_state(&k, &v)?;
            Ok((k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::types::AccountId;

    fn row(account: u64, seq: u64) -> Key {
        Key::AccountPosting(AccountId(account), seq * 10, seq)
    }

    /// Committed records, then pending writes that add, replace and delete some of them:
    /// both directions see the same merged records, each in its own order.
    #[test]
    fn a_range_merges_pending_writes_the_same_forwards_and_backwards() {
        let tree = sled::Config::new()
            .temporary(true)
            .open()
            .expect("temporary sled")
            .open_tree("state")
            .expect("tree");
        let mut state = SledState::new(tree);
        state.write(
            (1..=6)
                .map(|s| (row(7, s), Some(Value::AccountPosting)))
                .collect(),
        );
        let mut batch = sled::Batch::default();
        state.drain_into(&mut batch);
        state.tree().apply_batch(batch).expect("apply");
        state.write(vec![
            (row(7, 2), None),
            (row(7, 7), Some(Value::AccountPosting)),
            (row(7, 4), Some(Value::AccountPosting)),
            (row(8, 1), Some(Value::AccountPosting)),
        ]);
        let (from, to) = (row(7, 0), row(8, 0));
        let seqs = |rows: Vec<(Key, Value)>| -> Vec<u64> {
            rows.into_iter()
                .map(|(k, _)| match k {
                    Key::AccountPosting(_, _, s) => s,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(seqs(state.range(&from, &to, 100)), [1, 3, 4, 5, 6, 7]);
        assert_eq!(seqs(state.range_rev(&from, &to, 100)), [7, 6, 5, 4, 3, 1]);
        assert_eq!(seqs(state.range_rev(&from, &to, 3)), [7, 6, 5]);
        assert_eq!(seqs(state.range_rev(&row(7, 2), &row(7, 5), 10)), [4, 3]);
    }
}
