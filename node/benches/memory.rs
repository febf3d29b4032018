//! One node's state machine at scale: its memory and disk with many accounts and transfers
//! applied (issue 16's target: at most 512 MiB of RSS per node with 1M accounts and 10M
//! transfers, disk bounded by snapshots).
//!
//! `cargo bench -p ledger-node --bench memory [-- --accounts N --transfers N --per-entry N
//! --snapshot-every N]` (defaults: 1,000,000 accounts, 10,000,000 transfers, 64 commands an
//! entry, a snapshot every 10,000 entries: the node's policy).
//!
//! Drives the production `StateMachine` on sled, opened as `ledger-node` opens it (its
//! default 256 MiB cache), without Raft: the genesis entry, then entries of `--per-entry`
//! commands (one client, acknowledging each answer before the next, as `ledger-bench` does)
//! opening the accounts, funding them and moving money between random pairs; a snapshot
//! built every `--snapshot-every` entries as openraft would. An account's card and look-up
//! digests are made up per account (the intake's slow password hash is computed once and
//! shared: the ledger never reads it back here). The Raft log is not included: a node keeps
//! at most the entries since its last snapshot plus `max_in_snapshot_log_to_keep` (1,000).
//! Prints, every million transfers, the process's RSS now and at its peak, sled's size on
//! disk and the snapshot's. The folder (under the system's temporary directory) is removed
//! at the end.

use ledger_core::command::{Command, Envelope};
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::intake::{self, OpenAccountRequest, Secret, SecretKeys};
use ledger_core::types::{AccountId, Digest32, RequestKey};
use ledger_core::{Outcome, Reply};
use ledger_node::raft_types::{Applied, LogId, Proposal, ProposalBody, TypeConfig};
use ledger_node::state_machine::StateMachine;
use ledger_testkit::bench::arg;
use ledger_testkit::driver::{splitmix64, test_pan, test_phone};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload};
use std::path::Path;
use std::time::Instant;

/// The allocator `ledger-node` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The node's default sled cache (`--cache-mb`, 256).
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
const START_MS: u64 = 1_764_547_200_000; // 2025-12-01 00:00 UTC

struct Node {
    sm: StateMachine<TypeConfig>,
    db: sled::Db,
    dir: std::path::PathBuf,
    index: u64,
    request: u64,
    entries_since_snapshot: u64,
    snapshot_every: u64,
    snapshots: u64,
}

impl Node {
    async fn entry(&mut self, body: ProposalBody) -> Applied {
        self.index += 1;
        let entry = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(Proposal {
                now_ms: START_MS + self.index,
                body,
            }),
        };
        let mut applied = self.sm.apply([entry]).await.expect("apply");
        self.entries_since_snapshot += 1;
        if self.entries_since_snapshot >= self.snapshot_every {
            let mut builder = self.sm.get_snapshot_builder().await;
            builder.build_snapshot().await.expect("snapshot");
            self.entries_since_snapshot = 0;
            self.snapshots += 1;
        }
        applied.pop().expect("one answer per entry")
    }

    /// Applies `commands` as one entry; returns their outcomes.
    async fn commands(&mut self, commands: Vec<Command>) -> Vec<Outcome> {
        let envelopes = commands
            .into_iter()
            .map(|command| {
                self.request += 1;
                let key = RequestKey {
                    client_id: 1,
                    request_id: self.request,
                };
                Envelope::new(key, self.request, command)
            })
            .collect();
        match self.entry(ProposalBody::Commands(envelopes)).await {
            Applied::Outcomes(outcomes) => outcomes,
            other => panic!("applied {other:?}"),
        }
    }

    fn report(&self, what: &str, began: Instant) {
        self.db.flush().expect("flush");
        let snapshot = dir_bytes(&self.dir.join("snapshots"));
        println!(
            "{what}: {:.0} s; RSS {} MiB (peak {} MiB); sled {:.0} MiB on disk; snapshot {:.0} MiB ({} built)",
            began.elapsed().as_secs_f64(),
            status_kib("VmRSS:") / 1024,
            status_kib("VmHWM:") / 1024,
            self.db.size_on_disk().expect("size") as f64 / 1048576.0,
            snapshot as f64 / 1048576.0,
            self.snapshots,
        );
    }
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A made-up digest for account `n` (`salt` tells the card's from the look-up's).
fn digest(n: u64, salt: u64) -> Digest32 {
    let mut state = n ^ salt.rotate_left(32);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    Digest32(bytes)
}

fn main() {
    let accounts = arg("--accounts", 1_000_000);
    let transfers = arg("--transfers", 10_000_000);
    let per_entry = arg("--per-entry", 64).max(1);
    let snapshot_every = arg("--snapshot-every", 10_000).max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(accounts.max(2), transfers, per_entry, snapshot_every));
}

async fn run(accounts: u64, transfers: u64, per_entry: u64, snapshot_every: u64) {
    let folder = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(folder.path().join("sled"))
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(None)
        .mode(sled::Mode::HighThroughput)
        .open()
        .expect("open sled");
    let sm = StateMachine::open(&db, &folder.path().join("snapshots")).expect("state machine");
    let mut node = Node {
        sm,
        db,
        dir: folder.path().to_owned(),
        index: 0,
        request: 0,
        entries_since_snapshot: 0,
        snapshot_every,
        snapshots: 0,
    };
    node.entry(ProposalBody::Genesis(LedgerConfig::default()))
        .await;
    let began = Instant::now();

    let keys = SecretKeys::derive(b"memory bench master key", 1);
    let request = OpenAccountRequest {
        holder_name: "bench".into(),
        card_number: Secret::new(test_pan(0)),
        card_password: Secret::new("135790"),
        phone: test_phone(0),
        flags: Default::default(),
    };
    let template = intake::open_account(&keys, &request, [7; 16]).expect("an account");
    let mut ids = Vec::with_capacity(accounts as usize);
    let mut n = 0;
    while n < accounts {
        let count = per_entry.min(accounts - n);
        let opens = (n..n + count)
            .map(|i| match &template {
                Command::OpenAccount {
                    password, flags, ..
                } => Command::OpenAccount {
                    holder_name: format!("bench {i}"),
                    pan_digest: digest(i, 1),
                    pan_last4: *format!("{:04}", i % 10_000)
                        .as_bytes()
                        .first_chunk()
                        .unwrap(),
                    lookup_digest: digest(i, 2),
                    phone: test_phone(i),
                    password: *password,
                    flags: *flags,
                },
                other => panic!("the intake made {other:?}"),
            })
            .collect();
        for outcome in node.commands(opens).await {
            match outcome {
                Ok(Reply::AccountOpened { account }) => ids.push(account),
                other => panic!("open account: {other:?}"),
            }
        }
        n += count;
    }
    for chunk in ids.chunks(per_entry as usize) {
        let deposits = chunk
            .iter()
            .map(|&account| Command::Deposit {
                account,
                amount_fen: 1_000_000 * YUAN,
            })
            .collect();
        for outcome in node.commands(deposits).await {
            outcome.expect("deposit");
        }
    }
    node.report(&format!("{accounts} accounts opened and funded"), began);

    let mut rng = 11u64;
    let pick = |rng: &mut u64| -> AccountId { ids[(splitmix64(rng) % ids.len() as u64) as usize] };
    let mut done = 0;
    let mut next_report = 1_000_000;
    while done < transfers {
        let count = per_entry.min(transfers - done);
        let batch = (0..count)
            .map(|_| {
                let source = pick(&mut rng);
                let mut target = pick(&mut rng);
                while target == source {
                    target = pick(&mut rng);
                }
                Command::Transfer {
                    source,
                    target,
                    amount_fen: 1 + splitmix64(&mut rng) % 1_000,
                }
            })
            .collect();
        for outcome in node.commands(batch).await {
            outcome.expect("transfer");
        }
        done += count;
        if done >= next_report || done == transfers {
            node.report(&format!("{done} transfers"), began);
            next_report += 1_000_000;
        }
    }
}
