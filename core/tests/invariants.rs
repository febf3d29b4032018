//! The invariant checker can fail: each broken invariant, planted straight into the store of
//! a healthy ledger, is reported by `check_invariants`. (Every other test, the simulator and
//! the chaos harness's model trust it to speak up.) Also the read API the node's intake and
//! the tests rely on.

mod common;

use common::{claim, deposit, driver, payer_and_shop, pool, settled};
use ledger_core::config::YUAN;
use ledger_core::intake;
use ledger_core::state::{Key, OtpIssues, Value};
use ledger_core::types::{AccountId, Eligibility, MerchantKind, Payee, PrizeId};
use ledger_core::{Command, Reply, Store};
use ledger_testkit::driver::Driver;

/// Plants `writes` and returns what the checker says.
fn broken(d: &mut Driver, writes: Vec<(Key, Option<Value>)>) -> String {
    d.ledger.check_invariants().expect("healthy before");
    d.ledger.store_mut().write(writes);
    match d.ledger.check_invariants() {
        Ok(()) => panic!("the checker found nothing"),
        Err(e) => e.to_string(),
    }
}

fn account(d: &Driver, id: AccountId) -> Value {
    d.ledger.store().get(&Key::Account(id)).unwrap()
}

fn with_balance(value: Value, balance_fen: i64) -> Value {
    let Value::Account(mut a) = value else {
        panic!("not an account")
    };
    a.balance_fen = balance_fen;
    Value::Account(a)
}

#[test]
fn money_made_from_nothing_is_reported() {
    let mut d = driver();
    let card = d.funded_card(1, 10 * YUAN);
    let richer = with_balance(account(&d, card.account), 11 * YUAN as i64);
    let found = broken(&mut d, vec![(Key::Account(card.account), Some(richer))]);
    assert!(found.contains("balances sum to 100"), "{found}");
}

#[test]
fn a_negative_customer_balance_is_reported_even_when_the_sum_holds() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let clearing = with_balance(account(&d, AccountId::CLEARING), 5);
    let negative = with_balance(account(&d, card.account), -5);
    let found = broken(
        &mut d,
        vec![
            (Key::Account(card.account), Some(negative)),
            (Key::Account(AccountId::CLEARING), Some(clearing)),
        ],
    );
    assert!(found.contains("is negative"), "{found}");
    assert!(!found.contains("balances sum"), "{found}");
}

#[test]
fn a_voucher_its_pool_did_not_grant_is_reported() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let other = d.funded_card(2, 0);
    let p = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(claim(p, card.account)).unwrap();
    let voucher = d
        .ledger
        .store()
        .get(&Key::Voucher(card.account, p))
        .unwrap();
    let found = broken(
        &mut d,
        vec![(Key::Voucher(other.account, p), Some(voucher))],
    );
    assert!(found.contains(&format!("pool {p}")), "{found}");
}

#[test]
fn a_phone_issued_more_codes_than_the_throttle_allows_is_reported() {
    let mut d = driver();
    let limit = d.ledger.config().otp_challenges_per_phone as u64;
    let issues = OtpIssues {
        issued_ms: (0..=limit).collect(),
    };
    let found = broken(
        &mut d,
        vec![(
            Key::OtpIssues(13_800_000_000),
            Some(Value::OtpIssues(issues)),
        )],
    );
    assert!(found.contains("OTP issue times"), "{found}");
}

#[test]
fn a_prize_redeemed_past_its_stock_is_reported() {
    let mut d = driver();
    let Ok(Reply::PrizeCreated { prize }) = d.submit(Command::CreatePrize {
        name: "ticket".into(),
        price_points: 1,
        stock: 1,
    }) else {
        panic!("no prize")
    };
    assert_eq!(prize, PrizeId(1));
    let mut p = d.ledger.prize(prize).unwrap();
    p.redeemed = 2;
    let found = broken(
        &mut d,
        vec![(Key::Prize(prize), Some(Value::Prize(Box::new(p))))],
    );
    assert!(found.contains("prize 1: 2 redeemed of 1"), "{found}");
}

#[test]
fn refunds_beyond_the_bill_or_the_payers_share_are_reported() {
    // Each of the three ways a refund record can be wrong, alone: more than the bill, more
    // to the payer than it paid, more to the payer than was refunded.
    for (total, to_payer) in [(11 * YUAN, 0), (8 * YUAN, 6 * YUAN), (0, YUAN)] {
        let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
        let Ok(Reply::PaymentSettled { payment, .. }) =
            d.pay(&payer, Payee::Merchant(m), 10 * YUAN, "o")
        else {
            panic!("not settled")
        };
        let mut p = d.ledger.stored_payment(payment).unwrap();
        if to_payer > 5 * YUAN {
            // Make the payer's share 5 yuan: a voucher paid the other half.
            let ledger_core::state::PaymentState::Settled { debited_fen, .. } = &mut p.state else {
                panic!("not settled")
            };
            *debited_fen = 5 * YUAN;
        }
        p.refunds.total_fen = total;
        p.refunds.to_payer_fen = to_payer;
        let found = broken(
            &mut d,
            vec![(Key::Payment(payment), Some(Value::Payment(Box::new(p))))],
        );
        assert!(
            found.contains(&format!("payment {payment}: refunds")),
            "{found}"
        );
    }
}

#[test]
fn an_account_whose_journal_does_not_end_at_its_balance_is_reported() {
    let mut d = driver();
    let card = d.funded_card(1, 10 * YUAN);
    d.submit(deposit(card.account, YUAN)).unwrap();
    // Move a fen between two customers without a journal row: the sum holds.
    let other = d.funded_card(2, 10 * YUAN);
    let less = with_balance(account(&d, card.account), 11 * YUAN as i64 - 1);
    let more = with_balance(account(&d, other.account), 10 * YUAN as i64 + 1);
    let found = broken(
        &mut d,
        vec![
            (Key::Account(card.account), Some(less)),
            (Key::Account(other.account), Some(more)),
        ],
    );
    assert!(found.contains("its journal ends at"), "{found}");
}

#[test]
fn the_state_hash_tells_two_states_apart_and_records_are_readable() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let before = d.ledger.state_hash();
    settled(d.pay(&payer, Payee::Merchant(m), YUAN, "o"));
    assert_ne!(d.ledger.state_hash(), before);
    // What the node's intake reads to find a payer by phone and last six card digits.
    let lookup = intake::lookup_digest(&d.keys, &payer.phone, &payer.last_six()).expect("a lookup");
    assert_eq!(d.ledger.credential_by_lookup(lookup), Some(payer.account));
    // The last request's record and its client's session.
    let key = d.fresh_key();
    d.submit_with_key(key, deposit(payer.account, 1)).unwrap();
    let record = d.ledger.idempotency_record(key).expect("recorded");
    assert!(record.outcome.is_ok());
    assert!(d.ledger.session(key.client_id).is_some());
    // A promotion as created.
    let now = d.now_ms;
    d.submit(Command::CreatePromotion {
        name: "rail".into(),
        partners: vec![m],
        valid_from_ms: now,
        valid_until_ms: now + 1,
        points_per_yuan: 2,
    })
    .unwrap();
    let promotion = d
        .ledger
        .promotion(ledger_core::types::PromotionId(1))
        .expect("created");
    assert_eq!(
        (promotion.name.as_str(), promotion.points_per_yuan),
        ("rail", 2)
    );
}

#[test]
fn a_voucher_consumed_by_a_payment_that_did_not_use_it_is_reported() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Pos);
    let p = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(claim(p, payer.account)).unwrap();
    let other = d.funded_card(2, 0);
    d.submit(claim(p, other.account)).unwrap();
    let Ok(Reply::PaymentSettled { payment, .. }) =
        d.pay(&payer, Payee::Merchant(m), 100 * YUAN, "o")
    else {
        panic!("not settled")
    };
    // The other card's voucher claims to have paid the payer's payment.
    let Some(Value::Voucher(mut v)) = d.ledger.store().get(&Key::Voucher(other.account, p)) else {
        panic!("no voucher")
    };
    v.consumed_by = Some(payment);
    let found = broken(
        &mut d,
        vec![(Key::Voucher(other.account, p), Some(Value::Voucher(v)))],
    );
    assert!(
        found.contains(&format!("consumed by payment {payment}")),
        "{found}"
    );
}

#[test]
fn client_sessions_that_disagree_with_their_records_or_queue_are_reported() {
    let session_of = |d: &Driver| {
        let client = d.client_id;
        (client, d.ledger.session(client).unwrap())
    };
    // The session counter.
    let mut d = driver();
    d.funded_card(1, 0);
    let mut meta = d.ledger.meta();
    meta.client_sessions += 1;
    let found = broken(&mut d, vec![(Key::Meta, Some(Value::Meta(meta)))]);
    assert!(
        found.contains("sessions 1 (1 of clients, counter 2), idle queue 1"),
        "{found}"
    );
    // A session missing from the idle queue.
    let mut d = driver();
    d.funded_card(1, 0);
    let (client, s) = session_of(&d);
    let found = broken(
        &mut d,
        vec![(Key::SessionIdle(s.idle_until_ms, client), None)],
    );
    assert!(found.contains("idle queue"), "{found}");
    // A second place in the idle queue for the same session.
    let mut d = driver();
    d.funded_card(1, 0);
    let (client, s) = session_of(&d);
    let found = broken(
        &mut d,
        vec![(
            Key::SessionIdle(s.idle_until_ms + 1, client),
            Some(Value::SessionIdle),
        )],
    );
    assert!(
        found.contains("sessions 1 (1 of clients, counter 1), idle queue 2"),
        "{found}"
    );
    // A session counting other records than it has.
    let mut d = driver();
    d.funded_card(1, 0);
    let (client, mut s) = session_of(&d);
    s.records += 1;
    let found = broken(
        &mut d,
        vec![(Key::Session(client), Some(Value::Session(s)))],
    );
    assert!(found.contains(&format!("client {client}:")), "{found}");
    // A record below its session's floor.
    let mut d = driver();
    d.funded_card(1, 0);
    let (client, mut s) = session_of(&d);
    s.floor = u64::MAX;
    let found = broken(
        &mut d,
        vec![(Key::Session(client), Some(Value::Session(s)))],
    );
    assert!(found.contains(&format!("client {client}:")), "{found}");
    // Records without a session.
    let mut d = driver();
    d.funded_card(1, 0);
    let (client, s) = session_of(&d);
    let mut meta = d.ledger.meta();
    meta.client_sessions -= 1;
    let found = broken(
        &mut d,
        vec![
            (Key::Session(client), None),
            (Key::SessionIdle(s.idle_until_ms, client), None),
            (Key::Meta, Some(Value::Meta(meta))),
        ],
    );
    assert!(found.contains("records without a session"), "{found}");
}

#[test]
fn a_principal_counting_other_keyed_sessions_than_it_holds_is_reported() {
    let mut d = driver();
    let a = d.funded_card(1, 0);
    d.owner = ledger_core::SessionOwner::Keyed { principal: 5 };
    d.client_id = 100;
    d.submit(ledger_core::Command::Deposit {
        account: a.account,
        amount_fen: 1,
    })
    .unwrap();
    let found = broken(
        &mut d,
        vec![(Key::KeyedSessions(5), Some(Value::KeyedSessions(2)))],
    );
    assert!(found.contains("keyed sessions per principal"), "{found}");
}

#[test]
fn a_pending_payment_missing_from_the_expiry_queue_is_reported() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let (payment, challenge) = common::pending(&mut d, &payer, m, YUAN, "o");
    let expires_ms = d.ledger.challenge(challenge).unwrap().expires_ms;
    let found = broken(
        &mut d,
        vec![(Key::PendingPayment(expires_ms, payment), None)],
    );
    assert!(found.contains("pending payments"), "{found}");
}
