//! Benchmark of the journal's reads in the ledger core, in memory: one page of an account's
//! statement (oldest and newest first) and a merchant's reconciliation of a CST day, over a
//! journal of N postings.
//!
//! `cargo bench -p ledger-core --bench journal [-- --postings N --accounts N --reads N]`
//!
//! Postings are book transfers between random cards and payments into one merchant's
//! settlement account, spread over 30 days of ledger time. Only the reads are timed; the
//! node's figures over sled belong to the node's benchmark.

use ledger_core::command::{Command, Context, Envelope};
use ledger_core::config::{LedgerConfig, MAX_STATEMENT_ROWS, YUAN};
use ledger_core::ledger::journal::{Order, StatementRequest};
use ledger_core::time::{cst_day, DAY_MS};
use ledger_core::types::{AccountId, MerchantKind, RequestKey};
use ledger_core::Reply;
use ledger_testkit::bench::{arg, report_reads};
use ledger_testkit::driver::{splitmix64, Driver};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let postings = arg("--postings", 1_000_000);
    let accounts = arg("--accounts", 1_000);
    let reads = arg("--reads", 1_000);
    let mut d = Driver::new(LedgerConfig::default());
    let cards: Vec<AccountId> = (0..accounts)
        .map(|n| d.funded_card(n, 1_000_000 * YUAN).account)
        .collect();
    let shop = d.funded_card(accounts + 1, 0);
    let Ok(Reply::MerchantRegistered { merchant }) = d.submit(Command::RegisterMerchant {
        kind: MerchantKind::Online,
        name: "bench shop".into(),
        settlement_account: shop.account,
        contact_phone: shop.phone.clone(),
        terminals: 1,
    }) else {
        panic!("register merchant")
    };
    let start_ms = d.now_ms;
    let span_ms = 30 * DAY_MS;
    eprintln!("writing {postings} postings over {accounts} accounts…");
    let mut rng = 7u64;
    let began = Instant::now();
    for i in 0..postings {
        let source = cards[(splitmix64(&mut rng) % accounts) as usize];
        // One in ten goes to the merchant: its days have rows to reconcile.
        let target = if i % 10 == 0 {
            shop.account
        } else {
            cards[(splitmix64(&mut rng) % accounts) as usize]
        };
        if source == target {
            continue;
        }
        let envelope = Envelope::new(
            RequestKey {
                client_id: 1_000 + i % 64,
                request_id: 1 + i / 64,
            },
            0,
            Command::Transfer {
                source,
                target,
                amount_fen: 1 + splitmix64(&mut rng) % 1_000,
            },
        );
        let ctx = Context {
            index: 1_000 + i,
            now_ms: start_ms + i * span_ms / postings,
        };
        d.ledger.apply(&ctx, &envelope).expect("transfer");
    }
    eprintln!(
        "written in {:.1} s ({} journal rows)",
        began.elapsed().as_secs_f64(),
        d.ledger.meta().next_posting - 1
    );

    for order in [Order::OldestFirst, Order::NewestFirst] {
        let mut ns = Vec::new();
        let mut rows = 0;
        for _ in 0..reads {
            let account = cards[(splitmix64(&mut rng) % accounts) as usize];
            let from_ms = start_ms + splitmix64(&mut rng) % span_ms;
            let request = StatementRequest {
                account,
                from_ms,
                to_ms: from_ms + 7 * DAY_MS,
                order,
                page_size: MAX_STATEMENT_ROWS,
                cursor: None,
            };
            let t = Instant::now();
            let page = black_box(d.ledger.statement(&request)).expect("statement");
            ns.push(t.elapsed().as_nanos() as u64);
            rows += page.rows.len();
        }
        report_reads(
            &format!("statement page of 1,000, {order:?}"),
            ns,
            rows,
            "µs",
        );
    }

    let first_day = cst_day(start_ms);
    let mut ns = Vec::new();
    let mut rows = 0;
    for r in 0..reads.min(100) {
        let day = first_day + r % 30;
        let t = Instant::now();
        let day = black_box(d.ledger.reconcile(merchant, day, MAX_STATEMENT_ROWS, None))
            .expect("reconcile");
        ns.push(t.elapsed().as_nanos() as u64);
        rows += day.page.rows.len();
    }
    report_reads(
        "merchant reconciliation of a CST day (totals over the whole day + first page)",
        ns,
        rows,
        "µs",
    );
}
