//! What a run simulates: the seed, the cluster's size, the faults, a planted bug.

use ledger_node::planted::PlantedBug;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    pub nodes: u64,
    /// Virtual seconds of faults and load, before healing.
    pub duration_s: u64,
    pub clients: u64,
    /// Turn faults on.
    pub faults: bool,
    /// Which kinds of fault (all by default).
    pub kinds: FaultKinds,
    /// A deliberately broken piece, to show the checks catch it.
    pub bug: Option<Bug>,
    /// Where the nodes' data folders go (a fresh folder under it per run); `None`:
    /// `default_scratch()`.
    pub scratch: Option<std::path::PathBuf>,
}

/// Where runs keep their nodes' files unless told: `/dev/shm` when it is a folder we may
/// write (a RAM filesystem on Linux: the nodes' sled files then cost no disk writes, and
/// crashes are simulated at the storage boundary, not by the disk), else the system's
/// temporary folder.
pub fn default_scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let writable = shm.is_dir()
        && tempfile::Builder::new()
            .prefix("ledger-sim-probe-")
            .tempfile_in(shm)
            .is_ok();
    if writable {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// A kind of fault a run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Message loss, duplication and delay, between nodes and between clients and nodes.
    Network,
    /// Partitions, isolating the leader, clogging single links.
    Partitions,
    /// Crashes and restarts.
    Crashes,
    /// Node clock steps of up to an hour either way.
    Clocks,
    /// Slow disks, and full ones (below the reserve, or to the last byte).
    Disks,
    /// A spare node joining and leaving.
    Membership,
    /// The SMS gateway refusing messages now and then.
    Sms,
    /// A bit flipped in a stored log entry or state record of one node at a time: the node
    /// must stop rather than use it, and is repaired (removed, wiped, rejoined).
    Storage,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Network,
        FaultKind::Partitions,
        FaultKind::Crashes,
        FaultKind::Clocks,
        FaultKind::Disks,
        FaultKind::Membership,
        FaultKind::Sms,
        FaultKind::Storage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Network => "network",
            FaultKind::Partitions => "partitions",
            FaultKind::Crashes => "crashes",
            FaultKind::Clocks => "clocks",
            FaultKind::Disks => "disks",
            FaultKind::Membership => "membership",
            FaultKind::Sms => "sms",
            FaultKind::Storage => "storage",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of fault kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultKinds(u8);

impl FaultKinds {
    pub const NONE: FaultKinds = FaultKinds(0);

    pub fn all() -> FaultKinds {
        FaultKind::ALL
            .into_iter()
            .fold(FaultKinds::NONE, FaultKinds::with)
    }

    pub fn with(self, kind: FaultKind) -> FaultKinds {
        FaultKinds(self.0 | kind.bit())
    }

    pub fn contains(self, kind: FaultKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Parses a comma-separated list of fault names (`FaultKind::name`).
    pub fn parse(list: &str) -> Result<FaultKinds, String> {
        let mut kinds = FaultKinds::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match FaultKind::ALL.into_iter().find(|k| k.name() == name) {
                Some(kind) => kinds = kinds.with(kind),
                None => {
                    let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                    return Err(format!("unknown fault `{name}`: {}", known.join(", ")));
                }
            }
        }
        Ok(kinds)
    }
}

/// Deliberately broken variants: of the pieces at the simulator's boundaries (a client
/// application, the network, the storage) and of the node's own code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// An application that retries an operation whose outcome it did not learn under a new
    /// idempotency key.
    ClientForgetsKey,
    /// A network that delivers an answer twice: a client's next call gets its previous
    /// answer again, and its own is lost.
    NetworkDuplicatesAnswer,
    /// A node that applies a committed entry twice.
    NodeAppliesTwice,
    /// A log store that acknowledges appends before they are durable: a crash loses the
    /// last `LOST_WRITES_MS` of acknowledged entries.
    StorageAcksBeforeFlush,
    /// A state machine that takes what it applied as durable: after a crash that took its
    /// state back to its last snapshot it reports what it had applied before, so the entries
    /// in between are never applied again on that replica.
    StateAcksBeforeFlush,
    /// A log store that reads entries without checking their checksums: a bit the disk
    /// flipped reaches a follower or the state machine.
    LogSkipsChecksums,
    /// A log store that goes on after an append failed for want of space, reporting the
    /// entries durable: the node keeps serving (and voting) on a log it does not have.
    LogIgnoresFullDisk,
    /// A bug planted in the node's intake, proposer or SMS outbox.
    Node(PlantedBug),
}

impl Bug {
    pub fn all() -> Vec<Bug> {
        let mut all = vec![
            Bug::ClientForgetsKey,
            Bug::NetworkDuplicatesAnswer,
            Bug::NodeAppliesTwice,
            Bug::StorageAcksBeforeFlush,
            Bug::StateAcksBeforeFlush,
            Bug::LogSkipsChecksums,
            Bug::LogIgnoresFullDisk,
        ];
        all.extend(PlantedBug::ALL.map(Bug::Node));
        all
    }

    pub fn name(self) -> &'static str {
        match self {
            Bug::ClientForgetsKey => "client-forgets-key",
            Bug::NetworkDuplicatesAnswer => "network-duplicates-answer",
            Bug::NodeAppliesTwice => "node-applies-twice",
            Bug::StorageAcksBeforeFlush => "storage-acks-before-flush",
            Bug::StateAcksBeforeFlush => "state-acks-before-flush",
            Bug::LogSkipsChecksums => "log-skips-checksums",
            Bug::LogIgnoresFullDisk => "log-ignores-full-disk",
            Bug::Node(bug) => bug.name(),
        }
    }

    pub fn parse(name: &str) -> Option<Bug> {
        Bug::all().into_iter().find(|b| b.name() == name)
    }

    /// The bug planted in the node's code, if this is one.
    pub fn planted(self) -> Option<PlantedBug> {
        match self {
            Bug::Node(bug) => Some(bug),
            _ => None,
        }
    }
}
