//! The rules of DOMAIN.md section 5, Voucher pools, and of the payments that use them
//! (the article's worked example, small transfers, refused payments). One test per rule,
//! named after the rule. Every refusal is also checked to leave the state hash unchanged.

mod common;

use common::{
    balance, claim, confirm_refused, deposit, driver, enrolled, merchant, pending, pool, refused,
    settled, with_card, withdraw,
};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::config::YUAN;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::time::DAY_MS;
use ledger_core::types::{AccountId, Eligibility, MerchantKind, Payee, VipTier};
use ledger_testkit::driver::Card;

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
    d.submit(claim(etc, payer.account)).unwrap();
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
    let counters = d.counters(m);
    assert_eq!((counters.tx_count, counters.amount_fen), (2, 140 * YUAN));
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_voucher_applies_only_to_a_bill_at_least_its_face_value() {
    let mut d = driver();
    let payer = enrolled(&mut d, 1, 1_000 * YUAN);
    let p50 = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    let p100 = pool(&mut d, 100 * YUAN, 10, Eligibility::Anyone);
    for p in [p50, p100] {
        d.submit(claim(p, payer.account)).unwrap();
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
    d.submit(claim(p, payer.account)).unwrap();
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
    d.submit(claim(p, payer.account)).unwrap();
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let (payment, challenge) = pending(&mut d, &payer, m, 150 * YUAN, "o");
    // The payer spends the money elsewhere before confirming.
    d.submit(withdraw(payer.account, 60 * YUAN)).unwrap();
    let code = d.code_for(challenge);
    let short = LedgerError::InsufficientFunds {
        account: payer.account,
        balance_fen: 40 * YUAN as i64,
        needed_fen: 100 * YUAN,
    };
    confirm_refused(&mut d, payment, &code, short);
    assert_eq!(d.counters(m).tx_count, 0);
    assert_eq!(
        d.ledger.voucher(payer.account, p).unwrap().consumed_by,
        None
    );
    assert_eq!(
        d.ledger.credential(payer.account).unwrap().spent_today_fen,
        0
    );
    // The code still works once the money is back.
    d.submit(deposit(payer.account, 60 * YUAN)).unwrap();
    settled(d.confirm(payment, &code));
}

#[test]
fn an_unknown_credential_is_a_typed_error() {
    let (mut d, card) = with_card(100);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    let command = d
        .begin_payment_command(&card, Payee::Merchant(m), 1, "o")
        .unwrap();
    refused(&mut d, command, LedgerError::UnknownCredential);
}

#[test]
fn a_pool_never_grants_past_its_capacity() {
    let mut d = driver();
    let p = pool(&mut d, 50 * YUAN, 3, Eligibility::Anyone);
    let cards: Vec<Card> = (0..5).map(|n| d.funded_card(n, 0)).collect();
    for (i, card) in cards.iter().enumerate() {
        let outcome = d.submit(claim(p, card.account));
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
    d.submit(claim(p, card.account)).unwrap();
    refused(
        &mut d,
        claim(p, card.account),
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
        claim(etc, card.account),
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
    d.submit(claim(savers, card.account)).unwrap();
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
        claim(p, payer.account),
        LedgerError::PoolNotOpen {
            pool: p,
            opens_at_ms: start,
        },
    );
    d.now_ms = start;
    d.submit(claim(p, payer.account)).unwrap();
    d.now_ms = start + DAY_MS;
    let (m, _) = merchant(&mut d, 9, MerchantKind::Online);
    assert_eq!(
        settled(d.pay(&payer, Payee::Merchant(m), 100 * YUAN, "late")).1,
        None
    );
    let other = d.funded_card(2, 0);
    refused(
        &mut d,
        claim(p, other.account),
        LedgerError::PoolClosed {
            pool: p,
            closed_at_ms: start + DAY_MS,
        },
    );
}

#[test]
fn the_vip_gift_is_recorded_once_on_reaching_platinum() {
    let (mut d, card) = with_card(0);
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

#[test]
fn a_vip_pool_admits_its_tier_and_every_higher_one() {
    let mut d = driver();
    let platinum = pool(
        &mut d,
        50 * YUAN,
        10,
        Eligibility::VipAtLeast(VipTier::Platinum),
    );
    let diamond = pool(
        &mut d,
        50 * YUAN,
        10,
        Eligibility::VipAtLeast(VipTier::Diamond),
    );
    let cards: Vec<Card> = (0..3).map(|n| d.funded_card(n, 0)).collect();
    for (card, tier) in cards
        .iter()
        .zip([VipTier::None, VipTier::Platinum, VipTier::Diamond])
    {
        d.submit(Command::SetVipTier {
            account: card.account,
            tier,
        })
        .unwrap();
    }
    let not_eligible = |account, pool, tier| LedgerError::NotEligible {
        account,
        pool,
        eligibility: Eligibility::VipAtLeast(tier),
    };
    refused(
        &mut d,
        claim(platinum, cards[0].account),
        not_eligible(cards[0].account, platinum, VipTier::Platinum),
    );
    d.submit(claim(platinum, cards[1].account)).unwrap();
    d.submit(claim(platinum, cards[2].account)).unwrap();
    refused(
        &mut d,
        claim(diamond, cards[1].account),
        not_eligible(cards[1].account, diamond, VipTier::Diamond),
    );
    d.submit(claim(diamond, cards[2].account)).unwrap();
}

#[test]
fn a_pool_holds_one_to_ten_million_vouchers() {
    use ledger_core::config::MAX_POOL_CAPACITY;
    let mut d = driver();
    let create = |capacity| Command::CreatePool {
        name: "p".into(),
        face_value_fen: YUAN,
        capacity,
        eligibility: Eligibility::Anyone,
        valid_from_ms: 0,
        valid_until_ms: 1,
    };
    let invalid = LedgerError::InvalidPoolCapacity {
        max: MAX_POOL_CAPACITY,
    };
    refused(&mut d, create(0), invalid.clone());
    refused(&mut d, create(MAX_POOL_CAPACITY + 1), invalid);
    d.submit(create(1)).unwrap();
    d.submit(create(MAX_POOL_CAPACITY)).unwrap();
}

#[test]
fn the_ledger_holds_at_most_ten_thousand_pools() {
    use ledger_core::config::MAX_POOLS;
    let mut d = driver();
    let create = || Command::CreatePool {
        name: "p".into(),
        face_value_fen: YUAN,
        capacity: 1,
        eligibility: Eligibility::Anyone,
        valid_from_ms: 0,
        valid_until_ms: 1,
    };
    for _ in 0..MAX_POOLS {
        d.submit(create()).unwrap();
    }
    refused(
        &mut d,
        create(),
        LedgerError::TooManyPools { max: MAX_POOLS },
    );
}

#[test]
fn a_claim_is_open_from_the_first_to_the_last_millisecond_of_the_window() {
    let mut d = driver();
    let from = d.now_ms + 10;
    let Reply::PoolCreated { pool: p } = d
        .submit(Command::CreatePool {
            name: "edge".into(),
            face_value_fen: YUAN,
            capacity: 5,
            eligibility: Eligibility::Anyone,
            valid_from_ms: from,
            valid_until_ms: from + 10,
        })
        .unwrap()
    else {
        panic!()
    };
    let cards: Vec<Card> = (0..3).map(|n| d.funded_card(n, 0)).collect();
    d.now_ms = from - 1;
    refused(
        &mut d,
        claim(p, cards[0].account),
        LedgerError::PoolNotOpen {
            pool: p,
            opens_at_ms: from,
        },
    );
    d.now_ms = from;
    d.submit(claim(p, cards[0].account)).unwrap();
    d.now_ms = from + 9;
    d.submit(claim(p, cards[1].account)).unwrap();
    d.now_ms = from + 10;
    refused(
        &mut d,
        claim(p, cards[2].account),
        LedgerError::PoolClosed {
            pool: p,
            closed_at_ms: from + 10,
        },
    );
}
