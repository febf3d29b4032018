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

/// What the journal benchmarks read: the cards whose statements they page through, the
/// merchant whose days they reconcile, and the ledger-time span the rows cover.
pub struct JournalReads<'a> {
    pub cards: &'a [ledger_core::types::AccountId],
    pub merchant: ledger_core::types::MerchantId,
    pub start_ms: u64,
    pub span_ms: u64,
    /// Statement pages per order; reconciliations are at most 100.
    pub reads: u64,
    /// Printed before each line (`sled: ` for the node's benchmark).
    pub label: &'static str,
    /// `µs` or `ms`.
    pub unit: &'static str,
}

/// Times statement pages of up to 1,000 rows over random 7-day ranges of random cards,
/// oldest and newest first, then reconciliations of the merchant's CST days; prints one
/// line each (`report_reads`).
pub fn time_journal_reads<S: ledger_core::state::Store>(
    ledger: &ledger_core::ledger::Ledger<S>,
    r: &JournalReads<'_>,
    rng: &mut u64,
) {
    use crate::driver::splitmix64;
    use ledger_core::config::MAX_STATEMENT_ROWS;
    use ledger_core::ledger::journal::{Order, StatementRequest};
    use ledger_core::time::{cst_day, DAY_MS};
    use std::hint::black_box;
    use std::time::Instant;
    for order in [Order::OldestFirst, Order::NewestFirst] {
        let (mut ns, mut rows) = (Vec::new(), 0);
        for _ in 0..r.reads {
            let account = r.cards[(splitmix64(rng) % r.cards.len() as u64) as usize];
            let from_ms = r.start_ms + splitmix64(rng) % r.span_ms;
            let request = StatementRequest {
                account,
                from_ms,
                to_ms: from_ms + 7 * DAY_MS,
                order,
                page_size: MAX_STATEMENT_ROWS,
                cursor: None,
            };
            let t = Instant::now();
            let page = black_box(ledger.statement(&request)).expect("statement");
            ns.push(t.elapsed().as_nanos() as u64);
            rows += page.rows.len();
        }
        let name = format!("{}statement page of 1,000, {order:?}", r.label);
        report_reads(&name, ns, rows, r.unit);
    }
    let first_day = cst_day(r.start_ms);
    let days = (r.span_ms / DAY_MS).max(1);
    let (mut ns, mut rows) = (Vec::new(), 0);
    for n in 0..r.reads.min(100) {
        let t = Instant::now();
        let day =
            black_box(ledger.reconcile(r.merchant, first_day + n % days, MAX_STATEMENT_ROWS, None))
                .expect("reconcile");
        ns.push(t.elapsed().as_nanos() as u64);
        rows += day.page.rows.len();
    }
    let name = format!(
        "{}merchant reconciliation of a CST day (totals over the whole day + first page)",
        r.label
    );
    report_reads(&name, ns, rows, r.unit);
}
