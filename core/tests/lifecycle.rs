//! The rules of DOMAIN.md section 9: refunds, cancellation and expiry, and the single end
//! of every payment. One test per rule, named after the rule. Every refusal is also checked
//! to leave the state hash unchanged.

mod common;

use common::{
    balance, claim, deposit, driver, merchant, payer_and_shop, pending, pool, refused, settled,
    wrong_code,
};
use ledger_core::command::{Command, Context, Envelope};
use ledger_core::config::YUAN;
use ledger_core::ledger::Ledger;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::state::{ChallengeState, MemStore, PaymentState};
use ledger_core::types::{AccountId, Eligibility, MerchantId, MerchantKind, Payee, PaymentId};
use ledger_testkit::driver::{Card, Driver};

const FIVE_MINUTES: u64 = 5 * 60_000;

fn paid(d: &mut Driver, payer: &Card, m: MerchantId, bill_fen: u64, order: &str) -> PaymentId {
    match d.pay(payer, Payee::Merchant(m), bill_fen, order).unwrap() {
        Reply::PaymentSettled { payment, .. } => payment,
        other => panic!("{other:?}"),
    }
}

fn refund(payment: PaymentId, amount_fen: u64) -> Command {
    Command::RefundPayment {
        payment,
        amount_fen,
    }
}

/// (to payer, to promotions, left to refund) of a refund that must succeed.
fn refunded(d: &mut Driver, payment: PaymentId, amount_fen: u64) -> (u64, u64, u64) {
    match d.submit(refund(payment, amount_fen)).unwrap() {
        Reply::PaymentRefunded {
            to_payer_fen,
            to_promotions_fen,
            refundable_fen,
            ..
        } => (to_payer_fen, to_promotions_fen, refundable_fen),
        other => panic!("{other:?}"),
    }
}

fn shop_account(d: &Driver, m: MerchantId) -> AccountId {
    d.ledger.merchant(m).unwrap().settlement_account
}

#[test]
fn a_full_refund_gives_the_payer_back_the_bill_from_the_settlement_account() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let p = paid(&mut d, &payer, m, 100 * YUAN, "o");
    assert_eq!(refunded(&mut d, p, 100 * YUAN), (100 * YUAN, 0, 0));
    assert_eq!(balance(&d, payer.account), 1_000 * YUAN as i64);
    assert_eq!(balance(&d, shop_account(&d, m)), 0);
    let refunds = d.ledger.payment(p).unwrap().refunds;
    assert_eq!((refunds.count, refunds.total_fen), (1, 100 * YUAN));
    // A settled payment stays settled: its refunds are recorded beside it.
    assert!(matches!(
        d.ledger.payment(p).unwrap().state,
        PaymentState::Settled { .. }
    ));
    d.ledger.check_invariants().unwrap();
}

#[test]
fn refunds_go_to_the_payer_up_to_what_it_paid_and_the_voucher_share_to_promotions() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Pos);
    let etc = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(claim(etc, payer.account)).unwrap();
    let promotions = balance(&d, AccountId::PROMOTIONS);
    let p = paid(&mut d, &payer, m, 100 * YUAN, "o");
    // The payer paid 50; the voucher 50.
    assert_eq!(refunded(&mut d, p, 30 * YUAN), (30 * YUAN, 0, 70 * YUAN));
    assert_eq!(
        refunded(&mut d, p, 30 * YUAN),
        (20 * YUAN, 10 * YUAN, 40 * YUAN)
    );
    assert_eq!(refunded(&mut d, p, 40 * YUAN), (0, 40 * YUAN, 0));
    assert_eq!(balance(&d, payer.account), 1_000 * YUAN as i64);
    assert_eq!(balance(&d, AccountId::PROMOTIONS), promotions);
    // The voucher is not given back.
    assert_eq!(
        d.ledger.voucher(payer.account, etc).unwrap().consumed_by,
        Some(p)
    );
    d.ledger.check_invariants().unwrap();
}

#[test]
fn refunds_of_one_payment_never_add_up_to_more_than_its_bill() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let p = paid(&mut d, &payer, m, 100 * YUAN, "o");
    d.submit(deposit(shop_account(&d, m), 1_000 * YUAN))
        .unwrap();
    refused(
        &mut d,
        refund(p, 100 * YUAN + 1),
        LedgerError::RefundExceedsBill {
            payment: p,
            refundable_fen: 100 * YUAN,
            requested_fen: 100 * YUAN + 1,
        },
    );
    refunded(&mut d, p, 60 * YUAN);
    refused(
        &mut d,
        refund(p, 40 * YUAN + 1),
        LedgerError::RefundExceedsBill {
            payment: p,
            refundable_fen: 40 * YUAN,
            requested_fen: 40 * YUAN + 1,
        },
    );
    refunded(&mut d, p, 40 * YUAN);
    refused(
        &mut d,
        refund(p, 1),
        LedgerError::RefundExceedsBill {
            payment: p,
            refundable_fen: 0,
            requested_fen: 1,
        },
    );
    refused(&mut d, refund(p, 0), LedgerError::ZeroAmount);
}

#[test]
fn only_a_settled_merchant_payment_can_be_refunded() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let (waiting, _) = pending(&mut d, &payer, m, 10 * YUAN, "pending");
    refused(
        &mut d,
        refund(waiting, 1),
        LedgerError::NotRefundable {
            payment: waiting,
            state: "pending".into(),
        },
    );
    let (failing, c) = pending(&mut d, &payer, m, 10 * YUAN, "failing");
    let wrong = wrong_code(&d, c);
    for _ in 0..3 {
        let _ = d.confirm(failing, &wrong);
    }
    refused(
        &mut d,
        refund(failing, 1),
        LedgerError::NotRefundable {
            payment: failing,
            state: "failed".into(),
        },
    );
    let friend = d.funded_card(2, 0);
    let transfer = match d
        .pay(&payer, Payee::Account(friend.account), 10 * YUAN, "t")
        .unwrap()
    {
        Reply::PaymentSettled { payment, .. } => payment,
        other => panic!("{other:?}"),
    };
    refused(
        &mut d,
        refund(transfer, 1),
        LedgerError::TransferNotRefundable { payment: transfer },
    );
    refused(
        &mut d,
        refund(PaymentId(999), 1),
        LedgerError::UnknownPayment {
            payment: PaymentId(999),
        },
    );
}

#[test]
fn a_refund_needs_the_money_in_the_merchants_settlement_account() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let p = paid(&mut d, &payer, m, 100 * YUAN, "o");
    let shop = shop_account(&d, m);
    let supplier = d.funded_card(3, 0);
    d.submit(Command::MerchantTransfer {
        merchant: m,
        target: supplier.account,
        amount_fen: 90 * YUAN,
    })
    .unwrap();
    refused(
        &mut d,
        refund(p, 20 * YUAN),
        LedgerError::InsufficientFunds {
            account: shop,
            balance_fen: 10 * YUAN as i64,
            needed_fen: 20 * YUAN,
        },
    );
    refunded(&mut d, p, 10 * YUAN);
}

#[test]
fn a_refund_lowers_the_campaign_amount_but_not_the_count_and_a_granted_reward_stays() {
    let mut d = driver();
    let payer = d.funded_card(1, 0);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let telecom = balance(&d, AccountId::TELECOM_SETTLEMENT);
    let mut last = PaymentId(0);
    for i in 0..10 {
        d.submit(deposit(payer.account, 200 * YUAN)).unwrap();
        last = match d.swipe(&payer, m, 200 * YUAN, &format!("r{i}")).unwrap() {
            Reply::PaymentSettled { payment, .. } => payment,
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(d.counters(m).reward_payment, Some(last));
    refunded(&mut d, last, 150 * YUAN);
    let counters = d.counters(m);
    assert_eq!(counters.tx_count, 10);
    assert_eq!(counters.amount_fen, 1_850 * YUAN);
    assert_eq!(counters.reward_payment, Some(last));
    assert_eq!(
        balance(&d, AccountId::TELECOM_SETTLEMENT),
        telecom + 100 * YUAN as i64
    );
}

#[test]
fn a_refund_restores_none_of_the_payers_daily_limit() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    d.submit(deposit(payer.account, 5_000 * YUAN)).unwrap();
    let mut payments = Vec::new();
    for i in 0..3 {
        payments.push(paid(&mut d, &payer, m, 1_000 * YUAN, &format!("o{i}")));
    }
    refunded(&mut d, payments[0], 1_000 * YUAN);
    assert_eq!(
        d.pay(&payer, Payee::Merchant(m), 1, "o4"),
        Err(LedgerError::OverDailyLimit {
            debit_fen: 1,
            spent_today_fen: 3_000 * YUAN,
            limit_fen: 3_000 * YUAN,
        })
    );
}

#[test]
fn a_refund_retried_under_its_key_is_applied_once() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let p = paid(&mut d, &payer, m, 100 * YUAN, "o");
    let key = d.fresh_key();
    let first = d.submit_with_key(key, refund(p, 30 * YUAN));
    let again = d.submit_with_key(key, refund(p, 30 * YUAN));
    assert_eq!(first, again);
    assert_eq!(d.ledger.payment(p).unwrap().refunds.total_fen, 30 * YUAN);
    assert_eq!(
        d.submit_with_key(key, refund(p, 31 * YUAN)),
        Err(LedgerError::IdempotencyKeyReused { key })
    );
}

#[test]
fn a_cancelled_payment_never_settles_and_its_code_is_void() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &payer, m, 10 * YUAN, "o");
    let code = d.code_for(c);
    let cancelled_ms = d.now_ms;
    assert_eq!(
        d.submit(Command::CancelPayment { payment: p }),
        Ok(Reply::PaymentCancelled { payment: p })
    );
    assert_eq!(
        d.ledger.payment(p).unwrap().state,
        PaymentState::Cancelled { cancelled_ms }
    );
    assert_eq!(d.ledger.challenge(c).unwrap().state, ChallengeState::Voided);
    let confirm = d.confirm_command(p, &code).unwrap();
    refused(
        &mut d,
        confirm,
        LedgerError::PaymentNotPending { payment: p },
    );
    refused(
        &mut d,
        Command::CancelPayment { payment: p },
        LedgerError::PaymentNotPending { payment: p },
    );
    assert_eq!(balance(&d, payer.account), 1_000 * YUAN as i64);
    // The order may be paid anew.
    settled(d.pay(&payer, Payee::Merchant(m), 10 * YUAN, "o"));
    d.ledger.check_invariants().unwrap();
}

#[test]
fn only_a_pending_payment_can_be_cancelled() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let p = paid(&mut d, &payer, m, 10 * YUAN, "o");
    refused(
        &mut d,
        Command::CancelPayment { payment: p },
        LedgerError::PaymentNotPending { payment: p },
    );
    refused(
        &mut d,
        Command::CancelPayment {
            payment: PaymentId(99),
        },
        LedgerError::UnknownPayment {
            payment: PaymentId(99),
        },
    );
}

#[test]
fn a_pending_payment_expires_with_its_challenge_whether_or_not_anyone_touches_it() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &payer, m, 10 * YUAN, "o");
    let expires_ms = d.ledger.challenge(c).unwrap().expires_ms;
    assert_eq!(expires_ms, d.now_ms + FIVE_MINUTES);
    assert_eq!(d.ledger.expired_payments(expires_ms - 1, 10), vec![]);
    assert_eq!(d.ledger.expired_payments(expires_ms, 10), vec![p]);
    // Ledger time passes the expiry (any command moves it): reads say expired at once.
    d.advance(FIVE_MINUTES);
    d.submit(deposit(payer.account, 1)).unwrap();
    let expired = PaymentState::Expired {
        expired_ms: expires_ms,
    };
    assert_eq!(d.ledger.payment(p).unwrap().state, expired);
    assert_eq!(
        d.ledger.stored_payment(p).unwrap().state,
        PaymentState::Pending
    );
    // The leader records it.
    assert_eq!(
        d.submit(Command::ExpirePayments { payments: vec![p] }),
        Ok(Reply::PaymentsExpired { expired: 1 })
    );
    assert_eq!(d.ledger.stored_payment(p).unwrap().state, expired);
    assert_eq!(d.ledger.expired_payments(u64::MAX, 10), vec![]);
    // It counts for nothing, and can be neither confirmed nor cancelled.
    assert_eq!(d.counters(m).tx_count, 0);
    assert_eq!(
        d.ledger.credential(payer.account).unwrap().spent_today_fen,
        0
    );
    refused(
        &mut d,
        Command::CancelPayment { payment: p },
        LedgerError::PaymentNotPending { payment: p },
    );
    d.ledger.check_invariants().unwrap();
}

#[test]
fn the_leader_cannot_expire_a_payment_before_its_time() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &payer, m, 10 * YUAN, "o");
    d.advance(FIVE_MINUTES - 1);
    assert_eq!(
        d.submit(Command::ExpirePayments { payments: vec![p] }),
        Ok(Reply::PaymentsExpired { expired: 0 })
    );
    assert_eq!(
        d.ledger.stored_payment(p).unwrap().state,
        PaymentState::Pending
    );
    let code = d.code_for(c);
    settled(d.confirm(p, &code));
    // A settled payment named later is left alone.
    d.advance(FIVE_MINUTES);
    assert_eq!(
        d.submit(Command::ExpirePayments { payments: vec![p] }),
        Ok(Reply::PaymentsExpired { expired: 0 })
    );
}

#[test]
fn cancelling_after_the_expiry_finds_the_payment_expired() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &payer, m, 10 * YUAN, "o");
    let expires_ms = d.ledger.challenge(c).unwrap().expires_ms;
    d.advance(FIVE_MINUTES);
    assert_eq!(
        d.submit(Command::CancelPayment { payment: p }),
        Err(LedgerError::PaymentExpired {
            payment: p,
            expired_at_ms: expires_ms
        })
    );
    assert_eq!(
        d.ledger.stored_payment(p).unwrap().state,
        PaymentState::Expired {
            expired_ms: expires_ms
        }
    );
    // A new payment for an order whose pending one expired supersedes nothing.
    let (q, _) = pending(&mut d, &payer, m, 10 * YUAN, "o2");
    let (_, _) = pending(&mut d, &payer, m, 10 * YUAN, "o2");
    assert_eq!(d.ledger.payment(q).unwrap().state, PaymentState::Superseded);
    d.ledger.check_invariants().unwrap();
}

/// Replays a driver's journal on a fresh replica.
fn replica(d: &Driver, journal: &[(Context, Envelope)]) -> Ledger<MemStore> {
    let mut other = Ledger::genesis(MemStore::new(), d.ledger.config().clone());
    for (ctx, envelope) in journal {
        let _ = other.apply(ctx, envelope);
    }
    other
}

#[test]
fn every_payment_ends_in_exactly_one_state_and_replicas_agree_on_it() {
    let mut d = common::driver_with(|c| c.otp_challenges_per_phone = 100);
    d.start_journal();
    let payer = common::enrolled(&mut d, 1, 5_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let settled_p = paid(&mut d, &payer, m, 10 * YUAN, "settled");
    let (superseded, _) = pending(&mut d, &payer, m, 10 * YUAN, "again");
    let (_second, _) = pending(&mut d, &payer, m, 10 * YUAN, "again");
    let (failed, c) = pending(&mut d, &payer, m, 10 * YUAN, "failed");
    let wrong = wrong_code(&d, c);
    for _ in 0..3 {
        let _ = d.confirm(failed, &wrong);
    }
    let (cancelled, _) = pending(&mut d, &payer, m, 10 * YUAN, "cancelled");
    d.submit(Command::CancelPayment { payment: cancelled })
        .unwrap();
    let (expired, _) = pending(&mut d, &payer, m, 10 * YUAN, "expired");
    let swiped = match d.swipe(&payer, m, 10 * YUAN, "receipt").unwrap() {
        Reply::PaymentSettled { payment, .. } => payment,
        other => panic!("{other:?}"),
    };
    d.submit(refund(swiped, 5 * YUAN)).unwrap();
    d.advance(FIVE_MINUTES);
    let due = d.ledger.expired_payments(d.now_ms, 100);
    d.submit(Command::ExpirePayments { payments: due }).unwrap();
    let state = |p| d.ledger.stored_payment(p).unwrap().state;
    assert!(matches!(state(settled_p), PaymentState::Settled { .. }));
    assert!(matches!(state(swiped), PaymentState::Settled { .. }));
    assert_eq!(state(superseded), PaymentState::Superseded);
    assert_eq!(state(failed), PaymentState::Failed);
    assert!(matches!(state(cancelled), PaymentState::Cancelled { .. }));
    assert!(matches!(state(expired), PaymentState::Expired { .. }));
    for id in 1..d.ledger.meta().next_payment {
        assert!(state(PaymentId(id)).is_terminal(), "payment {id}");
    }
    d.ledger.check_invariants().unwrap();
    let journal = d.journal.take().unwrap();
    assert_eq!(replica(&d, &journal).state_hash(), d.ledger.state_hash());
}
