//! The rules of DOMAIN.md section 4, Merchants and their counters: rewards, list fee and
//! fee tiers. One test per rule, named after the rule. Every refusal is also checked to
//! leave the state hash unchanged.

mod common;

use common::{
    balance, deposit, driver, driver_with_rules, merchant, payer_and_merchant, refused, settled,
    with_card, withdraw,
};
use ledger_core::command::Command;
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::ledger::transfer_fee_fen;
use ledger_core::outcome::{LedgerError, Outcome, Reply};
use ledger_core::time::{cst_month, month_start_ms, DAY_MS};
use ledger_core::types::{
    AccountId, CampaignRules, FeeTier, MerchantId, MerchantKind, Payee, YearMonth,
};
use ledger_testkit::driver::{Card, Driver};

/// Deposits `bill_fen` for the payer, lets `wait_ms` pass (a day keeps the payer under the
/// daily limit), then pays the bill to `m` as order `o{i}`.
fn deposit_and_pay(
    d: &mut Driver,
    payer: &Card,
    m: MerchantId,
    bill_fen: u64,
    wait_ms: u64,
    i: usize,
) -> Outcome {
    d.submit(deposit(payer.account, bill_fen)).unwrap();
    d.advance(wait_ms);
    d.pay(payer, Payee::Merchant(m), bill_fen, &format!("o{i}"))
}

/// Moves the clock to the start of the next CST month and returns that month.
fn start_next_month(d: &mut Driver) -> YearMonth {
    let month = cst_month(d.now_ms).next();
    d.now_ms = month_start_ms(month);
    month
}

fn crossing(kind: MerchantKind, bill_fen: u64) -> Vec<bool> {
    let mut d = driver();
    let (payer, m) = payer_and_merchant(&mut d, 0, kind);
    let mut rewards = Vec::new();
    for i in 0..12 {
        rewards.push(settled(deposit_and_pay(&mut d, &payer, m, bill_fen, DAY_MS, i)).2);
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
    let (payer, m) = payer_and_merchant(&mut d, 0, MerchantKind::Pos);
    for i in 0..10 {
        deposit_and_pay(&mut d, &payer, m, 200 * YUAN, DAY_MS, i).unwrap();
    }
    assert_eq!(
        balance(&d, AccountId::TELECOM_SETTLEMENT),
        100 * YUAN as i64
    );
    assert_eq!(balance(&d, AccountId::PROMOTIONS), -(100 * YUAN as i64));
    assert!(d.counters(m).reward_payment.is_some());
}

#[test]
fn shangyitong_reward_needs_fifty_thousand_yuan() {
    // 12 payments of 1,000 yuan (the per-payment cap) never reach 50,000 yuan.
    assert!(crossing(MerchantKind::Shangyitong, 1_000 * YUAN)
        .iter()
        .all(|g| !g));
    let mut d = driver_with_rules(|r| {
        if let Some(reward) = &mut r.shangyitong_reward {
            reward.min_fen = 10_000 * YUAN;
        }
    });
    let (payer, m) = payer_and_merchant(&mut d, 0, MerchantKind::Shangyitong);
    let mut granted = Vec::new();
    for i in 0..11 {
        granted.push(settled(deposit_and_pay(&mut d, &payer, m, 1_000 * YUAN, DAY_MS, i)).2);
    }
    assert_eq!(granted.iter().filter(|g| **g).count(), 1);
    assert!(granted[9]);
}

#[test]
fn online_merchants_and_merchants_registered_outside_the_campaign_earn_no_reward() {
    assert!(crossing(MerchantKind::Online, 300 * YUAN)
        .iter()
        .all(|g| !g));
    // A campaign created now that starts tomorrow: the merchant registered today is not new
    // in it, however much it settles there.
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let (payer, m) = payer_and_merchant(&mut d, 0, MerchantKind::Pos);
    d.submit(Command::CreateCampaign {
        name: "later".into(),
        starts_ms: Some(d.now_ms + DAY_MS),
        ends_ms: d.now_ms + 60 * DAY_MS,
        rules: CampaignRules::article(),
    })
    .unwrap();
    for i in 0..11 {
        assert!(!settled(deposit_and_pay(&mut d, &payer, m, 300 * YUAN, DAY_MS, i)).2);
    }
    assert_eq!(d.counters(m).tx_count, 11, "it counts, but earns nothing");
    assert_eq!(d.counters(m).reward_payment, None);
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
    let month = start_next_month(&mut d);
    if balance_fen > 0 {
        d.submit(deposit(shop.account, balance_fen)).unwrap();
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
        start_next_month(&mut d);
        assert_eq!(transfer_fee(&mut d, m, 10 * YUAN).1, FeeTier::TwentyPercent);
    }
    start_next_month(&mut d);
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
    d.submit(deposit(shop.account, 30_000 * YUAN)).unwrap();
    start_next_month(&mut d);
    assert_eq!(transfer_fee(&mut d, m, 10 * YUAN).1, FeeTier::Waived);
}

#[test]
fn twenty_settlements_per_terminal_earn_the_discount() {
    let mut d = driver();
    let (payer, m) = payer_and_merchant(&mut d, 0, MerchantKind::Shangyitong);
    let month = start_next_month(&mut d);
    for i in 0..20 {
        settled(deposit_and_pay(&mut d, &payer, m, 10 * YUAN, 3_600_000, i));
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
fn a_merchant_has_one_to_the_most_terminals() {
    use ledger_core::config::MAX_TERMINALS;
    let mut d = driver();
    for (n, terminals) in [(20, 0), (21, MAX_TERMINALS + 1), (22, MAX_TERMINALS)] {
        let card = d.funded_card(n, 0);
        let register = Command::RegisterMerchant {
            kind: MerchantKind::Pos,
            name: format!("shop {n}"),
            settlement_account: card.account,
            contact_phone: card.phone.clone(),
            terminals,
        };
        if terminals == MAX_TERMINALS {
            assert!(matches!(
                d.submit(register),
                Ok(Reply::MerchantRegistered { .. })
            ));
        } else {
            refused(
                &mut d,
                register,
                LedgerError::InvalidTerminalCount { max: MAX_TERMINALS },
            );
        }
    }
}

#[test]
fn a_transfer_without_a_fee_journals_no_fee() {
    let mut d = driver();
    let (m, shop) = merchant(&mut d, 9, MerchantKind::Pos);
    d.submit(deposit(shop.account, 10 * YUAN)).unwrap();
    let target = d.funded_card(2, 0).account;
    let before = d.ledger.meta().next_posting;
    let reply = d
        .submit(Command::MerchantTransfer {
            merchant: m,
            target,
            amount_fen: 5 * YUAN,
        })
        .unwrap();
    assert!(matches!(
        reply,
        Reply::MerchantTransferred { fee_fen: 0, .. }
    ));
    let rows = d.ledger.journal(before - 1, 10).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
}

#[test]
fn the_discount_counts_settlements_per_terminal() {
    for (settlements, expected) in [(39, FeeTier::List), (40, FeeTier::TwentyPercent)] {
        let mut d = driver();
        let payer = common::enrolled(&mut d, 1, 0);
        let shop = d.funded_card(9, 0);
        let Reply::MerchantRegistered { merchant: m } = d
            .submit(Command::RegisterMerchant {
                kind: MerchantKind::Shangyitong,
                name: "two terminals".into(),
                settlement_account: shop.account,
                contact_phone: "0731-84567890".into(),
                terminals: 2,
            })
            .unwrap()
        else {
            panic!("not registered")
        };
        let month = start_next_month(&mut d);
        for i in 0..settlements {
            settled(deposit_and_pay(&mut d, &payer, m, 10 * YUAN, 3_600_000, i));
        }
        d.now_ms = month_start_ms(month.next());
        d.submit(Command::CloseMonth { month }).unwrap();
        let figures = d.ledger.merchant(m).unwrap().last_month.unwrap();
        assert_eq!(
            (figures.tx_count, figures.earned),
            (settlements as u64, expected)
        );
    }
}

#[test]
fn the_average_balance_is_weighted_by_time_since_registration() {
    let mut d = driver();
    let (m, shop) = merchant(&mut d, 9, MerchantKind::Shangyitong);
    let month = start_next_month(&mut d);
    d.submit(deposit(shop.account, 60_000 * YUAN)).unwrap();
    // Half the month at 60,000 yuan, half at 0: the average is 30,000 yuan.
    let half = (month_start_ms(month.next()) - month_start_ms(month)) / 2;
    d.advance(half);
    d.submit(withdraw(shop.account, 60_000 * YUAN)).unwrap();
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
    let (mut d, card) = with_card(0);
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

/// Closes `month` at the start of the next one; returns the merchant's tier for that next
/// month.
fn tier_after_closing(d: &mut Driver, m: MerchantId, month: YearMonth) -> FeeTier {
    d.now_ms = month_start_ms(month.next());
    d.submit(Command::CloseMonth { month }).unwrap();
    d.ledger.merchant(m).unwrap().fee_tier
}

#[test]
fn a_lesser_tier_earned_while_a_better_one_holds_applies_after_the_better_ones_hold_ends() {
    // Month M: 60,000 yuan all month, the waiver, held through M+3.
    let mut d = driver();
    let (m, shop) = merchant(&mut d, 9, MerchantKind::Shangyitong);
    let month = start_next_month(&mut d);
    d.submit(deposit(shop.account, 60_000 * YUAN)).unwrap();
    assert_eq!(tier_after_closing(&mut d, m, month), FeeTier::Waived);
    // Month M+1: 40,000 yuan, which earns the 20% tier (through M+4) under the waiver.
    d.submit(withdraw(shop.account, 20_000 * YUAN)).unwrap();
    assert_eq!(tier_after_closing(&mut d, m, month.next()), FeeTier::Waived);
    // M+2 and M+3: nothing in the account; the waiver holds through M+3...
    d.submit(withdraw(shop.account, 40_000 * YUAN)).unwrap();
    assert_eq!(
        tier_after_closing(&mut d, m, month.plus(2)),
        FeeTier::Waived
    );
    // ...then the 20% tier applies in M+4, the rest of its own three months...
    assert_eq!(
        tier_after_closing(&mut d, m, month.plus(3)),
        FeeTier::TwentyPercent
    );
    // ...and no longer.
    assert_eq!(tier_after_closing(&mut d, m, month.plus(4)), FeeTier::List);
    let merchant = d.ledger.merchant(m).unwrap();
    assert_eq!(
        (merchant.waived_through, merchant.discount_through),
        (Some(month.plus(3)), Some(month.plus(4)))
    );
}

#[test]
fn a_shangyitong_transfer_refused_for_funds_names_the_whole_debit() {
    let (mut d, m, shop) = shangyitong_with_balance(0);
    d.submit(deposit(shop.account, 25_049)).unwrap();
    let target = d.funded_card(1000, 0).account;
    let refusal = LedgerError::InsufficientFunds {
        account: shop.account,
        balance_fen: 25_049,
        needed_fen: 25_125,
    };
    assert_eq!(
        refusal.to_string(),
        format!(
            "account {} holds 250.49 yuan, 251.25 yuan needed",
            shop.account
        )
    );
    refused(
        &mut d,
        Command::MerchantTransfer {
            merchant: m,
            target,
            amount_fen: 25_000,
        },
        refusal,
    );
    // 1.25 yuan of fee on 250 yuan: 251.25 in all goes through.
    d.submit(deposit(shop.account, 76)).unwrap();
    d.submit(Command::MerchantTransfer {
        merchant: m,
        target,
        amount_fen: 25_000,
    })
    .unwrap();
    assert_eq!(balance(&d, shop.account), 0);
}
