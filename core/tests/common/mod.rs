//! Helpers shared by the rule tests (one file per section of DOMAIN.md). Each test file
//! uses only some of them.

#![allow(dead_code)]

use ledger_core::command::Command;
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::intake::{self, Secret};
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::time::DAY_MS;
use ledger_core::types::{
    AccountId, AccountStatus, CampaignRules, ChallengeId, Digest32, Eligibility, MerchantId,
    MerchantKind, Payee, PaymentId, PoolId,
};
use ledger_core::Outcome;
use ledger_testkit::driver::{Card, Driver};

pub fn driver() -> Driver {
    Driver::new(LedgerConfig::default())
}

/// A ledger under the default configuration as `change` alters it.
pub fn driver_with(change: impl FnOnce(&mut LedgerConfig)) -> Driver {
    let mut config = LedgerConfig::default();
    change(&mut config);
    Driver::new(config)
}

/// A ledger whose campaign (`Driver::CAMPAIGN`) has the article's rules as `change` alters
/// them.
pub fn driver_with_rules(change: impl FnOnce(&mut CampaignRules)) -> Driver {
    let mut rules = CampaignRules::article();
    change(&mut rules);
    Driver::with_campaign(
        LedgerConfig::default(),
        ledger_core::config::ARTICLE_CAMPAIGN_ENDS_MS,
        rules,
    )
}

/// A new ledger and its first card (card 1), holding `balance_fen`.
pub fn with_card(balance_fen: u64) -> (Driver, Card) {
    let mut d = driver();
    let card = d.funded_card(1, balance_fen);
    (d, card)
}

/// Runs a command that must be refused with `expected`, and checks it changed nothing.
pub fn refused(d: &mut Driver, command: Command, expected: LedgerError) {
    assert_eq!(unchanged(d, |d| d.submit(command)), Err(expected));
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

/// A settlement's debit, voucher, and whether any campaign rewarded it.
pub fn settled(outcome: Outcome) -> (u64, Option<PoolId>, bool) {
    match outcome {
        Ok(Reply::PaymentSettled {
            debited_fen,
            voucher,
            rewards,
            ..
        }) => (debited_fen, voucher, !rewards.is_empty()),
        other => panic!("not settled: {other:?}"),
    }
}

/// Runs `step` and checks it left the state hash as it was; returns what `step` returned.
pub fn unchanged<T>(d: &mut Driver, step: impl FnOnce(&mut Driver) -> T) -> T {
    let before = d.ledger.state_hash();
    let result = step(d);
    assert_eq!(d.ledger.state_hash(), before, "the state changed");
    result
}

/// Confirms `payment` with `code`, which must be refused with `expected` and change nothing.
pub fn confirm_refused(d: &mut Driver, payment: PaymentId, code: &Secret, expected: LedgerError) {
    let command = d.confirm_command(payment, code).unwrap();
    refused(d, command, expected);
}

/// An enrolled customer (card 1) holding `balance_fen`, and a merchant of `kind` (card 9).
pub fn payer_and_merchant(
    d: &mut Driver,
    balance_fen: u64,
    kind: MerchantKind,
) -> (Card, MerchantId) {
    let payer = enrolled(d, 1, balance_fen);
    let (m, _) = merchant(d, 9, kind);
    (payer, m)
}

/// A new ledger with an enrolled customer (card 1) holding 1,000 yuan and a merchant of
/// `kind` (card 9).
pub fn payer_and_shop(kind: MerchantKind) -> (Driver, Card, MerchantId) {
    let mut d = driver();
    let (payer, m) = payer_and_merchant(&mut d, 1_000 * YUAN, kind);
    (d, payer, m)
}

/// Payment step 1 to merchant `m`: the pending payment and its challenge.
pub fn pending(
    d: &mut Driver,
    payer: &Card,
    m: MerchantId,
    amount_fen: u64,
    order_id: &str,
) -> (PaymentId, ChallengeId) {
    d.begin_payment(payer, Payee::Merchant(m), amount_fen, order_id)
        .unwrap()
}

/// A well-formed code that is not the one the SMS for `challenge` carries.
pub fn wrong_code(d: &Driver, challenge: ChallengeId) -> Secret {
    Secret::new(if d.code_for(challenge) == Secret::new("000000") {
        "111111"
    } else {
        "000000"
    })
}

/// The keyed digest of the card's number, as enrolment step 1 carries it.
pub fn pan_digest(d: &Driver, card: &Card) -> Digest32 {
    intake::card_digest(&d.keys, &Secret::new(&card.pan)).unwrap()
}

/// Enrolment step 2 with a wrong card password (999999).
pub fn wrong_password_choice(d: &Driver, card: &Card) -> Command {
    let stored = d.ledger.holder(card.account).unwrap().password;
    let wrong = intake::password_proof(&d.keys, &Secret::new("999999"), &stored).unwrap();
    Command::EpayChooseAlias {
        account: card.account,
        password_proof: wrong,
        alias: "x".into(),
    }
}

pub fn deposit(account: AccountId, amount_fen: u64) -> Command {
    Command::Deposit {
        account,
        amount_fen,
    }
}

pub fn withdraw(account: AccountId, amount_fen: u64) -> Command {
    Command::Withdraw {
        account,
        amount_fen,
    }
}

pub fn transfer(source: AccountId, target: AccountId, amount_fen: u64) -> Command {
    Command::Transfer {
        source,
        target,
        amount_fen,
    }
}

pub fn set_status(account: AccountId, status: AccountStatus) -> Command {
    Command::SetAccountStatus { account, status }
}

pub fn claim(pool: PoolId, account: AccountId) -> Command {
    Command::ClaimVoucher { pool, account }
}
