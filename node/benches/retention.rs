//! The journal over sled, as a node stores it: statement and reconciliation read latency at
//! N postings, then the disk and snapshot size before and after compaction.
//!
//! `cargo bench -p ledger-node --bench retention [-- --postings N --reads N]`
//!
//! Writes N book transfers (one in ten into a merchant's settlement account) spread over 30
//! days of ledger time into a sled database in a temporary folder, one sled batch per 100
//! commands (the state machine writes one per Raft entry); reads statement pages and day
//! reconciliations; then moves ledger time on so that the first 20 days are past a 10-day
//! journal retention, and applies `Command::Compact` until nothing is due, as the leader
//! would. Sizes: sled's `size_on_disk` after a flush, and the snapshot the node would build
//! (`encode_snapshot` over every record). The folder is removed at the end.

use ledger_core::command::CampaignFlags;
use ledger_core::command::{Command, Context, Envelope};
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::intake::{self, OpenAccountRequest, Secret, SecretKeys};
use ledger_core::ledger::{encode_snapshot, Ledger};
use ledger_core::time::DAY_MS;
use ledger_core::types::{AccountId, MerchantKind, RequestKey};
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
        card_password: Secret::new("135790"),
        phone: test_phone(n),
        flags: CampaignFlags::default(),
    };
    intake::open_account(keys, &request, (n as u128).to_be_bytes()).expect("a valid account")
}

fn main() {
    let postings = arg("--postings", 1_000_000);
    let reads = arg("--reads", 1_000);
    let accounts = 1_000u64;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(256 * 1024 * 1024)
        .open()
        .expect("open sled");
    let tree = db.open_tree("state").expect("tree");
    let config = LedgerConfig {
        journal_retention_ms: 10 * DAY_MS,
        ..LedgerConfig::default()
    };
    let ledger = Ledger::genesis(SledState::new(tree), config);
    let mut b = Bench {
        db,
        ledger,
        index: 0,
        next_request: 0,
    };
    let start_ms = 1_764_547_200_000; // 2025-12-01 00:00 UTC
    let keys = SecretKeys::derive(b"retention bench master key", 1);
    let cards: Vec<AccountId> = (0..=accounts)
        .map(|n| {
            let opened = b.apply(start_ms, vec![bench_account(&keys, n)]);
            match &opened[0] {
                Ok(Reply::AccountOpened { account }) => *account,
                other => panic!("open account: {other:?}"),
            }
        })
        .collect();
    let shop = cards[accounts as usize];
    for card in &cards[..accounts as usize] {
        b.apply(
            start_ms,
            vec![Command::Deposit {
                account: *card,
                amount_fen: 1_000_000 * YUAN,
            }],
        );
    }
    let Ok(Reply::MerchantRegistered { merchant }) = &b.apply(
        start_ms,
        vec![Command::RegisterMerchant {
            kind: MerchantKind::Online,
            name: "bench shop".into(),
            settlement_account: shop,
            contact_phone: "13800009999".into(),
            terminals: 1,
        }],
    )[0] else {
        panic!("register merchant")
    };
    let merchant = *merchant;
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
        cards: &cards[..accounts as usize],
        merchant,
        start_ms,
        span_ms,
        reads,
        label: "sled: ",
        unit: "ms",
    };
    time_journal_reads(&b.ledger, &journal_reads, &mut rng);

    let (disk, snapshot) = b.sizes();
    let kept = b.ledger.meta().next_posting - b.ledger.meta().first_posting;
    println!(
        "before compaction: {kept} journal rows; sled {:.1} MiB on disk; snapshot {:.1} MiB",
        disk as f64 / 1048576.0,
        snapshot as f64 / 1048576.0,
    );
    // Day 30 of 30: with 10 days of retention, the first 20 days' rows are due.
    let now_ms = start_ms + span_ms;
    let began = Instant::now();
    let mut commands = 0;
    while b.ledger.compaction_due(now_ms) {
        b.apply(now_ms, vec![Command::Compact]);
        commands += 1;
    }
    let kept = b.ledger.meta().next_posting - b.ledger.meta().first_posting;
    eprintln!(
        "compacted with {commands} Compact commands in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    b.ledger
        .check_invariants()
        .expect("invariants after compaction");
    let (disk, snapshot) = b.sizes();
    println!(
        "after compaction: {kept} journal rows kept; sled {:.1} MiB on disk; snapshot {:.1} MiB",
        disk as f64 / 1048576.0,
        snapshot as f64 / 1048576.0,
    );
}
