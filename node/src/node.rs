//! A running payment node: opens its storage, starts Raft, serves the client and Raft ports,
//! delivers SMS and merchants' webhook events while it leads, and shuts down cleanly.

use crate::disk::DiskReserve;
use crate::intake::{CpuWork, Intake};
use crate::log_store::LogStore;
use crate::metrics::Metrics;
use crate::network::{self, Network};
use crate::outbox;
use crate::planted::PlantedBug;
use crate::proposer::Proposer;
use crate::raft_types::{LedgerTypes, NodeAddr, NodeId, Raft, TypeConfig};
use crate::service;
use crate::sms::SmsGateway;
use crate::stamp::{LedgerClock, Stamper};
use crate::state_machine::{StateMachine, StateReader};
use crate::state_store::SledState;
use crate::webhooks::{self, WebhookOptions, WebhookTransport};
use ledger_core::intake::SecretKeys;
use ledger_core::types::RequestKey;
use ledger_core::Ledger;
use ledger_wire::api::NodeInfo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Client ids at or above this are the nodes' own (SMS acknowledgements).
pub const NODE_CLIENT_ID_BASE: u64 = 1 << 63;

/// The file in the data directory that keeps what the log store made durable
/// (`watermark.rs`).
pub const WATERMARK_FILE: &str = "raft-watermark";

/// Everything needed to start a node.
pub struct NodeOptions {
    pub id: NodeId,
    pub raft_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub keys: SecretKeys,
    pub raft_config: openraft::Config,
    pub stamper: Arc<dyn Stamper>,
    pub sms: Arc<dyn SmsGateway>,
    /// How often the leader looks at the SMS outbox.
    pub sms_interval: Duration,
    /// Where merchants' payment events are POSTed.
    pub webhooks: Arc<dyn WebhookTransport>,
    pub webhook_options: WebhookOptions,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Free space the database's filesystem (`<data_dir>/sled`) keeps: below it client
    /// writes are refused (`disk::DiskReserve`).
    pub min_free_disk_bytes: u64,
    /// TEST ONLY: answer linearizable reads from local state without confirming leadership
    /// (stale reads under a partition). The chaos harness's proof that it catches them.
    pub unsafe_local_reads: bool,
    /// Mutual TLS on both ports and to the peers; `None` serves plaintext (loopback only,
    /// checked by the configuration).
    pub tls: Option<Arc<ledger_wire::tls::NodeTls>>,
}

/// The Raft configuration a node runs with unless told otherwise. The heartbeat interval is
/// also openraft's AppendEntries timeout, which includes the follower's fsync.
pub fn default_raft_config() -> openraft::Config {
    crate::config::RaftTiming::default().apply(openraft::Config {
        cluster_name: "payment-ledger".into(),
        install_snapshot_timeout: 10_000,
        max_payload_entries: 256,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        snapshot_max_chunk_size: 1024 * 1024,
        purge_batch_size: 256,
        ..Default::default()
    })
}

/// What the node's tasks share: its Raft, its state, its intake, its proposer.
pub struct Shared<C: LedgerTypes = TypeConfig> {
    pub id: NodeId,
    pub raft: openraft::Raft<C>,
    pub reader: StateReader,
    pub intake: Intake,
    /// The time this node stamps entries with (its wall clock, never going back).
    pub stamper: Arc<LedgerClock>,
    pub metrics: Metrics,
    /// Batches client commands into Raft entries.
    pub proposer: Proposer,
    /// Wakes the SMS outbox loop as soon as a challenge is committed, instead of at its
    /// next tick.
    pub sms_wakeup: tokio::sync::Notify,
    /// TEST ONLY (see `NodeOptions::unsafe_local_reads`).
    pub unsafe_local_reads: bool,
    /// The backup this node has prepared for `backup_chunk`, if any.
    pub backups: crate::backup::Backups,
    /// The database folder's free space against its reserve (none in the simulator, whose
    /// nodes share the machine's disk).
    pub disk: Option<DiskReserve>,
    db: sled::Db,
    next_internal_request: AtomicU64,
}

impl<C: LedgerTypes> Shared<C> {
    /// Size of the node's database on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// The node info of a member, from the current membership.
    pub fn member(&self, id: NodeId) -> Option<NodeInfo> {
        let metrics = self.raft.metrics().borrow().clone();
        let node = metrics
            .membership_config
            .membership()
            .get_node(&id)?
            .clone();
        Some(NodeInfo {
            id,
            raft_addr: node.raft,
            client_addr: node.client,
        })
    }

    /// Whether this node leads the cluster, as far as it knows (a write or a read index
    /// confirms it with a quorum).
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        // A leader removed from the cluster goes on naming itself leader (openraft 0.9):
        // not a leader of anything once no configuration holds it.
        metrics.current_leader == Some(self.id)
            && metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == self.id)
    }

    /// A request key for a command the node proposes itself: above every earlier one, this
    /// process's and (from the ledger's session of this node) an earlier process's, whatever
    /// the clock says. (A node restarted with its clock behind once drew ids below its own
    /// floor: every SMS acknowledgement was refused as too old and the outbox resent every
    /// message each round; the simulator found it.)
    pub(crate) fn internal_key(&self, ledger: &Ledger<SledState>) -> RequestKey {
        let client_id = NODE_CLIENT_ID_BASE | self.id;
        let recorded = ledger.session(client_id).map_or(0, |s| s.floor);
        let floor = self.stamper.now_ms().saturating_mul(1_000).max(recorded);
        let request_id = self
            .next_internal_request
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.max(floor) + 1)
            })
            .map_or(floor, |previous| previous.max(floor) + 1);
        RequestKey {
            client_id,
            request_id,
        }
    }
}

/// A node's own code around a started Raft, whatever carries its messages and whatever
/// clock it reads: `start` builds these over tarpc and the system clock for `ledger-node`;
/// the simulator builds them over its router and virtual clocks, so it runs the node's
/// intake, proposer and SMS outbox exactly as production does.
pub struct NodeParts<C: LedgerTypes> {
    pub id: NodeId,
    pub raft: openraft::Raft<C>,
    pub reader: StateReader,
    /// The database the log store and state machine live in (flushed at shutdown).
    pub db: sled::Db,
    pub keys: SecretKeys,
    pub stamper: Arc<dyn Stamper>,
    pub sms: Arc<dyn SmsGateway>,
    /// How often the leader looks at the SMS outbox.
    pub sms_interval: Duration,
    /// Where merchants' payment events are POSTed.
    pub webhooks: Arc<dyn WebhookTransport>,
    pub webhook_options: WebhookOptions,
    pub cpu: CpuWork,
    /// TEST ONLY (see `NodeOptions::unsafe_local_reads`).
    pub unsafe_local_reads: bool,
    /// Refuse client writes while the database folder's free space is below a reserve.
    pub disk: Option<DiskReserve>,
    /// SIMULATOR ONLY: a deliberately broken piece of the node's code.
    pub planted: Option<PlantedBug>,
    /// Seeds the delays of the elections a leaderless node calls itself (`elections`).
    pub election_seed: u64,
}

/// Starts the node's own tasks (the proposer, the SMS outbox loop and the webhook delivery
/// loop) around its Raft.
pub fn assemble<C: LedgerTypes>(parts: NodeParts<C>) -> RunningNode<C> {
    let metrics = Metrics::default();
    let mut stamper = LedgerClock::new(parts.stamper, metrics.clock_steps.clone());
    if parts.planted == Some(PlantedBug::ClockStampsWallTime) {
        stamper = stamper.planted_wall_time_only();
    }
    let stamper = Arc::new(stamper);
    let (proposer, proposer_task) =
        Proposer::start(parts.raft.clone(), stamper.clone(), parts.planted);
    let shared = Arc::new(Shared {
        id: parts.id,
        raft: parts.raft,
        reader: parts.reader,
        intake: Intake {
            keys: parts.keys,
            cpu: parts.cpu,
            planted: parts.planted,
            plain_http_webhooks: parts.webhooks.posts_plain_http(),
        },
        stamper,
        metrics,
        proposer,
        sms_wakeup: tokio::sync::Notify::new(),
        unsafe_local_reads: parts.unsafe_local_reads,
        backups: Default::default(),
        disk: parts.disk,
        db: parts.db,
        next_internal_request: AtomicU64::new(0),
    });
    let outbox = tokio::spawn(outbox::run(shared.clone(), parts.sms, parts.sms_interval));
    let webhooks = tokio::spawn(webhooks::run(
        shared.clone(),
        parts.webhooks,
        parts.webhook_options,
    ));
    let nudge = crate::elections::Nudge::for_config(shared.raft.config(), parts.election_seed);
    let elections = tokio::spawn(crate::elections::run(shared.raft.clone(), shared.id, nudge));
    RunningNode {
        shared,
        tasks: vec![outbox, webhooks, proposer_task, elections],
    }
}

/// A started node.
pub struct RunningNode<C: LedgerTypes = TypeConfig> {
    pub shared: Arc<Shared<C>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the database in {path}: {source}")]
    Storage { path: PathBuf, source: sled::Error },
    #[error("opening the state machine: {0}")]
    StateMachine(String),
    #[error("reading the log's watermark: {0}")]
    Watermark(#[from] crate::watermark::WatermarkError),
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    #[error("starting Raft: {0}")]
    Raft(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens storage and starts every task of a node.
pub async fn start(options: NodeOptions) -> Result<RunningNode, StartError> {
    let sled_path = options.data_dir.join("sled");
    let db = sled::Config::new()
        .path(&sled_path)
        .cache_capacity(options.cache_bytes)
        .flush_every_ms(None)
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|source| StartError::Storage {
            path: sled_path.clone(),
            source,
        })?;
    let log_store = LogStore::<TypeConfig>::open(&db)
        .map_err(|source| StartError::Storage {
            path: sled_path.clone(),
            source,
        })?
        .with_watermark(&options.data_dir.join(WATERMARK_FILE))?;
    let state_machine = StateMachine::<TypeConfig>::open(&db, &options.data_dir.join("snapshots"))
        .map_err(|e| StartError::StateMachine(e.to_string()))?;
    let reader = state_machine.reader();
    let config = Arc::new(
        options
            .raft_config
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))?,
    );
    let network = Network {
        tls: options.tls.clone(),
        ..Network::default()
    };
    let raft = Raft::new(options.id, config, network, log_store, state_machine)
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;

    let mut node = assemble(NodeParts {
        id: options.id,
        raft: raft.clone(),
        reader,
        db,
        keys: options.keys,
        stamper: options.stamper,
        sms: options.sms,
        sms_interval: options.sms_interval,
        webhooks: options.webhooks,
        webhook_options: options.webhook_options,
        cpu: CpuWork::BlockingPool,
        unsafe_local_reads: options.unsafe_local_reads,
        disk: Some(DiskReserve::new(sled_path, options.min_free_disk_bytes)),
        planted: None,
        election_seed: rand::random(),
    });
    let refused = node.shared.metrics.tls_refused.clone();
    let raft_server = network::serve(
        options.raft_addr,
        raft.clone(),
        options.tls.clone(),
        refused,
    )
    .await
    .map_err(|source| StartError::Listen {
        addr: options.raft_addr,
        source,
    })?;
    let client_server = service::serve(options.client_addr, node.shared.clone(), options.tls)
        .await
        .map_err(|source| StartError::Listen {
            addr: options.client_addr,
            source,
        })?;
    node.tasks.extend([raft_server, client_server]);
    tracing::info!(id = options.id, raft = %options.raft_addr, client = %options.client_addr, "node started");
    Ok(node)
}

impl<C: LedgerTypes> RunningNode<C> {
    pub fn raft(&self) -> &openraft::Raft<C> {
        &self.shared.raft
    }

    /// Resolves when Raft has stopped on a fatal error (a log or state write that failed: a
    /// full disk, an I/O error, a record failing its checksum while applying), or when a
    /// read outside applying (a query, the outbox, webhooks) found a state record broken,
    /// saying what happened; never on a normal shutdown. The node must then stop: its storage
    /// may no longer hold what it acknowledged, and a restart recovers from what is durable
    /// and catches up from its peers (or refuses to start over a corrupt record).
    pub async fn failed(&self) -> String {
        let raft_failed = async {
            let mut metrics = self.shared.raft.metrics();
            loop {
                if let Err(fatal) = &metrics.borrow_and_update().running_state {
                    if !matches!(fatal, openraft::error::Fatal::Stopped) {
                        return format!("raft stopped on a storage failure: {fatal}");
                    }
                }
                if metrics.changed().await.is_err() {
                    // Raft is gone without a fatal error: a shutdown under way.
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            fatal = raft_failed => fatal,
            broken = self.shared.reader.broken_reads().reported() => {
                format!("a read of the state outside applying found it broken: {broken}")
            }
        }
    }

    /// Stops serving, stops Raft, and flushes storage.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if let Err(e) = self.shared.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        tracing::info!(id = self.shared.id, "node stopped");
    }
}

/// The Raft membership entry of a node.
pub fn node_addr(info: &NodeInfo) -> NodeAddr {
    NodeAddr {
        raft: info.raft_addr.clone(),
        client: info.client_addr.clone(),
    }
}
