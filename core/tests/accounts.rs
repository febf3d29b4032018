//! The rules of DOMAIN.md section 1, Accounts (bank cards), with the money rules above it
//! (double entry, no negative balance). One test per rule, named after the rule. Every
//! refusal is also checked to leave the state hash unchanged.

mod common;

use common::{balance, driver, refused, set_status, transfer, unchanged, with_card, withdraw};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::config::{MAX_AMOUNT_FEN, YUAN};
use ledger_core::intake::{self, OpenAccountRequest, Secret};
use ledger_core::outcome::{LedgerError, TextField};
use ledger_core::types::{AccountId, AccountStatus, MerchantKind};
use ledger_testkit::driver::test_pan;

#[test]
fn deposit_moves_money_from_clearing_in_double_entry() {
    let (d, card) = with_card(1_000 * YUAN);
    assert_eq!(balance(&d, card.account), 100_000);
    assert_eq!(balance(&d, AccountId::CLEARING), -100_000);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn customer_balance_never_goes_below_zero() {
    let (mut d, card) = with_card(100);
    refused(
        &mut d,
        withdraw(card.account, 101),
        LedgerError::InsufficientFunds {
            account: card.account,
            balance_fen: 100,
            needed_fen: 101,
        },
    );
}

#[test]
fn zero_and_oversized_amounts_are_refused() {
    let (mut d, a) = with_card(100);
    let b = d.funded_card(2, 0);
    let t = |amount_fen| transfer(a.account, b.account, amount_fen);
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
    let (mut d, a) = with_card(0);
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
        &ledger_core::Envelope::new(d.fresh_key(), 0, transfer(b.account, a.account, 11)),
    );
    assert_eq!(
        outcome,
        Err(LedgerError::BalanceOverflow { account: a.account })
    );
    assert_eq!(ledger.state_hash(), before);
}

#[test]
fn transfer_to_the_same_account_is_refused() {
    let (mut d, a) = with_card(100);
    refused(
        &mut d,
        transfer(a.account, a.account, 1),
        LedgerError::SameAccount,
    );
}

#[test]
fn unknown_and_internal_accounts_are_typed_errors() {
    let (mut d, a) = with_card(100);
    refused(
        &mut d,
        transfer(a.account, AccountId(999), 1),
        LedgerError::UnknownAccount {
            account: AccountId(999),
        },
    );
    refused(
        &mut d,
        transfer(a.account, AccountId::PROMOTIONS, 1),
        LedgerError::InternalAccount {
            account: AccountId::PROMOTIONS,
        },
    );
}

#[test]
fn frozen_account_moves_no_money_until_unfrozen() {
    let (mut d, a) = with_card(100);
    d.submit(set_status(a.account, AccountStatus::Frozen))
        .unwrap();
    refused(
        &mut d,
        withdraw(a.account, 1),
        LedgerError::AccountNotActive {
            account: a.account,
            status: AccountStatus::Frozen,
        },
    );
    d.submit(set_status(a.account, AccountStatus::Active))
        .unwrap();
    d.submit(withdraw(a.account, 1)).unwrap();
}

#[test]
fn closing_needs_a_zero_balance_and_is_final() {
    let (mut d, a) = with_card(100);
    let close = set_status(a.account, AccountStatus::Closed);
    refused(
        &mut d,
        close.clone(),
        LedgerError::AccountNotEmpty {
            account: a.account,
            balance_fen: 100,
        },
    );
    d.submit(withdraw(a.account, 100)).unwrap();
    d.submit(close).unwrap();
    refused(
        &mut d,
        set_status(a.account, AccountStatus::Active),
        LedgerError::AccountClosed { account: a.account },
    );
}

#[test]
fn a_card_number_opens_one_account_only() {
    let mut d = driver();
    d.open_card(1).unwrap();
    assert_eq!(
        unchanged(&mut d, |d| d.open_card(1)).unwrap_err(),
        LedgerError::DuplicateCard
    );
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
    let (mut d, card) = with_card(0);
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
