//! A linearizability checker in the manner of Wing and Gong, with Lowe's memoization (as in
//! Porcupine): a depth-first search for an order of the operations that respects real time
//! (an operation that completed before another began comes first) and that the sequential
//! model accepts. Operations whose outcome is unknown (`info`) stay open to the end of the
//! history: they may take effect at any point after their invocation, or not at all.

use crate::history::OpType;
use ledger_testkit::driver::splitmix64;
use std::collections::HashSet;

/// One operation, as the search sees it: `call` is what the model needs of it (what was
/// asked and what was seen).
#[derive(Clone, Debug)]
pub struct LinOp<C> {
    /// History index of the invocation.
    pub index: u64,
    pub call: C,
    pub outcome: OpType,
    /// Invocation and completion times (ns); None: never known to complete.
    pub call_ns: u64,
    pub return_ns: Option<u64>,
    /// Wall-clock ms of the invocation (the model's clock).
    pub wall_ms: u64,
}

/// A sequential model. `step` returns the state after `op` if the model can produce what the
/// history says `op` observed, else None. States with equal fingerprints must behave alike.
pub trait Model: Clone {
    type Call;
    fn step(&self, op: &LinOp<Self::Call>) -> Option<Self>;
    fn fingerprint(&self) -> u64;
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the history. `stuck` is the operation whose completion could not be
    /// preceded by its effect at the deepest point the search reached; `candidates` the
    /// operations it could have placed there; `linearized` how many it had placed.
    NotLinearizable {
        stuck: u64,
        candidates: Vec<u64>,
        linearized: usize,
    },
    /// The search gave up (its budget of steps ran out).
    Unknown(String),
}

const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call: its return entry.
    partner: usize,
}

/// Checks `ops` against `init`, giving up after `max_steps` model steps or `max_time`.
pub fn check<M: Model>(
    init: M,
    ops: &[LinOp<M::Call>],
    max_steps: u64,
    max_time: std::time::Duration,
) -> Verdict {
    let started = std::time::Instant::now();
    let n = ops.len();
    let entries = entries(ops);
    let mut links = Links::new(entries.len());
    let head = links.head;
    let zobrist = zobrist(n);
    let mut linearized: u128 = 0;
    let mut cache: HashSet<(u128, u64)> = HashSet::new();
    let mut stack: Vec<(usize, M)> = Vec::new();
    let mut state = init;
    let mut open_finite = ops.iter().filter(|o| o.return_ns.is_some()).count();
    let mut steps = 0u64;
    let mut deepest = (0usize, NONE, Vec::<u64>::new());
    let mut tried: Vec<u64> = Vec::new();
    let mut entry = links.next[head];
    loop {
        if open_finite == 0 {
            return Verdict::Linearizable;
        }
        if entry != NONE && entries[entry].is_call {
            let op = entries[entry].op;
            steps += 1;
            if steps > max_steps || (steps.is_multiple_of(4096) && started.elapsed() > max_time) {
                return Verdict::Unknown(format!(
                    "search budget ({max_steps} steps or {max_time:?}) exhausted after {steps} steps, having linearized up to {} of {n} operations",
                    deepest.0
                ));
            }
            if let Some(after) = state.step(&ops[op]) {
                linearized ^= zobrist[op];
                if cache.insert((linearized, after.fingerprint())) {
                    stack.push((entry, std::mem::replace(&mut state, after)));
                    let partner = entries[entry].partner;
                    links.lift(entry);
                    links.lift(partner);
                    if ops[op].return_ns.is_some() {
                        open_finite -= 1;
                    }
                    tried.clear();
                    entry = links.next[head];
                    continue;
                }
                linearized ^= zobrist[op];
            }
            tried.push(ops[op].index);
            entry = links.next[entry];
            continue;
        }
        // A return (or the end): the operation returning here was never placed. Backtrack.
        if stack.len() >= deepest.0 && entry != NONE {
            deepest = (stack.len(), entries[entry].op, tried.clone());
        }
        let Some((call, previous)) = stack.pop() else {
            let (depth, op, candidates) = deepest;
            return Verdict::NotLinearizable {
                stuck: if op == NONE { 0 } else { ops[op].index },
                candidates,
                linearized: depth,
            };
        };
        let op = entries[call].op;
        linearized ^= zobrist[op];
        state = previous;
        let partner = entries[call].partner;
        links.unlift(partner);
        links.unlift(call);
        if ops[op].return_ns.is_some() {
            open_finite += 1;
        }
        tried.clear();
        entry = links.next[call];
    }
}

/// The history as calls and returns in time order, each call knowing its return. Calls sort
/// before returns at the same instant: such operations count as concurrent.
fn entries<C>(ops: &[LinOp<C>]) -> Vec<Entry> {
    let n = ops.len();
    let mut raw: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        raw.push((op.call_ns, true, i));
        raw.push((op.return_ns.unwrap_or(u64::MAX), false, i));
    }
    raw.sort_by_key(|(t, is_call, i)| (*t, !*is_call, *i));
    let mut entries: Vec<Entry> = raw
        .iter()
        .map(|(_, is_call, op)| Entry {
            op: *op,
            is_call: *is_call,
            partner: NONE,
        })
        .collect();
    let mut return_of = vec![NONE; n];
    for (e, entry) in entries.iter().enumerate() {
        if !entry.is_call {
            return_of[entry.op] = e;
        }
    }
    for entry in &mut entries {
        if entry.is_call {
            entry.partner = return_of[entry.op];
        }
    }
    entries
}

/// A doubly linked list over the entries, with a head sentinel at index `len`: placing an
/// operation lifts its call and return out, backtracking puts them back.
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl Links {
    fn new(len: usize) -> Links {
        let head = len;
        let mut next: Vec<usize> = (1..=len)
            .map(|i| if i == head { NONE } else { i })
            .collect();
        next.push(if len == 0 { NONE } else { 0 });
        let mut prev: Vec<usize> = (0..len)
            .map(|i| if i == 0 { head } else { i - 1 })
            .collect();
        prev.push(NONE);
        Links { next, prev, head }
    }

    fn lift(&mut self, e: usize) {
        let (p, nx) = (self.prev[e], self.next[e]);
        self.next[p] = nx;
        if nx != NONE {
            self.prev[nx] = p;
        }
    }

    fn unlift(&mut self, e: usize) {
        let (p, nx) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if nx != NONE {
            self.prev[nx] = e;
        }
    }
}

/// The set of operations placed so far is a 128-bit Zobrist hash (a random number per
/// operation, XORed in and out): memory per cache entry stays constant however long the
/// history. Two different sets collide with probability 2^-128.
fn zobrist(n: usize) -> Vec<u128> {
    let mut seed = 0x5EED_u64;
    (0..n)
        .map(|_| (u128::from(splitmix64(&mut seed)) << 64) | u128::from(splitmix64(&mut seed)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: std::time::Duration = std::time::Duration::from_secs(1);

    /// A register: `write` sets it, `read` observes it.
    #[derive(Clone)]
    struct Register(i64);

    #[derive(Clone, Debug)]
    enum Call {
        Write(i64),
        /// What the read saw, if it completed.
        Read(Option<i64>),
    }

    impl Model for Register {
        type Call = Call;

        fn step(&self, op: &LinOp<Call>) -> Option<Self> {
            match op.call {
                Call::Write(v) => Some(Register(v)),
                Call::Read(Some(seen)) if seen == self.0 => Some(self.clone()),
                Call::Read(_) => None,
            }
        }
        fn fingerprint(&self) -> u64 {
            self.0 as u64
        }
    }

    fn op(
        index: u64,
        f: &str,
        value: i64,
        result: Option<i64>,
        call: u64,
        ret: Option<u64>,
    ) -> LinOp<Call> {
        LinOp {
            index,
            call: if f == "write" {
                Call::Write(value)
            } else {
                Call::Read(result)
            },
            outcome: if ret.is_some() {
                OpType::Ok
            } else {
                OpType::Info
            },
            call_ns: call,
            return_ns: ret,
            wall_ms: 0,
        }
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        let ops = vec![
            op(0, "write", 1, None, 0, Some(10)),
            op(1, "read", 0, Some(1), 5, Some(6)),
            op(2, "read", 0, Some(1), 11, Some(12)),
        ];
        assert_eq!(
            check(Register(0), &ops, 1_000, SECOND),
            Verdict::Linearizable
        );
        // Read 0 while the write is in flight is fine too.
        let ops = vec![
            op(0, "write", 1, None, 0, Some(10)),
            op(1, "read", 0, Some(0), 5, Some(6)),
        ];
        assert_eq!(
            check(Register(0), &ops, 1_000, SECOND),
            Verdict::Linearizable
        );
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let ops = vec![
            op(0, "write", 1, None, 0, Some(10)),
            op(2, "read", 0, Some(0), 20, Some(30)),
        ];
        match check(Register(0), &ops, 1_000, SECOND) {
            Verdict::NotLinearizable { stuck, .. } => assert_eq!(stuck, 2),
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        // The write never completed: reading 1 later, or 0, are both explained...
        for seen in [0, 1] {
            let ops = vec![
                op(0, "write", 1, None, 0, None),
                op(2, "read", 0, Some(seen), 20, Some(30)),
            ];
            assert_eq!(
                check(Register(0), &ops, 1_000, SECOND),
                Verdict::Linearizable,
                "read {seen}"
            );
        }
        // ...but not reading 1 and then 0 (it cannot be undone).
        let ops = vec![
            op(0, "write", 1, None, 0, None),
            op(2, "read", 0, Some(1), 20, Some(30)),
            op(4, "read", 0, Some(0), 40, Some(50)),
        ];
        assert!(matches!(
            check(Register(0), &ops, 1_000, SECOND),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn the_budget_makes_the_answer_unknown() {
        let ops: Vec<LinOp<Call>> = (0..40)
            .map(|i| op(i, "write", i as i64, None, i, Some(1_000)))
            .chain([op(99, "read", 0, Some(-1), 2_000, Some(2_001))])
            .collect();
        assert!(matches!(
            check(Register(0), &ops, 500, SECOND),
            Verdict::Unknown(_)
        ));
    }
}
