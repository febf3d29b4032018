//! Every value the node keeps in sled ends with a CRC-32 of its key and its bytes, checked on
//! every read: a bit the disk flipped, a torn or misdirected write (a value under another
//! key) is found before the replica applies, serves or sends what it read. sled checksums
//! its own log segments, but only while it recovers them; this covers a value from the moment
//! it is written to every later read.
//!
//! A replica that finds corruption stops: its log store returns a storage error (openraft
//! halts, `ledger-node run` exits 1), its state machine refuses to apply. `ledger-node scrub`
//! reads a stopped node's every record; the way back for a corrupted replica is to wipe its
//! data and let it rejoin from its peers (ARCHITECTURE.md, "Corrupted storage").

/// Bytes of the checksum at the end of every stored value.
pub const CHECKSUM_LEN: usize = 4;

/// A stored value whose checksum does not match its key and bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("storage corruption: the value stored in tree `{tree}` under key {key} fails its checksum")]
pub struct Corrupt {
    pub tree: &'static str,
    /// The key in hex (keys hold no secrets: ids, indexes, tags).
    pub key: String,
}

fn crc(key: &[u8], value: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(key.len() as u32).to_be_bytes());
    hasher.update(key);
    hasher.update(value);
    hasher.finalize()
}

/// `value` with its checksum under `key` appended: what goes into sled.
pub fn seal(key: &[u8], mut value: Vec<u8>) -> Vec<u8> {
    let sum = crc(key, &value);
    value.extend_from_slice(&sum.to_be_bytes());
    value
}

/// The value stored under `key` in `tree`, its checksum checked and removed.
pub fn unseal<'a>(tree: &'static str, key: &[u8], stored: &'a [u8]) -> Result<&'a [u8], Corrupt> {
    let corrupt = || Corrupt {
        tree,
        key: hex(key),
    };
    let split = stored.len().checked_sub(CHECKSUM_LEN).ok_or_else(corrupt)?;
    let (value, sum) = stored.split_at(split);
    if crc(key, value).to_be_bytes() != sum {
        return Err(corrupt());
    }
    Ok(value)
}

/// The value without its checksum, unchecked: only for the simulator's planted bug of a
/// store that skips verification.
pub fn strip(stored: &[u8]) -> &[u8] {
    &stored[..stored.len().saturating_sub(CHECKSUM_LEN)]
}

/// What a scrub read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scrubbed {
    /// Values read and found whole, per tree.
    pub values: Vec<(&'static str, u64)>,
    /// The snapshot file's log position, if there is one.
    pub snapshot: Option<crate::raft_types::LogId>,
}

/// Why a scrub failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("reading tree `{tree}`: {source}")]
    Read {
        tree: &'static str,
        source: sled::Error,
    },
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    #[error("the snapshot: {0}")]
    Snapshot(std::io::Error),
    #[error(transparent)]
    Watermark(#[from] crate::watermark::WatermarkError),
    #[error("{0}")]
    WentBack(String),
}

/// Reads every value of a node's database (log, Raft markers, state) and its snapshot file,
/// checks each checksum, and checks that the log and vote are not behind the watermark (what
/// was durable): the first fault found is the error. For a node that is stopped (`ledger-node
/// scrub`), or, in the simulator, one whose tasks are not running. `data_dir` holds the
/// snapshot folder and the watermark file.
pub fn scrub(db: &sled::Db, data_dir: &std::path::Path) -> Result<Scrubbed, ScrubError> {
    use crate::log_store::{LOG_TREE, META_TREE};
    use crate::state_store::STATE_TREE;
    let mut values = Vec::new();
    let mut last_log = None;
    let mut markers = std::collections::BTreeMap::new();
    for name in [LOG_TREE, META_TREE, STATE_TREE] {
        let read = |source| ScrubError::Read { tree: name, source };
        let tree = db.open_tree(name).map_err(read)?;
        let mut count = 0;
        for row in tree.iter() {
            let (key, stored) = row.map_err(read)?;
            let value = unseal(name, &key, &stored)?;
            if name == LOG_TREE {
                // An entry's encoding starts with its log id.
                last_log = bincode::deserialize::<crate::raft_types::LogId>(value).ok();
            } else if name == META_TREE {
                markers.insert(key.to_vec(), value.to_vec());
            }
            count += 1;
        }
        values.push((name, count));
    }
    let snapshot = crate::state_machine::check_snapshot_file(&data_dir.join("snapshots"))
        .map_err(ScrubError::Snapshot)?;
    let watermark = data_dir.join(crate::node::WATERMARK_FILE);
    if watermark.exists() {
        if let (_, Some(durable)) = crate::watermark::Watermark::open(&watermark)? {
            let marker = |key: &[u8]| markers.get(key).cloned().unwrap_or_default();
            let purged: Option<crate::raft_types::LogId> =
                bincode::deserialize(&marker(crate::log_store::PURGED)).ok();
            let vote: Option<openraft::Vote<crate::raft_types::NodeId>> =
                bincode::deserialize(&marker(crate::log_store::VOTE)).ok();
            crate::watermark::check(&durable, last_log.or(purged), vote)
                .map_err(ScrubError::WentBack)?;
        }
    }
    Ok(Scrubbed { values, snapshot })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every single flipped bit of a sealed value is found, as is the value read back under
    /// another key (a misdirected write) or cut short (a torn one).
    #[test]
    fn any_flipped_bit_a_wrong_key_or_a_torn_value_is_found() {
        let key = 42u64.to_be_bytes();
        let sealed = seal(&key, b"transfer 100 fen from 1 to 2".to_vec());
        assert_eq!(
            unseal("raft_log", &key, &sealed),
            Ok(&b"transfer 100 fen from 1 to 2"[..])
        );
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                unseal("raft_log", &key, &flipped),
                Err(Corrupt {
                    tree: "raft_log",
                    key: "000000000000002a".into()
                }),
                "bit {bit}"
            );
        }
        assert!(unseal("raft_log", &43u64.to_be_bytes(), &sealed).is_err());
        for len in 0..sealed.len() {
            assert!(unseal("raft_log", &key, &sealed[..len]).is_err(), "{len}");
        }
        assert_eq!(strip(&sealed), &sealed[..sealed.len() - CHECKSUM_LEN]);
    }
}
