//! The rules of DOMAIN.md section 3, OTP challenges. One test per rule, named after the
//! rule. Every refusal is also checked to leave the state hash unchanged.

mod common;

use common::{balance, confirm_refused, payer_and_shop, pending, settled, unchanged, wrong_code};
use ledger_core::config::YUAN;
use ledger_core::intake::Secret;
use ledger_core::outcome::LedgerError;
use ledger_core::state::{ChallengeState, PaymentState};
use ledger_core::types::{MerchantKind, Payee};

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
    confirm_refused(&mut d, p, &code, expired);
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
