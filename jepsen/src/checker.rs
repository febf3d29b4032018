//! The checkers. Each reads only the history and `test.json`, so `ledger-jepsen check` can
//! re-run them on a stored run.

use crate::history::{pairs, Op, OpType, Pair, Process};
use crate::lin::{self, LinOp, Model, Verdict};
use crate::runner::TestInfo;
use crate::workload::{Kind, Setup, FINAL_PROCESS, VOUCHER_FACE_FEN, VOUCHER_POOL_NAME};
use ledger_core::command::{Command, Context, Envelope};
use ledger_core::config::LedgerConfig;
use ledger_core::driver::Driver;
use ledger_core::ledger::Ledger;
use ledger_core::outcome::{Outcome, Reply};
use ledger_core::state::MemStore;
use ledger_core::types::{AccountId, Eligibility, PoolId, RequestKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Steps the linearizability search may take before it answers "unknown".
/// Each step may add a cache entry (~40 bytes) and the search keeps a model state per
/// placed operation, so this also bounds the checker's memory (to about a gigabyte).
pub const LINEARIZABILITY_BUDGET: u64 = 10_000_000;
/// Longest the linearizability search may run before it answers "unknown".
pub const LINEARIZABILITY_TIME: std::time::Duration = std::time::Duration::from_secs(300);

/// Most offending operations reported per checker.
const MAX_ERRORS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    Valid,
    Unknown,
    Invalid,
}

/// One checker's finding.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    pub valid: Validity,
    /// The offending operations, or what is wrong, as JSON.
    pub errors: Vec<Value>,
    /// Figures (counts, etc.).
    #[serde(default)]
    pub stats: Value,
}

impl Finding {
    fn from_errors(errors: Vec<Value>, stats: Value) -> Finding {
        Finding {
            valid: if errors.is_empty() {
                Validity::Valid
            } else {
                Validity::Invalid
            },
            errors: errors.into_iter().take(MAX_ERRORS).collect(),
            stats,
        }
    }
}

/// The verdict of a run: the worst of its checkers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub valid: Validity,
    pub checkers: BTreeMap<String, Finding>,
}

/// Runs every checker that applies to the workload.
pub fn check(test: &TestInfo, ops: &[Op]) -> Results {
    let mut checkers = BTreeMap::new();
    let all = pairs(ops);
    checkers.insert("stats".to_owned(), stats(&all));
    checkers.insert("durability".to_owned(), durability(test, &all));
    match test.workload {
        Kind::Bank => {
            checkers.insert("bank".into(), bank(&test.setup, &all));
            checkers.insert("read-order".into(), read_order(&all));
            checkers.insert("linearizable".into(), linearizable(test, &all));
        }
        Kind::Vouchers => {
            checkers.insert("vouchers".into(), vouchers(&test.setup, &all));
            checkers.insert("linearizable".into(), linearizable(test, &all));
        }
        Kind::Epay => {
            checkers.insert("epay".into(), epay(&test.setup, &all));
        }
        Kind::Idempotency => {
            checkers.insert("idempotency".into(), idempotency(&test.setup, &all));
        }
    }
    if let Some(problem) = &test.healed {
        // The cluster did not come back (ready and converged) after healing: whatever the
        // other checkers say, the run did not show it whole.
        checkers.insert(
            "healing".into(),
            Finding {
                valid: Validity::Unknown,
                errors: vec![json!(problem)],
                stats: Value::Null,
            },
        );
    }
    let valid = checkers
        .values()
        .map(|f| f.valid)
        .max()
        .unwrap_or(Validity::Unknown);
    Results { valid, checkers }
}

fn describe(p: &Pair<'_>) -> Value {
    json!({
        "process": p.invoke.process,
        "f": p.invoke.f,
        "invoke_index": p.invoke.index,
        "value": p.complete.map_or(&p.invoke.value, |c| &c.value),
        "type": p.outcome(),
        "error": p.complete.and_then(|c| c.error.clone()),
        "time_s": p.invoke.time as f64 / 1e9,
    })
}

fn is_client(p: &Pair<'_>) -> bool {
    matches!(p.invoke.process, Process::Client(n) if n < FINAL_PROCESS)
}

fn final_process(p: &Pair<'_>) -> Option<u64> {
    match p.invoke.process {
        Process::Client(n) if n >= FINAL_PROCESS && p.invoke.f == "final-read" => {
            Some(n - FINAL_PROCESS)
        }
        _ => None,
    }
}

/// Counts per operation and outcome; never invalid, unknown if no client operation
/// succeeded (a run that did nothing proves nothing).
fn stats(all: &[Pair<'_>]) -> Finding {
    let mut counts: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    for p in all.iter().filter(|p| is_client(p)) {
        let outcome = match p.outcome() {
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            _ => "info",
        };
        *counts
            .entry(p.invoke.f.clone())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    let ok: u64 = counts.values().filter_map(|c| c.get("ok")).sum();
    Finding {
        valid: if ok > 0 {
            Validity::Valid
        } else {
            Validity::Unknown
        },
        errors: if ok > 0 {
            vec![]
        } else {
            vec![json!("no client operation succeeded")]
        },
        stats: json!(counts),
    }
}

/// After healing, the cluster answered a final read, and every node's own copy of the
/// workload's state equals it (acknowledged operations survived the faults on every replica).
fn durability(test: &TestInfo, all: &[Pair<'_>]) -> Finding {
    let finals: Vec<(u64, &Pair<'_>)> = all
        .iter()
        .filter_map(|p| final_process(p).map(|n| (n, p)))
        .collect();
    let mut errors = Vec::new();
    let Some(cluster) = cluster_final_read(all) else {
        return without_final_read(vec![], Value::Null);
    };
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            // Which node answered, and at which index, may differ; the state may not.
            m.remove("node");
            m.remove("applied_index");
        }
        v
    };
    let expected = strip(cluster);
    let mut unread = Vec::new();
    for node in 1..=test.nodes {
        let read = finals
            .iter()
            .filter(|(n, _)| *n == node)
            .find(|(_, p)| p.outcome() == OpType::Ok);
        match read {
            Some((_, p)) => {
                let seen = strip(&p.complete.expect("ok").value);
                if seen != expected {
                    errors.push(json!({"node": node, "expected": expected, "found": seen}));
                }
            }
            None => unread.push(node),
        }
    }
    if errors.is_empty() && !unread.is_empty() {
        // Not shown wrong, but not shown right either.
        return Finding {
            valid: Validity::Unknown,
            errors: vec![json!({"error": "no final read from these nodes", "nodes": unread})],
            stats: json!({"final": expected}),
        };
    }
    Finding::from_errors(errors, json!({"final": expected}))
}

/// What the final read through the cluster, after healing, saw.
fn cluster_final_read<'a>(all: &[Pair<'a>]) -> Option<&'a Value> {
    all.iter()
        .find(|p| final_process(p) == Some(0) && p.outcome() == OpType::Ok)
        .and_then(|p| p.complete)
        .map(|c| &c.value)
}

/// A checker's answer when the final state could not be read: invalid if what it saw
/// before was already wrong, unknown otherwise.
fn without_final_read(errors: Vec<Value>, stats: Value) -> Finding {
    if errors.is_empty() {
        Finding {
            valid: Validity::Unknown,
            errors: vec![json!("no final read through the cluster after healing")],
            stats,
        }
    } else {
        Finding::from_errors(errors, stats)
    }
}

fn balances_of(v: &Value) -> BTreeMap<u64, i64> {
    let map = if v.get("balances").is_some() {
        &v["balances"]
    } else {
        v
    };
    map.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, b)| Some((k.parse().ok()?, b.as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn bank(setup: &Setup, all: &[Pair<'_>]) -> Finding {
    let total = setup.initial_balance_fen as i64 * setup.accounts.len() as i64;
    let accounts: BTreeSet<u64> = setup.accounts.iter().copied().collect();
    let mut errors = Vec::new();
    let mut reads = 0;
    for p in all.iter().filter(|p| {
        p.outcome() == OpType::Ok && (p.invoke.f == "read" || p.invoke.f == "final-read")
    }) {
        reads += 1;
        let b = balances_of(&p.complete.expect("ok").value);
        let sum: i64 = b.values().sum();
        let negative: Vec<_> = b.iter().filter(|(_, v)| **v < 0).collect();
        let keys: BTreeSet<u64> = b.keys().copied().collect();
        if sum != total || !negative.is_empty() || keys != accounts {
            errors.push(json!({"op": describe(p), "total": sum, "expected_total": total, "negative": negative}));
        }
    }
    Finding::from_errors(
        errors,
        json!({"reads_checked": reads, "expected_total": total}),
    )
}

fn vouchers(setup: &Setup, all: &[Pair<'_>]) -> Finding {
    let mut errors = Vec::new();
    let claims: Vec<&Pair<'_>> = all
        .iter()
        .filter(|p| p.invoke.f == "claim" && is_client(p))
        .collect();
    let pool_of = |p: &Pair<'_>| p.invoke.value["pool"].as_u64().unwrap_or(0);
    let account_of = |p: &Pair<'_>| p.invoke.value["account"].as_u64().unwrap_or(0);
    let refused_as = |p: &Pair<'_>, what: &str| {
        p.complete
            .is_some_and(|c| c.value["refused"].get(what).is_some())
    };
    let ok: Vec<&&Pair<'_>> = claims
        .iter()
        .filter(|p| p.outcome() == OpType::Ok)
        .collect();
    let mut by_claim: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut by_pool: BTreeMap<u64, usize> = BTreeMap::new();
    for p in &ok {
        *by_claim.entry((pool_of(p), account_of(p))).or_default() += 1;
        *by_pool.entry(pool_of(p)).or_default() += 1;
    }
    for ((pool, account), n) in &by_claim {
        if *n > 1 {
            errors.push(json!({"error": "claimed twice", "pool": pool, "account": account, "acknowledged_claims": n}));
        }
    }
    for (pool, n) in &by_pool {
        if *n as u64 > setup.pool_capacity {
            errors.push(json!({"error": "more claims acknowledged than the pool holds", "pool": pool, "acknowledged": n, "capacity": setup.pool_capacity}));
        }
    }
    // Real-time order: once a claim has been told a pool is empty, no claim on that pool
    // invoked later may succeed (capacity never grows back).
    let mut first_exhausted: BTreeMap<u64, &Pair<'_>> = BTreeMap::new();
    for p in claims.iter().filter(|p| refused_as(p, "PoolExhausted")) {
        let at = p.complete.expect("refused").time;
        let slot = first_exhausted.entry(pool_of(p)).or_insert(p);
        if at < slot.complete.expect("refused").time {
            *slot = p;
        }
    }
    for p in &ok {
        if let Some(ex) = first_exhausted.get(&pool_of(p)) {
            if p.invoke.time > ex.complete.expect("refused").time {
                errors.push(json!({"error": "claim succeeded after the pool was reported exhausted", "exhausted": describe(ex), "claim": describe(p)}));
            }
        }
    }
    let mut stats = json!({"claims": claims.len(), "acknowledged": ok.len(), "pools_raced": by_pool.len().max(first_exhausted.len()), "capacity_each": setup.pool_capacity});
    let Some(final_read) = cluster_final_read(all) else {
        return without_final_read(errors, stats);
    };
    let pools = final_read["pools"].as_object().cloned().unwrap_or_default();
    let holders_of = |pool: u64| -> BTreeSet<u64> {
        pools
            .get(&pool.to_string())
            .map_or_else(BTreeSet::new, |v| {
                v["holders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect()
            })
    };
    let mut held = 0;
    for (pool, v) in &pools {
        let holders = holders_of(pool.parse().unwrap_or(0));
        let granted = v["granted"].as_u64().unwrap_or(0);
        held += holders.len();
        if granted != holders.len() as u64 || granted > setup.pool_capacity {
            errors.push(json!({"error": "a pool's count disagrees with the vouchers held, or exceeds its capacity", "pool": pool, "granted": granted, "holders": holders, "capacity": setup.pool_capacity}));
        }
    }
    stats["vouchers_held_at_end"] = json!(held);
    for p in &ok {
        if !holders_of(pool_of(p)).contains(&account_of(p)) {
            errors.push(json!({"error": "acknowledged claim lost", "claim": describe(p)}));
        }
    }
    for p in claims.iter().filter(|p| refused_as(p, "AlreadyClaimed")) {
        if !holders_of(pool_of(p)).contains(&account_of(p)) {
            errors.push(json!({"error": "refused as already claimed, but the account holds no voucher", "claim": describe(p)}));
        }
    }
    Finding::from_errors(errors, stats)
}

fn epay(setup: &Setup, all: &[Pair<'_>]) -> Finding {
    let mut errors = Vec::new();
    let confirms: Vec<&Pair<'_>> = all.iter().filter(|p| p.invoke.f == "confirm").collect();
    let mut settled_by_op: BTreeMap<u64, Vec<&Pair<'_>>> = BTreeMap::new();
    let mut right_code_tried: BTreeSet<u64> = BTreeSet::new();
    for p in &confirms {
        let payment = p.invoke.value["payment"].as_u64().unwrap_or(0);
        let correct = p.invoke.value["code"] == "correct";
        if correct && p.outcome() != OpType::Fail {
            right_code_tried.insert(payment);
        }
        if p.outcome() == OpType::Ok {
            if !correct {
                errors.push(json!({"error": "a wrong code settled a payment", "op": describe(p)}));
            }
            settled_by_op.entry(payment).or_default().push(p);
        }
    }
    for (payment, ops) in &settled_by_op {
        if ops.len() > 1 {
            errors.push(json!({"error": "payment settled more than once", "payment": payment, "ops": ops.iter().map(|p| describe(p)).collect::<Vec<_>>()}));
        }
    }
    let mut stats =
        json!({"confirms": confirms.len(), "settled_acknowledged": settled_by_op.len()});
    let Some(v) = cluster_final_read(all) else {
        return without_final_read(errors, stats);
    };
    let states = v["payments"].as_object().cloned().unwrap_or_default();
    let mut settled_final = 0;
    for (payment, state) in &states {
        let id: u64 = payment.parse().unwrap_or(0);
        let settled = state.get("Settled").is_some();
        settled_final += u64::from(settled);
        if settled_by_op.contains_key(&id) && !settled {
            errors.push(json!({"error": "acknowledged settlement lost", "payment": id, "final_state": state}));
        }
        if settled && !right_code_tried.contains(&id) {
            errors.push(
                json!({"error": "settled without the right code ever being sent", "payment": id}),
            );
        }
    }
    for id in settled_by_op.keys() {
        if !states.contains_key(&id.to_string()) {
            errors.push(json!({"error": "acknowledged payment missing from the final state", "payment": id}));
        }
    }
    // Each customer paid exactly the settled payments' debits (a payment's payer is the
    // account its `begin` named).
    let balances = balances_of(v);
    let mut debited: BTreeMap<u64, i64> = BTreeMap::new();
    for p in all
        .iter()
        .filter(|p| p.invoke.f == "begin" && p.outcome() == OpType::Ok)
    {
        let payment = p.complete.expect("ok").value["payment"]
            .as_u64()
            .unwrap_or(0);
        let debit = states
            .get(&payment.to_string())
            .and_then(|s| s["Settled"]["debited_fen"].as_i64());
        if let (Some(debit), Some(payer)) = (debit, p.invoke.value["account"].as_u64()) {
            *debited.entry(payer).or_default() += debit;
        }
    }
    for account in &setup.accounts {
        let paid = setup.initial_balance_fen as i64 - balances.get(account).copied().unwrap_or(0);
        let settled = debited.get(account).copied().unwrap_or(0);
        if paid != settled {
            errors.push(json!({"error": "a customer's balance does not match the payments settled", "account": account, "paid": paid, "settled_debits": settled}));
        }
    }
    // Double entry: every account together sums to zero (deposits came from the bank's
    // clearing account); the customers and the merchant hold exactly what was deposited.
    let everything: i64 = balances.values().sum();
    let customers: i64 = balances
        .iter()
        .filter(|(id, _)| **id >= AccountId::FIRST_CUSTOMER)
        .map(|(_, b)| b)
        .sum();
    let expected = setup.initial_balance_fen as i64 * setup.accounts.len() as i64;
    if everything != 0 || customers != expected {
        errors.push(json!({"error": "money created or destroyed", "all_accounts": everything, "customers_and_merchant": customers, "deposited": expected}));
    }
    if let Some((a, b)) = balances
        .iter()
        .find(|(id, b)| **id >= AccountId::FIRST_CUSTOMER && **b < 0)
    {
        errors.push(json!({"error": "negative balance", "account": a, "balance": b}));
    }
    stats["settled_final"] = json!(settled_final);
    Finding::from_errors(errors, stats)
}

/// An idempotency key's deposit: account, amount, every answer seen, any outcome unknown.
type KeyRecord = (u64, u64, Vec<Value>, bool);

fn idempotency(setup: &Setup, all: &[Pair<'_>]) -> Finding {
    let mut errors = Vec::new();
    let mut keys: BTreeMap<(u64, u64), KeyRecord> = BTreeMap::new();
    for p in all.iter().filter(|p| p.invoke.f == "deposit") {
        let v = &p.invoke.value;
        let key = (
            v["key"][0].as_u64().unwrap_or(0),
            v["key"][1].as_u64().unwrap_or(0),
        );
        let entry = keys.entry(key).or_insert((
            v["account"].as_u64().unwrap_or(0),
            v["amount"].as_u64().unwrap_or(0),
            vec![],
            false,
        ));
        match p.outcome() {
            OpType::Ok => {
                let c = &p.complete.expect("ok").value;
                entry.2.push(c["reply"].clone());
                if !c["second_reply"].is_null() && c["second_reply"] != c["reply"] {
                    errors.push(json!({"error": "the same request sent twice at once got two answers", "op": describe(p)}));
                }
            }
            OpType::Fail => entry
                .2
                .push(p.complete.expect("fail").value["refused"].clone()),
            _ => entry.3 = true,
        }
    }
    let mut applied: BTreeMap<u64, i64> = BTreeMap::new();
    let mut unknown: BTreeMap<u64, i64> = BTreeMap::new();
    for (key, (account, amount, answers, _)) in &keys {
        // Every answer saying the deposit was applied must be the same answer (a refusal is
        // not recorded by the ledger, so a later asking may be evaluated afresh).
        let posted: Vec<&Value> = answers
            .iter()
            .filter(|a| a.get("Posted").is_some())
            .collect();
        if posted.windows(2).any(|w| w[0] != w[1]) {
            errors.push(json!({"error": "a retry under the same key got another answer", "key": key, "answers": answers}));
        }
        if !posted.is_empty() {
            *applied.entry(*account).or_default() += *amount as i64;
        } else if answers.is_empty() {
            *unknown.entry(*account).or_default() += *amount as i64;
        }
    }
    let unresolved: usize = keys.values().filter(|k| k.2.is_empty()).count();
    let mut stats = json!({"keys": keys.len(), "unresolved": unresolved});
    let Some(final_read) = cluster_final_read(all) else {
        return without_final_read(errors, stats);
    };
    let balances = balances_of(final_read);
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

/// Reads never go back in time: a read that began after another read ended saw at least the
/// log index that one saw. Cheap, and catches stale reads (an old leader answering from its
/// own state) even when the full linearizability search runs out of budget.
fn read_order(all: &[Pair<'_>]) -> Finding {
    let mut reads: Vec<(&Pair<'_>, u64)> = all
        .iter()
        .filter(|p| (is_client(p) && p.invoke.f == "read") || final_process(p) == Some(0))
        .filter(|p| p.outcome() == OpType::Ok)
        .filter_map(|p| Some((p, p.complete?.value["applied_index"].as_u64()?)))
        .collect();
    // Reads in order of invocation, and (time, index, which) in order of completion.
    reads.sort_by_key(|(p, _)| p.invoke.time);
    let mut ends: Vec<(u64, u64, usize)> = reads
        .iter()
        .enumerate()
        .map(|(i, (p, index))| (p.complete.expect("ok").time, *index, i))
        .collect();
    ends.sort();
    let mut errors = Vec::new();
    let mut freshest: Option<(u64, usize)> = None;
    let mut ended = 0;
    for &(read, index) in &reads {
        while ended < ends.len() && ends[ended].0 < read.invoke.time {
            if freshest.is_none_or(|(f, _)| ends[ended].1 > f) {
                freshest = Some((ends[ended].1, ends[ended].2));
            }
            ended += 1;
        }
        if let Some((fresh, j)) = freshest {
            if index < fresh {
                errors.push(json!({
                    "error": "stale read: it saw an older log index than a read that had already ended",
                    "read": describe(read),
                    "applied_index": index,
                    "earlier_read": describe(reads[j].0),
                    "earlier_applied_index": fresh,
                }));
            }
        }
    }
    let count = reads.len();
    Finding::from_errors(errors, json!({"reads": count}))
}

/// The ledger core as the sequential model: every operation the workload's clients saw is
/// replayed as a command on an in-memory ledger prepared like the cluster was.
#[derive(Clone)]
struct LedgerModel {
    ledger: Ledger<MemStore>,
    depth: u64,
    /// XOR of a hash of every (pool, account) claimed: the vouchers' whole state, cheaply.
    claims: u64,
    setup: Arc<Setup>,
}

/// The model's idempotency client: each step acknowledges everything before it, so the
/// model's state holds no growing history of records.
const MODEL_CLIENT: u64 = 42;

impl LedgerModel {
    fn new(setup: &Setup) -> Result<LedgerModel, String> {
        let config = LedgerConfig {
            campaign_start_ms: setup.campaign_ms.0,
            campaign_end_ms: setup.campaign_ms.1,
            ..LedgerConfig::default()
        };
        let mut driver = Driver::new(config);
        for (i, account) in setup.accounts.iter().enumerate() {
            let card = driver.funded_card(setup.card_base + i as u64, setup.initial_balance_fen);
            if card.account.0 != *account {
                return Err(format!(
                    "the model opened account {} where the cluster opened {account}",
                    card.account
                ));
            }
        }
        for pool in &setup.pools {
            let outcome = driver.submit(Command::CreatePool {
                name: VOUCHER_POOL_NAME.into(),
                face_value_fen: VOUCHER_FACE_FEN,
                capacity: setup.pool_capacity,
                eligibility: Eligibility::Anyone,
                valid_from_ms: setup.pool_valid_ms.0,
                valid_until_ms: setup.pool_valid_ms.1,
            });
            if outcome
                != Ok(Reply::PoolCreated {
                    pool: PoolId(*pool),
                })
            {
                return Err(format!(
                    "the model created {outcome:?}, the cluster pool {pool}"
                ));
            }
        }
        Ok(LedgerModel {
            ledger: driver.ledger,
            depth: 0,
            claims: 0,
            setup: Arc::new(setup.clone()),
        })
    }

    fn apply(&mut self, op: &LinOp, command: Command) -> Outcome {
        self.depth += 1;
        let key = RequestKey {
            client_id: MODEL_CLIENT,
            request_id: self.depth,
        };
        self.ledger.apply(
            &Context {
                index: self.depth,
                now_ms: op.wall_ms,
            },
            &Envelope::new(key, self.depth, command),
        )
    }

    /// Whether the outcome is what the client saw (any outcome fits an unknown one).
    fn agrees(op: &LinOp, outcome: &Outcome, ok: impl Fn(&Reply, &Value) -> bool) -> bool {
        match (op.outcome, outcome, &op.result) {
            (OpType::Info, _, _) => true,
            (OpType::Ok, Ok(reply), Some(seen)) => ok(reply, seen),
            (OpType::Fail, Err(e), Some(seen)) => {
                serde_json::to_value(e).ok().as_ref() == seen.get("refused")
            }
            _ => false,
        }
    }
}

impl Model for LedgerModel {
    fn step(&self, op: &LinOp) -> Option<Self> {
        let a = |v: &Value, k: &str| AccountId(v[k].as_u64().unwrap_or(0));
        let mut next = self.clone();
        let fits = match op.f.as_str() {
            "transfer" => {
                let outcome = next.apply(
                    op,
                    Command::Transfer {
                        source: a(&op.value, "from"),
                        target: a(&op.value, "to"),
                        amount_fen: op.value["amount"].as_u64().unwrap_or(0),
                    },
                );
                Self::agrees(op, &outcome, |reply, seen| {
                    matches!(reply, Reply::Transferred { source_balance_fen, target_balance_fen }
                        if seen["from_balance"].as_i64() == Some(*source_balance_fen)
                        && seen["to_balance"].as_i64() == Some(*target_balance_fen))
                })
            }
            "claim" => {
                let pool = PoolId(op.value["pool"].as_u64().unwrap_or(0));
                let account = a(&op.value, "account");
                let outcome = next.apply(op, Command::ClaimVoucher { pool, account });
                if outcome.is_ok() {
                    next.claims ^= claim_hash(pool, account);
                }
                Self::agrees(
                    op,
                    &outcome,
                    |reply, seen| matches!(reply, Reply::VoucherClaimed { remaining, .. } if seen["remaining"].as_u64() == Some(*remaining)),
                )
            }
            "read" | "final-read" => {
                let Some(seen) = &op.result else {
                    return Some(next);
                };
                if !self.setup.pools.is_empty() {
                    let pools: Vec<(u64, &Value)> =
                        match seen.get("pools").and_then(Value::as_object) {
                            Some(all) => all
                                .iter()
                                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                                .collect(),
                            None => vec![(op.value["pool"].as_u64().unwrap_or(0), seen)],
                        };
                    pools.iter().all(|(pool, seen)| {
                        let pool = PoolId(*pool);
                        let granted_ok =
                            seen["granted"].as_u64() == self.ledger.pool(pool).map(|p| p.granted);
                        let holders_ok = seen.get("holders").is_none_or(|h| {
                            let held: Vec<u64> = self
                                .setup
                                .accounts
                                .iter()
                                .copied()
                                .filter(|acc| self.ledger.voucher(AccountId(*acc), pool).is_some())
                                .collect();
                            h.as_array().is_some_and(|arr| {
                                arr.iter().filter_map(Value::as_u64).collect::<Vec<_>>() == held
                            })
                        });
                        granted_ok && holders_ok
                    })
                } else {
                    let seen = balances_of(seen);
                    self.setup.accounts.iter().all(|acc| {
                        seen.get(acc).copied() == self.ledger.balance_fen(AccountId(*acc))
                    })
                }
            }
            _ => true,
        };
        fits.then_some(next)
    }

    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for acc in &self.setup.accounts {
            self.ledger.balance_fen(AccountId(*acc)).hash(&mut h);
        }
        self.claims.hash(&mut h);
        h.finish()
    }
}

fn claim_hash(pool: PoolId, account: AccountId) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (pool.0, account.0).hash(&mut h);
    h.finish()
}

/// The client operations (and the final read through the cluster) against the ledger core.
fn linearizable(test: &TestInfo, all: &[Pair<'_>]) -> Finding {
    let model = match LedgerModel::new(&test.setup) {
        Ok(m) => m,
        Err(e) => {
            return Finding {
                valid: Validity::Unknown,
                errors: vec![json!(e)],
                stats: Value::Null,
            }
        }
    };
    // What asking again under the same key (after healing) learned about unknown writes.
    let resolved: BTreeMap<u64, &Op> = all
        .iter()
        .filter(|p| p.invoke.f == "resolve" && matches!(p.outcome(), OpType::Ok | OpType::Fail))
        .filter_map(|p| Some((p.invoke.value["of"].as_u64()?, p.complete?)))
        .collect();
    let ops: Vec<LinOp> = all
        .iter()
        .filter(|p| is_client(p) || final_process(p) == Some(0))
        // An unknown write the ledger refused when asked again did nothing: leave it out.
        .filter(|p| {
            !(p.outcome() == OpType::Info
                && resolved
                    .get(&p.invoke.index)
                    .is_some_and(|r| r.kind == OpType::Fail))
        })
        .filter(|p| match p.outcome() {
            OpType::Ok | OpType::Info => true,
            // A refusal by the ledger is an observation; other failures did nothing.
            OpType::Fail => p.complete.is_some_and(|c| c.value.get("refused").is_some()),
            OpType::Invoke => false,
        })
        .filter(|p| !(p.invoke.f.contains("read") && p.outcome() != OpType::Ok))
        .map(|p| {
            // An unknown write the ledger applied, asked again, has a known result, and took
            // effect between its invocation and the asking-again's answer.
            let resolution = (p.outcome() == OpType::Info)
                .then(|| resolved.get(&p.invoke.index))
                .flatten();
            LinOp {
                index: p.invoke.index,
                f: p.invoke.f.clone(),
                value: p.invoke.value.clone(),
                result: match resolution {
                    Some(r) => Some(r.value.clone()),
                    None => p
                        .complete
                        .filter(|c| c.kind != OpType::Info)
                        .map(|c| c.value.clone()),
                },
                outcome: resolution.map_or(p.outcome(), |_| OpType::Ok),
                call_ns: p.invoke.time,
                // A resolved write took effect before the asking-again returned.
                return_ns: match resolution {
                    Some(r) => Some(r.time),
                    None => p
                        .complete
                        .filter(|c| c.kind != OpType::Info)
                        .map(|c| c.time),
                },
                wall_ms: test.started_ms + p.invoke.time / 1_000_000,
            }
        })
        .collect();
    let count = ops.len();
    let unknown = ops.iter().filter(|o| o.outcome == OpType::Info).count();
    let resolved_count = resolved.len();
    let started = std::time::Instant::now();
    let verdict = lin::check(model, &ops, LINEARIZABILITY_BUDGET, LINEARIZABILITY_TIME);
    let stats = json!({"operations": count, "unknown_outcome": unknown, "unknown_writes_resolved": resolved_count, "seconds": started.elapsed().as_secs_f64()});
    match verdict {
        Verdict::Linearizable => Finding::from_errors(vec![], stats),
        Verdict::Unknown(why) => Finding {
            valid: Validity::Unknown,
            errors: vec![json!(why)],
            stats,
        },
        Verdict::NotLinearizable {
            stuck,
            candidates,
            linearized,
        } => {
            let find = |index: u64| all.iter().find(|p| p.invoke.index == index).map(describe);
            Finding::from_errors(
                vec![json!({
                    "error": "no order of the operations consistent with real time explains this operation's result",
                    "operation": find(stuck),
                    "linearized_before_it": linearized,
                    "could_have_gone_first": candidates.iter().take(10).filter_map(|i| find(*i)).collect::<Vec<_>>(),
                })],
                stats,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;
    use crate::workload::FINAL_PROCESS;

    /// Builds histories by hand: each entry 10 ns after the previous.
    #[derive(Default)]
    struct History(Vec<Op>);

    impl History {
        fn add(&mut self, process: u64, kind: OpType, f: &str, value: Value) -> &mut Self {
            let index = self.0.len() as u64;
            self.0.push(Op {
                index,
                kind,
                f: f.into(),
                value,
                process: Process::Client(process),
                time: 10 * (index + 1),
                error: None,
            });
            self
        }

        /// A whole operation: invocation then completion.
        fn call(
            &mut self,
            process: u64,
            f: &str,
            input: Value,
            kind: OpType,
            output: Value,
        ) -> &mut Self {
            let mut done = input.clone();
            if let (Value::Object(a), Value::Object(b)) = (&mut done, output.clone()) {
                a.extend(b);
            } else if !output.is_null() {
                done = output;
            }
            self.add(process, OpType::Invoke, f, input)
                .add(process, kind, f, done)
        }

        /// The final reads through the cluster and from node 1.
        fn finals(&mut self, state: Value) -> &mut Self {
            self.call(
                FINAL_PROCESS,
                "final-read",
                json!({"node": null}),
                OpType::Ok,
                state.clone(),
            )
            .call(
                FINAL_PROCESS + 1,
                "final-read",
                json!({"node": 1}),
                OpType::Ok,
                state,
            )
        }
    }

    fn test(workload: Kind, accounts: Vec<u64>, initial_balance_fen: u64) -> TestInfo {
        TestInfo {
            name: "unit".into(),
            workload,
            nemesis: vec![],
            nodes: 1,
            time_limit_s: 1,
            concurrency: 2,
            rate: 0.0,
            seed: 0,
            nemesis_interval_s: 1.0,
            started_ms: 1_800_000_000_000,
            started_at: String::new(),
            unsafe_local_reads: false,
            node_bin: String::new(),
            setup: Setup {
                accounts,
                initial_balance_fen,
                card_base: 5_000,
                campaign_ms: (1_700_000_000_000, 1_900_000_000_000),
                ..Setup::default()
            },
            healed: None,
        }
    }

    fn bank_state(a: i64, b: i64, index: u64) -> Value {
        json!({"balances": {"16": a, "17": b}, "applied_index": index})
    }

    fn transfer(h: &mut History, process: u64, kind: OpType, result: Value) {
        h.call(
            process,
            "transfer",
            json!({"from": 16, "to": 17, "amount": 30, "key": [1, process]}),
            kind,
            result,
        );
    }

    fn verdicts(results: &Results) -> BTreeMap<&str, Validity> {
        results
            .checkers
            .iter()
            .map(|(k, v)| (k.as_str(), v.valid))
            .collect()
    }

    #[test]
    fn a_correct_bank_history_is_valid() {
        let mut h = History::default();
        transfer(
            &mut h,
            0,
            OpType::Ok,
            json!({"from_balance": 70, "to_balance": 130}),
        );
        h.call(1, "read", Value::Null, OpType::Ok, bank_state(70, 130, 5));
        h.finals(bank_state(70, 130, 5));
        let r = check(&test(Kind::Bank, vec![16, 17], 100), &h.0);
        assert_eq!(r.valid, Validity::Valid, "{:?}", verdicts(&r));
    }

    #[test]
    fn a_read_that_misses_a_completed_transfer_is_not_linearizable() {
        let mut h = History::default();
        transfer(
            &mut h,
            0,
            OpType::Ok,
            json!({"from_balance": 70, "to_balance": 130}),
        );
        h.call(1, "read", Value::Null, OpType::Ok, bank_state(100, 100, 4));
        h.finals(bank_state(70, 130, 5));
        let r = check(&test(Kind::Bank, vec![16, 17], 100), &h.0);
        assert_eq!(r.checkers["linearizable"].valid, Validity::Invalid);
        // The total was right all along: only the order is wrong.
        assert_eq!(r.checkers["bank"].valid, Validity::Valid);
    }

    #[test]
    fn an_unknown_transfer_resolved_as_applied_must_show_in_the_final_state() {
        let history = |final_state: Value| {
            let mut h = History::default();
            h.add(
                0,
                OpType::Invoke,
                "transfer",
                json!({"from": 16, "to": 17, "amount": 30, "key": [1, 0]}),
            )
            .add(
                0,
                OpType::Info,
                "transfer",
                json!({"from": 16, "to": 17, "amount": 30, "key": [1, 0]}),
            );
            h.call(
                9,
                "resolve",
                json!({"of": 0, "f": "transfer", "key": [1, 0]}),
                OpType::Ok,
                json!({"from_balance": 70, "to_balance": 130}),
            );
            h.finals(final_state);
            h.0
        };
        let t = test(Kind::Bank, vec![16, 17], 100);
        assert_eq!(
            check(&t, &history(bank_state(70, 130, 5))).valid,
            Validity::Valid
        );
        let lost = check(&t, &history(bank_state(100, 100, 5)));
        assert_eq!(
            lost.checkers["linearizable"].valid,
            Validity::Invalid,
            "{:?}",
            verdicts(&lost)
        );
    }

    #[test]
    fn reads_going_back_in_log_order_are_stale() {
        let mut h = History::default();
        h.call(0, "read", Value::Null, OpType::Ok, bank_state(100, 100, 10));
        h.call(1, "read", Value::Null, OpType::Ok, bank_state(100, 100, 9));
        h.finals(bank_state(100, 100, 10));
        let r = check(&test(Kind::Bank, vec![16, 17], 100), &h.0);
        assert_eq!(r.checkers["read-order"].valid, Validity::Invalid);
        assert_eq!(
            r.checkers["linearizable"].valid,
            Validity::Valid,
            "same balances: only the index shows it"
        );
    }

    #[test]
    fn a_replica_that_lost_a_transfer_fails_durability() {
        let mut h = History::default();
        transfer(
            &mut h,
            0,
            OpType::Ok,
            json!({"from_balance": 70, "to_balance": 130}),
        );
        h.call(
            FINAL_PROCESS,
            "final-read",
            json!({"node": null}),
            OpType::Ok,
            bank_state(70, 130, 5),
        );
        h.call(
            FINAL_PROCESS + 1,
            "final-read",
            json!({"node": 1}),
            OpType::Ok,
            bank_state(100, 100, 4),
        );
        let r = check(&test(Kind::Bank, vec![16, 17], 100), &h.0);
        assert_eq!(r.checkers["durability"].valid, Validity::Invalid);
    }

    #[test]
    fn a_voucher_acknowledged_twice_to_one_account_is_invalid() {
        let mut t = test(Kind::Vouchers, vec![16, 17], 0);
        t.setup.pools = vec![1];
        t.setup.pool_capacity = 3;
        t.setup.pool_valid_ms = (0, u64::MAX / 2);
        let mut h = History::default();
        h.call(
            0,
            "claim",
            json!({"pool": 1, "account": 16}),
            OpType::Ok,
            json!({"remaining": 2}),
        );
        h.call(
            1,
            "claim",
            json!({"pool": 1, "account": 16}),
            OpType::Ok,
            json!({"remaining": 1}),
        );
        h.finals(json!({"pools": {"1": {"granted": 1, "holders": [16]}}}));
        let r = check(&t, &h.0);
        assert_eq!(r.checkers["vouchers"].valid, Validity::Invalid);
        assert_eq!(r.checkers["linearizable"].valid, Validity::Invalid);
    }

    #[test]
    fn a_deposit_applied_twice_is_caught_by_the_idempotency_checker() {
        let t = test(Kind::Idempotency, vec![16], 0);
        let deposit = json!({"key": [7, 1], "account": 16, "amount": 50, "retry": false});
        let history = |final_balance: i64| {
            let mut h = History::default();
            h.add(0, OpType::Invoke, "deposit", deposit.clone()).add(
                0,
                OpType::Info,
                "deposit",
                deposit.clone(),
            );
            h.call(
                10,
                "deposit",
                deposit.clone(),
                OpType::Ok,
                json!({"reply": {"Posted": {"balance_fen": 50}}}),
            );
            h.finals(json!({"balances": {"16": final_balance}, "applied_index": 3}));
            h.0
        };
        assert_eq!(check(&t, &history(50)).valid, Validity::Valid);
        assert_eq!(
            check(&t, &history(100)).checkers["idempotency"].valid,
            Validity::Invalid
        );
    }

    /// An e-Pay run: customer 16 (1,000 fen) pays 100 fen to the merchant's account 17,
    /// confirmed with `code`; the final state shows the payment settled and the payer holding
    /// `payer_balance`.
    fn epay_run(code: &str, payer_balance: i64) -> Results {
        let mut t = test(Kind::Epay, vec![16], 1_000);
        t.setup.merchant_account = Some(17);
        let mut h = History::default();
        h.call(
            0,
            "begin",
            json!({"account": 16, "amount": 100, "order": "o"}),
            OpType::Ok,
            json!({"payment": 1, "challenge": 1}),
        );
        h.call(
            0,
            "confirm",
            json!({"payment": 1, "account": 16, "code": code}),
            OpType::Ok,
            json!({"debited": 100, "bill": 100}),
        );
        h.finals(json!({
            "balances": {"4": -1000, "16": payer_balance, "17": 1000 - payer_balance},
            "payments": {"1": {"Settled": {"debited_fen": 100, "voucher": null, "settled_ms": 1}}},
        }));
        check(&t, &h.0)
    }

    #[test]
    fn a_wrong_code_that_settles_a_payment_is_invalid() {
        let r = epay_run("wrong", 900);
        assert_eq!(r.checkers["epay"].valid, Validity::Invalid);
        let text = serde_json::to_string(&r.checkers["epay"].errors).unwrap();
        assert!(text.contains("wrong code settled"), "{text}");
        assert!(text.contains("without the right code"), "{text}");
        assert!(
            !text.contains("does not match"),
            "the balances agree with the settlement: {text}"
        );
    }

    #[test]
    fn a_customer_charged_other_than_the_settled_debits_is_invalid() {
        assert_eq!(epay_run("correct", 900).valid, Validity::Valid);
        // Charged twice (and the merchant paid twice): the totals still add up.
        let twice = epay_run("correct", 800);
        assert_eq!(twice.checkers["epay"].valid, Validity::Invalid);
        assert!(serde_json::to_string(&twice.checkers["epay"].errors)
            .unwrap()
            .contains("does not match"));
    }
}
