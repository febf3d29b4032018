//! The SMS outbox loop: while this node leads, it sends what is in the replicated outbox
//! through the gateway, then acknowledges it through the log. A message committed before a
//! leader change is still in the outbox afterwards and the new leader sends it: at least
//! once. Expired challenges are acknowledged without sending: their code could no longer be
//! used. A message the gateway refused stays in the outbox and is tried again.
//!
//! The same round expires pending payments whose challenge expired by the leader's clock
//! (`Command::ExpirePayments`): a payment nobody confirms or cancels still reaches its end
//! in the replicated state, whether or not anyone touches it again. And now and then it
//! proposes `Command::Compact` when journal rows or payment events are past their retention.

use crate::node::Shared;
use crate::planted::PlantedBug;
use crate::raft_types::{LedgerTypes, Proposal, ProposalBody};
use crate::sms::{self, SmsGateway};
use crate::state_store::SledState;
use ledger_core::command::{Command, Envelope};
use ledger_core::config::MAX_EXPIRE_BATCH;
use ledger_core::types::{ChallengeId, MerchantId, Payee};
use ledger_core::Ledger;
use std::sync::Arc;
use std::time::Duration;

/// Most outbox messages a leader sends per round.
pub const SMS_PER_ROUND: usize = 128;
/// How often the leader asks whether anything is past its retention (`Command::Compact`).
pub const COMPACTION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Runs the loop until the task is aborted: a round at every tick, and as soon as a request
/// committed a challenge.
pub async fn run<C: LedgerTypes>(
    shared: Arc<Shared<C>>,
    gateway: Arc<dyn SmsGateway>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_compaction_check = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shared.sms_wakeup.notified() => {}
            _ = tick.tick() => {}
        }
        let Some(ledger) = shared.reader.ledger() else {
            continue;
        };
        // Every node carries ledger time on, so that the next leader stamps no earlier.
        shared.stamper.observe(ledger.meta().last_now_ms);
        if !shared.is_leader() {
            continue;
        }
        let now_ms = shared.stamper.now_ms();
        let done = send_round(&shared, gateway.as_ref(), &ledger, now_ms).await;
        let expired = ledger.expired_payments(now_ms, MAX_EXPIRE_BATCH);
        let mut commands = Vec::new();
        if !done.is_empty() {
            commands.push(Command::AckSms { challenges: done });
        }
        if !expired.is_empty() {
            commands.push(Command::ExpirePayments { payments: expired });
        }
        // Looking costs a read per merchant with events: not every round. While a batch
        // was due, look again next round (more may be waiting).
        if tokio::time::Instant::now() >= next_compaction_check {
            if ledger.compaction_due(now_ms) {
                commands.push(Command::Compact);
            } else {
                next_compaction_check = tokio::time::Instant::now() + COMPACTION_CHECK_INTERVAL;
            }
        }
        if commands.is_empty() {
            continue;
        }
        let envelopes = commands
            .into_iter()
            .map(|command| {
                let key = shared.internal_key(&ledger);
                Envelope::new(key, key.request_id, command)
            })
            .collect();
        let proposal = Proposal {
            now_ms,
            body: ProposalBody::Commands(envelopes),
        };
        match crate::proposer::write_bounded(&shared.raft, proposal).await {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(error = %e, "outbox round not committed; it is done again next round")
            }
            None => tracing::warn!("outbox round not applied in time; it is done again next round"),
        }
    }
}

/// Sends one round of the outbox; returns the challenges it is done with (sent, or expired).
async fn send_round<C: LedgerTypes>(
    shared: &Shared<C>,
    gateway: &dyn SmsGateway,
    ledger: &Ledger<SledState>,
    now_ms: u64,
) -> Vec<ChallengeId> {
    let mut done = Vec::new();
    for challenge in ledger.outbox(SMS_PER_ROUND) {
        let Some(facts) = ledger.sms_facts(challenge) else {
            done.push(challenge);
            continue;
        };
        if now_ms >= facts.expires_ms {
            done.push(challenge);
            continue;
        }
        let payee_name = match facts.payee {
            Some(Payee::Merchant(MerchantId(m))) => ledger.merchant(MerchantId(m)).map(|m| m.name),
            _ => None,
        };
        let message = sms::compose(&shared.intake.keys, &facts, payee_name.as_deref());
        match gateway.deliver(&message).await {
            Ok(()) => {
                shared.metrics.sms_sent.inc();
                done.push(challenge);
            }
            Err(e) => {
                shared.metrics.sms_failed.inc();
                tracing::warn!(challenge = challenge.0, error = %e, "sms not delivered; will retry");
                if shared.intake.planted == Some(PlantedBug::OutboxAcksUndelivered) {
                    done.push(challenge);
                }
            }
        }
    }
    done
}
