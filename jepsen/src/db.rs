//! The database under test: real `ledger-node` processes, each in its own network namespace,
//! started, killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT) by the harness.

use crate::cleanup::{self, Resource};
use crate::net::Network;
use ledger_client::{Client, ClientConfig, Consistency, NodeInfo, NodeStatus, Query, QueryReply};
use ledger_wire::dev_sms::{find_message, DEV_OUTBOX_FILE};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports every node uses on its own address.
const RAFT_PORT: u16 = 7101;
const CLIENT_PORT: u16 = 7201;
const ADMIN_PORT: u16 = 7301;

/// PBKDF2 rounds for card passwords: the harness tests replication, not password hashing.
const PASSWORD_ITERATIONS: &str = "1000";

/// How the nodes are run.
#[derive(Clone, Debug)]
pub struct DbOptions {
    pub node_bin: PathBuf,
    /// Log entries between snapshots: small, so that snapshots and log purges happen under
    /// faults too.
    pub snapshot_every: u64,
    /// TEST ONLY: start the nodes with `--unsafe-local-reads` (the harness's proof that it
    /// catches stale reads).
    pub unsafe_local_reads: bool,
}

struct NodeSlot {
    info: NodeInfo,
    netns: String,
    data_dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// The nodes of one test.
pub struct Db {
    options: DbOptions,
    root: PathBuf,
    members: Vec<NodeInfo>,
    nodes: Vec<NodeSlot>,
    campaign_ms: (u64, u64),
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Db {
    /// Lays out a node per host of `net` (data under `root`, removed at exit).
    pub fn new(options: DbOptions, net: &Network, root: PathBuf) -> std::io::Result<Db> {
        cleanup::register(Resource::Dir(root.clone()));
        std::fs::create_dir_all(&root)?;
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key);
        std::fs::write(root.join("master.key"), key)?;
        let mut nodes = Vec::new();
        for host in &net.hosts {
            let data_dir = root.join(format!("n{}", host.id));
            std::fs::create_dir_all(&data_dir)?;
            nodes.push(NodeSlot {
                info: NodeInfo {
                    id: host.id,
                    raft_addr: format!("{}:{RAFT_PORT}", host.addr),
                    client_addr: format!("{}:{CLIENT_PORT}", host.addr),
                },
                netns: host.netns.clone(),
                data_dir,
                child: None,
                paused: false,
            });
        }
        let now = now_ms();
        Ok(Db {
            options,
            root,
            members: nodes.iter().map(|n| n.info.clone()).collect(),
            nodes,
            campaign_ms: (now - 86_400_000, now + 30 * 86_400_000),
        })
    }

    /// The campaign window the cluster was initialised with.
    pub fn campaign_ms(&self) -> (u64, u64) {
        self.campaign_ms
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.info.id).collect()
    }

    pub fn members(&self) -> &[NodeInfo] {
        &self.members
    }

    pub fn info(&self, id: u64) -> NodeInfo {
        self.slot(id).info.clone()
    }

    fn slot(&self, id: u64) -> &NodeSlot {
        self.nodes
            .iter()
            .find(|n| n.info.id == id)
            .expect("a node of this test")
    }

    fn slot_mut(&mut self, id: u64) -> &mut NodeSlot {
        self.nodes
            .iter_mut()
            .find(|n| n.info.id == id)
            .expect("a node of this test")
    }

    /// Starts every node; the first initialises the cluster.
    pub fn start_all(&mut self) -> std::io::Result<()> {
        for (i, id) in self.ids().into_iter().enumerate() {
            self.start(id, i == 0)?;
        }
        Ok(())
    }

    /// Starts node `id` inside its namespace (`ip netns exec` execs the node, so the pid is
    /// the node's own and signals reach it).
    pub fn start(&mut self, id: u64, init: bool) -> std::io::Result<()> {
        let slot = self.slot(id);
        if slot.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(slot.data_dir.join("node.log"))?;
        let admin = slot
            .info
            .client_addr
            .replace(&CLIENT_PORT.to_string(), &ADMIN_PORT.to_string());
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &slot.netns])
            .arg(&self.options.node_bin)
            .arg("run")
            .args(["--id", &id.to_string()])
            .args(["--raft-addr", &slot.info.raft_addr])
            .args(["--client-addr", &slot.info.client_addr])
            .args(["--admin-addr", &admin])
            .arg("--data-dir")
            .arg(&slot.data_dir)
            .arg("--master-key-file")
            .arg(self.root.join("master.key"))
            .args(["--password-iterations", PASSWORD_ITERATIONS])
            .args(["--snapshot-every", &self.options.snapshot_every.to_string()])
            .args(["--cache-mb", "32"])
            .args(["--sms", "dev", "--allow-dev-sms"])
            .args(["--campaign-start-ms", &self.campaign_ms.0.to_string()])
            .args(["--campaign-end-ms", &self.campaign_ms.1.to_string()])
            .env_remove("LEDGER_CONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.options.unsafe_local_reads {
            command.arg("--unsafe-local-reads");
        }
        if init {
            command.arg("--init");
            for m in &self.members {
                command
                    .arg("--peer")
                    .arg(format!("{}={},{}", m.id, m.raft_addr, m.client_addr));
            }
        }
        // The node dies with the harness even if the harness is killed with SIGKILL. The
        // signal is tied to the *thread* that spawns the node: spawn only from tokio's worker
        // threads (alive as long as the runtime), never from `spawn_blocking`, whose idle
        // threads exit and would take their nodes with them.
        let harness = std::process::id() as i32;
        // SAFETY: prctl and getppid in the child before exec; both async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != harness {
                    // The harness died before prctl took effect.
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        cleanup::register(Resource::Process(child.id() as i32));
        let slot = self.slot_mut(id);
        slot.child = Some(child);
        slot.paused = false;
        Ok(())
    }

    /// kill -9, and reaps the process.
    pub fn kill(&mut self, id: u64) {
        let slot = self.slot_mut(id);
        if let Some(mut child) = slot.child.take() {
            let pid = child.id() as i32;
            // SAFETY: our own child; SIGCONT so a paused node dies at once.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGCONT);
            }
            let _ = child.wait();
            cleanup::forget(&Resource::Process(pid));
        }
        slot.paused = false;
    }

    fn signal(&mut self, id: u64, signal: i32, paused: bool) -> bool {
        let slot = self.slot_mut(id);
        let Some(child) = &slot.child else {
            return false;
        };
        // SAFETY: our own, unreaped child.
        unsafe { libc::kill(child.id() as i32, signal) };
        slot.paused = paused;
        true
    }

    /// SIGSTOP; false if the node is not running.
    pub fn pause(&mut self, id: u64) -> bool {
        self.signal(id, libc::SIGSTOP, true)
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) -> bool {
        self.signal(id, libc::SIGCONT, false)
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.slot(id).child.is_some()
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.slot(id).paused
    }

    /// Nodes that exited although the harness did not kill them, with their exit status.
    pub fn crashed(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for slot in &mut self.nodes {
            if let Some(child) = &mut slot.child {
                if let Ok(Some(status)) = child.try_wait() {
                    out.push((slot.info.id, status.to_string()));
                    cleanup::forget(&Resource::Process(child.id() as i32));
                    slot.child = None;
                }
            }
        }
        out
    }

    /// Stops every node with SIGKILL (the harness keeps nothing running).
    pub fn kill_all(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }

    /// A client of the whole cluster.
    pub fn client(&self, call_timeout: Duration, max_attempts: u32) -> Client {
        let mut config = ClientConfig::new(self.members.iter().map(|m| m.client_addr.clone()));
        config.call_timeout = call_timeout;
        config.connect_timeout = Duration::from_millis(500);
        config.max_attempts = max_attempts;
        config.backoff_initial = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(500);
        Client::new(config)
    }

    /// A client of one node only: it never follows the node's `NotLeader` answers elsewhere.
    pub fn node_client(&self, id: u64) -> Client {
        let mut config = ClientConfig::new([self.info(id).client_addr]);
        config.call_timeout = Duration::from_secs(2);
        config.connect_timeout = Duration::from_millis(500);
        config.max_attempts = 1;
        config.follow_leader = false;
        Client::new(config)
    }

    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        self.node_client(id)
            .cluster_status()
            .await
            .pop()
            .and_then(|(_, s)| s.ok())
    }

    /// The leader every running, unpaused node agrees on, if they do.
    pub async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        for id in self.ids() {
            if !self.is_running(id) || self.is_paused(id) {
                continue;
            }
            let s = self.status(id).await?;
            if leader.is_some() && s.leader != leader {
                return None;
            }
            leader = s.leader;
        }
        leader
    }

    /// The leader as some node reports it (for the nemesis: quick, may be stale).
    pub async fn some_leader(&self) -> Option<u64> {
        for id in self.ids() {
            if self.is_running(id) && !self.is_paused(id) {
                if let Some(leader) = self.status(id).await.and_then(|s| s.leader) {
                    return Some(leader);
                }
            }
        }
        None
    }

    /// A node's applied index and state hash (a local read).
    pub async fn state_hash(&self, id: u64) -> Option<(u64, [u8; 32])> {
        match self
            .node_client(id)
            .query(Query::StateHash, Consistency::Stale)
            .await
        {
            Ok(QueryReply::StateHash {
                applied_index,
                hash,
            }) => Some((applied_index, hash.0)),
            _ => None,
        }
    }

    /// Waits until every node agrees on a leader and has the ledger, within `deadline`.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<u64, String> {
        let started = Instant::now();
        loop {
            if let Some(leader) = self.agreed_leader().await {
                let mut all = true;
                for id in self.ids() {
                    all &= self.state_hash(id).await.is_some();
                }
                if all {
                    return Ok(leader);
                }
            }
            if started.elapsed() > deadline {
                return Err(format!(
                    "no leader known to every node, with the ledger, within {deadline:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every node has applied the same index with the same state hash.
    pub async fn wait_converged(&self, deadline: Duration) -> Result<(u64, [u8; 32]), String> {
        let started = Instant::now();
        let mut last = Vec::new();
        loop {
            last.clear();
            for id in self.ids() {
                last.push((id, self.state_hash(id).await));
            }
            let first = last[0].1;
            if let Some(hash) = first.filter(|_| last.iter().all(|(_, h)| *h == first)) {
                return Ok(hash);
            }
            if started.elapsed() > deadline {
                let seen: Vec<String> = last
                    .iter()
                    .map(|(id, h)| match h {
                        Some((index, _)) => format!("n{id} applied {index}"),
                        None => format!("n{id} no answer"),
                    })
                    .collect();
                return Err(format!(
                    "replicas did not converge within {deadline:?}: {}",
                    seen.join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The nodes' development SMS outboxes (the customers' phones).
    pub fn outboxes(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .map(|n| n.data_dir.join(DEV_OUTBOX_FILE))
            .collect()
    }

    /// Copies each node's log to `dest/n<id>/node.log`.
    pub fn copy_logs(&self, dest: &Path) -> std::io::Result<()> {
        for slot in &self.nodes {
            let dir = dest.join(format!("n{}", slot.info.id));
            std::fs::create_dir_all(&dir)?;
            let from = slot.data_dir.join("node.log");
            if from.exists() {
                std::fs::copy(from, dir.join("node.log"))?;
            }
        }
        Ok(())
    }
}

/// Waits for the code of challenge `challenge` to reach the customer's phone (any node's
/// outbox: whichever led sent it).
pub async fn wait_for_code(
    outboxes: &[PathBuf],
    challenge: u64,
    deadline: Duration,
) -> Option<String> {
    let started = Instant::now();
    loop {
        if let Some(code) = find_message(outboxes, challenge).and_then(|m| m.code()) {
            return Some(code);
        }
        if started.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.root);
        cleanup::forget(&Resource::Dir(self.root.clone()));
    }
}
