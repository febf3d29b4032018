//! Retention (DOMAIN.md section 11): journal rows and payment events past their horizon by
//! ledger time are compacted away, in bounded batches, and what is kept reads as before.

mod common;

use common::{balance, deposit, driver_with, merchant, pending, transfer};
use ledger_core::command::Command;
use ledger_core::config::{MAX_COMPACT_BATCH, MAX_STATEMENT_ROWS, YUAN};
use ledger_core::ledger::journal::{Order, StatementRequest};
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::types::{AccountId, ChallengeId, MerchantKind, Payee, PaymentId};
use ledger_testkit::driver::Driver;

const DAY: u64 = 86_400_000;

fn compact(d: &mut Driver) -> (u64, u64) {
    match d.submit(Command::Compact).unwrap() {
        Reply::Compacted {
            postings, events, ..
        } => (postings, events),
        other => panic!("{other:?}"),
    }
}

fn kept_rows(d: &Driver) -> Vec<u64> {
    d.ledger
        .journal(0, MAX_STATEMENT_ROWS)
        .unwrap()
        .iter()
        .map(|p| p.seq)
        .collect()
}

fn two_accounts(d: &mut Driver) -> (AccountId, AccountId) {
    let a = d.funded_card(1, 0).account;
    let b = d.funded_card(2, 0).account;
    (a, b)
}

#[test]
fn journal_rows_past_the_horizon_go_and_the_rest_stay() {
    let mut d = driver_with(|c| c.journal_retention_ms = 10 * DAY);
    let (a, b) = two_accounts(&mut d);
    d.submit(deposit(a, 1_000 * YUAN)).unwrap();
    d.submit(transfer(a, b, 100 * YUAN)).unwrap();
    let old = kept_rows(&d);
    d.advance(6 * DAY);
    d.submit(transfer(a, b, 50 * YUAN)).unwrap();
    let young = *kept_rows(&d).last().unwrap();
    assert!(
        !d.ledger.compaction_due(d.now_ms),
        "nothing is 10 days old yet"
    );
    assert_eq!(compact(&mut d), (0, 0));

    d.advance(5 * DAY);
    assert!(d.ledger.compaction_due(d.now_ms));
    let (postings, _) = compact(&mut d);
    assert_eq!(postings, old.len() as u64);
    assert_eq!(kept_rows(&d), vec![young]);
    assert_eq!(d.ledger.meta().first_posting, young);
    assert!(!d.ledger.compaction_due(d.now_ms));
    d.ledger
        .check_invariants()
        .expect("invariants after compaction");

    // A statement over all time still opens and closes at the right balances: b held 100
    // yuan when its kept rows begin.
    let page = d
        .ledger
        .statement(&StatementRequest {
            account: b,
            from_ms: d.now_ms - 30 * DAY,
            to_ms: d.now_ms,
            order: Order::OldestFirst,
            page_size: MAX_STATEMENT_ROWS,
            cursor: None,
        })
        .unwrap();
    assert_eq!(page.opening_balance_fen, 100 * YUAN as i64);
    assert_eq!(page.closing_balance_fen, balance(&d, b));
    assert_eq!(page.rows.len(), 1);
}

#[test]
fn one_compaction_removes_at_most_a_batch() {
    let mut d = driver_with(|c| c.journal_retention_ms = DAY);
    let (a, _) = two_accounts(&mut d);
    let rows = MAX_COMPACT_BATCH + 7;
    for _ in 0..rows {
        d.submit(deposit(a, 1)).unwrap();
    }
    d.advance(2 * DAY);
    let first = d.ledger.meta().first_posting;
    assert_eq!(compact(&mut d).0, MAX_COMPACT_BATCH as u64);
    assert!(d.ledger.compaction_due(d.now_ms), "more waits");
    assert_eq!(
        d.ledger.meta().first_posting,
        first + MAX_COMPACT_BATCH as u64
    );
    d.ledger
        .check_invariants()
        .expect("invariants between batches");
    let second = compact(&mut d).0;
    assert!(second >= 7, "the rest: {second}");
    assert!(kept_rows(&d).is_empty());
    assert!(!d.ledger.compaction_due(d.now_ms));
    // The account's rows are all gone; its balance stands.
    assert_eq!(balance(&d, a), rows as i64);
    d.ledger
        .check_invariants()
        .expect("invariants with no rows left");
    // New rows chain on from the balance the account holds.
    d.submit(deposit(a, 5)).unwrap();
    d.ledger
        .check_invariants()
        .expect("invariants after a new row");
}

#[test]
fn delivered_events_past_the_horizon_go_waiting_ones_stay() {
    let mut d = driver_with(|c| {
        c.event_retention_ms = 7 * DAY;
        c.otp_challenges_per_phone = 100;
    });
    let payer = common::enrolled(&mut d, 1, 5_000 * YUAN);
    let (hooked, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let (reader, _) = merchant(&mut d, 8, MerchantKind::Pos);
    d.submit(Command::SetWebhook {
        merchant: hooked,
        url: Some("https://shop.example/events".into()),
    })
    .unwrap();
    for (m, order) in [(hooked, "h-1"), (hooked, "h-2"), (reader, "r-1")] {
        d.pay(&payer, Payee::Merchant(m), 10 * YUAN, order).unwrap();
    }
    let hooked_events: Vec<u64> = d
        .ledger
        .events(hooked, 0, 10)
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(hooked_events.len(), 2);
    // The first is delivered, the second still waits.
    d.submit(Command::AckEvents {
        merchant: hooked,
        delivered: vec![hooked_events[0]],
        abandoned: vec![],
    })
    .unwrap();
    d.advance(6 * DAY);
    assert_eq!(compact(&mut d).1, 0, "nothing is 7 days old yet");
    d.advance(2 * DAY);
    let (_, events) = compact(&mut d);
    assert_eq!(
        events, 2,
        "the delivered one and the merchant without a webhook's"
    );
    let left: Vec<u64> = d
        .ledger
        .events(hooked, 0, 10)
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![hooked_events[1]], "the waiting event stays");
    assert!(d.ledger.events(reader, 0, 10).is_empty());
    assert!(!d.ledger.compaction_due(d.now_ms));
    d.ledger.check_invariants().expect("invariants");
}

fn compacted_payments(d: &mut Driver) -> u64 {
    match d.submit(Command::Compact).unwrap() {
        Reply::Compacted { payments, .. } => payments,
        other => panic!("{other:?}"),
    }
}

fn settled(
    d: &mut Driver,
    payer: &ledger_testkit::driver::Card,
    m: ledger_core::types::MerchantId,
    order: &str,
) -> PaymentId {
    match d.pay(payer, Payee::Merchant(m), 10 * YUAN, order).unwrap() {
        Reply::PaymentSettled { payment, .. } => payment,
        other => panic!("{other:?}"),
    }
}

/// A ledger keeping payments 10 days (events 100), with an enrolled payer and a shop.
fn payments_ledger() -> (
    Driver,
    ledger_testkit::driver::Card,
    ledger_core::types::MerchantId,
) {
    let mut d = driver_with(|c| {
        c.payment_retention_ms = 10 * DAY;
        c.event_retention_ms = 100 * DAY;
        c.otp_challenges_per_phone = 100;
    });
    let payer = common::enrolled(&mut d, 1, 5_000 * YUAN);
    let (shop, _) = merchant(&mut d, 9, MerchantKind::Pos);
    (d, payer, shop)
}

#[test]
fn ended_payments_past_the_horizon_go_with_their_challenge_and_order_index() {
    let (mut d, payer, shop) = payments_ledger();
    let old = settled(&mut d, &payer, shop, "o-1");
    let old_challenge = d.ledger.payment(old).unwrap().challenge().unwrap();
    // A payment still pending holds compaction up behind it until it ends.
    let (stuck, _) = pending(&mut d, &payer, shop, 5 * YUAN, "o-2");
    d.advance(11 * DAY);
    let young = settled(&mut d, &payer, shop, "o-3");
    // A payment whose SMS still waits to be sent stays.
    assert!(
        !d.ledger.compaction_due(d.now_ms),
        "the SMS outbox holds it"
    );
    let sent = d.ledger.outbox(100);
    d.submit(Command::AckSms { challenges: sent }).unwrap();
    assert!(d.ledger.compaction_due(d.now_ms), "the first one is due");
    assert_eq!(compacted_payments(&mut d), 1);
    assert!(
        !d.ledger.compaction_due(d.now_ms),
        "the pending one holds the rest"
    );
    assert_eq!(d.ledger.meta().first_payment, stuck.0);
    assert!(d.ledger.payment(old).is_none() && d.ledger.challenge(old_challenge).is_none());
    // Gone for good: it can no longer be refunded.
    assert_eq!(
        d.submit(Command::RefundPayment {
            payment: old,
            amount_fen: 1,
        }),
        Err(LedgerError::UnknownPayment { payment: old })
    );
    // Once the pending one has ended, it goes too; the young one stays.
    let due = d.ledger.expired_payments(d.now_ms, 10);
    assert_eq!(due, vec![stuck]);
    d.submit(Command::ExpirePayments { payments: due }).unwrap();
    assert_eq!(compacted_payments(&mut d), 1);
    assert_eq!(d.ledger.meta().first_payment, young.0);
    assert!(d.ledger.payment(young).is_some());
    d.ledger
        .check_invariants()
        .expect("invariants after compacting payments");
    // The old order id is free again: its index entry went with it.
    let again = settled(&mut d, &payer, shop, "o-1");
    assert!(again.0 > young.0);
}

#[test]
fn challenges_go_after_what_they_confirm_and_an_abandoned_enrolment_goes_with_its_code() {
    let (mut d, payer, shop) = payments_ledger();
    // The code the payer enrolled with: the only challenge so far.
    assert_eq!(d.ledger.meta().next_challenge, 2);
    let used_enrolment_code = ledger_core::types::ChallengeId(1);
    assert!(d.ledger.challenge(used_enrolment_code).is_some());
    // A second card stops enrolling after its code was sent.
    let quitter = d.funded_card(2, 0);
    d.submit(Command::EpayBegin {
        pan_digest: common::pan_digest(&d, &quitter),
        phone: quitter.phone.clone(),
    })
    .unwrap();
    let stored = d.ledger.holder(quitter.account).unwrap().password;
    d.submit(Command::EpayChooseAlias {
        account: quitter.account,
        password_proof: ledger_core::intake::password_proof(
            &d.keys,
            &ledger_core::intake::Secret::new(&quitter.password),
            &stored,
        )
        .unwrap(),
        alias: "半途".into(),
    })
    .unwrap();
    let abandoned = d.issue_enrolment_code(&quitter).unwrap();
    // An order asked twice: the first payment is superseded and its code voided.
    let (superseded, voided) = pending(&mut d, &payer, shop, 5 * YUAN, "o-1");
    let (kept, code) = pending(&mut d, &payer, shop, 5 * YUAN, "o-1");
    let right = d.code_for(code);
    d.confirm(kept, &right).unwrap();
    let sent = d.ledger.outbox(100);
    d.submit(Command::AckSms { challenges: sent }).unwrap();

    d.advance(9 * DAY);
    assert!(!d.ledger.compaction_due(d.now_ms), "nothing is 10 days old");
    d.advance(2 * DAY);
    assert!(d.ledger.compaction_due(d.now_ms));
    // The payments go first, in the same command their codes follow.
    let compacted = d.submit(Command::Compact).unwrap();
    assert!(
        matches!(
            compacted,
            Reply::Compacted {
                payments: 2,
                challenges: 4,
                ..
            }
        ),
        "{compacted:?}"
    );
    for gone in [used_enrolment_code, abandoned, voided, code] {
        assert!(d.ledger.challenge(gone).is_none(), "{gone} stays");
    }
    assert!(d.ledger.payment(superseded).is_none() && d.ledger.payment(kept).is_none());
    assert!(
        d.ledger.enrolment(quitter.account).is_none(),
        "the abandoned enrolment went with its code"
    );
    assert_eq!(
        d.ledger.meta().first_challenge,
        d.ledger.meta().next_challenge
    );
    assert!(!d.ledger.compaction_due(d.now_ms));
    assert!(matches!(
        d.submit(Command::Compact).unwrap(),
        Reply::Compacted { challenges: 0, .. }
    ));
    d.ledger.check_invariants().expect("invariants");
    // The quitter starts over and enrols; the payer still pays.
    d.enrol(&quitter, "重来").unwrap();
    settled(&mut d, &payer, shop, "o-2");
}

#[test]
fn a_kept_payment_holds_back_the_codes_after_it() {
    let (mut d, payer, shop) = payments_ledger();
    // Pending for ever (it is never expired): it and every later code stay.
    let (stuck, stuck_code) = pending(&mut d, &payer, shop, 5 * YUAN, "o-1");
    let later = settled(&mut d, &payer, shop, "o-2");
    let later_code = d.ledger.payment(later).unwrap().challenge().unwrap();
    let sent = d.ledger.outbox(100);
    d.submit(Command::AckSms { challenges: sent }).unwrap();
    d.advance(11 * DAY);
    let compacted = d.submit(Command::Compact).unwrap();
    assert!(
        matches!(
            compacted,
            Reply::Compacted {
                payments: 0,
                challenges: 1,
                ..
            }
        ),
        "only the enrolment code: {compacted:?}"
    );
    assert!(d.ledger.challenge(stuck_code).is_some() && d.ledger.challenge(later_code).is_some());
    assert_eq!(d.ledger.meta().first_challenge, stuck_code.0);
    assert!(!d.ledger.compaction_due(d.now_ms));
    // Once it ends, it and everything after it go.
    let due = d.ledger.expired_payments(d.now_ms, 10);
    assert_eq!(due, vec![stuck]);
    d.submit(Command::ExpirePayments { payments: due }).unwrap();
    assert!(matches!(
        d.submit(Command::Compact).unwrap(),
        Reply::Compacted {
            payments: 2,
            challenges: 2,
            ..
        }
    ));
    d.ledger.check_invariants().expect("invariants");
}

#[test]
fn what_is_exactly_as_old_as_the_horizon_stays() {
    let mut d = driver_with(|c| {
        c.journal_retention_ms = 10 * DAY;
        c.event_retention_ms = 10 * DAY;
        c.payment_retention_ms = 20 * DAY;
        c.otp_challenges_per_phone = 100;
    });
    let payer = common::enrolled(&mut d, 1, 5_000 * YUAN);
    let (shop, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let paid = settled(&mut d, &payer, shop, "o-1");
    let sent = d.ledger.outbox(100);
    d.submit(Command::AckSms { challenges: sent }).unwrap();
    let created = d.ledger.payment(paid).unwrap().created_ms;
    let payment_code = d.ledger.payment(paid).unwrap().challenge().unwrap();
    let codes: Vec<ChallengeId> = (1..=payment_code.0)
        .map(ChallengeId)
        .filter(|&c| d.ledger.challenge(c).is_some())
        .collect();
    assert_eq!(
        codes.len(),
        2,
        "the enrolment's code and the payment's: {codes:?}"
    );
    // Journal rows and the event: written at `created`, kept until 10 days have passed.
    d.advance(created + 10 * DAY - d.now_ms);
    assert!(!d.ledger.compaction_due(d.now_ms), "exactly 10 days old");
    assert_eq!(compact(&mut d), (0, 0));
    d.advance(1);
    assert!(d.ledger.compaction_due(d.now_ms));
    let (postings, events) = compact(&mut d);
    assert!(postings >= 2 && events == 1, "{postings} {events}");
    // The payment alone (its code expires minutes later): due by itself, at 20 days + 1 ms.
    d.advance(created + 20 * DAY - d.now_ms);
    assert!(!d.ledger.compaction_due(d.now_ms), "exactly 20 days old");
    d.advance(1);
    assert!(
        d.ledger.compaction_due(d.now_ms),
        "the payment alone is due"
    );
    assert!(matches!(
        d.submit(Command::Compact).unwrap(),
        Reply::Compacted {
            payments: 1,
            challenges: 0,
            ..
        }
    ));
    // The payment's code went with it; the enrolment's code alone stays until its expiry
    // is 20 days past, not a millisecond longer.
    assert!(d.ledger.challenge(payment_code).is_none());
    for id in codes.into_iter().filter(|&c| c != payment_code) {
        let expires = d.ledger.challenge(id).unwrap().expires_ms;
        d.advance(expires + 20 * DAY - d.now_ms);
        assert!(
            !d.ledger.compaction_due(d.now_ms),
            "{id} expired exactly 20 days ago"
        );
        d.advance(1);
        assert!(d.ledger.compaction_due(d.now_ms), "{id} alone is due");
        assert!(matches!(
            d.submit(Command::Compact).unwrap(),
            Reply::Compacted {
                payments: 0,
                challenges: 1,
                ..
            }
        ));
        assert!(d.ledger.challenge(id).is_none());
    }
}

#[test]
fn one_compaction_removes_at_most_a_batch_of_events() {
    let mut d = driver_with(|c| {
        c.event_retention_ms = DAY;
        c.otp_challenges_per_phone = 1_000;
    });
    let payer = common::enrolled(&mut d, 1, 5_000 * YUAN);
    let (shop, _) = merchant(&mut d, 9, MerchantKind::Pos);
    for order in 0..MAX_COMPACT_BATCH + 3 {
        settled(&mut d, &payer, shop, &format!("o-{order}"));
    }
    d.advance(2 * DAY);
    assert_eq!(compact(&mut d).1, MAX_COMPACT_BATCH as u64);
    assert_eq!(compact(&mut d).1, 3);
    assert!(!d.ledger.compaction_due(d.now_ms));
}
