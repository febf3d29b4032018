//! `ledger-sim`: run one seed, or sweep a range of seeds.

use clap::Parser;
use ledger_sim::{run, Bug, Report, SimOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Stack of a thread running seeds (a run's futures nest deeply; the main thread's 8 MiB,
/// with room to spare).
const SEED_THREAD_STACK: usize = 16 << 20;

#[derive(Parser)]
#[command(
    name = "ledger-sim",
    version,
    about = "Deterministic simulation of a payment ledger cluster with seeded faults."
)]
struct Args {
    /// Run this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Sweep seeds A..B (B excluded).
    #[arg(long)]
    seeds: Option<String>,
    /// Nodes in the cluster (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Virtual seconds of load and faults before healing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent simulated clients.
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// Run without faults.
    #[arg(long)]
    no_faults: bool,
    /// Which faults, comma-separated: network, partitions, crashes, clocks, disks (slow ones,
    /// and one full for a while), membership, sms, storage (a bit flipped in one node's
    /// stored log entry or state record).
    #[arg(
        long,
        default_value = "network,partitions,crashes,clocks,disks,membership,sms,storage"
    )]
    faults: String,
    /// Run with a deliberately broken piece (see --list-bugs).
    #[arg(long)]
    bug: Option<String>,
    /// List the deliberately broken variants, one name a line.
    #[arg(long)]
    list_bugs: bool,
    /// In a sweep, start no seed after the first failure (seeds already running on other
    /// jobs finish and are reported).
    #[arg(long)]
    stop_on_failure: bool,
    /// Where a failing seed's trace file goes.
    #[arg(long, default_value = ".")]
    trace_dir: PathBuf,
    /// Write every seed's trace file to --trace-dir, not only failing seeds' (to compare two
    /// runs line by line).
    #[arg(long)]
    keep_traces: bool,
    /// Seeds run at once in a sweep, each on its own thread (every seed still runs alone on
    /// its thread, in virtual time: the verdict and trace of a seed do not depend on it).
    /// Default: the machine's cores.
    #[arg(long)]
    jobs: Option<usize>,
    /// Where the nodes' data folders go. Default: /dev/shm when writable (a RAM filesystem),
    /// else the system's temporary folder.
    #[arg(long)]
    scratch: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // `RUST_LOG=openraft=debug` (any filter): the nodes' logs on standard error, without
    // wall-clock times (they would differ between runs of one seed).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .without_time()
            .with_writer(std::io::stderr)
            .init();
    }
    if args.list_bugs {
        for bug in Bug::all() {
            println!("{}", bug.name());
        }
        return ExitCode::SUCCESS;
    }
    let bug = match &args.bug {
        None => None,
        Some(name) => match Bug::parse(name) {
            Some(b) => Some(b),
            None => {
                eprintln!("ledger-sim: unknown bug `{name}`; see --list-bugs");
                return ExitCode::from(2);
            }
        },
    };
    let kinds = match ledger_sim::FaultKinds::parse(&args.faults) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ledger-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let scratch = args
        .scratch
        .clone()
        .unwrap_or_else(ledger_sim::options::default_scratch);
    let options = |seed| SimOptions {
        kinds,
        bug,
        seed,
        nodes: args.nodes,
        duration_s: args.duration,
        clients: args.clients,
        faults: !args.no_faults,
        scratch: Some(scratch.clone()),
    };
    let seeds = match seeds(&args) {
        Ok(seeds) => seeds,
        Err(e) => {
            eprintln!("ledger-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, seeds.len().max(1));
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut virtual_ms = 0;
    let mut ran = 0;
    let progress = ledger_testkit::progress::Progress::new(seeds.len() as u64, "seeds");
    // Workers take the next seed from `next` and send its report; this thread prints them as
    // they come (in a sweep with several jobs, not in seed order).
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (reports, received) = mpsc::channel::<Report>();
        for worker in 0..jobs {
            let reports = reports.clone();
            let (next, stop, seeds, options) = (&next, &stop, &seeds, &options);
            std::thread::Builder::new()
                .name(format!("seeds-{worker}"))
                .stack_size(SEED_THREAD_STACK)
                .spawn_scoped(scope, move || {
                    while !stop.load(Ordering::SeqCst) {
                        let Some(seed) = seeds.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            break;
                        };
                        if reports.send(run(&options(*seed))).is_err() {
                            break;
                        }
                    }
                })
                .expect("a thread to run seeds on");
        }
        drop(reports);
        for report in received {
            ran += 1;
            virtual_ms += report.virtual_ms;
            progress.step();
            show(&progress, &report, seeds.len());
            if args.keep_traces && report.ok() {
                progress.suspend(|| write_trace(&args, &report));
            }
            if !report.ok() {
                failed.push(report.seed);
                progress.note(format!("{} failed", failed.len()));
                progress.suspend(|| explain_failure(&args, &report));
                if args.stop_on_failure {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        }
    });
    failed.sort_unstable();
    progress.finish();
    let wall = started.elapsed().as_secs_f64();
    if seeds.len() > 1 {
        println!(
            "{} seeds, {} failed {:?}; {:.1} s wall, {:.0}x real time, {:.0} seeds/min ({} jobs)",
            ran,
            failed.len(),
            failed,
            wall,
            virtual_ms as f64 / 1000.0 / wall,
            ran as f64 / wall * 60.0,
            jobs
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A seed's verdict line (in a sweep), its violations, and (for a single seed) the line
/// scripts compare.
fn show(progress: &ledger_testkit::progress::Progress, report: &Report, seeds: usize) {
    let seed = report.seed;
    if seeds > 1 {
        progress.line(format!(
            "seed {seed}: {} ({} ops, {} acknowledged, {} payments settled ({} at a terminal), {} refunds, {} cancelled, {} expired, {} wrong codes refused, {} journal rows compacted, {} msgs, {} dropped; trace {})",
            if report.ok() { "ok" } else { "VIOLATION" },
            report.events,
            report.acknowledged,
            report.payments_settled,
            report.swipes_settled,
            report.refunds,
            report.cancelled,
            report.expired,
            report.wrong_codes_refused,
            report.compacted,
            report.messages_delivered,
            report.messages_dropped,
            report.trace_hash
        ));
    }
    for v in &report.violations {
        progress.line(format!("  {v}"));
    }
    if seeds == 1 {
        println!(
            "seed {seed} verdict {} trace {}",
            if report.ok() { "ok" } else { "invalid" },
            report.trace_hash
        );
    }
}

/// The seeds to run: `--seeds A..B`, `--seed N`, or seed 0.
fn seeds(args: &Args) -> Result<Vec<u64>, String> {
    match (&args.seeds, args.seed) {
        (Some(range), _) => {
            let parsed = range
                .split_once("..")
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
            let (a, b) = parsed.ok_or("--seeds takes A..B")?;
            Ok((a..b).collect())
        }
        (None, Some(seed)) => Ok(vec![seed]),
        (None, None) => Ok(vec![0]),
    }
}

/// How to replay a failing seed, what it was built with, and its trace file.
fn explain_failure(args: &Args, report: &ledger_sim::Report) {
    let seed = report.seed;
    eprintln!(
        "replay: cargo run --release -p ledger-sim -- --seed {seed} --nodes {} --duration {} --clients {} --faults {}{}",
        args.nodes,
        args.duration,
        args.clients,
        args.faults,
        args.bug.as_ref().map_or(String::new(), |b| format!(" --bug {b}"))
    );
    eprintln!("  built with {}", ledger_sim::build_fingerprint());
    write_trace(args, report);
}

/// Writes a seed's trace file to --trace-dir.
fn write_trace(args: &Args, report: &Report) {
    let file = args
        .trace_dir
        .join(format!("ledger-sim-seed-{}.trace", report.seed));
    match std::fs::write(&file, report.trace.join("")) {
        Ok(()) => eprintln!("  trace written to {}", file.display()),
        Err(e) => eprintln!("  could not write {}: {e}", file.display()),
    }
}
