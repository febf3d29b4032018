//! The deterministic simulator: whole clusters of the production node code in one process,
//! on one thread, in virtual time, with seeded faults. Each node is what `ledger-node` runs
//! (openraft, the sled log store and state machine, the ledger core, the client service with
//! its intake and proposer, the SMS outbox loop); only the network, the clocks, the disks and
//! the SMS gateway are simulated. The clients are the real client library. The same seed
//! gives the same run, and the same trace hash, in any process built from the same lock file
//! and toolchain.
//!
//! A run, phase by phase (`simulate`): start the cluster; initialise it and set up accounts,
//! a pool, enrolments and a merchant; run clients, the nemesis and the monitor for the
//! run's duration; heal everything; require progress and convergence; check the history and
//! every replica; report.

// openraft's network traits return its (large) `RPCError` by value.
#![allow(clippy::result_large_err)]

#[cfg(not(tokio_unstable))]
compile_error!(
    "ledger-sim needs `--cfg tokio_unstable` (set in .cargo/config.toml): a RUSTFLAGS environment variable replaces it; add `--cfg tokio_unstable` to it"
);

pub mod checks;
pub mod clients;
pub mod cluster;
pub mod faults;
pub mod membership;
pub mod merchants;
pub mod network;
pub mod options;
pub mod phones;
pub mod rng;
pub mod storage;
pub mod trace;
pub mod workload;

pub use options::{Bug, FaultKind, FaultKinds, SimOptions};

use checks::Observed;
use clients::{ClientLinkFaults, ClientNet};
use cluster::Cluster;
use faults::Nemesis;
use ledger_client::{Client, ClientError};
use ledger_core::command::Command;
use ledger_core::types::AccountId;
use ledger_core::Reply;
use ledger_node::raft_types::NodeId;
use ledger_wire::api::{NodeInfo, Operation};
use ledger_wire::principal::Principal;
use merchants::{Endpoints, Inboxes};
use network::{NetFaults, Router};
use phones::{Gateway, Phones};
use rng::SimRng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use trace::{lock, Trace};
use workload::{Event, Fixture, History, Runner};

/// The simulator's Raft type configuration: production's own (the same entry, reply and
/// node types, on tokio's runtime, here paused and single-threaded).
pub type SimConfig = ledger_node::raft_types::TypeConfig;

/// Wall-clock time the virtual clock starts at: two seconds before 2015-01-01 00:00 CST,
/// inside the campaign, so that every run crosses a CST day and month (daily limits reset,
/// merchants roll into a new month, December can be closed).
pub const EPOCH_MS: u64 = 1_420_041_598_000;
/// After healing: a write must commit within this virtual time...
const LIVENESS_LIMIT: Duration = Duration::from_secs(30);
/// ...every replica reach the same applied index within this...
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(60);
/// A corrupted node is repaired (removed, wiped, added again) within this of healing.
const REPAIR_LIMIT: Duration = Duration::from_secs(30);
/// ...and the SMS outbox drain within this (all counted from healing).
const OUTBOX_DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// Client ids: the setup's, the nemesis' administration client's, the liveness probe's.
const SETUP_CLIENT: u64 = 1_000;
const ADMIN_CLIENT: u64 = 1_001;
const PROBE_CLIENT: u64 = 999_999;
const SETUP_CHANNEL_CLIENT: u64 = 1_002;
const SETUP_MERCHANT_CLIENT: u64 = 1_003;
/// Workload client n's channel client is `CHANNEL_CLIENTS + n`, its merchant client
/// `MERCHANT_CLIENTS + n`.
const CHANNEL_CLIENTS: u64 = 10_000;
const MERCHANT_CLIENTS: u64 = 20_000;
/// Links between clients and nodes without faults (the setup's, and after healing).
const HEALTHY_CLIENT_LINKS: ClientLinkFaults = ClientLinkFaults {
    loss: 0.0,
    max_delay_ms: NetFaults::NONE.max_delay_ms,
};
/// Chance that the simulated SMS gateway refuses a message, with SMS faults on.
const SMS_REFUSAL: f64 = 0.2;
/// Chance that the simulated merchant answers a webhook delivery with 503, with SMS (outbound
/// delivery) faults on.
const WEBHOOK_REFUSAL: f64 = 0.2;

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
    /// Of the payments: settled at a terminal, cancelled, expired (in the final state), and
    /// refunds acknowledged.
    pub swipes_settled: usize,
    pub cancelled: usize,
    pub expired: usize,
    pub refunds: usize,
    /// Journal rows compacted away (`Command::Compact`).
    pub compacted: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    /// The run's trace, line by line (faults, starts, crashes, leaders, every operation).
    pub trace: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The toolchain and lock file a seed's replay depends on.
pub fn build_fingerprint() -> String {
    format!(
        "{}; Cargo.lock fnv {}",
        env!("LEDGER_SIM_RUSTC"),
        env!("LEDGER_SIM_LOCK_FNV")
    )
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
    let scratch = options
        .scratch
        .clone()
        .unwrap_or_else(options::default_scratch);
    let dir = tempfile::Builder::new()
        .prefix("ledger-sim-")
        .tempdir_in(&scratch)
        .unwrap_or_else(|e| panic!("a run's folder under {}: {e}", scratch.display()));
    let report = runtime.block_on(simulate(options.clone(), dir.path().to_owned()));
    drop(runtime);
    report
}

/// Everything a run shares between its phases.
struct Run {
    options: SimOptions,
    /// The network's faults for the load phase (the setup runs on a healthy network).
    net_faults: NetFaults,
    client_faults: ClientLinkFaults,
    /// The nodes' client ports (a handle shared with the cluster).
    clients: ClientNet,
    /// When the run began: virtual time zero, `EPOCH_MS` on every clock.
    started: tokio::time::Instant,
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    members: Vec<NodeId>,
    phones: Phones,
    /// What the merchant's webhook endpoint accepted.
    inboxes: Inboxes,
    trace: Trace,
    violations: Vec<String>,
}

async fn simulate(options: SimOptions, dir: PathBuf) -> Report {
    let mut run = start_cluster(options, dir).await;
    let fixture = match set_up(&run).await {
        Ok(fixture) => Some(fixture),
        Err(e) => {
            run.violations.push(format!("setup: {e}"));
            None
        }
    };
    let (history, observed, faulted) = match &fixture {
        Some(fixture) => load_and_faults(&run, fixture).await,
        None => (Vec::new(), Observed::default(), Faulted::default()),
    };
    run.violations.extend(observed.fatal.iter().cloned());
    if fixture.is_some() && history.is_empty() {
        run.violations
            .push("no client operation completed during the run: the harness did nothing".into());
    }
    heal(&mut run, faulted).await;
    require_progress(&mut run, fixture.as_ref()).await;
    finish(run, &history, &observed).await
}

/// Phase 1: the cluster's nodes started from empty data folders.
async fn start_cluster(options: SimOptions, dir: PathBuf) -> Run {
    let seed = options.seed;
    let started = tokio::time::Instant::now();
    let trace = Trace::new(started);
    let mut fault_rng = SimRng::stream(seed, "faults");
    let network_faults = options.faults && options.kinds.contains(FaultKind::Network);
    let faults = if network_faults {
        NetFaults {
            loss: [0.0, 0.01, 0.05, 0.15][fault_rng.below(4) as usize],
            duplicate: [0.0, 0.02, 0.1][fault_rng.below(3) as usize],
            max_delay_ms: [5, 20, 100][fault_rng.below(3) as usize],
        }
    } else {
        NetFaults::NONE
    };
    let client_faults = ClientLinkFaults {
        loss: if network_faults {
            faults.loss / 3.0
        } else {
            0.0
        },
        max_delay_ms: faults.max_delay_ms,
    };
    let sms_faults = options.faults && options.kinds.contains(FaultKind::Sms);
    let phones = Phones::default();
    let gateway = Gateway::new(
        phones.clone(),
        SimRng::stream(seed, "sms"),
        if sms_faults { SMS_REFUSAL } else { 0.0 },
    );
    let inboxes = Inboxes::default();
    let endpoints = Endpoints::new(
        inboxes.clone(),
        cluster::keys(),
        SimRng::stream(seed, "webhooks"),
        if sms_faults { WEBHOOK_REFUSAL } else { 0.0 },
    );
    let disks = options.faults && options.kinds.contains(FaultKind::Disks);
    let disk_delay_ms = (1..=options.nodes + 1)
        .map(|id| {
            let slow = disks && fault_rng.chance(0.3);
            (id, if slow { 1 + fault_rng.below(30) } else { 0 })
        })
        .collect();
    let mut cluster = Cluster {
        dir,
        router: Router::new(SimRng::stream(seed, "network"), NetFaults::NONE),
        clients: ClientNet::new(
            SimRng::stream(seed, "client-links"),
            HEALTHY_CLIENT_LINKS,
            options.bug == Some(Bug::NetworkDuplicatesAnswer),
        ),
        nodes: BTreeMap::new(),
        clocks: Default::default(),
        gateway: Arc::new(gateway),
        endpoints: Arc::new(endpoints),
        rng: SimRng::stream(seed, "cluster"),
        trace: trace.clone(),
        unflushed: Arc::default(),
        lost_suffix: BTreeMap::new(),
        state_behind: BTreeMap::new(),
        state_loss_rng: SimRng::stream(seed, "state loss"),
        disk_delay_ms,
        started,
        bug: options.bug,
        corrupted: BTreeSet::new(),
        disks: Arc::default(),
        ran_out: BTreeSet::new(),
    };
    cluster.trace(&format!(
        "seed {seed} faults {faults:?} {client_faults:?}\n"
    ));
    let members: Vec<NodeId> = (1..=options.nodes).collect();
    for id in &members {
        assert!(cluster.start(*id).await, "a fresh node starts");
    }
    Run {
        options,
        net_faults: faults,
        client_faults,
        clients: cluster.clients.clone(),
        started,
        cluster: Arc::new(tokio::sync::Mutex::new(cluster)),
        members,
        phones,
        inboxes,
        trace,
        violations: Vec::new(),
    }
}

fn client(run: &Run, id: u64, principal: Principal) -> Client<clients::SimTransport> {
    workload::client(
        &run.clients,
        run.options.seed,
        (id, principal),
        &run.members,
        run.started,
    )
}

/// The bank's back office, as the simulated clients' certificates would name it.
fn operator() -> Principal {
    Principal::Operator { name: "sim".into() }
}

fn channel() -> Principal {
    Principal::Channel { name: "sim".into() }
}

/// Phase 2: initialisation and setup, on a healthy network and before the nemesis starts
/// (slow disks and SMS gateway refusals, when drawn, already apply).
async fn set_up(run: &Run) -> Result<Fixture, String> {
    let setup = client(run, SETUP_CLIENT, operator());
    let channel = client(run, SETUP_CHANNEL_CLIENT, channel());
    let members = run
        .members
        .iter()
        .map(|id| NodeInfo {
            id: *id,
            raft_addr: clients::endpoint(*id),
            client_addr: clients::endpoint(*id),
        })
        .collect();
    let now_ms = EPOCH_MS + run.trace.elapsed_ms();
    let fixture = workload::set_up(&setup, &channel, members, &run.phones, now_ms).await?;
    let merchant = client(
        run,
        SETUP_MERCHANT_CLIENT,
        Principal::Merchant {
            merchant: fixture.merchant,
        },
    );
    workload::register_webhook(&merchant, fixture.merchant).await?;
    Ok(fixture)
}

/// Phase 3: clients, the nemesis and the monitor, for the run's duration.
/// What the nemesis leaves for healing.
#[derive(Default)]
struct Faulted {
    crashed: BTreeSet<NodeId>,
    to_repair: BTreeSet<NodeId>,
}

async fn load_and_faults(run: &Run, fixture: &Fixture) -> (Vec<Event>, Observed, Faulted) {
    let history: History = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let c = run.cluster.lock().await;
        lock(&c.router.0).faults = run.net_faults.clone();
    }
    run.clients.set_faults(run.client_faults);
    let started = run.started;
    let mut tasks = Vec::new();
    for n in 0..run.options.clients {
        let id = n + 1;
        let runner = Runner {
            id,
            client: client(run, id, operator()),
            channel: client(run, CHANNEL_CLIENTS + id, channel()),
            merchant: client(
                run,
                MERCHANT_CLIENTS + id,
                Principal::Merchant {
                    merchant: fixture.merchant,
                },
            ),
            rng: SimRng::stream(run.options.seed, &format!("workload{id}")),
            history: history.clone(),
            phones: run.phones.clone(),
            fixture: fixture.clone(),
            bug: run.options.bug,
            started,
        };
        tasks.push(tokio::spawn(runner.run(stop.clone())));
    }
    let monitor = tokio::spawn(checks::monitor(run.cluster.clone(), stop.clone()));
    let mut nemesis = Nemesis::new(
        SimRng::stream(run.options.seed, "nemesis"),
        run.options.kinds,
        run.members.clone(),
        Arc::new(client(run, ADMIN_CLIENT, operator())),
    );
    let end = Duration::from_secs(run.options.duration_s);
    nemesis
        .run(&run.cluster, end, run.options.faults, &stop)
        .await;
    for task in tasks {
        let _ = task.await;
    }
    let observed = monitor.await.unwrap_or_default();
    let history = lock(&history).clone();
    let faulted = Faulted {
        crashed: nemesis.crashed,
        to_repair: nemesis.to_repair,
    };
    (history, observed, faulted)
}

/// Phase 4: every link healed, faults off, crashed nodes restarted, every node's storage
/// scrubbed and a corrupted one repaired, a spare that is no member stopped.
async fn heal(run: &mut Run, faulted: Faulted) {
    let mut to_repair = faulted.to_repair;
    {
        let mut c = run.cluster.lock().await;
        lock(&c.router.0).cut.clear();
        lock(&c.router.0).faults = NetFaults::NONE;
        c.clients.set_faults(HEALTHY_CLIENT_LINKS);
        let mut crashed = faulted.crashed;
        let full: Vec<NodeId> = lock(&c.disks).keys().copied().collect();
        for id in full {
            if c.free_disk(id).await {
                crashed.insert(id);
            }
        }
        for id in crashed {
            if !c.nodes.contains_key(&id) && !c.start(id).await {
                if c.corrupted.contains(&id) {
                    to_repair.insert(id);
                } else {
                    run.violations
                        .push(format!("node {id} could not restart from its data"));
                }
            }
        }
        // Every value each replica stores, read and checked (what a background scrub does):
        // corruption left by the `storage` fault is repaired; any other is a bug.
        let running: Vec<NodeId> = c.nodes.keys().copied().collect();
        for id in running {
            if let Err(e) = c.scrub(id) {
                c.trace(&format!("scrub {id}: {e}\n"));
                if c.corrupted.contains(&id) {
                    to_repair.insert(id);
                } else {
                    run.violations.push(format!(
                        "node {id}'s storage is corrupt though no fault corrupted it: {e}"
                    ));
                }
            }
        }
        to_repair.extend(c.corrupted.iter().filter(|id| !c.nodes.contains_key(id)));
        membership::stop_spare_unless_voter(&mut c, run.options.nodes + 1).await;
        c.trace("heal all\n");
    }
    let admin = Arc::new(client(run, ADMIN_CLIENT, operator()));
    let deadline = run.started.elapsed() + REPAIR_LIMIT;
    for id in to_repair {
        loop {
            if membership::repair(run.cluster.clone(), admin.clone(), id)
                .await
                .1
            {
                break;
            }
            if run.started.elapsed() > deadline {
                run.violations.push(format!(
                    "node {id}, corrupted, was not repaired within {REPAIR_LIMIT:?} of healing"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Phase 5: a write commits within `LIVENESS_LIMIT`, the SMS and webhook outboxes drain, and
/// every replica reaches the same applied index.
async fn require_progress(run: &mut Run, fixture: Option<&Fixture>) {
    let healed_at = Duration::from_millis(run.trace.elapsed_ms());
    let probe = client(run, PROBE_CLIENT, operator());
    let deposit = Operation::Command(Command::Deposit {
        account: fixture.map_or(AccountId(16), |f| f.accounts[0]),
        amount_fen: 1,
    });
    // One key through every attempt: the probe is one deposit, however often it is sent.
    let key = probe.new_key();
    let committed = tokio::time::timeout(LIVENESS_LIMIT, async {
        loop {
            match probe.submit_with_key(key, deposit.clone()).await {
                Err(ClientError::Unavailable { .. }) => continue,
                other => return other,
            }
        }
    })
    .await;
    if !matches!(committed, Ok(Ok(_) | Err(ClientError::Refused(_)))) {
        let nodes: Vec<String> = {
            let c = run.cluster.lock().await;
            c.nodes
                .iter()
                .map(|(id, n)| {
                    let m = n.raft().metrics().borrow().clone();
                    format!(
                        "{id}: {:?} {:?} last log {:?} applied {:?} {:?} running {:?}",
                        m.state,
                        m.vote,
                        m.last_log_index,
                        m.last_applied.map(|l| l.index),
                        m.membership_config.membership(),
                        m.running_state
                    )
                })
                .collect()
        };
        run.violations.push(format!(
            "liveness: no write committed within {LIVENESS_LIMIT:?} of healing: {committed:?}; nodes: {}",
            nodes.join("; ")
        ));
    }
    // The outboxes drain first: their acknowledgements are entries the replicas must then
    // all apply.
    let drained = wait_until(run, healed_at + OUTBOX_DRAIN_LIMIT, |c| {
        c.leader()
            .and_then(|l| c.nodes.get(&l))
            .and_then(|n| n.reader().ledger())
            .is_some_and(|l| l.outbox(1).is_empty() && l.event_outbox(1).is_empty())
    })
    .await;
    if !drained {
        let c = run.cluster.lock().await;
        let left = c
            .leader()
            .and_then(|l| c.nodes.get(&l))
            .and_then(|n| n.reader().ledger())
            .map(|l| {
                let events: Vec<_> = l
                    .event_outbox(8)
                    .into_iter()
                    .map(|(m, hook, events)| {
                        (m, hook, events.iter().map(|e| e.id).collect::<Vec<_>>())
                    })
                    .collect();
                format!("sms {:?}, events {events:?}", l.outbox(8))
            });
        drop(c);
        run.violations.push(format!(
            "the SMS or webhook outbox was not drained within {OUTBOX_DRAIN_LIMIT:?} of healing: {left:?}"
        ));
    }
    let converged = converge(run, healed_at + CONVERGENCE_LIMIT).await;
    if !converged {
        run.violations.push(format!(
            "replicas did not reach the same applied index within {CONVERGENCE_LIMIT:?} of healing"
        ));
    }
}

/// Waits until every replica has applied the same index. A spare the leader no longer
/// counts as a member stops first (the entry that removed it never reaches it), checked
/// on every round: its removal may commit while we wait.
async fn converge(run: &Run, deadline: Duration) -> bool {
    loop {
        {
            let mut c = run.cluster.lock().await;
            membership::stop_spare_unless_voter(&mut c, run.options.nodes + 1).await;
            let indexes: BTreeSet<Option<u64>> = c
                .nodes
                .values()
                .map(|n| n.reader().applied_index())
                .collect();
            if indexes.len() == 1 {
                return true;
            }
        }
        if Duration::from_millis(run.trace.elapsed_ms()) > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `done` holds for the cluster, or virtual time reaches `deadline`.
async fn wait_until(run: &Run, deadline: Duration, done: impl Fn(&Cluster) -> bool) -> bool {
    loop {
        if done(&*run.cluster.lock().await) {
            return true;
        }
        if Duration::from_millis(run.trace.elapsed_ms()) > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Phase 6: the checks, the trace's last lines, the report; every node stopped.
async fn finish(mut run: Run, history: &[Event], observed: &Observed) -> Report {
    let c = run.cluster.lock().await;
    checks::after_healing(
        &c,
        history,
        observed,
        &run.phones,
        &run.inboxes,
        &mut run.violations,
    );
    let virtual_ms = run.trace.elapsed_ms();
    for e in history {
        c.trace(&format!(
            "{} {:?} {:?} {:?} {:?} {} {}\n",
            e.client, e.keys_tried, e.operation, e.expect, e.outcome, e.invoked_ms, e.completed_ms
        ));
    }
    let (delivered, dropped) = {
        let r = lock(&c.router.0);
        (r.delivered, r.dropped)
    };
    c.trace(&format!(
        "messages {delivered} {dropped} violations {:?}\n",
        run.violations
    ));
    let (expired, compacted) = c
        .nodes
        .values()
        .next()
        .and_then(|n| n.reader().ledger())
        .map_or((0, 0), |ledger| {
            let expired = (1..ledger.meta().next_payment)
                .filter_map(|id| ledger.stored_payment(ledger_core::types::PaymentId(id)))
                .filter(|p| matches!(p.state, ledger_core::state::PaymentState::Expired { .. }))
                .count();
            (expired, ledger.meta().first_posting - 1)
        });
    let nodes: Vec<NodeId> = c.nodes.keys().copied().collect();
    drop(c);
    for id in nodes {
        run.cluster.lock().await.crash(id).await;
    }
    let count = |f: &dyn Fn(&Event) -> bool| history.iter().filter(|e| f(e)).count();
    Report {
        seed: run.options.seed,
        trace_hash: run.trace.hash(),
        virtual_ms,
        events: history.len(),
        acknowledged: count(&|e| e.outcome.is_some()),
        payments_settled: count(&|e| {
            matches!(e.outcome, Some(Ok(Reply::PaymentSettled { .. })))
                && e.expect == workload::Expect::Normal
        }),
        wrong_codes_refused: count(&|e| {
            matches!(
                e.outcome,
                Some(Err(ledger_core::LedgerError::WrongOtp { .. }))
            )
        }),
        swipes_settled: count(&|e| {
            matches!(e.operation, Operation::CardPayment { .. })
                && matches!(e.outcome, Some(Ok(Reply::PaymentSettled { .. })))
        }),
        cancelled: count(&|e| matches!(e.outcome, Some(Ok(Reply::PaymentCancelled { .. })))),
        expired,
        compacted,
        refunds: count(&|e| matches!(e.outcome, Some(Ok(Reply::PaymentRefunded { .. })))),
        messages_delivered: delivered,
        messages_dropped: dropped,
        trace: run.trace.lines(),
        violations: run.violations,
    }
}
