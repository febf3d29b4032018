//! The simulator itself: determinism across processes, a clean sweep, and a planted bug
//! caught.

use std::process::Command;

fn sim(args: &[&str]) -> (bool, String, String) {
    // Failing seeds write their trace files to the temporary folder, not into the repo.
    let output = Command::new(env!("CARGO_BIN_EXE_ledger-sim"))
        .args(args)
        .arg("--trace-dir")
        .arg(std::env::temp_dir())
        .output()
        .expect("run ledger-sim");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_same_seed_gives_the_same_trace_hash_in_separate_processes() {
    let (ok_a, a, err_a) = sim(&["--seed", "11"]);
    let (ok_b, b, _) = sim(&["--seed", "11"]);
    assert!(ok_a && ok_b, "{err_a}");
    let last = |s: &str| s.lines().last().unwrap_or_default().to_owned();
    assert!(last(&a).starts_with("seed 11 verdict ok trace "), "{a}");
    assert_eq!(last(&a), last(&b));
    let (_, other, _) = sim(&["--seed", "12"]);
    assert_ne!(
        last(&a).split(' ').next_back(),
        last(&other).split(' ').next_back(),
        "different seeds, different runs"
    );
}

#[test]
fn a_sweep_of_seeds_with_faults_finds_no_violation() {
    let (ok, out, err) = sim(&["--seeds", "0..8"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("8 seeds, 0 failed"), "{out}");
}

#[test]
fn a_planted_bug_is_caught_and_leaves_a_trace() {
    // The full hunt (every planted bug within 500 seeds) runs in release in .ci/run.
    let (ok, list, _) = sim(&["--list-bugs"]);
    assert!(ok);
    assert_eq!(list.lines().count(), ledger_sim::Bug::all().len(), "{list}");
    assert!(list.lines().any(|l| l == "log-skips-checksums"), "{list}");
    let (ok, out, err) = sim(&[
        "--seeds",
        "0..50",
        "--bug",
        "network-duplicates-answer",
        "--stop-on-failure",
    ]);
    assert!(!ok, "the planted bug went unnoticed: {out}");
    assert!(
        err.contains("trace written to") && err.contains("Cargo.lock fnv"),
        "{err}"
    );
    assert!(
        err.contains("replay: cargo run --release -p ledger-sim -- --seed"),
        "{err}"
    );
}
