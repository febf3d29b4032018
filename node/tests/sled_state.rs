//! The core's storage seam on sled behaves exactly like the in-memory store: the same
//! commands give the same outcomes, and the same state hash at every batch boundary.

use ledger_core::command::{Command, Context, Envelope};
use ledger_core::config::LedgerConfig;
use ledger_core::types::{AccountId, PoolId, RequestKey};
use ledger_core::{Ledger, MemStore};
use ledger_node::state_store::{BrokenReads, SledState};
use ledger_testkit::driver::{splitmix64, Driver};

#[test]
fn sled_state_matches_the_memory_store_command_for_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .unwrap();
    let tree = db.open_tree("state").unwrap();

    // Accounts and a pool, made by the driver, then copied into both stores.
    let mut setup = Driver::new(LedgerConfig {
        idempotency_window_per_client: 8,
        ..LedgerConfig::default()
    });
    let cards: Vec<AccountId> = (0..5)
        .map(|n| setup.funded_card(n, 100_000).account)
        .collect();
    setup
        .submit(Command::CreatePool {
            name: "p".into(),
            face_value_fen: 100,
            capacity: 3,
            eligibility: ledger_core::types::Eligibility::Anyone,
            valid_from_ms: 0,
            valid_until_ms: u64::MAX,
        })
        .unwrap();
    let snapshot = setup.ledger.snapshot();
    let mut mem = Ledger::restore(MemStore::new(), &snapshot).unwrap();
    let mut sled_ledger = Ledger::restore(SledState::new(tree.clone()), &snapshot).unwrap();

    let mut rng = 9u64;
    let mut now_ms = setup.now_ms;
    let mut request_ids = [0u64; 4];
    for i in 0..3_000u64 {
        let a = cards[(splitmix64(&mut rng) % 5) as usize];
        let b = cards[(splitmix64(&mut rng) % 5) as usize];
        let command = match splitmix64(&mut rng) % 4 {
            0 => Command::Deposit {
                account: a,
                amount_fen: 1 + splitmix64(&mut rng) % 100,
            },
            1 => Command::ClaimVoucher {
                pool: PoolId(1),
                account: a,
            },
            _ => Command::Transfer {
                source: a,
                target: b,
                amount_fen: 1 + splitmix64(&mut rng) % 50_000,
            },
        };
        // Four clients; one acknowledges as it goes, the others never (window eviction).
        let client = (splitmix64(&mut rng) % 4) as usize;
        request_ids[client] += 1 + splitmix64(&mut rng) % 2;
        let key = RequestKey {
            client_id: client as u64 + 1,
            request_id: request_ids[client],
        };
        let acked_below = if client == 0 { request_ids[0] } else { 0 };
        // A retry of an earlier key now and then.
        let key = if splitmix64(&mut rng).is_multiple_of(10) {
            RequestKey {
                request_id: key.request_id.saturating_sub(3),
                ..key
            }
        } else {
            key
        };
        now_ms += splitmix64(&mut rng) % 1_000;
        let ctx = Context { index: i, now_ms };
        let envelope = Envelope::new(key, acked_below, command);
        assert_eq!(
            sled_ledger.apply(&ctx, &envelope),
            mem.apply(&ctx, &envelope),
            "command {i}"
        );
        // Commit every 7 commands, like a Raft batch.
        if i % 7 == 6 {
            let mut batch = sled::Batch::default();
            sled_ledger.store_mut().drain_into(&mut batch);
            tree.apply_batch(batch).unwrap();
            assert_eq!(
                sled_ledger.state_hash(),
                mem.state_hash(),
                "after command {i}"
            );
        }
    }
    sled_ledger.check_invariants().unwrap();
}

/// A record that fails its checksum when a query reads it (bit rot under a running node)
/// is reported to the node's `BrokenReads` before the read panics: the node stops instead
/// of answering, and its outbox and webhook loops do not die one by one.
#[test]
fn a_broken_record_met_outside_applying_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let tree = db.open_tree("state").unwrap();
    let mut setup = Driver::new(LedgerConfig::default());
    let account = setup.funded_card(0, 100_000).account;
    let mut ledger =
        Ledger::restore(SledState::new(tree.clone()), &setup.ledger.snapshot()).unwrap();
    let mut batch = sled::Batch::default();
    ledger.store_mut().drain_into(&mut batch);
    tree.apply_batch(batch).unwrap();

    let broken = BrokenReads::default();
    let reader = || Ledger::open(SledState::reporting(tree.clone(), broken.clone())).unwrap();
    assert_eq!(
        reader().account(account).map(|a| a.balance_fen),
        Some(100_000)
    );
    assert_eq!(broken.first(), None, "a sound read reports nothing");

    // One bit of the account's stored record flipped.
    let key = ledger_core::state::Key::Account(account).encode();
    let mut stored = tree
        .get(&key)
        .unwrap()
        .expect("the account is stored")
        .to_vec();
    stored[0] ^= 0x10;
    tree.insert(&key, stored).unwrap();
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader().account(account)));
    assert!(read.is_err(), "a broken record is never answered: {read:?}");
    let first = broken.first().expect("reported");
    assert!(first.contains("fails its checksum"), "{first}");
    let reported = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), broken.reported()).await
        });
    assert_eq!(reported.ok(), Some(first));
}
