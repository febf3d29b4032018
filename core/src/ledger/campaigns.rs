//! Merchant campaigns as records (PSBC 心计划, DOMAIN.md section 4): an operator creates a
//! campaign with its window and rules; several may run at once, each with its own counters
//! per merchant, its own one-time rewards and its own fee tiers.

use super::{accounts, Apply, Handled};
use crate::config::{
    MAX_CAMPAIGNS, MAX_CAMPAIGN_COUNT, MAX_CAMPAIGN_REWARD_FEN, MAX_CAMPAIGN_THRESHOLD_FEN,
    MAX_NAME_BYTES, MAX_TIER_HOLD_MONTHS,
};
use crate::outcome::{CampaignRule, LedgerError, Reply, TextField};
use crate::state::{Campaign, CampaignCounters, Key, Merchant, Value};
use crate::types::{
    AccountId, CampaignId, CampaignRules, MerchantId, PaymentId, RewardRule, VipTier,
};
use crate::validate;

fn check(rule: CampaignRule, value: u64, min: u64, max: u64) -> Result<(), LedgerError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(LedgerError::InvalidCampaignRule {
            rule,
            value,
            min,
            max,
        })
    }
}

fn check_reward(r: &RewardRule) -> Result<(), LedgerError> {
    check(
        CampaignRule::RewardMinCount,
        r.min_count,
        1,
        MAX_CAMPAIGN_COUNT,
    )?;
    check(
        CampaignRule::RewardMinAmountFen,
        r.min_fen,
        0,
        MAX_CAMPAIGN_THRESHOLD_FEN,
    )?;
    check(
        CampaignRule::RewardAmountFen,
        r.reward_fen,
        1,
        MAX_CAMPAIGN_REWARD_FEN,
    )
}

/// Every number of a campaign's rules within its named limit; at least one rule.
fn check_rules(rules: &CampaignRules) -> Result<(), LedgerError> {
    if rules.pos_reward.is_none()
        && rules.shangyitong_reward.is_none()
        && rules.fee_tiers.is_none()
        && rules.vip_gift.is_none_or(|t| t == VipTier::None)
    {
        return Err(LedgerError::CampaignWithoutRules);
    }
    for reward in [rules.pos_reward, rules.shangyitong_reward]
        .iter()
        .flatten()
    {
        check_reward(reward)?;
    }
    if let Some(t) = rules.fee_tiers {
        check(
            CampaignRule::DiscountMinAvgBalanceFen,
            t.discount_min_avg_balance_fen,
            1,
            MAX_CAMPAIGN_THRESHOLD_FEN,
        )?;
        check(
            CampaignRule::DiscountMinTxPerTerminal,
            t.discount_min_tx_per_terminal,
            1,
            MAX_CAMPAIGN_COUNT,
        )?;
        check(
            CampaignRule::WaivedMinAvgBalanceFen,
            t.waived_min_avg_balance_fen,
            1,
            MAX_CAMPAIGN_THRESHOLD_FEN,
        )?;
        check(
            CampaignRule::TierHoldMonths,
            u64::from(t.hold_months),
            1,
            u64::from(MAX_TIER_HOLD_MONTHS),
        )?;
    }
    Ok(())
}

pub(super) fn create(
    a: &mut Apply<'_>,
    name: &str,
    starts_ms: Option<u64>,
    ends_ms: u64,
    rules: &CampaignRules,
) -> Handled {
    validate::text(TextField::CampaignName, name, MAX_NAME_BYTES)?;
    let starts_ms = match starts_ms {
        None => a.now_ms,
        Some(ms) if ms < a.now_ms => {
            return Err(LedgerError::CampaignStartsInPast {
                starts_ms: ms,
                now_ms: a.now_ms,
            }
            .into())
        }
        Some(ms) => ms,
    };
    if ends_ms <= starts_ms {
        return Err(LedgerError::InvalidCampaignWindow.into());
    }
    check_rules(rules)?;
    if a.meta.next_campaign > MAX_CAMPAIGNS {
        return Err(LedgerError::TooManyCampaigns { max: MAX_CAMPAIGNS }.into());
    }
    let campaign = CampaignId(a.meta.next_campaign);
    a.meta.next_campaign += 1;
    a.tx.put(
        Key::Campaign(campaign),
        Campaign {
            name: name.to_owned(),
            starts_ms,
            ends_ms,
            rules: *rules,
        },
    );
    Ok(Reply::CampaignCreated {
        campaign,
        starts_ms,
    })
}

/// Every campaign, oldest first (at most `MAX_CAMPAIGNS`).
pub(super) fn all(a: &Apply<'_>) -> Vec<(CampaignId, Campaign)> {
    a.tx.range(
        Key::Campaign(CampaignId(0)),
        Key::Campaign(CampaignId(u64::MAX)),
        MAX_CAMPAIGNS as usize,
    )
    .into_iter()
    .map(|(key, value)| match (key, value) {
        (Key::Campaign(id), Value::Campaign(c)) => (id, *c),
        other => unreachable!("range stays inside the campaigns: {other:?}"),
    })
    .collect()
}

/// The campaigns running at `ms`.
pub(super) fn running_at(a: &Apply<'_>, ms: u64) -> Vec<(CampaignId, Campaign)> {
    let mut campaigns = all(a);
    campaigns.retain(|(_, c)| c.runs_at(ms));
    campaigns
}

fn counters(a: &Apply<'_>, merchant: MerchantId, campaign: CampaignId) -> CampaignCounters {
    a.tx.get(Key::MerchantCampaign(merchant, campaign))
        .unwrap_or_default()
}

/// Counts a settlement of `bill_fen` for the merchant in every campaign running now, and
/// grants each campaign's one-time reward when this very settlement is the first to bring a
/// merchant registered during that campaign to both of its thresholds. Returns the campaigns
/// that rewarded it.
pub(super) fn record_settlement(
    a: &mut Apply<'_>,
    id: MerchantId,
    m: &Merchant,
    bill_fen: u64,
    payment: PaymentId,
) -> Result<Vec<CampaignId>, LedgerError> {
    let mut rewarded = Vec::new();
    for (campaign, c) in running_at(a, a.now_ms) {
        let mut counted = counters(a, id, campaign);
        counted.tx_count += 1;
        counted.amount_fen = counted.amount_fen.saturating_add(bill_fen);
        let reward = c.rules.reward_for(m.kind).filter(|rule| {
            c.runs_at(m.registered_ms)
                && counted.reward_payment.is_none()
                && counted.tx_count >= rule.min_count
                && counted.amount_fen >= rule.min_fen
        });
        if reward.is_some() {
            counted.reward_payment = Some(payment);
        }
        a.tx.put(Key::MerchantCampaign(id, campaign), counted);
        if let Some(rule) = reward {
            accounts::post(
                a,
                AccountId::PROMOTIONS,
                AccountId::TELECOM_SETTLEMENT,
                rule.reward_fen,
                crate::types::Cause::Reward {
                    campaign,
                    merchant: id,
                },
            )?;
            rewarded.push(campaign);
        }
    }
    Ok(rewarded)
}

/// A refund of a payment settled at `settled_ms` lowers the merchant's amount in every
/// campaign that counted the payment; the count stays, and a granted reward is kept.
pub(super) fn record_refund(a: &mut Apply<'_>, id: MerchantId, refund_fen: u64, settled_ms: u64) {
    for (campaign, _) in running_at(a, settled_ms) {
        let mut counted = counters(a, id, campaign);
        counted.amount_fen = counted.amount_fen.saturating_sub(refund_fen);
        a.tx.put(Key::MerchantCampaign(id, campaign), counted);
    }
}

/// Whether reaching `tier` from below now earns the VIP gift: some running campaign gives it
/// at that tier or a lower one.
pub(super) fn gives_vip_gift(a: &Apply<'_>, from: VipTier, to: VipTier) -> bool {
    running_at(a, a.now_ms).iter().any(|(_, c)| {
        c.rules
            .vip_gift
            .is_some_and(|gift| gift > VipTier::None && from < gift && to >= gift)
    })
}
