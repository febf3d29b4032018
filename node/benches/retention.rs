//! The journal over sled, as a node stores it: statement and reconciliation read latency at
//! N postings, then the disk and snapshot size before and after compaction.
//!
//! `cargo bench -p ledger-node --bench retention [-- --postings N --reads N]`
//! `cargo bench -p ledger-node --bench retention -- --payments N`
//!
//! Writes N book transfers (one in ten into a merchant's settlement account) spread over 30
//! days of ledger time into a sled database in a temporary folder, one sled batch per 100
//! commands (the state machine writes one per Raft entry); reads statement pages and day
//! reconciliations; then moves ledger time on so that the first 20 days are past a 10-day
//! journal retention, and applies `Command::Compact` until nothing is due, as the leader
//! would. Sizes: sled's `size_on_disk` after a flush, and the snapshot the node would build
//! (`encode_snapshot` over every record). The folder is removed at the end.
//!
//! With `--payments N`: N two-step e-Pay payments instead (begin, the SMS acknowledged,
//! confirm with the right code), each card paying a 1-yuan order at the one merchant, spread
//! over 30 days; then compaction on day 30 under 10 days of journal and payment retention and
//! 7 of events; then N more payments over the next 30 days and compaction again, to show
//! what sled does with the room compaction freed. Sizes after each step.

use ledger_core::command::CampaignFlags;
use ledger_core::command::{Command, Context, Envelope, TxElements};
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::intake::{self, OpenAccountRequest, Secret, SecretKeys};
use ledger_core::ledger::{encode_snapshot, Ledger};
use ledger_core::time::DAY_MS;
use ledger_core::types::{
    AccountId, ChallengeId, MerchantId, MerchantKind, Payee, PaymentId, RequestKey,
};
use ledger_core::Reply;
use ledger_node::state_store::SledState;
use ledger_testkit::bench::{arg, time_journal_reads, JournalReads};
use ledger_testkit::driver::{splitmix64, test_pan, test_phone};
use std::time::Instant;

/// Applies commands and writes their records to sled, a batch per call.
struct Bench {
    db: sled::Db,
    ledger: Ledger<SledState>,
    index: u64,
    next_request: u64,
}

impl Bench {
    fn apply(&mut self, now_ms: u64, commands: Vec<Command>) -> Vec<ledger_core::Outcome> {
        let outcomes = commands
            .into_iter()
            .map(|command| {
                self.index += 1;
                self.next_request += 1;
                let envelope = Envelope::new(
                    RequestKey {
                        client_id: 1,
                        request_id: self.next_request,
                    },
                    self.next_request,
                    command,
                );
                let ctx = Context {
                    index: self.index,
                    now_ms,
                };
                self.ledger.apply(&ctx, &envelope)
            })
            .collect();
        let mut batch = sled::Batch::default();
        self.ledger.store_mut().drain_into(&mut batch);
        self.ledger
            .store()
            .tree()
            .apply_batch(batch)
            .expect("write the batch");
        outcomes
    }

    /// A ledger under `config` in sled in `dir`.
    fn open(dir: &std::path::Path, config: LedgerConfig) -> Bench {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .expect("open sled");
        let tree = db.open_tree("state").expect("tree");
        Bench {
            db,
            ledger: Ledger::genesis(SledState::new(tree), config),
            index: 0,
            next_request: 0,
        }
    }

    /// Opens test cards 0..=`accounts`, funds the first `accounts`, and registers an online
    /// merchant settling into the last. Returns the funded cards and the merchant.
    fn cards_and_shop(
        &mut self,
        keys: &SecretKeys,
        now_ms: u64,
        accounts: u64,
    ) -> (Vec<AccountId>, AccountId, MerchantId) {
        let mut cards: Vec<AccountId> = (0..=accounts)
            .map(
                |n| match &self.apply(now_ms, vec![bench_account(keys, n)])[0] {
                    Ok(Reply::AccountOpened { account }) => *account,
                    other => panic!("open account: {other:?}"),
                },
            )
            .collect();
        let shop = cards.pop().expect("the shop's account");
        let deposits = cards
            .iter()
            .map(|&account| Command::Deposit {
                account,
                amount_fen: 1_000_000 * YUAN,
            })
            .collect();
        self.apply(now_ms, deposits);
        let register = Command::RegisterMerchant {
            kind: MerchantKind::Online,
            name: "bench shop".into(),
            settlement_account: shop,
            contact_phone: "13800009999".into(),
            terminals: 1,
        };
        let Ok(Reply::MerchantRegistered { merchant }) = &self.apply(now_ms, vec![register])[0]
        else {
            panic!("register merchant")
        };
        (cards, shop, *merchant)
    }

    /// Applies `Compact` at `now_ms` until nothing is due, as the leader would, and checks
    /// the invariants after.
    fn compact_all(&mut self, now_ms: u64) {
        let began = Instant::now();
        let mut commands = 0;
        while self.ledger.compaction_due(now_ms) {
            self.apply(now_ms, vec![Command::Compact]);
            commands += 1;
        }
        eprintln!(
            "compacted with {commands} Compact commands in {:.1} s",
            began.elapsed().as_secs_f64()
        );
        self.ledger
            .check_invariants()
            .expect("invariants after compaction");
    }

    /// The size line: sled on disk and the snapshot.
    fn size_line(&self) -> String {
        let (disk, snapshot) = self.sizes();
        format!(
            "sled {:.1} MiB on disk; snapshot {:.1} MiB",
            disk as f64 / 1048576.0,
            snapshot as f64 / 1048576.0
        )
    }

    /// sled's size on disk after a flush, and the size of the snapshot the node would build.
    fn sizes(&self) -> (u64, usize) {
        self.db.flush().expect("flush");
        let tree = self.ledger.store().tree();
        let records: Vec<(sled::IVec, sled::IVec)> =
            tree.iter().map(|r| r.expect("read")).collect();
        let snapshot = encode_snapshot(records.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        (self.db.size_on_disk().expect("size"), snapshot.len())
    }
}

/// The command that opens test card `n`.
fn bench_account(keys: &SecretKeys, n: u64) -> Command {
    let request = OpenAccountRequest {
        holder_name: format!("bench {n}"),
        card_number: Secret::new(test_pan(n)),
        card_password: Secret::new(BENCH_PASSWORD),
        phone: test_phone(n),
        flags: CampaignFlags::default(),
    };
    intake::open_account(keys, &request, (n as u128).to_be_bytes()).expect("a valid account")
}

fn main() {
    let payments = arg("--payments", 0);
    if payments > 0 {
        payments_scenario(payments);
    } else {
        postings_scenario(arg("--postings", 1_000_000), arg("--reads", 1_000));
    }
}

/// What is stored, by kind, for the size lines.
fn counts(ledger: &Ledger<SledState>) -> String {
    let meta = ledger.meta();
    format!(
        "{} journal rows, {} payments, {} challenges kept",
        meta.next_posting - meta.first_posting,
        meta.next_payment - meta.first_payment,
        meta.next_challenge - meta.first_challenge,
    )
}

fn payments_scenario(payments: u64) {
    let accounts = 1_000u64;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LedgerConfig {
        journal_retention_ms: 10 * DAY_MS,
        payment_retention_ms: 10 * DAY_MS,
        event_retention_ms: 7 * DAY_MS,
        ..LedgerConfig::default()
    };
    let mut b = Bench::open(dir.path(), config);
    let start_ms = 1_764_547_200_000; // 2025-12-01 00:00 UTC
    let keys = SecretKeys::derive(b"retention bench master key", 1);
    let mut nonce = 1u64;
    let (cards, _, merchant) = b.cards_and_shop(&keys, start_ms, accounts);
    let payee = Payee::Merchant(merchant);
    eprintln!("enrolling {accounts} cards…");
    for (n, card) in cards.iter().enumerate() {
        enrol(&mut b, &keys, start_ms, n as u64, *card, &mut nonce);
    }
    let span_ms = 30 * DAY_MS;
    let mut order = 0u64;
    for round in 0..2 {
        let from_ms = start_ms + round * span_ms;
        eprintln!("round {}: {payments} payments over 30 days…", round + 1);
        let began = Instant::now();
        let mut paid = 0;
        while paid < payments {
            let now_ms = from_ms + paid * span_ms / payments;
            let size = PAYMENTS_PER_BATCH.min(payments - paid);
            let begins: Vec<Command> = (0..size)
                .map(|i| {
                    let n = (order + i) % accounts;
                    let lookup_digest =
                        intake::lookup_digest(&keys, &test_phone(n), &last_six(n)).unwrap();
                    let order_id = format!("order-{}", order + i);
                    let digest = TxElements::Payment {
                        lookup_digest: &lookup_digest,
                        payee,
                        amount_fen: YUAN,
                        order_id: &order_id,
                    }
                    .digest();
                    nonce += 1;
                    let (challenge, _) = intake::challenge_seed(&keys, nonce, &digest);
                    Command::PaymentBegin {
                        lookup_digest,
                        payee,
                        amount_fen: YUAN,
                        order_id,
                        challenge,
                    }
                })
                .collect();
            order += size;
            let pending: Vec<(PaymentId, ChallengeId)> = b
                .apply(now_ms, begins)
                .into_iter()
                .map(|outcome| match outcome {
                    Ok(Reply::PaymentPending {
                        payment, challenge, ..
                    }) => (payment, challenge),
                    other => panic!("payment begin: {other:?}"),
                })
                .collect();
            let challenges = pending.iter().map(|(_, c)| *c).collect();
            b.apply(now_ms, vec![Command::AckSms { challenges }]);
            let confirms = pending
                .iter()
                .map(|&(payment, challenge)| {
                    let c = b.ledger.challenge(challenge).expect("challenge");
                    let code = intake::otp_code(&keys, c.nonce, &c.tx_digest);
                    Command::PaymentConfirm {
                        payment,
                        otp: intake::otp_proof(&keys, &c, &code).unwrap(),
                    }
                })
                .collect();
            for outcome in b.apply(now_ms, confirms) {
                assert!(
                    matches!(outcome, Ok(Reply::PaymentSettled { .. })),
                    "payment confirm: {outcome:?}"
                );
            }
            paid += size;
        }
        eprintln!("written in {:.1} s", began.elapsed().as_secs_f64());
        println!(
            "round {}, after {payments} payments: {}; {}",
            round + 1,
            counts(&b.ledger),
            b.size_line()
        );
        b.compact_all(from_ms + span_ms);
        println!(
            "round {}, after compaction: {}; {}",
            round + 1,
            counts(&b.ledger),
            b.size_line()
        );
    }
}

/// Payments begun (and then confirmed) per sled batch.
const PAYMENTS_PER_BATCH: u64 = 100;

/// The last six digits of test card `n`'s number.
fn last_six(n: u64) -> Secret {
    let pan = test_pan(n);
    Secret::new(&pan[pan.len() - 6..])
}

/// The four enrolment steps for test card `n`, with its password and the right code.
fn enrol(
    b: &mut Bench,
    keys: &SecretKeys,
    now_ms: u64,
    n: u64,
    account: AccountId,
    nonce: &mut u64,
) {
    let pan_digest = intake::card_digest(keys, &Secret::new(test_pan(n))).unwrap();
    let stored = b.ledger.holder(account).expect("holder").password;
    let password_proof =
        intake::password_proof(keys, &Secret::new(BENCH_PASSWORD), &stored).unwrap();
    let alias = "bench".to_owned();
    let digest = TxElements::Enrolment {
        account,
        alias: &alias,
    }
    .digest();
    *nonce += 1;
    let (seed, code) = intake::challenge_seed(keys, *nonce, &digest);
    let steps = vec![
        Command::EpayBegin {
            pan_digest,
            phone: test_phone(n),
        },
        Command::EpayChooseAlias {
            account,
            password_proof,
            alias,
        },
        Command::EpayConfirm {
            account,
            challenge: seed,
        },
    ];
    let issued = b.apply(now_ms, steps);
    let Some(Ok(Reply::ChallengeIssued { challenge, .. })) = issued.last() else {
        panic!("enrolment: {issued:?}")
    };
    let challenge = *challenge;
    let c = b.ledger.challenge(challenge).expect("challenge");
    let otp = intake::otp_proof(keys, &c, &code).unwrap();
    b.apply(
        now_ms,
        vec![Command::AckSms {
            challenges: vec![challenge],
        }],
    );
    let activated = b.apply(now_ms, vec![Command::EpayActivate { account, otp }]);
    assert!(
        matches!(activated[0], Ok(Reply::EpayActivated { .. })),
        "{activated:?}"
    );
}

const BENCH_PASSWORD: &str = "135790";

fn postings_scenario(postings: u64, reads: u64) {
    let accounts = 1_000u64;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LedgerConfig {
        journal_retention_ms: 10 * DAY_MS,
        ..LedgerConfig::default()
    };
    let mut b = Bench::open(dir.path(), config);
    let start_ms = 1_764_547_200_000; // 2025-12-01 00:00 UTC
    let keys = SecretKeys::derive(b"retention bench master key", 1);
    let (cards, shop, merchant) = b.cards_and_shop(&keys, start_ms, accounts);
    let span_ms = 30 * DAY_MS;
    eprintln!("writing {postings} postings over {accounts} accounts into sled…");
    let mut rng = 7u64;
    let began = Instant::now();
    let mut written = 0;
    while written < postings {
        let now_ms = start_ms + written * span_ms / postings;
        let batch: Vec<Command> = (0..100)
            .map(|i| {
                let source = cards[(splitmix64(&mut rng) % accounts) as usize];
                let target = if (written + i) % 10 == 0 {
                    shop
                } else {
                    cards[(splitmix64(&mut rng) % accounts) as usize]
                };
                Command::Transfer {
                    source,
                    target,
                    amount_fen: 1 + splitmix64(&mut rng) % 1_000,
                }
            })
            .collect();
        written += batch.len() as u64;
        b.apply(now_ms, batch);
    }
    let rows = b.ledger.meta().next_posting - 1;
    eprintln!(
        "written in {:.1} s ({rows} journal rows)",
        began.elapsed().as_secs_f64()
    );

    let journal_reads = JournalReads {
        cards: &cards,
        merchant,
        start_ms,
        span_ms,
        reads,
        label: "sled: ",
        unit: "ms",
    };
    time_journal_reads(&b.ledger, &journal_reads, &mut rng);

    let kept = b.ledger.meta().next_posting - b.ledger.meta().first_posting;
    println!("before compaction: {kept} journal rows; {}", b.size_line());
    // Day 30 of 30: with 10 days of retention, the first 20 days' rows are due.
    b.compact_all(start_ms + span_ms);
    let kept = b.ledger.meta().next_posting - b.ledger.meta().first_posting;
    println!(
        "after compaction: {kept} journal rows kept; {}",
        b.size_line()
    );
}
