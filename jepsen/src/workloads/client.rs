//! What every workload's clients share: the run's shared state, recording an operation as an
//! invocation and a completion, writes under an explicit key that are asked again when their
//! outcome is unknown, the client threads' loop, the common setup (customer accounts), and
//! the end of a run (asking again after healing, then the final reads).

use super::{FinalRead, Prep, ReadResult, Setup, SetupError, Step, Workload};
use crate::db::Db;
use crate::history::{OpType, Process, Recorder};
use crate::ops::{FINAL_PROCESS, RESOLVE_PROCESS};
use ledger_client::{Client, ClientError, Consistency, Operation, Query, QueryReply};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::types::{AccountId, RequestKey};
use ledger_testkit::driver::{test_pan, test_phone};
use ledger_testkit::nodes;
use ledger_wire::api::ApiError;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest a single operation may take before it is recorded as `info` (unknown).
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest the end of a run spends asking again about unknown writes.
pub const FINISH_RESOLVE_TIME: Duration = Duration::from_secs(60);

/// Askings-again of one unknown write after healing, at most.
const FINISH_RESOLVE_ATTEMPTS: usize = 3;

/// Final reads of one node, at most (a node may still be catching up).
const FINAL_READ_ATTEMPTS: usize = 3;

/// Shared by every client thread of a run.
pub struct Run {
    pub workload: &'static dyn Workload,
    pub setup: Setup,
    pub recorder: Recorder,
    pub stop: AtomicBool,
    pub concurrency: u64,
    /// Vouchers: the last position in `setup.pools` raced for so far.
    pub current_pool: AtomicUsize,
    /// Operations per second over all threads (0: as fast as they go). Each thread waits a
    /// random time (mean: concurrency / rate) between operations, as Jepsen staggers.
    pub rate: f64,
    pub sms_paths: Vec<std::path::PathBuf>,
}

/// The completion of one client call.
pub enum Done {
    Ok(Value),
    /// Certainly not applied; the ledger's refusal (if it was one) as JSON.
    Fail(String, Option<Value>),
    Info(String),
}

/// Classifies a client error: a refusal by the ledger is a definite failure, except a
/// "request too old" (the ledger forgot the key, so the outcome is unknown); unavailability
/// is unknown for writes.
pub fn classify(e: ClientError) -> Done {
    match e {
        ClientError::Refused(LedgerError::RequestTooOld { .. }) => Done::Info(e.to_string()),
        ClientError::Refused(ref l) => Done::Fail(
            e.to_string(),
            Some(serde_json::to_value(l).expect("errors serialise")),
        ),
        ClientError::Rejected(ref a) if !a.is_retryable() => Done::Fail(e.to_string(), None),
        // The leader refused before proposing; the client returns it as `Rejected` only when
        // no earlier attempt of the call went unanswered (else `Unavailable`).
        ClientError::Rejected(ApiError::DiskFull { .. }) => Done::Fail(e.to_string(), None),
        // Refused in the TLS handshake: nothing was sent.
        ClientError::CertificateRefused { .. } => Done::Fail(e.to_string(), None),
        other => Done::Info(other.to_string()),
    }
}

/// Whether an operation changes the ledger: a read that fails or times out is `fail` (it
/// changed nothing, so it is simply left out of the checks), a write's is `info`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Read,
    Write,
}

impl Run {
    /// Records the completion; returns its type.
    fn complete(
        &self,
        process: u64,
        f: &str,
        mut value: Value,
        done: Done,
        effect: Effect,
    ) -> OpType {
        let (kind, error) = match done {
            Done::Ok(result) => {
                merge(&mut value, result);
                (OpType::Ok, None)
            }
            Done::Fail(error, refused) => {
                if let Some(r) = refused {
                    merge(&mut value, json!({ "refused": r }));
                }
                (OpType::Fail, Some(error))
            }
            Done::Info(error) if effect == Effect::Read => (OpType::Fail, Some(error)),
            Done::Info(error) => (OpType::Info, Some(error)),
        };
        self.recorder
            .record(Process::Client(process), kind, f, value, error);
        kind
    }

    /// Runs one operation: invocation, the call (bounded by `OP_TIMEOUT`), completion.
    /// Returns the completion's type, the call's result as recorded (null unless ok) and the
    /// invocation's history index.
    pub async fn op<T, Fut>(
        &self,
        process: u64,
        f: &str,
        value: Value,
        effect: Effect,
        call: Fut,
        result: impl FnOnce(T) -> Value,
    ) -> (OpType, Value, u64)
    where
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let index = self.recorder.record(
            Process::Client(process),
            OpType::Invoke,
            f,
            value.clone(),
            None,
        );
        let done = match tokio::time::timeout(OP_TIMEOUT, call).await {
            Err(_) => Done::Info(format!("no answer within {OP_TIMEOUT:?}")),
            Ok(Ok(t)) => Done::Ok(result(t)),
            Ok(Err(e)) => classify(e),
        };
        let out = match &done {
            Done::Ok(v) => v.clone(),
            _ => Value::Null,
        };
        (self.complete(process, f, value, done, effect), out, index)
    }
}

/// Adds `from`'s fields to `into` (an object), or replaces it.
pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => a.extend(b),
        (slot, other) => *slot = other,
    }
}

/// The account-opening request of card `n`.
pub fn card_request(n: u64) -> OpenAccountRequest {
    OpenAccountRequest {
        holder_name: format!("jepsen {n}"),
        card_number: Secret::new(test_pan(n)),
        card_password: Secret::new(card_password(n)),
        phone: test_phone(n),
        flags: CampaignFlags::default(),
    }
}

pub fn card_password(n: u64) -> String {
    format!("{:06}", (n * 7919) % 1_000_000)
}

/// Prepares the cluster for the workload (no faults yet): the customer accounts, funded,
/// then what the workload itself needs.
pub async fn setup(
    workload: &'static dyn Workload,
    db: &Db,
    concurrency: u64,
    time_limit: Duration,
) -> Result<Setup, SetupError> {
    let client = db.client(Duration::from_secs(3), 20);
    // The article's campaign, running from now for the run (campaigns are records).
    let campaign_ms = nodes::create_test_campaign(&client)
        .await
        .map_err(SetupError::client("create the campaign"))?;
    let card_base = 1_000 + u64::from(rand::random::<u16>()) * 1_000;
    let (count, balance) = workload.accounts(concurrency);
    let mut setup = Setup {
        card_base,
        campaign_ms,
        initial_balance_fen: balance,
        ..Setup::default()
    };
    for i in 0..count {
        let account = client
            .open_account(card_request(card_base + i))
            .await
            .map_err(SetupError::client("open account"))?;
        if balance > 0 {
            client
                .deposit(account, balance)
                .await
                .map_err(SetupError::client("deposit"))?;
        }
        setup.accounts.push(account.0);
    }
    let prep = Prep {
        client: &client,
        db,
        time_limit,
        setup: &mut setup,
    };
    workload.prepare(prep).await?;
    Ok(setup)
}

/// The per-thread state a workload keeps between operations.
#[derive(Default)]
pub struct Thread {
    /// Writes whose outcome is unknown, to ask again under their key (which the thread's
    /// client holds, so the ledger keeps the record).
    pub pending: Vec<Pending>,
    /// Operations begun by this thread (e-Pay numbers its orders with it).
    pub seq: u64,
    /// The thread's home node: reads go there first (as a terminal talks to its nearest
    /// node), and to the leader only if it will not answer. With correct nodes a follower
    /// refuses linearizable reads; with `--unsafe-local-reads` it answers from its own state.
    pub home: Option<Client>,
}

/// A linearizable read, asked of the home node first.
pub async fn read_home_first(
    thread: &Thread,
    client: &Client,
    query: Query,
) -> Result<QueryReply, ClientError> {
    if let Some(home) = &thread.home {
        if let Ok(Ok(reply)) = tokio::time::timeout(
            Duration::from_secs(1),
            home.query(query.clone(), Consistency::Linearizable),
        )
        .await
        {
            return Ok(reply);
        }
    }
    client.query(query, Consistency::Linearizable).await
}

/// A write whose outcome is unknown.
#[derive(Clone)]
pub struct Pending {
    pub key: RequestKey,
    /// History index of its invocation.
    pub invoke: u64,
    pub f: &'static str,
    pub value: Value,
    pub operation: Operation,
}

/// What a write's reply says, for the history (the checkers compare it with the model's).
fn reply_value(reply: &Reply) -> Value {
    match reply {
        Reply::Transferred {
            source_balance_fen,
            target_balance_fen,
        } => json!({"from_balance": source_balance_fen, "to_balance": target_balance_fen}),
        Reply::VoucherClaimed { remaining, .. } => json!({"remaining": remaining}),
        other => json!({"reply": other}),
    }
}

pub fn key_json(key: RequestKey) -> Value {
    json!([key.client_id, key.request_id])
}

/// A write under an explicit key (recorded in the invocation); an unknown outcome is kept
/// to be asked again.
pub async fn keyed_write(
    step: Step<'_>,
    f: &'static str,
    mut value: Value,
    command: Command,
) -> OpType {
    let key = step.client.new_key();
    merge(&mut value, json!({"key": key_json(key)}));
    let operation = Operation::Command(command);
    let (kind, _, invoke) = step
        .run
        .op(
            step.process,
            f,
            value.clone(),
            Effect::Write,
            step.client.submit_with_key(key, operation.clone()),
            |r| reply_value(&r),
        )
        .await;
    if kind == OpType::Info {
        step.thread.pending.push(Pending {
            key,
            invoke,
            f,
            value,
            operation,
        });
    }
    kind
}

/// Whether an answer to a request under a key tells what became of the key: a reply, or a
/// refusal by the ledger (which looked the key up and did not find it applied). A refusal
/// before the ledger saw the request (a full disk, a refused certificate) tells nothing
/// about earlier attempts under the key, nor does "request too old".
fn ledger_answered<T>(result: &Result<T, ClientError>) -> bool {
    match result {
        Ok(_) => true,
        Err(ClientError::Refused(LedgerError::RequestTooOld { .. })) => false,
        Err(ClientError::Refused(_)) => true,
        Err(_) => false,
    }
}

/// Asks again, under its key, for a write whose outcome is unknown. For the idempotency
/// workload this is an operation like any other (`deposit` with `retry: true`); for the
/// others a `resolve` naming the invocation it resolves. Returns the completion's type and
/// whether the ledger answered for the key (else it is still unknown, even if this asking
/// certainly failed).
pub async fn retry(run: &Run, client: &Client, process: u64, pending: &Pending) -> (OpType, bool) {
    let deposit = pending.f == "deposit";
    let (f, value) = if deposit {
        ("deposit", pending.value.clone())
    } else {
        (
            "resolve",
            json!({"of": pending.invoke, "f": pending.f, "key": key_json(pending.key)}),
        )
    };
    let result = |reply: Reply| {
        if deposit {
            json!({"reply": reply})
        } else {
            reply_value(&reply)
        }
    };
    let answered = AtomicBool::new(false);
    let call = async {
        let reply = client
            .submit_with_key(pending.key, pending.operation.clone())
            .await;
        answered.store(ledger_answered(&reply), Ordering::Relaxed);
        reply
    };
    let (kind, _, _) = run.op(process, f, value, Effect::Write, call, result).await;
    (kind, answered.load(Ordering::Relaxed))
}

/// Asks again about the thread's oldest unknown write; it stays pending unless the ledger
/// answered for its key.
pub async fn retry_oldest(step: Step<'_>) -> OpType {
    let pending = step.thread.pending.remove(0);
    let (kind, answered) = retry(step.run, step.client, step.process, &pending).await;
    if !answered {
        step.thread.pending.push(pending);
    }
    kind
}

/// The account range of the workload's customers.
pub fn account_range(setup: &Setup) -> Query {
    let first = *setup.accounts.first().expect("accounts");
    let last = *setup.accounts.last().expect("accounts");
    Query::AccountRange {
        first: AccountId(first),
        count: (last - first + 1) as u32,
    }
}

/// A read of the workload's accounts: `{"balances": {id: fen}, "applied_index": n}`.
pub fn balances(reply: QueryReply, setup: &Setup) -> Value {
    let mut map = serde_json::Map::new();
    let mut index = Value::Null;
    if let QueryReply::Accounts {
        applied_index,
        accounts,
    } = reply
    {
        index = json!(applied_index);
        for v in accounts {
            if setup.accounts.contains(&v.account.0) {
                map.insert(v.account.0.to_string(), json!(v.balance_fen));
            }
        }
    }
    json!({"balances": map, "applied_index": index})
}

/// The final read of the bank and idempotency workloads: their accounts' balances.
pub async fn read_balances(read: FinalRead<'_>) -> ReadResult {
    let setup = &read.run.setup;
    let reply = read
        .client
        .query(account_range(setup), read.consistency)
        .await?;
    Ok(balances(reply, setup))
}

/// One operation of client thread `index` as process `process`; returns its type. Unknown
/// writes are asked about again now and then during the run, while the ledger surely still
/// holds their records (its window per client is 1,024 requests).
async fn step(step: Step<'_>) -> OpType {
    let workload = step.run.workload;
    if workload.resolves_during_run() && !step.thread.pending.is_empty() && step.rng.gen_bool(0.2) {
        return retry_oldest(step).await;
    }
    workload.step(step).await
}

/// A client thread: operations until the run stops. An `info` completion crashes the
/// process (as in Jepsen): the thread goes on as process `process + concurrency`.
pub async fn thread_loop(
    run: Arc<Run>,
    client: Client,
    home: Client,
    index: u64,
    seed: u64,
) -> (Client, Thread) {
    use rand::SeedableRng;
    let mut rng = StdRng::seed_from_u64(seed ^ (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut thread = Thread {
        home: Some(home),
        ..Thread::default()
    };
    let mut process = index;
    while !run.stop.load(Ordering::Relaxed) {
        if run.rate > 0.0 {
            let mean_s = run.concurrency as f64 / run.rate;
            tokio::time::sleep(Duration::from_secs_f64(rng.gen_range(0.0..2.0 * mean_s))).await;
        }
        let this = Step {
            run: &run,
            client: &client,
            thread: &mut thread,
            rng: &mut rng,
            index,
            process,
        };
        if step(this).await == OpType::Info {
            process += run.concurrency;
        }
    }
    (client, thread)
}

/// After healing: asks again about unknown writes under their keys, then reads the final
/// state through the cluster (linearizable, process `FINAL_PROCESS`) and from every node
/// (local reads, `FINAL_PROCESS + id`).
pub async fn finish(run: &Run, db: &Db, threads: Vec<(Client, Thread)>) {
    // Each asking is a process of its own (from RESOLVE_PROCESS up), a new one after every
    // unknown answer, as in Jepsen.
    let deadline = std::time::Instant::now() + FINISH_RESOLVE_TIME;
    let mut process = RESOLVE_PROCESS;
    for (client, thread) in &threads {
        for pending in &thread.pending {
            for _ in 0..FINISH_RESOLVE_ATTEMPTS {
                if std::time::Instant::now() > deadline {
                    break;
                }
                let (_, answered) = retry(run, client, process, pending).await;
                process += 1;
                if answered {
                    break;
                }
            }
        }
    }
    let client = db.client(Duration::from_secs(3), 10);
    run.workload.quiesce(run, &client).await;
    // What the resolves applied reaches every replica before the replicas are read.
    let _ = db.wait_converged(Duration::from_secs(30)).await;
    final_read(run, &client, FINAL_PROCESS, Consistency::Linearizable).await;
    for id in db.ids() {
        let client = db.node_client(id);
        for _ in 0..FINAL_READ_ATTEMPTS {
            if final_read(run, &client, FINAL_PROCESS + id, Consistency::Stale).await == OpType::Ok
            {
                break;
            }
        }
    }
}

async fn final_read(run: &Run, client: &Client, process: u64, consistency: Consistency) -> OpType {
    let node = process - FINAL_PROCESS;
    let tag = json!({"node": if node == 0 { Value::Null } else { json!(node) }});
    let read = run.workload.final_read(FinalRead {
        run,
        client,
        consistency,
    });
    run.op(process, "final-read", tag, Effect::Read, read, |v| v)
        .await
        .0
}
