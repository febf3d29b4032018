//! `ledger-jepsen`: Jepsen-style tests of real `ledger-node` processes under faults.
//!
//! - `ledger-jepsen test --workload bank --nemesis partition,kill,pause --nodes 5 --time-limit 60`
//! - `ledger-jepsen sweep --runs 20 --workloads bank,epay --nemeses 'all;partition,kill'`
//! - `ledger-jepsen check store/bank-partition+kill+pause/latest`
//! - `ledger-jepsen clean`: removes what a crashed run left behind.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown or harness failure, 3 no root or no network
//! namespaces.

use clap::{Parser, Subcommand};
use ledger_jepsen::nemesis::Fault;
use ledger_jepsen::runner::{self, Options, EXIT_NO_PRIVILEGE, EXIT_UNKNOWN};
use ledger_jepsen::workloads::Kind;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ledger-jepsen",
    version,
    about = "Jepsen-style tests of real ledger-node processes in network namespaces, under partitions, packet loss, kill -9, pauses, membership changes, clock steps, corrupted files and full disks",
    after_help = "Exit codes: 0 valid, 1 invalid, 2 unknown or harness failure, 3 not root or no network namespace support.\nNeeds root, iproute2 and nftables. Results go to STORE/<test>/<time>/ with a `latest` link."
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Runs a test and checks its history.
    #[command(
        after_help = "Exit codes: 0 valid, 1 invalid, 2 unknown or harness failure (also a usage error), 3 not root, no network namespaces, or iproute2/nftables missing."
    )]
    Test(TestArgs),
    /// Runs many tests, one after another: `--runs` of every workload under every fault set,
    /// each with its own seed; prints a table (runs, valid, invalid, unknown, p99 latency of
    /// ok operations, longest unavailability). Keeps the folders of runs that were not
    /// valid, removes the others.
    #[command(
        after_help = "Exit codes: 0 every run valid, 1 some run invalid, 2 none invalid but some unknown (or a usage error), 3 not root, no network namespaces, or iproute2/nftables missing."
    )]
    Sweep(SweepArgs),
    /// Re-runs the checkers on a stored run (its folder, or its history.jsonl).
    Check {
        /// A run folder (store/<test>/<time>/ or a `latest` link), or a history.jsonl in one.
        path: PathBuf,
    },
    /// Removes namespaces, links, data directories and libfaketime's /dev/shm objects left
    /// behind by runs that were killed with SIGKILL (and so could not clean up).
    Clean,
}

#[derive(clap::Args)]
struct TestArgs {
    /// What the clients do.
    #[arg(long, value_enum, default_value = "bank")]
    workload: Kind,
    /// Faults to inject, comma-separated: partition, loss, kill, pause, membership, clock,
    /// corrupt (bytes flipped in a stopped minority's data files), disk (a node's data
    /// directory filled); `all`, or `none`.
    #[arg(long, default_value = "partition,kill,pause", value_parser = parse_nemesis)]
    nemesis: NemesisList,
    /// Seed of the nemesis's and the clients' choices (random if not given).
    #[arg(long)]
    seed: Option<u64>,
    /// TEST ONLY: start the nodes with --unsafe-local-reads, which answer reads without
    /// confirming leadership. The checkers must then find stale reads (the harness's proof
    /// that it can fail).
    #[arg(long)]
    unsafe_local_reads: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct SweepArgs {
    /// Tests of each workload under each fault set (1 to 10,000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    runs: u64,
    /// Workloads, comma-separated: bank, vouchers, epay, idempotency, or `all`.
    #[arg(long, default_value = "all", value_parser = parse_workloads)]
    workloads: WorkloadList,
    /// Fault sets, separated by `;`, each as for `test --nemesis` (`all;partition,kill;none`).
    #[arg(long, default_value = "all", value_parser = parse_nemeses)]
    nemeses: NemesesList,
    /// Seed of the first test; the next ones count up from it (random if not given).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    run: RunArgs,
}

/// What every test of `test` and `sweep` shares.
#[derive(clap::Args)]
struct RunArgs {
    /// Nodes in the cluster (3 to 9).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(3..=9))]
    nodes: u64,
    /// Seconds of client operations under faults (healing and checking come after).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    time_limit: u64,
    /// Concurrent client threads (1 to 100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100))]
    concurrency: u64,
    /// Client operations per second, over all threads (0: unthrottled). Bounds the history,
    /// and with it the linearizability search.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds between nemesis actions (a fault starts or heals at each).
    #[arg(long, default_value_t = 10.0)]
    nemesis_interval: f64,
    /// The ledger-node binary; by default the one beside this executable.
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Where runs are stored.
    #[arg(long, default_value = "store")]
    store: PathBuf,
    /// Log entries between the nodes' snapshots (small, so snapshots happen under faults).
    #[arg(long, default_value_t = 500)]
    snapshot_every: u64,
}

#[derive(Clone, Debug)]
struct NemesisList(Vec<Fault>);

#[derive(Clone, Debug)]
struct NemesesList(Vec<Vec<Fault>>);

#[derive(Clone, Debug)]
struct WorkloadList(Vec<Kind>);

fn parse_nemeses(text: &str) -> Result<NemesesList, String> {
    let mut sets = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let set = parse_nemesis(part)?.0;
        if !sets.contains(&set) {
            sets.push(set);
        }
    }
    if sets.is_empty() {
        return Err("name at least one fault set (`all`, `partition,kill`, `none`)".to_owned());
    }
    Ok(NemesesList(sets))
}

fn parse_workloads(text: &str) -> Result<WorkloadList, String> {
    use clap::ValueEnum;
    let mut kinds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "all" => kinds.extend(Kind::value_variants().iter().copied()),
            other => kinds.push(Kind::from_str(other, true).map_err(|_| {
                format!("unknown workload `{other}`: use bank, vouchers, epay, idempotency or all")
            })?),
        }
    }
    if kinds.is_empty() {
        return Err("name at least one workload".to_owned());
    }
    let mut seen = Vec::new();
    kinds.retain(|k| {
        !seen.contains(k) && {
            seen.push(*k);
            true
        }
    });
    Ok(WorkloadList(kinds))
}

fn parse_nemesis(text: &str) -> Result<NemesisList, String> {
    use clap::ValueEnum;
    let mut faults = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "none" => {}
            "all" => faults.extend(Fault::value_variants().iter().copied()),
            other => faults.push(Fault::from_str(other, true).map_err(|_| {
                format!("unknown fault `{other}`: use partition, loss, kill, pause, membership, all or none")
            })?),
        }
    }
    if text.split(',').all(|p| p.trim().is_empty()) {
        return Err("name at least one fault, or `none`".to_owned());
    }
    faults.sort();
    faults.dedup();
    Ok(NemesisList(faults))
}

fn default_node_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("ledger-node")))
        .unwrap_or_else(|| PathBuf::from("ledger-node"))
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Commands::Clean => {
            let removed = ledger_jepsen::cleanup::sweep_orphans();
            if removed.is_empty() {
                println!("nothing left behind");
            }
            for r in removed {
                println!("removed {r}");
            }
            0
        }
        Commands::Check { path } => match runner::recheck(&path) {
            Ok(results) => {
                print!("{}", runner::summary(&results));
                runner::exit_code(results.valid)
            }
            Err(e) => {
                eprintln!("ledger-jepsen check: {e}");
                EXIT_UNKNOWN
            }
        },
        Commands::Test(args) => test(args),
        Commands::Sweep(args) => sweep(args),
    };
    std::process::exit(code);
}

/// The options of one test, from the shared arguments.
fn options(
    run: RunArgs,
    workload: Kind,
    nemesis: Vec<Fault>,
    seed: u64,
    unsafe_local_reads: bool,
) -> Result<Options, String> {
    if !(0.1..=3600.0).contains(&run.nemesis_interval) {
        return Err("--nemesis-interval must be between 0.1 and 3600 seconds".to_owned());
    }
    Ok(Options {
        workload,
        nemesis,
        nodes: run.nodes,
        time_limit: Duration::from_secs(run.time_limit),
        concurrency: run.concurrency,
        rate: run.rate.max(0.0),
        seed,
        nemesis_interval: Duration::from_secs_f64(run.nemesis_interval),
        node_bin: run.node_bin.unwrap_or_else(default_node_bin),
        store: run.store,
        snapshot_every: run.snapshot_every.max(1),
        unsafe_local_reads,
    })
}

/// Runs `body` on a runtime, after the harness's preflight checks, cleaning up after it.
fn with_harness<T>(
    body: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, (i32, String)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async {
        ledger_jepsen::cleanup::install(EXIT_UNKNOWN);
        if let Err(e) = ledger_jepsen::net::preflight() {
            return Err((EXIT_NO_PRIVILEGE, e.to_string()));
        }
        body.await.map_err(|e| (EXIT_UNKNOWN, e))
    });
    ledger_jepsen::cleanup::run_all();
    outcome
}

fn sweep(args: SweepArgs) -> i32 {
    let seed = args.seed.unwrap_or_else(rand::random);
    let template = match options(args.run, Kind::Bank, Vec::new(), seed, false) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ledger-jepsen: {e}");
            return EXIT_UNKNOWN;
        }
    };
    let store = template.store.clone();
    let plan = ledger_jepsen::sweep::Sweep {
        runs: args.runs,
        workloads: args.workloads.0,
        nemeses: args.nemeses.0,
        seed,
        template,
    };
    match with_harness(async { Ok(ledger_jepsen::sweep::run(plan).await) }) {
        Ok(rows) => {
            let table = ledger_jepsen::sweep::table(&rows);
            print!("{table}");
            let file = store.join(format!(
                "sweep-{}.txt",
                runner::timestamp(ledger_jepsen::db::now_ms())
            ));
            match std::fs::write(&file, &table) {
                Ok(()) => println!("table: {}", file.display()),
                Err(e) => eprintln!("ledger-jepsen: {}: {e}", file.display()),
            }
            runner::exit_code(ledger_jepsen::sweep::verdict(&rows))
        }
        Err((code, e)) => {
            eprintln!("ledger-jepsen: {e}");
            code
        }
    }
}

fn test(args: TestArgs) -> i32 {
    let seed = args.seed.unwrap_or_else(rand::random);
    let options = match options(
        args.run,
        args.workload,
        args.nemesis.0,
        seed,
        args.unsafe_local_reads,
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ledger-jepsen: {e}");
            return EXIT_UNKNOWN;
        }
    };
    let outcome = with_harness(runner::run(options));
    match outcome {
        Ok((dir, results)) => {
            print!("{}", runner::summary(&results));
            println!("results: {}", dir.join("index.html").display());
            runner::exit_code(results.valid)
        }
        Err((code, e)) => {
            eprintln!("ledger-jepsen: {e}");
            code
        }
    }
}
