//! Idempotency: deposits under explicit keys; a deposit whose outcome was unknown is sent
//! again under its key (an operation of the workload, `retry: true`), and now and then one
//! request is sent twice at once. Every answer to one key is the same, and each deposit is
//! applied at most once.

use super::client::{classify, key_json, read_balances, retry_oldest, Done, Effect, Pending};
use super::{BoxFuture, FinalRead, ReadResult, Step, Workload};
use crate::checker::{cluster_final_read, describe, without_final_read, Finding, Validity};
use crate::history::OpType;
use crate::ops::{Answer, Op, Record};
use crate::runner::TestInfo;
use ledger_client::Operation;
use ledger_core::command::Command;
use ledger_core::outcome::LedgerError;
use ledger_core::types::{AccountId, RequestKey};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Accounts deposited to.
pub const IDEMPOTENCY_ACCOUNTS: u64 = 4;
/// Largest deposit.
const MAX_DEPOSIT_FEN: u64 = 10_000;

pub struct Idempotency;

impl Workload for Idempotency {
    fn accounts(&self, _concurrency: u64) -> (u64, u64) {
        (IDEMPOTENCY_ACCOUNTS, 0)
    }

    fn step<'a>(&'a self, step: Step<'a>) -> BoxFuture<'a, OpType> {
        Box::pin(deposit_step(step))
    }

    fn final_read<'a>(&'a self, read: FinalRead<'a>) -> BoxFuture<'a, ReadResult> {
        Box::pin(read_balances(read))
    }

    fn checkers(&self, test: &TestInfo, history: &[Record<'_>]) -> Vec<(&'static str, Finding)> {
        vec![("idempotency", idempotency(test, history))]
    }
}

fn deposit_operation(account: u64, amount: u64) -> Operation {
    Operation::Command(Command::Deposit {
        account: AccountId(account),
        amount_fen: amount,
    })
}

/// Half the time an unknown deposit is sent again; otherwise a new deposit (sent twice at
/// once a tenth of the time).
async fn deposit_step(step: Step<'_>) -> OpType {
    if !step.thread.pending.is_empty() && step.rng.gen_bool(0.5) {
        return retry_oldest(step).await;
    }
    let key = step.client.new_key();
    let account = step.run.setup.accounts[step.rng.gen_range(0..step.run.setup.accounts.len())];
    let amount = step.rng.gen_range(1..=MAX_DEPOSIT_FEN);
    let twice = step.rng.gen_bool(0.1);
    let (kind, invoke) = deposit(&step, key, account, amount, twice).await;
    if kind == OpType::Info {
        step.thread.pending.push(Pending {
            key,
            invoke,
            f: "deposit",
            value: json!({"key": key_json(key), "account": account, "amount": amount, "retry": true}),
            operation: deposit_operation(account, amount),
        });
    }
    kind
}

/// A deposit under `key`; with `twice`, the same request sent twice at once (both answers
/// must be the same). Returns its completion's type and its invocation's index.
async fn deposit(
    step: &Step<'_>,
    key: RequestKey,
    account: u64,
    amount: u64,
    twice: bool,
) -> (OpType, u64) {
    let client = step.client;
    let mut value =
        json!({"key": key_json(key), "account": account, "amount": amount, "retry": false});
    let operation = deposit_operation(account, amount);
    let (kind, _, invoke) = if twice {
        value["twice"] = json!(true);
        let both = async {
            let (a, b) = tokio::join!(
                client.submit_with_key(key, operation.clone()),
                client.submit_with_key(key, operation.clone())
            );
            match (a, b) {
                (Ok(a), Ok(b)) => Ok((a, Some(b))),
                (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok((a, None)),
                // If either send's outcome is unknown, so is the operation's.
                (Err(a), Err(b)) => Err(if matches!(classify(a.clone()), Done::Info(_)) {
                    a
                } else {
                    b
                }),
            }
        };
        let result = |(a, b)| json!({"reply": a, "second_reply": b});
        step.run
            .op(step.process, "deposit", value, Effect::Write, both, result)
            .await
    } else {
        let once = client.submit_with_key(key, operation);
        let result = |reply| json!({"reply": reply});
        step.run
            .op(step.process, "deposit", value, Effect::Write, once, result)
            .await
    };
    (kind, invoke)
}

/// What was heard about one key's deposit.
struct KeyRecord {
    account: u64,
    amount_fen: u64,
    /// The replies (as the client reported them), and the ledger's refusals.
    replies: Vec<Value>,
    refusals: Vec<LedgerError>,
    /// Attempts that certainly did nothing (refused by the ledger, or before it: a full
    /// disk), and attempts whose outcome is unknown.
    failures: usize,
    unknown: usize,
}

impl KeyRecord {
    /// Whether what became of the deposit is known: the ledger answered for the key, or
    /// every attempt certainly did nothing. A failure before the ledger after an unknown
    /// attempt says nothing of that attempt.
    fn answered(&self) -> bool {
        !self.replies.is_empty()
            || !self.refusals.is_empty()
            || (self.failures > 0 && self.unknown == 0)
    }

    /// The answers saying the deposit was applied.
    fn posted(&self) -> Vec<&Value> {
        self.replies
            .iter()
            .filter(|a| a.get("Posted").is_some())
            .collect()
    }
}

/// Every answer per key, and the answers to requests sent twice at once that differed.
fn keys(history: &[Record<'_>]) -> (BTreeMap<(u64, u64), KeyRecord>, Vec<Value>) {
    let mut keys: BTreeMap<(u64, u64), KeyRecord> = BTreeMap::new();
    let mut errors = Vec::new();
    for r in history {
        let Op::Deposit {
            key,
            account,
            amount_fen,
            ..
        } = r.op
        else {
            continue;
        };
        let entry = keys.entry(key).or_insert(KeyRecord {
            account,
            amount_fen,
            replies: vec![],
            refusals: vec![],
            failures: 0,
            unknown: 0,
        });
        if let Some(Answer::Replied { reply, second }) = &r.answer {
            entry.replies.push(reply.clone());
            if second.as_ref().is_some_and(|s| s != reply) {
                errors.push(json!({"error": "the same request sent twice at once got two answers", "op": describe(&r.pair)}));
            }
        }
        match r.outcome {
            OpType::Fail => {
                entry.failures += 1;
                entry.refusals.extend(r.refused.clone());
            }
            OpType::Info => entry.unknown += 1,
            _ => {}
        }
    }
    (keys, errors)
}

fn idempotency(test: &TestInfo, history: &[Record<'_>]) -> Finding {
    let setup = &test.setup;
    let (keys, mut errors) = keys(history);
    let mut applied: BTreeMap<u64, i64> = BTreeMap::new();
    let mut unknown: BTreeMap<u64, i64> = BTreeMap::new();
    for (key, k) in &keys {
        // Every answer saying the deposit was applied must be the same answer (a refusal is
        // not recorded by the ledger, so a later asking may be evaluated afresh).
        let posted = k.posted();
        if posted.windows(2).any(|w| w[0] != w[1]) {
            errors.push(json!({"error": "a retry under the same key got another answer", "key": [key.0, key.1], "answers": k.replies, "refusals": k.refusals}));
        }
        if !posted.is_empty() {
            *applied.entry(k.account).or_default() += k.amount_fen as i64;
        } else if !k.answered() {
            *unknown.entry(k.account).or_default() += k.amount_fen as i64;
        }
    }
    let unresolved = keys.values().filter(|k| !k.answered()).count();
    let mut stats = json!({"keys": keys.len(), "unresolved": unresolved});
    let Some(Answer::Balances { balances, .. }) = cluster_final_read(history) else {
        return without_final_read(errors, stats);
    };
    for account in &setup.accounts {
        let found = balances.get(account).copied().unwrap_or(0) - setup.initial_balance_fen as i64;
        let known = applied.get(account).copied().unwrap_or(0);
        let maybe = unknown.get(account).copied().unwrap_or(0);
        if found < known || found > known + maybe {
            errors.push(json!({"error": "final balance is not the sum of the deposits applied once each", "account": account, "deposited_in_final_state": found, "acknowledged": known, "unknown": maybe}));
        }
    }
    stats["applied_fen"] = json!(applied);
    let mut finding = Finding::from_errors(errors, stats);
    if finding.valid == Validity::Valid && unresolved > 0 {
        // Bounds held, but deposits whose outcome stayed unknown leave room for doubt.
        finding.valid = Validity::Unknown;
        finding.errors.push(json!({"unresolved_keys": unresolved}));
    }
    finding
}
