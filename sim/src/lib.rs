//! The deterministic simulator: whole clusters of the production node code (openraft, the
//! sled log store and state machine, the ledger core, the bincode wire encoding) in one
//! process, on one thread, in virtual time, with seeded faults. The same seed gives the same
//! run, and the same trace hash, in any process built from the same lock file and toolchain.

// openraft's network traits return its (large) `RPCError` by value.
#![allow(clippy::result_large_err)]

#[cfg(not(tokio_unstable))]
compile_error!(
    "ledger-sim needs `--cfg tokio_unstable` (set in .cargo/config.toml): a RUSTFLAGS environment variable replaces it; add `--cfg tokio_unstable` to it"
);

pub mod network;
pub mod rng;

use ledger_core::command::{CampaignFlags, Command, Envelope};
use ledger_core::config::LedgerConfig;
use ledger_core::intake::{self, OpenAccountRequest, Secret, SecretKeys};
use ledger_core::types::{AccountId, PoolId, RequestKey};
use ledger_core::{Outcome, Reply};
use ledger_node::log_store::LogStore;
use ledger_node::raft_types::{Applied, NodeAddr, NodeId, Proposal, ProposalBody};
use ledger_node::state_machine::{StateMachine, StateReader};
use network::{NetFaults, Router, SimNetwork};
use openraft::Raft;
use rng::SimRng;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

openraft::declare_raft_types!(
    /// The simulator's Raft configuration: the same entry, reply and node types as
    /// production, on tokio's (paused, single-threaded) runtime.
    pub SimConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = openraft::Entry<SimConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Wall-clock time the virtual clock starts at: two seconds before 2015-01-01 00:00 CST,
/// inside the campaign, so that every run crosses a CST day and month (daily limits reset,
/// merchants roll into a new month, December can be closed).
const EPOCH_MS: u64 = 1_420_041_598_000;

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
    /// Which kinds of fault (all by default): see `FaultKinds`.
    pub kinds: FaultKinds,
    /// A deliberately broken piece, to show the checks catch it.
    pub bug: Option<Bug>,
}

/// The kinds of fault a run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultKinds {
    /// Message loss, duplication and delay.
    pub network: bool,
    /// Partitions, isolating the leader, clogging single links.
    pub partitions: bool,
    /// Crashes and restarts.
    pub crashes: bool,
    /// Leader clock steps.
    pub clocks: bool,
    /// Slow disks.
    pub disks: bool,
    /// A spare node joining and leaving.
    pub membership: bool,
}

impl FaultKinds {
    pub const ALL: FaultKinds = FaultKinds {
        network: true,
        partitions: true,
        crashes: true,
        clocks: true,
        disks: true,
        membership: true,
    };

    /// Parses a comma-separated list: network, partitions, crashes, clocks, disks, membership.
    pub fn parse(list: &str) -> Result<FaultKinds, String> {
        let mut kinds = FaultKinds {
            network: false,
            partitions: false,
            crashes: false,
            clocks: false,
            disks: false,
            membership: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "network" => kinds.network = true,
                "partitions" => kinds.partitions = true,
                "crashes" => kinds.crashes = true,
                "clocks" => kinds.clocks = true,
                "disks" => kinds.disks = true,
                "membership" => kinds.membership = true,
                other => return Err(format!("unknown fault `{other}`: network, partitions, crashes, clocks, disks, membership")),
            }
        }
        Ok(kinds)
    }
}

/// Deliberately broken variants of the pieces at the simulator's boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// A client that takes a new idempotency key when it retries.
    ClientForgetsKey,
    /// A network layer that delivers an answer twice: the next call of the same client gets
    /// the previous answer again, and its own is lost.
    NetworkDuplicatesAnswer,
    /// A node that applies a committed entry twice.
    NodeAppliesTwice,
    /// A log store that acknowledges appends before they are durable: a crash loses the
    /// last `LOST_WRITES_MS` of acknowledged entries.
    StorageAcksBeforeFlush,
}

impl Bug {
    pub const ALL: [Bug; 4] = [
        Bug::ClientForgetsKey,
        Bug::NetworkDuplicatesAnswer,
        Bug::NodeAppliesTwice,
        Bug::StorageAcksBeforeFlush,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::ClientForgetsKey => "client-forgets-key",
            Bug::NetworkDuplicatesAnswer => "network-duplicates-answer",
            Bug::NodeAppliesTwice => "node-applies-twice",
            Bug::StorageAcksBeforeFlush => "storage-acks-before-flush",
        }
    }

    pub fn parse(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// One client operation as the client saw it.
#[derive(Clone, Debug)]
pub struct Event {
    pub client: u64,
    pub key: RequestKey,
    /// Every key the client used for this one logical operation (one, unless it forgot).
    pub keys_tried: Vec<RequestKey>,
    pub command: Command,
    /// None: the client never learned the outcome (timeouts to the end).
    pub outcome: Option<Outcome>,
    pub invoked_ms: u64,
    pub completed_ms: u64,
}

/// The verdict of a run.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub violations: Vec<String>,
    pub trace_hash: String,
    pub virtual_ms: u64,
    pub events: usize,
    pub acknowledged: usize,
    /// Payments settled, and confirmations refused for a wrong code.
    pub payments_settled: usize,
    pub wrong_codes_refused: usize,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    /// The run's trace, line by line (faults, starts, crashes, leaders, every operation).
    pub trace: Vec<String>,
}

/// The toolchain and lock file a seed's replay depends on.
pub fn build_fingerprint() -> String {
    format!(
        "{}; Cargo.lock fnv {}",
        env!("LEDGER_SIM_RUSTC"),
        env!("LEDGER_SIM_LOCK_FNV")
    )
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

struct SimNode {
    raft: Raft<SimConfig>,
    reader: StateReader,
    /// A reader of the node's log, for the "committed entries never change" check.
    log: LogStore<SimConfig>,
    _db: sled::Db,
}

/// The simulated cluster: nodes, their data folders, the router, the virtual clocks.
struct Cluster {
    dir: PathBuf,
    router: Router,
    nodes: BTreeMap<NodeId, SimNode>,
    /// Per-node clock offsets (a leader's clock stepping back or forward), ms.
    clock_offset_ms: BTreeMap<NodeId, i64>,
    rng: SimRng,
    trace: Arc<Mutex<Sha256>>,
    /// With `storage-acks-before-flush`: per node, (index, virtual ms) of appended entries
    /// that a crash within `LOST_WRITES_MS` loses.
    unflushed: Unflushed,
    /// Log indexes from which a crashed node's log is lost (applied at its restart).
    lost_suffix: BTreeMap<NodeId, u64>,
    /// Slow disks: virtual ms each log append of a node takes.
    disk_delay_ms: BTreeMap<NodeId, u64>,
    /// The trace as text, for the file written when a seed fails.
    lines: Arc<Mutex<Vec<String>>>,
    started: tokio::time::Instant,
    bug: Option<Bug>,
}

impl Cluster {
    fn now_ms(&self, node: NodeId) -> u64 {
        let elapsed = self.started.elapsed().as_millis() as u64;
        (EPOCH_MS + elapsed).saturating_add_signed(*self.clock_offset_ms.get(&node).unwrap_or(&0))
    }

    fn trace(&self, line: &str) {
        self.trace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(line.as_bytes());
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!(
                "[{:>7} ms] {line}",
                self.started.elapsed().as_millis()
            ));
        if std::env::var_os("LEDGER_SIM_TRACE").is_some() {
            eprint!("[{:>7} ms] {line}", self.started.elapsed().as_millis());
        }
    }

    /// Starts (or restarts) a node from its data folder. A crashed node's last tasks may
    /// still hold its database for a few virtual milliseconds: wait for them, up to 2 s.
    async fn start(&mut self, id: NodeId) -> bool {
        let dir = self.dir.join(format!("node{id}"));
        let mut tries = 0;
        let db = loop {
            match sled::Config::new()
                .path(dir.join("sled"))
                .flush_every_ms(None)
                .open()
            {
                Ok(db) => break db,
                Err(_) if tries < 200 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    self.trace(&format!("restart {id} failed: {e}\n"));
                    return false;
                }
            }
        };
        if let Some(from) = self.lost_suffix.remove(&id) {
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
        let disk_delay_ms = *self.disk_delay_ms.get(&id).unwrap_or(&0);
        let log_reader = LogStore::<SimConfig>::open(&db).expect("log store");
        let log = SimLogStore {
            inner: log_reader.clone(),
            id,
            disk_delay_ms,
            started: self.started,
            unflushed: (self.bug == Some(Bug::StorageAcksBeforeFlush))
                .then(|| self.unflushed.clone()),
        };
        let inner =
            StateMachine::<SimConfig>::open(&db, &dir.join("snapshots")).expect("state machine");
        let reader = inner.reader();
        let sm = SimStateMachine {
            inner,
            applies_twice: self.bug == Some(Bug::NodeAppliesTwice) && id == 1,
        };
        // Election timeouts from the seed, max = min + 1: openraft's own random draw
        // then has nothing to choose.
        let min = 300 + self.rng.below(300);
        let config = openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: min,
            election_timeout_max: min + 1,
            install_snapshot_timeout: 2_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(200),
            max_in_snapshot_log_to_keep: 50,
            purge_batch_size: 16,
            ..Default::default()
        }
        .validate()
        .expect("valid config");
        let network = SimNetwork {
            id,
            router: self.router.clone(),
        };
        let raft = Raft::new(id, Arc::new(config), network, log, sm)
            .await
            .expect("raft");
        self.router
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .nodes
            .insert(id, raft.clone());
        self.nodes.insert(
            id,
            SimNode {
                raft,
                reader,
                log: log_reader,
                _db: db,
            },
        );
        self.trace(&format!("start {id} election {min}\n"));
        true
    }

    async fn crash(&mut self, id: NodeId) {
        self.router
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .nodes
            .remove(&id);
        if let Some(node) = self.nodes.remove(&id) {
            let _ = node.raft.shutdown().await;
            drop(node);
        }
        self.trace(&format!("crash {id}\n"));
        // The planted storage bug: what was acknowledged but not yet durable is gone.
        let now = self.started.elapsed().as_millis() as u64;
        let lost: Vec<u64> = {
            let mut unflushed = self.unflushed.lock().unwrap_or_else(|p| p.into_inner());
            let entries = unflushed.remove(&id).unwrap_or_default();
            entries
                .into_iter()
                .filter(|(_, at)| now.saturating_sub(*at) < LOST_WRITES_MS)
                .map(|(i, _)| i)
                .collect()
        };
        if let Some(first) = lost.iter().min() {
            self.lost_suffix.insert(id, *first);
            self.trace(&format!("node {id} loses log entries from {first}\n"));
        }
    }

    fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(u64, NodeId)> = None;
        for (id, node) in &self.nodes {
            let m = node.raft.metrics().borrow().clone();
            if m.current_leader == Some(*id) && best.is_none_or(|(term, _)| m.current_term > term) {
                best = Some((m.current_term, *id));
            }
        }
        best.map(|(_, id)| id)
    }
}

/// Submits one command through whichever node leads, retrying under the same key until it
/// learns the outcome or gives up.
async fn submit(
    cluster: &Arc<tokio::sync::Mutex<Cluster>>,
    key: RequestKey,
    command: &Command,
    attempts: u32,
) -> Option<Outcome> {
    submit_tracking(cluster, key, command, attempts, None, &mut Vec::new()).await
}

/// `submit`, recording every key used in `tried`. With `fresh_keys` (the
/// `client-forgets-key` bug), each retry takes a new key from the counter.
async fn submit_tracking(
    cluster: &Arc<tokio::sync::Mutex<Cluster>>,
    mut key: RequestKey,
    command: &Command,
    attempts: u32,
    mut fresh_keys: Option<&mut u64>,
    tried: &mut Vec<RequestKey>,
) -> Option<Outcome> {
    for attempt in 0..attempts {
        if attempt > 0 {
            if let Some(next) = fresh_keys.as_deref_mut() {
                *next += 1;
                key.request_id = *next;
            }
        }
        if tried.last() != Some(&key) {
            tried.push(key);
        }
        let target = {
            let c = cluster.lock().await;
            let leader = c.leader();
            let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
            leader
                .or_else(|| ids.get(attempt as usize % ids.len().max(1)).copied())
                .and_then(|id| c.nodes.get(&id).map(|n| (id, n.raft.clone(), c.now_ms(id))))
        };
        if let Some((_, raft, now_ms)) = target {
            let proposal = Proposal {
                now_ms,
                body: ProposalBody::Commands(vec![Envelope {
                    key,
                    acked_below: 0,
                    command: command.clone(),
                }]),
            };
            if let Ok(Ok(response)) =
                tokio::time::timeout(Duration::from_secs(2), raft.client_write(proposal)).await
            {
                if let Applied::Outcomes(mut outcomes) = response.data {
                    return outcomes.pop();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50 + 50 * u64::from(attempt.min(10)))).await;
    }
    None
}

fn keys() -> SecretKeys {
    SecretKeys::derive(b"simulator master key", 1)
}

/// Runs one seed and returns its verdict.
pub fn run(options: &SimOptions) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .rng_seed(tokio::runtime::RngSeed::from_bytes(
            &options.seed.to_le_bytes(),
        ))
        .build()
        .expect("runtime");
    let dir = tempfile::Builder::new()
        .prefix("ledger-sim-")
        .tempdir()
        .expect("temp dir");
    let report = runtime.block_on(simulate(options.clone(), dir.path().to_owned()));
    drop(runtime);
    report
}

async fn simulate(options: SimOptions, dir: PathBuf) -> Report {
    let seed = options.seed;
    let mut fault_rng = SimRng::stream(seed, "faults");
    let faults = if options.faults && options.kinds.network {
        NetFaults {
            loss: [0.0, 0.01, 0.05, 0.15][fault_rng.below(4) as usize],
            duplicate: [0.0, 0.02, 0.1][fault_rng.below(3) as usize],
            max_delay_ms: [5, 20, 100][fault_rng.below(3) as usize],
        }
    } else {
        NetFaults {
            loss: 0.0,
            duplicate: 0.0,
            max_delay_ms: 5,
        }
    };
    let trace = Arc::new(Mutex::new(Sha256::new()));
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let router = Router::new(SimRng::stream(seed, "network"), faults.clone());
    let members: BTreeMap<NodeId, NodeAddr> = (1..=options.nodes)
        .map(|id| {
            (
                id,
                NodeAddr {
                    raft: format!("sim:{id}"),
                    client: format!("sim:{id}"),
                },
            )
        })
        .collect();
    let mut cluster = Cluster {
        dir,
        router,
        nodes: BTreeMap::new(),
        clock_offset_ms: BTreeMap::new(),
        rng: SimRng::stream(seed, "cluster"),
        trace: trace.clone(),
        lines: lines.clone(),
        unflushed: Arc::default(),
        lost_suffix: BTreeMap::new(),
        disk_delay_ms: (1..=options.nodes)
            .map(|id| {
                (
                    id,
                    if options.faults && options.kinds.disks && fault_rng.chance(0.3) {
                        1 + fault_rng.below(30)
                    } else {
                        0
                    },
                )
            })
            .collect(),
        started: tokio::time::Instant::now(),
        bug: options.bug,
    };
    cluster.trace(&format!("seed {seed} faults {faults:?}\n"));
    for id in 1..=options.nodes {
        assert!(cluster.start(id).await, "a fresh node starts");
    }
    let first = cluster.nodes[&1].raft.clone();
    first.initialize(members.clone()).await.expect("initialize");
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));
    let mut violations = Vec::new();

    // Genesis, then accounts and a small voucher pool, before any fault.
    let genesis = loop {
        let leader = { cluster.lock().await.leader() };
        if let Some(leader) = leader {
            let c = cluster.lock().await;
            let raft = c.nodes[&leader].raft.clone();
            let now_ms = c.now_ms(leader);
            drop(c);
            let proposal = Proposal {
                now_ms,
                // Simulated clients never acknowledge, and the checks want every record.
                body: ProposalBody::Genesis(LedgerConfig {
                    idempotency_window_per_client: 1_000_000,
                    ..LedgerConfig::default()
                }),
            };
            if raft.client_write(proposal).await.is_ok() {
                break true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if cluster.lock().await.started.elapsed() > Duration::from_secs(60) {
            break false;
        }
    };
    if !genesis {
        violations.push("no leader accepted genesis within 60 virtual seconds".into());
    }
    // The SMS outbox, as the node delivers it: whoever leads reads the outbox, "sends" each
    // code to the customer's phone, and acknowledges through the log; a new leader sends
    // what is left (at least once).
    let phones: Phones = Arc::default();
    let sms_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sms_task = tokio::spawn(deliver_sms(
        cluster.clone(),
        phones.clone(),
        sms_stop.clone(),
    ));
    let setup_client = 1_000;
    let mut setup_request = 0;
    let mut setup = |command: Command| {
        setup_request += 1;
        (
            RequestKey {
                client_id: setup_client,
                request_id: setup_request,
            },
            command,
        )
    };
    let accounts_n = 6u64;
    let mut accounts = Vec::new();
    for n in 0..accounts_n {
        let request = OpenAccountRequest {
            holder_name: format!("sim {n}"),
            card_number: Secret::new(ledger_core::driver::test_pan(n)),
            card_password: Secret::new("123456"),
            phone: ledger_core::driver::test_phone(n),
            flags: CampaignFlags::default(),
        };
        let command =
            intake::open_account(&keys(), &request, [n as u8; 16]).expect("valid request");
        let (key, command) = setup(command);
        match submit(&cluster, key, &command, 100).await {
            Some(Ok(Reply::AccountOpened { account })) => accounts.push(account),
            other => violations.push(format!("setup: opening account {n}: {other:?}")),
        }
    }
    for account in &accounts {
        let (key, command) = setup(Command::Deposit {
            account: *account,
            amount_fen: 100_000,
        });
        if !matches!(submit(&cluster, key, &command, 100).await, Some(Ok(_))) {
            violations.push(format!("setup: deposit to {account} failed"));
        }
    }
    let now = { cluster.lock().await.now_ms(1) };
    let (key, command) = setup(Command::CreatePool {
        name: "race".into(),
        face_value_fen: 1_000,
        capacity: 3,
        eligibility: ledger_core::types::Eligibility::Anyone,
        valid_from_ms: now - 1,
        valid_until_ms: now + 86_400_000,
    });
    let pool = match submit(&cluster, key, &command, 100).await {
        Some(Ok(Reply::PoolCreated { pool })) => pool,
        other => {
            violations.push(format!("setup: pool: {other:?}"));
            PoolId(1)
        }
    };

    // e-Pay for the first four cards (all four steps, codes as the SMS would carry them), and
    // a POS merchant settling into the last card.
    let enrolled = accounts.len().min(4);
    for (n, account) in accounts.iter().enumerate().take(enrolled) {
        if let Err(e) = enrol(&cluster, &phones, &mut setup, n as u64, *account).await {
            violations.push(format!("setup: enrolling card {n}: {e}"));
        }
    }
    let (key, command) = setup(Command::RegisterMerchant {
        kind: ledger_core::types::MerchantKind::Pos,
        name: "sim shop".into(),
        settlement_account: accounts.last().copied().unwrap_or(AccountId(16)),
        contact_phone: ledger_core::driver::test_phone(99),
        terminals: 1,
    });
    let merchant = match submit(&cluster, key, &command, 100).await {
        Some(Ok(Reply::MerchantRegistered { merchant })) => merchant,
        other => {
            violations.push(format!("setup: merchant: {other:?}"));
            ledger_core::types::MerchantId(1)
        }
    };

    // Load and faults.
    let history: Arc<Mutex<Vec<Event>>> = Arc::default();
    let leaders_by_term: Arc<Mutex<BTreeMap<u64, BTreeSet<NodeId>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..options.clients {
        let (cluster, history, stop, accounts, phones) = (
            cluster.clone(),
            history.clone(),
            stop.clone(),
            accounts.clone(),
            phones.clone(),
        );
        let mut rng = SimRng::stream(seed, &format!("client{client}"));
        let bug = options.bug;
        tasks.push(tokio::spawn(async move {
            let mut request_id = 0;
            let mut last_answer: Option<Outcome> = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                request_id += 1;
                let key = RequestKey {
                    client_id: client + 1,
                    request_id,
                };
                let a = accounts[rng.below(accounts.len() as u64) as usize];
                let b = accounts[rng.below(accounts.len() as u64) as usize];
                if rng.below(10) < 3 && enrolled > 0 {
                    // A two-step e-Pay payment; now and then the payer mistypes the code.
                    let n = rng.below(enrolled as u64);
                    let wrong_code = rng.chance(0.15);
                    let amount_fen = 500 + rng.below(3_000);
                    pay(
                        &cluster,
                        &phones,
                        &history,
                        client + 1,
                        &mut request_id,
                        n,
                        merchant,
                        amount_fen,
                        wrong_code,
                    )
                    .await;
                    tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
                    continue;
                }
                let command = match rng.below(10) {
                    0..=5 => Command::Transfer {
                        source: a,
                        target: b,
                        amount_fen: 1 + rng.below(5_000),
                    },
                    6 | 7 => Command::Deposit {
                        account: a,
                        amount_fen: 1 + rng.below(1_000),
                    },
                    8 if rng.chance(0.05) => Command::CloseMonth {
                        month: ledger_core::types::YearMonth::new(2014, 12).expect("a month"),
                    },
                    _ => Command::ClaimVoucher { pool, account: a },
                };
                let invoked_ms = { cluster.lock().await.started.elapsed().as_millis() as u64 };
                let mut keys_tried = Vec::new();
                let fresh = if bug == Some(Bug::ClientForgetsKey) {
                    Some(&mut request_id)
                } else {
                    None
                };
                let mut outcome =
                    submit_tracking(&cluster, key, &command, 12, fresh, &mut keys_tried).await;
                if bug == Some(Bug::NetworkDuplicatesAnswer) && outcome.is_some() {
                    if rng.chance(0.1) && last_answer.is_some() {
                        outcome = last_answer.clone();
                    } else {
                        last_answer = outcome.clone();
                    }
                }
                let completed_ms = { cluster.lock().await.started.elapsed().as_millis() as u64 };
                let event = Event {
                    client: client + 1,
                    key: *keys_tried.last().unwrap_or(&key),
                    keys_tried,
                    command,
                    outcome,
                    invoked_ms,
                    completed_ms,
                };
                history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(event);
                tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
            }
        }));
    }
    // The monitor: at most one leader per term, sampled every 10 virtual ms.
    // ...and no replica stops on a fatal error (a broken invariant, a storage failure).
    let fatal: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let monitor = {
        let (cluster, leaders_by_term, stop, fatal) = (
            cluster.clone(),
            leaders_by_term.clone(),
            stop.clone(),
            fatal.clone(),
        );
        tokio::spawn(async move {
            // Committed entries never change: the digest of every applied (so committed)
            // entry any replica holds, by index, must stay the same everywhere, forever.
            let mut committed: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
            let mut checked: BTreeMap<NodeId, u64> = BTreeMap::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                {
                    let c = cluster.lock().await;
                    for (id, node) in &c.nodes {
                        let applied = node.raft.metrics().borrow().last_applied.map(|l| l.index);
                        let Some(applied) = applied else { continue };
                        let from = checked.get(id).map_or(0, |c| c + 1);
                        if from > applied {
                            continue;
                        }
                        let mut log = node.log.clone();
                        let entries =
                            openraft::RaftLogReader::try_get_log_entries(&mut log, from..=applied)
                                .await
                                .unwrap_or_default();
                        for entry in entries {
                            let digest: [u8; 32] =
                                Sha256::digest(bincode::serialize(&entry).unwrap_or_default())
                                    .into();
                            let index = entry.log_id.index;
                            if let Some(seen) = committed.insert(index, digest) {
                                if seen != digest {
                                    fatal.lock().unwrap_or_else(|p| p.into_inner()).insert(format!(
                                        "committed entry {index} changed (seen differently on node {id})"
                                    ));
                                }
                            }
                        }
                        checked.insert(*id, applied);
                    }
                }
                {
                    let c = cluster.lock().await;
                    let mut seen = leaders_by_term.lock().unwrap_or_else(|p| p.into_inner());
                    for (id, node) in &c.nodes {
                        let m = node.raft.metrics().borrow().clone();
                        // A leader of term T holds a committed vote for itself in T. (The
                        // server state alone can lag a vote a deposed leader just granted.)
                        let vote = m.vote;
                        if m.state == openraft::ServerState::Leader
                            && vote.committed
                            && vote.leader_id.voted_for == Some(*id)
                            && seen.entry(vote.leader_id.term).or_default().insert(*id)
                        {
                            c.trace(&format!("leader {id} term {}\n", vote.leader_id.term));
                        }
                        if let Err(e) = &m.running_state {
                            fatal
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(format!("node {id} stopped: {e}"));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let end = Duration::from_secs(options.duration_s);
    let mut crashed: BTreeSet<NodeId> = BTreeSet::new();
    let mut membership_task: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let elapsed = { cluster.lock().await.started.elapsed() };
        if elapsed > end + Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 + fault_rng.below(800))).await;
        if !options.faults {
            continue;
        }
        let mut c = cluster.lock().await;
        let ids: Vec<NodeId> = members.keys().copied().collect();
        // One partition at a time: a new one only once every link of the last is unclogged
        // (one by one, in the seed's order), so runs alternate between trouble and progress.
        let clogged = !c
            .router
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cut
            .is_empty();
        let draw = fault_rng.below(8);
        let draw = if clogged && draw <= 2 { 3 } else { draw };
        let allowed = match draw {
            0..=4 => options.kinds.partitions,
            5 => options.kinds.crashes,
            6 => options.kinds.clocks,
            _ => options.kinds.membership,
        };
        if !allowed {
            continue;
        }
        match draw {
            0 if fault_rng.chance(0.5) => {
                // Clog a single directed link.
                let from = ids[fault_rng.below(ids.len() as u64) as usize];
                let to = ids[fault_rng.below(ids.len() as u64) as usize];
                if from != to {
                    c.router
                        .0
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .cut
                        .insert((from, to));
                    c.trace(&format!("clog ({from}, {to})\n"));
                }
            }
            0 | 1 => {
                // Partition: a random minority cut off both ways (or one way: asymmetric).
                let victim = ids[fault_rng.below(ids.len() as u64) as usize];
                let both = fault_rng.chance(0.7);
                let mut r = c.router.0.lock().unwrap_or_else(|p| p.into_inner());
                for other in &ids {
                    if *other != victim {
                        r.cut.insert((victim, *other));
                        if both {
                            r.cut.insert((*other, victim));
                        }
                    }
                }
                drop(r);
                c.trace(&format!("partition {victim} both={both}\n"));
            }
            2 => {
                // Isolate the leader.
                if let Some(leader) = c.leader() {
                    let mut r = c.router.0.lock().unwrap_or_else(|p| p.into_inner());
                    for other in &ids {
                        if *other != leader {
                            r.cut.insert((leader, *other));
                            r.cut.insert((*other, leader));
                        }
                    }
                    drop(r);
                    c.trace(&format!("isolate leader {leader}\n"));
                }
            }
            3 | 4 => {
                // Heal links one by one, in the seed's order.
                let mut r = c.router.0.lock().unwrap_or_else(|p| p.into_inner());
                let cut: Vec<(NodeId, NodeId)> = r.cut.iter().copied().collect();
                if !cut.is_empty() {
                    let link = cut[fault_rng.below(cut.len() as u64) as usize];
                    r.cut.remove(&link);
                    drop(r);
                    c.trace(&format!("heal {link:?}\n"));
                }
            }
            5 => {
                // Crash a node (at most a minority at once), or restart a crashed one.
                if let Some(id) = crashed.iter().next().copied() {
                    if c.start(id).await {
                        crashed.remove(&id);
                    }
                } else {
                    let id = ids[fault_rng.below(ids.len() as u64) as usize];
                    crashed.insert(id);
                    c.crash(id).await;
                }
            }
            6 => {
                // The clock of a node steps back or forward by up to an hour.
                let id = ids[fault_rng.below(ids.len() as u64) as usize];
                let step = fault_rng.below(7_200_000) as i64 - 3_600_000;
                c.clock_offset_ms.insert(id, step);
                c.trace(&format!("clock {id} {step}\n"));
            }
            _ if membership_task.as_ref().is_none_or(|t| t.is_finished()) => {
                // Membership: a spare node joins (learner, then voter), or leaves again.
                let spare = options.nodes + 1;
                let joined = c.nodes.contains_key(&spare);
                if let Some(leader) = c.leader() {
                    if !joined && !c.start(spare).await {
                        c.trace(&format!("spare {spare} could not start\n"));
                        continue;
                    }
                    let raft = c.nodes[&leader].raft.clone();
                    c.trace(&format!(
                        "membership: node {spare} {}\n",
                        if joined { "leaves" } else { "joins" }
                    ));
                    let cluster = cluster.clone();
                    membership_task = Some(tokio::spawn(async move {
                        change_membership(cluster, raft, spare, !joined).await;
                    }));
                }
            }
            _ => {}
        }
        if elapsed > end {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    if let Some(task) = membership_task {
        let _ = task.await;
    }
    let _ = monitor.await;
    violations.extend(
        fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned(),
    );

    // Heal everything, then the cluster must make progress within a bounded virtual time.
    {
        let mut c = cluster.lock().await;
        c.router
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cut
            .clear();
        c.router.0.lock().unwrap_or_else(|p| p.into_inner()).faults = NetFaults {
            loss: 0.0,
            duplicate: 0.0,
            max_delay_ms: 5,
        };
        for id in crashed.clone() {
            if !c.start(id).await {
                violations.push(format!("node {id} could not restart from its data"));
            }
        }
        stop_spare_unless_voter(&mut c, options.nodes + 1).await;
        c.trace("heal all\n");
    }
    let probe_key = RequestKey {
        client_id: 999_999,
        request_id: 1,
    };
    let probe = Command::Deposit {
        account: accounts.first().copied().unwrap_or(AccountId(16)),
        amount_fen: 1,
    };
    let healed_at = { cluster.lock().await.started.elapsed() };
    if !matches!(submit(&cluster, probe_key, &probe, 200).await, Some(Ok(_))) {
        violations.push("liveness: no write committed within 30 virtual seconds of healing".into());
    }
    // With a leader again, a spare that is no member stops before replicas are compared.
    stop_spare_unless_voter(&mut *cluster.lock().await, options.nodes + 1).await;
    // Every replica catches up to the same applied index.
    let caught_up = loop {
        let (indexes, elapsed) = {
            let c = cluster.lock().await;
            let indexes: BTreeSet<Option<u64>> =
                c.nodes.values().map(|n| n.reader.applied_index()).collect();
            (indexes, c.started.elapsed())
        };
        if indexes.len() == 1 {
            break true;
        }
        if elapsed > healed_at + Duration::from_secs(60) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if !caught_up {
        violations.push(
            "replicas did not reach the same applied index within 60 virtual seconds of healing"
                .into(),
        );
    }

    // Every committed challenge's SMS was delivered and acknowledged (or expired).
    let drained = loop {
        let (empty, elapsed) = {
            let c = cluster.lock().await;
            let empty = c
                .leader()
                .and_then(|l| c.nodes.get(&l))
                .and_then(|n| n.reader.ledger())
                .is_some_and(|l| l.outbox(1).is_empty());
            (empty, c.started.elapsed())
        };
        if empty {
            break true;
        }
        if elapsed > healed_at + Duration::from_secs(90) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if !drained {
        violations.push("the SMS outbox was not drained after healing".into());
    }
    sms_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sms_task.await;

    let c = cluster.lock().await;
    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    check(
        &c,
        &history,
        &leaders_by_term.lock().unwrap_or_else(|p| p.into_inner()),
        &mut violations,
    );
    let virtual_ms = c.started.elapsed().as_millis() as u64;
    for e in &history {
        c.trace(&format!(
            "{} {:?} {:?} {:?} {} {}\n",
            e.client, e.key, e.command, e.outcome, e.invoked_ms, e.completed_ms
        ));
    }
    let (delivered, dropped) = {
        let r = c.router.0.lock().unwrap_or_else(|p| p.into_inner());
        (r.delivered, r.dropped)
    };
    c.trace(&format!(
        "messages {delivered} {dropped} violations {violations:?}\n"
    ));
    let trace_hash = {
        let h = trace.lock().unwrap_or_else(|p| p.into_inner()).clone();
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let acknowledged = history.iter().filter(|e| e.outcome.is_some()).count();
    let payments_settled = history
        .iter()
        .filter(|e| matches!(e.outcome, Some(Ok(Reply::PaymentSettled { .. }))))
        .count();
    let wrong_codes_refused = history
        .iter()
        .filter(|e| {
            matches!(
                e.outcome,
                Some(Err(ledger_core::LedgerError::WrongOtp { .. }))
            )
        })
        .count();
    let nodes: Vec<NodeId> = c.nodes.keys().copied().collect();
    drop(c);
    let trace_lines = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for id in nodes {
        cluster.lock().await.crash(id).await;
    }
    Report {
        seed,
        violations,
        trace_hash,
        virtual_ms,
        events: history.len(),
        acknowledged,
        payments_settled,
        wrong_codes_refused,
        messages_delivered: delivered,
        messages_dropped: dropped,
        trace: trace_lines,
    }
}

/// The checks after healing: money, vouchers, idempotency records of acknowledged
/// operations, equal replicas, one leader per term.
/// Linearizability against the ledger core: every replica applied the same commands in
/// log order (equal hashes) and every acknowledged outcome is the one recorded at its log
/// index (checked above); what remains is that the log order respects real time: an
/// operation acknowledged before another was invoked sits earlier in the log. (First come,
/// first served for vouchers follows.)
fn check_real_time_order(
    ledger: &ledger_core::Ledger<ledger_node::state_store::SledState>,
    history: &[Event],
    violations: &mut Vec<String>,
) {
    let mut placed: Vec<(u64, u64, u64, RequestKey)> = history
        .iter()
        .filter(|e| e.outcome.is_some())
        .filter_map(|e| {
            let r = ledger.idempotency_record(e.key)?;
            Some((e.invoked_ms, e.completed_ms, r.applied_index, e.key))
        })
        .collect();
    let mut by_completion = placed.clone();
    by_completion.sort_by_key(|p| p.1);
    placed.sort_by_key(|p| p.0);
    let mut done = by_completion.iter().peekable();
    let mut latest: Option<(u64, RequestKey)> = None;
    for (invoked, _, index, key) in &placed {
        while let Some((_, completed, i, k)) = done.peek() {
            if completed >= invoked {
                break;
            }
            if latest.is_none_or(|(li, _)| *i > li) {
                latest = Some((*i, *k));
            }
            done.next();
        }
        if let Some((earlier_index, earlier)) = latest {
            if *index <= earlier_index {
                violations.push(format!(
                    "real-time order broken: {earlier:?} (log index {earlier_index}) was acknowledged before {key:?} was sent, yet {key:?} sits at {index}"
                ));
            }
        }
    }
}

/// The one-time reward: granted at most once, only past both thresholds, paid in full.
fn check_rewards(
    ledger: &ledger_core::Ledger<ledger_node::state_store::SledState>,
    violations: &mut Vec<String>,
) {
    let config = ledger.config().clone();
    let mut granted = 0;
    for id in 1..=ledger.meta().next_merchant.saturating_sub(1) {
        let Some(m) = ledger.merchant(ledger_core::types::MerchantId(id)) else {
            continue;
        };
        if m.reward_payment.is_some() {
            granted += 1;
            if m.campaign_tx_count < config.pos_reward_min_count
                || m.campaign_amount_fen < config.pos_reward_min_fen
            {
                violations.push(format!(
                    "merchant {id} rewarded below the thresholds: {m:?}"
                ));
            }
        }
    }
    let paid = ledger
        .balance_fen(AccountId::TELECOM_SETTLEMENT)
        .unwrap_or(0);
    if paid != granted * config.reward_fen as i64 {
        violations.push(format!(
            "{granted} rewards granted but {paid} fen of phone credit paid"
        ));
    }
}

/// Every payment settles at most once, and only with the right code.
fn check_payments(history: &[Event], violations: &mut Vec<String>) {
    let mut settled: BTreeMap<ledger_core::types::PaymentId, usize> = BTreeMap::new();
    for e in history {
        if let Some(Ok(Reply::PaymentSettled { payment, .. })) = &e.outcome {
            *settled.entry(*payment).or_default() += 1;
        }
    }
    for (payment, times) in settled {
        if times > 1 {
            violations.push(format!("payment {payment} settled by {times} operations"));
        }
    }
}

fn check(
    c: &Cluster,
    history: &[Event],
    leaders_by_term: &BTreeMap<u64, BTreeSet<NodeId>>,
    violations: &mut Vec<String>,
) {
    for (term, leaders) in leaders_by_term {
        if leaders.len() > 1 {
            violations.push(format!("term {term} had leaders {leaders:?}"));
        }
    }
    let mut hashes = BTreeMap::new();
    for (id, node) in &c.nodes {
        let Some(ledger) = node.reader.ledger() else {
            violations.push(format!("node {id} has no ledger"));
            continue;
        };
        if let Err(e) = ledger.check_invariants() {
            violations.push(format!("node {id}: {e}"));
        }
        hashes.insert(*id, (node.reader.applied_index(), ledger.state_hash()));
        for e in history {
            // A logical operation applies at most once, whatever keys its retries used.
            let applied: Vec<&RequestKey> = e
                .keys_tried
                .iter()
                .filter(|k| {
                    ledger
                        .idempotency_record(**k)
                        .is_some_and(|r| r.outcome.is_ok())
                })
                .collect();
            if applied.len() > 1 {
                violations.push(format!(
                    "node {id}: one operation of client {} applied {} times: {applied:?}",
                    e.client,
                    applied.len()
                ));
            }
        }
        for e in history {
            let Some(outcome) = &e.outcome else { continue };
            match ledger.idempotency_record(e.key) {
                Some(r) if r.command == e.command && &r.outcome == outcome => {}
                // A refusal that changed nothing is not recorded: retries evaluate afresh.
                None if outcome.is_err() => {}
                other => violations.push(format!(
                    "node {id}: acknowledged {:?} ({:?}) not present as answered: {:?}",
                    e.key,
                    outcome,
                    other.map(|r| r.outcome)
                )),
            }
        }
    }
    check_payments(history, violations);
    if let Some(ledger) = c.nodes.values().next().and_then(|n| n.reader.ledger()) {
        check_real_time_order(&ledger, history, violations);
        check_rewards(&ledger, violations);
    }
    let distinct: BTreeSet<_> = hashes.values().collect();
    if distinct.len() > 1 {
        violations.push(format!("replicas differ after catching up: {hashes:?}"));
    }
}

/// The production state machine, or (for the `node-applies-twice` bug) one that applies a
/// committed entry a second time now and then.
pub struct SimStateMachine {
    inner: StateMachine<SimConfig>,
    applies_twice: bool,
}

impl openraft::storage::RaftStateMachine<SimConfig> for SimStateMachine {
    type SnapshotBuilder = <StateMachine<SimConfig> as openraft::storage::RaftStateMachine<
        SimConfig,
    >>::SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<ledger_node::raft_types::LogId>,
            ledger_node::raft_types::StoredMembership,
        ),
        ledger_node::raft_types::StorageError,
    > {
        self.inner.applied_state().await
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<Applied>, ledger_node::raft_types::StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<SimConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let again: Vec<_> = if self.applies_twice {
            entries
                .iter()
                .filter(|e| {
                    e.log_id.index % 40 == 0
                        && matches!(e.payload, openraft::EntryPayload::Normal(_))
                })
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let replies = self.inner.apply(entries).await?;
        if !again.is_empty() {
            let _ = self.inner.apply(again).await;
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.inner.get_snapshot_builder().await
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, ledger_node::raft_types::StorageError> {
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &ledger_node::raft_types::SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), ledger_node::raft_types::StorageError> {
        self.inner.install_snapshot(meta, snapshot).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::Snapshot<SimConfig>>, ledger_node::raft_types::StorageError> {
        self.inner.get_current_snapshot().await
    }
}

/// The ledger as the current leader has applied it (a client_write returns after the
/// leader applied, so this sees the caller's own writes).
async fn leader_ledger(
    cluster: &Arc<tokio::sync::Mutex<Cluster>>,
) -> Option<ledger_core::Ledger<ledger_node::state_store::SledState>> {
    let c = cluster.lock().await;
    let leader = c.leader()?;
    c.nodes.get(&leader)?.reader.ledger()
}

/// A request's OTP nonce, derived from its key as the node's intake does.
fn nonce_for(key: RequestKey) -> u64 {
    let e = intake::request_entropy(&keys(), key, "otp-nonce");
    u64::from_be_bytes(e[..8].try_into().expect("8 bytes"))
}

/// The four e-Pay enrolment steps for card `n`, reading the code the SMS would carry.
async fn enrol(
    cluster: &Arc<tokio::sync::Mutex<Cluster>>,
    phones: &Phones,
    setup: &mut impl FnMut(Command) -> (RequestKey, Command),
    n: u64,
    account: AccountId,
) -> Result<(), String> {
    let k = keys();
    let pan = Secret::new(ledger_core::driver::test_pan(n));
    let phone = ledger_core::driver::test_phone(n);
    let step = |outcome: Option<Outcome>, what: &str| match outcome {
        Some(Ok(reply)) => Ok(reply),
        other => Err(format!("{what}: {other:?}")),
    };
    let (key, command) = setup(Command::EpayBegin {
        pan_digest: intake::card_digest(&k, &pan).map_err(|e| e.to_string())?,
        phone,
    });
    step(submit(cluster, key, &command, 100).await, "step 1")?;
    let stored = leader_ledger(cluster)
        .await
        .and_then(|l| l.holder(account))
        .ok_or("no holder")?
        .password;
    let proof =
        intake::password_proof(&k, &Secret::new("123456"), &stored).map_err(|e| e.to_string())?;
    let (key, command) = setup(Command::EpayChooseAlias {
        account,
        password_proof: proof,
        alias: format!("card {n}"),
    });
    step(submit(cluster, key, &command, 100).await, "step 2")?;
    let digest = ledger_core::command::TxElements::Enrolment {
        account,
        alias: &format!("card {n}"),
    }
    .digest();
    let (key, _) = setup(Command::EpayConfirm {
        account,
        challenge: ledger_core::command::ChallengeSeed {
            nonce: 0,
            verifier: Default::default(),
        },
    });
    let (seed, _) = intake::challenge_seed(&k, nonce_for(key), &digest);
    let command = Command::EpayConfirm {
        account,
        challenge: seed,
    };
    step(submit(cluster, key, &command, 100).await, "step 3")?;
    let (challenge_id, challenge) = leader_ledger(cluster)
        .await
        .and_then(|l| {
            let id = l.enrolment(account).and_then(|e| e.challenge)?;
            Some((id, l.challenge(id)?))
        })
        .ok_or("no challenge")?;
    let code = read_sms(phones, challenge_id)
        .await
        .ok_or("no enrolment SMS")?;
    let (key, command) = setup(Command::EpayActivate {
        account,
        otp: intake::otp_proof(&k, &challenge, &code).map_err(|e| e.to_string())?,
    });
    step(submit(cluster, key, &command, 100).await, "step 4")?;
    Ok(())
}

/// A two-step payment by card `n` to the merchant, both steps recorded in the history.
#[allow(clippy::too_many_arguments)]
async fn pay(
    cluster: &Arc<tokio::sync::Mutex<Cluster>>,
    phones: &Phones,
    history: &Arc<Mutex<Vec<Event>>>,
    client: u64,
    request_id: &mut u64,
    n: u64,
    merchant: ledger_core::types::MerchantId,
    amount_fen: u64,
    wrong_code: bool,
) {
    let k = keys();
    let record = |key: RequestKey,
                  command: Command,
                  outcome: Option<Outcome>,
                  invoked_ms: u64,
                  completed_ms: u64| {
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Event {
                client,
                key,
                keys_tried: vec![key],
                command,
                outcome,
                invoked_ms,
                completed_ms,
            });
    };
    let elapsed = |c: &Cluster| c.started.elapsed().as_millis() as u64;
    *request_id += 1;
    let key = RequestKey {
        client_id: client,
        request_id: *request_id,
    };
    let Ok(lookup_digest) = intake::lookup_digest(
        &k,
        &ledger_core::driver::test_phone(n),
        &Secret::new(&ledger_core::driver::test_pan(n)[10..]),
    ) else {
        return;
    };
    let payee = ledger_core::types::Payee::Merchant(merchant);
    let order_id = format!("c{client}-{request_id}");
    let digest = ledger_core::command::TxElements::Payment {
        lookup_digest: &lookup_digest,
        payee,
        amount_fen,
        order_id: &order_id,
    }
    .digest();
    let (seed, _) = intake::challenge_seed(&k, nonce_for(key), &digest);
    let begin = Command::PaymentBegin {
        lookup_digest,
        payee,
        amount_fen,
        order_id,
        challenge: seed,
    };
    let invoked = elapsed(&*cluster.lock().await);
    let outcome = submit(cluster, key, &begin, 12).await;
    record(
        key,
        begin,
        outcome.clone(),
        invoked,
        elapsed(&*cluster.lock().await),
    );
    let Some(Ok(Reply::PaymentPending { payment, .. })) = outcome else {
        return;
    };
    let Some((challenge_id, challenge)) = leader_ledger(cluster).await.and_then(|l| {
        let id = l.payment(payment)?.challenge;
        Some((id, l.challenge(id)?))
    }) else {
        return;
    };
    // The payer reads the code off the phone; no SMS, no confirmation.
    let Some(right) = read_sms(phones, challenge_id).await else {
        return;
    };
    let code = if wrong_code {
        Secret::new(if right == Secret::new("000000") {
            "111111"
        } else {
            "000000"
        })
    } else {
        right
    };
    let Ok(otp) = intake::otp_proof(&k, &challenge, &code) else {
        return;
    };
    *request_id += 1;
    let key = RequestKey {
        client_id: client,
        request_id: *request_id,
    };
    let confirm = Command::PaymentConfirm { payment, otp };
    let invoked = elapsed(&*cluster.lock().await);
    let outcome = submit(cluster, key, &confirm, 12).await;
    record(
        key,
        confirm,
        outcome,
        invoked,
        elapsed(&*cluster.lock().await),
    );
}

/// Per node, (log index, virtual ms) of appended entries a crash may lose.
type Unflushed = Arc<Mutex<BTreeMap<NodeId, Vec<(u64, u64)>>>>;

/// How much acknowledged log the `storage-acks-before-flush` bug loses at a crash: sled's
/// default background flush interval, what a store relying on it would lose.
const LOST_WRITES_MS: u64 = 500;

/// The production log store; with the storage bug planted, it also notes what it appended
/// and when, so that a crash can lose it (as a store that acknowledged before flushing would).
pub struct SimLogStore {
    inner: LogStore<SimConfig>,
    id: NodeId,
    disk_delay_ms: u64,
    started: tokio::time::Instant,
    unflushed: Option<Unflushed>,
}

impl Clone for SimLogStore {
    fn clone(&self) -> Self {
        SimLogStore {
            inner: self.inner.clone(),
            id: self.id,
            disk_delay_ms: self.disk_delay_ms,
            started: self.started,
            unflushed: self.unflushed.clone(),
        }
    }
}

type StorageResult<T> = Result<T, ledger_node::raft_types::StorageError>;

impl openraft::RaftLogReader<SimConfig> for SimLogStore {
    async fn try_get_log_entries<
        RB: std::ops::RangeBounds<u64> + Clone + std::fmt::Debug + Send,
    >(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<openraft::Entry<SimConfig>>> {
        self.inner.try_get_log_entries(range).await
    }
}

impl openraft::storage::RaftLogStorage<SimConfig> for SimLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<openraft::LogState<SimConfig>> {
        self.inner.get_log_state().await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &openraft::Vote<NodeId>) -> StorageResult<()> {
        self.inner.save_vote(vote).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<openraft::Vote<NodeId>>> {
        self.inner.read_vote().await
    }

    async fn save_committed(
        &mut self,
        committed: Option<ledger_node::raft_types::LogId>,
    ) -> StorageResult<()> {
        self.inner.save_committed(committed).await
    }

    async fn read_committed(&mut self) -> StorageResult<Option<ledger_node::raft_types::LogId>> {
        self.inner.read_committed().await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: openraft::storage::LogFlushed<SimConfig>,
    ) -> StorageResult<()>
    where
        I: IntoIterator<Item = openraft::Entry<SimConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if self.disk_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.disk_delay_ms)).await;
        }
        if let Some(unflushed) = &self.unflushed {
            let at = self.started.elapsed().as_millis() as u64;
            let mut u = unflushed.lock().unwrap_or_else(|p| p.into_inner());
            u.entry(self.id)
                .or_default()
                .extend(entries.iter().map(|e| (e.log_id.index, at)));
        }
        self.inner.append(entries, callback).await
    }

    async fn truncate(&mut self, log_id: ledger_node::raft_types::LogId) -> StorageResult<()> {
        self.inner.truncate(log_id).await
    }

    async fn purge(&mut self, log_id: ledger_node::raft_types::LogId) -> StorageResult<()> {
        self.inner.purge(log_id).await
    }
}

/// The customers' phones: every SMS delivered, by challenge id, with how often it came.
type Phones = Arc<Mutex<BTreeMap<ledger_core::types::ChallengeId, (Secret, u32)>>>;

/// Waits (up to 5 virtual seconds) for the SMS of a challenge and returns its code.
async fn read_sms(phones: &Phones, challenge: ledger_core::types::ChallengeId) -> Option<Secret> {
    for _ in 0..250 {
        if let Some((code, _)) = phones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&challenge)
        {
            return Some(code.clone());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The leader's SMS outbox loop, as `ledger-node` runs it: send, then acknowledge in the log.
async fn deliver_sms(
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    phones: Phones,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let k = keys();
    let mut request_id = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (ledger, now_ms) = {
            let c = cluster.lock().await;
            let Some(leader) = c.leader() else { continue };
            let Some(ledger) = c.nodes.get(&leader).and_then(|n| n.reader.ledger()) else {
                continue;
            };
            (ledger, c.now_ms(leader))
        };
        let mut sent = Vec::new();
        for challenge in ledger.outbox(64) {
            if let Some(facts) = ledger.sms_facts(challenge) {
                if now_ms < facts.expires_ms {
                    let code = intake::otp_code(&k, facts.nonce, &facts.tx_digest);
                    let mut p = phones.lock().unwrap_or_else(|p| p.into_inner());
                    p.entry(challenge).or_insert((code, 0)).1 += 1;
                }
            }
            sent.push(challenge);
        }
        if sent.is_empty() {
            continue;
        }
        request_id += 1;
        let key = RequestKey {
            client_id: 900_000,
            request_id,
        };
        let _ = submit(&cluster, key, &Command::AckSms { challenges: sent }, 3).await;
    }
}

/// Adds the spare node as a learner then a voter, or removes it and stops it. A change that
/// does not go through (partitions, a leader change) is abandoned; a spare that is not a
/// voter at the end is stopped, so that only members are compared.
async fn change_membership(
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    raft: Raft<SimConfig>,
    spare: NodeId,
    join: bool,
) {
    let limit = Duration::from_secs(5);
    let done = if join {
        let addr = NodeAddr {
            raft: format!("sim:{spare}"),
            client: format!("sim:{spare}"),
        };
        match tokio::time::timeout(limit, raft.add_learner(spare, addr, true)).await {
            Ok(Ok(_)) => {
                let voters = openraft::ChangeMembers::AddVoterIds(BTreeSet::from([spare]));
                matches!(
                    tokio::time::timeout(limit, raft.change_membership(voters, false)).await,
                    Ok(Ok(_))
                )
            }
            _ => false,
        }
    } else {
        let voters = openraft::ChangeMembers::RemoveVoters(BTreeSet::from([spare]));
        matches!(
            tokio::time::timeout(limit, raft.change_membership(voters, false)).await,
            Ok(Ok(_))
        )
    };
    let mut c = cluster.lock().await;
    c.trace(&format!(
        "membership: node {spare} {} {}\n",
        if join { "join" } else { "leave" },
        if done { "done" } else { "abandoned" }
    ));
    stop_spare_unless_voter(&mut c, spare).await;
}

/// A spare the leader no longer counts as a member (voter or learner) stops, so that only
/// members are compared. Without a leader nothing is decided. Its data folder stays; a
/// later join starts it from there.
async fn stop_spare_unless_voter(c: &mut Cluster, spare: NodeId) {
    let member = c
        .nodes
        .values()
        .filter_map(|n| {
            let m = n.raft.metrics().borrow().clone();
            (m.current_leader == Some(m.id))
                .then(|| m.membership_config.membership().get_node(&spare).is_some())
        })
        .next();
    if member == Some(false) && c.nodes.contains_key(&spare) {
        c.crash(spare).await;
    }
}
