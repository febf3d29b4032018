//! The checkers every workload shares (stats, durability, the linearizability search's
//! driver) and the verdict. Each reads only the history and `test.json`, so
//! `ledger-jepsen check` can re-run them on a stored run; the workloads' own checkers are in
//! their files (`workloads/`).

use crate::history::{Entry, OpType, Pair};
use crate::lin::{self, LinOp, Verdict};
use crate::model::{LedgerModel, Observed};
use crate::ops::{self, Answer, Record};
use crate::runner::TestInfo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
    /// Valid without errors, invalid with them.
    pub fn from_errors(errors: Vec<Value>, stats: Value) -> Finding {
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

    /// Not shown wrong, and not shown right, for the reason given.
    pub fn unknown(why: Value, stats: Value) -> Finding {
        Finding {
            valid: Validity::Unknown,
            errors: vec![why],
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

/// Runs the common checkers and the workload's own on a history.
pub fn check(test: &TestInfo, entries: &[Entry]) -> Results {
    let mut checkers = BTreeMap::new();
    match ops::records(entries) {
        Ok(history) => {
            checkers.insert("stats".to_owned(), stats(&history));
            checkers.insert("durability".to_owned(), durability(test, &history));
            for (name, finding) in test.workload.workload().checkers(test, &history) {
                checkers.insert(name.to_owned(), finding);
            }
        }
        Err(e) => {
            // A history this harness cannot read shows nothing either way.
            checkers.insert(
                "history".to_owned(),
                Finding::unknown(json!(e.to_string()), Value::Null),
            );
        }
    }
    if let Some(problem) = &test.healed {
        // The cluster did not come back (ready and converged) after healing: whatever the
        // other checkers say, the run did not show it whole.
        checkers.insert(
            "healing".into(),
            Finding::unknown(json!(problem), Value::Null),
        );
    }
    let valid = checkers
        .values()
        .map(|f| f.valid)
        .max()
        .unwrap_or(Validity::Unknown);
    Results { valid, checkers }
}

/// An operation as a finding names it.
pub fn describe(p: &Pair<'_>) -> Value {
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

/// Counts per operation and outcome; never invalid, unknown if no client operation
/// succeeded (a run that did nothing proves nothing).
fn stats(history: &[Record<'_>]) -> Finding {
    let mut counts: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for r in history.iter().filter(|r| r.is_client()) {
        let outcome = match r.outcome {
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            _ => "info",
        };
        *counts
            .entry(r.pair.invoke.f.as_str())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    let ok: u64 = counts.values().filter_map(|c| c.get("ok")).sum();
    if ok > 0 {
        Finding::from_errors(vec![], json!(counts))
    } else {
        Finding::unknown(json!("no client operation succeeded"), json!(counts))
    }
}

/// A final read's state: which node answered, and at which index, may differ; the state
/// may not.
fn final_state(record: &Record<'_>) -> Value {
    let mut v = record.pair.complete.expect("ok").value.clone();
    if let Value::Object(m) = &mut v {
        m.remove("node");
        m.remove("applied_index");
    }
    v
}

/// After healing, the cluster answered a final read, and every node's own copy of the
/// workload's state equals it (acknowledged operations survived the faults on every replica).
fn durability(test: &TestInfo, history: &[Record<'_>]) -> Finding {
    let Some(cluster) = history
        .iter()
        .find(|r| r.final_read_node() == Some(0) && r.is_ok())
    else {
        return without_final_read(vec![], Value::Null);
    };
    let expected = final_state(cluster);
    let mut errors = Vec::new();
    let mut unread = Vec::new();
    for node in 1..=test.nodes {
        let read = history
            .iter()
            .find(|r| r.final_read_node() == Some(node) && r.is_ok());
        match read.map(final_state) {
            Some(seen) if seen != expected => {
                errors.push(json!({"node": node, "expected": expected, "found": seen}));
            }
            Some(_) => {}
            None => unread.push(node),
        }
    }
    if errors.is_empty() && !unread.is_empty() {
        // Not shown wrong, but not shown right either.
        return Finding::unknown(
            json!({"error": "no final read from these nodes", "nodes": unread}),
            json!({"final": expected}),
        );
    }
    Finding::from_errors(errors, json!({"final": expected}))
}

/// What the final read through the cluster, after healing, saw.
pub fn cluster_final_read<'r>(history: &'r [Record<'_>]) -> Option<&'r Answer> {
    history
        .iter()
        .find(|r| r.final_read_node() == Some(0) && r.is_ok())
        .and_then(|r| r.answer.as_ref())
}

/// A checker's answer when the final state could not be read: invalid if what it saw
/// before was already wrong, unknown otherwise.
pub fn without_final_read(errors: Vec<Value>, stats: Value) -> Finding {
    if errors.is_empty() {
        Finding::unknown(
            json!("no final read through the cluster after healing"),
            stats,
        )
    } else {
        Finding::from_errors(errors, stats)
    }
}

/// The operations the search places: client operations and the final read through the
/// cluster, with unknown writes that asking again showed applied taking the answer then
/// seen (and effect before it), and those the ledger refused when asked again left out.
fn lin_ops(test: &TestInfo, history: &[Record<'_>]) -> (Vec<LinOp<Observed>>, usize) {
    let resolved: BTreeMap<u64, &Record<'_>> = history
        .iter()
        // A resolve that failed before the ledger saw it (a full disk) tells nothing.
        .filter(|r| r.outcome == OpType::Ok || r.refused.is_some())
        .filter_map(|r| match r.op {
            ops::Op::Resolve { of, .. } => Some((of, r)),
            _ => None,
        })
        .collect();
    let ops = history
        .iter()
        .filter(|r| r.is_client() || r.final_read_node() == Some(0))
        .filter_map(|r| {
            let resolution = (r.outcome == OpType::Info)
                .then(|| resolved.get(&r.invoke_index()))
                .flatten();
            let placed = match (r.outcome, resolution) {
                // An unknown write the ledger refused when asked again did nothing.
                (OpType::Info, Some(res)) if res.outcome == OpType::Fail => false,
                (OpType::Ok, _) | (OpType::Info, _) => true,
                // A refusal by the ledger is an observation; other failures did nothing.
                (OpType::Fail, _) => r.refused.is_some(),
                (OpType::Invoke, _) => false,
            };
            let unread = r.op.is_read() && !r.is_ok();
            (placed && !unread).then(|| lin_op(test, r, resolution.copied()))
        })
        .collect();
    (ops, resolved.len())
}

fn lin_op(test: &TestInfo, r: &Record<'_>, resolution: Option<&Record<'_>>) -> LinOp<Observed> {
    let (outcome, answer, return_ns) = match resolution {
        // Applied, asked again: known result, effect before the asking-again returned.
        Some(res) => (OpType::Ok, res.answer.clone(), res.complete_ns()),
        None if r.outcome == OpType::Info => (OpType::Info, None, None),
        None => (r.outcome, r.answer.clone(), r.complete_ns()),
    };
    LinOp {
        index: r.invoke_index(),
        call: Observed {
            op: r.op.clone(),
            answer,
            refused: r.refused.clone(),
        },
        outcome,
        call_ns: r.invoke_ns(),
        return_ns,
        wall_ms: test.started_ms + r.invoke_ns() / 1_000_000,
    }
}

/// The client operations (and the final read through the cluster) against the ledger core.
pub fn linearizable(test: &TestInfo, history: &[Record<'_>]) -> Finding {
    let model = match LedgerModel::new(&test.setup, test.workload.workload()) {
        Ok(m) => m,
        Err(e) => return Finding::unknown(json!(e.to_string()), Value::Null),
    };
    let (ops, resolved_count) = lin_ops(test, history);
    let count = ops.len();
    let unknown = ops.iter().filter(|o| o.outcome == OpType::Info).count();
    let started = std::time::Instant::now();
    let verdict = lin::check(model, &ops, LINEARIZABILITY_BUDGET, LINEARIZABILITY_TIME);
    let stats = json!({"operations": count, "unknown_outcome": unknown, "unknown_writes_resolved": resolved_count, "seconds": started.elapsed().as_secs_f64()});
    match verdict {
        Verdict::Linearizable => Finding::from_errors(vec![], stats),
        Verdict::Unknown(why) => Finding::unknown(json!(why), stats),
        Verdict::NotLinearizable {
            stuck,
            candidates,
            linearized,
        } => {
            let find = |index: u64| {
                history
                    .iter()
                    .find(|r| r.invoke_index() == index)
                    .map(|r| describe(&r.pair))
            };
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
    use crate::history::{Entry, Process};
    use crate::ops::FINAL_PROCESS;
    use crate::workloads::{Kind, Setup};

    /// Builds histories by hand: each entry 10 ns after the previous.
    #[derive(Default)]
    struct History(Vec<Entry>);

    impl History {
        fn add(&mut self, process: u64, kind: OpType, f: &str, value: Value) -> &mut Self {
            let index = self.0.len() as u64;
            self.0.push(Entry {
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

    /// A deposit of 50 fen to account 16 whose outcome was unknown, asked again under its
    /// key with `kind` and `output`; the final read shows `final_balance`.
    fn deposit_asked_again(kind: OpType, output: Value, final_balance: i64) -> Vec<Entry> {
        let deposit = json!({"key": [7, 1], "account": 16, "amount": 50, "retry": false});
        let mut retry = deposit.clone();
        retry["retry"] = json!(true);
        let mut h = History::default();
        h.add(0, OpType::Invoke, "deposit", deposit.clone()).add(
            0,
            OpType::Info,
            "deposit",
            deposit,
        );
        h.call(10, "deposit", retry, kind, output);
        h.finals(json!({"balances": {"16": final_balance}, "applied_index": 3}));
        h.0
    }

    #[test]
    fn a_deposit_applied_twice_is_caught_by_the_idempotency_checker() {
        let t = test(Kind::Idempotency, vec![16], 0);
        let posted = || json!({"reply": {"Posted": {"balance_fen": 50}}});
        let history = |balance| deposit_asked_again(OpType::Ok, posted(), balance);
        assert_eq!(check(&t, &history(50)).valid, Validity::Valid);
        assert_eq!(
            check(&t, &history(100)).checkers["idempotency"].valid,
            Validity::Invalid
        );
    }

    #[test]
    fn a_retry_refused_before_the_ledger_leaves_an_unknown_deposit_unknown() {
        // CI, 2026-12-04: the first attempt's outcome was unknown (it had been applied); the
        // retry under its key was refused by a leader whose disk was full, before the
        // ledger looked the key up. The balance holds the deposit: not a violation.
        let t = test(Kind::Idempotency, vec![16], 0);
        let history = |balance| deposit_asked_again(OpType::Fail, Value::Null, balance);
        for balance in [0, 50] {
            let r = check(&t, &history(balance));
            assert_eq!(
                r.checkers["idempotency"].valid,
                Validity::Unknown,
                "{balance}"
            );
        }
        assert_eq!(
            check(&t, &history(100)).checkers["idempotency"].valid,
            Validity::Invalid
        );
    }

    #[test]
    fn a_resolve_refused_before_the_ledger_does_not_undo_an_unknown_transfer() {
        let transfer = json!({"from": 16, "to": 17, "amount": 30, "key": [1, 0]});
        let history = |resolve_refused: Value| {
            let mut h = History::default();
            h.add(0, OpType::Invoke, "transfer", transfer.clone()).add(
                0,
                OpType::Info,
                "transfer",
                transfer.clone(),
            );
            h.call(
                9,
                "resolve",
                json!({"of": 0, "f": "transfer", "key": [1, 0]}),
                OpType::Fail,
                resolve_refused,
            );
            h.finals(bank_state(70, 130, 5));
            h.0
        };
        let t = test(Kind::Bank, vec![16, 17], 100);
        // Refused before the ledger (a full disk): the transfer may have applied.
        let full_disk = check(&t, &history(Value::Null));
        for name in ["linearizable", "bank"] {
            let verdict = full_disk.checkers[name].valid;
            assert_eq!(verdict, Validity::Valid, "{:?}", verdicts(&full_disk));
        }
        // Refused by the ledger when asked again: it was not applied, yet the state shows it.
        let refused = json!({"refused": {"InsufficientFunds": {"account": 16, "balance_fen": 0, "needed_fen": 30}}});
        let r = check(&t, &history(refused));
        assert_eq!(
            r.checkers["linearizable"].valid,
            Validity::Invalid,
            "{:?}",
            verdicts(&r)
        );
    }

    /// An e-Pay run: customer 16 (1,000 fen) pays 100 fen to the merchant's account 17,
    /// confirmed with `code`; the final state shows the payment settled and the payer holding
    /// `payer_balance`.
    fn epay_run(code: &str, payer_balance: i64) -> Results {
        epay_run_with(code, payer_balance, |_| {})
    }

    /// A settled payment of 100 fen by account 16 to merchant 1, as the final read shows it.
    fn settled_payment(refunded_fen: u64) -> Value {
        json!({
            "payer": 16,
            "payee": {"Merchant": 1},
            "amount_fen": 100,
            "order_id": "o",
            "method": {"Epay": {"challenge": 1}},
            "state": {"Settled": {"debited_fen": 100, "voucher": null, "settled_ms": 1}},
            "created_ms": 0,
            "refunds": {"count": u32::from(refunded_fen > 0), "total_fen": refunded_fen, "to_payer_fen": refunded_fen, "points_taken": 0},
            "points_earned": 0,
        })
    }

    /// `epay_run`, with `more` adding operations after the confirmation; the final read's
    /// payment carries `refunded_fen` of refunds.
    fn epay_run_with(code: &str, payer_balance: i64, more: impl FnOnce(&mut History)) -> Results {
        epay_run_refunded(code, payer_balance, 0, more)
    }

    fn epay_run_refunded(
        code: &str,
        payer_balance: i64,
        refunded_fen: u64,
        more: impl FnOnce(&mut History),
    ) -> Results {
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
        more(&mut h);
        h.finals(json!({
            "balances": {"4": -1000, "16": payer_balance, "17": 1000 - payer_balance},
            "payments": {"1": settled_payment(refunded_fen)},
        }));
        check(&t, &h.0)
    }

    #[test]
    fn refunds_are_checked_against_those_asked_for_and_the_payers_balance() {
        let refund = |h: &mut History| {
            h.call(
                0,
                "refund",
                json!({"payment": 1, "amount": 30}),
                OpType::Ok,
                json!({"refund": 30, "to_payer": 30}),
            );
        };
        // Refunded 30 of 100: the payer paid 70.
        assert_eq!(
            epay_run_refunded("correct", 930, 30, refund).valid,
            Validity::Valid
        );
        // The refund acknowledged but not recorded, or the payer not given it back.
        let lost = epay_run_refunded("correct", 930, 0, refund);
        assert_eq!(lost.checkers["epay"].valid, Validity::Invalid);
        assert!(serde_json::to_string(&lost.checkers["epay"].errors)
            .unwrap()
            .contains("refunds recorded are not the refunds asked for"));
        let unpaid = epay_run_refunded("correct", 900, 30, refund);
        assert_eq!(unpaid.checkers["epay"].valid, Validity::Invalid);
        // A refund nobody asked for.
        let unasked = epay_run_refunded("correct", 930, 30, |_| {});
        assert_eq!(unasked.checkers["epay"].valid, Validity::Invalid);
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
