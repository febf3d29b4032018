//! The exactly-once rules of DOMAIN.md section 6, What the ledger guarantees: idempotency
//! keys, acknowledgements and client sessions. One test per rule, named after the rule.
//! Every refusal is also checked to leave the state hash unchanged.

mod common;

use common::{balance, driver, refused};
use ledger_core::command::Command;
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::outcome::LedgerError;
use ledger_core::time::DAY_MS;
use ledger_testkit::driver::Driver;

#[test]
fn a_retry_returns_the_original_outcome_and_charges_once() {
    let mut d = driver();
    let a = d.funded_card(1, 100 * YUAN);
    let b = d.funded_card(2, 0);
    let key = d.fresh_key();
    let command = Command::Transfer {
        source: a.account,
        target: b.account,
        amount_fen: 30 * YUAN,
    };
    let first = d.submit_with_key(key, command.clone());
    d.advance(60_000);
    let before = d.ledger.state_hash();
    assert_eq!(d.submit_with_key(key, command), first);
    assert_eq!(d.ledger.state_hash(), before);
    assert_eq!(balance(&d, b.account), 30 * YUAN as i64);
}

#[test]
fn the_same_key_with_a_different_body_is_refused() {
    let mut d = driver();
    let a = d.funded_card(1, 100 * YUAN);
    let b = d.funded_card(2, 0);
    let key = d.fresh_key();
    d.submit_with_key(
        key,
        Command::Transfer {
            source: a.account,
            target: b.account,
            amount_fen: 1,
        },
    )
    .unwrap();
    let before = d.ledger.state_hash();
    assert_eq!(
        d.submit_with_key(
            key,
            Command::Transfer {
                source: a.account,
                target: b.account,
                amount_fen: 2
            }
        ),
        Err(LedgerError::IdempotencyKeyReused { key })
    );
    assert_eq!(d.ledger.state_hash(), before);
}

#[test]
fn acknowledged_records_are_forgotten_and_their_retries_refused_never_reapplied() {
    let mut d = driver();
    let a = d.funded_card(1, 100 * YUAN);
    let b = d.funded_card(2, 0);
    let first = d.fresh_key();
    let command = Command::Transfer {
        source: a.account,
        target: b.account,
        amount_fen: 1,
    };
    d.submit_with_key(first, command.clone()).unwrap();
    d.acked_below = first.request_id + 1;
    d.submit(Command::Deposit {
        account: a.account,
        amount_fen: 1,
    })
    .unwrap();
    assert!(
        d.ledger.idempotency_record(first).is_none(),
        "acknowledged, so forgotten"
    );
    let before = d.ledger.state_hash();
    let floor = first.request_id + 1;
    assert_eq!(
        d.submit_with_key(first, command),
        Err(LedgerError::RequestTooOld { key: first, floor })
    );
    assert_eq!(d.ledger.state_hash(), before);
    assert_eq!(balance(&d, b.account), 1);
}

#[test]
fn a_client_that_never_acknowledges_keeps_a_bounded_window() {
    let config = LedgerConfig {
        idempotency_window_per_client: 4,
        ..LedgerConfig::default()
    };
    let mut d = Driver::new(config);
    let a = d.funded_card(1, 100 * YUAN);
    let first = d.fresh_key();
    let deposit = Command::Deposit {
        account: a.account,
        amount_fen: 1,
    };
    d.submit_with_key(first, deposit.clone()).unwrap();
    for _ in 0..4 {
        d.submit(deposit.clone()).unwrap();
    }
    assert!(d.ledger.idempotency_record(first).is_none());
    let floor = first.request_id + 1;
    let before = d.ledger.state_hash();
    assert_eq!(
        d.submit_with_key(first, deposit),
        Err(LedgerError::RequestTooOld { key: first, floor })
    );
    assert_eq!(d.ledger.state_hash(), before);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn idle_client_sessions_expire_after_seven_days() {
    let mut d = driver();
    let a = d.funded_card(1, 100 * YUAN);
    let old_client_key = d.fresh_key();
    d.submit_with_key(
        old_client_key,
        Command::Deposit {
            account: a.account,
            amount_fen: 1,
        },
    )
    .unwrap();
    assert_eq!(d.ledger.meta().client_sessions, 1);
    d.client_id = 8;
    d.advance(7 * DAY_MS);
    d.submit(Command::Deposit {
        account: a.account,
        amount_fen: 1,
    })
    .unwrap();
    assert!(d.ledger.idempotency_record(old_client_key).is_none());
    assert_eq!(d.ledger.meta().client_sessions, 1);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn too_many_clients_are_refused_until_an_idle_session_expires() {
    let config = LedgerConfig {
        max_client_sessions: 2,
        ..LedgerConfig::default()
    };
    let mut d = Driver::new(config);
    let a = d.funded_card(1, 100 * YUAN); // client 7
    d.client_id = 8;
    d.submit(Command::Deposit {
        account: a.account,
        amount_fen: 1,
    })
    .unwrap();
    d.client_id = 9;
    let deposit = Command::Deposit {
        account: a.account,
        amount_fen: 1,
    };
    refused(
        &mut d,
        deposit.clone(),
        LedgerError::TooManyClients { max_sessions: 2 },
    );
    assert!(LedgerError::TooManyClients { max_sessions: 2 }.is_retryable());
    d.advance(7 * DAY_MS);
    d.submit(deposit).unwrap();
    d.ledger.check_invariants().unwrap();
}
