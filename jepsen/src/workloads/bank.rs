//! Bank: transfers between a few accounts and reads of every balance. The total never
//! changes, no balance goes negative, reads never go back in log order, and the history is
//! linearizable against the ledger core.

use super::client::{account_range, balances, keyed_write, read_balances, read_home_first, Effect};
use super::{BoxFuture, FinalRead, ReadResult, Step, Workload};
use crate::checker::{describe, linearizable, Finding};
use crate::history::OpType;
use crate::lin::LinOp;
use crate::model::{LedgerModel, Observed};
use crate::ops::{Answer, Op, Record};
use crate::runner::TestInfo;
use ledger_core::command::Command;
use ledger_core::outcome::Reply;
use ledger_core::types::AccountId;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Accounts and their starting balance.
pub const BANK_ACCOUNTS: u64 = 8;
pub const BANK_INITIAL_FEN: u64 = 100_000;
/// Largest transfer, so that some are refused for insufficient funds.
pub const BANK_MAX_TRANSFER_FEN: u64 = 40_000;

pub struct Bank;

impl Workload for Bank {
    fn accounts(&self, _concurrency: u64) -> (u64, u64) {
        (BANK_ACCOUNTS, BANK_INITIAL_FEN)
    }

    fn resolves_during_run(&self) -> bool {
        true
    }

    fn step<'a>(&'a self, step: Step<'a>) -> BoxFuture<'a, OpType> {
        Box::pin(async move {
            let setup = &step.run.setup;
            if step.rng.gen_bool(0.5) {
                let read = read_home_first(step.thread, step.client, account_range(setup));
                return step
                    .run
                    .op(step.process, "read", Value::Null, Effect::Read, read, |r| {
                        balances(r, setup)
                    })
                    .await
                    .0;
            }
            let pick = |rng: &mut rand::rngs::StdRng| {
                setup.accounts[rng.gen_range(0..setup.accounts.len())]
            };
            let from = pick(step.rng);
            let to = loop {
                let t = pick(step.rng);
                if t != from {
                    break t;
                }
            };
            let amount = step.rng.gen_range(1..=BANK_MAX_TRANSFER_FEN);
            let value = json!({"from": from, "to": to, "amount": amount});
            let command = Command::Transfer {
                source: AccountId(from),
                target: AccountId(to),
                amount_fen: amount,
            };
            keyed_write(step, "transfer", value, command).await
        })
    }

    fn final_read<'a>(&'a self, read: FinalRead<'a>) -> BoxFuture<'a, ReadResult> {
        Box::pin(read_balances(read))
    }

    fn checkers(&self, test: &TestInfo, history: &[Record<'_>]) -> Vec<(&'static str, Finding)> {
        vec![
            ("bank", totals(test, history)),
            ("read-order", read_order(history)),
            ("linearizable", linearizable(test, history)),
        ]
    }

    fn model_step(&self, model: &mut LedgerModel, op: &LinOp<Observed>) -> bool {
        match &op.call.op {
            Op::Transfer {
                from,
                to,
                amount_fen,
            } => {
                let outcome = model.apply(
                    op,
                    Command::Transfer {
                        source: AccountId(*from),
                        target: AccountId(*to),
                        amount_fen: *amount_fen,
                    },
                );
                LedgerModel::agrees(op, &outcome, |reply, seen| {
                    matches!((reply, seen), (
                        Reply::Transferred { source_balance_fen, target_balance_fen },
                        Answer::Transferred { from_balance, to_balance },
                    ) if source_balance_fen == from_balance && target_balance_fen == to_balance)
                })
            }
            Op::ReadBalances | Op::FinalRead { .. } => match &op.call.answer {
                Some(Answer::Balances { balances, .. }) => model.balances_are(balances),
                _ => true,
            },
            _ => true,
        }
    }
}

/// Every read (during the run and the final ones) saw the total deposited, every account,
/// and no negative balance.
fn totals(test: &TestInfo, history: &[Record<'_>]) -> Finding {
    let setup = &test.setup;
    let total = setup.initial_balance_fen as i64 * setup.accounts.len() as i64;
    let accounts: BTreeSet<u64> = setup.accounts.iter().copied().collect();
    let mut errors = Vec::new();
    let mut reads = 0;
    for r in history {
        let Some(Answer::Balances { balances, .. }) = &r.answer else {
            continue;
        };
        reads += 1;
        let sum: i64 = balances.values().sum();
        let negative: Vec<_> = balances.iter().filter(|(_, v)| **v < 0).collect();
        let keys: BTreeSet<u64> = balances.keys().copied().collect();
        if sum != total || !negative.is_empty() || keys != accounts {
            errors.push(json!({"op": describe(&r.pair), "total": sum, "expected_total": total, "negative": negative}));
        }
    }
    Finding::from_errors(
        errors,
        json!({"reads_checked": reads, "expected_total": total}),
    )
}

/// Reads never go back in time: a read that began after another read ended saw at least the
/// log index that one saw. Cheap, and catches stale reads (an old leader answering from its
/// own state) even when the full linearizability search runs out of budget.
fn read_order(history: &[Record<'_>]) -> Finding {
    let mut reads: Vec<(&Record<'_>, u64)> = history
        .iter()
        .filter(|r| (r.is_client() && r.op == Op::ReadBalances) || r.final_read_node() == Some(0))
        .filter_map(|r| match &r.answer {
            Some(Answer::Balances {
                applied_index: Some(index),
                ..
            }) => Some((r, *index)),
            _ => None,
        })
        .collect();
    // Reads in order of invocation, and (time, index, which) in order of completion.
    reads.sort_by_key(|(r, _)| r.invoke_ns());
    let mut ends: Vec<(u64, u64, usize)> = reads
        .iter()
        .enumerate()
        .map(|(i, (r, index))| (r.complete_ns().expect("ok"), *index, i))
        .collect();
    ends.sort();
    let mut errors = Vec::new();
    let mut freshest: Option<(u64, usize)> = None;
    let mut ended = 0;
    for &(read, index) in &reads {
        while ended < ends.len() && ends[ended].0 < read.invoke_ns() {
            if freshest.is_none_or(|(f, _)| ends[ended].1 > f) {
                freshest = Some((ends[ended].1, ends[ended].2));
            }
            ended += 1;
        }
        if let Some((fresh, j)) = freshest.filter(|(fresh, _)| index < *fresh) {
            errors.push(json!({
                "error": "stale read: it saw an older log index than a read that had already ended",
                "read": describe(&read.pair),
                "applied_index": index,
                "earlier_read": describe(&reads[j].0.pair),
                "earlier_applied_index": fresh,
            }));
        }
    }
    let count = reads.len();
    Finding::from_errors(errors, json!({"reads": count}))
}

/// The balances a read saw, for the checkers of other workloads that read balances too.
pub fn balances_seen(answer: Option<&Answer>) -> Option<&BTreeMap<u64, i64>> {
    match answer {
        Some(Answer::Balances { balances, .. } | Answer::Payments { balances, .. }) => {
            Some(balances)
        }
        _ => None,
    }
}
