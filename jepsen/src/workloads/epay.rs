//! e-Pay and the whole payment: two-step payments to one POS merchant, confirmed with the
//! code from the SMS outbox (a wrong code first, now and then), cancelled or left to expire
//! now and then; cards swiped at its terminal; refunds of settled payments. A wrong code
//! never settles, a payment settles at most once and only after the right code was sent,
//! each payment ends as its acknowledged answers said, refunds are exactly those asked for
//! and never exceed the bill, each customer paid exactly its settled debits less refunds,
//! and money is neither created nor destroyed.

use super::client::{card_password, Effect, Run};
use super::{BoxFuture, FinalRead, Prep, ReadResult, Setup, SetupError, Step, Workload};
use crate::checker::{cluster_final_read, describe, without_final_read, Finding};
use crate::db::wait_for_code;
use crate::history::OpType;
use crate::ops::{Answer, DaySeen, EventSeen, Op, Record};
use crate::runner::TestInfo;
use ledger_client::{Client, Consistency, Query, QueryReply};
use ledger_core::config::{MAX_EVENT_BATCH, MAX_STATEMENT_ROWS};
use ledger_core::intake::Secret;
use ledger_core::state::{EventKind, Payment, PaymentState};
use ledger_core::time::cst_day;
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
            // A POS merchant, so that cards can be swiped at its terminal. Its campaign
            // reward, if earned, goes from `promotions` to `telecom_settlement`: the
            // customers and the merchant together still hold exactly what was deposited
            // (the e-Pay checker's sum), as refunds here have no voucher share.
            let merchant = client
                .register_merchant(MerchantKind::Pos, "jepsen shop", account, &test_phone(n), 1)
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

    fn quiesce<'a>(&'a self, run: &'a Run, client: &'a Client) -> BoxFuture<'a, ()> {
        Box::pin(quiesce(run, client))
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

/// One step: a card swiped at the merchant's terminal (a fifth of the time), or an e-Pay
/// payment: begin, then (mostly) confirm with the code from the phone, a wrong one first a
/// quarter of the time; now and then the payer walks away (the payment expires) or the
/// merchant cancels it. A settled payment is refunded in part, now and then.
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
    if step.rng.gen_bool(0.2) {
        return swipe(step, account, n, amount, order).await;
    }
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
    match step.rng.gen_range(0..10) {
        // The payer walks away: the leader expires the payment with its code.
        0 => return OpType::Ok,
        1 => {
            let value = json!({"payment": payment, "account": account});
            let call = client.cancel_payment(PaymentId(payment));
            let write = run.op(step.process, "cancel", value, Effect::Write, call, |()| {
                json!({})
            });
            return write.await.0;
        }
        _ => {}
    }
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
    let kind = confirm(code, true).await.0;
    if kind != OpType::Ok {
        return kind;
    }
    maybe_refund(step, payment, amount).await
}

/// A card swiped at the merchant's terminal with its PIN; a settled swipe may be refunded.
async fn swipe(step: Step<'_>, account: u64, n: u64, amount: u64, receipt: String) -> OpType {
    let (run, client) = (step.run, step.client);
    let merchant = MerchantId(run.setup.merchant.expect("merchant"));
    let value = json!({"account": account, "amount": amount, "receipt": receipt});
    let call = client.card_payment(
        merchant,
        1,
        Secret::new(test_pan(n)),
        Secret::new(card_password(n)),
        amount,
        &receipt,
    );
    let (kind, out, _) = run
        .op(
            step.process,
            "swipe",
            value,
            Effect::Write,
            call,
            |s| json!({"payment": s.payment.0, "debited": s.debited_fen}),
        )
        .await;
    if kind != OpType::Ok {
        return kind;
    }
    let payment = out["payment"].as_u64().expect("recorded above");
    maybe_refund(step, payment, amount).await
}

/// A third of the time, the merchant refunds part of a settled bill.
async fn maybe_refund(step: Step<'_>, payment: u64, bill: u64) -> OpType {
    if !step.rng.gen_bool(0.3) {
        return OpType::Ok;
    }
    let (run, client) = (step.run, step.client);
    let amount = step.rng.gen_range(1..=bill);
    let value = json!({"payment": payment, "amount": amount});
    let call = client.refund_payment(PaymentId(payment), amount);
    run.op(
        step.process,
        "refund",
        value,
        Effect::Write,
        call,
        |r| json!({"refund": r.refund_fen, "to_payer": r.to_payer_fen}),
    )
    .await
    .0
}

/// Longest the harness waits, past the last code's expiry, for the leader to expire every
/// payment nobody finished.
const QUIESCE_WAIT: Duration = Duration::from_secs(30);

/// Waits until no payment is pending (those begun under an unknown outcome included): the
/// last one's code expires at most `OTP_EXPIRY_MS` after the run stopped, and the leader
/// then expires it by itself. Then until every payment's end has its event: a payment whose
/// code has expired already reads as `Expired`, but its event comes with the leader's
/// `ExpirePayments`, a moment later. The reads through the cluster and of each node then
/// see the same state.
async fn quiesce(run: &Run, client: &Client) {
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(crate::db::OTP_EXPIRY_MS)
        + QUIESCE_WAIT;
    let mut pending = BTreeSet::new();
    let mut payments = 0;
    let mut p = 1;
    while tokio::time::Instant::now() < deadline {
        let query = Query::Payment(PaymentId(p));
        match client.query(query, Consistency::Linearizable).await {
            Ok(QueryReply::Payment(Some(payment))) => {
                payments = p;
                if payment.state == PaymentState::Pending {
                    pending.insert(p);
                }
                p += 1;
            }
            Ok(_) => break,
            // Unreadable for a moment (a leader changing): ask again. Past the deadline the
            // final read says what it can.
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    while !pending.is_empty() && tokio::time::Instant::now() < deadline {
        let mut still = BTreeSet::new();
        for p in pending {
            let query = Query::Payment(PaymentId(p));
            match client.query(query, Consistency::Linearizable).await {
                Ok(QueryReply::Payment(Some(payment)))
                    if payment.state != PaymentState::Pending => {}
                _ => {
                    still.insert(p);
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let merchant = MerchantId(run.setup.merchant.expect("merchant"));
    while tokio::time::Instant::now() < deadline {
        match ended_payments(client, merchant).await {
            Ok(ended) if ended.len() as u64 >= payments => return,
            Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The payments that have an end event (settled, cancelled, expired, superseded, failed)
/// among the merchant's events.
async fn ended_payments(
    client: &Client,
    merchant: MerchantId,
) -> Result<BTreeSet<u64>, ledger_client::ClientError> {
    let mut ended = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = client
            .events(
                merchant,
                after,
                MAX_EVENT_BATCH as u32,
                Consistency::Linearizable,
            )
            .await?;
        let Some(last) = page.last() else {
            return Ok(ended);
        };
        after = last.id;
        ended.extend(
            page.iter()
                .filter(|e| !matches!(e.kind, EventKind::Refunded { .. }))
                .map(|e| e.payment.0),
        );
    }
}

/// Every account's balance up to the merchant's, and every payment (ids are dense: the read
/// goes up from 1 until one is missing).
async fn final_read(read: FinalRead<'_>) -> ReadResult {
    let FinalRead {
        run,
        client,
        consistency,
    } = read;
    let setup = &run.setup;
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
    let mut payments = serde_json::Map::new();
    for p in 1.. {
        let query = Query::Payment(PaymentId(p));
        let QueryReply::Payment(Some(payment)) = client.query(query, consistency).await? else {
            break;
        };
        payments.insert(
            p.to_string(),
            serde_json::to_value(payment).expect("serialises"),
        );
    }
    let merchant = MerchantId(setup.merchant.expect("merchant"));
    let created = payments
        .values()
        .filter_map(|p| p.get("created_ms").and_then(Value::as_u64));
    let (first_day, last_day) = match (created.clone().min(), created.max()) {
        // A refund may land just after midnight: read one day past the last payment.
        (Some(first), Some(last)) => (cst_day(first), cst_day(last) + 1),
        _ => (1, 0),
    };
    let mut days = Vec::new();
    for day in first_day..=last_day {
        days.push(reconciled_day(client, consistency, merchant, day).await?);
    }
    let mut events: Vec<EventSeen> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.id);
        let page = client
            .events(merchant, after, MAX_EVENT_BATCH as u32, consistency)
            .await?;
        if page.is_empty() {
            break;
        }
        events.extend(page.into_iter().map(|e| EventSeen {
            id: e.id,
            payment: e.payment.0,
            kind: e.kind,
        }));
    }
    Ok(json!({"balances": balances, "payments": payments, "days": days, "events": events}))
}

/// Every page of the merchant's reconciliation of one CST day.
async fn reconciled_day(
    client: &Client,
    consistency: Consistency,
    merchant: MerchantId,
    day: u64,
) -> Result<DaySeen, ledger_client::ClientError> {
    let mut cursor = None;
    let mut seen: Option<DaySeen> = None;
    loop {
        let r = client
            .reconcile(merchant, day, MAX_STATEMENT_ROWS, cursor, consistency)
            .await?;
        let account = r.settlement_account;
        let seen = seen.get_or_insert(DaySeen {
            day,
            totals: r.totals,
            opening_balance_fen: r.page.opening_balance_fen,
            closing_balance_fen: r.page.closing_balance_fen,
            rows: 0,
            rows_net_fen: 0,
        });
        seen.rows += r.page.rows.len() as u64;
        seen.rows_net_fen += r
            .page
            .rows
            .iter()
            .map(|p| p.delta_for(account))
            .sum::<i64>();
        cursor = r.page.next;
        if cursor.is_none() {
            return Ok(seen.clone());
        }
    }
}

/// What the history says of the payments: which were acknowledged settled (and by which
/// operations), which had the right code sent (possibly taking effect), which were
/// acknowledged cancelled, and the refunds acknowledged and of unknown outcome.
#[derive(Default)]
struct Acknowledged<'r, 'a> {
    confirms: usize,
    settled: BTreeMap<u64, Vec<&'r Record<'a>>>,
    right_code_tried: BTreeSet<u64>,
    cancelled: BTreeSet<u64>,
    refunded: BTreeMap<u64, u64>,
    refunds_unknown: BTreeMap<u64, u64>,
    errors: Vec<Value>,
}

fn acknowledged<'r, 'a>(history: &'r [Record<'a>]) -> Acknowledged<'r, 'a> {
    let mut seen = Acknowledged::default();
    for r in history {
        match (&r.op, &r.answer) {
            (
                Op::Confirm {
                    payment, correct, ..
                },
                _,
            ) => {
                seen.confirms += 1;
                if *correct && r.outcome != OpType::Fail {
                    seen.right_code_tried.insert(*payment);
                }
                if r.is_ok() {
                    if !correct {
                        seen.errors.push(
                            json!({"error": "a wrong code settled a payment", "op": describe(&r.pair)}),
                        );
                    }
                    seen.settled.entry(*payment).or_default().push(r);
                }
            }
            (Op::Swipe { .. }, Some(Answer::Swiped { payment, .. })) => {
                seen.settled.entry(*payment).or_default().push(r);
            }
            (Op::Cancel { payment }, Some(Answer::Cancelled)) => {
                seen.cancelled.insert(*payment);
            }
            (Op::Refund { payment, .. }, Some(Answer::Refunded { refund_fen })) => {
                *seen.refunded.entry(*payment).or_default() += refund_fen;
            }
            (
                Op::Refund {
                    payment,
                    amount_fen,
                },
                None,
            ) if r.outcome == OpType::Info => {
                *seen.refunds_unknown.entry(*payment).or_default() += amount_fen;
            }
            _ => {}
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
    let Acknowledged {
        confirms,
        settled,
        right_code_tried,
        cancelled,
        refunded,
        refunds_unknown,
        mut errors,
    } = acknowledged(history);
    let mut stats = json!({"confirms": confirms, "settled_acknowledged": settled.len(), "cancelled_acknowledged": cancelled.len(), "refunds_acknowledged": refunded.len()});
    let Some(Answer::Payments {
        balances,
        payments,
        days,
        events,
    }) = cluster_final_read(history)
    else {
        return without_final_read(errors, stats);
    };
    let mut ends: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, payment) in payments {
        let state = &payment.state;
        *ends.entry(state.name()).or_default() += 1;
        let is_settled = matches!(state, PaymentState::Settled { .. });
        if settled.contains_key(id) && !is_settled {
            errors.push(json!({"error": "acknowledged settlement lost", "payment": id, "final_state": state}));
        }
        if cancelled.contains(id) && !matches!(state, PaymentState::Cancelled { .. }) {
            errors.push(
                json!({"error": "acknowledged cancel lost", "payment": id, "final_state": state}),
            );
        }
        if is_settled && payment.challenge().is_some() && !right_code_tried.contains(id) {
            errors.push(
                json!({"error": "settled without the right code ever being sent", "payment": id}),
            );
        }
        let acknowledged_fen = refunded.get(id).copied().unwrap_or(0);
        let unknown_fen = refunds_unknown.get(id).copied().unwrap_or(0);
        let total = payment.refunds.total_fen;
        if total < acknowledged_fen || total > acknowledged_fen + unknown_fen {
            errors.push(json!({"error": "refunds recorded are not the refunds asked for", "payment": id, "recorded": total, "acknowledged": acknowledged_fen, "unknown": unknown_fen}));
        }
        if total > payment.amount_fen || (total > 0 && !is_settled) {
            errors.push(json!({"error": "refunds beyond the bill, or of an unsettled payment", "payment": id, "refunds": payment.refunds, "state": state}));
        }
    }
    for id in settled.keys().filter(|id| !payments.contains_key(id)) {
        errors.push(
            json!({"error": "acknowledged payment missing from the final state", "payment": id}),
        );
    }
    errors.extend(ledger_time(payments));
    errors.extend(money(setup, balances, payments));
    if let Some(days) = days {
        errors.extend(reconciliation(setup, balances, payments, days));
        stats["reconciled_days"] = json!(days.len());
    }
    if let Some(events) = events {
        errors.extend(payment_events(payments, events));
        stats["events"] = json!(events.len());
    }
    stats["final_states"] = json!(ends);
    Finding::from_errors(errors, stats)
}

/// Ledger time never goes back, whatever the nodes' clocks do: payments are numbered in
/// log order, so their creation times never fall, and each ends no earlier than it began.
/// And no code works past its expiry by ledger time: an e-Pay payment settles before
/// `OTP_EXPIRY_MS` of ledger time have passed since its code was issued (with it).
fn ledger_time(payments: &BTreeMap<u64, Payment>) -> Vec<Value> {
    let mut errors = Vec::new();
    let mut latest: Option<(u64, u64)> = None;
    for (id, payment) in payments {
        if let Some((before, at)) = latest.filter(|(_, at)| payment.created_ms < *at) {
            errors.push(json!({"error": "ledger time went back: a payment was created before the one before it", "payment": id, "created_ms": payment.created_ms, "previous": before, "previous_created_ms": at}));
        }
        latest = Some((*id, payment.created_ms));
        let ended_ms = match payment.state {
            PaymentState::Settled { settled_ms, .. } => Some(settled_ms),
            PaymentState::Cancelled { cancelled_ms } => Some(cancelled_ms),
            PaymentState::Expired { expired_ms } => Some(expired_ms),
            _ => None,
        };
        if ended_ms.is_some_and(|end| end < payment.created_ms) {
            errors.push(json!({"error": "ledger time went back: a payment ended before it began", "payment": id, "created_ms": payment.created_ms, "state": payment.state}));
        }
        if let PaymentState::Settled { settled_ms, .. } = payment.state {
            let expires_ms = payment.created_ms + crate::db::OTP_EXPIRY_MS;
            if payment.challenge().is_some() && settled_ms >= expires_ms {
                errors.push(json!({"error": "a code worked past its expiry by ledger time", "payment": id, "created_ms": payment.created_ms, "settled_ms": settled_ms, "expires_ms": expires_ms}));
            }
        }
    }
    errors
}

/// The merchant's days reconcile: each day's net equals its settlement account's movement
/// and the sum of its rows; the days chain from an empty account to its final balance; and
/// together they hold every settled bill (payer's part and voucher's) and every refund.
fn reconciliation(
    setup: &Setup,
    balances: &BTreeMap<u64, i64>,
    payments: &BTreeMap<u64, Payment>,
    days: &[DaySeen],
) -> Vec<Value> {
    let mut errors = Vec::new();
    let Some(account) = setup.merchant_account else {
        return errors;
    };
    if days.is_empty() && !payments.is_empty() {
        errors.push(json!({"error": "no reconciliation read of the merchant's days"}));
        return errors;
    }
    let mut balance = 0i64;
    let (mut billed, mut refunded) = (0u64, 0u64);
    for d in days {
        let movement = d.closing_balance_fen - d.opening_balance_fen;
        if d.totals.net_fen != movement || d.rows_net_fen != movement {
            errors.push(json!({"error": "a day's reconciliation does not equal the settlement account's movement", "day": d}));
        }
        if d.opening_balance_fen != balance {
            errors.push(json!({"error": "a day opens at another balance than the day before closed", "day": d, "previous_closing": balance}));
        }
        balance = d.closing_balance_fen;
        let t = &d.totals;
        billed += t.payments_fen + t.swipes_fen + t.vouchers_fen;
        refunded += t.refunds_to_payers_fen + t.refunds_to_promotions_fen;
    }
    let final_balance = balances.get(&account).copied().unwrap_or(0);
    if !days.is_empty() && balance != final_balance {
        errors.push(json!({"error": "the last day closes at another balance than the account holds", "closing": balance, "balance": final_balance}));
    }
    let settled: u64 = payments
        .values()
        .filter(|p| matches!(p.state, PaymentState::Settled { .. }))
        .map(|p| p.amount_fen)
        .sum();
    let refunds: u64 = payments.values().map(|p| p.refunds.total_fen).sum();
    if (billed, refunded) != (settled, refunds) {
        errors.push(json!({"error": "the days' totals are not the settled bills and refunds", "billed": billed, "settled": settled, "refunded": refunded, "refunds": refunds}));
    }
    errors
}

/// Every payment that ended produced its event, once: a settled one `payment.settled` with
/// its bill, a cancelled, expired, superseded or failed one its own; its refunds each a
/// `payment.refunded`, adding up to what the payment records refunded; and no event names a
/// payment that did not end that way. Event ids only grow.
fn payment_events(payments: &BTreeMap<u64, Payment>, events: &[EventSeen]) -> Vec<Value> {
    let mut errors = Vec::new();
    if events.windows(2).any(|w| w[0].id >= w[1].id) {
        errors.push(json!({"error": "event ids do not grow"}));
    }
    let mut ends: BTreeMap<u64, Vec<&EventSeen>> = BTreeMap::new();
    let mut refunded: BTreeMap<u64, u64> = BTreeMap::new();
    for e in events {
        match e.kind {
            EventKind::Refunded { amount_fen, .. } => {
                *refunded.entry(e.payment).or_default() += amount_fen
            }
            _ => ends.entry(e.payment).or_default().push(e),
        }
    }
    for (id, payment) in payments {
        let want = match &payment.state {
            PaymentState::Pending => None,
            PaymentState::Settled { .. } => Some("payment.settled"),
            other => Some(match other {
                PaymentState::Superseded => "payment.superseded",
                PaymentState::Failed => "payment.failed",
                PaymentState::Cancelled { .. } => "payment.cancelled",
                _ => "payment.expired",
            }),
        };
        let got: Vec<&str> = ends
            .get(id)
            .into_iter()
            .flatten()
            .map(|e| e.kind.name())
            .collect();
        if got != want.into_iter().collect::<Vec<_>>() {
            errors.push(json!({"error": "a payment's end and its events disagree", "payment": id, "state": payment.state, "events": got}));
        }
        let bill_ok = ends.get(id).into_iter().flatten().all(|e| match e.kind {
            EventKind::Settled { bill_fen, .. } => bill_fen == payment.amount_fen,
            _ => true,
        });
        if !bill_ok {
            errors.push(json!({"error": "a settled event names another bill", "payment": id}));
        }
        if refunded.get(id).copied().unwrap_or(0) != payment.refunds.total_fen {
            errors.push(json!({"error": "a payment's refund events do not add up to its refunds", "payment": id, "events_fen": refunded.get(id), "refunds_fen": payment.refunds.total_fen}));
        }
    }
    for id in ends.keys().chain(refunded.keys()) {
        if !payments.contains_key(id) {
            errors.push(json!({"error": "an event names an unknown payment", "payment": id}));
        }
    }
    errors
}

/// Each customer paid exactly its settled payments' debits less what their refunds gave
/// back to it; money is neither created nor destroyed; no customer is overdrawn.
fn money(
    setup: &Setup,
    balances: &BTreeMap<u64, i64>,
    payments: &BTreeMap<u64, Payment>,
) -> Vec<Value> {
    let mut errors = Vec::new();
    let mut charged: BTreeMap<u64, i64> = BTreeMap::new();
    for payment in payments.values() {
        if let PaymentState::Settled { debited_fen, .. } = payment.state {
            *charged.entry(payment.payer.0).or_default() +=
                debited_fen as i64 - payment.refunds.to_payer_fen as i64;
        }
    }
    for account in &setup.accounts {
        let paid = setup.initial_balance_fen as i64 - balances.get(account).copied().unwrap_or(0);
        let settled = charged.get(account).copied().unwrap_or(0);
        if paid != settled {
            errors.push(json!({"error": "a customer's balance does not match its settled debits less refunds", "account": account, "paid": paid, "settled_debits_less_refunds": settled}));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::ledger::journal::ReconciliationTotals;

    fn setup() -> Setup {
        Setup {
            merchant: Some(1),
            merchant_account: Some(20),
            ..Setup::default()
        }
    }

    fn day(day: u64, opening: i64, closing: i64, swipes_fen: u64) -> DaySeen {
        DaySeen {
            day,
            totals: ReconciliationTotals {
                swipes: 1,
                swipes_fen,
                net_fen: closing - opening,
                ..Default::default()
            },
            opening_balance_fen: opening,
            closing_balance_fen: closing,
            rows: 1,
            rows_net_fen: closing - opening,
        }
    }

    fn swipe(amount_fen: u64) -> Payment {
        serde_json::from_value(json!({
            "payer": 16, "payee": {"Merchant": 1}, "amount_fen": amount_fen, "order_id": "r",
            "method": {"CardPresent": {"terminal": 1}},
            "state": {"Settled": {"debited_fen": amount_fen, "voucher": null, "settled_ms": 1, "points_earned": 0}},
            "created_ms": 1, "refunds": {"count": 0, "total_fen": 0, "to_payer_fen": 0, "points_taken": 0},
            "points_earned": 0
        }))
        .expect("a payment")
    }

    #[test]
    fn the_reconciliation_checker_accepts_days_that_chain_and_flags_one_that_does_not() {
        let payments = BTreeMap::from([(1, swipe(300)), (2, swipe(200))]);
        let balances = BTreeMap::from([(20, 500)]);
        let good = [day(1, 0, 300, 300), day(2, 300, 500, 200)];
        assert_eq!(
            reconciliation(&setup(), &balances, &payments, &good),
            Vec::<Value>::new()
        );
        // A day whose totals do not equal its movement.
        let mut wrong_net = good.clone();
        wrong_net[1].totals.net_fen = 150;
        // A gap between one day's close and the next day's opening.
        let gap = [day(1, 0, 300, 300), day(2, 250, 500, 200)];
        // Days that miss a settled bill.
        let missing = [day(1, 0, 300, 300), day(2, 300, 300, 0)];
        for (days, error) in [
            (
                &wrong_net[..],
                "does not equal the settlement account's movement",
            ),
            (&gap[..], "opens at another balance"),
            (&missing[..], "last day closes at another balance"),
        ] {
            let found = reconciliation(&setup(), &balances, &payments, days);
            assert!(
                found
                    .iter()
                    .any(|e| e["error"].as_str().is_some_and(|m| m.contains(error))),
                "{error}: {found:?}"
            );
        }
    }

    fn epay_payment(created_ms: u64, state: Value) -> Payment {
        serde_json::from_value(json!({
            "payer": 16, "payee": {"Merchant": 1}, "amount_fen": 100, "order_id": "o",
            "method": {"Epay": {"challenge": 1}}, "state": state, "created_ms": created_ms,
            "refunds": {"count": 0, "total_fen": 0, "to_payer_fen": 0, "points_taken": 0},
            "points_earned": 0
        }))
        .expect("a payment")
    }

    #[test]
    fn the_ledger_time_checker_flags_time_going_back_and_codes_past_expiry() {
        let settled_at = |ms: u64| json!({"Settled": {"debited_fen": 100, "voucher": null, "settled_ms": ms, "points_earned": 0}});
        let expiry = crate::db::OTP_EXPIRY_MS;
        let good: BTreeMap<u64, Payment> = [
            (1, epay_payment(1_000, settled_at(1_000 + expiry - 1))),
            (
                2,
                epay_payment(1_000, json!({"Expired": {"expired_ms": 1_000 + expiry}})),
            ),
            (3, epay_payment(5_000, json!("Pending"))),
        ]
        .into();
        assert_eq!(ledger_time(&good), Vec::<Value>::new());
        let errors_of = |payments: BTreeMap<u64, Payment>| -> Vec<String> {
            ledger_time(&payments)
                .iter()
                .map(|e| e["error"].as_str().expect("an error").to_owned())
                .collect()
        };
        let late = [(1, epay_payment(1_000, settled_at(1_000 + expiry)))].into();
        assert_eq!(
            errors_of(late),
            ["a code worked past its expiry by ledger time"]
        );
        let back = [
            (1, epay_payment(9_000, json!("Pending"))),
            (
                2,
                epay_payment(8_999, json!({"Cancelled": {"cancelled_ms": 8_000}})),
            ),
        ]
        .into();
        assert_eq!(
            errors_of(back),
            [
                "ledger time went back: a payment was created before the one before it",
                "ledger time went back: a payment ended before it began"
            ]
        );
    }

    #[test]
    fn the_event_checker_wants_each_end_once_and_refunds_that_add_up() {
        let mut refunded = swipe(200);
        refunded.refunds.total_fen = 50;
        let payments = BTreeMap::from([(1, swipe(300)), (2, refunded)]);
        let settled = |id, payment, bill_fen| EventSeen {
            id,
            payment,
            kind: EventKind::Settled {
                bill_fen,
                debited_fen: bill_fen,
                voucher_fen: 0,
            },
        };
        let refund = EventSeen {
            id: 3,
            payment: 2,
            kind: EventKind::Refunded {
                amount_fen: 50,
                refundable_fen: 150,
            },
        };
        let good = vec![settled(1, 1, 300), settled(2, 2, 200), refund.clone()];
        assert_eq!(payment_events(&payments, &good), Vec::<Value>::new());
        for (events, error) in [
            (
                vec![settled(2, 2, 200), refund.clone()],
                "a payment's end and its events disagree",
            ),
            (
                vec![
                    settled(1, 1, 300),
                    settled(2, 1, 300),
                    settled(3, 2, 200),
                    refund.clone(),
                ],
                "a payment's end and its events disagree",
            ),
            (
                vec![settled(1, 1, 300), settled(2, 2, 200)],
                "refund events do not add up",
            ),
            (
                vec![settled(1, 1, 999), settled(2, 2, 200), refund.clone()],
                "another bill",
            ),
            (
                vec![settled(2, 1, 300), settled(1, 2, 200), refund.clone()],
                "event ids do not grow",
            ),
            (
                vec![
                    settled(1, 1, 300),
                    settled(2, 2, 200),
                    refund.clone(),
                    settled(4, 9, 1),
                ],
                "unknown payment",
            ),
        ] {
            let found = payment_events(&payments, &events);
            assert!(
                found
                    .iter()
                    .any(|e| e["error"].as_str().is_some_and(|m| m.contains(error))),
                "{error}: {found:?}"
            );
        }
    }
}
