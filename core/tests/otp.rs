//! The rules of DOMAIN.md section 3, OTP challenges. One test per rule, named after the
//! rule. Every refusal is also checked to leave the state hash unchanged.

mod common;

use common::{
    balance, confirm_refused, merchant, pan_digest, payer_and_shop, pending, refused, settled,
    unchanged, wrong_code,
};
use ledger_core::command::Command;
use ledger_core::config::YUAN;
use ledger_core::intake::{self, Secret};
use ledger_core::ledger::Ledger;
use ledger_core::outcome::LedgerError;
use ledger_core::state::{ChallengeState, MemStore, PaymentState};
use ledger_core::types::{ChallengeId, MerchantId, MerchantKind, Payee, PaymentId};
use ledger_testkit::driver::{Card, Driver};

#[test]
fn a_code_confirms_only_the_transaction_it_was_issued_for() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p1, c1) = pending(&mut d, &card, m, 10 * YUAN, "order-1");
    let (p2, c2) = pending(&mut d, &card, m, 20 * YUAN, "order-2");
    let code1 = d.code_for(c1);
    assert_ne!(code1, d.code_for(c2));
    // Payment 1's code typed for payment 2 is a wrong code there.
    assert_eq!(
        d.confirm(p2, &code1),
        Err(LedgerError::WrongOtp { attempts_left: 2 })
    );
    settled(d.confirm(p1, &code1));
}

#[test]
fn a_code_expires_after_five_minutes() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &card, m, 10 * YUAN, "o");
    let code = d.code_for(c);
    let issued = d.ledger.challenge(c).unwrap().issued_ms;
    d.advance(5 * 60_000);
    let expired = LedgerError::OtpExpired {
        issued_at_ms: issued,
        expired_at_ms: issued + 5 * 60_000,
    };
    let command = d.confirm_command(p, &code).unwrap();
    assert_eq!(d.submit(command), Err(expired));
    // The late confirmation records what ledger time already said: the payment expired.
    assert_eq!(
        d.ledger.payment(p).unwrap().state,
        PaymentState::Expired {
            expired_ms: issued + 5 * 60_000
        }
    );
    d.ledger.check_invariants().unwrap();
}

#[test]
fn three_wrong_codes_lock_the_challenge() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &card, m, 10 * YUAN, "o");
    let right = d.code_for(c);
    let wrong = wrong_code(&d, c);
    for attempts_left in [2, 1] {
        assert_eq!(
            d.confirm(p, &wrong),
            Err(LedgerError::WrongOtp { attempts_left })
        );
    }
    assert_eq!(
        d.confirm(p, &wrong),
        Err(LedgerError::OtpLocked { challenge: c })
    );
    // Even the right code no longer settles it: the payment failed with its code.
    assert_eq!(
        d.confirm(p, &right),
        Err(LedgerError::PaymentNotPending { payment: p })
    );
    assert_eq!(d.ledger.challenge(c).unwrap().state, ChallengeState::Locked);
    assert_eq!(balance(&d, card.account), 1_000 * YUAN as i64);
}

#[test]
fn a_code_is_single_use() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &card, m, 10 * YUAN, "o");
    let code = d.code_for(c);
    settled(d.confirm(p, &code));
    confirm_refused(
        &mut d,
        p,
        &code,
        LedgerError::PaymentNotPending { payment: p },
    );
    assert_eq!(d.ledger.challenge(c).unwrap().state, ChallengeState::Used);
}

#[test]
fn a_new_challenge_for_the_same_order_voids_the_earlier_one() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p1, c1) = pending(&mut d, &card, m, 10 * YUAN, "same");
    let old_code = d.code_for(c1);
    let (p2, c2) = pending(&mut d, &card, m, 10 * YUAN, "same");
    assert_eq!(
        d.ledger.challenge(c1).unwrap().state,
        ChallengeState::Voided
    );
    assert_eq!(
        d.ledger.payment(p1).unwrap().state,
        PaymentState::Superseded
    );
    let not_pending = LedgerError::PaymentNotPending { payment: p1 };
    confirm_refused(&mut d, p1, &old_code, not_pending);
    let new_code = d.code_for(c2);
    settled(d.confirm(p2, &new_code));
    assert_eq!(
        d.begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "same"),
        Err(LedgerError::OrderAlreadyPaid { payment: p2 })
    );
}

#[test]
fn a_retried_wrong_code_does_not_use_up_another_attempt() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &card, m, 10 * YUAN, "o");
    let wrong = wrong_code(&d, c);
    let command = d.confirm_command(p, &wrong).unwrap();
    let key = d.fresh_key();
    assert_eq!(
        d.submit_with_key(key, command.clone()),
        Err(LedgerError::WrongOtp { attempts_left: 2 })
    );
    assert_eq!(
        unchanged(&mut d, |d| d.submit_with_key(key, command)),
        Err(LedgerError::WrongOtp { attempts_left: 2 })
    );
    assert_eq!(d.ledger.challenge(c).unwrap().wrong_attempts, 1);
}

#[test]
fn malformed_code_is_refused_before_it_reaches_the_ledger() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p, _) = pending(&mut d, &card, m, 10 * YUAN, "o");
    assert_eq!(
        d.confirm_command(p, &Secret::new("12a456")),
        Err(LedgerError::InvalidOtpFormat)
    );
}

// ---- the throttle per reserved phone (SMS pumping, toll fraud) ----

const MINUTE_MS: u64 = 60_000;
const WINDOW_MS: u64 = 10 * MINUTE_MS;

/// The refusal of a sixth code to `card`'s phone, `retry_after_ms` before a slot frees.
fn too_many(card: &Card, retry_after_ms: u64) -> LedgerError {
    LedgerError::TooManyChallenges {
        phone_last4: card.phone[card.phone.len() - 4..].to_owned(),
        limit: 5,
        window_ms: WINDOW_MS,
        retry_after_ms,
    }
}

/// When `card`'s enrolment code was issued: the first challenge counted against its phone.
fn enrolment_code_issued_ms(d: &Driver, card: &Card) -> u64 {
    let first = ChallengeId(1);
    let challenge = d.ledger.challenge(first).unwrap();
    assert_eq!(challenge.account, card.account);
    challenge.issued_ms
}

/// Four payments to `m` (orders 1 to 4), a minute apart, each issuing a code to the payer's
/// phone: with the enrolment code, five codes to that phone, the last four minutes after the
/// first. Returns the pending payments and their challenges.
fn four_payments_a_minute_apart(
    d: &mut Driver,
    card: &Card,
    m: MerchantId,
) -> Vec<(PaymentId, ChallengeId)> {
    (1..=4)
        .map(|n| {
            d.advance(MINUTE_MS);
            pending(d, card, m, 10 * YUAN, &format!("order-{n}"))
        })
        .collect()
}

/// Enrolment steps 1 and 2 for `card`, without sending a code.
fn enrolment_up_to_the_code(d: &mut Driver, card: &Card) {
    let pan_digest = pan_digest(d, card);
    d.submit(Command::EpayBegin {
        pan_digest,
        phone: card.phone.clone(),
    })
    .unwrap();
    let stored = d.ledger.holder(card.account).unwrap().password;
    let password_proof =
        intake::password_proof(&d.keys, &Secret::new(&card.password), &stored).unwrap();
    d.submit(Command::EpayChooseAlias {
        account: card.account,
        password_proof,
        alias: "小王的卡".into(),
    })
    .unwrap();
}

#[test]
fn a_sixth_challenge_to_one_phone_within_ten_minutes_is_refused_with_the_time_to_wait() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let first_ms = enrolment_code_issued_ms(&d, &card);
    four_payments_a_minute_apart(&mut d, &card, m);
    d.advance(MINUTE_MS);
    assert_eq!(d.now_ms, first_ms + 5 * MINUTE_MS);
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 10 * YUAN, "order-6")
        .unwrap();
    let refusal = too_many(&card, 5 * MINUTE_MS);
    refused(&mut d, command, refusal.clone());
    // The wait is minutes: the client library must not spin on it.
    assert!(!refusal.is_retryable());
}

#[test]
fn challenges_to_a_phone_are_allowed_again_once_the_oldest_leaves_the_window() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let first_ms = enrolment_code_issued_ms(&d, &card);
    four_payments_a_minute_apart(&mut d, &card, m);
    d.now_ms = first_ms + WINDOW_MS - 1;
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 10 * YUAN, "order-6")
        .unwrap();
    refused(&mut d, command, too_many(&card, 1));
    d.advance(1);
    pending(&mut d, &card, m, 10 * YUAN, "order-6");
    // The window slides: the next slot frees when the second code (a minute after the
    // first) leaves it.
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 10 * YUAN, "order-7")
        .unwrap();
    refused(&mut d, command, too_many(&card, MINUTE_MS));
}

#[test]
fn the_throttle_counts_enrolment_and_payment_challenges_together() {
    let mut d = common::driver();
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let card = d.funded_card(1, 1_000 * YUAN);
    enrolment_up_to_the_code(&mut d, &card);
    // Step 3 three times (the customer asks for the code again twice): three codes.
    let mut code = None;
    for _ in 0..3 {
        let challenge = d.issue_enrolment_code(&card).unwrap();
        code = Some(d.code_for(challenge));
        d.advance(MINUTE_MS);
    }
    d.activate(&card, &code.unwrap()).unwrap();
    // Two payment codes make five.
    pending(&mut d, &card, m, 10 * YUAN, "order-1");
    pending(&mut d, &card, m, 10 * YUAN, "order-2");
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 10 * YUAN, "order-3")
        .unwrap();
    refused(&mut d, command, too_many(&card, 7 * MINUTE_MS));
}

#[test]
fn a_throttled_enrolment_code_changes_nothing() {
    let mut d = common::driver();
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    // Two cards with one reserved phone: the allowance is the phone's, not the card's.
    let enrolled = common::enrolled(&mut d, 1, 1_000 * YUAN);
    let second = d.funded_card(100_000_001, 0);
    assert_eq!(enrolled.phone, second.phone);
    for n in 1..=4 {
        pending(&mut d, &enrolled, m, 10 * YUAN, &format!("order-{n}"));
    }
    enrolment_up_to_the_code(&mut d, &second);
    let before = d.ledger.enrolment(second.account);
    let error = unchanged(&mut d, |d| d.issue_enrolment_code(&second));
    assert_eq!(error, Err(too_many(&second, WINDOW_MS)));
    assert_eq!(d.ledger.enrolment(second.account), before);
}

#[test]
fn a_throttled_payment_changes_nothing() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (pending_payment, pending_code) = four_payments_a_minute_apart(&mut d, &card, m)[3];
    let outbox = d.ledger.outbox(100);
    let meta = d.ledger.meta();
    let credential = d.ledger.credential(card.account);
    // A new payment for an order still pending would supersede it: not when it is throttled.
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 10 * YUAN, "order-4")
        .unwrap();
    refused(&mut d, command, too_many(&card, 6 * MINUTE_MS));
    assert_eq!(d.ledger.outbox(100), outbox);
    assert_eq!(d.ledger.meta(), meta);
    assert_eq!(d.ledger.credential(card.account), credential);
    assert_eq!(
        d.ledger.payment(pending_payment).unwrap().state,
        PaymentState::Pending
    );
    assert_eq!(
        d.ledger.challenge(pending_code).unwrap().state,
        ChallengeState::Open
    );
    // The pending payment still settles with its code.
    let code = d.code_for(pending_code);
    settled(d.confirm(pending_payment, &code));
}

#[test]
fn other_phones_are_not_throttled() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    four_payments_a_minute_apart(&mut d, &card, m);
    let other = common::enrolled(&mut d, 2, 1_000 * YUAN);
    assert_ne!(other.phone, card.phone);
    let (p, c) = pending(&mut d, &other, m, 10 * YUAN, "order-1");
    let code = d.code_for(c);
    settled(d.confirm(p, &code));
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 10 * YUAN, "order-5")
        .unwrap();
    refused(&mut d, command, too_many(&card, 6 * MINUTE_MS));
}

#[test]
fn the_throttle_survives_a_snapshot_and_restore() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    four_payments_a_minute_apart(&mut d, &card, m);
    let restored = Ledger::restore(MemStore::new(), &d.ledger.snapshot()).unwrap();
    d.ledger = restored;
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 10 * YUAN, "order-9")
        .unwrap();
    refused(&mut d, command, too_many(&card, 6 * MINUTE_MS));
}
