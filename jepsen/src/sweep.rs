//! `ledger-jepsen sweep`: many tests one after another, every workload under every fault
//! set, and a table of what they found. A test's run folder is kept when its verdict is
//! not valid (to read and `check` again) and removed otherwise, so a long sweep does not
//! fill the disk.

use crate::checker::{Results, Validity};
use crate::history::{self, OpType};
use crate::nemesis::Fault;
use crate::ops;
use crate::plots::percentile;
use crate::runner::{self, Options, TestInfo};
use crate::workloads::Kind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What one test run showed, besides its verdict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFigures {
    /// Latency (ms) of every client operation that completed ok.
    pub ok_latencies_ms: Vec<f64>,
    /// The longest stretch (s) of the client phase in which no client operation completed
    /// ok: how long the cluster was unavailable at worst.
    pub max_unavailable_s: f64,
}

/// The figures of a stored run, from its history.
pub fn figures(dir: &Path) -> Result<RunFigures, String> {
    let test: TestInfo = serde_json::from_str(
        &std::fs::read_to_string(dir.join("test.json"))
            .map_err(|e| format!("{}: {e}", dir.join("test.json").display()))?,
    )
    .map_err(|e| format!("test.json: {e}"))?;
    let entries = history::read_jsonl(&dir.join("history.jsonl"))?;
    let records = ops::records(&entries).map_err(|e| e.to_string())?;
    let ok: Vec<(u64, u64)> = records
        .iter()
        .filter(|r| r.is_client() && r.outcome == OpType::Ok)
        .filter_map(|r| r.complete_ns().map(|c| (r.invoke_ns(), c)))
        .collect();
    Ok(figures_of(&ok, test.time_limit_s * 1_000_000_000))
}

/// Figures from the (invoked, completed) times in ns of the ok client operations of a client
/// phase `span_ns` long.
pub fn figures_of(ok: &[(u64, u64)], span_ns: u64) -> RunFigures {
    let mut latencies: Vec<f64> = ok
        .iter()
        .map(|(i, c)| c.saturating_sub(*i) as f64 / 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut done: Vec<u64> = ok.iter().map(|(_, c)| (*c).min(span_ns)).collect();
    done.sort_unstable();
    let mut longest = 0;
    let mut last = 0;
    for t in done.into_iter().chain([span_ns]) {
        longest = longest.max(t - last);
        last = t;
    }
    RunFigures {
        ok_latencies_ms: latencies,
        max_unavailable_s: longest as f64 / 1e9,
    }
}

/// One row of the table: a workload under one fault set.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub runs: u64,
    pub valid: u64,
    pub invalid: u64,
    pub unknown: u64,
    /// Every run's ok latencies, for the row's percentiles.
    pub latencies_ms: Vec<f64>,
    pub max_unavailable_s: f64,
    /// The folders kept: runs whose verdict was not valid.
    pub kept: Vec<PathBuf>,
}

impl Row {
    fn add(&mut self, verdict: Validity, figures: Option<RunFigures>) {
        self.runs += 1;
        match verdict {
            Validity::Valid => self.valid += 1,
            Validity::Invalid => self.invalid += 1,
            Validity::Unknown => self.unknown += 1,
        }
        if let Some(f) = figures {
            self.latencies_ms.extend(f.ok_latencies_ms);
            self.max_unavailable_s = self.max_unavailable_s.max(f.max_unavailable_s);
        }
    }
}

/// The table, one row per (workload, fault set), in the order they were run.
pub fn table(rows: &[((Kind, Vec<Fault>), Row)]) -> String {
    let mut out = String::new();
    // The nemesis column as wide as its longest name (`all` spells out every fault).
    let width = rows
        .iter()
        .map(|((_, faults), _)| runner::nemesis_name(faults).len())
        .chain(["nemesis".len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{:<12} {:<width$} {:>5} {:>6} {:>8} {:>8} {:>9} {:>14}",
        "workload", "nemesis", "runs", "valid", "invalid", "unknown", "p99 ms", "max unavail s"
    );
    for ((kind, faults), row) in rows {
        let mut latencies = row.latencies_ms.clone();
        latencies.sort_by(f64::total_cmp);
        let p99 = percentile(&latencies, 0.99).map_or("-".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "{:<12} {:<width$} {:>5} {:>6} {:>8} {:>8} {:>9} {:>14.1}",
            kind.name(),
            runner::nemesis_name(faults),
            row.runs,
            row.valid,
            row.invalid,
            row.unknown,
            p99,
            row.max_unavailable_s
        );
    }
    for (_, row) in rows {
        for dir in &row.kept {
            let _ = writeln!(out, "kept: {}", dir.display());
        }
    }
    out
}

/// What a sweep runs: `runs` tests of every workload under every fault set, each from
/// `template` with its own seed (`seed`, `seed + 1`, ...).
pub struct Sweep {
    pub runs: u64,
    pub workloads: Vec<Kind>,
    pub nemeses: Vec<Vec<Fault>>,
    pub seed: u64,
    pub template: Options,
}

/// The sweep's verdict: invalid if any run was, else unknown if any run was, else valid.
pub fn verdict(rows: &[((Kind, Vec<Fault>), Row)]) -> Validity {
    if rows.iter().any(|(_, r)| r.invalid > 0) {
        Validity::Invalid
    } else if rows.iter().any(|(_, r)| r.unknown > 0) {
        Validity::Unknown
    } else {
        Validity::Valid
    }
}

/// Runs the sweep, printing a line per run on standard error; returns the rows. A harness
/// failure counts as an unknown verdict and the sweep goes on.
pub async fn run(sweep: Sweep) -> Vec<((Kind, Vec<Fault>), Row)> {
    let mut rows: Vec<((Kind, Vec<Fault>), Row)> = Vec::new();
    let mut index: BTreeMap<(Kind, Vec<Fault>), usize> = BTreeMap::new();
    let total = sweep.runs * (sweep.workloads.len() * sweep.nemeses.len()) as u64;
    let mut n = 0;
    for round in 0..sweep.runs {
        for &workload in &sweep.workloads {
            for faults in &sweep.nemeses {
                let seed = sweep.seed.wrapping_add(n);
                n += 1;
                let options = Options {
                    workload,
                    nemesis: faults.clone(),
                    seed,
                    ..sweep.template.clone()
                };
                let key = (workload, faults.clone());
                let at = *index.entry(key.clone()).or_insert_with(|| {
                    rows.push((key, Row::default()));
                    rows.len() - 1
                });
                let row = &mut rows[at].1;
                let label = format!(
                    "[{n}/{total}] {} under {} (round {}, seed {seed})",
                    workload.name(),
                    runner::nemesis_name(faults),
                    round + 1
                );
                match runner::run(options).await {
                    Ok((dir, results)) => {
                        let verdict = results.valid;
                        let figures = figures(&dir).ok();
                        eprintln!("ledger-jepsen sweep: {label}: {}", describe(&results));
                        row.add(verdict, figures);
                        if verdict == Validity::Valid {
                            remove_run(&dir);
                        } else {
                            row.kept.push(dir);
                        }
                    }
                    Err(e) => {
                        eprintln!("ledger-jepsen sweep: {label}: harness failure: {e}");
                        row.add(Validity::Unknown, None);
                    }
                }
            }
        }
    }
    rows
}

fn describe(results: &Results) -> String {
    let mut text = format!("{:?}", results.valid).to_lowercase();
    for (name, finding) in &results.checkers {
        if finding.valid != Validity::Valid {
            let _ = write!(text, "; {name} {:?}", finding.valid);
        }
    }
    text
}

/// Removes a valid run's folder, the `latest` links that named it, and its test's folder
/// if nothing else is left in it.
fn remove_run(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    for parent in dir.ancestors().skip(1).take(2) {
        let link = parent.join("latest");
        if std::fs::read_link(&link).is_ok() && !link.exists() {
            let _ = std::fs::remove_file(&link);
        }
    }
    if let Some(test) = dir.parent() {
        let _ = std::fs::remove_dir(test);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_longest_stretch_without_an_ok_counts_the_edges_of_the_client_phase() {
        // Ok completions at 1 s, 2 s and 7 s of a 10 s phase: the longest gap is 2 s to 7 s.
        let ok = [(0, S), (S, 2 * S), (6 * S, 7 * S)];
        let f = figures_of(&ok, 10 * S);
        assert_eq!(f.max_unavailable_s, 5.0);
        assert_eq!(f.ok_latencies_ms, vec![1000.0, 1000.0, 1000.0]);
        // Nothing after 1 s: unavailable for the remaining 9 s.
        assert_eq!(figures_of(&[(0, S)], 10 * S).max_unavailable_s, 9.0);
        // Nothing at all: the whole phase.
        assert_eq!(figures_of(&[], 10 * S).max_unavailable_s, 10.0);
    }

    #[test]
    fn a_sweep_is_invalid_if_any_run_was_and_unknown_before_valid() {
        let row = |valid, invalid, unknown| {
            (
                (Kind::Bank, vec![]),
                Row {
                    runs: valid + invalid + unknown,
                    valid,
                    invalid,
                    unknown,
                    ..Row::default()
                },
            )
        };
        assert_eq!(verdict(&[row(3, 0, 0)]), Validity::Valid);
        assert_eq!(verdict(&[row(3, 0, 0), row(2, 0, 1)]), Validity::Unknown);
        assert_eq!(verdict(&[row(2, 0, 1), row(2, 1, 0)]), Validity::Invalid);
        let printed = table(&[row(20, 0, 0)]);
        assert!(printed.contains("bank"), "{printed}");
        assert!(
            printed.lines().nth(1).unwrap().contains(" 20 "),
            "{printed}"
        );
    }

    #[test]
    fn the_table_lines_up_however_long_a_fault_set_is_named() {
        let every: Vec<Fault> = <Fault as clap::ValueEnum>::value_variants().to_vec();
        let rows = [
            ((Kind::Bank, vec![Fault::Clock]), Row::default()),
            ((Kind::Epay, every), Row::default()),
        ];
        let printed = table(&rows);
        let widths: Vec<usize> = printed.lines().map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{printed}");
    }
}
