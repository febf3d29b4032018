//! Promotion points and prizes (减排积分, DOMAIN.md section 8): promotions name partner
//! merchants, a window and a rate; an e-Pay payment settled at a partner within the window
//! earns the payer points in the command that settles it, once; prizes have a points price
//! and a stock and are redeemed first come, first served, never past the stock; refunds take
//! points back in proportion, never below zero.

use super::{accounts, Apply, Handled};
use crate::config::{
    MAX_NAME_BYTES, MAX_POINTS_PER_YUAN, MAX_PRIZES, MAX_PRIZE_POINTS, MAX_PRIZE_STOCK,
    MAX_PROMOTIONS, MAX_PROMOTION_PARTNERS, YUAN,
};
use crate::outcome::{LedgerError, Reply, TextField};
use crate::state::{Key, Prize, Promotion, Value};
use crate::types::{AccountId, MerchantId, PrizeId, PromotionId};
use crate::validate;

fn points_of(a: &Apply<'_>, account: AccountId) -> u64 {
    match a.tx.get_value(&Key::Points(account)) {
        Some(Value::Points(p)) => p,
        Some(other) => panic!("corrupt state: {other:?} as points of {account}"),
        None => 0,
    }
}

fn set_points(a: &mut Apply<'_>, account: AccountId, points: u64) {
    a.tx.put_value(Key::Points(account), Some(Value::Points(points)));
}

pub(super) fn create_promotion(
    a: &mut Apply<'_>,
    name: &str,
    partners: &[MerchantId],
    valid_from_ms: u64,
    valid_until_ms: u64,
    points_per_yuan: u32,
) -> Handled {
    validate::text(TextField::PromotionName, name, MAX_NAME_BYTES)?;
    if valid_until_ms <= valid_from_ms {
        return Err(LedgerError::InvalidPromotionWindow.into());
    }
    if points_per_yuan == 0 || points_per_yuan > MAX_POINTS_PER_YUAN {
        return Err(LedgerError::InvalidPointsRate {
            max: MAX_POINTS_PER_YUAN,
        }
        .into());
    }
    let mut distinct = partners.to_vec();
    distinct.sort();
    distinct.dedup();
    if partners.is_empty()
        || partners.len() > MAX_PROMOTION_PARTNERS
        || distinct.len() != partners.len()
    {
        return Err(LedgerError::InvalidPartners {
            max: MAX_PROMOTION_PARTNERS,
        }
        .into());
    }
    for m in partners {
        super::merchants::load(a, *m)?;
    }
    if a.meta.next_promotion > MAX_PROMOTIONS {
        return Err(LedgerError::TooManyPromotions {
            max: MAX_PROMOTIONS,
        }
        .into());
    }
    let promotion = PromotionId(a.meta.next_promotion);
    a.meta.next_promotion += 1;
    a.tx.put(
        Key::Promotion(promotion),
        Promotion {
            name: name.to_owned(),
            partners: partners.to_vec(),
            valid_from_ms,
            valid_until_ms,
            points_per_yuan,
        },
    );
    Ok(Reply::PromotionCreated { promotion })
}

pub(super) fn create_prize(
    a: &mut Apply<'_>,
    name: &str,
    price_points: u64,
    stock: u64,
) -> Handled {
    validate::text(TextField::PrizeName, name, MAX_NAME_BYTES)?;
    if !(1..=MAX_PRIZE_POINTS).contains(&price_points) || !(1..=MAX_PRIZE_STOCK).contains(&stock) {
        return Err(LedgerError::InvalidPrize {
            max_points: MAX_PRIZE_POINTS,
            max_stock: MAX_PRIZE_STOCK,
        }
        .into());
    }
    if a.meta.next_prize > MAX_PRIZES {
        return Err(LedgerError::TooManyPrizes { max: MAX_PRIZES }.into());
    }
    let prize = PrizeId(a.meta.next_prize);
    a.meta.next_prize += 1;
    a.tx.put(
        Key::Prize(prize),
        Prize {
            name: name.to_owned(),
            price_points,
            stock,
            redeemed: 0,
        },
    );
    Ok(Reply::PrizeCreated { prize })
}

/// The points an e-Pay bill settled now at `merchant` earns under every promotion that
/// names it and is open (whole yuan × rate, summed over promotions), credited to the payer.
pub(super) fn earn(
    a: &mut Apply<'_>,
    payer: AccountId,
    merchant: MerchantId,
    bill_fen: u64,
) -> u64 {
    let rows = a.tx.range(
        Key::Promotion(PromotionId(0)),
        Key::Promotion(PromotionId(u64::MAX)),
        MAX_PROMOTIONS as usize,
    );
    let whole_yuan = bill_fen / YUAN;
    let mut earned = 0u64;
    for (_, value) in rows {
        let Value::Promotion(p) = value else {
            unreachable!("range stays inside the promotions")
        };
        let open = (p.valid_from_ms..p.valid_until_ms).contains(&a.now_ms);
        if open && p.partners.contains(&merchant) {
            earned = earned.saturating_add(whole_yuan.saturating_mul(u64::from(p.points_per_yuan)));
        }
    }
    if earned > 0 {
        let points = points_of(a, payer).saturating_add(earned);
        set_points(a, payer, points);
    }
    earned
}

/// After a refund brought a payment's refunds to `refunded_fen` of `bill_fen`: the points
/// still to take back so that, over all its refunds, the payment takes back its earned
/// points in proportion. The holder loses at most what it holds (never below zero).
pub(super) fn take_back(
    a: &mut Apply<'_>,
    payer: AccountId,
    earned: u64,
    already_taken: u64,
    refunded_fen: u64,
    bill_fen: u64,
) -> u64 {
    let due = (u128::from(earned) * u128::from(refunded_fen) / u128::from(bill_fen)) as u64;
    let take = due.saturating_sub(already_taken);
    if take > 0 {
        let held = points_of(a, payer);
        set_points(a, payer, held.saturating_sub(take));
    }
    take
}

/// One prize for `account`'s points: first come, first served, never past the stock.
pub(super) fn redeem(a: &mut Apply<'_>, prize_id: PrizeId, account: AccountId) -> Handled {
    let mut prize: Prize =
        a.tx.get(Key::Prize(prize_id))
            .ok_or(LedgerError::UnknownPrize { prize: prize_id })?;
    accounts::load_customer(a, account)?;
    if prize.redeemed >= prize.stock {
        return Err(LedgerError::PrizeOutOfStock {
            prize: prize_id,
            stock: prize.stock,
        }
        .into());
    }
    let points = points_of(a, account);
    if points < prize.price_points {
        return Err(LedgerError::NotEnoughPoints {
            account,
            points,
            price: prize.price_points,
        }
        .into());
    }
    let points_left = points - prize.price_points;
    set_points(a, account, points_left);
    prize.redeemed += 1;
    let stock_left = prize.stock - prize.redeemed;
    a.tx.put(Key::Prize(prize_id), prize);
    Ok(Reply::PrizeRedeemed {
        prize: prize_id,
        points_left,
        stock_left,
    })
}
