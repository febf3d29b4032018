//! What the log store has told openraft is durable, kept outside sled: the last log id and
//! the vote, in a small file of its own (`<data dir>/raft-watermark`).
//!
//! Why: sled recovers its log-structured file up to the first message that fails its own
//! checksum and silently drops everything after it. A node whose database file had a few
//! bytes flipped came back (in the chaos harness) with its log and state from long before,
//! but with its vote for itself as leader of the same term: it led again and made the
//! followers truncate entries they had committed. Raft is safe only if a replica never
//! forgets what it acknowledged, so at start the log store compares what sled recovered
//! with this watermark and refuses to run on a log or vote that went back.
//!
//! The file holds two slots, written alternately, each with a sequence number and a CRC-32:
//! a write torn at a crash leaves the other slot whole. A slot is written after the sled
//! flush it describes, without an fsync of its own (it survives a killed process, which is
//! what the page cache keeps; a power loss may leave it one write behind, which only makes
//! the check weaker, never wrong).

use crate::raft_types::{LogId, NodeId};
use openraft::Vote;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes of one slot.
const SLOT: usize = 128;

/// What was durable when the watermark was last written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub last_log: Option<LogId>,
    pub vote: Option<Vote<NodeId>>,
}

/// The watermark file of one node.
pub struct Watermark {
    state: Mutex<(File, u64, Mark)>,
}

/// The watermark file is unreadable: both slots fail their checksums.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no slot passes its checksum (the file is damaged)")]
    Damaged(PathBuf),
}

fn decode_slot(bytes: &[u8]) -> Option<(u64, Mark)> {
    let len = u16::from_be_bytes(bytes.get(8..10)?.try_into().ok()?) as usize;
    let body_end = 10usize.checked_add(len)?;
    let sum = bytes.get(body_end..body_end + 4)?;
    if crc32fast::hash(&bytes[..body_end]).to_be_bytes() != sum {
        return None;
    }
    let seq = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let mark = bincode::deserialize(&bytes[10..body_end]).ok()?;
    Some((seq, mark))
}

impl Watermark {
    /// Opens (or creates) the watermark at `path`; returns it with the mark it holds, `None`
    /// for a new file.
    pub fn open(path: &Path) -> Result<(Watermark, Option<Mark>), WatermarkError> {
        let io = |source| WatermarkError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let found = if bytes.is_empty() {
            None
        } else {
            let best = bytes
                .chunks(SLOT)
                .filter_map(decode_slot)
                .max_by_key(|(seq, _)| *seq);
            match best {
                Some(found) => Some(found),
                None => return Err(WatermarkError::Damaged(path.to_owned())),
            }
        };
        let (seq, mark) = found.clone().unwrap_or_default();
        let watermark = Watermark {
            state: Mutex::new((file, seq, mark)),
        };
        Ok((watermark, found.map(|(_, mark)| mark)))
    }

    /// Records what is now durable in sled: `change` edits the last mark.
    pub fn record(&self, change: impl FnOnce(&mut Mark)) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (file, seq, mark) = &mut *state;
        change(mark);
        *seq += 1;
        let body = bincode::serialize(mark).map_err(std::io::Error::other)?;
        let mut slot = Vec::with_capacity(SLOT);
        slot.extend_from_slice(&seq.to_be_bytes());
        slot.extend_from_slice(&(body.len() as u16).to_be_bytes());
        slot.extend_from_slice(&body);
        let sum = crc32fast::hash(&slot);
        slot.extend_from_slice(&sum.to_be_bytes());
        assert!(
            slot.len() <= SLOT,
            "a watermark slot holds a log id and a vote"
        );
        slot.resize(SLOT, 0);
        file.seek(SeekFrom::Start((*seq % 2) * SLOT as u64))?;
        file.write_all(&slot)
    }
}

/// What sled recovered, against the watermark: `Err` names what went back.
pub fn check(
    watermark: &Mark,
    last_log: Option<LogId>,
    vote: Option<Vote<NodeId>>,
) -> Result<(), String> {
    let index = |l: Option<LogId>| l.map(|l| l.index);
    if index(last_log) < index(watermark.last_log) {
        return Err(format!(
            "the log lost acknowledged entries: the database holds it up to {:?}, but up to {:?} was durable (its files are damaged; repair the node from its peers)",
            last_log, watermark.last_log
        ));
    }
    if let Some(durable) = &watermark.vote {
        if vote.as_ref().is_none_or(|v| v < durable) {
            return Err(format!(
                "the vote went back: the database holds {vote:?}, but {durable:?} was durable (its files are damaged; repair the node from its peers)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    /// The mark survives reopening, a torn slot leaves the other, and a log or vote behind
    /// the mark is refused while one at or past it passes.
    #[test]
    fn the_mark_survives_a_torn_slot_and_catches_a_log_that_went_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-watermark");
        let (w, found) = Watermark::open(&path).unwrap();
        assert_eq!(found, None);
        w.record(|m| m.vote = Some(Vote::new(3, 1))).unwrap();
        w.record(|m| m.last_log = log(3, 40)).unwrap();
        drop(w);
        let (w, found) = Watermark::open(&path).unwrap();
        let mark = found.unwrap();
        assert_eq!(mark.last_log, log(3, 40));
        assert_eq!(mark.vote, Some(Vote::new(3, 1)));
        w.record(|m| m.last_log = log(3, 41)).unwrap();
        drop(w);

        // The newest slot torn: the one before it is what counts.
        let mut bytes = std::fs::read(&path).unwrap();
        // Three records: the third went to slot 1 (sequence 3, odd).
        let newest = SLOT;
        bytes[newest + 12] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        let (_, found) = Watermark::open(&path).unwrap();
        assert_eq!(found.unwrap().last_log, log(3, 40));

        let vote = Some(Vote::new(3, 1));
        assert!(check(&mark, log(3, 40), vote).is_ok());
        assert!(check(&mark, log(4, 45), Some(Vote::new(4, 2))).is_ok());
        let lost = check(&mark, log(3, 25), vote).unwrap_err();
        assert!(lost.contains("lost acknowledged entries"), "{lost}");
        let back = check(&mark, log(3, 40), Some(Vote::new(2, 1))).unwrap_err();
        assert!(back.contains("vote went back"), "{back}");

        // Both slots damaged: refused, not taken for a new node.
        std::fs::write(&path, vec![0xAB; 2 * SLOT]).unwrap();
        assert!(matches!(
            Watermark::open(&path),
            Err(WatermarkError::Damaged(_))
        ));
    }
}
