//! Retention (DOMAIN.md section 11): what is past its horizon by ledger time is removed, so
//! that disk and snapshots stay bounded however long the ledger runs. Journal rows go oldest
//! first (their sequence numbers follow ledger time), each with its two index entries;
//! `Meta.first_posting` remembers where the kept journal starts. A payment event goes once
//! it waits in no webhook outbox and is older than `event_retention_ms`. Each `Compact`
//! removes at most `MAX_COMPACT_BATCH` of each; the leader proposes another while
//! [`due`] says more is waiting.
//!
//! Ended payments older than `payment_retention_ms` go oldest first too (ids follow ledger
//! time), each with its OTP challenge and its order index entry (when it still names it);
//! `Meta.first_payment` marks where the kept ones start.
//!
//! OTP challenges go oldest first (ids follow ledger time) once they expired longer ago
//! than `payment_retention_ms`, their SMS has been sent, and what they confirm is gone: a
//! payment's once the payment was compacted (so a payment's voided codes go with it too); an
//! enrolment's at once, with the enrolment itself when it still waits on that code (it was
//! abandoned: starting again begins a new one). `Meta.first_challenge` marks where the kept
//! ones start.
//!
//! A statement over a compacted range still opens at the right balance: an account with no
//! kept row at or after a time has held its present balance since then.

use super::{Apply, Handled};
use crate::command::{order_digest, receipt_digest};
use crate::config::{LedgerConfig, MAX_COMPACT_BATCH};
use crate::outcome::Reply;
use crate::state::{
    Challenge, ChallengePurpose, Enrolment, Key, Meta, Payment, PaymentMethod, PaymentState, Store,
    Value,
};
use crate::types::{ChallengeId, MerchantId, PaymentId};

/// Removes one batch of what is due.
pub(super) fn compact(a: &mut Apply<'_>) -> Handled {
    let rows = due_postings(a.tx.store, &a.meta, a.config, a.now_ms, MAX_COMPACT_BATCH);
    for (seq, posting) in &rows {
        for account in [posting.source, posting.target] {
            a.tx.delete(Key::AccountPosting(account, posting.at_ms, *seq));
        }
        a.tx.delete(Key::Posting(*seq));
    }
    if let Some((last, _)) = rows.last() {
        a.meta.first_posting = last + 1;
    }
    let events = due_events(a.tx.store, a.config, a.now_ms, MAX_COMPACT_BATCH);
    for &(merchant, id) in &events {
        a.tx.delete(Key::Event(merchant, id));
    }
    let payments = due_payments(a.tx.store, &a.meta, a.config, a.now_ms, MAX_COMPACT_BATCH);
    for (id, payment) in &payments {
        let order_key = Key::OrderIndex(payment.payee, order_key_digest(payment));
        if a.tx.get_value(&order_key) == Some(Value::OrderIndex(*id)) {
            a.tx.delete(order_key);
        }
        if let Some(challenge) = payment.challenge() {
            a.tx.delete(Key::Challenge(challenge));
        }
        a.tx.delete(Key::Payment(*id));
    }
    if let Some((last, _)) = payments.last() {
        a.meta.first_payment = last.0 + 1;
    }
    let challenges = due_challenges(a.tx.store, &a.meta, a.config, a.now_ms, MAX_COMPACT_BATCH);
    for (id, challenge) in &challenges {
        if let ChallengePurpose::Enrolment(account) = challenge.purpose {
            let waiting = a.tx.get::<Enrolment>(Key::Enrolment(account));
            if waiting.is_some_and(|e| e.challenge == Some(*id)) {
                a.tx.delete(Key::Enrolment(account));
            }
        }
        a.tx.delete(Key::Challenge(*id));
    }
    if let Some((last, _)) = challenges.last() {
        a.meta.first_challenge = last.0 + 1;
    }
    Ok(Reply::Compacted {
        postings: rows.len() as u64,
        events: events.len() as u64,
        payments: payments.len() as u64,
        challenges: challenges.len() as u64,
    })
}

/// The order index key a payment was recorded under: its order id for e-Pay, its terminal
/// and receipt number at a terminal.
fn order_key_digest(payment: &Payment) -> crate::types::Digest32 {
    match payment.method {
        PaymentMethod::Epay { .. } => order_digest(&payment.order_id),
        PaymentMethod::CardPresent { terminal } => receipt_digest(terminal, &payment.order_id),
    }
}

/// The oldest payments past the horizon, at most `limit`, up to the first that has not
/// ended (none should be: a code lives minutes) or whose SMS still waits to be sent.
fn due_payments<S: Store + ?Sized>(
    store: &S,
    meta: &Meta,
    config: &LedgerConfig,
    now_ms: u64,
    limit: usize,
) -> Vec<(PaymentId, Payment)> {
    let horizon = now_ms.saturating_sub(config.payment_retention_ms);
    store
        .range(
            &Key::Payment(PaymentId(meta.first_payment)),
            &Key::Payment(PaymentId(meta.next_payment)),
            limit,
        )
        .into_iter()
        .map(|(key, value)| match (key, value) {
            (Key::Payment(id), Value::Payment(p)) => (id, *p),
            (key, other) => panic!("corrupt state: {other:?} at {key:?}"),
        })
        .take_while(|(_, p)| {
            p.created_ms < horizon
                && p.state != PaymentState::Pending
                && p.challenge()
                    .is_none_or(|c| store.get(&Key::Outbox(c)).is_none())
        })
        .collect()
}

/// The oldest challenges past the horizon, at most `limit`, up to the first whose SMS still
/// waits or whose payment is still kept. `meta.first_payment` must already count the
/// payments this same `Compact` removes.
fn due_challenges<S: Store + ?Sized>(
    store: &S,
    meta: &Meta,
    config: &LedgerConfig,
    now_ms: u64,
    limit: usize,
) -> Vec<(ChallengeId, Challenge)> {
    let horizon = now_ms.saturating_sub(config.payment_retention_ms);
    store
        .range(
            &Key::Challenge(ChallengeId(meta.first_challenge)),
            &Key::Challenge(ChallengeId(meta.next_challenge)),
            limit,
        )
        .into_iter()
        .map(|(key, value)| match (key, value) {
            (Key::Challenge(id), Value::Challenge(c)) => (id, *c),
            (key, other) => panic!("corrupt state: {other:?} at {key:?}"),
        })
        .take_while(|(id, c)| {
            c.expires_ms < horizon
                && store.get(&Key::Outbox(*id)).is_none()
                && match c.purpose {
                    ChallengePurpose::Payment(payment) => payment.0 < meta.first_payment,
                    ChallengePurpose::Enrolment(_) => true,
                }
        })
        .collect()
}

/// Whether a `Compact` at `now_ms` would remove anything.
pub(super) fn due<S: Store>(store: &S, meta: &Meta, config: &LedgerConfig, now_ms: u64) -> bool {
    !due_postings(store, meta, config, now_ms, 1).is_empty()
        || !due_events(store, config, now_ms, 1).is_empty()
        || !due_payments(store, meta, config, now_ms, 1).is_empty()
        || !due_challenges(store, meta, config, now_ms, 1).is_empty()
}

/// The oldest journal rows past the horizon, at most `limit`.
fn due_postings<S: Store + ?Sized>(
    store: &S,
    meta: &Meta,
    config: &LedgerConfig,
    now_ms: u64,
    limit: usize,
) -> Vec<(u64, crate::state::Posting)> {
    let horizon = now_ms.saturating_sub(config.journal_retention_ms);
    store
        .range(
            &Key::Posting(meta.first_posting),
            &Key::Posting(meta.next_posting),
            limit,
        )
        .into_iter()
        .map(|(key, value)| match (key, value) {
            (Key::Posting(seq), Value::Posting(p)) => (seq, *p),
            (key, other) => panic!("corrupt state: {other:?} at {key:?}"),
        })
        .take_while(|(_, p)| p.at_ms < horizon)
        .collect()
}

/// Events past the horizon that wait in no outbox, at most `limit`: each merchant's oldest
/// first (ids follow ledger time), one merchant after another.
fn due_events<S: Store + ?Sized>(
    store: &S,
    config: &LedgerConfig,
    now_ms: u64,
    limit: usize,
) -> Vec<(MerchantId, u64)> {
    let horizon = now_ms.saturating_sub(config.event_retention_ms);
    let mut due = Vec::new();
    let mut from = Key::Event(MerchantId(0), 0);
    let end = Key::Event(MerchantId(u64::MAX), u64::MAX);
    while due.len() < limit {
        let Some((key, value)) = store.range(&from, &end, 1).into_iter().next() else {
            break;
        };
        let (Key::Event(merchant, id), Value::Event(event)) = (key, value) else {
            panic!("corrupt state: event range holds {key:?}");
        };
        let waiting = store.get(&Key::EventOutbox(merchant, id)).is_some();
        if event.at_ms < horizon && !waiting {
            due.push((merchant, id));
            from = Key::Event(merchant, id + 1);
        } else if merchant.0 == u64::MAX {
            break;
        } else {
            // This merchant's older events are gone or still waiting: the next merchant.
            from = Key::Event(MerchantId(merchant.0 + 1), 0);
        }
    }
    due
}
