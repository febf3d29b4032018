//! The rules of DOMAIN.md section 8, promotion points (减排积分) and prizes. One test per
//! rule, named after the rule. Every refusal is also checked to leave the state hash
//! unchanged.

mod common;

use common::{driver, enrolled, merchant, refused, settled};
use ledger_core::command::Command;
use ledger_core::config::{
    MAX_POINTS_PER_YUAN, MAX_PRIZES, MAX_PRIZE_POINTS, MAX_PRIZE_STOCK, MAX_PROMOTIONS,
    MAX_PROMOTION_PARTNERS, YUAN,
};
use ledger_core::outcome::{LedgerError, Reply, TextField};
use ledger_core::state::Key;
use ledger_core::time::DAY_MS;
use ledger_core::types::{AccountId, MerchantId, MerchantKind, Payee, PaymentId, PrizeId};
use ledger_testkit::driver::{Card, Driver};

/// A ledger with an enrolled payer holding 5,000 yuan, a partner and a non-partner merchant,
/// and a promotion paying `rate` points per yuan at the partner for 30 days from now.
fn with_promotion(rate: u32) -> (Driver, Card, MerchantId, MerchantId) {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 5_000 * YUAN);
    let (partner, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let (other, _) = merchant(&mut d, 10, MerchantKind::Online);
    promotion(&mut d, vec![partner], rate);
    (d, payer, partner, other)
}

fn promotion(d: &mut Driver, partners: Vec<MerchantId>, rate: u32) {
    let now = d.now_ms;
    d.submit(Command::CreatePromotion {
        name: "railway".into(),
        partners,
        valid_from_ms: now,
        valid_until_ms: now + 30 * DAY_MS,
        points_per_yuan: rate,
    })
    .unwrap();
}

fn prize(d: &mut Driver, price_points: u64, stock: u64) -> PrizeId {
    match d.submit(Command::CreatePrize {
        name: "train ticket".into(),
        price_points,
        stock,
    }) {
        Ok(Reply::PrizeCreated { prize }) => prize,
        other => panic!("{other:?}"),
    }
}

fn pay(d: &mut Driver, payer: &Card, m: MerchantId, bill_fen: u64, order: &str) -> PaymentId {
    match d.pay(payer, Payee::Merchant(m), bill_fen, order).unwrap() {
        Reply::PaymentSettled { payment, .. } => payment,
        other => panic!("{other:?}"),
    }
}

fn redeem(prize: PrizeId, account: AccountId) -> Command {
    Command::RedeemPrize { prize, account }
}

#[test]
fn an_epay_payment_at_a_partner_in_the_window_earns_points_per_whole_yuan_of_the_bill() {
    let (mut d, payer, partner, _) = with_promotion(1);
    let p = pay(&mut d, &payer, partner, 100 * YUAN + 99, "o1");
    assert_eq!(d.ledger.points(payer.account), 100);
    assert_eq!(d.ledger.payment(p).unwrap().points_earned, 100);
    // Each promotion that names the partner pays its own rate.
    promotion(&mut d, vec![partner], 3);
    pay(&mut d, &payer, partner, 10 * YUAN, "o2");
    assert_eq!(d.ledger.points(payer.account), 100 + 10 + 30);
}

#[test]
fn no_points_at_other_merchants_outside_the_window_or_for_a_card_swipe() {
    let (mut d, payer, partner, other) = with_promotion(1);
    pay(&mut d, &payer, other, 100 * YUAN, "o1");
    assert_eq!(d.ledger.points(payer.account), 0);
    // A swipe is not an e-Pay payment.
    settled(d.swipe(&payer, partner, 100 * YUAN, "r1"));
    assert_eq!(d.ledger.points(payer.account), 0);
    d.advance(30 * DAY_MS);
    pay(&mut d, &payer, partner, 100 * YUAN, "o2");
    assert_eq!(d.ledger.points(payer.account), 0);
}

#[test]
fn points_are_earned_once_per_settled_payment_in_the_settling_command() {
    let (mut d, payer, partner, _) = with_promotion(1);
    let (payment, challenge) = d
        .begin_payment(&payer, Payee::Merchant(partner), 50 * YUAN, "o")
        .unwrap();
    assert_eq!(d.ledger.points(payer.account), 0, "pending earns nothing");
    let code = d.code_for(challenge);
    let confirm = d.confirm_command(payment, &code).unwrap();
    let key = d.fresh_key();
    let first = d.submit_with_key(key, confirm.clone());
    let again = d.submit_with_key(key, confirm);
    assert_eq!(first, again);
    assert_eq!(d.ledger.points(payer.account), 50);
}

#[test]
fn prizes_are_redeemed_first_come_first_served_never_past_their_stock() {
    let (mut d, payer, partner, _) = with_promotion(1);
    pay(&mut d, &payer, partner, 1_000 * YUAN, "o");
    let ticket = prize(&mut d, 300, 2);
    assert_eq!(
        d.submit(redeem(ticket, payer.account)),
        Ok(Reply::PrizeRedeemed {
            prize: ticket,
            points_left: 700,
            stock_left: 1
        })
    );
    d.submit(redeem(ticket, payer.account)).unwrap();
    refused(
        &mut d,
        redeem(ticket, payer.account),
        LedgerError::PrizeOutOfStock {
            prize: ticket,
            stock: 2,
        },
    );
    assert_eq!(d.ledger.points(payer.account), 400);
    assert_eq!(d.ledger.prize(ticket).unwrap().redeemed, 2);
}

#[test]
fn redeeming_without_enough_points_is_refused_and_changes_nothing() {
    let (mut d, payer, partner, _) = with_promotion(1);
    pay(&mut d, &payer, partner, 299 * YUAN, "o");
    let ticket = prize(&mut d, 300, 5);
    refused(
        &mut d,
        redeem(ticket, payer.account),
        LedgerError::NotEnoughPoints {
            account: payer.account,
            points: 299,
            price: 300,
        },
    );
    refused(
        &mut d,
        redeem(PrizeId(99), payer.account),
        LedgerError::UnknownPrize { prize: PrizeId(99) },
    );
}

#[test]
fn refunds_take_points_back_in_proportion_and_never_below_zero() {
    let (mut d, payer, partner, _) = with_promotion(1);
    let p = pay(&mut d, &payer, partner, 100 * YUAN, "o");
    d.submit(Command::RefundPayment {
        payment: p,
        amount_fen: 25 * YUAN,
    })
    .unwrap();
    assert_eq!(d.ledger.points(payer.account), 75);
    // The holder spends 70 of them; the rest of the refund would take 75: only 5 are left.
    let ticket = prize(&mut d, 70, 1);
    d.submit(redeem(ticket, payer.account)).unwrap();
    d.submit(Command::RefundPayment {
        payment: p,
        amount_fen: 75 * YUAN,
    })
    .unwrap();
    assert_eq!(d.ledger.points(payer.account), 0);
    assert_eq!(d.ledger.payment(p).unwrap().refunds.points_taken, 100);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_promotion_or_prize_that_breaks_a_limit_is_refused() {
    let (mut d, _, partner, _) = with_promotion(1);
    let now = d.now_ms;
    let make =
        |partners: Vec<MerchantId>, from: u64, until: u64, rate: u32| Command::CreatePromotion {
            name: "p".into(),
            partners,
            valid_from_ms: from,
            valid_until_ms: until,
            points_per_yuan: rate,
        };
    let cases = [
        (
            make(vec![partner], now, now, 1),
            LedgerError::InvalidPromotionWindow,
        ),
        (
            make(vec![partner], now, now + 1, 0),
            LedgerError::InvalidPointsRate {
                max: MAX_POINTS_PER_YUAN,
            },
        ),
        (
            make(vec![partner], now, now + 1, MAX_POINTS_PER_YUAN + 1),
            LedgerError::InvalidPointsRate {
                max: MAX_POINTS_PER_YUAN,
            },
        ),
        (
            make(vec![], now, now + 1, 1),
            LedgerError::InvalidPartners { max: 64 },
        ),
        (
            make(vec![partner, partner], now, now + 1, 1),
            LedgerError::InvalidPartners { max: 64 },
        ),
        (
            make(vec![MerchantId(77)], now, now + 1, 1),
            LedgerError::UnknownMerchant {
                merchant: MerchantId(77),
            },
        ),
    ];
    for (command, error) in cases {
        refused(&mut d, command, error);
    }
    let bad_prize = LedgerError::InvalidPrize {
        max_points: MAX_PRIZE_POINTS,
        max_stock: MAX_PRIZE_STOCK,
    };
    for (price_points, stock) in [
        (0, 1),
        (1, 0),
        (MAX_PRIZE_POINTS + 1, 1),
        (1, MAX_PRIZE_STOCK + 1),
    ] {
        let command = Command::CreatePrize {
            name: "x".into(),
            price_points,
            stock,
        };
        refused(&mut d, command, bad_prize.clone());
    }
    refused(
        &mut d,
        Command::CreatePrize {
            name: "n".repeat(65),
            price_points: 1,
            stock: 1,
        },
        LedgerError::TextTooLong {
            field: TextField::PrizeName,
            max: 64,
        },
    );
}

#[test]
fn a_promotions_limits_are_inclusive() {
    let mut d = driver();
    let partners: Vec<MerchantId> = (0..MAX_PROMOTION_PARTNERS as u64 + 1)
        .map(|n| merchant(&mut d, 100 + n, MerchantKind::Online).0)
        .collect();
    let (most, one_too_many) = partners.split_at(MAX_PROMOTION_PARTNERS);
    promotion(&mut d, most.to_vec(), MAX_POINTS_PER_YUAN);
    let now = d.now_ms;
    let create = |partners: Vec<MerchantId>, rate: u32| Command::CreatePromotion {
        name: "railway".into(),
        partners,
        valid_from_ms: now,
        valid_until_ms: now + DAY_MS,
        points_per_yuan: rate,
    };
    refused(
        &mut d,
        create(partners.clone(), 1),
        LedgerError::InvalidPartners {
            max: MAX_PROMOTION_PARTNERS,
        },
    );
    refused(
        &mut d,
        create(one_too_many.to_vec(), MAX_POINTS_PER_YUAN + 1),
        LedgerError::InvalidPointsRate {
            max: MAX_POINTS_PER_YUAN,
        },
    );
    for _ in 1..MAX_PROMOTIONS {
        promotion(&mut d, one_too_many.to_vec(), 1);
    }
    refused(
        &mut d,
        create(one_too_many.to_vec(), 1),
        LedgerError::TooManyPromotions {
            max: MAX_PROMOTIONS,
        },
    );
}

#[test]
fn each_prize_has_its_own_id_up_to_the_most_prizes() {
    let mut d = driver();
    let first = prize(&mut d, 10, 1);
    let second = prize(&mut d, 20, 2);
    assert_eq!((first, second), (PrizeId(1), PrizeId(2)));
    assert_eq!(d.ledger.prize(first).unwrap().price_points, 10);
    assert_eq!(d.ledger.prize(second).unwrap().price_points, 20);
    for _ in 2..MAX_PRIZES {
        prize(&mut d, 1, 1);
    }
    let one_more = Command::CreatePrize {
        name: "one more".into(),
        price_points: 1,
        stock: 1,
    };
    refused(
        &mut d,
        one_more,
        LedgerError::TooManyPrizes { max: MAX_PRIZES },
    );
}

#[test]
fn a_payment_that_earns_no_points_leaves_no_points_record() {
    let (mut d, payer, _, other) = with_promotion(1);
    pay(&mut d, &payer, other, 100 * YUAN, "o1");
    assert_eq!(
        ledger_core::Store::get(d.ledger.store(), &Key::Points(payer.account)),
        None
    );
}

#[test]
fn exactly_the_price_in_points_redeems_a_prize_and_leaves_none() {
    let (mut d, payer, partner, _) = with_promotion(1);
    pay(&mut d, &payer, partner, 50 * YUAN, "o1");
    let ticket = prize(&mut d, 50, 1);
    d.submit(redeem(ticket, payer.account)).unwrap();
    assert_eq!(d.ledger.points(payer.account), 0);
}

#[test]
fn a_refund_of_a_payment_that_earned_no_points_leaves_no_points_record() {
    let (mut d, payer, _, other) = with_promotion(1);
    let p = pay(&mut d, &payer, other, 100 * YUAN, "o1");
    d.submit(Command::RefundPayment {
        payment: p,
        amount_fen: 100 * YUAN,
    })
    .unwrap();
    assert_eq!(
        ledger_core::Store::get(d.ledger.store(), &Key::Points(payer.account)),
        None
    );
}
