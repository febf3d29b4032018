//! The database under test: real `ledger-node` processes, each in its own network namespace,
//! started, killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT) by the harness.

use crate::cleanup::{self, Resource};
use crate::net::Network;
use ledger_client::{Client, ClientConfig, NodeInfo, NodeStatus, TlsIdentity};
use ledger_testkit::nodes::{NodeLauncher, NodeProcess, NODE_LOG_FILE};
use ledger_testkit::pki::{ClusterPki, LaunchTls};
use ledger_testkit::probe;
use ledger_wire::dev_sms::{find_message, DEV_OUTBOX_FILE};
use ledger_wire::principal::Principal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use ledger_testkit::nodes::now_ms;

/// Ports every node uses on its own address.
const RAFT_PORT: u16 = 7101;
const CLIENT_PORT: u16 = 7201;
const ADMIN_PORT: u16 = 7301;

/// How often the cluster is asked again while waiting for it.
const WAIT_INTERVAL: Duration = Duration::from_millis(200);

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
    /// Run each node under libfaketime, its wall clock offset by what the harness writes to
    /// its clock file (`Db::step_clock`); its monotonic clock untouched.
    pub fake_clocks: bool,
    /// Each node's database folder (`<data dir>/sled`) on a tmpfs of its own of this many
    /// MiB, for the disk-full nemesis to fill.
    pub disk_mib: Option<u64>,
}

/// The tmpfs each node's database gets when the disk nemesis is on: room for a run's data
/// well above the node's default reserve of free space (256 MiB).
pub const NODE_DISK_MIB: u64 = 1_024;

/// The nodes' reserve of free space (`ledger-node --min-free-disk-mib`, left at its default).
pub const NODE_RESERVE_MIB: u64 = 256;

/// The file the disk nemesis fills a node's filesystem with.
const FILLER: &str = "filler";

/// Where Debian's `libfaketime` package puts the library the clock nemesis preloads.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// How long libfaketime keeps a clock file's offset before reading it again, in seconds.
const FAKETIME_CACHE_SECS: &str = "1";

struct NodeSlot {
    launcher: NodeLauncher,
    process: Option<NodeProcess>,
    paused: bool,
}

impl NodeSlot {
    fn info(&self) -> &NodeInfo {
        self.launcher.info()
    }
}

/// The nodes of one test.
pub struct Db {
    node_bin: PathBuf,
    /// The tmpfs filesystems mounted for the nodes' databases.
    mounts: Vec<PathBuf>,
    root: PathBuf,
    /// The cluster's CA and certificates: nodes serve mutual TLS, clients act as an operator.
    pki: ClusterPki,
    members: Vec<NodeInfo>,
    nodes: Vec<NodeSlot>,
}

/// How node `host` of `net` is started: inside its namespace (`ip netns exec` execs the
/// node, so the pid is the node's own and signals reach it), dying with the harness.
/// How long a code works in the harness's clusters.
pub const OTP_EXPIRY_MS: u64 = 20_000;

fn launcher(
    options: &DbOptions,
    host: &crate::net::Host,
    root: &Path,
    tls: LaunchTls,
) -> NodeLauncher {
    let info = NodeInfo {
        id: host.id,
        raft_addr: format!("{}:{RAFT_PORT}", host.addr),
        client_addr: format!("{}:{CLIENT_PORT}", host.addr),
    };
    let launcher = NodeLauncher::new(
        &options.node_bin,
        info,
        format!("{}:{ADMIN_PORT}", host.addr),
        root.join(format!("n{}", host.id)),
        root.join("master.key"),
    )
    .tls(tls)
    .prefix(["ip", "netns", "exec", host.netns.as_str()])
    .snapshot_every(options.snapshot_every)
    .env("RUST_LOG", "info")
    // Codes (and pending payments with them) expire after 20 s rather than 5 minutes, so
    // that in a minute's run the leader expires the payments nobody confirmed.
    .arg("--otp-expiry-ms")
    .arg(OTP_EXPIRY_MS.to_string())
    .die_with_parent();
    let launcher = if options.fake_clocks {
        launcher
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", clock_file(root, host.id))
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_CACHE_DURATION", FAKETIME_CACHE_SECS)
    } else {
        launcher
    };
    if options.unsafe_local_reads {
        launcher.arg("--unsafe-local-reads")
    } else {
        launcher
    }
}

/// Mounts a tmpfs of `mib` MiB at `dir` (registered for unmounting at exit).
fn mount_tmpfs(dir: &Path, mib: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    cleanup::register(Resource::Mount(dir.to_owned()));
    let status = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mib}m"),
            "ledger-jepsen",
        ])
        .arg(dir)
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "mount a tmpfs at {}: {status}",
            dir.display()
        )));
    }
    Ok(())
}

/// Free bytes on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail * stat.f_frsize)
}

/// How the corruption nemesis changed a node's files: (file, offset) of each flipped byte.
pub type Flipped = Vec<(String, u64)>;

/// The file libfaketime reads node `id`'s clock offset from.
fn clock_file(root: &Path, id: u64) -> PathBuf {
    root.join(format!("n{id}.faketime"))
}

impl Db {
    /// Lays out a node per host of `net` (data under `root`, removed at exit).
    pub fn new(options: DbOptions, net: &Network, root: PathBuf) -> std::io::Result<Db> {
        cleanup::register(Resource::Dir(root.clone()));
        std::fs::create_dir_all(&root)?;
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key);
        std::fs::write(root.join("master.key"), key)?;
        let pki = ClusterPki::create(&root.join("certs")).map_err(std::io::Error::other)?;
        if options.fake_clocks && !Path::new(LIBFAKETIME).exists() {
            return Err(std::io::Error::other(format!(
                "the clock nemesis needs {LIBFAKETIME} (apt-get install libfaketime)"
            )));
        }
        let mut slots = Vec::new();
        let mut mounts = Vec::new();
        for host in &net.hosts {
            if options.fake_clocks {
                std::fs::write(clock_file(&root, host.id), "+0")?;
            }
            let tls = pki.node(host.id).map_err(std::io::Error::other)?;
            let launcher = launcher(&options, host, &root, tls);
            std::fs::create_dir_all(launcher.data_dir())?;
            if let Some(mib) = options.disk_mib {
                let dir = launcher.data_dir().join("sled");
                mount_tmpfs(&dir, mib)?;
                mounts.push(dir);
            }
            slots.push(NodeSlot {
                launcher,
                process: None,
                paused: false,
            });
        }
        Ok(Db {
            node_bin: options.node_bin.clone(),
            mounts,
            root,
            pki,
            members: slots.iter().map(|n| n.info().clone()).collect(),
            nodes: slots,
        })
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.info().id).collect()
    }

    pub fn members(&self) -> &[NodeInfo] {
        &self.members
    }

    pub fn info(&self, id: u64) -> NodeInfo {
        self.slot(id).info().clone()
    }

    fn slot(&self, id: u64) -> &NodeSlot {
        self.nodes
            .iter()
            .find(|n| n.info().id == id)
            .expect("a node of this test")
    }

    fn slot_mut(&mut self, id: u64) -> &mut NodeSlot {
        self.nodes
            .iter_mut()
            .find(|n| n.info().id == id)
            .expect("a node of this test")
    }

    /// Starts every node; the first initialises the cluster.
    pub fn start_all(&mut self) -> std::io::Result<()> {
        for (i, id) in self.ids().into_iter().enumerate() {
            self.start(id, i == 0)?;
        }
        Ok(())
    }

    /// Starts node `id` inside its namespace. Spawn only from tokio's worker threads (alive
    /// as long as the runtime), never from `spawn_blocking`: the node dies with the thread
    /// that spawned it (`NodeLauncher::die_with_parent`).
    pub fn start(&mut self, id: u64, init: bool) -> std::io::Result<()> {
        let members = init.then(|| self.members.clone());
        let slot = self.slot_mut(id);
        if slot.process.is_some() {
            return Ok(());
        }
        let process = slot.launcher.spawn(members.as_deref())?;
        cleanup::register(Resource::Process(process.pid()));
        slot.process = Some(process);
        slot.paused = false;
        Ok(())
    }

    /// kill -9, and reaps the process.
    pub fn kill(&mut self, id: u64) {
        let slot = self.slot_mut(id);
        if let Some(process) = slot.process.take() {
            let pid = process.pid();
            process.kill();
            cleanup::reaped(pid);
        }
        slot.paused = false;
    }

    /// SIGSTOP; false if the node is not running.
    pub fn pause(&mut self, id: u64) -> bool {
        self.set_paused(id, true)
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) -> bool {
        self.set_paused(id, false)
    }

    fn set_paused(&mut self, id: u64, paused: bool) -> bool {
        let slot = self.slot_mut(id);
        let Some(process) = &slot.process else {
            return false;
        };
        if paused {
            process.pause();
        } else {
            process.resume();
        }
        slot.paused = paused;
        true
    }

    /// Steps node `id`'s wall clock to `offset_secs` from true time (0: true time again),
    /// running or not; it takes effect within `FAKETIME_CACHE_SECS`. Only for a `Db` made
    /// with `fake_clocks`.
    pub fn step_clock(&self, id: u64, offset_secs: i64) -> std::io::Result<()> {
        let file = clock_file(&self.root, id);
        let staged = file.with_extension("next");
        std::fs::write(&staged, format!("{offset_secs:+}"))?;
        std::fs::rename(staged, file)
    }

    /// Node `id`'s data directory.
    fn data_dir(&self, id: u64) -> PathBuf {
        self.slot(id).launcher.data_dir().to_owned()
    }

    /// Flips `count` bytes at random offsets of node `id`'s database file (sled's `db`),
    /// which must be stopped: what a failing disk does.
    pub fn flip_bytes(
        &self,
        id: u64,
        count: usize,
        rng: &mut impl rand::Rng,
    ) -> std::io::Result<Flipped> {
        use std::io::{Read, Seek, SeekFrom, Write};
        assert!(
            !self.is_running(id),
            "flip bytes only in a stopped node's files"
        );
        let path = self.data_dir(id).join("sled").join("db");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        let len = file.metadata()?.len();
        let mut flipped = Vec::new();
        for _ in 0..count.min(len as usize) {
            let offset = rng.gen_range(0..len);
            let mut byte = [0u8];
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut byte)?;
            byte[0] ^= 1 << rng.gen_range(0..8);
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(&byte)?;
            flipped.push((path.display().to_string(), offset));
        }
        file.sync_all()?;
        Ok(flipped)
    }

    /// `ledger-node scrub` on stopped node `id`: every stored value read and checked. The
    /// error is its report.
    pub fn scrub(&self, id: u64) -> Result<(), String> {
        let out = std::process::Command::new(&self.node_bin)
            .arg("scrub")
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .output()
            .map_err(|e| format!("run ledger-node scrub: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Deletes stopped node `id`'s database, snapshot and log watermark (not its identity,
    /// certificates or log): it starts empty next time, to be added to the cluster again.
    pub fn wipe(&self, id: u64) -> std::io::Result<()> {
        assert!(!self.is_running(id), "wipe only a stopped node");
        let dir = self.data_dir(id);
        // The database folder may be a mount point: empty it, keep it.
        let sled = dir.join("sled");
        if sled.is_dir() {
            for entry in std::fs::read_dir(&sled)? {
                let path = entry?.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        match std::fs::remove_dir_all(dir.join("snapshots")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // What the old log had made durable (`ledger-node`'s `raft-watermark`).
        match std::fs::remove_file(dir.join("raft-watermark")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Fills node `id`'s database filesystem (the tmpfs of `DbOptions::disk_mib`) until
    /// `leave` bytes are free, or to the last byte. Returns the bytes free after.
    pub fn fill_disk(&self, id: u64, leave: u64) -> std::io::Result<u64> {
        use std::io::Write;
        let sled = self.data_dir(id).join("sled");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(sled.join(FILLER))?;
        let chunk = vec![0u8; 1 << 20];
        loop {
            let free = free_bytes(&sled)?;
            if free <= leave {
                return Ok(free);
            }
            let n = (free - leave).min(chunk.len() as u64) as usize;
            match file.write_all(&chunk[..n]) {
                Ok(()) => {}
                // Full to the last byte: what was asked for when `leave` is 0.
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return free_bytes(&sled),
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes what `fill_disk` wrote.
    pub fn free_disk(&self, id: u64) -> std::io::Result<()> {
        match std::fs::remove_file(self.data_dir(id).join("sled").join(FILLER)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.slot(id).process.is_some()
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.slot(id).paused
    }

    /// Nodes that exited although the harness did not kill them, with their exit status.
    pub fn crashed(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for slot in &mut self.nodes {
            let Some(process) = &mut slot.process else {
                continue;
            };
            if let Some(status) = process.exited() {
                out.push((slot.launcher.info().id, status.to_string()));
                cleanup::reaped(process.pid());
                slot.process = None;
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

    /// The identity the harness's clients present (the workloads act as an operator).
    fn operator(&self) -> TlsIdentity {
        self.pki
            .operator()
            .expect("the test operator's certificate")
    }

    /// A client of the whole cluster, as the harness's operator.
    pub fn client(&self, call_timeout: Duration, max_attempts: u32) -> Client {
        self.client_with(self.operator(), call_timeout, max_attempts)
    }

    /// A client of the whole cluster acting as `principal` (its certificate issued by the
    /// run's CA).
    pub fn client_as(
        &self,
        principal: &Principal,
        call_timeout: Duration,
        max_attempts: u32,
    ) -> Client {
        let identity = self
            .pki
            .identity(principal)
            .expect("a certificate from the run's CA");
        self.client_with(identity, call_timeout, max_attempts)
    }

    fn client_with(
        &self,
        identity: TlsIdentity,
        call_timeout: Duration,
        max_attempts: u32,
    ) -> Client {
        let mut config = ClientConfig::new(self.members.iter().map(|m| m.client_addr.clone()));
        config.tls = Some(identity);
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
        config.tls = Some(self.operator());
        config.call_timeout = Duration::from_secs(2);
        config.connect_timeout = Duration::from_millis(500);
        config.max_attempts = 1;
        config.follow_leader = false;
        Client::new(config)
    }

    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        probe::status(&self.node_client(id)).await
    }

    /// Clients of the nodes that run and are not paused.
    fn live_node_clients(&self) -> Vec<Client> {
        self.ids()
            .into_iter()
            .filter(|id| self.is_running(*id) && !self.is_paused(*id))
            .map(|id| self.node_client(id))
            .collect()
    }

    /// The leader every running, unpaused node agrees on, if they do.
    pub async fn agreed_leader(&self) -> Option<u64> {
        probe::agreed_leader(&self.live_node_clients()).await
    }

    /// The leader as some node reports it (for the nemesis: quick, may be stale).
    pub async fn some_leader(&self) -> Option<u64> {
        for node in self.live_node_clients() {
            if let Some(leader) = probe::status(&node).await.and_then(|s| s.leader) {
                return Some(leader);
            }
        }
        None
    }

    /// A node's applied index and state hash (a local read).
    pub async fn state_hash(&self, id: u64) -> Option<(u64, [u8; 32])> {
        probe::state_hash(&self.node_client(id))
            .await
            .map(|(index, hash)| (index, hash.0))
    }

    /// Waits until every node agrees on a leader and has the ledger, within `deadline`.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<u64, DbError> {
        let all: Vec<Client> = self
            .ids()
            .into_iter()
            .map(|id| self.node_client(id))
            .collect();
        probe::poll_until(deadline, WAIT_INTERVAL, || async {
            let leader = self.agreed_leader().await?;
            for node in &all {
                probe::state_hash(node).await?;
            }
            Some(leader)
        })
        .await
        .ok_or(DbError::NotReady { deadline })
    }

    /// Waits until every node has applied the same index with the same state hash.
    pub async fn wait_converged(&self, deadline: Duration) -> Result<(u64, [u8; 32]), DbError> {
        let all: Vec<Client> = self
            .ids()
            .into_iter()
            .map(|id| self.node_client(id))
            .collect();
        let converged = probe::poll_until(deadline, WAIT_INTERVAL, || probe::converged(&all)).await;
        match converged {
            Some((index, hash)) => Ok((index, hash.0)),
            None => Err(DbError::NotConverged {
                deadline,
                seen: self.applied_indexes().await,
            }),
        }
    }

    /// What each node says it has applied, for a report.
    async fn applied_indexes(&self) -> String {
        let mut seen = Vec::new();
        for id in self.ids() {
            seen.push(match self.state_hash(id).await {
                Some((index, _)) => format!("n{id} applied {index}"),
                None => format!("n{id} no answer"),
            });
        }
        seen.join(", ")
    }

    /// The nodes' development SMS outboxes (the customers' phones).
    pub fn outboxes(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .map(|n| n.launcher.data_dir().join(DEV_OUTBOX_FILE))
            .collect()
    }

    /// Copies each node's log to `dest/n<id>/node.log`.
    pub fn copy_logs(&self, dest: &Path) -> std::io::Result<()> {
        for slot in &self.nodes {
            let dir = dest.join(format!("n{}", slot.info().id));
            std::fs::create_dir_all(&dir)?;
            let from = slot.launcher.log_path();
            if from.exists() {
                std::fs::copy(from, dir.join(NODE_LOG_FILE))?;
            }
        }
        Ok(())
    }
}

/// Why the cluster did not come up.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no leader known to every node, with the ledger, within {deadline:?}")]
    NotReady { deadline: Duration },
    #[error("replicas did not converge within {deadline:?}: {seen}")]
    NotConverged { deadline: Duration, seen: String },
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
        // The nodes' filesystems first: a mount point cannot be removed.
        for mount in std::mem::take(&mut self.mounts) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&mount)
                .status();
            cleanup::forget(&Resource::Mount(mount));
        }
        let _ = std::fs::remove_dir_all(&self.root);
        cleanup::forget(&Resource::Dir(self.root.clone()));
    }
}
