//! Payment events for merchants (DOMAIN.md section 11, notifications): every change of a
//! merchant payment's state is an event, recorded in the command that made the change, with
//! a stable id. A merchant reads its events from a cursor, and may register a webhook: then
//! each new event also waits in a durable outbox (`Key::EventOutbox`) until the leader has
//! delivered it (a 2xx answer) or given up on it after `event_retry_ms`, and says so through
//! the log (`AckEvents`). Delivery happens outside the state machine: applying never waits
//! for a merchant.

use super::{Apply, Handled};
use crate::config::MAX_EVENT_BATCH;
use crate::outcome::{LedgerError, Reply};
use crate::state::{Event, EventKind, Key, Payment, Store, Value, Webhook};
use crate::types::{MerchantId, Payee, PaymentId};
use crate::validate;

/// Records what happened to `payment` (nothing for a payment to an account: only merchants
/// have events).
pub(super) fn emit(a: &mut Apply<'_>, id: PaymentId, payment: &Payment, kind: EventKind) {
    let Payee::Merchant(merchant) = payment.payee else {
        return;
    };
    let event = a.meta.next_event;
    a.meta.next_event += 1;
    a.tx.put(
        Key::Event(merchant, event),
        Event {
            id: event,
            merchant,
            payment: id,
            order_id: payment.order_id.clone(),
            kind,
            at_ms: a.now_ms,
            index: a.index,
        },
    );
    let Some(mut hook) = a.tx.get::<Webhook>(Key::Webhook(merchant)) else {
        return;
    };
    if hook.failing {
        return;
    }
    if hook.undelivered >= a.config.max_undelivered_events {
        hook.failing = true;
    } else {
        hook.undelivered += 1;
        a.tx.put_value(Key::EventOutbox(merchant, event), Some(Value::EventOutbox));
    }
    a.tx.put(Key::Webhook(merchant), hook);
}

/// The event ids waiting in a merchant's outbox, oldest first.
fn outbox_ids<S: Store + ?Sized>(store: &S, merchant: MerchantId, limit: usize) -> Vec<u64> {
    store
        .range(
            &Key::EventOutbox(merchant, 0),
            &Key::EventOutbox(merchant, u64::MAX),
            limit,
        )
        .into_iter()
        .filter_map(|(k, _)| match k {
            Key::EventOutbox(_, e) => Some(e),
            _ => None,
        })
        .collect()
}

pub(super) fn set_webhook(a: &mut Apply<'_>, merchant: MerchantId, url: Option<&str>) -> Handled {
    super::merchants::load(a, merchant)?;
    let old = a.tx.get::<Webhook>(Key::Webhook(merchant));
    let Some(url) = url else {
        // Removed: nothing waits to be pushed any more (the events stay readable).
        if let Some(hook) = old {
            for (key, _) in a.tx.range(
                Key::EventOutbox(merchant, 0),
                Key::EventOutbox(merchant, u64::MAX),
                hook.undelivered as usize + 1,
            ) {
                a.tx.delete(key);
            }
            a.tx.delete(Key::Webhook(merchant));
        }
        return Ok(Reply::WebhookSet {
            merchant,
            secret_version: None,
        });
    };
    validate::webhook_url(url)?;
    let hook = match old {
        Some(old) => Webhook {
            url: url.to_owned(),
            secret_version: old.secret_version + 1,
            registered_ms: a.now_ms,
            failing: false,
            ..old
        },
        None => Webhook {
            url: url.to_owned(),
            secret_version: 1,
            registered_ms: a.now_ms,
            undelivered: 0,
            delivered: 0,
            abandoned: 0,
            failing: false,
        },
    };
    let secret_version = Some(hook.secret_version);
    a.tx.put(Key::Webhook(merchant), hook);
    Ok(Reply::WebhookSet {
        merchant,
        secret_version,
    })
}

/// Takes delivered and given-up events out of the merchant's outbox. An event not in it (a
/// repeated acknowledgement, a removed webhook) is ignored; one given up on before its
/// `event_retry_ms` ran out by ledger time stays.
pub(super) fn ack_events(
    a: &mut Apply<'_>,
    merchant: MerchantId,
    delivered: &[u64],
    abandoned: &[u64],
) -> Handled {
    if delivered.len() + abandoned.len() > MAX_EVENT_BATCH {
        return Err(LedgerError::TooManyItems {
            max: MAX_EVENT_BATCH,
        }
        .into());
    }
    let Some(mut hook) = a.tx.get::<Webhook>(Key::Webhook(merchant)) else {
        return Ok(Reply::EventsAcked {
            delivered: 0,
            abandoned: 0,
        });
    };
    let mut counts = (0, 0);
    for (ids, given_up) in [(delivered, false), (abandoned, true)] {
        for &id in ids {
            let key = Key::EventOutbox(merchant, id);
            if a.tx.get_value(&key).is_none() {
                continue;
            }
            if given_up {
                let event: Event =
                    a.tx.get(Key::Event(merchant, id))
                        .unwrap_or_else(|| panic!("corrupt state: outbox event {id} missing"));
                if a.now_ms < event.at_ms.saturating_add(a.config.event_retry_ms) {
                    continue;
                }
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
            a.tx.delete(key);
        }
    }
    hook.undelivered -= counts.0 + counts.1;
    hook.delivered += counts.0;
    hook.abandoned += counts.1;
    a.tx.put(Key::Webhook(merchant), hook);
    Ok(Reply::EventsAcked {
        delivered: counts.0,
        abandoned: counts.1,
    })
}

/// A merchant's events after `after_id`, oldest first.
pub(super) fn events_after<S: Store>(
    store: &S,
    merchant: MerchantId,
    after_id: u64,
    limit: usize,
) -> Vec<Event> {
    store
        .range(
            &Key::Event(merchant, after_id.saturating_add(1)),
            &Key::Event(merchant, u64::MAX),
            limit.min(MAX_EVENT_BATCH),
        )
        .into_iter()
        .map(|(key, value)| match value {
            Value::Event(e) => *e,
            other => panic!("corrupt state: {other:?} at {key:?}"),
        })
        .collect()
}

/// Merchants with a webhook, and those of them marked failing.
pub(super) fn webhook_counts<S: Store>(store: &S) -> (u64, u64) {
    let hooks = store.range(
        &Key::Webhook(MerchantId(0)),
        &Key::Webhook(MerchantId(u64::MAX)),
        usize::MAX,
    );
    let failing = hooks
        .iter()
        .filter(|(_, value)| matches!(value, Value::Webhook(hook) if hook.failing))
        .count();
    (hooks.len() as u64, failing as u64)
}

/// What the leader pushes next: each merchant with a webhook that is not failing, and its
/// oldest waiting events (at most `per_merchant`).
pub(super) fn outbox<S: Store>(
    store: &S,
    per_merchant: usize,
) -> Vec<(MerchantId, Webhook, Vec<Event>)> {
    let mut out = Vec::new();
    let hooks = store.range(
        &Key::Webhook(MerchantId(0)),
        &Key::Webhook(MerchantId(u64::MAX)),
        usize::MAX,
    );
    for (key, value) in hooks {
        let (Key::Webhook(merchant), Value::Webhook(hook)) = (key, value) else {
            panic!("corrupt state: webhook range holds {key:?}");
        };
        if hook.failing || hook.undelivered == 0 {
            continue;
        }
        let events = outbox_ids(store, merchant, per_merchant)
            .into_iter()
            .map(|id| match store.get(&Key::Event(merchant, id)) {
                Some(Value::Event(e)) => *e,
                other => panic!("corrupt state: outbox event {id} is {other:?}"),
            })
            .collect();
        out.push((merchant, *hook, events));
    }
    out
}
