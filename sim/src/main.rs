//! `ledger-sim`: run one seed, or sweep a range of seeds.

use clap::Parser;
use ledger_sim::{run, Bug, SimOptions};
use std::process::ExitCode;
use std::time::Instant;

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
    /// Which faults, comma-separated: network, partitions, crashes, clocks, disks, membership,
    /// sms, storage (a bit flipped in one node's stored log entry or state record).
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
    /// In a sweep, stop at the first failing seed.
    #[arg(long)]
    stop_on_failure: bool,
    /// Where a failing seed's trace file goes.
    #[arg(long, default_value = ".")]
    trace_dir: std::path::PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    let options = |seed| SimOptions {
        kinds,
        bug,
        seed,
        nodes: args.nodes,
        duration_s: args.duration,
        clients: args.clients,
        faults: !args.no_faults,
    };
    let seeds = match seeds(&args) {
        Ok(seeds) => seeds,
        Err(e) => {
            eprintln!("ledger-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut virtual_ms = 0;
    let mut ran = 0;
    let progress = ledger_testkit::progress::Progress::new(seeds.len() as u64, "seeds");
    for seed in &seeds {
        ran += 1;
        let report = run(&options(*seed));
        virtual_ms += report.virtual_ms;
        progress.step();
        if seeds.len() > 1 {
            progress.line(format!(
                "seed {seed}: {} ({} ops, {} acknowledged, {} payments settled ({} at a terminal), {} refunds, {} cancelled, {} expired, {} wrong codes refused, {} journal rows compacted, {} msgs, {} dropped)",
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
                report.messages_dropped
            ));
        }
        for v in &report.violations {
            progress.line(format!("  {v}"));
        }
        if !report.ok() {
            failed.push(*seed);
            progress.note(format!("{} failed", failed.len()));
            progress.suspend(|| explain_failure(&args, &report));
        }
        if seeds.len() == 1 {
            println!(
                "seed {seed} verdict {} trace {}",
                if report.ok() { "ok" } else { "invalid" },
                report.trace_hash
            );
        }
        if args.stop_on_failure && !failed.is_empty() {
            break;
        }
    }
    progress.finish();
    let wall = started.elapsed().as_secs_f64();
    if seeds.len() > 1 {
        println!(
            "{} seeds, {} failed {:?}; {:.1} s wall, {:.0}x real time, {:.0} seeds/min",
            ran,
            failed.len(),
            failed,
            wall,
            virtual_ms as f64 / 1000.0 / wall,
            ran as f64 / wall * 60.0
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
    let file = args.trace_dir.join(format!("ledger-sim-seed-{seed}.trace"));
    match std::fs::write(&file, report.trace.join("")) {
        Ok(()) => eprintln!("  trace written to {}", file.display()),
        Err(e) => eprintln!("  could not write {}: {e}", file.display()),
    }
}
