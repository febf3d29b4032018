//! The rules of DOMAIN.md section 2, e-Pay credential: the four-step enrolment and the
//! limits. One test per rule, named after the rule. Every refusal is also checked to leave
//! the state hash unchanged.

mod common;

use common::{
    claim, deposit, driver, enrolled, merchant, pan_digest, payer_and_merchant, pool, refused,
    settled, unchanged, with_card, wrong_password_choice,
};
use ledger_core::command::Command;
use ledger_core::config::YUAN;
use ledger_core::intake::Secret;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::time::{cst_month, month_start_ms, DAY_MS};
use ledger_core::types::{Eligibility, MerchantKind, Payee};

#[test]
fn enrolment_takes_four_steps_in_order() {
    let (mut d, card) = with_card(0);
    // Step 4 before step 1.
    assert_eq!(
        d.activate(&card, &Secret::new("000000")),
        Err(LedgerError::NotEnrolling {
            account: card.account
        })
    );
    assert_eq!(
        d.enrol(&card, "小王"),
        Ok(Reply::EpayActivated {
            account: card.account
        })
    );
    let credential = d.ledger.credential(card.account).unwrap();
    assert_eq!(credential.alias, "小王");
    assert_eq!(credential.per_payment_fen, 1_000 * YUAN);
    assert_eq!(credential.per_day_fen, 3_000 * YUAN);
    let pan_digest = pan_digest(&d, &card);
    refused(
        &mut d,
        Command::EpayBegin {
            pan_digest,
            phone: card.phone.clone(),
        },
        LedgerError::AlreadyEnrolled {
            account: card.account,
        },
    );
}

#[test]
fn enrolment_needs_the_reserved_phone() {
    let (mut d, card) = with_card(0);
    let pan_digest = pan_digest(&d, &card);
    refused(
        &mut d,
        Command::EpayBegin {
            pan_digest,
            phone: "13999999999".into(),
        },
        LedgerError::PhoneMismatch,
    );
}

#[test]
fn three_wrong_card_passwords_cancel_the_enrolment() {
    let (mut d, card) = with_card(0);
    d.submit(Command::EpayBegin {
        pan_digest: pan_digest(&d, &card),
        phone: card.phone.clone(),
    })
    .unwrap();
    let choose = wrong_password_choice(&d, &card);
    for failures_left in [2, 1] {
        assert_eq!(
            d.submit(choose.clone()),
            Err(LedgerError::WrongCardPassword { failures_left })
        );
    }
    assert_eq!(d.submit(choose), Err(LedgerError::EnrolmentCancelled));
    assert!(d.ledger.enrolment(card.account).is_none());
}

#[test]
fn limits_can_be_lowered_never_raised_above_the_caps() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 0);
    refused(
        &mut d,
        Command::SetEpayLimits {
            account: card.account,
            per_payment_fen: 1_001 * YUAN,
            per_day_fen: 3_000 * YUAN,
        },
        LedgerError::LimitAboveCap {
            requested_fen: 1_001 * YUAN,
            cap_fen: 1_000 * YUAN,
        },
    );
    refused(
        &mut d,
        Command::SetEpayLimits {
            account: card.account,
            per_payment_fen: 500 * YUAN,
            per_day_fen: 400 * YUAN,
        },
        LedgerError::LimitsInconsistent,
    );
    d.submit(Command::SetEpayLimits {
        account: card.account,
        per_payment_fen: 200 * YUAN,
        per_day_fen: 300 * YUAN,
    })
    .unwrap();
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    d.submit(deposit(card.account, 1_000 * YUAN)).unwrap();
    let over_limit = unchanged(&mut d, |d| {
        d.begin_payment(&card, Payee::Merchant(m), 201 * YUAN, "o1")
    });
    assert_eq!(
        over_limit,
        Err(LedgerError::OverPaymentLimit {
            debit_fen: 201 * YUAN,
            limit_fen: 200 * YUAN
        })
    );
}

#[test]
fn daily_limit_counts_the_cst_day_and_resets_at_beijing_midnight() {
    let mut d = driver();
    // Put the clock at 23:00 CST.
    let day_start = month_start_ms(cst_month(d.now_ms)) + 5 * DAY_MS;
    d.now_ms = day_start + 23 * 3_600_000;
    let (card, m) = payer_and_merchant(&mut d, 10_000 * YUAN, MerchantKind::Online);
    for i in 0..3 {
        settled(d.pay(&card, Payee::Merchant(m), 1_000 * YUAN, &format!("o{i}")));
    }
    assert_eq!(
        d.pay(&card, Payee::Merchant(m), 1, "o4"),
        Err(LedgerError::OverDailyLimit {
            debit_fen: 1,
            spent_today_fen: 3_000 * YUAN,
            limit_fen: 3_000 * YUAN
        })
    );
    d.now_ms = day_start + DAY_MS; // 00:00 CST the next day
    settled(d.pay(&card, Payee::Merchant(m), 1_000 * YUAN, "o5"));
}

#[test]
fn daily_limit_counts_the_debit_after_the_voucher() {
    let mut d = driver();
    let (card, m) = payer_and_merchant(&mut d, 10_000 * YUAN, MerchantKind::Online);
    let p = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(claim(p, card.account)).unwrap();
    // 1,040 yuan bill, 50 yuan voucher: 990 debited, under the 1,000 per-payment cap.
    let (debited, voucher, _) = settled(d.pay(&card, Payee::Merchant(m), 1_040 * YUAN, "big"));
    assert_eq!((debited, voucher), (990 * YUAN, Some(p)));
    assert_eq!(
        d.ledger.credential(card.account).unwrap().spent_today_fen,
        990 * YUAN
    );
}

#[test]
fn an_alias_longer_than_sixteen_characters_is_refused_in_characters() {
    use ledger_core::config::MAX_ALIAS_CHARS;
    use ledger_core::outcome::TextField;
    use ledger_core::validate;
    let too_long = LedgerError::TextTooLong {
        field: TextField::Alias,
        max: MAX_ALIAS_CHARS,
    };
    assert_eq!(validate::alias(&"卡".repeat(16)), Ok(()));
    // 17 characters (51 bytes), and 65 bytes: both said in characters, both 16.
    for alias in ["卡".repeat(17), "a".repeat(65)] {
        assert_eq!(validate::alias(&alias), Err(too_long.clone()));
        let command = Command::EpayChooseAlias {
            account: ledger_core::types::AccountId(16),
            password_proof: ledger_core::types::Digest32([0; 32]),
            alias,
        };
        if let Err(e) = validate::field_limits(&command) {
            assert_eq!(e, too_long);
        }
    }
    assert_eq!(
        too_long.to_string(),
        "Alias is too long: at most 16 characters"
    );
    let (mut d, card) = with_card(0);
    d.submit(Command::EpayBegin {
        pan_digest: pan_digest(&d, &card),
        phone: card.phone.clone(),
    })
    .unwrap();
    let stored = d.ledger.holder(card.account).unwrap().password;
    let password_proof =
        ledger_core::intake::password_proof(&d.keys, &Secret::new(&card.password), &stored)
            .unwrap();
    refused(
        &mut d,
        Command::EpayChooseAlias {
            account: card.account,
            password_proof,
            alias: "卡".repeat(17),
        },
        too_long,
    );
}

#[test]
fn an_enrolment_step_out_of_order_is_refused() {
    use ledger_core::outcome::EnrolmentStep;
    let (mut d, card) = with_card(0);
    d.submit(Command::EpayBegin {
        pan_digest: pan_digest(&d, &card),
        phone: card.phone.clone(),
    })
    .unwrap();
    // Step 3 (the code) before step 2 (password and alias).
    assert_eq!(
        unchanged(&mut d, |d| d.issue_enrolment_code(&card)),
        Err(LedgerError::EnrolmentStepOutOfOrder {
            expected: EnrolmentStep::AliasChosen,
            actual: EnrolmentStep::Started,
        })
    );
}

#[test]
fn limits_equal_to_the_caps_are_allowed_and_may_equal_each_other() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 0);
    for (per_payment_fen, per_day_fen) in [(1_000 * YUAN, 3_000 * YUAN), (500 * YUAN, 500 * YUAN)] {
        d.submit(Command::SetEpayLimits {
            account: card.account,
            per_payment_fen,
            per_day_fen,
        })
        .unwrap();
        let credential = d.ledger.credential(card.account).unwrap();
        assert_eq!(
            (credential.per_payment_fen, credential.per_day_fen),
            (per_payment_fen, per_day_fen)
        );
    }
}
