//! Vouchers: every client races to claim from one small pool, a fresh pool every few
//! seconds. Never over capacity, never two vouchers for one account, every acknowledged
//! claim durable, nothing granted after the pool was reported empty, linearizable.

use super::client::{keyed_write, read_home_first, Effect};
use super::Setup;
use super::{BoxFuture, FinalRead, Prep, ReadResult, SetupError, Step, Workload};
use crate::checker::{cluster_final_read, describe, linearizable, without_final_read, Finding};
use crate::db::now_ms;
use crate::history::OpType;
use crate::lin::LinOp;
use crate::model::{LedgerModel, Observed};
use crate::ops::{Answer, Op, PoolSeen, Record};
use crate::runner::TestInfo;
use ledger_client::{Client, ClientError, Consistency, Query, QueryReply};
use ledger_core::command::Command;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::types::{AccountId, Eligibility, PoolId};
use ledger_wire::principal::Principal;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

/// A new race (a fresh pool) every this many seconds; pools enough for the run are created
/// at setup, at most `VOUCHER_MAX_POOLS` (later rounds stay on the last pool).
pub const VOUCHER_ROUND_S: u64 = 2;
pub const VOUCHER_MAX_POOLS: u64 = 512;
pub const VOUCHER_POOL_NAME: &str = "jepsen race";
pub const VOUCHER_FACE_FEN: u64 = 500;

pub struct Vouchers;

impl Workload for Vouchers {
    fn accounts(&self, concurrency: u64) -> (u64, u64) {
        ((concurrency * 3).max(12), 0)
    }

    fn prepare<'a>(&'a self, prep: Prep<'a>) -> BoxFuture<'a, Result<(), SetupError>> {
        Box::pin(async move {
            let setup = prep.setup;
            let capacity = (setup.accounts.len() as u64 / 4).max(3);
            let valid = (now_ms() - 3_600_000, now_ms() + 86_400_000);
            let rounds = (prep.time_limit.as_secs() / VOUCHER_ROUND_S + 2).min(VOUCHER_MAX_POOLS);
            for _ in 0..rounds {
                let pool = prep
                    .client
                    .create_pool(
                        VOUCHER_POOL_NAME,
                        VOUCHER_FACE_FEN,
                        capacity,
                        Eligibility::Anyone,
                        valid.0,
                        valid.1,
                    )
                    .await
                    .map_err(SetupError::client("create pool"))?;
                setup.pools.push(pool.0);
            }
            setup.pool_capacity = capacity;
            setup.pool_valid_ms = valid;
            Ok(())
        })
    }

    fn resolves_during_run(&self) -> bool {
        true
    }

    /// Customers claim through the bank's channel (DOMAIN.md section 10).
    fn thread_principal(&self, _setup: &Setup) -> Option<Principal> {
        Some(Principal::Channel {
            name: "jepsen".into(),
        })
    }

    fn step<'a>(&'a self, step: Step<'a>) -> BoxFuture<'a, OpType> {
        Box::pin(async move {
            let run = step.run;
            let setup = &run.setup;
            // Every thread races for the same pool in the same round.
            let round = (run.recorder.now_ns() / 1_000_000_000 / VOUCHER_ROUND_S) as usize;
            let position = round.min(setup.pools.len() - 1);
            run.current_pool.fetch_max(position, Ordering::Relaxed);
            let pool = PoolId(setup.pools[position]);
            if step.rng.gen_bool(0.2) {
                let read = read_home_first(step.thread, step.client, Query::Pool(pool));
                let value = json!({"pool": pool.0});
                return run
                    .op(
                        step.process,
                        "read",
                        value,
                        Effect::Read,
                        read,
                        |reply| match reply {
                            QueryReply::Pool(p) => json!({"granted": p.map(|p| p.granted)}),
                            other => json!({"unexpected": format!("{other:?}")}),
                        },
                    )
                    .await
                    .0;
            }
            let account = setup.accounts[step.rng.gen_range(0..setup.accounts.len())];
            let command = Command::ClaimVoucher {
                pool,
                account: AccountId(account),
            };
            let value = json!({"pool": pool.0, "account": account});
            keyed_write(step, "claim", value, command).await
        })
    }

    fn final_read<'a>(&'a self, read: FinalRead<'a>) -> BoxFuture<'a, ReadResult> {
        Box::pin(async move {
            let FinalRead {
                run,
                client,
                consistency,
            } = read;
            let raced = run.current_pool.load(Ordering::Relaxed) + 1;
            let mut pools = serde_json::Map::new();
            for pool in run.setup.pools.iter().take(raced).map(|p| PoolId(*p)) {
                let seen = read_pool(client, &run.setup.accounts, pool, consistency).await?;
                pools.insert(pool.0.to_string(), seen);
            }
            Ok(json!({ "pools": pools }))
        })
    }

    fn checkers(&self, test: &TestInfo, history: &[Record<'_>]) -> Vec<(&'static str, Finding)> {
        vec![
            ("vouchers", vouchers(test.setup.pool_capacity, history)),
            ("linearizable", linearizable(test, history)),
        ]
    }

    fn model_step(&self, model: &mut LedgerModel, op: &LinOp<Observed>) -> bool {
        match (&op.call.op, &op.call.answer) {
            (Op::Claim { pool, account }, _) => {
                let (pool, account) = (PoolId(*pool), AccountId(*account));
                let outcome = model.apply(op, Command::ClaimVoucher { pool, account });
                if outcome.is_ok() {
                    model.claimed(pool, account);
                }
                LedgerModel::agrees(op, &outcome, |reply, seen| {
                    matches!((reply, seen), (
                        Reply::VoucherClaimed { remaining, .. },
                        Answer::Claimed { remaining: seen },
                    ) if remaining == seen)
                })
            }
            (Op::ReadPool { pool }, Some(Answer::Pool { granted })) => {
                model.pool_granted_is(*pool, *granted)
            }
            (Op::FinalRead { .. }, Some(Answer::Pools(pools))) => {
                pools.iter().all(|(pool, seen)| model.pool_is(*pool, seen))
            }
            _ => true,
        }
    }
}

/// A pool's count and which of `accounts` hold one of its vouchers.
async fn read_pool(
    client: &Client,
    accounts: &[u64],
    pool: PoolId,
    consistency: Consistency,
) -> Result<Value, ClientError> {
    let granted = match client.query(Query::Pool(pool), consistency).await? {
        QueryReply::Pool(p) => p.map(|p| p.granted),
        _ => None,
    };
    let mut holders = Vec::new();
    for a in accounts {
        if let QueryReply::Voucher(Some(_)) = client
            .query(Query::Voucher(AccountId(*a), pool), consistency)
            .await?
        {
            holders.push(*a);
        }
    }
    Ok(json!({"granted": granted, "holders": holders}))
}

/// A client's claim: the record, its pool and account.
struct Claim<'r, 'a> {
    record: &'r Record<'a>,
    pool: u64,
    account: u64,
}

impl Claim<'_, '_> {
    fn refused_as_exhausted(&self) -> bool {
        matches!(self.record.refused, Some(LedgerError::PoolExhausted { .. }))
    }

    fn refused_as_claimed(&self) -> bool {
        matches!(
            self.record.refused,
            Some(LedgerError::AlreadyClaimed { .. })
        )
    }
}

fn claims<'r, 'a>(history: &'r [Record<'a>]) -> Vec<Claim<'r, 'a>> {
    history
        .iter()
        .filter(|r| r.is_client())
        .filter_map(|record| match record.op {
            Op::Claim { pool, account } => Some(Claim {
                record,
                pool,
                account,
            }),
            _ => None,
        })
        .collect()
}

/// No pool grants past its capacity nor twice to one account; every acknowledged claim is
/// held at the end; nothing is granted after a claim was told the pool was empty.
fn vouchers(capacity: u64, history: &[Record<'_>]) -> Finding {
    let claims = claims(history);
    let ok: Vec<&Claim<'_, '_>> = claims.iter().filter(|c| c.record.is_ok()).collect();
    let mut errors = acknowledged_claims(capacity, &ok);
    let first_exhausted = first_exhausted(&claims);
    for c in &ok {
        if let Some(ex) = first_exhausted.get(&c.pool) {
            if c.record.invoke_ns() > ex.record.complete_ns().expect("refused") {
                errors.push(json!({"error": "claim succeeded after the pool was reported exhausted", "exhausted": describe(&ex.record.pair), "claim": describe(&c.record.pair)}));
            }
        }
    }
    let pools_raced = ok
        .iter()
        .map(|c| c.pool)
        .collect::<BTreeSet<_>>()
        .len()
        .max(first_exhausted.len());
    let mut stats = json!({"claims": claims.len(), "acknowledged": ok.len(), "pools_raced": pools_raced, "capacity_each": capacity});
    let Some(Answer::Pools(pools)) = cluster_final_read(history) else {
        return without_final_read(errors, stats);
    };
    errors.extend(final_pools(capacity, pools));
    stats["vouchers_held_at_end"] = json!(pools.values().map(|p| p.holders.len()).sum::<usize>());
    let holds = |c: &Claim<'_, '_>| {
        pools
            .get(&c.pool)
            .is_some_and(|p| p.holders.contains(&c.account))
    };
    for c in &ok {
        if !holds(c) {
            errors.push(
                json!({"error": "acknowledged claim lost", "claim": describe(&c.record.pair)}),
            );
        }
    }
    for c in claims.iter().filter(|c| c.refused_as_claimed()) {
        if !holds(c) {
            errors.push(json!({"error": "refused as already claimed, but the account holds no voucher", "claim": describe(&c.record.pair)}));
        }
    }
    Finding::from_errors(errors, stats)
}

/// Acknowledged claims: at most one per account and pool, at most the capacity per pool.
fn acknowledged_claims(capacity: u64, ok: &[&Claim<'_, '_>]) -> Vec<Value> {
    let mut by_claim: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut by_pool: BTreeMap<u64, usize> = BTreeMap::new();
    for c in ok {
        *by_claim.entry((c.pool, c.account)).or_default() += 1;
        *by_pool.entry(c.pool).or_default() += 1;
    }
    let mut errors = Vec::new();
    for ((pool, account), n) in by_claim.iter().filter(|(_, n)| **n > 1) {
        errors.push(json!({"error": "claimed twice", "pool": pool, "account": account, "acknowledged_claims": n}));
    }
    for (pool, n) in by_pool.iter().filter(|(_, n)| **n as u64 > capacity) {
        errors.push(json!({"error": "more claims acknowledged than the pool holds", "pool": pool, "acknowledged": n, "capacity": capacity}));
    }
    errors
}

/// Per pool, the claim that was first told (earliest completion) the pool was exhausted.
fn first_exhausted<'c, 'r, 'a>(claims: &'c [Claim<'r, 'a>]) -> BTreeMap<u64, &'c Claim<'r, 'a>> {
    let mut first: BTreeMap<u64, &Claim<'_, '_>> = BTreeMap::new();
    for c in claims.iter().filter(|c| c.refused_as_exhausted()) {
        let slot = first.entry(c.pool).or_insert(c);
        if c.record.complete_ns() < slot.record.complete_ns() {
            *slot = c;
        }
    }
    first
}

/// The final state: each pool's count equals the vouchers held, within its capacity.
fn final_pools(capacity: u64, pools: &BTreeMap<u64, PoolSeen>) -> Vec<Value> {
    pools
        .iter()
        .filter(|(_, p)| {
            let granted = p.granted.unwrap_or(0);
            granted != p.holders.len() as u64 || granted > capacity
        })
        .map(|(pool, p)| json!({"error": "a pool's count disagrees with the vouchers held, or exceeds its capacity", "pool": pool.to_string(), "granted": p.granted.unwrap_or(0), "holders": p.holders, "capacity": capacity}))
        .collect()
}
