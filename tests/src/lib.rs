//! End-to-end test harness: real `ledger-node` processes on 127.0.0.1, each with its own
//! data directory under a temporary folder that is removed afterwards. Processes are killed
//! (SIGKILL) when a test ends, passes or panics.
//!
//! The harness builds `ledger-node` with cargo (same profile as the test) the first time a
//! test asks for it, so `cargo test --workspace` needs nothing built beforehand.

pub mod merchant;
pub mod ops;

use ledger_client::{Client, ClientConfig, NodeInfo, NodeStatus, TlsIdentity};
use ledger_testkit::nodes::{self, NodeLauncher};
use ledger_testkit::pki::ClusterPki;
use ledger_testkit::probe;
use ledger_wire::dev_sms::{read_outbox, DevSms, DEV_OUTBOX_FILE};
use ledger_wire::principal::Principal;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// Longest a node may take to exit cleanly on SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// How often `eventually` checks again.
const EVENTUALLY_INTERVAL: Duration = Duration::from_millis(100);

/// End-to-end tests run one at a time: a 2-core machine cannot hold two clusters' elections.
/// (An async lock: a test holds it across awaits, and a panicking test releases it.)
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// A binary of the workspace, built with cargo (same profile as the test) once per test
/// process. All binaries are built together, with the workspace's features, so this reuses
/// what `cargo test --workspace` compiled.
pub fn workspace_binary(_package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_owned();
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--workspace", "--bins"]);
        if release {
            build.arg("--release");
        }
        build.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the workspace's binaries failed");
        *built = true;
    }
    profile_dir.join(bin)
}

/// The `ledger-node` binary (or `LEDGER_NODE_BIN`).
pub fn node_binary() -> PathBuf {
    match std::env::var("LEDGER_NODE_BIN") {
        Ok(path) => PathBuf::from(path),
        Err(_) => workspace_binary("ledger-node", "ledger-node"),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    nodes::now_ms()
}

/// `n` distinct free TCP ports on 127.0.0.1: all bound at once (so none repeats), then
/// released for the nodes to take.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// Waits until `check` returns Some, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match probe::poll_until(deadline, EVENTUALLY_INTERVAL, &mut check).await {
        Some(value) => value,
        None => panic!("timed out after {deadline:?} waiting for {what}"),
    }
}

/// One node: its addresses, data directory and process (if running).
pub struct NodeProcess {
    pub info: NodeInfo,
    pub admin_addr: String,
    pub data_dir: PathBuf,
    launcher: NodeLauncher,
    process: Mutex<Option<nodes::NodeProcess>>,
}

impl NodeProcess {
    fn process(&self) -> std::sync::MutexGuard<'_, Option<nodes::NodeProcess>> {
        self.process.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_process(&self) -> Option<nodes::NodeProcess> {
        self.process().take()
    }

    /// Whether the process was started and has exited on its own.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.process().as_mut().and_then(nodes::NodeProcess::exited)
    }
}

/// A cluster of real node processes.
pub struct Cluster {
    dir: tempfile::TempDir,
    pki: ClusterPki,
    pub nodes: Vec<NodeProcess>,
    members: Vec<NodeInfo>,
    snapshot_every: u64,
    /// Flags every node is started with besides the harness's own.
    node_args: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes, initialises them as one cluster, and waits for a leader and the
    /// ledger's genesis on every node.
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, 10_000).await
    }

    /// Like `start`, with a snapshot every `snapshot_every` log entries.
    pub async fn start_with(n: u64, snapshot_every: u64) -> Cluster {
        Self::start_prepared(n, snapshot_every, |_| {}).await
    }

    /// Like `start`, every node started with `node_args` too (`--heartbeat-ms 100`, say).
    pub async fn start_with_node_args(n: u64, node_args: &[String]) -> Cluster {
        Self::launch(n, 10_000, node_args, |_| {}).await
    }

    /// Like `start_with`, calling `prepare` on each node's (empty) data directory before
    /// the node first starts (to mount a filesystem there, say).
    pub async fn start_prepared(
        n: u64,
        snapshot_every: u64,
        prepare: impl FnMut(&Path),
    ) -> Cluster {
        Self::launch(n, snapshot_every, &[], prepare).await
    }

    async fn launch(
        n: u64,
        snapshot_every: u64,
        node_args: &[String],
        mut prepare: impl FnMut(&Path),
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("ledger-e2e-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("master.key"), [7u8; 32]).expect("master key");
        let pki = ClusterPki::create(&dir.path().join("certs")).expect("cluster CA");
        let mut cluster = Cluster {
            dir,
            pki,
            nodes: Vec::new(),
            members: Vec::new(),
            snapshot_every,
            node_args: node_args.to_vec(),
        };
        for id in 1..=n {
            cluster.add_process(id);
        }
        cluster.members = cluster.nodes.iter().map(|n| n.info.clone()).collect();
        for node in &cluster.nodes {
            prepare(&node.data_dir);
        }
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i, i == 0);
        }
        cluster.wait_ready(&cluster.ids()).await;
        // The article's campaign runs while the test does (campaigns are records).
        nodes::create_test_campaign(&cluster.client_for(&cluster.ids()))
            .await
            .expect("create the test campaign");
        cluster
    }

    /// The cluster's CA and certificates (folder `certs/` of `data_root`).
    pub fn pki(&self) -> &ClusterPki {
        &self.pki
    }

    /// The identity of any principal (issued on first use), to act in its role.
    pub fn identity(&self, principal: &Principal) -> TlsIdentity {
        self.pki
            .identity(principal)
            .expect("issue a test certificate")
    }

    /// Revokes `principal`'s certificate with `ledger-node certs revoke`, as an operator
    /// would: the CA folder's CRL then names it (nodes and gateways apply it on reload).
    pub fn revoke(&self, principal: &Principal) {
        let certs = self.pki.dir();
        let cert = certs.join(format!("{}.crt", ledger_wire::pki::file_stem(principal)));
        let revoke = std::process::Command::new(workspace_binary("ledger-node", "ledger-node"))
            .args(["certs", "revoke", "--dir"])
            .arg(certs)
            .arg("--cert")
            .arg(cert)
            .output()
            .expect("run ledger-node certs revoke");
        assert!(
            revoke.status.success(),
            "{}",
            String::from_utf8_lossy(&revoke.stderr)
        );
    }

    /// `ledgerctl`'s flags to act as the test operator of this cluster.
    pub fn ledgerctl_identity(&self) -> [String; 4] {
        [
            "--certs".into(),
            self.pki.dir().display().to_string(),
            "--identity".into(),
            format!("operator-{}", ledger_testkit::pki::TEST_OPERATOR),
        ]
    }

    /// The folder holding every node's data directory (`node<id>/`).
    pub fn data_root(&self) -> &Path {
        self.dir.path()
    }

    /// Ids of all nodes the harness knows.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.info.id).collect()
    }

    /// Creates (but does not start) the process slot of a new node `id`.
    pub fn add_process(&mut self, id: u64) -> usize {
        let taken: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| {
                [
                    n.info.raft_addr.clone(),
                    n.info.client_addr.clone(),
                    n.admin_addr.clone(),
                ]
            })
            .collect();
        let ports: Vec<u16> = free_ports(3 + taken.len())
            .into_iter()
            .filter(|p| !taken.contains(&format!("127.0.0.1:{p}")))
            .take(3)
            .collect();
        let info = NodeInfo {
            id,
            raft_addr: format!("127.0.0.1:{}", ports[0]),
            client_addr: format!("127.0.0.1:{}", ports[1]),
        };
        let data_dir = self.dir.path().join(format!("node{id}"));
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let launcher = NodeLauncher::new(
            node_binary(),
            info.clone(),
            format!("127.0.0.1:{}", ports[2]),
            &data_dir,
            self.dir.path().join("master.key"),
        )
        .snapshot_every(self.snapshot_every)
        .tls(self.pki.node(id).expect("node certificate"))
        // Test merchants receive webhooks on plain http at 127.0.0.1.
        .arg("--webhook-plain-http");
        let launcher = self
            .node_args
            .iter()
            .fold(launcher, |launcher, arg| launcher.arg(arg));
        self.nodes.push(NodeProcess {
            info,
            admin_addr: launcher.admin_addr().to_owned(),
            data_dir,
            launcher,
            process: Mutex::new(None),
        });
        self.nodes.len() - 1
    }

    fn index(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.info.id == id)
            .expect("known node id")
    }

    /// Starts node at `index` (with `--init` on the first start of the first node).
    fn spawn(&mut self, index: usize, init: bool) {
        let node = &self.nodes[index];
        let members = init.then_some(self.members.as_slice());
        let process = node.launcher.spawn(members).expect("spawn ledger-node");
        *node.process() = Some(process);
    }

    /// Starts a node that is not running (a restart keeps its data directory).
    pub fn restart(&mut self, id: u64) {
        let index = self.index(id);
        assert!(!self.is_running(id), "node {id} is running");
        self.spawn(index, false);
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(process) = self.nodes[self.index(id)].take_process() {
            process.kill();
        }
    }

    /// SIGTERM, then wait for a clean exit (within 10 s, else SIGKILL and fail).
    pub fn stop(&mut self, id: u64) {
        let Some(process) = self.nodes[self.index(id)].take_process() else {
            return;
        };
        if let Err(e) = process.stop(STOP_DEADLINE) {
            panic!("node {id} {e}");
        }
    }

    /// SIGHUP to node `id`: it re-reads its TLS files (the revocation list).
    pub fn hangup(&self, id: u64) {
        if let Some(process) = self.nodes[self.index(id)].process().as_ref() {
            process.hangup();
        }
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.nodes[self.index(id)].process().is_some()
    }

    /// How node `id` exited, if it was started and has exited on its own.
    pub fn exit_status(&self, id: u64) -> Option<std::process::ExitStatus> {
        self.nodes[self.index(id)].exited()
    }

    /// Panics, with its log, if a node the harness started has exited on its own.
    pub fn assert_alive(&self) {
        for node in &self.nodes {
            if let Some(status) = node.exited() {
                panic!(
                    "node {} exited with {status}; its log:\n{}",
                    node.info.id,
                    self.log(node.info.id)
                );
            }
        }
    }

    pub fn info(&self, id: u64) -> NodeInfo {
        self.nodes[self.index(id)].info.clone()
    }

    /// A client over the endpoints of the given nodes, as the test operator.
    pub fn client_for(&self, ids: &[u64]) -> Client {
        Client::new(self.client_config(ids))
    }

    /// The configuration of `client_for` (the test operator's identity; change `tls` to
    /// act as another principal).
    pub fn client_config(&self, ids: &[u64]) -> ClientConfig {
        let mut config = ClientConfig::new(ids.iter().map(|id| self.info(*id).client_addr));
        config.tls = Some(self.pki.operator().expect("operator certificate"));
        config.call_timeout = Duration::from_secs(3);
        config.max_attempts = 30;
        config.backoff_max = Duration::from_millis(500);
        config
    }

    /// The configuration of a client over every node acting as `principal` (a certificate
    /// the cluster's CA issues on demand).
    pub fn client_config_as(&self, principal: &Principal) -> ClientConfig {
        let mut config = self.client_config(&self.ids());
        config.tls = Some(self.pki.identity(principal).expect("a certificate"));
        config
    }

    /// A client over every node acting as `principal`.
    pub fn client_as(&self, principal: &Principal) -> Client {
        Client::new(self.client_config_as(principal))
    }

    /// The Prometheus text of node `id`'s admin port.
    pub async fn metrics(&self, id: u64) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let admin = &self.nodes[self.index(id)].admin_addr;
        let mut stream = tokio::net::TcpStream::connect(admin)
            .await
            .expect("admin port");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
            .await
            .expect("request");
        let mut body = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut body))
            .await
            .expect("metrics within 5 s")
            .expect("read");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// A client over every node.
    pub fn client(&self) -> Client {
        self.client_for(&self.ids())
    }

    /// A client of node `id` alone that asks once, for probes.
    fn probe_client(&self, id: u64) -> Client {
        let mut config = ClientConfig::new([self.info(id).client_addr]);
        config.tls = Some(self.pki.operator().expect("operator certificate"));
        config.call_timeout = Duration::from_secs(2);
        config.max_attempts = 1;
        Client::new(config)
    }

    fn probe_clients(&self, ids: &[u64]) -> Vec<Client> {
        ids.iter().map(|id| self.probe_client(*id)).collect()
    }

    /// The status of a node, if it answers.
    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        probe::status(&self.probe_client(id)).await
    }

    /// Waits until every listed node answers, agrees on one leader, and has the ledger.
    pub async fn wait_ready(&self, ids: &[u64]) -> u64 {
        let nodes = self.probe_clients(ids);
        eventually(
            "a leader that every node knows, and the ledger's genesis",
            Duration::from_secs(60),
            || async {
                self.assert_alive();
                let leader = probe::agreed_leader(&nodes).await?;
                for node in &nodes {
                    probe::state_hash(node).await?;
                }
                Some(leader)
            },
        )
        .await
    }

    /// The current leader as seen by the running nodes (all of them agreeing).
    pub async fn leader(&self) -> u64 {
        let running: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|id| self.is_running(*id))
            .collect();
        self.wait_ready(&running).await
    }

    /// A node's applied index and state hash (a stale, local read).
    pub async fn state_hash(&self, id: u64) -> Option<(u64, ledger_core::types::Digest32)> {
        probe::state_hash(&self.probe_client(id)).await
    }

    /// Waits until the listed nodes have applied the same index with the same state hash.
    pub async fn wait_converged(&self, ids: &[u64]) -> ledger_core::types::Digest32 {
        let nodes = self.probe_clients(ids);
        eventually(
            "replicas with equal applied index and state hash",
            Duration::from_secs(60),
            || async { probe::converged(&nodes).await.map(|(_, hash)| hash) },
        )
        .await
    }

    /// Every SMS any node's development gateway wrote.
    pub fn sms(&self) -> Vec<DevSms> {
        self.nodes
            .iter()
            .flat_map(|n| read_outbox(&n.data_dir.join(DEV_OUTBOX_FILE)).unwrap_or_default())
            .collect()
    }

    /// Waits for the SMS of challenge `id` and returns its code.
    pub async fn otp(&self, challenge: u64) -> String {
        eventually("the SMS with the code", Duration::from_secs(20), || async {
            self.sms()
                .into_iter()
                .filter(|m| m.id == challenge)
                .find_map(|m| m.code())
        })
        .await
    }

    /// The log of a node, for failure messages.
    pub fn log(&self, id: u64) -> String {
        nodes::read_log(&self.nodes[self.index(id)].data_dir)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(process) = node.take_process() {
                process.kill();
            }
        }
    }
}
