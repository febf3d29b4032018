//! The rules of DOMAIN.md section 7, card-present payments at a terminal (刷卡消费). One
//! test per rule, named after the rule. Every refusal is also checked to leave the state
//! hash unchanged, except a wrong PIN, which counts toward the card's lock-out.

mod common;

use common::{
    balance, deposit, driver, driver_with, merchant, pool, refused, set_status, settled, unchanged,
    wrong_password_choice,
};
use ledger_core::command::Command;
use ledger_core::config::{MAX_CARD_PASSWORD_FAILURES, MAX_RECEIPT_BYTES, YUAN};
use ledger_core::outcome::{LedgerError, Reply, TextField};
use ledger_core::state::{PaymentMethod, PaymentState};
use ledger_core::time::DAY_MS;
use ledger_core::types::{AccountId, AccountStatus, Eligibility, MerchantId, MerchantKind};
use ledger_testkit::driver::{Card, Driver};

/// A ledger with a funded card (card 1) and a POS merchant with `terminals` terminals.
fn card_and_pos(balance_fen: u64, terminals: u32) -> (Driver, Card, MerchantId, AccountId) {
    let mut d = driver();
    let card = d.funded_card(1, balance_fen);
    let shop = d.funded_card(9, 0);
    let reply = d
        .submit(Command::RegisterMerchant {
            kind: MerchantKind::Pos,
            name: "湘江小店".into(),
            settlement_account: shop.account,
            contact_phone: shop.phone.clone(),
            terminals,
        })
        .unwrap();
    let Reply::MerchantRegistered { merchant } = reply else {
        panic!("{reply:?}")
    };
    (d, card, merchant, shop.account)
}

fn swipe_at(
    d: &Driver,
    card: &Card,
    pin: &str,
    m: MerchantId,
    terminal: u32,
    amount_fen: u64,
    receipt: &str,
) -> Command {
    d.swipe_command(card, pin, m, terminal, amount_fen, receipt)
        .unwrap()
}

#[test]
fn a_swipe_settles_at_once_with_the_best_voucher_deducted() {
    let (mut d, card, m, shop) = card_and_pos(1_000 * YUAN, 1);
    d.submit(Command::SetCampaignFlags {
        account: card.account,
        flags: ledger_core::command::CampaignFlags {
            etc_bound: true,
            savings_product: false,
        },
    })
    .unwrap();
    let etc = pool(&mut d, 50 * YUAN, 10, Eligibility::EtcBound);
    d.submit(Command::ClaimVoucher {
        pool: etc,
        account: card.account,
    })
    .unwrap();
    let promotions = balance(&d, AccountId::PROMOTIONS);
    // The article's example: a 100-yuan bill with a 50-yuan voucher.
    let reply = d.swipe(&card, m, 100 * YUAN, "r1").unwrap();
    let Reply::PaymentSettled {
        payment,
        debited_fen,
        voucher,
        ..
    } = reply
    else {
        panic!("{reply:?}")
    };
    assert_eq!((debited_fen, voucher), (50 * YUAN, Some(etc)));
    assert_eq!(balance(&d, card.account), 950 * YUAN as i64);
    assert_eq!(balance(&d, shop), 100 * YUAN as i64);
    assert_eq!(
        balance(&d, AccountId::PROMOTIONS),
        promotions - 50 * YUAN as i64
    );
    let p = d.ledger.payment(payment).unwrap();
    assert_eq!(p.method, PaymentMethod::CardPresent { terminal: 1 });
    assert!(matches!(p.state, PaymentState::Settled { .. }));
    assert_eq!(
        d.ledger.voucher(card.account, etc).unwrap().consumed_by,
        Some(payment)
    );
    // The voucher is used once: the next swipe pays in full.
    assert_eq!(settled(d.swipe(&card, m, 100 * YUAN, "r2")).0, 100 * YUAN);
    d.ledger.check_invariants().unwrap();
}

/// A card holding a 50-yuan and a 100-yuan voucher, at a POS merchant.
fn two_vouchers() -> (Driver, Card, MerchantId, [ledger_core::types::PoolId; 2]) {
    let (mut d, card, m, _) = card_and_pos(1_000 * YUAN, 1);
    let small = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    let large = pool(&mut d, 100 * YUAN, 10, Eligibility::Anyone);
    for p in [small, large] {
        d.submit(Command::ClaimVoucher {
            pool: p,
            account: card.account,
        })
        .unwrap();
    }
    (d, card, m, [small, large])
}

#[test]
fn the_best_of_several_vouchers_is_the_largest_that_fits_the_bill() {
    let (mut d, card, m, [small, _]) = two_vouchers();
    // 80 yuan: the 100-yuan voucher does not fit the bill; the 50-yuan one does.
    assert_eq!(
        settled(d.swipe(&card, m, 80 * YUAN, "a")),
        (30 * YUAN, Some(small), false)
    );
    let (mut d, card, m, [small, large]) = two_vouchers();
    // 100 yuan exactly: both fit; the larger wins.
    assert_eq!(
        settled(d.swipe(&card, m, 100 * YUAN, "b")),
        (0, Some(large), false)
    );
    assert_eq!(
        settled(d.swipe(&card, m, 100 * YUAN, "c")),
        (50 * YUAN, Some(small), false)
    );
}

#[test]
fn a_wrong_pin_counts_toward_the_cards_lock_out_and_moves_no_money() {
    let (mut d, card, m, shop) = card_and_pos(1_000 * YUAN, 1);
    let wrong = swipe_at(&d, &card, "999999", m, 1, 10 * YUAN, "r");
    assert_eq!(
        d.submit(wrong.clone()),
        Err(LedgerError::WrongCardPassword {
            failures_left: MAX_CARD_PASSWORD_FAILURES - 1
        })
    );
    assert_eq!(balance(&d, card.account), 1_000 * YUAN as i64);
    assert_eq!(balance(&d, shop), 0);
    assert_eq!(d.ledger.holder(card.account).unwrap().password_failures, 1);
    // The right PIN clears the count.
    settled(d.swipe(&card, m, 10 * YUAN, "r"));
    assert_eq!(d.ledger.holder(card.account).unwrap().password_failures, 0);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn the_lock_out_is_shared_with_enrolment_and_freezes_the_card() {
    let (mut d, card, m, _) = card_and_pos(1_000 * YUAN, 1);
    // Two wrong passwords during an e-Pay enrolment...
    let digest = common::pan_digest(&d, &card);
    d.submit(Command::EpayBegin {
        pan_digest: digest,
        phone: card.phone.clone(),
    })
    .unwrap();
    for _ in 0..2 {
        assert!(matches!(
            d.submit(wrong_password_choice(&d, &card)),
            Err(LedgerError::WrongCardPassword { .. })
        ));
    }
    // ...then wrong PINs at the terminal: the card's count goes on from two.
    for left in (1..=MAX_CARD_PASSWORD_FAILURES - 3).rev() {
        let wrong = swipe_at(&d, &card, "999999", m, 1, 10 * YUAN, "r");
        assert_eq!(
            d.submit(wrong),
            Err(LedgerError::WrongCardPassword {
                failures_left: left
            })
        );
    }
    let wrong = swipe_at(&d, &card, "999999", m, 1, 10 * YUAN, "r");
    assert_eq!(
        d.submit(wrong),
        Err(LedgerError::CardLocked {
            account: card.account
        })
    );
    assert_eq!(
        d.ledger.account(card.account).unwrap().status,
        AccountStatus::Frozen
    );
    // Frozen: even the right PIN is refused now, and nothing changes.
    let right = swipe_at(&d, &card, &card.password, m, 1, 10 * YUAN, "r");
    refused(
        &mut d,
        right.clone(),
        LedgerError::AccountNotActive {
            account: card.account,
            status: AccountStatus::Frozen,
        },
    );
    // The bank unfreezes the card: the count starts again, so one wrong PIN is one.
    d.submit(set_status(card.account, AccountStatus::Active))
        .unwrap();
    assert_eq!(d.ledger.holder(card.account).unwrap().password_failures, 0);
    let wrong = swipe_at(&d, &card, "999999", m, 1, 10 * YUAN, "r");
    assert_eq!(
        d.submit(wrong),
        Err(LedgerError::WrongCardPassword {
            failures_left: MAX_CARD_PASSWORD_FAILURES - 1
        })
    );
    // Freezing keeps the count: a card frozen after a wrong PIN still shows it.
    d.submit(set_status(card.account, AccountStatus::Frozen))
        .unwrap();
    assert_eq!(d.ledger.holder(card.account).unwrap().password_failures, 1);
    d.submit(set_status(card.account, AccountStatus::Active))
        .unwrap();
    settled(d.submit(right));
}

#[test]
fn a_frozen_or_closed_card_is_refused() {
    let (mut d, card, m, _) = card_and_pos(0, 1);
    d.submit(set_status(card.account, AccountStatus::Closed))
        .unwrap();
    let swipe = swipe_at(&d, &card, &card.password, m, 1, 10 * YUAN, "r");
    refused(
        &mut d,
        swipe,
        LedgerError::AccountNotActive {
            account: card.account,
            status: AccountStatus::Closed,
        },
    );
}

#[test]
fn a_swipe_is_taken_only_at_one_of_the_merchants_own_terminals() {
    let (mut d, card, m, _) = card_and_pos(1_000 * YUAN, 2);
    for terminal in [0, 3, u32::MAX] {
        let swipe = swipe_at(&d, &card, &card.password, m, terminal, 10 * YUAN, "r");
        refused(
            &mut d,
            swipe,
            LedgerError::UnknownTerminal {
                merchant: m,
                terminal,
                terminals: 2,
            },
        );
    }
    settled(d.submit(swipe_at(&d, &card, &card.password, m, 2, 10 * YUAN, "r")));
    let (online, _) = merchant(&mut d, 20, MerchantKind::Online);
    let swipe = swipe_at(&d, &card, &card.password, online, 1, 10 * YUAN, "r");
    refused(&mut d, swipe, LedgerError::NoTerminals { merchant: online });
    let swipe = swipe_at(&d, &card, &card.password, MerchantId(99), 1, 10 * YUAN, "r");
    refused(
        &mut d,
        swipe,
        LedgerError::UnknownMerchant {
            merchant: MerchantId(99),
        },
    );
}

#[test]
fn a_receipt_number_is_used_once_per_terminal() {
    let (mut d, card, m, _) = card_and_pos(1_000 * YUAN, 2);
    let (first, ..) = match d.swipe(&card, m, 10 * YUAN, "0001").unwrap() {
        Reply::PaymentSettled { payment, .. } => (payment, ()),
        other => panic!("{other:?}"),
    };
    let again = swipe_at(&d, &card, &card.password, m, 1, 10 * YUAN, "0001");
    refused(
        &mut d,
        again,
        LedgerError::DuplicateReceipt { payment: first },
    );
    // Another terminal prints its own receipts.
    settled(d.submit(swipe_at(&d, &card, &card.password, m, 2, 10 * YUAN, "0001")));
    for (receipt, error) in [
        (
            "r".repeat(MAX_RECEIPT_BYTES + 1),
            LedgerError::TextTooLong {
                field: TextField::Receipt,
                max: MAX_RECEIPT_BYTES,
            },
        ),
        (
            " ".into(),
            LedgerError::TextEmpty {
                field: TextField::Receipt,
            },
        ),
    ] {
        let swipe = swipe_at(&d, &card, &card.password, m, 1, 10 * YUAN, &receipt);
        refused(&mut d, swipe, error);
    }
}

#[test]
fn the_card_present_cap_is_fifty_thousand_yuan_per_card_per_cst_day() {
    let (mut d, card, m, _) = card_and_pos(100_000 * YUAN, 1);
    assert_eq!(
        d.ledger.config().card_present_cap_fen_per_day,
        50_000 * YUAN
    );
    // e-Pay's 1,000-yuan cap does not apply at a terminal.
    settled(d.swipe(&card, m, 30_000 * YUAN, "a"));
    settled(d.swipe(&card, m, 20_000 * YUAN, "b"));
    let over = swipe_at(&d, &card, &card.password, m, 1, 1, "c");
    refused(
        &mut d,
        over,
        LedgerError::OverCardPresentDailyLimit {
            debit_fen: 1,
            spent_today_fen: 50_000 * YUAN,
            limit_fen: 50_000 * YUAN,
        },
    );
    d.advance(DAY_MS);
    settled(d.swipe(&card, m, 1, "c"));
}

#[test]
fn the_card_present_cap_counts_what_the_card_pays_after_the_voucher() {
    let mut d = driver_with(|c| c.card_present_cap_fen_per_day = 60 * YUAN);
    let card = d.funded_card(1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let p = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(Command::ClaimVoucher {
        pool: p,
        account: card.account,
    })
    .unwrap();
    // 100 yuan with a 50-yuan voucher: 50 counted; 10 more fit, 10.01 do not.
    settled(d.swipe(&card, m, 100 * YUAN, "a"));
    settled(d.swipe(&card, m, 10 * YUAN, "b"));
    let over = swipe_at(&d, &card, &card.password, m, 1, 1, "c");
    refused(
        &mut d,
        over,
        LedgerError::OverCardPresentDailyLimit {
            debit_fen: 1,
            spent_today_fen: 60 * YUAN,
            limit_fen: 60 * YUAN,
        },
    );
}

#[test]
fn a_refused_swipe_counts_for_nothing() {
    let (mut d, card, m, _) = card_and_pos(10 * YUAN, 1);
    let p = pool(&mut d, 5 * YUAN, 10, Eligibility::Anyone);
    d.submit(Command::ClaimVoucher {
        pool: p,
        account: card.account,
    })
    .unwrap();
    // 20 yuan less a 5-yuan voucher is 15: more than the card holds.
    let swipe = swipe_at(&d, &card, &card.password, m, 1, 20 * YUAN, "r");
    refused(
        &mut d,
        swipe,
        LedgerError::InsufficientFunds {
            account: card.account,
            balance_fen: 10 * YUAN as i64,
            needed_fen: 15 * YUAN,
        },
    );
    let merchant = d.ledger.merchant(m).unwrap();
    assert_eq!((d.counters(m).tx_count, merchant.month_tx_count), (0, 0));
    assert_eq!(d.ledger.voucher(card.account, p).unwrap().consumed_by, None);
}

#[test]
fn swipes_count_for_the_merchants_counters_and_reward() {
    let (mut d, card, m, _) = card_and_pos(0, 1);
    let mut rewards = Vec::new();
    for i in 0..11 {
        d.submit(deposit(card.account, 200 * YUAN)).unwrap();
        rewards.push(settled(d.swipe(&card, m, 200 * YUAN, &format!("r{i}"))).2);
    }
    assert_eq!(rewards.iter().filter(|r| **r).count(), 1);
    assert!(rewards[9]);
    let counters = d.counters(m);
    assert_eq!(counters.tx_count, 11);
    assert_eq!(counters.amount_fen, 2_200 * YUAN);
}

#[test]
fn an_unknown_card_is_refused_without_a_trace() {
    let (mut d, card, m, _) = card_and_pos(10 * YUAN, 1);
    let stranger = Card {
        pan: ledger_testkit::driver::test_pan(77),
        ..card.clone()
    };
    assert_eq!(
        d.swipe_command(&stranger, &card.password, m, 1, 10, "r"),
        Err(LedgerError::UnknownCard)
    );
    let mut command = swipe_at(&d, &card, &card.password, m, 1, 10, "r");
    if let Command::CardPayment { pan_digest, .. } = &mut command {
        *pan_digest = common::pan_digest(&d, &stranger);
    }
    let outcome = unchanged(&mut d, |d| d.submit(command));
    assert_eq!(outcome, Err(LedgerError::UnknownCard));
}

#[test]
fn of_two_vouchers_of_equal_value_the_older_pools_is_deducted() {
    let (mut d, payer, m) = common::payer_and_shop(MerchantKind::Pos);
    let older = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    let newer = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    for p in [newer, older] {
        d.submit(Command::ClaimVoucher {
            pool: p,
            account: payer.account,
        })
        .unwrap();
    }
    let (_, voucher, _) = settled(d.swipe(&payer, m, 100 * YUAN, "tie"));
    assert_eq!(voucher, Some(older));
}
