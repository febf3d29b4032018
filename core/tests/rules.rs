//! One test per rule of DOMAIN.md, named after the rule. Every refusal is also checked to
//! leave the state hash unchanged.

use ledger_core::command::{CampaignFlags, Command};
use ledger_core::config::{LedgerConfig, MAX_AMOUNT_FEN, YUAN};
use ledger_core::driver::{test_pan, Card, Driver};
use ledger_core::intake::{self, OpenAccountRequest, Secret};
use ledger_core::ledger::transfer_fee_fen;
use ledger_core::outcome::{LedgerError, Reply, TextField};
use ledger_core::state::{ChallengeState, PaymentState};
use ledger_core::time::{cst_month, month_start_ms, DAY_MS};
use ledger_core::types::{
    AccountId, AccountStatus, Eligibility, FeeTier, MerchantId, MerchantKind, Payee, PoolId,
    VipTier,
};
use ledger_core::Outcome;

fn driver() -> Driver {
    Driver::new(LedgerConfig::default())
}

/// Runs a command that must be refused with `expected`, and checks it changed nothing.
fn refused(d: &mut Driver, command: Command, expected: LedgerError) {
    let before = d.ledger.state_hash();
    assert_eq!(d.submit(command), Err(expected));
    assert_eq!(d.ledger.state_hash(), before, "a refusal changed the state");
    d.ledger.check_invariants().unwrap();
}

fn balance(d: &Driver, account: AccountId) -> i64 {
    d.ledger.balance_fen(account).unwrap()
}

fn merchant(d: &mut Driver, n: u64, kind: MerchantKind) -> (MerchantId, Card) {
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

fn enrolled(d: &mut Driver, n: u64, balance_fen: u64) -> Card {
    let card = d.funded_card(n, balance_fen);
    d.enrol(&card, "小王的卡").unwrap();
    card
}

fn pool(d: &mut Driver, face_value_fen: u64, capacity: u64, eligibility: Eligibility) -> PoolId {
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

fn settled(outcome: Outcome) -> (u64, Option<PoolId>, bool) {
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

// ---------------------------------------------------------------- money and accounts

#[test]
fn deposit_moves_money_from_clearing_in_double_entry() {
    let mut d = driver();
    let card = d.funded_card(1, 1_000 * YUAN);
    assert_eq!(balance(&d, card.account), 100_000);
    assert_eq!(balance(&d, AccountId::CLEARING), -100_000);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn customer_balance_never_goes_below_zero() {
    let mut d = driver();
    let card = d.funded_card(1, 100);
    refused(
        &mut d,
        Command::Withdraw {
            account: card.account,
            amount_fen: 101,
        },
        LedgerError::InsufficientFunds {
            account: card.account,
            balance_fen: 100,
            needed_fen: 101,
        },
    );
}

#[test]
fn zero_and_oversized_amounts_are_refused() {
    let mut d = driver();
    let a = d.funded_card(1, 100);
    let b = d.funded_card(2, 0);
    let t = |amount_fen| Command::Transfer {
        source: a.account,
        target: b.account,
        amount_fen,
    };
    refused(&mut d, t(0), LedgerError::ZeroAmount);
    refused(
        &mut d,
        t(u64::MAX),
        LedgerError::AmountTooLarge {
            amount_fen: u64::MAX,
            max_fen: MAX_AMOUNT_FEN,
        },
    );
}

#[test]
fn balance_overflow_is_refused() {
    use ledger_core::state::{Key, Store, Value};
    // No sequence of bounded commands gets near i64::MAX in a test's lifetime, so plant a
    // nearly full account through the storage seam.
    let mut d = driver();
    let a = d.funded_card(1, 0);
    let b = d.funded_card(2, 100);
    let mut store = d.ledger.store().clone();
    let mut account = d.ledger.account(a.account).unwrap();
    account.balance_fen = i64::MAX - 10;
    store.write(vec![(
        Key::Account(a.account),
        Some(Value::Account(account)),
    )]);
    let mut ledger = ledger_core::Ledger::open(store).unwrap();
    let before = ledger.state_hash();
    let outcome = ledger.apply(
        &ledger_core::Context {
            index: 99,
            now_ms: d.now_ms,
        },
        &ledger_core::Envelope::new(
            d.fresh_key(),
            0,
            Command::Transfer {
                source: b.account,
                target: a.account,
                amount_fen: 11,
            },
        ),
    );
    assert_eq!(
        outcome,
        Err(LedgerError::BalanceOverflow { account: a.account })
    );
    assert_eq!(ledger.state_hash(), before);
}

#[test]
fn transfer_to_the_same_account_is_refused() {
    let mut d = driver();
    let a = d.funded_card(1, 100);
    refused(
        &mut d,
        Command::Transfer {
            source: a.account,
            target: a.account,
            amount_fen: 1,
        },
        LedgerError::SameAccount,
    );
}

#[test]
fn unknown_and_internal_accounts_are_typed_errors() {
    let mut d = driver();
    let a = d.funded_card(1, 100);
    refused(
        &mut d,
        Command::Transfer {
            source: a.account,
            target: AccountId(999),
            amount_fen: 1,
        },
        LedgerError::UnknownAccount {
            account: AccountId(999),
        },
    );
    refused(
        &mut d,
        Command::Transfer {
            source: a.account,
            target: AccountId::PROMOTIONS,
            amount_fen: 1,
        },
        LedgerError::InternalAccount {
            account: AccountId::PROMOTIONS,
        },
    );
}

#[test]
fn frozen_account_moves_no_money_until_unfrozen() {
    let mut d = driver();
    let a = d.funded_card(1, 100);
    d.submit(Command::SetAccountStatus {
        account: a.account,
        status: AccountStatus::Frozen,
    })
    .unwrap();
    refused(
        &mut d,
        Command::Withdraw {
            account: a.account,
            amount_fen: 1,
        },
        LedgerError::AccountNotActive {
            account: a.account,
            status: AccountStatus::Frozen,
        },
    );
    d.submit(Command::SetAccountStatus {
        account: a.account,
        status: AccountStatus::Active,
    })
    .unwrap();
    d.submit(Command::Withdraw {
        account: a.account,
        amount_fen: 1,
    })
    .unwrap();
}

#[test]
fn closing_needs_a_zero_balance_and_is_final() {
    let mut d = driver();
    let a = d.funded_card(1, 100);
    let close = Command::SetAccountStatus {
        account: a.account,
        status: AccountStatus::Closed,
    };
    refused(
        &mut d,
        close.clone(),
        LedgerError::AccountNotEmpty {
            account: a.account,
            balance_fen: 100,
        },
    );
    d.submit(Command::Withdraw {
        account: a.account,
        amount_fen: 100,
    })
    .unwrap();
    d.submit(close).unwrap();
    refused(
        &mut d,
        Command::SetAccountStatus {
            account: a.account,
            status: AccountStatus::Active,
        },
        LedgerError::AccountClosed { account: a.account },
    );
}

#[test]
fn a_card_number_opens_one_account_only() {
    let mut d = driver();
    d.open_card(1).unwrap();
    let before = d.ledger.state_hash();
    assert_eq!(d.open_card(1).unwrap_err(), LedgerError::DuplicateCard);
    assert_eq!(d.ledger.state_hash(), before);
}

#[test]
fn wrong_luhn_digit_and_malformed_phone_are_refused_before_anything_is_stored() {
    let d = driver();
    let mut pan = test_pan(5);
    let last = pan.pop().unwrap();
    pan.push(if last == '9' {
        '0'
    } else {
        char::from(last as u8 + 1)
    });
    let request = |pan: &str, phone: &str, password: &str| OpenAccountRequest {
        holder_name: "张三".into(),
        card_number: Secret::new(pan),
        card_password: Secret::new(password),
        phone: phone.into(),
        flags: CampaignFlags::default(),
    };
    let salt = [0; 16];
    assert_eq!(
        intake::open_account(&d.keys, &request(&pan, "13800138000", "123456"), salt),
        Err(LedgerError::CardNumberChecksum)
    );
    assert_eq!(
        intake::open_account(
            &d.keys,
            &request(&test_pan(5), "1380013800", "123456"),
            salt
        ),
        Err(LedgerError::InvalidMobilePhone)
    );
    assert_eq!(
        intake::open_account(
            &d.keys,
            &request(&test_pan(5), "13800138000", "12345"),
            salt
        ),
        Err(LedgerError::InvalidCardPasswordFormat)
    );
}

#[test]
fn a_ten_megabyte_name_is_refused_unchanged() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let huge = "商".repeat(10 * 1024 * 1024 / 3);
    refused(
        &mut d,
        Command::RegisterMerchant {
            kind: MerchantKind::Pos,
            name: huge,
            settlement_account: card.account,
            contact_phone: card.phone.clone(),
            terminals: 1,
        },
        LedgerError::TextTooLong {
            field: TextField::MerchantName,
            max: 64,
        },
    );
}

#[test]
fn secrets_never_appear_in_commands_or_debug_output() {
    let d = driver();
    let request = OpenAccountRequest {
        holder_name: "张三".into(),
        card_number: Secret::new(test_pan(77)),
        card_password: Secret::new("246810"),
        phone: "13800138000".into(),
        flags: CampaignFlags::default(),
    };
    assert!(!format!("{request:?}").contains(&test_pan(77)));
    assert!(!format!("{request:?}").contains("246810"));
    let command = intake::open_account(&d.keys, &request, [3; 16]).unwrap();
    let debug = format!("{command:?}");
    let bytes = bincode::serialize(&command).unwrap();
    for secret in [
        test_pan(77),
        "246810".to_owned(),
        test_pan(77)[10..].to_owned(),
    ] {
        assert!(!debug.contains(&secret), "{secret} in {debug}");
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} in bytes"
        );
    }
    let keys = format!("{:?}", d.keys);
    assert!(
        !keys.contains("card_key") && !keys.contains("otp_key"),
        "{keys}"
    );
}

// ---------------------------------------------------------------- e-Pay enrolment and limits

#[test]
fn enrolment_takes_four_steps_in_order() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
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
    let pan_digest = intake::card_digest(&d.keys, &Secret::new(&card.pan)).unwrap();
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
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let pan_digest = intake::card_digest(&d.keys, &Secret::new(&card.pan)).unwrap();
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
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let pan_digest = intake::card_digest(&d.keys, &Secret::new(&card.pan)).unwrap();
    d.submit(Command::EpayBegin {
        pan_digest,
        phone: card.phone.clone(),
    })
    .unwrap();
    let stored = d.ledger.holder(card.account).unwrap().password;
    let wrong = intake::password_proof(&d.keys, &Secret::new("999999"), &stored).unwrap();
    let choose = Command::EpayChooseAlias {
        account: card.account,
        password_proof: wrong,
        alias: "x".into(),
    };
    assert_eq!(
        d.submit(choose.clone()),
        Err(LedgerError::WrongCardPassword { failures_left: 2 })
    );
    assert_eq!(
        d.submit(choose.clone()),
        Err(LedgerError::WrongCardPassword { failures_left: 1 })
    );
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
    d.submit(Command::Deposit {
        account: card.account,
        amount_fen: 1_000 * YUAN,
    })
    .unwrap();
    let before = d.ledger.state_hash();
    assert_eq!(
        d.begin_payment(&card, Payee::Merchant(m), 201 * YUAN, "o1"),
        Err(LedgerError::OverPaymentLimit {
            debit_fen: 201 * YUAN,
            limit_fen: 200 * YUAN
        })
    );
    assert_eq!(d.ledger.state_hash(), before);
}

#[test]
fn daily_limit_counts_the_cst_day_and_resets_at_beijing_midnight() {
    let mut d = driver();
    // Put the clock at 23:00 CST.
    let day_start = month_start_ms(cst_month(d.now_ms)) + 5 * DAY_MS;
    d.now_ms = day_start + 23 * 3_600_000;
    let card = enrolled(&mut d, 1, 10_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
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
    let card = enrolled(&mut d, 1, 10_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let p = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(Command::ClaimVoucher {
        pool: p,
        account: card.account,
    })
    .unwrap();
    // 1,040 yuan bill, 50 yuan voucher: 990 debited, under the 1,000 per-payment cap.
    let (debited, voucher, _) = settled(d.pay(&card, Payee::Merchant(m), 1_040 * YUAN, "big"));
    assert_eq!((debited, voucher), (990 * YUAN, Some(p)));
    assert_eq!(
        d.ledger.credential(card.account).unwrap().spent_today_fen,
        990 * YUAN
    );
}

// ---------------------------------------------------------------- OTP challenges

#[test]
fn a_code_confirms_only_the_transaction_it_was_issued_for() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p1, c1) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "order-1")
        .unwrap();
    let (p2, c2) = d
        .begin_payment(&card, Payee::Merchant(m), 20 * YUAN, "order-2")
        .unwrap();
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
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p, c) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "o")
        .unwrap();
    let code = d.code_for(c);
    let issued = d.ledger.challenge(c).unwrap().issued_ms;
    d.advance(5 * 60_000);
    let command = d.confirm_command(p, &code).unwrap();
    refused(
        &mut d,
        command,
        LedgerError::OtpExpired {
            issued_at_ms: issued,
            expired_at_ms: issued + 5 * 60_000,
        },
    );
}

#[test]
fn three_wrong_codes_lock_the_challenge() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p, c) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "o")
        .unwrap();
    let right = d.code_for(c);
    let wrong = Secret::new(if right == Secret::new("000000") {
        "111111"
    } else {
        "000000"
    });
    assert_eq!(
        d.confirm(p, &wrong),
        Err(LedgerError::WrongOtp { attempts_left: 2 })
    );
    assert_eq!(
        d.confirm(p, &wrong),
        Err(LedgerError::WrongOtp { attempts_left: 1 })
    );
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
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p, c) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "o")
        .unwrap();
    let code = d.code_for(c);
    settled(d.confirm(p, &code));
    let command = d.confirm_command(p, &code).unwrap();
    refused(
        &mut d,
        command,
        LedgerError::PaymentNotPending { payment: p },
    );
    assert_eq!(d.ledger.challenge(c).unwrap().state, ChallengeState::Used);
}

#[test]
fn a_new_challenge_for_the_same_order_voids_the_earlier_one() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p1, c1) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "same")
        .unwrap();
    let old_code = d.code_for(c1);
    let (p2, c2) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "same")
        .unwrap();
    assert_eq!(
        d.ledger.challenge(c1).unwrap().state,
        ChallengeState::Voided
    );
    assert_eq!(
        d.ledger.payment(p1).unwrap().state,
        PaymentState::Superseded
    );
    let command = d.confirm_command(p1, &old_code).unwrap();
    refused(
        &mut d,
        command,
        LedgerError::PaymentNotPending { payment: p1 },
    );
    let new_code = d.code_for(c2);
    settled(d.confirm(p2, &new_code));
    assert_eq!(
        d.begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "same"),
        Err(LedgerError::OrderAlreadyPaid { payment: p2 })
    );
}

#[test]
fn a_retried_wrong_code_does_not_use_up_another_attempt() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p, c) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "o")
        .unwrap();
    let wrong = Secret::new(if d.code_for(c) == Secret::new("000000") {
        "111111"
    } else {
        "000000"
    });
    let command = d.confirm_command(p, &wrong).unwrap();
    let key = d.fresh_key();
    assert_eq!(
        d.submit_with_key(key, command.clone()),
        Err(LedgerError::WrongOtp { attempts_left: 2 })
    );
    let before = d.ledger.state_hash();
    assert_eq!(
        d.submit_with_key(key, command),
        Err(LedgerError::WrongOtp { attempts_left: 2 })
    );
    assert_eq!(d.ledger.state_hash(), before);
    assert_eq!(d.ledger.challenge(c).unwrap().wrong_attempts, 1);
}

#[test]
fn malformed_code_is_refused_before_it_reaches_the_ledger() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p, _) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "o")
        .unwrap();
    assert_eq!(
        d.confirm_command(p, &Secret::new("12a456")),
        Err(LedgerError::InvalidOtpFormat)
    );
}

// ---------------------------------------------------------------- payments and vouchers

#[test]
fn the_article_worked_example_settles_as_the_domain_says() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 1_000 * YUAN);
    d.submit(Command::SetCampaignFlags {
        account: payer.account,
        flags: CampaignFlags {
            etc_bound: true,
            savings_product: false,
        },
    })
    .unwrap();
    let etc = pool(&mut d, 50 * YUAN, 20_000, Eligibility::EtcBound);
    d.submit(Command::ClaimVoucher {
        pool: etc,
        account: payer.account,
    })
    .unwrap();
    let (m, shop) = merchant(&mut d, 9, MerchantKind::Pos);
    let promotions = balance(&d, AccountId::PROMOTIONS);

    let (debited, voucher, _) = settled(d.pay(&payer, Payee::Merchant(m), 100 * YUAN, "bill-1"));
    assert_eq!((debited, voucher), (50 * YUAN, Some(etc)));
    assert_eq!(balance(&d, payer.account), 95_000);
    assert_eq!(balance(&d, shop.account), 10_000);
    assert_eq!(balance(&d, AccountId::PROMOTIONS), promotions - 5_000);

    let (debited, voucher, _) = settled(d.pay(&payer, Payee::Merchant(m), 40 * YUAN, "bill-2"));
    assert_eq!((debited, voucher), (40 * YUAN, None));
    assert_eq!(balance(&d, payer.account), 91_000);
    assert_eq!(balance(&d, shop.account), 14_000);
    let counters = d.ledger.merchant(m).unwrap();
    assert_eq!(
        (counters.campaign_tx_count, counters.campaign_amount_fen),
        (2, 140 * YUAN)
    );
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_voucher_applies_only_to_a_bill_at_least_its_face_value() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 1_000 * YUAN);
    let p50 = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    let p100 = pool(&mut d, 100 * YUAN, 10, Eligibility::Anyone);
    for p in [p50, p100] {
        d.submit(Command::ClaimVoucher {
            pool: p,
            account: payer.account,
        })
        .unwrap();
    }
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    assert_eq!(
        settled(d.pay(&payer, Payee::Merchant(m), 49 * YUAN, "a")).1,
        None
    );
    assert_eq!(
        settled(d.pay(&payer, Payee::Merchant(m), 99 * YUAN, "b")).1,
        Some(p50)
    );
    assert_eq!(
        settled(d.pay(&payer, Payee::Merchant(m), 150 * YUAN, "c")).1,
        Some(p100)
    );
    assert_eq!(
        settled(d.pay(&payer, Payee::Merchant(m), 150 * YUAN, "d")).1,
        None
    );
}

#[test]
fn a_small_transfer_moves_money_between_cards_without_vouchers() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 1_000 * YUAN);
    let friend = d.funded_card(2, 0);
    let p = pool(&mut d, 10 * YUAN, 10, Eligibility::Anyone);
    d.submit(Command::ClaimVoucher {
        pool: p,
        account: payer.account,
    })
    .unwrap();
    let (debited, voucher, _) =
        settled(d.pay(&payer, Payee::Account(friend.account), 200 * YUAN, "gift"));
    assert_eq!((debited, voucher), (200 * YUAN, None));
    assert_eq!(balance(&d, friend.account), 20_000);
}

#[test]
fn a_refused_payment_counts_for_nothing() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 100 * YUAN);
    let p = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(Command::ClaimVoucher {
        pool: p,
        account: payer.account,
    })
    .unwrap();
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let (payment, challenge) = d
        .begin_payment(&payer, Payee::Merchant(m), 150 * YUAN, "o")
        .unwrap();
    // The payer spends the money elsewhere before confirming.
    d.submit(Command::Withdraw {
        account: payer.account,
        amount_fen: 60 * YUAN,
    })
    .unwrap();
    let code = d.code_for(challenge);
    let command = d.confirm_command(payment, &code).unwrap();
    refused(
        &mut d,
        command,
        LedgerError::InsufficientFunds {
            account: payer.account,
            balance_fen: 40 * YUAN as i64,
            needed_fen: 100 * YUAN,
        },
    );
    assert_eq!(d.ledger.merchant(m).unwrap().campaign_tx_count, 0);
    assert_eq!(
        d.ledger.voucher(payer.account, p).unwrap().consumed_by,
        None
    );
    assert_eq!(
        d.ledger.credential(payer.account).unwrap().spent_today_fen,
        0
    );
    // The code still works once the money is back.
    d.submit(Command::Deposit {
        account: payer.account,
        amount_fen: 60 * YUAN,
    })
    .unwrap();
    settled(d.confirm(payment, &code));
}

#[test]
fn an_unknown_credential_is_a_typed_error() {
    let mut d = driver();
    let card = d.funded_card(1, 100);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 1, "o")
        .unwrap();
    refused(&mut d, command, LedgerError::UnknownCredential);
}

// ---------------------------------------------------------------- merchants

fn crossing(kind: MerchantKind, bill_fen: u64) -> Vec<bool> {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 0);
    let (m, _) = merchant(&mut d, 9, kind);
    let mut rewards = Vec::new();
    for i in 0..12 {
        d.submit(Command::Deposit {
            account: payer.account,
            amount_fen: bill_fen,
        })
        .unwrap();
        d.advance(DAY_MS); // stay under the daily limit
        rewards.push(settled(d.pay(&payer, Payee::Merchant(m), bill_fen, &format!("o{i}"))).2);
        d.ledger.check_invariants().unwrap();
    }
    rewards
}

#[test]
fn pos_reward_is_granted_once_by_the_settlement_crossing_both_thresholds() {
    let rewards = crossing(MerchantKind::Pos, 200 * YUAN);
    let granted: Vec<usize> = rewards
        .iter()
        .enumerate()
        .filter(|(_, g)| **g)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        granted,
        vec![9],
        "the 10th settlement (2,000 yuan) crosses both"
    );
    // Count reached but not the amount: no reward.
    assert!(crossing(MerchantKind::Pos, 100 * YUAN).iter().all(|g| !g));
}

#[test]
fn pos_reward_pays_phone_credit_from_promotions() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 0);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    for i in 0..10 {
        d.submit(Command::Deposit {
            account: payer.account,
            amount_fen: 200 * YUAN,
        })
        .unwrap();
        d.advance(DAY_MS);
        d.pay(&payer, Payee::Merchant(m), 200 * YUAN, &format!("o{i}"))
            .unwrap();
    }
    assert_eq!(
        balance(&d, AccountId::TELECOM_SETTLEMENT),
        100 * YUAN as i64
    );
    assert_eq!(balance(&d, AccountId::PROMOTIONS), -(100 * YUAN as i64));
    assert!(d.ledger.merchant(m).unwrap().reward_payment.is_some());
}

#[test]
fn shangyitong_reward_needs_fifty_thousand_yuan() {
    // 12 payments of 1,000 yuan (the per-payment cap) never reach 50,000 yuan.
    assert!(crossing(MerchantKind::Shangyitong, 1_000 * YUAN)
        .iter()
        .all(|g| !g));
    let config = LedgerConfig {
        shangyitong_reward_min_fen: 10_000 * YUAN,
        ..LedgerConfig::default()
    };
    let mut d = Driver::new(config);
    let payer = enrolled(&mut d, 1, 0);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Shangyitong);
    let mut granted = Vec::new();
    for i in 0..11 {
        d.submit(Command::Deposit {
            account: payer.account,
            amount_fen: 1_000 * YUAN,
        })
        .unwrap();
        d.advance(DAY_MS);
        granted.push(settled(d.pay(&payer, Payee::Merchant(m), 1_000 * YUAN, &format!("o{i}"))).2);
    }
    assert_eq!(granted.iter().filter(|g| **g).count(), 1);
    assert!(granted[9]);
}

#[test]
fn online_merchants_and_merchants_registered_outside_the_campaign_earn_no_reward() {
    assert!(crossing(MerchantKind::Online, 300 * YUAN)
        .iter()
        .all(|g| !g));
    let config = LedgerConfig {
        campaign_end_ms: LedgerConfig::default().campaign_start_ms + 1,
        ..LedgerConfig::default()
    };
    let mut d = Driver::new(config);
    let payer = enrolled(&mut d, 1, 0);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    for i in 0..11 {
        d.submit(Command::Deposit {
            account: payer.account,
            amount_fen: 300 * YUAN,
        })
        .unwrap();
        d.advance(DAY_MS);
        assert!(!settled(d.pay(&payer, Payee::Merchant(m), 300 * YUAN, &format!("o{i}"))).2);
    }
    assert!(!d.ledger.merchant(m).unwrap().new_in_campaign);
}

#[test]
fn list_fee_is_half_a_percent_between_one_and_fifty_yuan_rounded_half_up() {
    let c = LedgerConfig::default();
    assert_eq!(transfer_fee_fen(&c, FeeTier::List, 100 * YUAN), 100); // 0.5 yuan → min 1 yuan
    assert_eq!(transfer_fee_fen(&c, FeeTier::List, 1_000 * YUAN), 500);
    assert_eq!(transfer_fee_fen(&c, FeeTier::List, 100_000 * YUAN), 5_000); // capped at 50 yuan
    assert_eq!(transfer_fee_fen(&c, FeeTier::List, 30_100), 151); // 150.5 → 151
    assert_eq!(transfer_fee_fen(&c, FeeTier::TwentyPercent, 30_100), 30); // 20% of 151 = 30.2
    assert_eq!(transfer_fee_fen(&c, FeeTier::TwentyPercent, 30_300), 30); // 20% of 152 = 30.4
    assert_eq!(transfer_fee_fen(&c, FeeTier::TwentyPercent, 100 * YUAN), 20);
    assert_eq!(transfer_fee_fen(&c, FeeTier::Waived, 100_000 * YUAN), 0);
}

/// A 商易通 merchant whose settlement account holds `balance_fen` all through the first full
/// month after registration; returns the driver at the start of the month after.
fn shangyitong_with_balance(balance_fen: u64) -> (Driver, MerchantId, Card) {
    let mut d = driver();
    let (m, shop) = merchant(&mut d, 9, MerchantKind::Shangyitong);
    let month = cst_month(d.now_ms).next();
    d.now_ms = month_start_ms(month);
    if balance_fen > 0 {
        d.submit(Command::Deposit {
            account: shop.account,
            amount_fen: balance_fen,
        })
        .unwrap();
    }
    d.now_ms = month_start_ms(month.next());
    (d, m, shop)
}

fn transfer_fee(d: &mut Driver, m: MerchantId, amount_fen: u64) -> (u64, FeeTier) {
    let target = d.funded_card(1000 + d.index, 0).account;
    match d.submit(Command::MerchantTransfer {
        merchant: m,
        target,
        amount_fen,
    }) {
        Ok(Reply::MerchantTransferred { fee_fen, tier }) => (fee_fen, tier),
        other => panic!("{other:?}"),
    }
}

#[test]
fn thirty_thousand_yuan_average_balance_earns_the_twenty_percent_tier_for_three_months() {
    let (mut d, m, shop) = shangyitong_with_balance(40_000 * YUAN);
    assert_eq!(
        transfer_fee(&mut d, m, 39_000 * YUAN),
        (1_000, FeeTier::TwentyPercent)
    );
    // Next month the balance is ~1,000 yuan, yet the tier holds for three months.
    for _ in 0..2 {
        d.now_ms = month_start_ms(cst_month(d.now_ms).next());
        assert_eq!(transfer_fee(&mut d, m, 10 * YUAN).1, FeeTier::TwentyPercent);
    }
    d.now_ms = month_start_ms(cst_month(d.now_ms).next());
    assert_eq!(transfer_fee(&mut d, m, 10 * YUAN).1, FeeTier::List);
    assert!(balance(&d, shop.account) >= 0);
}

#[test]
fn fifty_thousand_yuan_average_balance_waives_fees() {
    let (mut d, m, _) = shangyitong_with_balance(60_000 * YUAN);
    assert_eq!(transfer_fee(&mut d, m, 1_000 * YUAN), (0, FeeTier::Waived));
}

#[test]
fn a_better_tier_earned_meanwhile_replaces_the_held_one_at_once() {
    let (mut d, m, shop) = shangyitong_with_balance(40_000 * YUAN);
    assert_eq!(transfer_fee(&mut d, m, 10 * YUAN).1, FeeTier::TwentyPercent);
    d.submit(Command::Deposit {
        account: shop.account,
        amount_fen: 30_000 * YUAN,
    })
    .unwrap();
    d.now_ms = month_start_ms(cst_month(d.now_ms).next());
    assert_eq!(transfer_fee(&mut d, m, 10 * YUAN).1, FeeTier::Waived);
}

#[test]
fn twenty_settlements_per_terminal_earn_the_discount() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 0);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Shangyitong);
    let month = cst_month(d.now_ms).next();
    d.now_ms = month_start_ms(month);
    for i in 0..20 {
        d.submit(Command::Deposit {
            account: payer.account,
            amount_fen: 10 * YUAN,
        })
        .unwrap();
        d.advance(3_600_000);
        settled(d.pay(&payer, Payee::Merchant(m), 10 * YUAN, &format!("o{i}")));
    }
    d.now_ms = month_start_ms(month.next());
    let reply = d.submit(Command::CloseMonth { month }).unwrap();
    assert_eq!(
        reply,
        Reply::MonthClosed {
            month,
            merchants: 1
        }
    );
    let figures = d.ledger.merchant(m).unwrap().last_month.unwrap();
    assert_eq!(
        (figures.tx_count, figures.earned),
        (20, FeeTier::TwentyPercent)
    );
    assert_eq!(
        d.ledger.merchant(m).unwrap().fee_tier,
        FeeTier::TwentyPercent
    );
}

#[test]
fn the_average_balance_is_weighted_by_time_since_registration() {
    let mut d = driver();
    let (m, shop) = merchant(&mut d, 9, MerchantKind::Shangyitong);
    let month = cst_month(d.now_ms).next();
    d.now_ms = month_start_ms(month);
    d.submit(Command::Deposit {
        account: shop.account,
        amount_fen: 60_000 * YUAN,
    })
    .unwrap();
    // Half the month at 60,000 yuan, half at 0: the average is 30,000 yuan.
    let half = (month_start_ms(month.next()) - month_start_ms(month)) / 2;
    d.advance(half);
    d.submit(Command::Withdraw {
        account: shop.account,
        amount_fen: 60_000 * YUAN,
    })
    .unwrap();
    d.now_ms = month_start_ms(month.next());
    d.submit(Command::CloseMonth { month }).unwrap();
    let figures = d.ledger.merchant(m).unwrap().last_month.unwrap();
    assert_eq!(figures.avg_balance_fen, 30_000 * YUAN);
    assert_eq!(figures.earned, FeeTier::TwentyPercent);
}

#[test]
fn a_month_closes_once_and_only_after_it_ended() {
    let mut d = driver();
    let month = cst_month(d.now_ms);
    refused(
        &mut d,
        Command::CloseMonth { month },
        LedgerError::MonthNotOver { month },
    );
    d.now_ms = month_start_ms(month.next());
    d.submit(Command::CloseMonth { month }).unwrap();
    refused(
        &mut d,
        Command::CloseMonth { month },
        LedgerError::MonthAlreadyClosed { month },
    );
}

#[test]
fn shangyitong_merchants_need_a_landline() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    refused(
        &mut d,
        Command::RegisterMerchant {
            kind: MerchantKind::Shangyitong,
            name: "shop".into(),
            settlement_account: card.account,
            contact_phone: card.phone.clone(),
            terminals: 1,
        },
        LedgerError::InvalidLandline,
    );
}

// ---------------------------------------------------------------- voucher pools

#[test]
fn a_pool_never_grants_past_its_capacity() {
    let mut d = driver();
    let p = pool(&mut d, 50 * YUAN, 3, Eligibility::Anyone);
    let cards: Vec<Card> = (0..5).map(|n| d.funded_card(n, 0)).collect();
    for (i, card) in cards.iter().enumerate() {
        let outcome = d.submit(Command::ClaimVoucher {
            pool: p,
            account: card.account,
        });
        if i < 3 {
            assert_eq!(
                outcome,
                Ok(Reply::VoucherClaimed {
                    pool: p,
                    remaining: 2 - i as u64
                })
            );
        } else {
            assert_eq!(
                outcome,
                Err(LedgerError::PoolExhausted {
                    pool: p,
                    capacity: 3
                })
            );
        }
    }
    assert_eq!(d.ledger.pool(p).unwrap().granted, 3);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn one_voucher_per_account_per_pool() {
    let mut d = driver();
    let p = pool(&mut d, 50 * YUAN, 3, Eligibility::Anyone);
    let card = d.funded_card(1, 0);
    d.submit(Command::ClaimVoucher {
        pool: p,
        account: card.account,
    })
    .unwrap();
    refused(
        &mut d,
        Command::ClaimVoucher {
            pool: p,
            account: card.account,
        },
        LedgerError::AlreadyClaimed {
            account: card.account,
            pool: p,
        },
    );
}

#[test]
fn only_eligible_accounts_claim() {
    let mut d = driver();
    let etc = pool(&mut d, 50 * YUAN, 20_000, Eligibility::EtcBound);
    let savers = pool(&mut d, 100 * YUAN, 2_000, Eligibility::SavingsProduct);
    let card = d.funded_card(1, 0);
    refused(
        &mut d,
        Command::ClaimVoucher {
            pool: etc,
            account: card.account,
        },
        LedgerError::NotEligible {
            account: card.account,
            pool: etc,
            eligibility: Eligibility::EtcBound,
        },
    );
    d.submit(Command::SetCampaignFlags {
        account: card.account,
        flags: CampaignFlags {
            etc_bound: false,
            savings_product: true,
        },
    })
    .unwrap();
    d.submit(Command::ClaimVoucher {
        pool: savers,
        account: card.account,
    })
    .unwrap();
}

#[test]
fn claims_only_within_the_validity_window_and_vouchers_expire() {
    let mut d = driver();
    let start = d.now_ms + DAY_MS;
    let Reply::PoolCreated { pool: p } = d
        .submit(Command::CreatePool {
            name: "later".into(),
            face_value_fen: 50 * YUAN,
            capacity: 5,
            eligibility: Eligibility::Anyone,
            valid_from_ms: start,
            valid_until_ms: start + DAY_MS,
        })
        .unwrap()
    else {
        panic!()
    };
    let payer = enrolled(&mut d, 1, 500 * YUAN);
    refused(
        &mut d,
        Command::ClaimVoucher {
            pool: p,
            account: payer.account,
        },
        LedgerError::PoolNotOpen {
            pool: p,
            opens_at_ms: start,
        },
    );
    d.now_ms = start;
    d.submit(Command::ClaimVoucher {
        pool: p,
        account: payer.account,
    })
    .unwrap();
    d.now_ms = start + DAY_MS;
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    assert_eq!(
        settled(d.pay(&payer, Payee::Merchant(m), 100 * YUAN, "late")).1,
        None
    );
    let other = d.funded_card(2, 0);
    refused(
        &mut d,
        Command::ClaimVoucher {
            pool: p,
            account: other.account,
        },
        LedgerError::PoolClosed {
            pool: p,
            closed_at_ms: start + DAY_MS,
        },
    );
}

#[test]
fn the_vip_gift_is_recorded_once_on_reaching_platinum() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let set = |tier| Command::SetVipTier {
        account: card.account,
        tier,
    };
    assert_eq!(
        d.submit(set(VipTier::Platinum)),
        Ok(Reply::VipTierSet {
            gift_recorded: true
        })
    );
    assert_eq!(
        d.submit(set(VipTier::None)),
        Ok(Reply::VipTierSet {
            gift_recorded: false
        })
    );
    assert_eq!(
        d.submit(set(VipTier::Diamond)),
        Ok(Reply::VipTierSet {
            gift_recorded: false
        })
    );
    assert_eq!(d.ledger.gift(card.account).unwrap().tier, VipTier::Platinum);
}

// ---------------------------------------------------------------- idempotency

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

// ---------------------------------------------------------------- state

#[test]
fn snapshot_then_restore_gives_the_same_hash_and_the_same_bytes() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    settled(d.pay(&payer, Payee::Merchant(m), 10 * YUAN, "o"));
    let bytes = d.ledger.snapshot();
    let restored = ledger_core::Ledger::restore(ledger_core::MemStore::new(), &bytes).unwrap();
    assert_eq!(restored.state_hash(), d.ledger.state_hash());
    assert_eq!(restored.snapshot(), bytes);
}

#[test]
fn a_corrupt_snapshot_is_refused() {
    use ledger_core::ledger::SnapshotError;
    let d = driver();
    let mut bytes = d.ledger.snapshot();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let restore = |b: &[u8]| ledger_core::Ledger::restore(ledger_core::MemStore::new(), b).err();
    assert_eq!(restore(&bytes), Some(SnapshotError::BadChecksum));
    assert_eq!(restore(b"not a snapshot"), Some(SnapshotError::BadHeader));
}

#[test]
fn ledger_time_never_runs_backwards() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let later = d.now_ms;
    d.now_ms -= 3_600_000; // the leader's clock steps back an hour
    d.submit(Command::SetVipTier {
        account: card.account,
        tier: VipTier::Platinum,
    })
    .unwrap();
    assert_eq!(d.ledger.gift(card.account).unwrap().recorded_ms, later);
    assert_eq!(d.ledger.meta().last_now_ms, later);
}

#[test]
fn issued_challenges_wait_in_the_sms_outbox_until_the_leader_acknowledges_them() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let enrolment_challenge = d.ledger.outbox(10)[0];
    let (_, c) = d
        .begin_payment(&card, Payee::Merchant(m), 12 * YUAN, "o")
        .unwrap();
    assert_eq!(d.ledger.outbox(10), vec![enrolment_challenge, c]);
    let facts = d.ledger.sms_facts(c).unwrap();
    assert_eq!(
        (facts.alias.as_str(), facts.payee, facts.amount_fen),
        ("小王的卡", Some(Payee::Merchant(m)), Some(1_200))
    );
    assert_eq!(facts.phone, card.phone);
    let ack = Command::AckSms {
        challenges: vec![enrolment_challenge, c, c],
    };
    assert_eq!(d.submit(ack), Ok(Reply::SmsAcknowledged { removed: 2 }));
    assert!(d.ledger.outbox(10).is_empty());
    refused(
        &mut d,
        Command::AckSms {
            challenges: vec![c; 1_025],
        },
        LedgerError::TooManyItems { max: 1_024 },
    );
}

#[test]
fn wrong_card_passwords_across_enrolments_freeze_the_card() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    let pan_digest = intake::card_digest(&d.keys, &Secret::new(&card.pan)).unwrap();
    let stored = d.ledger.holder(card.account).unwrap().password;
    let wrong = intake::password_proof(&d.keys, &Secret::new("999999"), &stored).unwrap();
    let choose = Command::EpayChooseAlias {
        account: card.account,
        password_proof: wrong,
        alias: "x".into(),
    };
    let mut last = Ok(Reply::AliasChosen);
    for _round in 0..2 {
        d.submit(Command::EpayBegin {
            pan_digest,
            phone: card.phone.clone(),
        })
        .unwrap();
        for _ in 0..3 {
            last = d.submit(choose.clone());
        }
    }
    assert_eq!(
        last,
        Err(LedgerError::CardLocked {
            account: card.account
        })
    );
    assert_eq!(
        d.ledger.account(card.account).unwrap().status,
        AccountStatus::Frozen
    );
    refused(
        &mut d,
        Command::EpayBegin {
            pan_digest,
            phone: card.phone.clone(),
        },
        LedgerError::AccountNotActive {
            account: card.account,
            status: AccountStatus::Frozen,
        },
    );
    // The bank unfreezes the card; the count starts again and the right password works.
    d.submit(Command::SetAccountStatus {
        account: card.account,
        status: AccountStatus::Active,
    })
    .unwrap();
    assert_eq!(
        d.enrol(&card, "x"),
        Ok(Reply::EpayActivated {
            account: card.account
        })
    );
}

#[test]
fn a_payment_whose_code_locks_fails_and_its_order_can_be_paid_anew() {
    let mut d = driver();
    let card = enrolled(&mut d, 1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let (p, c) = d
        .begin_payment(&card, Payee::Merchant(m), 10 * YUAN, "o")
        .unwrap();
    let wrong = Secret::new(if d.code_for(c) == Secret::new("000000") {
        "111111"
    } else {
        "000000"
    });
    for _ in 0..3 {
        let _ = d.confirm(p, &wrong);
    }
    assert_eq!(d.ledger.payment(p).unwrap().state, PaymentState::Failed);
    settled(d.pay(&card, Payee::Merchant(m), 10 * YUAN, "o"));
}
