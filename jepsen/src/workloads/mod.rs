//! The workloads, one file each, in the shape of Jepsen's `jepsen.tests.bank`: a workload is
//! its setup, its client operations (the generator), its final read after healing, and its
//! checkers (with the ledger core as the model where the history is checked for
//! linearizability), together behind `Workload`. Adding a workload adds a file and a `Kind`.
//!
//! What every workload shares (client threads, recording, asking unknown writes again, the
//! final reads' schedule) is in `client.rs`.

pub mod bank;
pub mod client;
pub mod epay;
pub mod idempotency;
pub mod vouchers;

use crate::checker::Finding;
use crate::db::Db;
use crate::history::OpType;
use crate::lin::LinOp;
use crate::model::{LedgerModel, Observed};
use crate::ops::Record;
use crate::runner::TestInfo;
use client::{Run, Thread};
use ledger_client::{Client, ClientError, Consistency};
use ledger_wire::principal::Principal;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The workloads `--workload` accepts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Transfers between accounts and reads of every balance: the total stays constant, no
    /// balance goes negative, and the history is linearizable against the ledger core.
    Bank,
    /// Many clients race to claim from a small voucher pool (a fresh one every 2 seconds):
    /// never over capacity, never two vouchers for one account, every acknowledged claim
    /// durable, linearizable.
    Vouchers,
    /// Two-step e-Pay payments confirmed with the OTP from the SMS outbox, wrong codes among
    /// them: a wrong code never settles, a payment settles once, money is conserved.
    Epay,
    /// Deposits whose outcome was unknown are retried under the same idempotency key: none
    /// is applied twice and every retry gets the original answer.
    Idempotency,
}

impl Kind {
    /// Its name on the command line and in test names (`bank`).
    pub fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// The workload of this kind.
    pub fn workload(self) -> &'static dyn Workload {
        match self {
            Kind::Bank => &bank::Bank,
            Kind::Vouchers => &vouchers::Vouchers,
            Kind::Epay => &epay::Epay,
            Kind::Idempotency => &idempotency::Idempotency,
        }
    }
}

/// A future a workload returns (boxed, so that `Workload` can be a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the workload's setup created: everything a checker needs besides the history.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Setup {
    /// The workload's customer accounts, in opening order.
    pub accounts: Vec<u64>,
    /// Each customer account's balance after setup.
    pub initial_balance_fen: u64,
    /// The voucher pools (vouchers), raced for one after another, and each one's capacity.
    pub pools: Vec<u64>,
    pub pool_capacity: u64,
    pub pool_valid_ms: (u64, u64),
    /// The merchant and its settlement account (epay).
    pub merchant: Option<u64>,
    pub merchant_account: Option<u64>,
    /// Card numbers are `test_pan(card_base + i)` for account i (the model replays them).
    pub card_base: u64,
    /// The cluster's campaign window (ms since the Unix epoch).
    pub campaign_ms: (u64, u64),
}

/// Why the cluster could not be prepared for a workload.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("setup: {what}: {error}")]
    Client { what: String, error: ClientError },
    #[error("setup: card {card} enrols account {enrolled}, expected {expected}")]
    WrongAccount {
        card: u64,
        enrolled: u64,
        expected: u64,
    },
    #[error("setup: no SMS for challenge {challenge}")]
    NoSms { challenge: u64 },
}

impl SetupError {
    /// A failed call of the setup, saying which.
    pub fn client(what: impl Into<String>) -> impl FnOnce(ClientError) -> SetupError {
        let what = what.into();
        move |error| SetupError::Client { what, error }
    }
}

/// What a workload's own setup step gets: the accounts are open (and funded) by then.
pub struct Prep<'a> {
    pub client: &'a Client,
    pub db: &'a Db,
    pub time_limit: Duration,
    pub setup: &'a mut Setup,
}

/// A final read's context: through the cluster, or of one node (`Consistency::Stale`).
pub struct FinalRead<'a> {
    pub run: &'a Run,
    pub client: &'a Client,
    pub consistency: Consistency,
}

/// What a read recorded, or why it failed.
pub type ReadResult = Result<Value, ClientError>;

/// One client operation's context.
pub struct Step<'a> {
    pub run: &'a Run,
    pub client: &'a Client,
    pub thread: &'a mut Thread,
    pub rng: &'a mut StdRng,
    /// The client thread's number (0..concurrency).
    pub index: u64,
    /// The process the operation is recorded under.
    pub process: u64,
}

/// A workload: its setup, its operations, its final read and its checkers.
pub trait Workload: Sync {
    /// Customer accounts to open at setup, and each one's starting balance.
    fn accounts(&self, concurrency: u64) -> (u64, u64);

    /// What the workload creates once the accounts are open (pools, a merchant...).
    fn prepare<'a>(&'a self, _prep: Prep<'a>) -> BoxFuture<'a, Result<(), SetupError>> {
        Box::pin(async { Ok(()) })
    }

    /// Who the client threads are to the cluster (what their certificates name); `None`
    /// for the harness's operator. Each thread's writes, and the re-asking of its unknown
    /// ones, go through a client with this identity.
    fn thread_principal(&self, _setup: &Setup) -> Option<Principal> {
        None
    }

    /// Whether the client threads ask again about their unknown writes now and then during
    /// the run (as a `resolve`), rather than as operations of the workload's own.
    fn resolves_during_run(&self) -> bool {
        false
    }

    /// One client operation; returns how it ended.
    fn step<'a>(&'a self, step: Step<'a>) -> BoxFuture<'a, OpType>;

    /// Waits, after healing and before the final reads, until what the cluster does by
    /// itself has been done (e-Pay: the leader expires the payments nobody finished), so
    /// that the reads through the cluster and of each node see the same state.
    fn quiesce<'a>(&'a self, _run: &'a Run, _client: &'a Client) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// The workload's state, read after healing (through the cluster, and from each node).
    fn final_read<'a>(&'a self, read: FinalRead<'a>) -> BoxFuture<'a, ReadResult>;

    /// The workload's checkers (the common ones, stats and durability, run for all).
    fn checkers(&self, test: &TestInfo, history: &[Record<'_>]) -> Vec<(&'static str, Finding)>;

    /// The ledger core's step for one of the workload's operations in the linearizability
    /// search: whether the model, in `model`'s state, can produce what the operation saw
    /// (`model` is advanced past it).
    fn model_step(&self, _model: &mut LedgerModel, _op: &LinOp<Observed>) -> bool {
        true
    }
}
