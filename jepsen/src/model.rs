//! The ledger core as the sequential model of the linearizability search: every operation
//! the clients saw is replayed as a command on an in-memory ledger prepared like the cluster
//! was. The workloads say what each of their operations means to it (`Workload::model_step`);
//! this file holds what they share.

use crate::history::OpType;
use crate::lin::{LinOp, Model};
use crate::ops::{Answer, Op, PoolSeen};
use crate::workloads::vouchers::{VOUCHER_FACE_FEN, VOUCHER_POOL_NAME};
use crate::workloads::{Setup, Workload};
use ledger_core::command::{Command, Context, Envelope};
use ledger_core::config::LedgerConfig;
use ledger_core::ledger::Ledger;
use ledger_core::outcome::{LedgerError, Outcome, Reply};
use ledger_core::state::{Key, Store, Value, WriteSet};
use ledger_core::types::{AccountId, Eligibility, PoolId, RequestKey};
use ledger_testkit::driver::Driver;
use ledger_testkit::nodes;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The model's store: the ledger's records in a persistent ordered map, so that the states
/// on the search's stack (one per operation placed) share them: a clone costs O(1) and a
/// command's writes O(log n) each. With a `MemStore` every placed operation copied every
/// journal row before it, and a 10,000-operation bank history outgrew memory (18 GiB).
#[derive(Clone, Default)]
pub struct ModelStore(imbl::OrdMap<Key, Value>);

impl ModelStore {
    /// The records of `store`, copied once.
    fn copy_of(store: &impl Store) -> ModelStore {
        let mut records = imbl::OrdMap::new();
        store.scan(&mut |key, value| {
            records.insert(*key, value.clone());
        });
        ModelStore(records)
    }
}

impl Store for ModelStore {
    fn get(&self, key: &Key) -> Option<Value> {
        self.0.get(key).cloned()
    }

    fn range(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)> {
        if from >= to {
            return Vec::new();
        }
        self.0
            .range(*from..*to)
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn range_rev(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)> {
        if from >= to {
            return Vec::new();
        }
        self.0
            .range(*from..*to)
            .rev()
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn write(&mut self, writes: WriteSet) {
        for (key, value) in writes {
            match value {
                Some(value) => {
                    self.0.insert(key, value);
                }
                None => {
                    self.0.remove(&key);
                }
            }
        }
    }

    fn scan(&self, visit: &mut dyn FnMut(&Key, &Value)) {
        for (key, value) in self.0.iter() {
            visit(key, value);
        }
    }
}

/// What the search needs of one operation: what was asked, and what was seen.
#[derive(Clone, Debug)]
pub struct Observed {
    pub op: Op,
    /// The answer, for an operation that took effect (`ok`, or an unknown write that asking
    /// again showed applied).
    pub answer: Option<Answer>,
    /// The ledger's refusal, for a `fail`.
    pub refused: Option<LedgerError>,
}

/// The model could not be prepared like the cluster was.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the model opened account {model} where the cluster opened {cluster}")]
    Account { model: u64, cluster: u64 },
    #[error("the model created {model}, the cluster pool {cluster}")]
    Pool { model: String, cluster: u64 },
    #[error("the model could not set up {0}")]
    Setup(String),
}

#[derive(Clone)]
pub struct LedgerModel {
    ledger: Ledger<ModelStore>,
    depth: u64,
    /// XOR of a hash of every (pool, account) claimed: the vouchers' whole state, cheaply.
    claims: u64,
    setup: Arc<Setup>,
    workload: &'static dyn Workload,
}

/// The model's idempotency client: each step acknowledges everything before it, so the
/// model's state holds no growing history of records.
const MODEL_CLIENT: u64 = 42;

impl LedgerModel {
    pub fn new(setup: &Setup, workload: &'static dyn Workload) -> Result<LedgerModel, ModelError> {
        // The cluster's campaign, created as the harness created it.
        let mut driver = Driver::without_campaign(LedgerConfig::default());
        driver.now_ms = setup.campaign_ms.0;
        driver
            .submit(nodes::test_campaign(setup.campaign_ms.1))
            .map_err(|e| ModelError::Setup(format!("the campaign: {e}")))?;
        driver.advance(1);
        for (i, account) in setup.accounts.iter().enumerate() {
            let card = driver.funded_card(setup.card_base + i as u64, setup.initial_balance_fen);
            if card.account.0 != *account {
                return Err(ModelError::Account {
                    model: card.account.0,
                    cluster: *account,
                });
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
                return Err(ModelError::Pool {
                    model: format!("{outcome:?}"),
                    cluster: *pool,
                });
            }
        }
        let ledger = Ledger::open(ModelStore::copy_of(driver.ledger.store()))
            .ok_or_else(|| ModelError::Setup("the ledger's copy has no genesis".into()))?;
        Ok(LedgerModel {
            ledger,
            depth: 0,
            claims: 0,
            setup: Arc::new(setup.clone()),
            workload,
        })
    }

    /// Applies `command` as the next log entry, at the operation's wall-clock time.
    pub fn apply(&mut self, op: &LinOp<Observed>, command: Command) -> Outcome {
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
    pub fn agrees(
        op: &LinOp<Observed>,
        outcome: &Outcome,
        ok: impl Fn(&Reply, &Answer) -> bool,
    ) -> bool {
        match (op.outcome, outcome) {
            (OpType::Info, _) => true,
            (OpType::Ok, Ok(reply)) => op.call.answer.as_ref().is_some_and(|a| ok(reply, a)),
            (OpType::Fail, Err(e)) => op.call.refused.as_ref() == Some(e),
            _ => false,
        }
    }

    /// Whether every workload account holds what `seen` says.
    pub fn balances_are(&self, seen: &BTreeMap<u64, i64>) -> bool {
        self.setup
            .accounts
            .iter()
            .all(|acc| seen.get(acc).copied() == self.ledger.balance_fen(AccountId(*acc)))
    }

    /// Records a granted claim in the state's fingerprint.
    pub fn claimed(&mut self, pool: PoolId, account: AccountId) {
        self.claims ^= claim_hash(pool, account);
    }

    /// Whether the pool's count is `granted`.
    pub fn pool_granted_is(&self, pool: u64, granted: Option<u64>) -> bool {
        granted == self.ledger.pool(PoolId(pool)).map(|p| p.granted)
    }

    /// Whether the pool's count and the workload accounts holding its vouchers are `seen`.
    pub fn pool_is(&self, pool: u64, seen: &PoolSeen) -> bool {
        let held: Vec<u64> = self
            .setup
            .accounts
            .iter()
            .copied()
            .filter(|acc| self.ledger.voucher(AccountId(*acc), PoolId(pool)).is_some())
            .collect();
        self.pool_granted_is(pool, seen.granted) && seen.holders == held
    }
}

impl Model for LedgerModel {
    type Call = Observed;

    fn step(&self, op: &LinOp<Observed>) -> Option<Self> {
        let mut next = self.clone();
        self.workload.model_step(&mut next, op).then_some(next)
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
