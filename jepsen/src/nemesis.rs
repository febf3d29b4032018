//! The nemesis: faults on a schedule, each recorded in the history when it starts and when
//! it is healed, and all healed at the end of the run.

use crate::db::{Db, NODE_RESERVE_MIB};
use crate::history::{OpType, Process, Recorder};
use crate::net::{partitions, Network};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The kinds of fault `--nemesis` accepts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Network partitions: random halves, the leader isolated, a majority ring, a bridge.
    Partition,
    /// Random packet loss (10-40% of every node's incoming packets), with nftables.
    Loss,
    /// kill -9 of a random node or of the leader; restarted when healed.
    Kill,
    /// SIGSTOP of a random node or of the leader; SIGCONT when healed.
    Pause,
    /// A voter removed from the cluster (it keeps running); added back when healed.
    Membership,
    /// A node's wall clock (a random node's or the leader's) stepped forward or back by one
    /// minute to two hours, with libfaketime; its monotonic clock runs on. Back to true
    /// time when healed.
    Clock,
    /// Bytes flipped in a node's database file while it is stopped (kill -9, 1-8 random
    /// bytes of its sled `db` file, restart): it must stop on what it reads or go on
    /// unharmed. Healed by a scrub (`ledger-node scrub`, the node stopped); a node whose
    /// scrub fails is repaired: removed from the cluster, wiped, started empty, added back.
    /// One node at a time, a minority.
    Corrupt,
    /// A node's database filesystem (a tmpfs of its own) filled: to below its reserve of
    /// free space (a leader refuses writes with `DiskFull`) or to the last byte (a node whose
    /// write fails stops). Healed by removing the filler and starting the node if it stopped.
    Disk,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Loss => "loss",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Membership => "membership",
            Fault::Clock => "clock",
            Fault::Corrupt => "corrupt",
            Fault::Disk => "disk",
        }
    }
}

/// Smallest and largest step of a node's clock, either way, in seconds.
pub const CLOCK_STEP_SECS: (i64, i64) = (60, 7_200);

/// Most bytes the corruption nemesis flips in one node's database file.
pub const MAX_FLIPPED_BYTES: usize = 8;

/// Longest the end of a run keeps trying to heal a fault that will not heal.
pub const HEAL_DEADLINE: Duration = Duration::from_secs(120);

/// Most faults in force at once.
pub const MAX_CONCURRENT_FAULTS: usize = 2;

/// A fault in force, with what healing it needs.
#[derive(Clone, Debug)]
enum Active {
    Partition,
    Loss,
    Kill(u64),
    Pause(u64),
    Membership(u64),
    Clock(u64),
    Corrupt(u64),
    Disk(u64),
}

impl Active {
    fn fault(&self) -> Fault {
        match self {
            Active::Partition => Fault::Partition,
            Active::Loss => Fault::Loss,
            Active::Kill(_) => Fault::Kill,
            Active::Pause(_) => Fault::Pause,
            Active::Membership(_) => Fault::Membership,
            Active::Clock(_) => Fault::Clock,
            Active::Corrupt(_) => Fault::Corrupt,
            Active::Disk(_) => Fault::Disk,
        }
    }
}

pub struct Nemesis {
    pub faults: Vec<Fault>,
    pub interval: Duration,
    pub rng: StdRng,
    pub db: Arc<Mutex<Db>>,
    pub net: Arc<Mutex<Network>>,
    pub recorder: Recorder,
    active: Vec<Active>,
}

impl Nemesis {
    pub fn new(
        faults: Vec<Fault>,
        interval: Duration,
        rng: StdRng,
        db: Arc<Mutex<Db>>,
        net: Arc<Mutex<Network>>,
        recorder: Recorder,
    ) -> Self {
        Nemesis {
            faults,
            interval,
            rng,
            db,
            net,
            recorder,
            active: Vec::new(),
        }
    }

    fn record(&self, f: String, value: Value, error: Option<String>) {
        self.recorder
            .record(Process::NEMESIS, OpType::Info, &f, value, error);
    }

    /// Runs until `stop`, then heals everything still in force.
    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        if !self.faults.is_empty() {
            loop {
                let started = std::time::Instant::now();
                while started.elapsed() < self.interval && !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let idle: Vec<Fault> = self
                    .faults
                    .iter()
                    .copied()
                    .filter(|f| !self.active.iter().any(|a| a.fault() == *f))
                    .collect();
                let heal = self.active.len() >= MAX_CONCURRENT_FAULTS
                    || idle.is_empty()
                    || (!self.active.is_empty() && self.rng.gen_bool(0.5));
                if heal {
                    // Newest first: a removed voter is re-added only once the faults that
                    // came after it (and may have taken its quorum) are gone. One that does
                    // not heal goes behind the others, so that the next heal tries an
                    // older fault: kept on top, a voter that could not be re-added under
                    // an older partition was retried round after round while the
                    // partition stayed, and the cluster had no quorum for the rest of
                    // the run (vouchers, 54 s without an ok operation).
                    let newest = self.active.pop().expect("not empty");
                    if !self.heal(newest.clone()).await {
                        self.active.insert(0, newest);
                    }
                } else {
                    let fault = *idle.choose(&mut self.rng).expect("not empty");
                    self.start(fault).await;
                }
            }
        }
        // At the end every fault is healed, newest first; one that will not heal (a voter
        // that cannot be re-added yet) is tried again until HEAL_DEADLINE.
        let deadline = std::time::Instant::now() + HEAL_DEADLINE;
        while let Some(active) = self.active.pop() {
            if !self.heal(active.clone()).await && std::time::Instant::now() < deadline {
                self.active.insert(0, active);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        // Whatever else happened, the network is clean and every node runs at the end.
        let _ = self.net.lock().await.heal();
    }

    /// A fault that did not start is over at once (so the report does not shade the rest of
    /// the run).
    fn failed_start(&self, fault: Fault) {
        self.record(
            format!("stop-{}", fault.name()),
            Value::Null,
            Some("the fault did not start".into()),
        );
    }

    /// A node for a fault: the leader or a random one, among those running, not paused and
    /// not already removed, corrupted or filled by another fault.
    async fn target(&mut self) -> (u64, &'static str) {
        let taken: Vec<u64> = self
            .active
            .iter()
            .filter_map(|a| match a {
                Active::Membership(n) | Active::Corrupt(n) | Active::Disk(n) => Some(*n),
                _ => None,
            })
            .collect();
        let db = self.db.lock().await;
        let candidates: Vec<u64> = db
            .ids()
            .into_iter()
            .filter(|id| db.is_running(*id) && !db.is_paused(*id) && !taken.contains(id))
            .collect();
        if self.rng.gen_bool(0.5) {
            if let Some(leader) = db.some_leader().await.filter(|l| candidates.contains(l)) {
                return (leader, "leader");
            }
        }
        let all = if candidates.is_empty() {
            db.ids()
        } else {
            candidates
        };
        (*all.choose(&mut self.rng).expect("nodes"), "random")
    }

    async fn start(&mut self, fault: Fault) {
        let name = format!("start-{}", fault.name());
        match fault {
            Fault::Partition => {
                let ids = self.db.lock().await.ids();
                let mut shuffled = ids.clone();
                shuffled.shuffle(&mut self.rng);
                // With 3 nodes a majority ring is no partition at all: everyone hears everyone.
                let shapes: &[&str] = if ids.len() > 3 {
                    &["halves", "isolate-leader", "majority-ring", "bridge"]
                } else {
                    &["halves", "isolate-leader", "bridge"]
                };
                let shape = *shapes.choose(&mut self.rng).expect("shapes");
                let grudge = match shape {
                    "halves" => partitions::halves(&shuffled),
                    "majority-ring" => partitions::majority_ring(&shuffled),
                    "bridge" => partitions::bridge(&shuffled),
                    _ => {
                        let leader = self
                            .db
                            .lock()
                            .await
                            .some_leader()
                            .await
                            .unwrap_or(shuffled[0]);
                        partitions::isolate(&ids, leader)
                    }
                };
                let value = json!({"shape": shape, "drops": grudge.iter().map(|(k, v)| (k.to_string(), json!(v.iter().collect::<Vec<_>>()))).collect::<serde_json::Map<_, _>>()});
                let result = self.net.lock().await.set_grudge(grudge);
                self.record(name, value, result.as_ref().err().map(|e| e.to_string()));
                match result {
                    Ok(()) => self.active.push(Active::Partition),
                    Err(_) => self.failed_start(fault),
                }
            }
            Fault::Loss => {
                let percent = self.rng.gen_range(10..=40u8);
                let result = self.net.lock().await.set_loss(percent);
                self.record(
                    name,
                    json!({"percent": percent}),
                    result.as_ref().err().map(|e| e.to_string()),
                );
                match result {
                    Ok(()) => self.active.push(Active::Loss),
                    Err(_) => self.failed_start(fault),
                }
            }
            Fault::Kill => {
                let (node, how) = self.target().await;
                self.db.lock().await.kill(node);
                self.record(name, json!({"node": node, "chosen": how}), None);
                self.active.push(Active::Kill(node));
            }
            Fault::Pause => {
                let (node, how) = self.target().await;
                let paused = self.db.lock().await.pause(node);
                self.record(
                    name,
                    json!({"node": node, "chosen": how}),
                    (!paused).then(|| "node not running".to_owned()),
                );
                if paused {
                    self.active.push(Active::Pause(node));
                } else {
                    self.failed_start(fault);
                }
            }
            Fault::Clock => {
                let (node, _) = self.target().await;
                let size = self.rng.gen_range(CLOCK_STEP_SECS.0..=CLOCK_STEP_SECS.1);
                let offset = if self.rng.gen_bool(0.5) { size } else { -size };
                if self.step_clock(name, node, offset).await {
                    self.active.push(Active::Clock(node));
                } else {
                    self.failed_start(fault);
                }
            }
            Fault::Corrupt => {
                let (node, how) = self.target().await;
                let count = self.rng.gen_range(1..=MAX_FLIPPED_BYTES);
                let mut db = self.db.lock().await;
                db.kill(node);
                let flipped = db.flip_bytes(node, count, &mut self.rng);
                let started = flipped
                    .as_ref()
                    .map_err(|e| e.to_string())
                    .and_then(|_| db.start(node, false).map_err(|e| format!("restart: {e}")));
                drop(db);
                let value = json!({"node": node, "chosen": how, "flipped": flipped.as_ref().ok()});
                self.record(name, value, started.as_ref().err().cloned());
                // Even a failed restart leaves a node to heal.
                self.active.push(Active::Corrupt(node));
            }
            Fault::Disk => {
                let (node, how) = self.target().await;
                let to_the_last_byte = self.rng.gen_bool(0.5);
                let leave = if to_the_last_byte {
                    0
                } else {
                    NODE_RESERVE_MIB * 1024 * 1024 / 2
                };
                let result = self.db.lock().await.fill_disk(node, leave);
                self.record(
                    name,
                    json!({"node": node, "chosen": how, "free_bytes": result.as_ref().ok()}),
                    result.as_ref().err().map(|e| e.to_string()),
                );
                self.active.push(Active::Disk(node));
            }
            Fault::Membership => {
                let (node, how) = self.target().await;
                let client = self.db.lock().await.client(Duration::from_secs(2), 5);
                let result =
                    tokio::time::timeout(Duration::from_secs(15), client.remove_node(node)).await;
                let error = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("no answer within 15 s".to_owned()),
                };
                self.record(name, json!({"remove": node, "chosen": how}), error);
                // Even if the answer was lost the change may have happened: heal re-adds.
                self.active.push(Active::Membership(node));
            }
        }
    }

    /// Steps a node's clock and records it; false if the step failed.
    async fn step_clock(&self, name: String, node: u64, offset_secs: i64) -> bool {
        let result = self.db.lock().await.step_clock(node, offset_secs);
        self.record(
            name,
            json!({"node": node, "offset_s": offset_secs}),
            result.as_ref().err().map(|e| e.to_string()),
        );
        result.is_ok()
    }

    /// Heals the corruption of `node`: stopped, scrubbed; started again if every stored
    /// value checks, else repaired from its peers (removed, wiped, started empty, added
    /// back). False if the removal did not go through (no quorum yet): the node stays
    /// stopped and healing is tried again.
    async fn repair(&mut self, name: String, node: u64) -> bool {
        let (scrubbed, client) = {
            let mut db = self.db.lock().await;
            db.kill(node);
            (db.scrub(node), db.client(Duration::from_secs(2), 5))
        };
        let Err(report) = scrubbed else {
            let started = self.db.lock().await.start(node, false);
            self.record(
                name,
                json!({"node": node, "scrub": "clean"}),
                started.err().map(|e| e.to_string()),
            );
            return true;
        };
        let removed =
            match tokio::time::timeout(Duration::from_secs(15), client.remove_node(node)).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer within 15 s".to_owned()),
            };
        if let Some(error) = removed {
            self.record(
                "heal-failed".to_owned(),
                json!({"repair": node, "scrub": report}),
                Some(error),
            );
            return false;
        }
        let restarted = {
            let mut db = self.db.lock().await;
            db.wipe(node)
                .map_err(|e| format!("wipe: {e}"))
                .and_then(|()| db.start(node, false).map_err(|e| format!("restart: {e}")))
        };
        self.record(
            name,
            json!({"node": node, "scrub": report, "repair": "removed, wiped, restarted"}),
            restarted.err(),
        );
        // Adding it back is the membership fault's healing: tried until it goes through.
        self.active.push(Active::Membership(node));
        true
    }

    /// Heals a fault; false if it could not be healed (yet).
    async fn heal(&mut self, active: Active) -> bool {
        let name = format!("stop-{}", active.fault().name());
        match active {
            Active::Partition => {
                let result = self.net.lock().await.set_grudge(Default::default());
                self.record(name, Value::Null, result.err().map(|e| e.to_string()));
            }
            Active::Loss => {
                let result = self.net.lock().await.set_loss(0);
                self.record(name, Value::Null, result.err().map(|e| e.to_string()));
            }
            Active::Kill(node) => {
                let result = self.db.lock().await.start(node, false);
                self.record(
                    name,
                    json!({"node": node}),
                    result.err().map(|e| e.to_string()),
                );
            }
            Active::Pause(node) => {
                self.db.lock().await.resume(node);
                self.record(name, json!({"node": node}), None);
            }
            Active::Clock(node) => return self.step_clock(name, node, 0).await,
            Active::Corrupt(node) => return self.repair(name, node).await,
            Active::Disk(node) => {
                let mut db = self.db.lock().await;
                let mut result = db.free_disk(node).map_err(|e| e.to_string());
                // A node whose write failed has stopped: it starts again on the freed disk.
                if result.is_ok() && !db.is_running(node) {
                    result = db.start(node, false).map_err(|e| format!("restart: {e}"));
                }
                drop(db);
                self.record(name, json!({"node": node}), result.err());
            }
            Active::Membership(node) => {
                let (client, info) = {
                    let db = self.db.lock().await;
                    (db.client(Duration::from_secs(2), 5), db.info(node))
                };
                // Re-adding needs a quorum; if there is none yet, the fault stays in force
                // and healing is tried again at the next action.
                let error = match tokio::time::timeout(
                    Duration::from_secs(15),
                    client.add_node(info.clone()),
                )
                .await
                {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("no answer within 15 s".to_owned()),
                };
                let healed = error.is_none();
                if healed {
                    self.record(name, json!({"add": node}), None);
                } else {
                    self.record("heal-failed".to_owned(), json!({"add": node}), error);
                }
                return healed;
            }
        }
        true
    }
}
