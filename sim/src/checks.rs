//! The checks. During the run (the monitor, every `MONITOR_EVERY_MS`): one leader per term,
//! committed entries never change, every committed command within its fields' bounds, no
//! replica stopped on a fatal error (but on the corruption the `storage` fault put in its
//! storage). When healing: every replica's storage scrubbed, the corrupted ones repaired.
//! After healing: money and voucher invariants on every
//! replica, equal state hashes, every acknowledged answer the one recorded, each logical
//! operation applied at most once, each payment settled at most once, rewards only past the
//! thresholds, the log order respecting real time, probes refused as they must be, and
//! every SMS the outbox let go of delivered (or expired).

use crate::cluster::{keys, Cluster};
use crate::merchants::Inboxes;
use crate::phones::Phones;
use crate::workload::{as_expected, Event, Expect};
use ledger_core::config::MAX_EVENT_BATCH;
use ledger_core::state::{EventKind, PaymentState};
use ledger_core::types::{
    AccountId, CampaignId, ChallengeId, MerchantId, Payee, PaymentId, RequestKey,
};
use ledger_core::{validate, Ledger, Reply};
use ledger_node::intake::request_digest;
use ledger_node::raft_types::{NodeId, ProposalBody};
use ledger_node::state_store::SledState;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the monitor samples the cluster, virtual ms.
const MONITOR_EVERY_MS: u64 = 10;

/// What the monitor saw.
#[derive(Default)]
pub struct Observed {
    pub leaders_by_term: BTreeMap<u64, BTreeSet<NodeId>>,
    /// Violations found during the run.
    pub fatal: BTreeSet<String>,
    /// Digest of every applied entry by index, as first seen.
    committed: BTreeMap<u64, [u8; 32]>,
    checked: BTreeMap<NodeId, u64>,
    /// Each replica's ledger time at its applied index, as last seen.
    ledger_time: BTreeMap<NodeId, (Option<u64>, u64)>,
    /// Each replica's ledger time when it last moved.
    ledger_time_moved: BTreeMap<NodeId, Moved>,
}

/// A replica's ledger time when it last moved: when (virtual time), at which applied index.
#[derive(Clone, Copy)]
struct Moved {
    ms: u64,
    at: tokio::time::Instant,
    applied: u64,
}

/// Ledger time may stand still this long (virtual) while entries apply: a leader that just
/// took over (or restarted with its clock behind) stamps behind it until it has seen it.
const LEDGER_TIME_STILL_MAX: Duration = Duration::from_secs(5);
/// ...and only counts as standing still once this many entries applied meanwhile.
const LEDGER_TIME_STILL_ENTRIES: u64 = 50;

/// Samples the cluster until `stop`; returns what it saw.
pub async fn monitor(cluster: Arc<tokio::sync::Mutex<Cluster>>, stop: Arc<AtomicBool>) -> Observed {
    let mut observed = Observed::default();
    while !stop.load(Ordering::Relaxed) {
        {
            let c = cluster.lock().await;
            check_committed(&c, &mut observed).await;
            check_leaders(&c, &mut observed);
            check_ledger_time(&c, &mut observed);
        }
        tokio::time::sleep(Duration::from_millis(MONITOR_EVERY_MS)).await;
    }
    observed
}

/// Committed entries never change (the digest of every applied entry, by index, is the
/// same everywhere, forever), and no committed command has a field past its bound.
async fn check_committed(c: &Cluster, o: &mut Observed) {
    for (id, node) in &c.nodes {
        let applied = node.raft().metrics().borrow().last_applied.map(|l| l.index);
        let Some(applied) = applied else { continue };
        let from = o.checked.get(id).map_or(0, |c| c + 1);
        if from > applied {
            continue;
        }
        let mut log = node.log.clone();
        let entries = openraft::RaftLogReader::try_get_log_entries(&mut log, from..=applied)
            .await
            .unwrap_or_default();
        for entry in entries {
            let digest: [u8; 32] =
                Sha256::digest(bincode::serialize(&entry).unwrap_or_default()).into();
            let index = entry.log_id.index;
            if o.committed
                .insert(index, digest)
                .is_some_and(|seen| seen != digest)
            {
                o.fatal.insert(format!(
                    "committed entry {index} changed (seen differently on node {id})"
                ));
            }
            if let openraft::EntryPayload::Normal(proposal) = &entry.payload {
                if let ProposalBody::Commands(envelopes) = &proposal.body {
                    for e in envelopes {
                        if let Err(error) = validate::field_limits(&e.command) {
                            o.fatal.insert(format!(
                                "the log holds a command past a field bound at index {index} ({error}): the intake let {:?} through",
                                e.key
                            ));
                        }
                    }
                }
            }
        }
        o.checked.insert(*id, applied);
    }
}

/// Ledger time never goes back: on each replica, a later applied index has a ledger time at
/// least the earlier one's, whatever the leaders' clocks did (the `clocks` fault steps them
/// by up to an hour either way). Nor does it stand still while entries apply: a leader
/// whose clock stepped back (or lags the last leader's) that stamped its entries with it
/// would hold ledger time still until its clock caught up, and every code issued
/// meanwhile would stay valid that long. A replica whose applied index went down was
/// wiped: it starts over. Corrupted replicas are not read (they stop when they read the
/// bad record).
fn check_ledger_time(c: &Cluster, o: &mut Observed) {
    for (id, node) in &c.nodes {
        if c.corrupted.contains(id) {
            continue;
        }
        let Some((now_ms, applied)) = node
            .reader()
            .read(|l, applied| (l.meta().last_now_ms, applied))
        else {
            continue;
        };
        if let Some((seen_applied, seen_ms)) = o.ledger_time.get(id).copied() {
            if applied >= seen_applied && now_ms < seen_ms {
                o.fatal.insert(format!(
                    "ledger time went back on node {id}: {seen_ms} at index {seen_applied:?}, {now_ms} at index {applied:?}"
                ));
            }
        }
        o.ledger_time.insert(*id, (applied, now_ms));
        check_ledger_time_moves(*id, now_ms, applied.unwrap_or(0), o);
    }
}

fn check_ledger_time_moves(id: NodeId, now_ms: u64, applied: u64, o: &mut Observed) {
    let now = tokio::time::Instant::now();
    let moved = Moved {
        ms: now_ms,
        at: now,
        applied,
    };
    let last = *o.ledger_time_moved.entry(id).or_insert(moved);
    if now_ms != last.ms || applied < last.applied {
        o.ledger_time_moved.insert(id, moved);
        return;
    }
    let still = now - last.at;
    let entries = applied - last.applied;
    if still > LEDGER_TIME_STILL_MAX && entries >= LEDGER_TIME_STILL_ENTRIES {
        o.fatal.insert(format!(
            "ledger time stood still on node {id} at {now_ms} for {} virtual ms while {entries} entries applied",
            still.as_millis()
        ));
        o.ledger_time_moved.insert(id, moved);
    }
}

/// At most one leader per term; no replica stopped on a fatal error, but for one stopping
/// on corruption put in its storage.
fn check_leaders(c: &Cluster, o: &mut Observed) {
    for (id, node) in &c.nodes {
        let m = node.raft().metrics().borrow().clone();
        // A leader of term T holds a committed vote for itself in T. (The server state
        // alone can lag a vote a deposed leader just granted.)
        let vote = m.vote;
        if m.state == openraft::ServerState::Leader
            && vote.committed
            && vote.leader_id.voted_for == Some(*id)
            && o.leaders_by_term
                .entry(vote.leader_id.term)
                .or_default()
                .insert(*id)
        {
            c.trace(&format!("leader {id} term {}\n", vote.leader_id.term));
        }
        if let Err(e) = &m.running_state {
            // A node stopping on the corruption the `storage` fault put in its data, or on a
            // write its full disk refused, is what it must do (it is repaired, or restarted
            // once there is room); stopping on anything else is a bug.
            let e_text = e.to_string();
            let found_corruption =
                c.corrupted.contains(id) && e_text.contains("fails its checksum");
            let out_of_space = c.ran_out.contains(id) && e_text.contains(crate::storage::NO_SPACE);
            if !(found_corruption || out_of_space) {
                o.fatal.insert(format!("node {id} stopped: {e}"));
            }
        }
    }
}

/// The checks after healing.
pub fn after_healing(
    c: &Cluster,
    history: &[Event],
    observed: &Observed,
    phones: &Phones,
    inboxes: &Inboxes,
    violations: &mut Vec<String>,
) {
    for (term, leaders) in &observed.leaders_by_term {
        if leaders.len() > 1 {
            violations.push(format!("term {term} had leaders {leaders:?}"));
        }
    }
    let mut hashes = BTreeMap::new();
    for (id, node) in &c.nodes {
        let Some(ledger) = node.reader().ledger() else {
            violations.push(format!("node {id} has no ledger"));
            continue;
        };
        if let Err(e) = ledger.check_invariants() {
            violations.push(format!("node {id}: {e}"));
        }
        hashes.insert(*id, (node.reader().applied_index(), ledger.state_hash()));
        check_records(*id, &ledger, history, violations);
    }
    check_probes(history, violations);
    check_roles(history, violations);
    if let Some(ledger) = c.nodes.values().next().and_then(|n| n.reader().ledger()) {
        check_payments(&ledger, history, violations);
        check_real_time_order(&ledger, history, violations);
        check_rewards(&ledger, violations);
        check_sms_delivered(&ledger, history, phones, violations);
        check_events_delivered(&ledger, history, inboxes, violations);
    }
    let distinct: BTreeSet<_> = hashes.values().collect();
    if distinct.len() > 1 {
        violations.push(format!("replicas differ after catching up: {hashes:?}"));
    }
}

/// Every acknowledged answer is the one the replica recorded for that request, and each
/// logical operation applied at most once, whatever keys its retries used.
fn check_records(
    id: NodeId,
    ledger: &Ledger<SledState>,
    history: &[Event],
    violations: &mut Vec<String>,
) {
    let keys = keys();
    for e in history {
        let applied: Vec<&RequestKey> = e
            .keys_tried
            .iter()
            .filter(|k| {
                ledger
                    .idempotency_record(**k)
                    .is_some_and(|r| r.outcome.is_ok())
            })
            .collect();
        if applied.len() > 1 {
            violations.push(format!(
                "node {id}: one operation of client {} applied {} times: {applied:?}",
                e.client,
                applied.len()
            ));
        }
        if e.expect == Expect::Forbidden
            && e.keys_tried
                .iter()
                .any(|k| ledger.idempotency_record(*k).is_some())
        {
            violations.push(format!(
                "node {id}: {}'s forbidden {:?} reached the ledger under {:?}",
                e.principal, e.operation, e.key
            ));
        }
        let Some(outcome) = &e.outcome else { continue };
        if e.expect == Expect::KeyReused {
            continue;
        }
        match ledger.idempotency_record(e.key) {
            Some(r) if r.request_digest != request_digest(&keys, &e.operation) => {
                violations.push(format!(
                    "node {id}: {:?} is recorded with a digest that is not its request's: the intake digested something else",
                    e.key
                ))
            }
            Some(r) if &r.outcome == outcome => {}
            // A refusal that changed nothing is not recorded: retries evaluate afresh.
            None if outcome.is_err() => {}
            other => violations.push(format!(
                "node {id}: acknowledged {:?} ({:?}) not present as answered: {:?}",
                e.key,
                outcome,
                other.map(|r| r.outcome)
            )),
        }
    }
}

/// Probes got the refusal they must: a recorded key sent with another code is refused as
/// reused; an over-long field is refused.
fn check_probes(history: &[Event], violations: &mut Vec<String>) {
    for e in history {
        if let Some(outcome) = &e.outcome {
            if !as_expected(e.expect, outcome) {
                violations.push(format!(
                    "{:?} probe under {:?} was answered {outcome:?}",
                    e.expect, e.key
                ));
            }
        }
    }
}

/// The role table refused exactly what it must: no operation within its sender's role was
/// refused as forbidden (an operation outside it is checked by `check_probes` and
/// `check_records`: it got no ledger answer and left no record).
fn check_roles(history: &[Event], violations: &mut Vec<String>) {
    for e in history {
        if e.forbidden && e.expect != Expect::Forbidden {
            violations.push(format!(
                "{} was refused {:?} under {:?}, which its role allows",
                e.principal, e.operation, e.key
            ));
        }
    }
}

/// Every payment settles at most once, and ends as its acknowledged answers said: settled
/// (with at least the refunds acknowledged for it) or cancelled. Every pending payment whose
/// challenge ledger time has passed reads as expired, and the ledger holds no payment
/// outside the one life it may have.
fn check_payments(ledger: &Ledger<SledState>, history: &[Event], violations: &mut Vec<String>) {
    let mut settled: BTreeMap<PaymentId, usize> = BTreeMap::new();
    let mut refunded: BTreeMap<PaymentId, u64> = BTreeMap::new();
    for e in history.iter().filter(|e| e.expect == Expect::Normal) {
        let ended_as = match &e.outcome {
            Some(Ok(Reply::PaymentSettled { payment, .. })) => {
                *settled.entry(*payment).or_default() += 1;
                Some((*payment, "settled"))
            }
            Some(Ok(Reply::PaymentCancelled { payment })) => Some((*payment, "cancelled")),
            Some(Ok(Reply::PaymentRefunded {
                payment,
                refund_fen,
                ..
            })) => {
                *refunded.entry(*payment).or_default() += refund_fen;
                Some((*payment, "settled"))
            }
            _ => None,
        };
        let Some((payment, expected)) = ended_as else {
            continue;
        };
        let state = ledger.payment(payment).map(|p| p.state);
        let actual = match state {
            Some(PaymentState::Settled { .. }) => "settled",
            Some(PaymentState::Cancelled { .. }) => "cancelled",
            _ => "something else",
        };
        if actual != expected {
            violations.push(format!(
                "payment {payment} was acknowledged {expected} but is {state:?}"
            ));
        }
    }
    for (payment, times) in settled {
        if times > 1 {
            violations.push(format!("payment {payment} settled by {times} operations"));
        }
    }
    for (payment, acknowledged_fen) in refunded {
        let recorded = ledger.payment(payment).map(|p| p.refunds.total_fen);
        if recorded.is_none_or(|r| r < acknowledged_fen) {
            violations.push(format!(
                "payment {payment}: {acknowledged_fen} fen of refunds acknowledged, {recorded:?} recorded"
            ));
        }
    }
    // The leader expires what nobody touches: a payment still stored as pending long after
    // its expiry (in ledger time, which only commands move) means no leader did.
    let last_now_ms = ledger.meta().last_now_ms;
    for id in 1..ledger.meta().next_payment {
        let Some(payment) = ledger.stored_payment(PaymentId(id)) else {
            violations.push(format!("payment {id} is missing"));
            continue;
        };
        let expires_ms = payment
            .challenge()
            .and_then(|c| ledger.challenge(c))
            .map(|c| c.expires_ms);
        if payment.state == PaymentState::Pending
            && expires_ms.is_some_and(|e| last_now_ms >= e + EXPIRY_SLACK_MS)
        {
            violations.push(format!(
                "payment {id} is still pending {} ms of ledger time after its expiry",
                last_now_ms - expires_ms.unwrap_or(0)
            ));
        }
    }
}

/// How long after a payment's expiry (in ledger time) a leader must have recorded it.
const EXPIRY_SLACK_MS: u64 = 5_000;

/// Linearizability against the ledger core: every replica applied the same commands in log
/// order (equal hashes) and every acknowledged outcome is the one recorded at its log index
/// (`check_records`); what remains is that the log order respects real time: an operation
/// acknowledged before another was invoked sits earlier in the log. (First come, first
/// served for vouchers follows.)
fn check_real_time_order(
    ledger: &Ledger<SledState>,
    history: &[Event],
    violations: &mut Vec<String>,
) {
    let mut placed: Vec<(u64, u64, u64, RequestKey)> = history
        .iter()
        .filter(|e| e.outcome.is_some() && e.expect == Expect::Normal)
        .filter_map(|e| {
            let r = ledger.idempotency_record(e.key)?;
            Some((e.invoked_ms, e.completed_ms, r.applied_index, e.key))
        })
        .collect();
    let mut by_completion = placed.clone();
    by_completion.sort_by_key(|p| p.1);
    placed.sort_by_key(|p| p.0);
    let mut done = by_completion.iter().peekable();
    let mut latest: Option<(u64, RequestKey)> = None;
    for (invoked, _, index, key) in &placed {
        while let Some((_, completed, i, k)) = done.peek() {
            if completed >= invoked {
                break;
            }
            if latest.is_none_or(|(li, _)| *i > li) {
                latest = Some((*i, *k));
            }
            done.next();
        }
        if let Some((earlier_index, earlier)) = latest {
            if *index <= earlier_index {
                violations.push(format!(
                    "real-time order broken: {earlier:?} (log index {earlier_index}) was acknowledged before {key:?} was sent, yet {key:?} sits at {index}"
                ));
            }
        }
    }
}

/// The one-time rewards: at most one per merchant and campaign (a counter holds one payment),
/// granted by a settled payment of that merchant past the campaign's count, and paid in full.
fn check_rewards(ledger: &Ledger<SledState>, violations: &mut Vec<String>) {
    let mut owed: i64 = 0;
    for c in 1..ledger.meta().next_campaign {
        let campaign_id = CampaignId(c);
        let Some(campaign) = ledger.campaign(campaign_id) else {
            violations.push(format!("campaign {c} missing"));
            continue;
        };
        for id in 1..ledger.meta().next_merchant {
            let merchant = MerchantId(id);
            let Some(counters) = ledger.merchant_campaign(merchant, campaign_id) else {
                continue;
            };
            let Some(payment) = counters.reward_payment else {
                continue;
            };
            let Some(m) = ledger.merchant(merchant) else {
                violations.push(format!("merchant {id} missing"));
                continue;
            };
            let Some(rule) = campaign.rules.reward_for(m.kind) else {
                violations.push(format!(
                    "merchant {id} rewarded by campaign {c}, which has no reward for it"
                ));
                continue;
            };
            owed += rule.reward_fen as i64;
            if counters.tx_count < rule.min_count {
                violations.push(format!(
                    "merchant {id} rewarded by campaign {c} below its count: {counters:?}"
                ));
            }
            let settled_here = ledger.payment(payment).is_some_and(|p| {
                p.payee == Payee::Merchant(merchant)
                    && matches!(p.state, PaymentState::Settled { settled_ms, .. } if campaign.runs_at(settled_ms))
            });
            if !settled_here {
                violations.push(format!(
                    "merchant {id}'s reward in campaign {c} names payment {payment}, not one it settled in the campaign"
                ));
            }
        }
    }
    let paid = ledger
        .balance_fen(AccountId::TELECOM_SETTLEMENT)
        .unwrap_or(0);
    if paid != owed {
        violations.push(format!(
            "{owed} fen of phone credit owed by the rewards granted, {paid} fen paid"
        ));
    }
}

/// Every challenge a client was told of that left the outbox reached the customer's phone,
/// unless it had expired by ledger time (the leader then lets it go unsent).
fn check_sms_delivered(
    ledger: &Ledger<SledState>,
    history: &[Event],
    phones: &Phones,
    violations: &mut Vec<String>,
) {
    let outbox: BTreeSet<ChallengeId> = ledger.outbox(usize::MAX).into_iter().collect();
    let now_ms = ledger.meta().last_now_ms;
    for e in history {
        let challenge = match &e.outcome {
            Some(Ok(Reply::PaymentPending { challenge, .. }))
            | Some(Ok(Reply::ChallengeIssued { challenge, .. })) => *challenge,
            _ => continue,
        };
        let expired = ledger
            .challenge(challenge)
            .is_none_or(|c| now_ms >= c.expires_ms);
        if !outbox.contains(&challenge) && !phones.received(challenge) && !expired {
            violations.push(format!(
                "the SMS of challenge {challenge} left the outbox but never reached the phone"
            ));
        }
    }
}

/// Every merchant event that left the webhook outbox reached the merchant with a valid
/// signature, unless given up on; and every settled or refunded payment has its event.
fn check_events_delivered(
    ledger: &Ledger<SledState>,
    history: &[Event],
    inboxes: &Inboxes,
    violations: &mut Vec<String>,
) {
    for bad in inboxes.bad() {
        violations.push(format!("webhook delivery refused by the merchant: {bad}"));
    }
    let waiting: BTreeSet<u64> = ledger
        .event_outbox(usize::MAX)
        .into_iter()
        .flat_map(|(_, _, events)| events.into_iter().map(|e| e.id))
        .collect();
    let mut settled_events = BTreeSet::new();
    let merchants = (1..)
        .map(MerchantId)
        .take_while(|m| ledger.merchant(*m).is_some());
    for merchant in merchants {
        let Some(hook) = ledger.webhook(merchant) else {
            continue;
        };
        let mut after = 0;
        loop {
            let page = ledger.events(merchant, after, MAX_EVENT_BATCH);
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            for event in &page {
                if matches!(event.kind, EventKind::Settled { .. }) {
                    settled_events.insert(event.payment);
                }
                if event.at_ms < hook.registered_ms {
                    continue;
                }
                if !waiting.contains(&event.id)
                    && !inboxes.received(event.id)
                    && hook.abandoned == 0
                {
                    violations.push(format!(
                        "event {} ({}) of merchant {merchant} left the webhook outbox but never reached the merchant",
                        event.id,
                        event.kind.name()
                    ));
                }
            }
        }
    }
    for e in history {
        if let Some(Ok(Reply::PaymentSettled { payment, .. })) = &e.outcome {
            let to_merchant = ledger
                .payment(*payment)
                .is_some_and(|p| matches!(p.payee, Payee::Merchant(_)));
            if to_merchant && !settled_events.contains(payment) {
                violations.push(format!(
                    "settled payment {payment} has no payment.settled event"
                ));
            }
        }
    }
}
