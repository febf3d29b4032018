//! Helpers shared by the rule tests (one file per section of DOMAIN.md). Each test file
//! uses only some of them.

#![allow(dead_code)]

use ledger_core::command::Command;
use ledger_core::config::LedgerConfig;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::time::DAY_MS;
use ledger_core::types::{AccountId, Eligibility, MerchantId, MerchantKind, PoolId};
use ledger_core::Outcome;
use ledger_testkit::driver::{Card, Driver};

pub fn driver() -> Driver {
    Driver::new(LedgerConfig::default())
}

/// Runs a command that must be refused with `expected`, and checks it changed nothing.
pub fn refused(d: &mut Driver, command: Command, expected: LedgerError) {
    let before = d.ledger.state_hash();
    assert_eq!(d.submit(command), Err(expected));
    assert_eq!(d.ledger.state_hash(), before, "a refusal changed the state");
    d.ledger.check_invariants().unwrap();
}

pub fn balance(d: &Driver, account: AccountId) -> i64 {
    d.ledger.balance_fen(account).unwrap()
}

pub fn merchant(d: &mut Driver, n: u64, kind: MerchantKind) -> (MerchantId, Card) {
    let card = d.funded_card(n, 0);
    let contact_phone = match kind {
        MerchantKind::Shangyitong => "0731-84567890".to_owned(),
        _ => card.phone.clone(),
    };
    let reply = d
        .submit(Command::RegisterMerchant {
            kind,
            name: format!("merchant {n}"),
            settlement_account: card.account,
            contact_phone,
            terminals: 1,
        })
        .unwrap();
    let Reply::MerchantRegistered { merchant } = reply else {
        panic!("{reply:?}")
    };
    (merchant, card)
}

pub fn enrolled(d: &mut Driver, n: u64, balance_fen: u64) -> Card {
    let card = d.funded_card(n, balance_fen);
    d.enrol(&card, "小王的卡").unwrap();
    card
}

pub fn pool(
    d: &mut Driver,
    face_value_fen: u64,
    capacity: u64,
    eligibility: Eligibility,
) -> PoolId {
    let from = d.now_ms;
    let reply = d
        .submit(Command::CreatePool {
            name: "ETC 50".into(),
            face_value_fen,
            capacity,
            eligibility,
            valid_from_ms: from,
            valid_until_ms: from + 30 * DAY_MS,
        })
        .unwrap();
    let Reply::PoolCreated { pool } = reply else {
        panic!("{reply:?}")
    };
    pool
}

pub fn settled(outcome: Outcome) -> (u64, Option<PoolId>, bool) {
    match outcome {
        Ok(Reply::PaymentSettled {
            debited_fen,
            voucher,
            reward_granted,
            ..
        }) => (debited_fen, voucher, reward_granted),
        other => panic!("not settled: {other:?}"),
    }
}
