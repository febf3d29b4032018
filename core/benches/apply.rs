//! Benchmark of the ledger core alone: commands applied per second on one core, in memory.
//!
//! `cargo bench -p ledger-core --bench apply [-- --transfers N --payments N --accounts N]`
//!
//! Commands are built before the clock starts (card hashing, OTP derivation and proofs are
//! the intake's work, done on the node that receives a request); only `Ledger::apply` is
//! timed. Latency percentiles come from a second pass that times every command. The
//! payments run twice: as they are, and while the merchant's webhook never answers (its
//! outbox grows until the webhook is marked failing).

use ledger_core::command::{Command, Context, Envelope, TxElements};
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::intake;
use ledger_core::types::{MerchantKind, Payee, PaymentId, RequestKey};
use ledger_core::{Ledger, MemStore, Reply};
use ledger_testkit::bench::percentile;
use ledger_testkit::driver::{splitmix64, Card, Driver};
use std::hint::black_box;
use std::time::Instant;

struct Args {
    transfers: usize,
    payments: usize,
    accounts: u64,
}

fn args() -> Args {
    let mut args = Args {
        transfers: 2_000_000,
        payments: 200_000,
        accounts: 10_000,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let value = || raw.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match raw[i].as_str() {
            "--transfers" => args.transfers = value().expect("--transfers N") as usize,
            "--payments" => args.payments = value().expect("--payments N") as usize,
            "--accounts" => args.accounts = value().expect("--accounts N"),
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    args
}

/// A ledger with `accounts` funded, e-Pay enrolled cards and one online merchant.
fn setup(accounts: u64) -> (Driver, Vec<Card>, Payee) {
    // Every card pays many times within seconds of ledger time: the per-phone OTP throttle
    // would refuse them (it is measured by its own tests, not here).
    let mut d = Driver::new(LedgerConfig {
        otp_challenges_per_phone: 1_000_000,
        ..LedgerConfig::default()
    });
    let cards: Vec<Card> = (0..accounts)
        .map(|n| {
            let card = d.funded_card(n, 1_000_000 * YUAN);
            d.enrol(&card, "bench").expect("enrol");
            card
        })
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
    (d, cards, Payee::Merchant(merchant))
}

/// Applies `batch` on a copy of `ledger`, once for throughput and once timing each command.
fn run(name: &str, ledger: &Ledger<MemStore>, start_ms: u64, batch: &[Envelope], per_op: usize) {
    let fresh = || Ledger::restore(MemStore::new(), &ledger.snapshot()).expect("restore");
    let mut l = fresh();
    let began = Instant::now();
    let mut failures = 0usize;
    for (i, envelope) in batch.iter().enumerate() {
        let ctx = Context {
            index: i as u64,
            now_ms: start_ms + i as u64 / 64,
        };
        failures += usize::from(black_box(l.apply(&ctx, envelope)).is_err());
    }
    let elapsed = began.elapsed();
    assert_eq!(failures, 0, "{name}: commands failed");
    l.check_invariants().expect("invariants hold after the run");

    let mut l = fresh();
    let mut latencies: Vec<u64> = Vec::with_capacity(batch.len());
    for (i, envelope) in batch.iter().enumerate() {
        let ctx = Context {
            index: i as u64,
            now_ms: start_ms + i as u64 / 64,
        };
        let t = Instant::now();
        black_box(l.apply(&ctx, envelope)).ok();
        latencies.push(t.elapsed().as_nanos() as u64);
    }
    latencies.sort_unstable();
    let commands_per_s = batch.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {} commands in {:.3} s = {:.0} commands/s = {:.0} {name}/s; latency ns p50 {} p99 {} p99.9 {} max {}",
        batch.len(),
        elapsed.as_secs_f64(),
        commands_per_s,
        commands_per_s / per_op as f64,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or(0),
    );
}

fn main() {
    let args = args();
    eprintln!("setting up {} enrolled accounts…", args.accounts);
    let (d, cards, merchant) = setup(args.accounts);
    let mut rng = 1u64;
    let key = |i: usize| RequestKey {
        client_id: 1_000,
        request_id: i as u64,
    };

    let transfers: Vec<Envelope> = (0..args.transfers)
        .map(|i| {
            let a = splitmix64(&mut rng) % args.accounts;
            let b = (a + 1 + splitmix64(&mut rng) % (args.accounts - 1)) % args.accounts;
            Envelope::new(
                key(i),
                i as u64,
                Command::Transfer {
                    source: cards[a as usize].account,
                    target: cards[b as usize].account,
                    amount_fen: 1 + splitmix64(&mut rng) % 10_000,
                },
            )
        })
        .collect();
    run("transfers", &d.ledger, d.now_ms, &transfers, 1);

    // Full two-step payments: begin (OTP issued) then confirm (OTP checked, settled).
    let first_payment = d.ledger.meta().next_payment;
    let mut payments = Vec::with_capacity(args.payments * 2);
    for i in 0..args.payments {
        let card = &cards[i % cards.len()];
        let lookup_digest = intake::lookup_digest(&d.keys, &card.phone, &card.last_six()).unwrap();
        let amount_fen = 1 + splitmix64(&mut rng) % (100 * YUAN);
        let order_id = format!("order-{i}");
        let digest = TxElements::Payment {
            lookup_digest: &lookup_digest,
            payee: merchant,
            amount_fen,
            order_id: &order_id,
        }
        .digest();
        let nonce = splitmix64(&mut rng);
        let (seed, code) = intake::challenge_seed(&d.keys, nonce, &digest);
        let challenge = ledger_core::state::Challenge {
            purpose: ledger_core::state::ChallengePurpose::Payment(PaymentId(0)),
            account: card.account,
            nonce,
            tx_digest: digest,
            verifier: seed.verifier,
            issued_ms: 0,
            expires_ms: 0,
            wrong_attempts: 0,
            state: ledger_core::state::ChallengeState::Open,
        };
        let otp = intake::otp_proof(&d.keys, &challenge, &code).unwrap();
        payments.push(Envelope::new(
            key(args.transfers + 2 * i),
            (args.transfers + 2 * i) as u64,
            Command::PaymentBegin {
                lookup_digest,
                payee: merchant,
                amount_fen,
                order_id,
                challenge: seed,
            },
        ));
        payments.push(Envelope::new(
            key(args.transfers + 2 * i + 1),
            (args.transfers + 2 * i + 1) as u64,
            Command::PaymentConfirm {
                payment: PaymentId(first_payment + i as u64),
                otp,
            },
        ));
    }
    run("payments", &d.ledger, d.now_ms, &payments, 2);

    // The same payments while the merchant's webhook never answers: every settlement also
    // waits in its outbox, until `max_undelivered_events` marks the webhook failing.
    let Payee::Merchant(shop) = merchant else {
        unreachable!("the bench payee is a merchant")
    };
    let mut d = d;
    d.submit(Command::SetWebhook {
        merchant: shop,
        url: Some("https://merchant.example/never-answers".into()),
    })
    .expect("register the webhook");
    run(
        "payments-hanging-webhook",
        &d.ledger,
        d.now_ms,
        &payments,
        2,
    );
}
