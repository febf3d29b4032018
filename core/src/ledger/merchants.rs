//! Merchants: registration, the month-to-date figures with an exact time-weighted average
//! balance, and the 商易通 fee tiers the running campaigns grant, with their holds. Campaign
//! counters and rewards live in `campaigns`.

use super::{accounts, campaigns, Apply, Handled};
use crate::config::{LedgerConfig, MAX_NAME_BYTES, MAX_TERMINALS};
use crate::outcome::{LedgerError, Reply, TextField};
use crate::state::{Key, Merchant, MonthFigures, Value};
use crate::time::{cst_month, month_start_ms};
use crate::types::{
    AccountId, CampaignId, Cause, FeeTier, FeeTiers, MerchantId, MerchantKind, PaymentId, YearMonth,
};
use crate::validate;

pub(super) fn load(a: &Apply<'_>, id: MerchantId) -> Result<Merchant, LedgerError> {
    a.tx.get(Key::Merchant(id))
        .ok_or(LedgerError::UnknownMerchant { merchant: id })
}

/// Rounds `numerator / denominator` half up (fees are computed in fen, rounded half up).
fn div_round_half_up(numerator: u64, denominator: u64) -> u64 {
    (numerator + denominator / 2) / denominator
}

/// The transfer fee for a 商易通 merchant at a tier: the list fee (a percentage, clamped to
/// its minimum and maximum), then the tier's discount, each rounded half up.
pub fn transfer_fee_fen(config: &LedgerConfig, tier: FeeTier, amount_fen: u64) -> u64 {
    let list = div_round_half_up(amount_fen * config.list_fee_basis_points, 10_000)
        .clamp(config.list_fee_min_fen, config.list_fee_max_fen);
    match tier {
        FeeTier::List => list,
        FeeTier::TwentyPercent => div_round_half_up(list * 20, 100),
        FeeTier::Waived => 0,
    }
}

/// The tier a month's figures earn under one campaign's fee tiers.
fn earned_tier(t: &FeeTiers, m: &Merchant, avg_balance_fen: u64, tx_count: u64) -> FeeTier {
    if avg_balance_fen >= t.waived_min_avg_balance_fen {
        FeeTier::Waived
    } else if avg_balance_fen >= t.discount_min_avg_balance_fen
        || tx_count / u64::from(m.terminals) >= t.discount_min_tx_per_terminal
    {
        FeeTier::TwentyPercent
    } else {
        FeeTier::List
    }
}

/// The tier a merchant's transfers pay in `month`: the best one still held then. Each tier
/// keeps its own hold, so a lesser tier earned while a better one holds is not lost: it
/// applies once the better one's hold ends, for what remains of its own.
fn tier_in(m: &Merchant, month: YearMonth) -> FeeTier {
    let holds = |through: Option<YearMonth>| through.is_some_and(|t| t >= month);
    if holds(m.waived_through) {
        FeeTier::Waived
    } else if holds(m.discount_through) {
        FeeTier::TwentyPercent
    } else {
        FeeTier::List
    }
}

/// Closes the merchant's current month and every month up to (not including) `to`: the
/// average balance is exact (balance × time since registration or the month's start). Each
/// campaign with fee tiers that ran during month M judges its figures; a tier earned applies
/// from M+1 for that campaign's hold. A better tier earned meanwhile replaces a held one at
/// once, and a lesser one waits for it to end.
fn roll(a: &Apply<'_>, m: &mut Merchant, to: YearMonth) {
    if m.month >= to {
        return;
    }
    // (window, fee tiers) of every campaign offering them; only 商易通 merchants pay fees.
    let tiers: Vec<(u64, u64, FeeTiers)> = if m.kind == MerchantKind::Shangyitong {
        campaigns::all(a)
            .into_iter()
            .filter_map(|(_, c)| Some((c.starts_ms, c.ends_ms, c.rules.fee_tiers?)))
            .collect()
    } else {
        Vec::new()
    };
    while m.month < to {
        let month_start = month_start_ms(m.month);
        let month_end_ms = month_start_ms(m.month.next());
        let period_start_ms = month_start.max(m.registered_ms);
        m.balance_fen_ms +=
            i128::from(m.last_balance_fen) * i128::from(month_end_ms - m.balance_since_ms);
        let avg_balance_fen = match month_end_ms.saturating_sub(period_start_ms) {
            0 => m.last_balance_fen.max(0) as u64,
            span => (m.balance_fen_ms / i128::from(span)).max(0) as u64,
        };
        let mut best = FeeTier::List;
        for (starts_ms, ends_ms, t) in &tiers {
            if *starts_ms >= month_end_ms || *ends_ms <= month_start {
                continue;
            }
            let earned = earned_tier(t, m, avg_balance_fen, m.month_tx_count);
            let through = m.month.plus(t.hold_months);
            let held = match earned {
                FeeTier::Waived => &mut m.waived_through,
                FeeTier::TwentyPercent => &mut m.discount_through,
                FeeTier::List => continue,
            };
            *held = Some(held.map_or(through, |h| h.max(through)));
            best = best.max(earned);
        }
        let next = m.month.next();
        m.fee_tier = tier_in(m, next);
        m.last_month = Some(MonthFigures {
            month: m.month,
            avg_balance_fen,
            tx_count: m.month_tx_count,
            earned: best,
        });
        m.month = next;
        m.month_tx_count = 0;
        m.balance_fen_ms = 0;
        m.balance_since_ms = month_end_ms;
    }
}

/// Called by every posting that changes a settlement account: keeps the balance integral
/// exact.
pub(super) fn track_balance(a: &mut Apply<'_>, id: MerchantId, balance_fen: i64) {
    let mut m = load(a, id).unwrap_or_else(|_| {
        panic!("corrupt state: settlement account names missing merchant {id}")
    });
    roll(a, &mut m, cst_month(a.now_ms));
    m.balance_fen_ms += i128::from(m.last_balance_fen) * i128::from(a.now_ms - m.balance_since_ms);
    m.balance_since_ms = a.now_ms;
    m.last_balance_fen = balance_fen;
    a.tx.put(Key::Merchant(id), m);
}

pub(super) fn register(
    a: &mut Apply<'_>,
    kind: MerchantKind,
    name: &str,
    settlement_account: AccountId,
    contact_phone: &str,
    terminals: u32,
) -> Handled {
    validate::text(TextField::MerchantName, name, MAX_NAME_BYTES)?;
    match kind {
        MerchantKind::Shangyitong => validate::landline(contact_phone)?,
        MerchantKind::Pos | MerchantKind::Online => validate::mobile_phone(contact_phone)?,
    }
    if terminals == 0 || terminals > MAX_TERMINALS {
        return Err(LedgerError::InvalidTerminalCount { max: MAX_TERMINALS }.into());
    }
    let mut account = accounts::load_customer(a, settlement_account)?;
    if let Some(merchant) = account.merchant {
        return Err(LedgerError::SettlementAccountTaken {
            account: settlement_account,
            merchant,
        }
        .into());
    }
    let id = MerchantId(a.meta.next_merchant);
    a.meta.next_merchant += 1;
    account.merchant = Some(id);
    a.tx.put(Key::Account(settlement_account), account);
    let month = cst_month(a.now_ms);
    a.tx.put(
        Key::Merchant(id),
        Merchant {
            kind,
            name: name.to_owned(),
            settlement_account,
            contact_phone: contact_phone.to_owned(),
            terminals,
            registered_ms: a.now_ms,
            month,
            month_tx_count: 0,
            balance_fen_ms: 0,
            balance_since_ms: a.now_ms,
            last_balance_fen: account.balance_fen,
            fee_tier: FeeTier::List,
            waived_through: None,
            discount_through: None,
            last_month: None,
        },
    );
    Ok(Reply::MerchantRegistered { merchant: id })
}

/// Counts a settled payment for its merchant's month and for every running campaign, which
/// may grant one-time rewards. Returns the campaigns that rewarded this settlement.
pub(super) fn record_settlement(
    a: &mut Apply<'_>,
    id: MerchantId,
    bill_fen: u64,
    payment: PaymentId,
) -> Result<Vec<CampaignId>, LedgerError> {
    let mut m = load(a, id)?;
    roll(a, &mut m, cst_month(a.now_ms));
    m.month_tx_count += 1;
    let rewarded = campaigns::record_settlement(a, id, &m, bill_fen, payment)?;
    a.tx.put(Key::Merchant(id), m);
    Ok(rewarded)
}

/// A merchant transfers out of its settlement account; a 商易通 merchant pays the fee of its
/// tier into `fee_income`.
pub(super) fn transfer_out(
    a: &mut Apply<'_>,
    id: MerchantId,
    target: AccountId,
    amount_fen: u64,
) -> Handled {
    validate::amount(amount_fen)?;
    let mut m = load(a, id)?;
    if target == m.settlement_account {
        return Err(LedgerError::SameAccount.into());
    }
    accounts::load_customer(a, target)?;
    roll(a, &mut m, cst_month(a.now_ms));
    let tier = m.fee_tier;
    let fee_fen = match m.kind {
        MerchantKind::Shangyitong => transfer_fee_fen(a.config, tier, amount_fen),
        MerchantKind::Pos | MerchantKind::Online => 0,
    };
    let source = m.settlement_account;
    a.tx.put(Key::Merchant(id), m);
    // The transfer and its fee leave together: a refusal names the whole debit, not the
    // fee posting's share of a balance the transfer already took.
    accounts::require_balance(a, source, amount_fen + fee_fen)?;
    accounts::post(a, source, target, amount_fen, Cause::MerchantTransfer(id))?;
    if fee_fen > 0 {
        accounts::post(a, source, AccountId::FEE_INCOME, fee_fen, Cause::Fee(id))?;
    }
    Ok(Reply::MerchantTransferred { fee_fen, tier })
}

/// Closes a CST month for every merchant: their figures roll into it and the tiers for the
/// next months are decided. Merchants also roll lazily on their next activity, so a late
/// close never changes a fee; closing makes the figures visible and final.
pub(super) fn close_month(a: &mut Apply<'_>, month: YearMonth) -> Handled {
    if a.now_ms < month_start_ms(month.next()) {
        return Err(LedgerError::MonthNotOver { month }.into());
    }
    if a.meta
        .last_closed_month
        .is_some_and(|closed| closed >= month)
    {
        return Err(LedgerError::MonthAlreadyClosed { month }.into());
    }
    let rows = a.tx.range(
        Key::Merchant(MerchantId(0)),
        Key::Merchant(MerchantId(u64::MAX)),
        usize::MAX,
    );
    let mut merchants = 0;
    for (key, value) in rows {
        let (Key::Merchant(id), Value::Merchant(mut m)) = (key, value) else {
            unreachable!("range stays inside the merchants")
        };
        if m.month <= month {
            roll(a, &mut m, month.next());
            a.tx.put(Key::Merchant(id), *m);
            merchants += 1;
        }
    }
    a.meta.last_closed_month = Some(month);
    Ok(Reply::MonthClosed { month, merchants })
}
