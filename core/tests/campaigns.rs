//! Campaigns as data (DOMAIN.md section 4, issue "The whole payment"): the PSBC campaign's
//! rules are records an operator creates; several run at once, each with its own window,
//! thresholds, counters, rewards and fee tiers. One test per rule, named after the rule.

mod common;

use common::{balance, deposit, merchant, refused, unchanged, withdraw};
use ledger_core::command::Command;
use ledger_core::config::{
    LedgerConfig, MAX_CAMPAIGNS, MAX_CAMPAIGN_COUNT, MAX_CAMPAIGN_REWARD_FEN,
    MAX_CAMPAIGN_THRESHOLD_FEN, MAX_NAME_BYTES, MAX_TIER_HOLD_MONTHS, YUAN,
};
use ledger_core::outcome::{CampaignRule, LedgerError, Reply, TextField};
use ledger_core::state::CampaignCounters;
use ledger_core::time::{cst_month, month_start_ms, DAY_MS};
use ledger_core::types::{
    AccountId, CampaignId, CampaignRules, FeeTier, FeeTiers, MerchantId, MerchantKind, PaymentId,
    RewardRule, VipTier,
};
use ledger_testkit::driver::{Card, Driver};

/// 3 settlements and 30 yuan earn a POS merchant 5 yuan; nothing else.
fn sprint() -> CampaignRules {
    CampaignRules {
        pos_reward: Some(RewardRule {
            min_count: 3,
            min_fen: 30 * YUAN,
            reward_fen: 5 * YUAN,
        }),
        shangyitong_reward: None,
        fee_tiers: None,
        vip_gift: None,
    }
}

fn create(name: &str, starts_ms: Option<u64>, ends_ms: u64, rules: CampaignRules) -> Command {
    Command::CreateCampaign {
        name: name.into(),
        starts_ms,
        ends_ms,
        rules,
    }
}

fn created(d: &mut Driver, command: Command) -> CampaignId {
    match d.submit(command) {
        Ok(Reply::CampaignCreated { campaign, .. }) => campaign,
        other => panic!("{other:?}"),
    }
}

/// A card holding 100,000 yuan and a POS merchant, on a ledger with the article's campaign
/// (campaign 1) and the sprint (campaign 2), both from now for 60 days.
fn two_campaigns() -> (Driver, Card, MerchantId) {
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let ends = d.now_ms + 60 * DAY_MS;
    assert_eq!(
        created(
            &mut d,
            create("心计划", None, ends, CampaignRules::article())
        ),
        CampaignId(1)
    );
    assert_eq!(
        created(&mut d, create("sprint", None, ends, sprint())),
        CampaignId(2)
    );
    let payer = d.funded_card(1, 100_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    (d, payer, m)
}

/// Swipes `amount_fen` at the merchant's terminal; returns the payment and its rewards.
fn swipe(d: &mut Driver, payer: &Card, m: MerchantId, amount_fen: u64) -> (PaymentId, Vec<u64>) {
    let receipt = format!("r{}", d.index);
    match d.swipe(payer, m, amount_fen, &receipt) {
        Ok(Reply::PaymentSettled {
            payment, rewards, ..
        }) => (payment, rewards.iter().map(|c| c.0).collect()),
        other => panic!("{other:?}"),
    }
}

fn counters(d: &Driver, m: MerchantId, c: u64) -> CampaignCounters {
    d.ledger
        .merchant_campaign(m, CampaignId(c))
        .unwrap_or_default()
}

#[test]
fn the_articles_numbers_are_the_default_campaign() {
    let rules = CampaignRules::article();
    let pos = rules.pos_reward.unwrap();
    let syt = rules.shangyitong_reward.unwrap();
    let tiers = rules.fee_tiers.unwrap();
    assert_eq!(
        (pos.min_count, pos.min_fen, pos.reward_fen),
        (10, 2_000 * YUAN, 100 * YUAN)
    );
    assert_eq!(
        (syt.min_count, syt.min_fen, syt.reward_fen),
        (10, 50_000 * YUAN, 100 * YUAN)
    );
    assert_eq!(
        (
            tiers.discount_min_avg_balance_fen,
            tiers.discount_min_tx_per_terminal,
            tiers.waived_min_avg_balance_fen,
            tiers.hold_months
        ),
        (30_000 * YUAN, 20, 50_000 * YUAN, 3)
    );
    assert_eq!(rules.vip_gift, Some(VipTier::Platinum));
    assert_eq!(rules.reward_for(MerchantKind::Online), None);
}

#[test]
fn two_campaigns_with_different_thresholds_run_at_once_each_with_its_own_counters_and_reward() {
    let (mut d, payer, m) = two_campaigns();
    let mut rewarded = Vec::new();
    for _ in 0..11 {
        rewarded.push(swipe(&mut d, &payer, m, 200 * YUAN).1);
    }
    let empty: Vec<u64> = Vec::new();
    let mut expected = vec![empty; 11];
    expected[2] = vec![2]; // the sprint's 3rd settlement (600 yuan ≥ 30)
    expected[9] = vec![1]; // the article's 10th (2,000 yuan)
    assert_eq!(rewarded, expected);
    let (article, sprint) = (counters(&d, m, 1), counters(&d, m, 2));
    assert_eq!((article.tx_count, article.amount_fen), (11, 2_200 * YUAN));
    assert_eq!((sprint.tx_count, sprint.amount_fen), (11, 2_200 * YUAN));
    assert_ne!(article.reward_payment, sprint.reward_payment);
    // Each reward paid once, from promotions to the telecom operators.
    assert_eq!(
        balance(&d, AccountId::TELECOM_SETTLEMENT),
        105 * YUAN as i64
    );
    assert_eq!(balance(&d, AccountId::PROMOTIONS), -(105 * YUAN as i64));
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_campaign_counts_only_the_settlements_inside_its_window() {
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let payer = d.funded_card(1, 10_000 * YUAN);
    let starts = d.now_ms + DAY_MS;
    let c = created(
        &mut d,
        create("one day", Some(starts), starts + DAY_MS, sprint()),
    );
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    swipe(&mut d, &payer, m, 10 * YUAN); // before it starts
    d.now_ms = starts;
    swipe(&mut d, &payer, m, 20 * YUAN); // inside
    d.now_ms = starts + DAY_MS;
    swipe(&mut d, &payer, m, 40 * YUAN); // after it ended
    let counted = counters(&d, m, c.0);
    assert_eq!((counted.tx_count, counted.amount_fen), (1, 20 * YUAN));
}

#[test]
fn a_refund_lowers_the_amount_in_every_campaign_that_counted_the_payment() {
    let (mut d, payer, m) = two_campaigns();
    let (p, _) = swipe(&mut d, &payer, m, 200 * YUAN);
    d.submit(Command::RefundPayment {
        payment: p,
        amount_fen: 50 * YUAN,
    })
    .unwrap();
    for c in [1, 2] {
        let counted = counters(&d, m, c);
        assert_eq!(
            (counted.tx_count, counted.amount_fen),
            (1, 150 * YUAN),
            "campaign {c}"
        );
    }
}

/// A 商易通 merchant holding `balance_fen` all through the month after the driver's, under
/// campaigns of these fee tiers; returns its tier the month after that.
fn tier_with(tiers: &[Option<FeeTiers>], balance_fen: u64) -> (FeeTier, Option<FeeTier>) {
    let mut d = Driver::without_campaign(LedgerConfig::default());
    for (i, t) in tiers.iter().enumerate() {
        let rules = CampaignRules {
            fee_tiers: *t,
            vip_gift: Some(VipTier::Diamond),
            ..sprint()
        };
        let ends = d.now_ms + 90 * DAY_MS;
        created(&mut d, create(&format!("c{i}"), None, ends, rules));
    }
    let (m, shop) = merchant(&mut d, 9, MerchantKind::Shangyitong);
    let month = cst_month(d.now_ms).next();
    d.now_ms = month_start_ms(month);
    d.submit(deposit(shop.account, balance_fen)).unwrap();
    d.now_ms = month_start_ms(month.next());
    d.submit(Command::CloseMonth { month }).unwrap();
    d.submit(withdraw(shop.account, balance_fen)).unwrap();
    let merchant = d.ledger.merchant(m).unwrap();
    (merchant.fee_tier, merchant.last_month.map(|f| f.earned))
}

fn tiers(discount_yuan: u64, waived_yuan: u64) -> Option<FeeTiers> {
    Some(FeeTiers {
        discount_min_avg_balance_fen: discount_yuan * YUAN,
        discount_min_tx_per_terminal: 20,
        waived_min_avg_balance_fen: waived_yuan * YUAN,
        hold_months: 3,
    })
}

#[test]
fn fee_tiers_come_from_the_campaigns_running_that_month_and_the_best_one_wins() {
    // 15,000 yuan: below the article's 30,000, above the second campaign's 10,000.
    assert_eq!(
        tier_with(&[tiers(30_000, 50_000)], 15_000 * YUAN).0,
        FeeTier::List
    );
    assert_eq!(
        tier_with(
            &[tiers(30_000, 50_000), tiers(10_000, 20_000)],
            15_000 * YUAN
        ),
        (FeeTier::TwentyPercent, Some(FeeTier::TwentyPercent))
    );
    // 25,000 yuan: the second campaign waives; the article's would only discount.
    assert_eq!(
        tier_with(
            &[tiers(30_000, 50_000), tiers(10_000, 20_000)],
            25_000 * YUAN
        )
        .0,
        FeeTier::Waived
    );
}

#[test]
fn without_a_campaign_offering_fee_tiers_every_transfer_pays_the_list_fee() {
    assert_eq!(
        tier_with(&[None], 60_000 * YUAN),
        (FeeTier::List, Some(FeeTier::List))
    );
    assert_eq!(
        tier_with(&[], 60_000 * YUAN),
        (FeeTier::List, Some(FeeTier::List))
    );
}

#[test]
fn a_months_figures_earn_a_tier_only_from_campaigns_running_during_that_month() {
    // The campaign ends on the first day of the month the merchant's figures are judged in:
    // it still ran that month. One that ended the month before did not.
    for (ends_after_days, expected) in [(1, FeeTier::Waived), (0, FeeTier::List)] {
        let mut d = Driver::without_campaign(LedgerConfig::default());
        let month = cst_month(d.now_ms).next();
        let ends = month_start_ms(month) + ends_after_days * DAY_MS;
        let rules = CampaignRules {
            fee_tiers: tiers(30_000, 50_000),
            ..sprint()
        };
        let ends = ends.max(d.now_ms + 1);
        created(&mut d, create("short", None, ends, rules));
        let (m, shop) = merchant(&mut d, 9, MerchantKind::Shangyitong);
        d.now_ms = month_start_ms(month);
        d.submit(deposit(shop.account, 60_000 * YUAN)).unwrap();
        d.now_ms = month_start_ms(month.next());
        d.submit(Command::CloseMonth { month }).unwrap();
        assert_eq!(
            d.ledger.merchant(m).unwrap().fee_tier,
            expected,
            "campaign ending {ends_after_days} days into the month"
        );
    }
}

#[test]
fn the_vip_gift_comes_from_a_running_campaign_that_offers_it_at_its_tier() {
    let set = |account, tier| Command::SetVipTier { account, tier };
    // No campaign: no gift.
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let card = d.funded_card(1, 0);
    assert_eq!(
        d.submit(set(card.account, VipTier::Platinum)),
        Ok(Reply::VipTierSet {
            gift_recorded: false
        })
    );
    // A campaign giving it at diamond: platinum earns nothing, diamond the gift, once.
    let rules = CampaignRules {
        vip_gift: Some(VipTier::Diamond),
        ..sprint()
    };
    let ends = d.now_ms + DAY_MS;
    created(&mut d, create("diamond", None, ends, rules));
    let other = d.funded_card(2, 0);
    assert_eq!(
        d.submit(set(other.account, VipTier::Platinum)),
        Ok(Reply::VipTierSet {
            gift_recorded: false
        })
    );
    assert_eq!(
        d.submit(set(other.account, VipTier::Diamond)),
        Ok(Reply::VipTierSet {
            gift_recorded: true
        })
    );
    assert_eq!(d.ledger.gift(other.account).unwrap().tier, VipTier::Diamond);
    // After the campaign ends, no more gifts.
    d.advance(DAY_MS);
    assert_eq!(
        d.submit(set(card.account, VipTier::Diamond)),
        Ok(Reply::VipTierSet {
            gift_recorded: false
        })
    );
}

#[test]
fn a_campaign_starts_at_ledger_time_or_later_and_reports_its_start() {
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let now = d.now_ms;
    assert_eq!(
        d.submit(create("now", None, now + DAY_MS, sprint())),
        Ok(Reply::CampaignCreated {
            campaign: CampaignId(1),
            starts_ms: now
        })
    );
    assert_eq!(
        d.submit(create(
            "later",
            Some(now + DAY_MS),
            now + 2 * DAY_MS,
            sprint()
        )),
        Ok(Reply::CampaignCreated {
            campaign: CampaignId(2),
            starts_ms: now + DAY_MS
        })
    );
    let c = d.ledger.campaign(CampaignId(2)).unwrap();
    assert_eq!(
        (c.name.as_str(), c.starts_ms, c.ends_ms),
        ("later", now + DAY_MS, now + 2 * DAY_MS)
    );
    assert_eq!(c.rules, sprint());
}

#[test]
fn a_bad_campaign_is_refused_with_a_typed_error_changes_nothing_and_a_retry_gets_the_same_answer() {
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let now = d.now_ms;
    let end = now + DAY_MS;
    let rule = |rule, value, min, max| LedgerError::InvalidCampaignRule {
        rule,
        value,
        min,
        max,
    };
    let with_pos = |min_count, min_fen, reward_fen| CampaignRules {
        pos_reward: Some(RewardRule {
            min_count,
            min_fen,
            reward_fen,
        }),
        ..sprint()
    };
    let with_tiers = |change: fn(&mut FeeTiers)| {
        let mut t = tiers(30_000, 50_000).unwrap();
        change(&mut t);
        CampaignRules {
            fee_tiers: Some(t),
            ..sprint()
        }
    };
    let nothing = CampaignRules {
        pos_reward: None,
        shangyitong_reward: None,
        fee_tiers: None,
        vip_gift: Some(VipTier::None),
    };
    let cases = [
        (
            create("empty", None, now, sprint()),
            LedgerError::InvalidCampaignWindow,
        ),
        (
            create("past", Some(now - 1), end, sprint()),
            LedgerError::CampaignStartsInPast {
                starts_ms: now - 1,
                now_ms: now,
            },
        ),
        (
            create("nothing", None, end, nothing),
            LedgerError::CampaignWithoutRules,
        ),
        (
            create("count", None, end, with_pos(0, 0, 1)),
            rule(CampaignRule::RewardMinCount, 0, 1, MAX_CAMPAIGN_COUNT),
        ),
        (
            create("overflow", None, end, with_pos(1, u64::MAX, 1)),
            rule(
                CampaignRule::RewardMinAmountFen,
                u64::MAX,
                0,
                MAX_CAMPAIGN_THRESHOLD_FEN,
            ),
        ),
        (
            create("free", None, end, with_pos(1, 0, 0)),
            rule(CampaignRule::RewardAmountFen, 0, 1, MAX_CAMPAIGN_REWARD_FEN),
        ),
        (
            create(
                "lavish",
                None,
                end,
                with_pos(1, 0, MAX_CAMPAIGN_REWARD_FEN + 1),
            ),
            rule(
                CampaignRule::RewardAmountFen,
                MAX_CAMPAIGN_REWARD_FEN + 1,
                1,
                MAX_CAMPAIGN_REWARD_FEN,
            ),
        ),
        (
            create("hold", None, end, with_tiers(|t| t.hold_months = 0)),
            rule(
                CampaignRule::TierHoldMonths,
                0,
                1,
                MAX_TIER_HOLD_MONTHS.into(),
            ),
        ),
        (
            create("hold", None, end, with_tiers(|t| t.hold_months = 25)),
            rule(
                CampaignRule::TierHoldMonths,
                25,
                1,
                MAX_TIER_HOLD_MONTHS.into(),
            ),
        ),
        (
            create(
                "terminals",
                None,
                end,
                with_tiers(|t| t.discount_min_tx_per_terminal = 0),
            ),
            rule(
                CampaignRule::DiscountMinTxPerTerminal,
                0,
                1,
                MAX_CAMPAIGN_COUNT,
            ),
        ),
        (
            create(
                "balance",
                None,
                end,
                with_tiers(|t| t.waived_min_avg_balance_fen = u64::MAX),
            ),
            rule(
                CampaignRule::WaivedMinAvgBalanceFen,
                u64::MAX,
                1,
                MAX_CAMPAIGN_THRESHOLD_FEN,
            ),
        ),
        (
            create(
                "balance",
                None,
                end,
                with_tiers(|t| t.discount_min_avg_balance_fen = 0),
            ),
            rule(
                CampaignRule::DiscountMinAvgBalanceFen,
                0,
                1,
                MAX_CAMPAIGN_THRESHOLD_FEN,
            ),
        ),
        (
            create(&"x".repeat(MAX_NAME_BYTES + 1), None, end, sprint()),
            LedgerError::TextTooLong {
                field: TextField::CampaignName,
                max: MAX_NAME_BYTES,
            },
        ),
    ];
    for (command, expected) in cases {
        let key = d.fresh_key();
        let first = unchanged(&mut d, |d| d.submit_with_key(key, command.clone()));
        assert_eq!(first, Err(expected.clone()), "{command:?}");
        let again = unchanged(&mut d, |d| d.submit_with_key(key, command.clone()));
        assert_eq!(again, first, "a retry under the same key");
    }
    d.ledger.check_invariants().unwrap();
}

#[test]
fn the_ledger_holds_at_most_its_named_number_of_campaigns() {
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let end = d.now_ms + DAY_MS;
    for i in 1..=MAX_CAMPAIGNS {
        assert_eq!(
            created(&mut d, create("c", None, end, sprint())),
            CampaignId(i)
        );
    }
    refused(
        &mut d,
        create("one too many", None, end, sprint()),
        LedgerError::TooManyCampaigns { max: MAX_CAMPAIGNS },
    );
}

#[test]
fn every_running_campaign_counts_a_settlement_so_many_campaigns_still_count_each_once() {
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let end = d.now_ms + DAY_MS;
    for _ in 0..MAX_CAMPAIGNS {
        created(&mut d, create("c", None, end, sprint()));
    }
    let payer = d.funded_card(1, 1_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    for _ in 0..3 {
        swipe(&mut d, &payer, m, 10 * YUAN);
    }
    for c in 1..=MAX_CAMPAIGNS {
        let counted = counters(&d, m, c);
        assert_eq!(
            (counted.tx_count, counted.amount_fen),
            (3, 30 * YUAN),
            "campaign {c}"
        );
        assert!(counted.reward_payment.is_some(), "campaign {c}");
    }
    assert_eq!(
        balance(&d, AccountId::TELECOM_SETTLEMENT),
        (MAX_CAMPAIGNS * 5 * YUAN) as i64
    );
}

#[test]
fn the_vip_gift_is_for_reaching_the_tier_not_for_being_set_to_it_again() {
    // A diamond holder from before the campaign set to diamond again during it: no gift.
    let mut d = Driver::without_campaign(LedgerConfig::default());
    let card = d.funded_card(1, 0);
    let set = |tier| Command::SetVipTier {
        account: card.account,
        tier,
    };
    d.submit(set(VipTier::Diamond)).unwrap();
    let rules = CampaignRules {
        vip_gift: Some(VipTier::Diamond),
        ..sprint()
    };
    let ends = d.now_ms + DAY_MS;
    created(&mut d, create("diamond", None, ends, rules));
    assert_eq!(
        d.submit(set(VipTier::Diamond)),
        Ok(Reply::VipTierSet {
            gift_recorded: false
        })
    );
    assert_eq!(d.ledger.gift(card.account), None);
}
