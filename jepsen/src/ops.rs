//! The history read once into types: each client operation's invocation as an `Op`, its
//! completion as an `Answer` (or the ledger's refusal), so the checkers and models match on
//! variants instead of comparing strings and digging in JSON. The stored form stays Jepsen's
//! (`f` and `value`, see `history.rs`); this is its only reader.

use crate::history::{pairs, Entry, OpType, Pair, Process};
use ledger_core::ledger::journal::ReconciliationTotals;
use ledger_core::outcome::LedgerError;
use ledger_core::state::Payment;
use serde_json::Value;
use std::collections::BTreeMap;

/// Process numbers from here on are the final reads after healing (one per node, and one
/// for the cluster), not client threads.
pub const FINAL_PROCESS: u64 = 1_000_000;

/// Process numbers of the askings-again after healing (below FINAL_PROCESS are client
/// threads, FINAL_PROCESS + node id the final reads).
pub const RESOLVE_PROCESS: u64 = 2_000_000;

/// A history that cannot be read as this harness writes them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistoryError {
    #[error("history entry {index}: `{f}` lacks the field `{field}` (or it has the wrong type)")]
    MissingField {
        index: u64,
        f: String,
        field: &'static str,
    },
    #[error("history entry {index}: unknown operation `{f}`")]
    UnknownOperation { index: u64, f: String },
    #[error("history entry {index}: the refusal {refused} is not a ledger error: {reason}")]
    Refusal {
        index: u64,
        refused: String,
        reason: String,
    },
}

/// What a client asked (the invocation).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Transfer {
        from: u64,
        to: u64,
        amount_fen: u64,
    },
    /// A read of every bank account's balance.
    ReadBalances,
    /// A read of one voucher pool's count.
    ReadPool {
        pool: u64,
    },
    Claim {
        pool: u64,
        account: u64,
    },
    /// A deposit under `key`; `twice`: sent twice at once.
    Deposit {
        key: (u64, u64),
        account: u64,
        amount_fen: u64,
        twice: bool,
    },
    Begin {
        account: u64,
        amount_fen: u64,
    },
    /// A payment's confirmation, with the right code or a wrong one.
    Confirm {
        payment: u64,
        account: u64,
        correct: bool,
    },
    /// A card swiped at the merchant's terminal.
    Swipe {
        account: u64,
        amount_fen: u64,
    },
    /// The merchant cancels a pending payment.
    Cancel {
        payment: u64,
    },
    /// The merchant refunds part of a settled payment.
    Refund {
        payment: u64,
        amount_fen: u64,
    },
    /// The unknown write invoked at history index `of`, asked again under its key.
    Resolve {
        of: u64,
        f: String,
    },
    /// After healing: through the cluster (`node` None) or one node's own state.
    FinalRead {
        node: Option<u64>,
    },
}

impl Op {
    /// Whether it only reads (a failed read changed nothing and showed nothing).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Op::ReadBalances | Op::ReadPool { .. } | Op::FinalRead { .. }
        )
    }
}

/// A voucher pool as the final read saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSeen {
    pub granted: Option<u64>,
    pub holders: Vec<u64>,
}

/// What a successful operation saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Transferred {
        from_balance: i64,
        to_balance: i64,
    },
    Claimed {
        remaining: u64,
    },
    /// Balances by account, at a log index (bank and idempotency reads).
    Balances {
        balances: BTreeMap<u64, i64>,
        applied_index: Option<u64>,
    },
    Pool {
        granted: Option<u64>,
    },
    Pools(BTreeMap<u64, PoolSeen>),
    /// e-Pay's final read: every account's balance, every payment, and the merchant's
    /// reconciliation of each CST day the payments touched.
    Payments {
        balances: BTreeMap<u64, i64>,
        payments: BTreeMap<u64, Payment>,
        /// `None` in a history whose final read did not read them (written by hand).
        days: Option<Vec<DaySeen>>,
        /// The merchant's payment events, read from its cursor (`None` likewise).
        events: Option<Vec<EventSeen>>,
    },
    /// The ledger's reply as the client reported it (a second one for a request sent twice).
    Replied {
        reply: Value,
        second: Option<Value>,
    },
    Begun {
        payment: u64,
        challenge: u64,
    },
    Settled {
        debited_fen: u64,
    },
    Swiped {
        payment: u64,
        debited_fen: u64,
    },
    Cancelled,
    Refunded {
        refund_fen: u64,
    },
}

/// One client operation: invocation, completion, and their typed readings.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    pub pair: Pair<'a>,
    pub process: u64,
    pub op: Op,
    pub outcome: OpType,
    /// Present when the outcome is `ok`.
    pub answer: Option<Answer>,
    /// The ledger's refusal, when the outcome is `fail` because of one.
    pub refused: Option<LedgerError>,
}

impl Record<'_> {
    pub fn invoke_index(&self) -> u64 {
        self.pair.invoke.index
    }

    pub fn invoke_ns(&self) -> u64 {
        self.pair.invoke.time
    }

    /// When it completed (None: never, or unknown).
    pub fn complete_ns(&self) -> Option<u64> {
        self.pair.complete.map(|c| c.time)
    }

    /// A client thread's operation (not a final read nor an asking-again after healing).
    pub fn is_client(&self) -> bool {
        self.process < FINAL_PROCESS
    }

    /// The node of a final read (0: through the cluster).
    pub fn final_read_node(&self) -> Option<u64> {
        match self.op {
            Op::FinalRead { .. } if self.process >= FINAL_PROCESS => {
                Some(self.process - FINAL_PROCESS)
            }
            _ => None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == OpType::Ok
    }
}

/// Reads every client operation of the history (the nemesis's entries are not operations).
pub fn records(entries: &[Entry]) -> Result<Vec<Record<'_>>, HistoryError> {
    pairs(entries).into_iter().map(record).collect()
}

fn record(pair: Pair<'_>) -> Result<Record<'_>, HistoryError> {
    let invoke = pair.invoke;
    let op = parse_op(invoke)?;
    let outcome = pair.outcome();
    let (answer, refused) = match pair.complete {
        Some(done) if outcome == OpType::Ok => (Some(parse_answer(&op, done)?), None),
        Some(done) if outcome == OpType::Fail => (None, parse_refusal(done)?),
        _ => (None, None),
    };
    let process = match invoke.process {
        Process::Client(n) => n,
        Process::Nemesis(_) => unreachable!("pairs() leaves the nemesis out"),
    };
    Ok(Record {
        pair,
        process,
        op,
        outcome,
        answer,
        refused,
    })
}

/// The field `field` of `entry`'s value, read by `read`.
fn field<T>(
    entry: &Entry,
    field: &'static str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<T, HistoryError> {
    read(&entry.value[field]).ok_or_else(|| HistoryError::MissingField {
        index: entry.index,
        f: entry.f.clone(),
        field,
    })
}

fn u64_of(entry: &Entry, name: &'static str) -> Result<u64, HistoryError> {
    field(entry, name, Value::as_u64)
}

fn parse_op(entry: &Entry) -> Result<Op, HistoryError> {
    Ok(match entry.f.as_str() {
        "transfer" => Op::Transfer {
            from: u64_of(entry, "from")?,
            to: u64_of(entry, "to")?,
            amount_fen: u64_of(entry, "amount")?,
        },
        "read" if entry.value.is_null() => Op::ReadBalances,
        "read" => Op::ReadPool {
            pool: u64_of(entry, "pool")?,
        },
        "claim" => Op::Claim {
            pool: u64_of(entry, "pool")?,
            account: u64_of(entry, "account")?,
        },
        "deposit" => Op::Deposit {
            key: field(entry, "key", |k| Some((k[0].as_u64()?, k[1].as_u64()?)))?,
            account: u64_of(entry, "account")?,
            amount_fen: u64_of(entry, "amount")?,
            twice: entry.value["twice"].as_bool().unwrap_or(false),
        },
        "begin" => Op::Begin {
            account: u64_of(entry, "account")?,
            amount_fen: u64_of(entry, "amount")?,
        },
        "confirm" => Op::Confirm {
            payment: u64_of(entry, "payment")?,
            account: u64_of(entry, "account")?,
            correct: field(entry, "code", |c| c.as_str().map(|c| c == "correct"))?,
        },
        "swipe" => Op::Swipe {
            account: u64_of(entry, "account")?,
            amount_fen: u64_of(entry, "amount")?,
        },
        "cancel" => Op::Cancel {
            payment: u64_of(entry, "payment")?,
        },
        "refund" => Op::Refund {
            payment: u64_of(entry, "payment")?,
            amount_fen: u64_of(entry, "amount")?,
        },
        "resolve" => Op::Resolve {
            of: u64_of(entry, "of")?,
            f: field(entry, "f", |f| f.as_str().map(str::to_owned))?,
        },
        "final-read" => Op::FinalRead {
            node: entry.value["node"].as_u64(),
        },
        other => {
            return Err(HistoryError::UnknownOperation {
                index: entry.index,
                f: other.to_owned(),
            })
        }
    })
}

/// `{"id": fen, ...}` as a map (keys that are not account numbers are skipped).
fn balances_of(value: &Value) -> BTreeMap<u64, i64> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, b)| Some((k.parse().ok()?, b.as_i64()?)))
        .collect()
}

fn pools_of(value: &Value) -> BTreeMap<u64, PoolSeen> {
    let pool = |v: &Value| PoolSeen {
        granted: v["granted"].as_u64(),
        holders: v["holders"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect(),
    };
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.parse().ok()?, pool(v))))
        .collect()
}

/// One CST day of the merchant's reconciliation, as the final read saw it (all pages).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DaySeen {
    pub day: u64,
    pub totals: ReconciliationTotals,
    pub opening_balance_fen: i64,
    pub closing_balance_fen: i64,
    /// The rows of every page, and what they moved in and out of the account.
    pub rows: u64,
    pub rows_net_fen: i64,
}

/// One of the merchant's payment events, as the final read saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventSeen {
    pub id: u64,
    pub payment: u64,
    pub kind: ledger_core::state::EventKind,
}

fn days_of(value: Option<&Value>) -> Option<Vec<DaySeen>> {
    value.map(|v| serde_json::from_value(v.clone()).unwrap_or_default())
}

fn events_of(value: Option<&Value>) -> Option<Vec<EventSeen>> {
    value.map(|v| serde_json::from_value(v.clone()).unwrap_or_default())
}

fn payments_of(value: &Value) -> BTreeMap<u64, Payment> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.parse().ok()?, serde_json::from_value(v.clone()).ok()?)))
        .collect()
}

fn parse_answer(op: &Op, done: &Entry) -> Result<Answer, HistoryError> {
    let v = &done.value;
    Ok(match op {
        Op::Transfer { .. } => transferred(done)?,
        Op::Resolve { f, .. } if f == "transfer" => transferred(done)?,
        Op::Claim { .. } => Answer::Claimed {
            remaining: u64_of(done, "remaining")?,
        },
        Op::Resolve { f, .. } if f == "claim" => Answer::Claimed {
            remaining: u64_of(done, "remaining")?,
        },
        Op::ReadPool { .. } => Answer::Pool {
            granted: v["granted"].as_u64(),
        },
        Op::ReadBalances => Answer::Balances {
            balances: balances_of(&v["balances"]),
            applied_index: v["applied_index"].as_u64(),
        },
        Op::FinalRead { .. } if v.get("pools").is_some() => Answer::Pools(pools_of(&v["pools"])),
        Op::FinalRead { .. } if v.get("payments").is_some() => Answer::Payments {
            balances: balances_of(&v["balances"]),
            payments: payments_of(&v["payments"]),
            days: days_of(v.get("days")),
            events: events_of(v.get("events")),
        },
        Op::FinalRead { .. } => Answer::Balances {
            balances: balances_of(&v["balances"]),
            applied_index: v["applied_index"].as_u64(),
        },
        Op::Deposit { .. } | Op::Resolve { .. } => Answer::Replied {
            reply: v["reply"].clone(),
            second: v.get("second_reply").filter(|s| !s.is_null()).cloned(),
        },
        Op::Begin { .. } => Answer::Begun {
            payment: u64_of(done, "payment")?,
            challenge: u64_of(done, "challenge")?,
        },
        Op::Confirm { .. } => Answer::Settled {
            debited_fen: u64_of(done, "debited")?,
        },
        Op::Swipe { .. } => Answer::Swiped {
            payment: u64_of(done, "payment")?,
            debited_fen: u64_of(done, "debited")?,
        },
        Op::Cancel { .. } => Answer::Cancelled,
        Op::Refund { .. } => Answer::Refunded {
            refund_fen: u64_of(done, "refund")?,
        },
    })
}

fn transferred(done: &Entry) -> Result<Answer, HistoryError> {
    Ok(Answer::Transferred {
        from_balance: field(done, "from_balance", Value::as_i64)?,
        to_balance: field(done, "to_balance", Value::as_i64)?,
    })
}

fn parse_refusal(done: &Entry) -> Result<Option<LedgerError>, HistoryError> {
    let Some(refused) = done.value.get("refused") else {
        return Ok(None);
    };
    serde_json::from_value(refused.clone())
        .map(Some)
        .map_err(|e| HistoryError::Refusal {
            index: done.index,
            refused: refused.to_string(),
            reason: e.to_string(),
        })
}
