//! e-Pay: two-step payments to one online merchant, confirmed with the code from the SMS
//! outbox (a wrong code first, now and then). A wrong code never settles, a payment settles
//! at most once and only after the right code was sent, each customer paid exactly the
//! settled debits, and money is neither created nor destroyed.

use super::client::{card_password, Effect};
use super::{BoxFuture, FinalRead, Prep, ReadResult, Setup, SetupError, Step, Workload};
use crate::checker::{cluster_final_read, describe, without_final_read, Finding};
use crate::db::wait_for_code;
use crate::history::OpType;
use crate::ops::{self, Answer, Op, Record};
use crate::runner::TestInfo;
use ledger_client::{Client, Query, QueryReply};
use ledger_core::intake::Secret;
use ledger_core::state::PaymentState;
use ledger_core::types::{AccountId, MerchantId, MerchantKind, Payee, PaymentId};
use ledger_testkit::driver::{test_pan, test_phone};
use ledger_wire::principal::Principal;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Customers per client thread, and their starting balance.
pub const EPAY_CUSTOMERS_PER_THREAD: u64 = 3;
pub const EPAY_INITIAL_FEN: u64 = 500_000;

/// The enrolling channel client's time per call and attempts per step.
const ENROL_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
const ENROL_ATTEMPTS: u32 = 20;
/// Longest a client waits for the SMS of a payment's code.
const CODE_WAIT: Duration = Duration::from_secs(5);
/// Longest the setup waits for the SMS of an enrolment's code.
const ENROL_CODE_WAIT: Duration = Duration::from_secs(20);

pub struct Epay;

impl Workload for Epay {
    fn accounts(&self, concurrency: u64) -> (u64, u64) {
        (concurrency * EPAY_CUSTOMERS_PER_THREAD, EPAY_INITIAL_FEN)
    }

    fn prepare<'a>(&'a self, prep: Prep<'a>) -> BoxFuture<'a, Result<(), SetupError>> {
        Box::pin(async move {
            let setup = prep.setup;
            let client = prep.client;
            let n = setup.card_base + setup.accounts.len() as u64;
            let account = client
                .open_account(super::client::card_request(n))
                .await
                .map_err(SetupError::client("open merchant account"))?;
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
                .map_err(SetupError::client("register merchant"))?;
            setup.merchant = Some(merchant.0);
            setup.merchant_account = Some(account.0);
            let outboxes = prep.db.outboxes();
            // Customers enrol through the bank's channel (DOMAIN.md section 10).
            let channel = prep.db.client_as(
                &Principal::Channel {
                    name: "jepsen".into(),
                },
                ENROL_CALL_TIMEOUT,
                ENROL_ATTEMPTS,
            );
            for (i, a) in setup.accounts.iter().enumerate() {
                enrol(
                    &channel,
                    &outboxes,
                    AccountId(*a),
                    setup.card_base + i as u64,
                )
                .await?;
            }
            Ok(())
        })
    }

    /// The threads are the merchant: it begins and confirms its payments.
    fn thread_principal(&self, setup: &Setup) -> Option<Principal> {
        setup.merchant.map(|m| Principal::Merchant {
            merchant: MerchantId(m),
        })
    }

    fn step<'a>(&'a self, step: Step<'a>) -> BoxFuture<'a, OpType> {
        Box::pin(pay(step))
    }

    fn final_read<'a>(&'a self, read: FinalRead<'a>) -> BoxFuture<'a, ReadResult> {
        Box::pin(final_read(read))
    }

    fn checkers(&self, test: &TestInfo, history: &[Record<'_>]) -> Vec<(&'static str, Finding)> {
        vec![("epay", epay(&test.setup, history))]
    }
}

/// Enrols account `account` (card `n`) in e-Pay with the code its phone received.
async fn enrol(
    client: &Client,
    outboxes: &[std::path::PathBuf],
    account: AccountId,
    n: u64,
) -> Result<(), SetupError> {
    let what = |step: &str| SetupError::client(format!("e-Pay enrolment of {account}: {step}"));
    let started = client
        .epay_begin(Secret::new(test_pan(n)), &test_phone(n))
        .await
        .map_err(what("begin"))?;
    if started != account {
        return Err(SetupError::WrongAccount {
            card: n,
            enrolled: started.0,
            expected: account.0,
        });
    }
    client
        .epay_choose_alias(
            account,
            Secret::new(card_password(n)),
            &format!("jepsen{n}"),
        )
        .await
        .map_err(what("alias"))?;
    let challenge = client
        .epay_confirm(account)
        .await
        .map_err(what("confirm"))?;
    let challenge = challenge.challenge.0;
    let code = wait_for_code(outboxes, challenge, ENROL_CODE_WAIT)
        .await
        .ok_or(SetupError::NoSms { challenge })?;
    client
        .epay_activate(account, Secret::new(code))
        .await
        .map_err(what("activate"))
}

/// One payment: begin, then confirm with the code from the phone (a wrong one first, a
/// quarter of the time).
async fn pay(step: Step<'_>) -> OpType {
    let (run, client) = (step.run, step.client);
    let setup = &run.setup;
    // Each thread pays from its own customers, so that one order's steps are one thread's.
    let i =
        step.index * EPAY_CUSTOMERS_PER_THREAD + step.rng.gen_range(0..EPAY_CUSTOMERS_PER_THREAD);
    let Some(&account) = setup.accounts.get(i as usize) else {
        return OpType::Fail;
    };
    let n = setup.card_base + i;
    let merchant = MerchantId(setup.merchant.expect("merchant"));
    step.thread.seq += 1;
    let order = format!("t{}-{}", step.index, step.thread.seq);
    let amount = step.rng.gen_range(100..=1_500);
    let pan = test_pan(n);
    let phone = test_phone(n);
    let value = json!({"account": account, "amount": amount, "order": order});
    let begin = client.begin_payment(
        &phone,
        Secret::new(&pan[pan.len() - 6..]),
        Payee::Merchant(merchant),
        amount,
        &order,
    );
    let (kind, out, _) = run
        .op(
            step.process,
            "begin",
            value,
            Effect::Write,
            begin,
            |p| json!({"payment": p.payment.0, "challenge": p.challenge.0}),
        )
        .await;
    if kind != OpType::Ok {
        return kind;
    }
    let payment = out["payment"].as_u64().expect("recorded above");
    let challenge = out["challenge"].as_u64().expect("recorded above");
    let Some(code) = wait_for_code(&run.sms_paths, challenge, CODE_WAIT).await else {
        return OpType::Ok;
    };
    let confirm = |code: String, correct: bool| {
        // The code itself is a secret: the history says only whether it was the right one.
        let value = json!({"payment": payment, "account": account, "code": if correct { "correct" } else { "wrong" }});
        let call = client.confirm_payment(PaymentId(payment), Secret::new(code));
        run.op(
            step.process,
            "confirm",
            value,
            Effect::Write,
            call,
            |s| json!({"debited": s.debited_fen, "bill": s.bill_fen}),
        )
    };
    if step.rng.gen_bool(0.25) {
        let wrong = format!("{:06}", (code.parse::<u32>().unwrap_or(0) + 1) % 1_000_000);
        let kind = confirm(wrong, false).await.0;
        if kind == OpType::Info {
            return kind;
        }
    }
    confirm(code, true).await.0
}

/// Every account's balance up to the merchant's, and the state of every payment begun.
async fn final_read(read: FinalRead<'_>) -> ReadResult {
    let FinalRead {
        run,
        client,
        consistency,
    } = read;
    let setup = &run.setup;
    let entries = run.recorder.ops();
    let payments: Vec<u64> = ops::records(&entries)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| match r.answer {
            Some(Answer::Begun { payment, .. }) => Some(payment),
            _ => None,
        })
        .collect();
    let first = 1u64;
    let last = setup
        .merchant_account
        .expect("merchant account")
        .max(*setup.accounts.last().expect("accounts"));
    let range = Query::AccountRange {
        first: AccountId(first),
        count: (last - first + 1) as u32,
    };
    let balances = match client.query(range, consistency).await? {
        QueryReply::Accounts { accounts, .. } => accounts
            .into_iter()
            .map(|a| (a.account.0.to_string(), json!(a.balance_fen)))
            .collect::<serde_json::Map<_, _>>(),
        _ => Default::default(),
    };
    let mut states = BTreeMap::new();
    for p in &payments {
        let query = Query::Payment(PaymentId(*p));
        if let QueryReply::Payment(Some(payment)) = client.query(query, consistency).await? {
            let state = serde_json::to_value(payment.state).expect("serialises");
            states.insert(p.to_string(), state);
        }
    }
    Ok(json!({"balances": balances, "payments": states}))
}

/// The confirmations: which payments were acknowledged settled (and by which operations),
/// and which had the right code sent (possibly taking effect).
struct Confirmations<'r, 'a> {
    count: usize,
    settled: BTreeMap<u64, Vec<&'r Record<'a>>>,
    right_code_tried: BTreeSet<u64>,
    errors: Vec<Value>,
}

fn confirmations<'r, 'a>(history: &'r [Record<'a>]) -> Confirmations<'r, 'a> {
    let mut seen = Confirmations {
        count: 0,
        settled: BTreeMap::new(),
        right_code_tried: BTreeSet::new(),
        errors: Vec::new(),
    };
    for r in history {
        let Op::Confirm {
            payment, correct, ..
        } = r.op
        else {
            continue;
        };
        seen.count += 1;
        if correct && r.outcome != OpType::Fail {
            seen.right_code_tried.insert(payment);
        }
        if r.is_ok() {
            if !correct {
                seen.errors.push(
                    json!({"error": "a wrong code settled a payment", "op": describe(&r.pair)}),
                );
            }
            seen.settled.entry(payment).or_default().push(r);
        }
    }
    for (payment, ops) in seen.settled.iter().filter(|(_, ops)| ops.len() > 1) {
        let ops: Vec<Value> = ops.iter().map(|r| describe(&r.pair)).collect();
        seen.errors.push(
            json!({"error": "payment settled more than once", "payment": payment, "ops": ops}),
        );
    }
    seen
}

fn epay(setup: &Setup, history: &[Record<'_>]) -> Finding {
    let Confirmations {
        count,
        settled,
        right_code_tried,
        mut errors,
    } = confirmations(history);
    let mut stats = json!({"confirms": count, "settled_acknowledged": settled.len()});
    let Some(Answer::Payments { balances, payments }) = cluster_final_read(history) else {
        return without_final_read(errors, stats);
    };
    let mut settled_final = 0;
    for (id, state) in payments {
        let is_settled = matches!(state, PaymentState::Settled { .. });
        settled_final += u64::from(is_settled);
        if settled.contains_key(id) && !is_settled {
            errors.push(json!({"error": "acknowledged settlement lost", "payment": id, "final_state": state}));
        }
        if is_settled && !right_code_tried.contains(id) {
            errors.push(
                json!({"error": "settled without the right code ever being sent", "payment": id}),
            );
        }
    }
    for id in settled.keys().filter(|id| !payments.contains_key(id)) {
        errors.push(
            json!({"error": "acknowledged payment missing from the final state", "payment": id}),
        );
    }
    errors.extend(money(setup, history, balances, payments));
    stats["settled_final"] = json!(settled_final);
    Finding::from_errors(errors, stats)
}

/// Each customer paid exactly the settled payments' debits (a payment's payer is the account
/// its `begin` named); money is neither created nor destroyed; no customer is overdrawn.
fn money(
    setup: &Setup,
    history: &[Record<'_>],
    balances: &BTreeMap<u64, i64>,
    payments: &BTreeMap<u64, PaymentState>,
) -> Vec<Value> {
    let mut errors = Vec::new();
    let mut debited: BTreeMap<u64, i64> = BTreeMap::new();
    for r in history {
        let (Op::Begin { account, .. }, Some(Answer::Begun { payment, .. })) = (&r.op, &r.answer)
        else {
            continue;
        };
        if let Some(PaymentState::Settled { debited_fen, .. }) = payments.get(payment) {
            *debited.entry(*account).or_default() += *debited_fen as i64;
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
    let customers = balances
        .iter()
        .filter(|(id, _)| **id >= AccountId::FIRST_CUSTOMER);
    let customers_total: i64 = customers.clone().map(|(_, b)| b).sum();
    let expected = setup.initial_balance_fen as i64 * setup.accounts.len() as i64;
    if everything != 0 || customers_total != expected {
        errors.push(json!({"error": "money created or destroyed", "all_accounts": everything, "customers_and_merchant": customers_total, "deposited": expected}));
    }
    if let Some((a, b)) = customers.clone().find(|(_, b)| **b < 0) {
        errors.push(json!({"error": "negative balance", "account": a, "balance": b}));
    }
    errors
}
