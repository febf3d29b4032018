//! One test run, start to end: network, nodes, workload, nemesis, healing, final reads,
//! checks, and the run's folder under the store.

use crate::checker::{self, Results, Validity};
use crate::cleanup;
use crate::db::{now_ms, Db, DbOptions};
use crate::history::{self, OpType, Process, Recorder};
use crate::nemesis::{Fault, Nemesis};
use crate::net::Network;
use crate::workloads::client::{self, Run};
use crate::workloads::{Kind, Setup};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Exit codes.
pub const EXIT_VALID: i32 = 0;
pub const EXIT_INVALID: i32 = 1;
pub const EXIT_UNKNOWN: i32 = 2;
/// Not root, or no network namespace support: nothing was tested.
pub const EXIT_NO_PRIVILEGE: i32 = 3;

/// Longest the cluster may take to become ready (at start and after healing).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What was run: `test.json` in the run's folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestInfo {
    pub name: String,
    pub workload: Kind,
    pub nemesis: Vec<Fault>,
    pub nodes: u64,
    pub time_limit_s: u64,
    pub concurrency: u64,
    pub rate: f64,
    pub seed: u64,
    pub nemesis_interval_s: f64,
    /// Wall clock at the start of the history (ms since the Unix epoch); history times count
    /// from here.
    pub started_ms: u64,
    pub started_at: String,
    pub unsafe_local_reads: bool,
    pub node_bin: String,
    pub setup: Setup,
    /// Whether the cluster was ready and converged again after healing.
    pub healed: Option<String>,
}

/// The options of `ledger-jepsen test`.
#[derive(Clone, Debug)]
pub struct Options {
    pub workload: Kind,
    pub nemesis: Vec<Fault>,
    pub nodes: u64,
    pub time_limit: Duration,
    pub concurrency: u64,
    pub rate: f64,
    pub seed: u64,
    pub nemesis_interval: Duration,
    pub node_bin: PathBuf,
    pub store: PathBuf,
    pub snapshot_every: u64,
    pub unsafe_local_reads: bool,
}

/// `YYYYMMDDTHHMMSS.mmm` (UTC) for a Unix time in ms.
pub fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// A fault set's name in test names and tables: `partition+kill`, or `none`.
pub fn nemesis_name(faults: &[Fault]) -> String {
    if faults.is_empty() {
        return "none".to_owned();
    }
    faults
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join("+")
}

/// Runs the test; returns the run's folder and its results. Errors are harness failures.
/// The caller has checked `crate::net::preflight` (root, tools, namespaces) first.
pub async fn run(options: Options) -> Result<(PathBuf, Results), String> {
    if !options.node_bin.is_file() {
        return Err(format!(
            "ledger-node not found at {} (build it with `cargo build --release -p ledger-node`, or pass --node-bin)",
            options.node_bin.display()
        ));
    }
    let name = format!(
        "{}-{}",
        options.workload.name(),
        nemesis_name(&options.nemesis)
    );
    let started_ms = now_ms();
    let dir = options.store.join(&name).join(timestamp(started_ms));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!(
        "ledger-jepsen: {name}, seed {}, results in {}",
        options.seed,
        dir.display()
    );

    let ids: Vec<u64> = (1..=options.nodes).collect();
    let net = Network::create(&ids).map_err(|e| e.to_string())?;
    let data_root = std::env::temp_dir().join(format!("ledger-jepsen-{}", std::process::id()));
    eprintln!(
        "ledger-jepsen: nodes at {} on bridge {}, data in {} (all removed at exit)",
        net.hosts
            .iter()
            .map(|h| h.addr.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        net.bridge,
        data_root.display()
    );
    let mut db = Db::new(
        DbOptions {
            node_bin: options.node_bin.clone(),
            snapshot_every: options.snapshot_every,
            unsafe_local_reads: options.unsafe_local_reads,
            fake_clocks: options.nemesis.contains(&Fault::Clock),
            disk_mib: options
                .nemesis
                .contains(&Fault::Disk)
                .then_some(crate::db::NODE_DISK_MIB),
        },
        &net,
        data_root.clone(),
    )
    .map_err(|e| format!("data directory {}: {e}", data_root.display()))?;
    let sms_paths = db.outboxes();
    db.start_all()
        .map_err(|e| format!("starting ledger-node: {e}"))?;
    let outcome = drive(&options, &name, started_ms, db, net, sms_paths, &dir).await;
    let (results, test) = outcome?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results).expect("serialises"),
    )
    .map_err(|e| e.to_string())?;
    let ops = history::read_jsonl(&dir.join("history.jsonl"))?;
    crate::report::write_report(
        &dir,
        &ops,
        &serde_json::to_value(&test).expect("serialises"),
        &serde_json::to_value(&results).expect("serialises"),
    )
    .map_err(|e| format!("report: {e}"))?;
    link_latest(&options.store.join(&name), &dir);
    link_latest(&options.store, &dir);
    Ok((dir, results))
}

fn link_latest(parent: &Path, dir: &Path) {
    let link = parent.join("latest");
    let _ = std::fs::remove_file(&link);
    let target = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let _ = std::os::unix::fs::symlink(target, link);
}

async fn drive(
    options: &Options,
    name: &str,
    started_ms: u64,
    db: Db,
    net: Network,
    sms_paths: Vec<PathBuf>,
    dir: &Path,
) -> Result<(Results, TestInfo), String> {
    let leader = db
        .wait_ready(READY_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "ledger-jepsen: {} nodes up, leader n{leader}; setting up the {:?} workload",
        options.nodes, options.workload
    );
    let workload = options.workload.workload();
    let setup = client::setup(workload, &db, options.concurrency, options.time_limit)
        .await
        .map_err(|e| e.to_string())?;
    let recorder = Recorder::new();
    let started_ms = started_ms.max(now_ms() - recorder.now_ns() / 1_000_000);
    let run = Arc::new(Run {
        workload,
        setup: setup.clone(),
        recorder: recorder.clone(),
        stop: AtomicBool::new(false),
        concurrency: options.concurrency,
        current_pool: Default::default(),
        rate: options.rate,
        sms_paths,
    });
    let db = Arc::new(tokio::sync::Mutex::new(db));
    let net = Arc::new(tokio::sync::Mutex::new(net));
    let finished = run_under_faults(options, &run, &db, &net).await?;
    eprintln!("ledger-jepsen: healed; waiting for the cluster, then final reads");
    let healed = heal(&db, &recorder).await;
    if let Some(problem) = &healed {
        eprintln!("ledger-jepsen: after healing: {problem}");
    }
    client::finish(&run, &*db.lock().await, finished).await;
    let ops = recorder.ops();
    let test = test_info(options, name, started_ms, setup, healed);
    write_run(dir, &ops, &test)?;
    {
        let mut db = db.lock().await;
        db.kill_all();
        db.copy_logs(dir).map_err(|e| format!("node logs: {e}"))?;
    }
    eprintln!("ledger-jepsen: {} history entries; checking", ops.len());
    let results = checker::check(&test, &ops);
    // The network and the nodes go now, before the report is written.
    drop(db);
    drop(net);
    cleanup::run_all();
    Ok((results, test))
}

/// The client threads and the nemesis, for the time limit; then both stopped. Returns each
/// thread's client and state (its unknown writes).
async fn run_under_faults(
    options: &Options,
    run: &Arc<Run>,
    db: &Arc<tokio::sync::Mutex<Db>>,
    net: &Arc<tokio::sync::Mutex<Network>>,
) -> Result<Vec<(ledger_client::Client, client::Thread)>, String> {
    let threads: Vec<_> = {
        let db = db.lock().await;
        let ids = db.ids();
        (0..options.concurrency)
            .map(|i| {
                let client = match run.workload.thread_principal(&run.setup) {
                    Some(principal) => db.client_as(&principal, Duration::from_millis(1000), 30),
                    None => db.client(Duration::from_millis(1000), 30),
                };
                let home = db.node_client(ids[i as usize % ids.len()]);
                tokio::spawn(client::thread_loop(
                    run.clone(),
                    client,
                    home,
                    i,
                    options.seed,
                ))
            })
            .collect()
    };
    let stop_nemesis = Arc::new(AtomicBool::new(false));
    let nemesis = Nemesis::new(
        options.nemesis.clone(),
        options.nemesis_interval,
        rand::rngs::StdRng::seed_from_u64(options.seed),
        db.clone(),
        net.clone(),
        run.recorder.clone(),
    );
    let nemesis = tokio::spawn(nemesis.run(stop_nemesis.clone()));
    eprintln!(
        "ledger-jepsen: running for {:?} with {} clients",
        options.time_limit, options.concurrency
    );
    let started = std::time::Instant::now();
    let deadline = started + options.time_limit;
    let progress = ledger_testkit::progress::Progress::new(options.time_limit.as_secs(), "s");
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        record_crashes(&mut *db.lock().await, &run.recorder);
        progress.set(started.elapsed().as_secs());
    }
    progress.finish();
    run.stop.store(true, Ordering::Relaxed);
    stop_nemesis.store(true, Ordering::Relaxed);
    nemesis.await.map_err(|e| format!("nemesis task: {e}"))?;
    let mut finished = Vec::new();
    for t in threads {
        finished.push(t.await.map_err(|e| format!("client task: {e}"))?);
    }
    Ok(finished)
}

/// Records each node that exited on its own since last asked.
fn record_crashes(db: &mut Db, recorder: &Recorder) {
    for (id, status) in db.crashed() {
        recorder.record(
            Process::NEMESIS,
            OpType::Info,
            "node-exited",
            serde_json::json!({"node": id, "status": status}),
            Some("a node exited on its own".into()),
        );
    }
}

/// After the faults: every node running again, then ready and converged. Returns what kept
/// the cluster from coming back, if anything did.
async fn heal(db: &tokio::sync::Mutex<Db>, recorder: &Recorder) -> Option<String> {
    let mut db = db.lock().await;
    // Any node that exited on its own is started again: the final reads want them all.
    record_crashes(&mut db, recorder);
    for id in db.ids() {
        if !db.is_running(id) {
            let _ = db.start(id, false);
        }
    }
    match db.wait_ready(READY_TIMEOUT).await {
        Ok(_) => db
            .wait_converged(READY_TIMEOUT)
            .await
            .err()
            .map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
}

fn test_info(
    options: &Options,
    name: &str,
    started_ms: u64,
    setup: Setup,
    healed: Option<String>,
) -> TestInfo {
    TestInfo {
        name: name.to_owned(),
        workload: options.workload,
        nemesis: options.nemesis.clone(),
        nodes: options.nodes,
        time_limit_s: options.time_limit.as_secs(),
        concurrency: options.concurrency,
        rate: options.rate,
        seed: options.seed,
        nemesis_interval_s: options.nemesis_interval.as_secs_f64(),
        started_ms,
        started_at: timestamp(started_ms),
        unsafe_local_reads: options.unsafe_local_reads,
        node_bin: options.node_bin.display().to_string(),
        setup,
        healed,
    }
}

/// The history (JSON lines and EDN) and `test.json` in the run's folder.
fn write_run(dir: &Path, ops: &[crate::history::Entry], test: &TestInfo) -> Result<(), String> {
    let write = |file: &str, r: std::io::Result<()>| r.map_err(|e| format!("{file}: {e}"));
    write(
        "history.jsonl",
        history::write_jsonl(ops, &dir.join("history.jsonl")),
    )?;
    write(
        "history.edn",
        history::write_edn(ops, &dir.join("history.edn")),
    )?;
    write(
        "test.json",
        std::fs::write(
            dir.join("test.json"),
            serde_json::to_string_pretty(test).expect("serialises"),
        ),
    )
}

/// `ledger-jepsen check PATH`: the checkers again, on a stored run.
pub fn recheck(path: &Path) -> Result<Results, String> {
    if !path.exists() {
        return Err(format!(
            "{}: no such run folder or history file",
            path.display()
        ));
    }
    let dir = if path.is_dir() {
        path.to_owned()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_owned()
    };
    let test: TestInfo = serde_json::from_str(
        &std::fs::read_to_string(dir.join("test.json"))
            .map_err(|e| format!("{}: {e}", dir.join("test.json").display()))?,
    )
    .map_err(|e| format!("test.json: {e}"))?;
    let history = if path.is_file() {
        path.to_owned()
    } else {
        dir.join("history.jsonl")
    };
    let ops = history::read_jsonl(&history)?;
    let results = checker::check(&test, &ops);
    Ok(results)
}

/// The exit code for a verdict.
pub fn exit_code(valid: Validity) -> i32 {
    match valid {
        Validity::Valid => EXIT_VALID,
        Validity::Invalid => EXIT_INVALID,
        Validity::Unknown => EXIT_UNKNOWN,
    }
}

/// A one-screen summary of the results.
pub fn summary(results: &Results) -> String {
    let mut out = String::new();
    for (name, finding) in &results.checkers {
        out.push_str(&format!("  {name:<13} {:?}\n", finding.valid).to_lowercase());
        for e in finding.errors.iter().take(3) {
            let text = e.to_string();
            let short: String = text.chars().take(300).collect();
            out.push_str(&format!("      {short}\n"));
        }
    }
    out.push_str(&format!("verdict: {:?}\n", results.valid).to_lowercase());
    out
}
