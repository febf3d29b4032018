//! The simulated cluster: each node is the production node (`ledger_node::node::assemble`:
//! its Raft, storage, state machine, intake, proposer and SMS outbox loop) on the simulator's
//! router, its own virtual clock and the simulated SMS gateway. A crash stops a node's tasks
//! and closes its database; a restart reopens its data folder. A corrupted node (the
//! `storage` fault) is repaired as an operator would: removed from the membership, its data
//! wiped, started empty and added again.

use crate::clients::{endpoint, ClientNet};
use crate::merchants::Endpoints;
use crate::network::{Router, SimNetwork};
use crate::options::Bug;
use crate::phones::Gateway;
use crate::rng::SimRng;
use crate::storage::{
    FullDisks, Fullness, SimLogStore, SimStateMachine, Unflushed, LOST_WRITES_MS, SIM_RESERVE_BYTES,
};
use crate::trace::{lock, Trace};
use crate::{SimConfig, EPOCH_MS};
use ledger_core::intake::SecretKeys;
use ledger_node::disk::DiskReserve;
use ledger_node::intake::CpuWork;
use ledger_node::log_store::LogStore;
use ledger_node::node::{assemble, NodeParts, RunningNode};
use ledger_node::raft_types::{LogId, NodeAddr, NodeId};
use ledger_node::service::ClientService;
use ledger_node::stamp::Stamper;
use ledger_node::state_machine::{StateMachine, StateReader};
use ledger_node::state_store::STATE_TREE;
use ledger_node::webhooks::WebhookOptions;
use ledger_wire::webhook::Backoff;
use openraft::Raft;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a leader looks at its SMS outbox, virtual ms.
const SMS_INTERVAL_MS: u64 = 50;
const WEBHOOK_INTERVAL_MS: u64 = 100;
/// The webhook loop's back-off, shortened so that a run's virtual seconds see it retry.
const WEBHOOK_BACKOFF: Backoff = Backoff {
    first_ms: 100,
    max_ms: 2_000,
};
/// How many of a log's last entries the `storage` fault picks from: the ones a lagging
/// follower is most likely still to be sent.
const ROT_LOG_ENTRIES: usize = 16;
/// How long a restart waits for a crashed node's last tasks to let go of its database.
const REOPEN_TRIES: u32 = 200;
/// Before each of those waits (in virtual time), how many times a restart tries again in
/// real time, 1 ms apart, without letting virtual time move: sled closes a dropped
/// database's file (and its lock) when its memory reclamation gets to it, which another
/// thread of the process (a sled IO thread, another seed's run) may hold up for a moment of
/// real time. Waiting for that in virtual time made a run's timing depend on the machine's
/// (a restart 220 virtual ms late, seen with two seeds run at once).
const REOPEN_REAL_TRIES: u32 = 100;
/// Turns the runtime is given (no virtual time passing) before those real-time tries.
const REOPEN_YIELDS: u32 = 16;

/// The bank's keys, the same on every node (as the master key file is in production).
pub fn keys() -> SecretKeys {
    SecretKeys::derive(b"simulator master key", 1)
}

/// Per-node clock offsets: a node's clock stepping back or forward.
#[derive(Clone, Default)]
pub struct ClockOffsets(Arc<Mutex<BTreeMap<NodeId, i64>>>);

impl ClockOffsets {
    pub fn set(&self, node: NodeId, offset_ms: i64) {
        lock(&self.0).insert(node, offset_ms);
    }
}

/// A node's wall clock: virtual time since the run began, from `EPOCH_MS`, plus its offset.
struct SimClock {
    node: NodeId,
    offsets: ClockOffsets,
    started: tokio::time::Instant,
}

impl Stamper for SimClock {
    fn now_ms(&self) -> u64 {
        let elapsed = self.started.elapsed().as_millis() as u64;
        let offset = *lock(&self.offsets.0).get(&self.node).unwrap_or(&0);
        (EPOCH_MS + elapsed).saturating_add_signed(offset)
    }
}

/// A running simulated node.
pub struct SimNode {
    pub node: RunningNode<SimConfig>,
    /// Its database, for the `storage` fault and the scrub after healing.
    pub db: sled::Db,
    /// A reader of the node's log, for the "committed entries never change" check.
    pub log: LogStore<SimConfig>,
}

impl SimNode {
    pub fn raft(&self) -> &Raft<SimConfig> {
        self.node.raft()
    }

    pub fn reader(&self) -> &StateReader {
        &self.node.shared.reader
    }
}

/// The simulated cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub router: Router,
    pub clients: ClientNet,
    pub nodes: BTreeMap<NodeId, SimNode>,
    pub clocks: ClockOffsets,
    pub gateway: Arc<Gateway>,
    /// The merchants' webhook endpoint.
    pub endpoints: Arc<Endpoints>,
    pub rng: SimRng,
    pub trace: Trace,
    /// With `storage-acks-before-flush`: per node, (index, virtual ms) of appended entries
    /// that a crash within `LOST_WRITES_MS` loses.
    pub unflushed: Unflushed,
    /// Log indexes from which a crashed node's log is lost (applied at its restart).
    pub lost_suffix: BTreeMap<NodeId, u64>,
    /// Crashed nodes whose state machine comes back behind their log at restart (at its last
    /// snapshot), with what they had applied when they crashed.
    pub state_behind: BTreeMap<NodeId, Option<LogId>>,
    /// Whether a crash loses the state's unflushed writes (`STATE_LOSS_CHANCE`).
    pub state_loss_rng: SimRng,
    /// Slow disks: virtual ms each log append of a node takes.
    pub disk_delay_ms: BTreeMap<NodeId, u64>,
    pub started: tokio::time::Instant,
    pub bug: Option<Bug>,
    /// Nodes whose stored data the `storage` fault corrupted, until they are wiped.
    pub corrupted: BTreeSet<NodeId>,
    /// The disks the nemesis filled, and how full.
    pub disks: FullDisks,
    /// Nodes that ran out of disk space since they last started: they may stop on a failed
    /// write (and are restarted once there is room).
    pub ran_out: BTreeSet<NodeId>,
}

impl Cluster {
    pub fn trace(&self, line: &str) {
        self.trace.line(line);
    }

    /// Starts (or restarts) a node from its data folder.
    pub async fn start(&mut self, id: NodeId) -> bool {
        let dir = self.dir.join(format!("node{id}"));
        let Some(db) = self.open_db(id, &dir).await else {
            return false;
        };
        if let Some(from) = self.lost_suffix.remove(&id) {
            lose_log_suffix(&db, from);
        }
        let mut log_reader = LogStore::<SimConfig>::open(&db).expect("log store");
        // A store that acknowledges before flushing (the planted bug) keeps no watermark.
        if self.bug != Some(Bug::StorageAcksBeforeFlush) {
            let watermark = dir.join(ledger_node::node::WATERMARK_FILE);
            match log_reader.with_watermark(&watermark) {
                Ok(store) => log_reader = store,
                Err(e) => {
                    self.trace(&format!("start {id} refused: {e}\n"));
                    return false;
                }
            }
        }
        if self.bug == Some(Bug::LogSkipsChecksums) {
            log_reader = log_reader.skipping_checksums();
        }
        let log = SimLogStore {
            inner: log_reader.clone(),
            id,
            disk_delay_ms: *self.disk_delay_ms.get(&id).unwrap_or(&0),
            started: self.started,
            unflushed: (self.bug == Some(Bug::StorageAcksBeforeFlush))
                .then(|| self.unflushed.clone()),
            disks: self.disks.clone(),
            ignores_full_disk: self.bug == Some(Bug::LogIgnoresFullDisk),
        };
        // A node whose stored data is corrupt may refuse to open it: it does not start.
        let behind = self.state_behind.remove(&id);
        if behind.is_some() {
            if let Err(e) = db.open_tree(STATE_TREE).and_then(|state| state.clear()) {
                self.trace(&format!("start {id} refused: {e}\n"));
                return false;
            }
        }
        let mut inner = match StateMachine::<SimConfig>::open(&db, &dir.join("snapshots")) {
            Ok(inner) => inner,
            Err(e) => {
                self.trace(&format!("start {id} refused: {e}\n"));
                return false;
            }
        };
        if behind.is_some() {
            match back_to_last_snapshot(&mut inner).await {
                Ok(at) => self.trace(&format!(
                    "node {id} state back at its last snapshot {:?}\n",
                    at.map(|l| l.index)
                )),
                Err(e) => {
                    self.trace(&format!("start {id} refused: {e}\n"));
                    return false;
                }
            }
        }
        let reader = inner.reader();
        let sm = SimStateMachine {
            inner,
            applies_twice: self.bug == Some(Bug::NodeAppliesTwice) && id == 1,
            claims_applied: behind
                .flatten()
                .filter(|_| self.bug == Some(Bug::StateAcksBeforeFlush)),
            id,
            disks: self.disks.clone(),
        };
        // Election timeouts from the seed, max = min + 1: openraft's own random draw
        // then has nothing to choose.
        let min = 300 + self.rng.below(300);
        let network = SimNetwork {
            id,
            router: self.router.clone(),
        };
        let raft = match Raft::new(id, Arc::new(raft_config(min)), network, log, sm).await {
            Ok(raft) => raft,
            Err(e) => {
                self.trace(&format!("start {id} refused: {e}\n"));
                return false;
            }
        };
        lock(&self.router.0).nodes.insert(id, raft.clone());
        let node = assemble(NodeParts {
            id,
            raft,
            reader,
            db: db.clone(),
            keys: keys(),
            stamper: Arc::new(SimClock {
                node: id,
                offsets: self.clocks.clone(),
                started: self.started,
            }),
            sms: self.gateway.clone(),
            sms_interval: Duration::from_millis(SMS_INTERVAL_MS),
            webhooks: self.endpoints.clone(),
            webhook_options: WebhookOptions {
                interval: Duration::from_millis(WEBHOOK_INTERVAL_MS),
                backoff: WEBHOOK_BACKOFF,
            },
            cpu: CpuWork::Inline,
            unsafe_local_reads: false,
            disk: Some(DiskReserve::simulated(
                {
                    let disks = self.disks.clone();
                    Arc::new(move || crate::storage::free_bytes(&disks, id))
                },
                SIM_RESERVE_BYTES,
            )),
            planted: self.bug.and_then(Bug::planted),
            // From the draw above: no draw of its own, so that the rest of the run's draws
            // stay as they were.
            election_seed: (id << 32) ^ min,
        });
        self.clients.open(
            id,
            ClientService::new(
                node.shared.clone(),
                ledger_node::service::plaintext_principal(),
            ),
        );
        self.nodes.insert(
            id,
            SimNode {
                node,
                db,
                log: log_reader,
            },
        );
        if crate::storage::fullness(&self.disks, id) != Some(Fullness::NoSpace) {
            self.ran_out.remove(&id);
        }
        self.trace(&format!("start {id} election {min}\n"));
        true
    }

    /// Fills a node's disk: below its reserve, or to the last byte.
    pub fn fill_disk(&mut self, id: NodeId, how: Fullness) {
        lock(&self.disks).insert(id, how);
        if how == Fullness::NoSpace {
            self.ran_out.insert(id);
        }
        self.trace(&format!("fill disk {id} {how:?}\n"));
    }

    /// Gives a node's disk room again. A node that stopped on a failed write is crashed
    /// (what its operator does, before restarting it once the disk has room): whether it was.
    /// The restart is left for later, as after any crash: the node's last tasks may hold its
    /// database for a while.
    pub async fn free_disk(&mut self, id: NodeId) -> bool {
        if lock(&self.disks).remove(&id).is_none() {
            return false;
        }
        self.trace(&format!("free disk {id}\n"));
        let stopped = self
            .nodes
            .get(&id)
            .is_some_and(|n| n.raft().metrics().borrow().running_state.is_err());
        if stopped {
            self.crash(id).await;
        }
        stopped
    }

    /// Opens a node's database. sled may not have closed the crashed node's file yet (see
    /// `REOPEN_REAL_TRIES`); the node's last tasks may still hold it for a few virtual
    /// milliseconds: wait for them, up to `REOPEN_TRIES` × 10 ms.
    async fn open_db(&self, id: NodeId, dir: &std::path::Path) -> Option<sled::Db> {
        let open = || {
            sled::Config::new()
                .path(dir.join("sled"))
                .flush_every_ms(None)
                .open()
        };
        for _ in 0..REOPEN_TRIES {
            // The node's aborted tasks let go of it when the runtime drops them.
            for _ in 0..REOPEN_YIELDS {
                tokio::task::yield_now().await;
            }
            for _ in 0..REOPEN_REAL_TRIES {
                match open() {
                    Ok(db) => return Some(db),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.trace(&format!(
            "restart {id} failed: the database stayed locked\n"
        ));
        None
    }

    pub async fn crash(&mut self, id: NodeId) {
        lock(&self.router.0).nodes.remove(&id);
        self.clients.close(id);
        let mut applied = None;
        if let Some(node) = self.nodes.remove(&id) {
            applied = node.raft().metrics().borrow().last_applied;
            node.node.shutdown().await;
        }
        self.trace(&format!("crash {id}\n"));
        // The state machine's batches are not flushed on their own (durability from the
        // log): a crash may lose what it applied since the database's last flush, at worst
        // back to its last snapshot (flushed before it was built). Sled keeps everything in
        // the simulator, so the restart takes the state back there. A corrupted node keeps
        // its corruption for the checks that it is found.
        if !self.corrupted.contains(&id) && self.state_loss_rng.chance(STATE_LOSS_CHANCE) {
            self.state_behind.insert(id, applied);
            self.trace(&format!("node {id} loses its unflushed state\n"));
        }
        // The planted storage bug: what was acknowledged but not yet durable is gone.
        let now = self.started.elapsed().as_millis() as u64;
        let entries = lock(&self.unflushed).remove(&id).unwrap_or_default();
        let lost = entries
            .into_iter()
            .filter(|(_, at)| now.saturating_sub(*at) < LOST_WRITES_MS)
            .map(|(i, _)| i)
            .min();
        if let Some(first) = lost {
            self.lost_suffix.insert(id, first);
            self.trace(&format!("node {id} loses log entries from {first}\n"));
        }
    }

    /// The `storage` fault: flips one bit of one stored value of running node `id`, as a
    /// disk would under it: of one of the last `ROT_LOG_ENTRIES` log entries, or of any
    /// ledger record, as the seed picks. The bit is in the value, not its checksum, so that a
    /// store that skips the check reads a changed value. Returns what it flipped.
    pub fn rot(&mut self, id: NodeId) -> Option<String> {
        let db = self.nodes.get(&id)?.db.clone();
        let name = if self.rng.chance(0.5) {
            "raft_log"
        } else {
            "state"
        };
        let tree = db.open_tree(name).ok()?;
        let keys: Vec<sled::IVec> = if name == "raft_log" {
            let mut keys: Vec<_> = tree
                .iter()
                .keys()
                .rev()
                .take(ROT_LOG_ENTRIES)
                .collect::<Result<_, _>>()
                .ok()?;
            keys.reverse();
            keys
        } else {
            let end = [ledger_node::state_store::META_PREFIX];
            tree.range(..end.as_slice())
                .keys()
                .collect::<Result<_, _>>()
                .ok()?
        };
        if keys.is_empty() {
            return None;
        }
        let key = keys[self.rng.below(keys.len() as u64) as usize].clone();
        let mut value = tree.get(&key).ok()??.to_vec();
        let bits = (value
            .len()
            .checked_sub(ledger_node::checksum::CHECKSUM_LEN)?
            * 8) as u64;
        if bits == 0 {
            return None;
        }
        let bit = self.rng.below(bits) as usize;
        value[bit / 8] ^= 1 << (bit % 8);
        tree.insert(&key, value).ok()?;
        self.corrupted.insert(id);
        let flipped = format!("{name} key {key:02x?} bit {bit}");
        self.trace(&format!("rot {id}: {flipped}\n"));
        Some(flipped)
    }

    /// Reads every stored value of running node `id` and checks it: the first corruption.
    pub fn scrub(&self, id: NodeId) -> Result<(), String> {
        let Some(node) = self.nodes.get(&id) else {
            return Ok(());
        };
        ledger_node::checksum::scrub(&node.db, &self.dir.join(format!("node{id}")))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Deletes a stopped node's data folder: it starts empty next time.
    pub fn wipe(&mut self, id: NodeId) {
        let _ = std::fs::remove_dir_all(self.dir.join(format!("node{id}")));
        self.corrupted.remove(&id);
        self.lost_suffix.remove(&id);
        self.state_behind.remove(&id);
        self.trace(&format!("wipe {id}\n"));
    }

    /// The leader with the highest term, as the simulator (not a client) sees it.
    pub fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(u64, NodeId)> = None;
        for (id, node) in &self.nodes {
            let m = node.raft().metrics().borrow().clone();
            if m.current_leader == Some(*id) && best.is_none_or(|(term, _)| m.current_term > term) {
                best = Some((m.current_term, *id));
            }
        }
        best.map(|(_, id)| id)
    }
}

/// The Raft configuration of a simulated node: faster than production, so that a run of
/// a few virtual seconds sees elections, snapshots and log purges.
fn raft_config(election_timeout_min: u64) -> openraft::Config {
    openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min,
        election_timeout_max: election_timeout_min + 1,
        install_snapshot_timeout: 2_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(200),
        max_in_snapshot_log_to_keep: 50,
        purge_batch_size: 16,
        ..Default::default()
    }
    .validate()
    .expect("valid config")
}

/// How often a crash brings a node's state machine back at its last snapshot, behind its log.
pub const STATE_LOSS_CHANCE: f64 = 0.5;

/// Takes a restarted node's state back to its last snapshot (or to nothing, without one),
/// as a crash that lost every state write since then would: wiped before the state machine
/// opened, the snapshot installed now. Returns where the state now stands.
async fn back_to_last_snapshot(
    sm: &mut StateMachine<SimConfig>,
) -> Result<Option<LogId>, ledger_node::raft_types::StorageError> {
    use openraft::storage::RaftStateMachine;
    let Some(snapshot) = sm.get_current_snapshot().await? else {
        return Ok(None);
    };
    sm.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await?;
    Ok(snapshot.meta.last_log_id)
}

/// `storage-acks-before-flush`: a crashed node's log loses its entries from `from` on.
fn lose_log_suffix(db: &sled::Db, from: u64) {
    let tree = db.open_tree("raft_log").expect("log tree");
    let keys: Vec<sled::IVec> = tree
        .range(from.to_be_bytes()..)
        .keys()
        .filter_map(Result::ok)
        .collect();
    for k in keys {
        let _ = tree.remove(k);
    }
    let _ = db.flush();
}

/// The Raft membership entry of a simulated node.
pub fn node_addr(id: NodeId) -> NodeAddr {
    NodeAddr {
        raft: endpoint(id),
        client: endpoint(id),
    }
}
