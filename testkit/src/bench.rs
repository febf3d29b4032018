//! What the benchmark binaries share: their `--name N` arguments and latency percentiles.

/// The value after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let raw: Vec<String> = std::env::args().collect();
    raw.iter()
        .position(|a| a == name)
        .and_then(|i| raw.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} N")))
        .unwrap_or(default)
}

/// The nearest-rank percentile `p` (0..=1) of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

/// Prints one line for reads timed in nanoseconds: count, rows, p50, p99 and max in `unit`
/// (`µs` or `ms`).
pub fn report_reads(name: &str, mut ns: Vec<u64>, rows: usize, unit: &str) {
    ns.sort_unstable();
    let scale = if unit == "ms" { 1e6 } else { 1e3 };
    println!(
        "{name}: {} reads, {rows} rows in all; latency {unit} p50 {:.2} p99 {:.2} max {:.2}",
        ns.len(),
        percentile(&ns, 0.50) as f64 / scale,
        percentile(&ns, 0.99) as f64 / scale,
        *ns.last().unwrap_or(&0) as f64 / scale,
    );
}
