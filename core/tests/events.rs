//! The rules of DOMAIN.md section 11 on notifications that the core keeps: every change of a
//! merchant payment's state is an event with a stable id; a registered webhook's events wait
//! in a durable outbox until delivered or given up on; a merchant that stops answering pauses
//! its own pushing, never a payment. One test per rule, named after the rule.

mod common;

use common::{driver_with, merchant, pending, refused, wrong_code};
use ledger_core::command::Command;
use ledger_core::config::{MAX_EVENT_BATCH, MAX_WEBHOOK_URL_BYTES, YUAN};
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::state::{Event, EventKind};
use ledger_core::types::{MerchantId, MerchantKind, Payee, PaymentId};
use ledger_testkit::driver::{Card, Driver};

const HOOK: &str = "https://shop.example/ledger-events";

fn world(change: impl FnOnce(&mut ledger_core::LedgerConfig)) -> (Driver, Card, MerchantId) {
    let mut d = driver_with(|c| {
        c.otp_challenges_per_phone = 100;
        change(c)
    });
    let payer = common::enrolled(&mut d, 1, 5_000 * YUAN);
    let (m, _) = merchant(&mut d, 9, MerchantKind::Pos);
    (d, payer, m)
}

fn paid(d: &mut Driver, payer: &Card, m: MerchantId, bill_fen: u64, order: &str) -> PaymentId {
    match d.pay(payer, Payee::Merchant(m), bill_fen, order).unwrap() {
        Reply::PaymentSettled { payment, .. } => payment,
        other => panic!("{other:?}"),
    }
}

fn set_hook(d: &mut Driver, m: MerchantId, url: Option<&str>) -> Option<u32> {
    match d
        .submit(Command::SetWebhook {
            merchant: m,
            url: url.map(str::to_owned),
        })
        .unwrap()
    {
        Reply::WebhookSet { secret_version, .. } => secret_version,
        other => panic!("{other:?}"),
    }
}

fn ack(d: &mut Driver, m: MerchantId, delivered: Vec<u64>, abandoned: Vec<u64>) -> (u64, u64) {
    match d
        .submit(Command::AckEvents {
            merchant: m,
            delivered,
            abandoned,
        })
        .unwrap()
    {
        Reply::EventsAcked {
            delivered,
            abandoned,
        } => (delivered, abandoned),
        other => panic!("{other:?}"),
    }
}

/// The ids waiting in `m`'s outbox.
fn waiting(d: &Driver, m: MerchantId) -> Vec<u64> {
    d.ledger
        .event_outbox(100)
        .into_iter()
        .filter(|(mm, _, _)| *mm == m)
        .flat_map(|(_, _, events)| events.into_iter().map(|e| e.id))
        .collect()
}

fn kinds(events: &[Event]) -> Vec<(PaymentId, &'static str)> {
    events.iter().map(|e| (e.payment, e.kind.name())).collect()
}

#[test]
fn every_state_change_of_a_merchant_payment_is_an_event_with_a_stable_id() {
    let (mut d, payer, m) = world(|_| {});
    let settled = paid(&mut d, &payer, m, 100 * YUAN, "settled");
    d.submit(Command::RefundPayment {
        payment: settled,
        amount_fen: 30 * YUAN,
    })
    .unwrap();
    let (superseded, _) = pending(&mut d, &payer, m, 10 * YUAN, "again");
    let (second, _) = pending(&mut d, &payer, m, 10 * YUAN, "again");
    d.submit(Command::CancelPayment { payment: second })
        .unwrap();
    let (failed, c) = pending(&mut d, &payer, m, 10 * YUAN, "failed");
    let wrong = wrong_code(&d, c);
    for _ in 0..3 {
        let _ = d.confirm(failed, &wrong);
    }
    let (expired, _) = pending(&mut d, &payer, m, 10 * YUAN, "expired");
    let swiped = match d.swipe(&payer, m, 20 * YUAN, "receipt-1").unwrap() {
        Reply::PaymentSettled { payment, .. } => payment,
        other => panic!("{other:?}"),
    };
    d.advance(5 * 60_000);
    let due = d.ledger.expired_payments(d.now_ms, 100);
    d.submit(Command::ExpirePayments { payments: due }).unwrap();

    let events = d.ledger.events(m, 0, 100);
    assert_eq!(
        kinds(&events),
        [
            (settled, "payment.settled"),
            (settled, "payment.refunded"),
            (superseded, "payment.superseded"),
            (second, "payment.cancelled"),
            (failed, "payment.failed"),
            (swiped, "payment.settled"),
            (expired, "payment.expired"),
        ]
    );
    assert_eq!(
        events[0].kind,
        EventKind::Settled {
            bill_fen: 100 * YUAN,
            debited_fen: 100 * YUAN,
            voucher_fen: 0
        }
    );
    assert_eq!(
        events[1].kind,
        EventKind::Refunded {
            amount_fen: 30 * YUAN,
            refundable_fen: 70 * YUAN
        }
    );
    assert_eq!(events[5].order_id, "receipt-1");
    // Ids count up and never change; a cursor reads on after the last id it saw.
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(d.ledger.events(m, ids[2], 2), events[3..5].to_vec());
    assert_eq!(d.ledger.events(m, ids[6], 100), []);
    // Without a webhook nothing waits to be pushed.
    assert_eq!(waiting(&d, m), Vec::<u64>::new());
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_refused_command_or_a_payment_to_an_account_makes_no_event() {
    let (mut d, payer, m) = world(|_| {});
    let friend = d.funded_card(2, 0);
    let settled = paid(&mut d, &payer, m, 10 * YUAN, "o");
    let before = d.ledger.meta().next_event;
    refused(
        &mut d,
        Command::RefundPayment {
            payment: settled,
            amount_fen: 11 * YUAN,
        },
        LedgerError::RefundExceedsBill {
            payment: settled,
            refundable_fen: 10 * YUAN,
            requested_fen: 11 * YUAN,
        },
    );
    d.pay(&payer, Payee::Account(friend.account), YUAN, "gift")
        .unwrap();
    assert_eq!(d.ledger.meta().next_event, before);
}

#[test]
fn a_registered_webhooks_events_wait_in_the_outbox_until_delivered() {
    let (mut d, payer, m) = world(|_| {});
    let before = paid(&mut d, &payer, m, 10 * YUAN, "before");
    assert_eq!(set_hook(&mut d, m, Some(HOOK)), Some(1));
    let after = paid(&mut d, &payer, m, 20 * YUAN, "after");
    let later = paid(&mut d, &payer, m, 30 * YUAN, "later");
    // Only events made since the webhook was registered are pushed.
    let outbox = d.ledger.event_outbox(100);
    assert_eq!(outbox.len(), 1);
    let (_, hook, events) = &outbox[0];
    assert_eq!(hook.url, HOOK);
    assert_eq!(
        events.iter().map(|e| e.payment).collect::<Vec<_>>(),
        [after, later]
    );
    assert!(d
        .ledger
        .events(m, 0, 10)
        .iter()
        .any(|e| e.payment == before));
    let ids = waiting(&d, m);
    assert_eq!(ack(&mut d, m, vec![ids[0]], vec![]), (1, 0));
    // A repeated acknowledgement (a new leader that delivered it again) changes nothing.
    assert_eq!(ack(&mut d, m, vec![ids[0]], vec![]), (0, 0));
    assert_eq!(waiting(&d, m), [ids[1]]);
    let hook = d.ledger.webhook(m).unwrap();
    assert_eq!((hook.undelivered, hook.delivered), (1, 1));
    d.ledger.check_invariants().unwrap();
}

#[test]
fn an_event_is_given_up_on_only_after_its_retry_time() {
    let (mut d, payer, m) = world(|c| c.event_retry_ms = 60_000);
    set_hook(&mut d, m, Some(HOOK));
    paid(&mut d, &payer, m, 10 * YUAN, "o");
    let id = waiting(&d, m)[0];
    d.advance(59_999);
    assert_eq!(ack(&mut d, m, vec![], vec![id]), (0, 0));
    assert_eq!(waiting(&d, m), [id]);
    d.advance(1);
    assert_eq!(ack(&mut d, m, vec![], vec![id]), (0, 1));
    assert_eq!(waiting(&d, m), Vec::<u64>::new());
    assert_eq!(d.ledger.webhook(m).unwrap().abandoned, 1);
    // Given up on, still readable.
    assert_eq!(d.ledger.events(m, 0, 10).len(), 1);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_merchant_that_stops_answering_pauses_its_pushing_never_a_payment() {
    let (mut d, payer, m) = world(|c| c.max_undelivered_events = 3);
    set_hook(&mut d, m, Some(HOOK));
    for i in 0..5 {
        paid(&mut d, &payer, m, YUAN, &format!("o{i}"));
    }
    let hook = d.ledger.webhook(m).unwrap();
    assert!(hook.failing);
    assert_eq!(hook.undelivered, 3);
    assert_eq!(d.ledger.event_outbox(100), []);
    assert_eq!(d.ledger.events(m, 0, 10).len(), 5);
    // Registering again clears the mark with a new secret; the waiting events are pushed.
    assert_eq!(set_hook(&mut d, m, Some(HOOK)), Some(2));
    assert_eq!(waiting(&d, m).len(), 3);
    // Removing it empties the outbox.
    assert_eq!(set_hook(&mut d, m, None), None);
    assert_eq!(d.ledger.webhook(m), None);
    assert_eq!(waiting(&d, m), Vec::<u64>::new());
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_bad_webhook_or_acknowledgement_is_refused_and_changes_nothing() {
    let (mut d, _, m) = world(|_| {});
    let set = |url: &str| Command::SetWebhook {
        merchant: m,
        url: Some(url.to_owned()),
    };
    for url in [
        "ftp://shop.example/x",
        "https://",
        "shop.example/hook",
        "http://a b",
    ] {
        refused(
            &mut d,
            set(url),
            LedgerError::InvalidWebhookUrl {
                max_bytes: MAX_WEBHOOK_URL_BYTES,
            },
        );
    }
    refused(
        &mut d,
        Command::SetWebhook {
            merchant: MerchantId(99),
            url: Some(HOOK.into()),
        },
        LedgerError::UnknownMerchant {
            merchant: MerchantId(99),
        },
    );
    refused(
        &mut d,
        Command::AckEvents {
            merchant: m,
            delivered: vec![1; MAX_EVENT_BATCH + 1],
            abandoned: vec![],
        },
        LedgerError::TooManyItems {
            max: MAX_EVENT_BATCH,
        },
    );
    // Acknowledging for a merchant without a webhook, or ids never queued: nothing is
    // taken out of anything.
    assert_eq!(ack(&mut d, m, vec![1, 2], vec![3]), (0, 0));
    assert_eq!(d.ledger.webhook(m), None);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn registering_again_moves_the_webhook_and_starts_a_new_secret() {
    let (mut d, payer, m) = world(|_| {});
    set_hook(&mut d, m, Some(HOOK));
    paid(&mut d, &payer, m, YUAN, "o");
    d.advance(1_000);
    assert_eq!(
        set_hook(&mut d, m, Some("https://new.example/hooks")),
        Some(2)
    );
    let hook = d.ledger.webhook(m).unwrap();
    assert_eq!(hook.url, "https://new.example/hooks");
    assert_eq!(hook.registered_ms, d.now_ms);
    // The waiting event goes to the new address.
    assert_eq!(hook.undelivered, 1);
}

#[test]
fn an_acknowledgement_may_name_the_most_events() {
    let (mut d, _, m) = world(|_| {});
    set_hook(&mut d, m, Some(HOOK));
    assert_eq!(
        ack(&mut d, m, vec![1; MAX_EVENT_BATCH - 1], vec![2]),
        (0, 0)
    );
}
