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
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::time::DAY_MS;
use ledger_core::types::{AccountId, MerchantKind, RequestKey};
use ledger_core::Reply;
use ledger_testkit::bench::{arg, time_journal_reads, JournalReads};
use ledger_testkit::driver::{splitmix64, Driver};
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

    let reads = JournalReads {
        cards: &cards,
        merchant,
        start_ms,
        span_ms,
        reads,
        label: "",
        unit: "µs",
    };
    time_journal_reads(&d.ledger, &reads, &mut rng);
}
