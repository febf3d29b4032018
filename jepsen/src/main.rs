//! `ledger-jepsen`: Jepsen-style tests of real `ledger-node` processes under faults.
//!
//! - `ledger-jepsen test --workload bank --nemesis partition,kill,pause --nodes 5 --time-limit 60`
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
    about = "Jepsen-style tests of real ledger-node processes in network namespaces, under partitions, packet loss, kill -9, pauses and membership changes",
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
    /// Re-runs the checkers on a stored run (its folder, or its history.jsonl).
    Check {
        /// A run folder (store/<test>/<time>/ or a `latest` link), or a history.jsonl in one.
        path: PathBuf,
    },
    /// Removes namespaces, links and data directories left behind by runs that were killed
    /// with SIGKILL (and so could not clean up).
    Clean,
}

#[derive(clap::Args)]
struct TestArgs {
    /// What the clients do.
    #[arg(long, value_enum, default_value = "bank")]
    workload: Kind,
    /// Faults to inject, comma-separated: partition, loss, kill, pause, membership; `all`, or
    /// `none`.
    #[arg(long, default_value = "partition,kill,pause", value_parser = parse_nemesis)]
    nemesis: NemesisList,
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
    /// Seed of the nemesis's and the clients' choices (random if not given).
    #[arg(long)]
    seed: Option<u64>,
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
    /// TEST ONLY: start the nodes with --unsafe-local-reads, which answer reads without
    /// confirming leadership. The checkers must then find stale reads (the harness's proof
    /// that it can fail).
    #[arg(long)]
    unsafe_local_reads: bool,
}

#[derive(Clone, Debug)]
struct NemesisList(Vec<Fault>);

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
    };
    std::process::exit(code);
}

fn test(args: TestArgs) -> i32 {
    if !(0.1..=3600.0).contains(&args.nemesis_interval) {
        eprintln!("ledger-jepsen: --nemesis-interval must be between 0.1 and 3600 seconds");
        return EXIT_UNKNOWN;
    }
    let options = Options {
        workload: args.workload,
        nemesis: args.nemesis.0,
        nodes: args.nodes,
        time_limit: Duration::from_secs(args.time_limit),
        concurrency: args.concurrency,
        rate: args.rate.max(0.0),
        seed: args.seed.unwrap_or_else(rand::random),
        nemesis_interval: Duration::from_secs_f64(args.nemesis_interval),
        node_bin: args.node_bin.unwrap_or_else(default_node_bin),
        store: args.store,
        snapshot_every: args.snapshot_every.max(1),
        unsafe_local_reads: args.unsafe_local_reads,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async {
        ledger_jepsen::cleanup::install(EXIT_UNKNOWN);
        if let Err(e) = ledger_jepsen::net::preflight() {
            return Err((EXIT_NO_PRIVILEGE, e.to_string()));
        }
        runner::run(options).await.map_err(|e| (EXIT_UNKNOWN, e))
    });
    ledger_jepsen::cleanup::run_all();
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
