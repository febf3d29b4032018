//! The nemesis: one fault decision every 200-1,000 virtual ms, drawn from the seed. One
//! partition at a time: a new one only once every link of the last is unclogged (one by one,
//! in the seed's order: FoundationDB's swizzle), so runs alternate between trouble and
//! progress. At most one node crashed at once; crashed nodes restart on a later draw. At
//! most one node's storage corrupted at once: once it stops on what it found (or cannot
//! start), it is repaired (removed, wiped, added again), one membership change at a time.
//! At most one node's disk full at once (below its reserve, or to the last byte) for 0.5-3
//! s; then it has room again, and a node a failed write stopped restarts on a later draw.

use crate::clients::SimTransport;
use crate::cluster::Cluster;
use crate::membership::{change_membership, repair};
use crate::options::{FaultKind, FaultKinds};
use crate::rng::SimRng;
use crate::storage::Fullness;
use crate::trace::lock;
use ledger_client::Client;
use ledger_node::raft_types::NodeId;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Largest step of a node's clock, either way.
const MAX_CLOCK_STEP_MS: u64 = 3_600_000;
/// How long a disk stays full.
const MIN_FULL_DISK_MS: u64 = 500;
const MAX_FULL_DISK_MS: u64 = 3_000;
/// Chance that a partition cuts both directions (else one way).
const SYMMETRIC_PARTITION: f64 = 0.7;

/// One fault action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Clog one directed link.
    ClogLink { from: NodeId, to: NodeId },
    /// Cut one node off from the others, both ways or one way.
    Partition { victim: NodeId, both: bool },
    /// Cut the leader off both ways.
    IsolateLeader,
    /// Unclog one clogged link (the seed picks which).
    HealLink,
    /// Crash a node, or restart the crashed one.
    CrashOrRestart { victim: NodeId },
    /// Step a node's clock.
    ClockStep { node: NodeId, step_ms: i64 },
    /// The spare node joins, or leaves.
    Membership,
    /// Flip a bit in one stored value of a node.
    Rot { victim: NodeId },
    /// Fill a node's disk (below its reserve, or to the last byte) for a while.
    FillDisk {
        victim: NodeId,
        no_space: bool,
        for_ms: u64,
    },
}

impl Fault {
    fn kind(self) -> FaultKind {
        match self {
            Fault::ClogLink { .. }
            | Fault::Partition { .. }
            | Fault::IsolateLeader
            | Fault::HealLink => FaultKind::Partitions,
            Fault::CrashOrRestart { .. } => FaultKind::Crashes,
            Fault::ClockStep { .. } => FaultKind::Clocks,
            Fault::Membership => FaultKind::Membership,
            Fault::Rot { .. } => FaultKind::Storage,
            Fault::FillDisk { .. } => FaultKind::Disks,
        }
    }
}

/// The fault schedule of a run.
pub struct Nemesis {
    pub rng: SimRng,
    pub kinds: FaultKinds,
    /// The initial members (the spare is not among them).
    pub ids: Vec<NodeId>,
    pub spare: NodeId,
    pub crashed: BTreeSet<NodeId>,
    /// Drives membership changes through the nodes' administration calls.
    pub admin: Arc<Client<SimTransport>>,
    membership: Option<JoinHandle<()>>,
    /// Nodes found stopped on (or unable to start from) corrupt storage, not yet repaired.
    pub to_repair: BTreeSet<NodeId>,
    repairing: Option<JoinHandle<(NodeId, bool)>>,
    /// Until when (virtual time since the run began) the full disk stays full.
    disk_full_until: Option<Duration>,
}

impl Nemesis {
    pub fn new(
        rng: SimRng,
        kinds: FaultKinds,
        ids: Vec<NodeId>,
        admin: Arc<Client<SimTransport>>,
    ) -> Nemesis {
        let spare = ids.len() as u64 + 1;
        Nemesis {
            rng,
            kinds,
            ids,
            spare,
            crashed: BTreeSet::new(),
            admin,
            membership: None,
            to_repair: BTreeSet::new(),
            repairing: None,
            disk_full_until: None,
        }
    }

    fn node(&mut self) -> NodeId {
        self.ids[self.rng.below(self.ids.len() as u64) as usize]
    }

    /// The next fault, drawn from the seed. While links are clogged, partitions give way
    /// to healing.
    fn draw(&mut self, clogged: bool) -> Fault {
        let draw = self.rng.below(10);
        let draw = if clogged && draw <= 2 { 3 } else { draw };
        match draw {
            0 if self.rng.chance(0.5) => Fault::ClogLink {
                from: self.node(),
                to: self.node(),
            },
            0 | 1 => Fault::Partition {
                victim: self.node(),
                both: self.rng.chance(SYMMETRIC_PARTITION),
            },
            2 => Fault::IsolateLeader,
            3 | 4 => Fault::HealLink,
            5 => Fault::CrashOrRestart {
                victim: self.node(),
            },
            6 => Fault::ClockStep {
                node: self.node(),
                step_ms: self.rng.below(2 * MAX_CLOCK_STEP_MS) as i64 - MAX_CLOCK_STEP_MS as i64,
            },
            7 => Fault::Membership,
            8 => Fault::Rot {
                victim: self.node(),
            },
            _ => Fault::FillDisk {
                victim: self.node(),
                no_space: self.rng.chance(0.5),
                for_ms: MIN_FULL_DISK_MS + self.rng.below(MAX_FULL_DISK_MS - MIN_FULL_DISK_MS),
            },
        }
    }

    /// Injects faults for `end` (from now), then sets `stop` (the clients stop), goes on
    /// for five more seconds, and waits for a membership change under way.
    pub async fn run(
        &mut self,
        cluster: &Arc<tokio::sync::Mutex<Cluster>>,
        end: Duration,
        faults: bool,
        stop: &AtomicBool,
    ) {
        let begun = { cluster.lock().await.started.elapsed() };
        loop {
            let elapsed = { cluster.lock().await.started.elapsed() } - begun;
            if elapsed > end + Duration::from_secs(5) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 + self.rng.below(800))).await;
            self.tend(cluster).await;
            if faults {
                let clogged = { !lock(&cluster.lock().await.router.0).cut.is_empty() };
                let fault = self.draw(clogged);
                if self.kinds.contains(fault.kind()) {
                    self.inject(cluster, fault).await;
                }
            }
            if elapsed > end {
                stop.store(true, Ordering::Relaxed);
            }
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.membership.take() {
            let _ = task.await;
        }
        if let Some(task) = self.repairing.take() {
            if let Ok((id, true)) = task.await {
                self.to_repair.remove(&id);
            }
        }
    }

    /// Notes the corrupted nodes that stopped or cannot start, and repairs one of them when
    /// no membership change is under way.
    async fn tend(&mut self, cluster: &Arc<tokio::sync::Mutex<Cluster>>) {
        let mut c = cluster.lock().await;
        if self
            .disk_full_until
            .is_some_and(|until| c.started.elapsed() >= until)
        {
            self.disk_full_until = None;
            let full: Vec<NodeId> = lock(&c.disks).keys().copied().collect();
            for id in full {
                if c.free_disk(id).await {
                    self.crashed.insert(id);
                }
            }
        }
        for id in &c.corrupted {
            let stopped = c
                .nodes
                .get(id)
                .is_none_or(|n| n.raft().metrics().borrow().running_state.is_err());
            if stopped {
                self.to_repair.insert(*id);
            }
        }
        if let Some(task) = self.repairing.take_if(|t| t.is_finished()) {
            if let Ok((id, true)) = task.await {
                self.to_repair.remove(&id);
            }
        }
        let busy =
            self.repairing.is_some() || self.membership.as_ref().is_some_and(|t| !t.is_finished());
        if busy || c.leader().is_none() {
            return;
        }
        if let Some(id) = self.to_repair.first().copied() {
            // The repair restarts it: it is no longer the crash fault's to restart.
            self.crashed.remove(&id);
            c.trace(&format!("repair {id}\n"));
            self.repairing = Some(tokio::spawn(repair(
                cluster.clone(),
                self.admin.clone(),
                id,
            )));
        }
    }

    async fn inject(&mut self, cluster: &Arc<tokio::sync::Mutex<Cluster>>, fault: Fault) {
        let mut c = cluster.lock().await;
        match fault {
            Fault::ClogLink { from, to } if from != to => {
                lock(&c.router.0).cut.insert((from, to));
                c.trace(&format!("clog ({from}, {to})\n"));
            }
            Fault::ClogLink { .. } => {}
            Fault::Partition { victim, both } => {
                cut_off(&c, &self.ids, victim, both);
                c.trace(&format!("partition {victim} both={both}\n"));
            }
            Fault::IsolateLeader => {
                if let Some(leader) = c.leader() {
                    cut_off(&c, &self.ids, leader, true);
                    c.trace(&format!("isolate leader {leader}\n"));
                }
            }
            Fault::HealLink => {
                let cut: Vec<(NodeId, NodeId)> = lock(&c.router.0).cut.iter().copied().collect();
                if !cut.is_empty() {
                    let link = cut[self.rng.below(cut.len() as u64) as usize];
                    lock(&c.router.0).cut.remove(&link);
                    c.trace(&format!("heal {link:?}\n"));
                }
            }
            Fault::CrashOrRestart { victim } => {
                if let Some(id) = self.crashed.first().copied() {
                    // A repair may have started it meanwhile.
                    if c.nodes.contains_key(&id) || c.start(id).await {
                        self.crashed.remove(&id);
                    }
                } else if !self.to_repair.contains(&victim) {
                    self.crashed.insert(victim);
                    c.crash(victim).await;
                }
            }
            Fault::ClockStep { node, step_ms } => {
                c.clocks.set(node, step_ms);
                c.trace(&format!("clock {node} {step_ms}\n"));
            }
            Fault::Membership => self.change_membership(cluster, &mut c).await,
            // One corrupted node at a time: a minority.
            Fault::Rot { victim } if c.corrupted.is_empty() && self.to_repair.is_empty() => {
                c.rot(victim);
            }
            Fault::Rot { .. } => {}
            // One full disk at a time; `tend` gives it room again when its time is up.
            Fault::FillDisk {
                victim,
                no_space,
                for_ms,
            } => {
                let busy = !lock(&c.disks).is_empty();
                if !busy && c.nodes.contains_key(&victim) && !self.to_repair.contains(&victim) {
                    let how = if no_space {
                        Fullness::NoSpace
                    } else {
                        Fullness::BelowReserve
                    };
                    c.fill_disk(victim, how);
                    self.disk_full_until =
                        Some(c.started.elapsed() + Duration::from_millis(for_ms));
                }
            }
        }
    }

    /// The spare joins if it is out, leaves if it is in; one change at a time.
    async fn change_membership(
        &mut self,
        cluster: &Arc<tokio::sync::Mutex<Cluster>>,
        c: &mut Cluster,
    ) {
        if self.membership.as_ref().is_some_and(|t| !t.is_finished())
            || self.repairing.is_some()
            || c.leader().is_none()
        {
            return;
        }
        let spare = self.spare;
        let joined = c.nodes.contains_key(&spare);
        if !joined && !c.start(spare).await {
            c.trace(&format!("spare {spare} could not start\n"));
            return;
        }
        c.trace(&format!(
            "membership: node {spare} {}\n",
            if joined { "leaves" } else { "joins" }
        ));
        self.membership = Some(tokio::spawn(change_membership(
            cluster.clone(),
            self.admin.clone(),
            spare,
            !joined,
        )));
    }
}

/// Cuts `victim` off from the other members: both ways, or only its outgoing links.
fn cut_off(c: &Cluster, ids: &[NodeId], victim: NodeId, both: bool) {
    let mut router = lock(&c.router.0);
    for other in ids.iter().filter(|o| **o != victim) {
        router.cut.insert((victim, *other));
        if both {
            router.cut.insert((*other, victim));
        }
    }
}
