//! The workloads: what the client processes do, how the cluster is prepared for them, and
//! the final reads after the faults are healed. Every operation is recorded as an invocation
//! and a completion; the checkers (`checker.rs`) read only the history and `test.json`.

use crate::db::{now_ms, Db};
use crate::history::{OpType, Process, Recorder};
use ledger_client::{Client, ClientError, Consistency, Query, QueryReply};
use ledger_core::command::CampaignFlags;
use ledger_core::driver::{test_pan, test_phone};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::outcome::LedgerError;
use ledger_core::types::{
    AccountId, Eligibility, MerchantKind, Payee, PaymentId, PoolId, RequestKey,
};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The workloads `--workload` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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

/// Longest a single operation may take before it is recorded as `info` (unknown).
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

/// Process numbers from here on are the final reads after healing (one per node, and one
/// for the cluster), not client threads.
pub const FINAL_PROCESS: u64 = 1_000_000;

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

/// Shared by every client thread of a run.
pub struct Run {
    pub kind: Kind,
    pub setup: Setup,
    pub recorder: Recorder,
    pub stop: AtomicBool,
    pub concurrency: u64,
    /// Vouchers: the last position in `setup.pools` raced for so far.
    pub current_pool: std::sync::atomic::AtomicUsize,
    /// Operations per second over all threads (0: as fast as they go). Each thread waits a
    /// random time (mean: concurrency / rate) between operations, as Jepsen staggers.
    pub rate: f64,
    pub sms_paths: Vec<std::path::PathBuf>,
}

/// The completion of one client call.
enum Done {
    Ok(Value),
    /// Certainly not applied; the ledger's refusal (if it was one) as JSON.
    Fail(String, Option<Value>),
    Info(String),
}

/// Classifies a client error: a refusal by the ledger is a definite failure, except a
/// "request too old" (the ledger forgot the key, so the outcome is unknown); unavailability
/// is unknown for writes.
fn classify(e: ClientError) -> Done {
    match e {
        ClientError::Refused(LedgerError::RequestTooOld { .. }) => Done::Info(e.to_string()),
        ClientError::Refused(ref l) => Done::Fail(
            e.to_string(),
            Some(serde_json::to_value(l).expect("errors serialise")),
        ),
        ClientError::Rejected(ref a) if !a.is_retryable() => Done::Fail(e.to_string(), None),
        other => Done::Info(other.to_string()),
    }
}

impl Run {
    fn invoke(&self, process: u64, f: &str, value: &Value) -> u64 {
        self.recorder.record(
            Process::Client(process),
            OpType::Invoke,
            f,
            value.clone(),
            None,
        )
    }

    /// Records the completion; returns its type. Reads that fail or time out are `fail`
    /// (a read changes nothing, so it is simply left out of the checks).
    fn complete(
        &self,
        process: u64,
        f: &str,
        mut value: Value,
        done: Done,
        is_read: bool,
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
            Done::Info(error) if is_read => (OpType::Fail, Some(error)),
            Done::Info(error) => (OpType::Info, Some(error)),
        };
        self.recorder
            .record(Process::Client(process), kind, f, value, error);
        kind
    }

    /// Runs one operation: invocation, the call (bounded by `OP_TIMEOUT`), completion.
    async fn op<T, Fut>(
        &self,
        process: u64,
        f: &str,
        value: Value,
        is_read: bool,
        call: Fut,
        result: impl FnOnce(T) -> Value,
    ) -> (OpType, Value, u64)
    where
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let index = self.invoke(process, f, &value);
        let done = match tokio::time::timeout(OP_TIMEOUT, call).await {
            Err(_) => Done::Info(format!("no answer within {OP_TIMEOUT:?}")),
            Ok(Ok(t)) => Done::Ok(result(t)),
            Ok(Err(e)) => classify(e),
        };
        let out = match &done {
            Done::Ok(v) => v.clone(),
            _ => Value::Null,
        };
        (self.complete(process, f, value, done, is_read), out, index)
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => a.extend(b),
        (slot, other) => *slot = other,
    }
}

fn card_request(n: u64) -> OpenAccountRequest {
    OpenAccountRequest {
        holder_name: format!("jepsen {n}"),
        card_number: Secret::new(test_pan(n)),
        card_password: Secret::new(card_password(n)),
        phone: test_phone(n),
        flags: CampaignFlags::default(),
    }
}

fn card_password(n: u64) -> String {
    format!("{:06}", (n * 7919) % 1_000_000)
}

/// Bank: accounts and their starting balance.
pub const BANK_ACCOUNTS: u64 = 8;
pub const BANK_INITIAL_FEN: u64 = 100_000;
/// Largest transfer, so that some are refused for insufficient funds.
pub const BANK_MAX_TRANSFER_FEN: u64 = 40_000;
/// Vouchers: a new race (a fresh pool) every this many seconds; pools enough for the run
/// are created at setup, at most `VOUCHER_MAX_POOLS` (later rounds stay on the last pool).
pub const VOUCHER_ROUND_S: u64 = 2;
pub const VOUCHER_MAX_POOLS: u64 = 512;
pub const VOUCHER_POOL_NAME: &str = "jepsen race";
pub const VOUCHER_FACE_FEN: u64 = 500;
/// Idempotency: accounts deposited to.
pub const IDEMPOTENCY_ACCOUNTS: u64 = 4;
/// e-Pay: customers per client thread, and their starting balance.
pub const EPAY_CUSTOMERS_PER_THREAD: u64 = 3;
pub const EPAY_INITIAL_FEN: u64 = 500_000;

/// Prepares the cluster for the workload (no faults yet).
pub async fn setup(
    kind: Kind,
    db: &Db,
    concurrency: u64,
    time_limit: Duration,
    campaign_ms: (u64, u64),
) -> Result<Setup, String> {
    let client = db.client(Duration::from_secs(3), 20);
    let e = |what: &str, err: ClientError| format!("setup: {what}: {err}");
    let card_base = 1_000 + u64::from(rand::random::<u16>()) * 1_000;
    let mut setup = Setup {
        card_base,
        campaign_ms,
        ..Setup::default()
    };
    let (count, balance) = match kind {
        Kind::Bank => (BANK_ACCOUNTS, BANK_INITIAL_FEN),
        Kind::Vouchers => ((concurrency * 3).max(12), 0),
        Kind::Idempotency => (IDEMPOTENCY_ACCOUNTS, 0),
        Kind::Epay => (concurrency * EPAY_CUSTOMERS_PER_THREAD, EPAY_INITIAL_FEN),
    };
    setup.initial_balance_fen = balance;
    for i in 0..count {
        let account = client
            .open_account(card_request(card_base + i))
            .await
            .map_err(|err| e("open account", err))?;
        if balance > 0 {
            client
                .deposit(account, balance)
                .await
                .map_err(|err| e("deposit", err))?;
        }
        setup.accounts.push(account.0);
    }
    match kind {
        Kind::Bank | Kind::Idempotency => {}
        Kind::Vouchers => {
            let capacity = (count / 4).max(3);
            let valid = (now_ms() - 3_600_000, now_ms() + 86_400_000);
            let rounds = (time_limit.as_secs() / VOUCHER_ROUND_S + 2).min(VOUCHER_MAX_POOLS);
            for _ in 0..rounds {
                let pool = client
                    .create_pool(
                        VOUCHER_POOL_NAME,
                        VOUCHER_FACE_FEN,
                        capacity,
                        Eligibility::Anyone,
                        valid.0,
                        valid.1,
                    )
                    .await
                    .map_err(|err| e("create pool", err))?;
                setup.pools.push(pool.0);
            }
            setup.pool_capacity = capacity;
            setup.pool_valid_ms = valid;
        }
        Kind::Epay => {
            let n = card_base + count;
            let account = client
                .open_account(card_request(n))
                .await
                .map_err(|err| e("open merchant account", err))?;
            // An online merchant: it earns no campaign reward, so the customers and the
            // merchant together hold exactly what was deposited (the e-Pay checker's sum).
            let merchant = client
                .register_merchant(
                    MerchantKind::Online,
                    "jepsen shop",
                    account,
                    &test_phone(n),
                    1,
                )
                .await
                .map_err(|err| e("register merchant", err))?;
            setup.merchant = Some(merchant.0);
            setup.merchant_account = Some(account.0);
            for (i, a) in setup.accounts.iter().enumerate() {
                enrol(&client, db, AccountId(*a), card_base + i as u64).await?;
            }
        }
    }
    Ok(setup)
}

async fn enrol(client: &Client, db: &Db, account: AccountId, n: u64) -> Result<(), String> {
    let e = |what: &str, err: ClientError| {
        format!("setup: e-Pay enrolment of {account}: {what}: {err}")
    };
    let started = client
        .epay_begin(Secret::new(test_pan(n)), &test_phone(n))
        .await
        .map_err(|err| e("begin", err))?;
    if started != account {
        return Err(format!(
            "setup: card {n} enrols account {started}, expected {account}"
        ));
    }
    client
        .epay_choose_alias(
            account,
            Secret::new(card_password(n)),
            &format!("jepsen{n}"),
        )
        .await
        .map_err(|err| e("alias", err))?;
    let challenge = client
        .epay_confirm(account)
        .await
        .map_err(|err| e("confirm", err))?;
    let code = crate::db::wait_for_code(
        &db.outboxes(),
        challenge.challenge.0,
        Duration::from_secs(20),
    )
    .await
    .ok_or_else(|| format!("setup: no SMS for challenge {}", challenge.challenge.0))?;
    client
        .epay_activate(account, Secret::new(code))
        .await
        .map_err(|err| e("activate", err))
}

/// The per-thread state a workload keeps between operations.
#[derive(Default)]
pub struct Thread {
    /// Writes whose outcome is unknown, to ask again under their key (which the thread's
    /// client holds, so the ledger keeps the record).
    pending: Vec<Pending>,
    seq: u64,
    /// The thread's home node: reads go there first (as a terminal talks to its nearest
    /// node), and to the leader only if it will not answer. With correct nodes a follower
    /// refuses linearizable reads; with `--unsafe-local-reads` it answers from its own state.
    home: Option<Client>,
}

/// A linearizable read, asked of the home node first.
async fn read_home_first(
    state: &Thread,
    client: &Client,
    query: Query,
) -> Result<QueryReply, ClientError> {
    if let Some(home) = &state.home {
        if let Ok(Ok(reply)) = tokio::time::timeout(
            Duration::from_secs(1),
            home.query(query, Consistency::Linearizable),
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
struct Pending {
    key: RequestKey,
    /// History index of its invocation.
    invoke: u64,
    f: &'static str,
    value: Value,
    operation: ledger_client::Operation,
}

/// What a write's reply says, for the history (the checkers compare it with the model's).
fn reply_value(reply: &ledger_core::outcome::Reply) -> Value {
    use ledger_core::outcome::Reply;
    match reply {
        Reply::Transferred {
            source_balance_fen,
            target_balance_fen,
        } => json!({"from_balance": source_balance_fen, "to_balance": target_balance_fen}),
        Reply::VoucherClaimed { remaining, .. } => json!({"remaining": remaining}),
        other => json!({"reply": other}),
    }
}

/// A write under an explicit key (recorded in the invocation); an unknown outcome is kept
/// to be asked again.
async fn keyed_write(
    run: &Run,
    client: &Client,
    state: &mut Thread,
    process: u64,
    f: &'static str,
    mut value: Value,
    command: ledger_core::command::Command,
) -> OpType {
    let key = client.new_key();
    merge(&mut value, json!({"key": key_json(key)}));
    let operation = ledger_client::Operation::Command(command);
    let (kind, _, invoke) = run
        .op(
            process,
            f,
            value.clone(),
            false,
            client.submit_with_key(key, operation.clone()),
            |r| reply_value(&r),
        )
        .await;
    if kind == OpType::Info {
        state.pending.push(Pending {
            key,
            invoke,
            f,
            value,
            operation,
        });
    }
    kind
}

fn account_range(setup: &Setup) -> Query {
    let first = *setup.accounts.first().expect("accounts");
    let last = *setup.accounts.last().expect("accounts");
    Query::AccountRange {
        first: AccountId(first),
        count: (last - first + 1) as u32,
    }
}

/// A read of the workload's accounts: `{"balances": {id: fen}, "applied_index": n}`.
fn balances(reply: QueryReply, setup: &Setup) -> Value {
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

/// One operation of client thread `thread` as process `process`; returns its type.
pub async fn step(
    run: &Run,
    client: &Client,
    state: &mut Thread,
    rng: &mut StdRng,
    thread: u64,
    process: u64,
) -> OpType {
    let setup = &run.setup;
    let pick = |rng: &mut StdRng| setup.accounts[rng.gen_range(0..setup.accounts.len())];
    // Unknown writes are asked about again now and then during the run, while the ledger
    // surely still holds their records (its window per client is 1,024 requests).
    if matches!(run.kind, Kind::Bank | Kind::Vouchers)
        && !state.pending.is_empty()
        && rng.gen_bool(0.2)
    {
        let pending = state.pending.remove(0);
        let kind = retry(run, client, process, &pending).await;
        if kind == OpType::Info {
            state.pending.push(pending);
        }
        return kind;
    }
    match run.kind {
        Kind::Bank => {
            if rng.gen_bool(0.5) {
                let q = account_range(setup);
                run.op(
                    process,
                    "read",
                    Value::Null,
                    true,
                    read_home_first(state, client, q),
                    |r| balances(r, setup),
                )
                .await
                .0
            } else {
                let from = pick(rng);
                let to = loop {
                    let t = pick(rng);
                    if t != from {
                        break t;
                    }
                };
                let amount = rng.gen_range(1..=BANK_MAX_TRANSFER_FEN);
                let value = json!({"from": from, "to": to, "amount": amount});
                let command = ledger_core::command::Command::Transfer {
                    source: AccountId(from),
                    target: AccountId(to),
                    amount_fen: amount,
                };
                keyed_write(run, client, state, process, "transfer", value, command).await
            }
        }
        Kind::Vouchers => {
            // Every thread races for the same pool in the same round.
            let round = (run.recorder.now_ns() / 1_000_000_000 / VOUCHER_ROUND_S) as usize;
            let position = round.min(setup.pools.len() - 1);
            run.current_pool.fetch_max(position, Ordering::Relaxed);
            let pool = PoolId(setup.pools[position]);
            if rng.gen_bool(0.2) {
                run.op(
                    process,
                    "read",
                    json!({"pool": pool.0}),
                    true,
                    read_home_first(state, client, Query::Pool(pool)),
                    |reply| match reply {
                        QueryReply::Pool(p) => json!({"granted": p.map(|p| p.granted)}),
                        other => json!({"unexpected": format!("{other:?}")}),
                    },
                )
                .await
                .0
            } else {
                let account = pick(rng);
                let command = ledger_core::command::Command::ClaimVoucher {
                    pool,
                    account: AccountId(account),
                };
                keyed_write(
                    run,
                    client,
                    state,
                    process,
                    "claim",
                    json!({"pool": pool.0, "account": account}),
                    command,
                )
                .await
            }
        }
        Kind::Idempotency => {
            if !state.pending.is_empty() && rng.gen_bool(0.5) {
                let pending = state.pending.remove(0);
                let kind = retry(run, client, process, &pending).await;
                if kind == OpType::Info {
                    state.pending.push(pending);
                }
                return kind;
            }
            let key = client.new_key();
            let account = pick(rng);
            let amount = rng.gen_range(1..=10_000);
            let (kind, invoke) = if rng.gen_bool(0.1) {
                deposit_twice(run, client, process, key, account, amount).await
            } else {
                deposit(run, client, process, key, account, amount).await
            };
            if kind == OpType::Info {
                state.pending.push(Pending {
                    key,
                    invoke,
                    f: "deposit",
                    value: json!({"key": key_json(key), "account": account, "amount": amount, "retry": true}),
                    operation: deposit_operation(account, amount),
                });
            }
            kind
        }
        Kind::Epay => epay_step(run, client, state, rng, thread, process).await,
    }
}

fn key_json(key: RequestKey) -> Value {
    json!([key.client_id, key.request_id])
}

fn deposit_operation(account: u64, amount: u64) -> ledger_client::Operation {
    ledger_client::Operation::Command(ledger_core::command::Command::Deposit {
        account: AccountId(account),
        amount_fen: amount,
    })
}

async fn deposit(
    run: &Run,
    client: &Client,
    process: u64,
    key: RequestKey,
    account: u64,
    amount: u64,
) -> (OpType, u64) {
    let value = json!({"key": key_json(key), "account": account, "amount": amount, "retry": false});
    let (kind, _, invoke) = run
        .op(
            process,
            "deposit",
            value,
            false,
            client.submit_with_key(key, deposit_operation(account, amount)),
            |reply| json!({"reply": reply}),
        )
        .await;
    (kind, invoke)
}

/// Asks again, under its key, for a write whose outcome is unknown. For the idempotency
/// workload this is an operation like any other (`deposit` with `retry: true`); for the
/// others a `resolve` naming the invocation it resolves.
async fn retry(run: &Run, client: &Client, process: u64, pending: &Pending) -> OpType {
    let (f, value) = if pending.f == "deposit" {
        ("deposit", pending.value.clone())
    } else {
        (
            "resolve",
            json!({"of": pending.invoke, "f": pending.f, "key": key_json(pending.key)}),
        )
    };
    let result = |reply: ledger_core::outcome::Reply| {
        if f == "deposit" {
            json!({"reply": reply})
        } else {
            reply_value(&reply)
        }
    };
    run.op(
        process,
        f,
        value,
        false,
        client.submit_with_key(pending.key, pending.operation.clone()),
        result,
    )
    .await
    .0
}

/// The same request sent twice at once: both answers must be the same.
async fn deposit_twice(
    run: &Run,
    client: &Client,
    process: u64,
    key: RequestKey,
    account: u64,
    amount: u64,
) -> (OpType, u64) {
    let value = json!({"key": key_json(key), "account": account, "amount": amount, "retry": false, "twice": true});
    let command = deposit_operation(account, amount);
    let both = async {
        let (a, b) = tokio::join!(
            client.submit_with_key(key, command.clone()),
            client.submit_with_key(key, command.clone())
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
    let (kind, _, invoke) = run
        .op(
            process,
            "deposit",
            value,
            false,
            both,
            |(a, b)| json!({"reply": a, "second_reply": b}),
        )
        .await;
    (kind, invoke)
}

async fn epay_step(
    run: &Run,
    client: &Client,
    state: &mut Thread,
    rng: &mut StdRng,
    thread: u64,
    process: u64,
) -> OpType {
    let setup = &run.setup;
    // Each thread pays from its own customers, so that one order's steps are one thread's.
    let i = thread * EPAY_CUSTOMERS_PER_THREAD + rng.gen_range(0..EPAY_CUSTOMERS_PER_THREAD);
    let Some(&account) = setup.accounts.get(i as usize) else {
        return OpType::Fail;
    };
    let n = setup.card_base + i;
    let merchant = ledger_core::types::MerchantId(setup.merchant.expect("merchant"));
    state.seq += 1;
    let order = format!("t{thread}-{}", state.seq);
    let amount = rng.gen_range(100..=1_500);
    let pan = test_pan(n);
    let value = json!({"account": account, "amount": amount, "order": order});
    let (kind, out, _) = run
        .op(
            process,
            "begin",
            value,
            false,
            client.begin_payment(
                &test_phone(n),
                Secret::new(&pan[pan.len() - 6..]),
                Payee::Merchant(merchant),
                amount,
                &order,
            ),
            |p| json!({"payment": p.payment.0, "challenge": p.challenge.0}),
        )
        .await;
    if kind != OpType::Ok {
        return kind;
    }
    let payment = out["payment"].as_u64().expect("recorded above");
    let challenge = out["challenge"].as_u64().expect("recorded above");
    let Some(code) =
        crate::db::wait_for_code(&run.sms_paths, challenge, Duration::from_secs(5)).await
    else {
        return OpType::Ok;
    };
    if rng.gen_bool(0.25) {
        let wrong = format!("{:06}", (code.parse::<u32>().unwrap_or(0) + 1) % 1_000_000);
        let kind = confirm(run, client, process, payment, account, wrong, false).await;
        if kind == OpType::Info {
            return kind;
        }
    }
    confirm(run, client, process, payment, account, code, true).await
}

async fn confirm(
    run: &Run,
    client: &Client,
    process: u64,
    payment: u64,
    account: u64,
    code: String,
    correct: bool,
) -> OpType {
    // The code itself is a secret: the history says only whether it was the right one.
    let value = json!({"payment": payment, "account": account, "code": if correct { "correct" } else { "wrong" }});
    run.op(
        process,
        "confirm",
        value,
        false,
        client.confirm_payment(PaymentId(payment), Secret::new(code)),
        |s| json!({"debited": s.debited_fen, "bill": s.bill_fen}),
    )
    .await
    .0
}

/// After healing: resolves what can be resolved (idempotency retries its unknown deposits
/// under their keys) and reads the final state, through the cluster (linearizable, process
/// `FINAL_PROCESS`) and from every node (local reads, `FINAL_PROCESS + id`).
pub async fn finish(run: &Run, db: &Db, threads: Vec<(Client, Thread)>) {
    // Unknown writes, asked again under their keys: each asking is a process of its own
    // (from RESOLVE_PROCESS up), a new one after every unknown answer, as in Jepsen.
    let deadline = std::time::Instant::now() + FINISH_RESOLVE_TIME;
    let mut process = RESOLVE_PROCESS;
    for (client, thread) in &threads {
        for pending in &thread.pending {
            for _ in 0..3 {
                if std::time::Instant::now() > deadline {
                    break;
                }
                let kind = retry(run, client, process, pending).await;
                process += 1;
                if kind != OpType::Info {
                    break;
                }
            }
        }
    }
    // What the resolves applied reaches every replica before the replicas are read.
    let _ = db.wait_converged(Duration::from_secs(30)).await;
    let client = db.client(Duration::from_secs(3), 10);
    final_reads(run, &client, FINAL_PROCESS, Consistency::Linearizable).await;
    for id in db.ids() {
        let client = db.node_client(id);
        for _ in 0..3 {
            if final_reads(run, &client, FINAL_PROCESS + id, Consistency::Stale).await == OpType::Ok
            {
                break;
            }
        }
    }
}

/// Longest the end of a run spends asking again about unknown writes.
pub const FINISH_RESOLVE_TIME: Duration = Duration::from_secs(60);

/// Process numbers of the askings-again after healing (below FINAL_PROCESS are client
/// threads, FINAL_PROCESS + node id the final reads).
pub const RESOLVE_PROCESS: u64 = 2_000_000;

async fn final_reads(run: &Run, client: &Client, process: u64, consistency: Consistency) -> OpType {
    let setup = &run.setup;
    let node = process - FINAL_PROCESS;
    let tag = json!({"node": if node == 0 { Value::Null } else { json!(node) }});
    match run.kind {
        Kind::Bank | Kind::Idempotency => {
            run.op(
                process,
                "final-read",
                tag,
                true,
                client.query(account_range(setup), consistency),
                |r| balances(r, setup),
            )
            .await
            .0
        }
        Kind::Vouchers => {
            let raced = run.current_pool.load(Ordering::Relaxed) + 1;
            let read = async {
                let mut pools = serde_json::Map::new();
                for pool in setup.pools.iter().take(raced).map(|p| PoolId(*p)) {
                    let granted = match client.query(Query::Pool(pool), consistency).await? {
                        QueryReply::Pool(p) => p.map(|p| p.granted),
                        _ => None,
                    };
                    let mut holders = Vec::new();
                    for a in &setup.accounts {
                        if let QueryReply::Voucher(Some(_)) = client
                            .query(Query::Voucher(AccountId(*a), pool), consistency)
                            .await?
                        {
                            holders.push(*a);
                        }
                    }
                    pools.insert(
                        pool.0.to_string(),
                        json!({"granted": granted, "holders": holders}),
                    );
                }
                Ok::<_, ClientError>(json!({ "pools": pools }))
            };
            run.op(process, "final-read", tag, true, read, |v| v)
                .await
                .0
        }
        Kind::Epay => {
            let payments: Vec<u64> = crate::history::pairs(&run.recorder.ops())
                .iter()
                .filter(|p| p.invoke.f == "begin" && p.outcome() == OpType::Ok)
                .filter_map(|p| p.complete.and_then(|c| c.value["payment"].as_u64()))
                .collect();
            let read = async {
                let first = 1u64;
                let last = setup
                    .merchant_account
                    .expect("merchant account")
                    .max(*setup.accounts.last().expect("accounts"));
                let all = match client
                    .query(
                        Query::AccountRange {
                            first: AccountId(first),
                            count: (last - first + 1) as u32,
                        },
                        consistency,
                    )
                    .await?
                {
                    QueryReply::Accounts { accounts: v, .. } => v
                        .into_iter()
                        .map(|a| (a.account.0.to_string(), json!(a.balance_fen)))
                        .collect::<serde_json::Map<_, _>>(),
                    _ => Default::default(),
                };
                let mut states = BTreeMap::new();
                for p in &payments {
                    if let QueryReply::Payment(Some(payment)) = client
                        .query(Query::Payment(PaymentId(*p)), consistency)
                        .await?
                    {
                        states.insert(
                            p.to_string(),
                            serde_json::to_value(payment.state).expect("serialises"),
                        );
                    }
                }
                Ok::<_, ClientError>(json!({"balances": all, "payments": states}))
            };
            run.op(process, "final-read", tag, true, read, |v| v)
                .await
                .0
        }
    }
}

/// A client thread: operations until the run stops. An `info` completion crashes the
/// process (as in Jepsen): the thread goes on as process `process + concurrency`.
pub async fn thread_loop(
    run: Arc<Run>,
    client: Client,
    home: Client,
    thread: u64,
    seed: u64,
) -> (Client, Thread) {
    use rand::SeedableRng;
    let mut rng = StdRng::seed_from_u64(seed ^ (thread + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut state = Thread {
        home: Some(home),
        ..Thread::default()
    };
    let mut process = thread;
    while !run.stop.load(Ordering::Relaxed) {
        if run.rate > 0.0 {
            let mean_s = run.concurrency as f64 / run.rate;
            tokio::time::sleep(Duration::from_secs_f64(rng.gen_range(0.0..2.0 * mean_s))).await;
        }
        if step(&run, &client, &mut state, &mut rng, thread, process).await == OpType::Info {
            process += run.concurrency;
        }
    }
    (client, state)
}
