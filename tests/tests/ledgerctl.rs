//! `ledgerctl` as a script sees it, against real node processes: errors as JSON, a write
//! given up on retried under its printed key (applied once), a deposit sent while the leader
//! dies, a merchant's swipes, refunds and cancels.

use ledger_client::Client;
use ledger_core::command::CampaignFlags;
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::AccountId;
use ledger_tests::{eventually, serial, workspace_binary, Cluster};
use serde_json::Value;
use std::process::{Command as Process, Output};
use std::time::Duration;

/// Runs ledgerctl with `--json` against `endpoints`, as the test operator of `cluster`
/// (plaintext without one).
fn ledgerctl(cluster: Option<&Cluster>, endpoints: &str, args: &[&str]) -> Output {
    let identity = match cluster {
        Some(cluster) => cluster.ledgerctl_identity().to_vec(),
        None => vec!["--insecure-plaintext".to_owned()],
    };
    Process::new(workspace_binary("ledger-client", "ledgerctl"))
        .args(["--json", "--endpoints", endpoints])
        .args(identity)
        .args(args)
        .output()
        .expect("run ledgerctl")
}

fn endpoints(cluster: &Cluster) -> String {
    let all: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.info(*id).client_addr)
        .collect();
    all.join(",")
}

/// Standard output as one JSON document; panics with both streams when it is not.
fn json(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The `error` object of a failed run, checked for the fields every error has.
fn error(output: &Output, exit_code: i32) -> Value {
    let doc = json(output);
    assert_eq!(output.status.code(), Some(exit_code), "{doc}");
    let error = doc["error"].clone();
    assert!(error["type"].is_string(), "{doc}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{doc}"
    );
    assert!(error["retryable"].is_boolean(), "{doc}");
    error
}

async fn open_account(client: &Client, n: u64) -> AccountId {
    client
        .open_account(OpenAccountRequest {
            holder_name: format!("ledgerctl {n}"),
            card_number: Secret::new(ledger_testkit::driver::test_pan(n)),
            card_password: Secret::new("135790"),
            phone: ledger_testkit::driver::test_phone(n),
            flags: CampaignFlags::default(),
        })
        .await
        .expect("open account")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_name_their_type_and_whether_a_retry_can_help() {
    let nobody = error(&ledgerctl(None, "127.0.0.1:1", &["deposit", "16", "1"]), 1);
    assert_eq!(nobody["type"], "NoNodeReachable");
    assert_eq!(nobody["retryable"], true);

    let bad_amount = error(
        &ledgerctl(None, "127.0.0.1:1", &["deposit", "16", "1.234"]),
        2,
    );
    assert_eq!(bad_amount["type"], "InvalidArgument");
    assert_eq!(bad_amount["retryable"], false);

    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let account = open_account(&cluster.client(), 1).await;
    let id = account.0.to_string();
    let refused = error(
        &ledgerctl(
            Some(&cluster),
            &endpoints(&cluster),
            &["withdraw", &id, "1"],
        ),
        1,
    );
    assert_eq!(refused["type"], "Refused");
    assert_eq!(refused["reason"], "InsufficientFunds");
    assert_eq!(refused["retryable"], false);

    let missing = error(
        &ledgerctl(Some(&cluster), &endpoints(&cluster), &["account", "999999"]),
        1,
    );
    assert_eq!(missing["type"], "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_given_up_on_prints_its_key_and_retried_with_it_applies_once() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client();
    let account = open_account(&client, 2).await;
    let id = account.0.to_string();
    let leader = cluster.leader().await;
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|n| *n != leader).collect();
    // Without its followers the leader takes the write but cannot commit it: no answer.
    for follower in &followers {
        cluster.kill(*follower);
    }
    let given_up = ledgerctl(
        Some(&cluster),
        &endpoints(&cluster),
        &[
            "--deadline-ms",
            "3000",
            "--timeout-ms",
            "1000",
            "deposit",
            &id,
            "12.34",
        ],
    );
    let unknown = error(&given_up, 3);
    assert_eq!(unknown["type"], "OutcomeUnknown", "{unknown}");
    assert_eq!(unknown["retryable"], true);
    let key = unknown["key"]
        .as_str()
        .expect("the key to retry with")
        .to_owned();
    assert!(unknown["message"].as_str().unwrap().contains(&key));

    for follower in &followers {
        cluster.restart(*follower);
    }
    cluster.wait_ready(&cluster.ids()).await;
    let retried = ledgerctl(
        Some(&cluster),
        &endpoints(&cluster),
        &["--key", &key, "deposit", &id, "12.34"],
    );
    assert!(retried.status.success(), "{}", json(&retried));
    assert_eq!(json(&retried)["balance_fen"], 1_234);

    // Another deposit moves the balance, so a replay is told apart from a second apply.
    client.deposit(account, 100).await.expect("deposit");
    let again = ledgerctl(
        Some(&cluster),
        &endpoints(&cluster),
        &["--key", &key, "deposit", &id, "12.34"],
    );
    assert!(again.status.success(), "{}", json(&again));
    assert_eq!(
        json(&again)["balance_fen"],
        1_234,
        "a retry under the key answers the original outcome"
    );
    assert_eq!(client.balance(account).await.expect("balance"), 1_334);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_sent_while_the_leader_dies_is_applied_once() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let account = open_account(&cluster.client(), 3).await;
    let id = account.0.to_string();
    let leader = cluster.leader().await;
    cluster.kill(leader);
    // Sent at once, so ledgerctl meets the election (its old limit was ~1.5 s of retries).
    let deposit = ledgerctl(Some(&cluster), &endpoints(&cluster), &["deposit", &id, "5"]);
    if !deposit.status.success() {
        // What the survivors did meanwhile: their elections and the calls they answered.
        for id in cluster.ids().into_iter().filter(|n| *n != leader) {
            let log = cluster.log(id);
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("node {id}'s log, last lines:\n{}", tail.join("\n"));
        }
    }
    assert!(
        deposit.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&deposit.stdout),
        String::from_utf8_lossy(&deposit.stderr)
    );
    assert_eq!(json(&deposit)["balance_fen"], 500);
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|n| *n != leader).collect();
    let client = cluster.client_for(&survivors);
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    eventually(
        "the deposit on the new leader",
        Duration::from_secs(10),
        || async { (client.balance(account).await.ok()? == 500).then_some(()) },
    )
    .await;
}

/// Runs ledgerctl with `--json` as `identity` (a certificate of the cluster's PKI), with
/// `stdin` on its standard input.
fn ledgerctl_as(cluster: &Cluster, identity: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Process::new(workspace_binary("ledger-client", "ledgerctl"))
        .args(["--json", "--endpoints", &endpoints(cluster)])
        .args(["--certs", &cluster.pki().dir().display().to_string()])
        .args(["--identity", identity])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ledgerctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("ledgerctl output")
}

/// A merchant of `kind` with two terminals on card `n`'s account, and the name of the
/// certificate ledgerctl acts for it with.
async fn shop(
    cluster: &Cluster,
    client: &Client,
    n: u64,
    kind: ledger_core::types::MerchantKind,
) -> (ledger_core::types::MerchantId, String) {
    let account = open_account(client, n).await;
    let phone = ledger_testkit::driver::test_phone(n);
    let merchant = client
        .register_merchant(kind, &format!("shop {n}"), account, &phone, 2)
        .await
        .expect("register");
    cluster.identity(&ledger_wire::principal::Principal::Merchant { merchant });
    (merchant, format!("merchant-{}", merchant.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_swipes_refunds_and_cancels_with_ledgerctl() {
    use ledger_core::types::MerchantKind;
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let payer = open_account(&client, 4).await;
    client.deposit(payer, 50_000).await.expect("deposit");
    let (merchant, me) = shop(&cluster, &client, 5, MerchantKind::Pos).await;
    let m = merchant.0.to_string();
    let card = ledger_testkit::driver::test_pan(4);

    // The card number and PIN come from standard input, a line each: never on the command
    // line, where other users of the machine could read them.
    let swipe_at = |me: &str, m: &str, pin: &str, receipt: &str| {
        ledgerctl_as(
            &cluster,
            me,
            &[
                "pay",
                "swipe",
                "--merchant",
                m,
                "--terminal",
                "2",
                "--card",
                "-",
                "--pin",
                "-",
                "--amount",
                "120",
                "--receipt",
                receipt,
            ],
            &format!("{card}\n{pin}\n"),
        )
    };
    let swipe = |pin: &str, receipt: &str| swipe_at(&me, &m, pin, receipt);
    let wrong = error(&swipe("000000", "r1"), 1);
    assert_eq!(wrong["reason"], "WrongCardPassword", "{wrong}");
    let swiped = swipe("135790", "r1");
    assert!(swiped.status.success(), "{}", json(&swiped));
    let swiped = json(&swiped);
    assert_eq!(swiped["debited_fen"], 12_000);
    let payment = swiped["payment"].as_u64().expect("payment id").to_string();
    let again = error(&swipe("135790", "r1"), 1);
    assert_eq!(again["reason"], "DuplicateReceipt", "{again}");

    let refund = |amount: &str| {
        ledgerctl_as(
            &cluster,
            &me,
            &["pay", "refund", "--payment", &payment, "--amount", amount],
            "",
        )
    };
    let refunded = refund("20");
    assert!(refunded.status.success(), "{}", json(&refunded));
    assert_eq!(json(&refunded)["refundable_fen"], 10_000);
    let too_much = error(&refund("100.01"), 1);
    assert_eq!(too_much["reason"], "RefundExceedsBill", "{too_much}");
    assert_eq!(client.balance(payer).await.expect("balance"), 40_000);

    // Another merchant may not refund it.
    let (_, other) = shop(&cluster, &client, 6, MerchantKind::Online).await;
    let stranger = ledgerctl_as(
        &cluster,
        &other,
        &["pay", "refund", "--payment", &payment, "--amount", "1"],
        "",
    );
    let forbidden = error(&stranger, 1);
    assert_eq!(forbidden["type"], "Rejected", "{forbidden}");
    assert!(
        forbidden["message"]
            .as_str()
            .is_some_and(|m| m.contains("may not refund a payment")),
        "{forbidden}"
    );

    // The payment as ledgerctl shows it; a settled payment cannot be cancelled.
    let show = ledgerctl_as(&cluster, &me, &["pay", "show", &payment], "");
    assert!(show.status.success(), "{}", json(&show));
    let shown = json(&show);
    assert_eq!(shown["refunds"]["total_fen"], 2_000, "{shown}");
    assert_eq!(shown["method"]["CardPresent"]["terminal"], 2, "{shown}");
    let cancel = ledgerctl_as(&cluster, &me, &["pay", "cancel", "--payment", &payment], "");
    assert_eq!(error(&cancel, 1)["reason"], "PaymentNotPending");

    // The operator starts a second campaign beside the test cluster's: one settlement of
    // any amount earns a POS merchant 2 yuan. The merchant may not create one.
    let sprint = [
        "campaign",
        "create",
        "--name",
        "sprint",
        "--days",
        "1",
        "--pos-min-count",
        "1",
        "--pos-min-amount",
        "0",
        "--pos-reward",
        "2",
        "--no-shangyitong-reward",
        "--no-fee-tiers",
        "--vip-gift",
        "none",
    ];
    let refused = error(&ledgerctl_as(&cluster, &me, &sprint, ""), 1);
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("may not create a campaign")),
        "{refused}"
    );
    let created = ledgerctl(Some(&cluster), &endpoints(&cluster), &sprint);
    assert!(created.status.success(), "{}", json(&created));
    assert_eq!(json(&created)["id"], 2);
    let shown = json(&ledgerctl(
        Some(&cluster),
        &endpoints(&cluster),
        &["campaign", "show", "2"],
    ));
    assert_eq!(shown["rules"]["pos_reward"]["reward_fen"], 200, "{shown}");
    assert_eq!(shown["rules"]["fee_tiers"], Value::Null, "{shown}");
    let mut bad = sprint.to_vec();
    bad.truncate(bad.len() - 4);
    bad.extend(["--hold-months", "0"]);
    let bad = error(&ledgerctl(Some(&cluster), &endpoints(&cluster), &bad), 1);
    assert_eq!(bad["reason"], "InvalidCampaignRule", "{bad}");

    // The shop registered before it: its next swipe counts there but earns nothing. A shop
    // registered now earns the reward with its first.
    let counted = json(&swipe("135790", "r3"));
    assert_eq!(counted["rewards"], serde_json::json!([]), "{counted}");
    let counters = |me: &str, m: &str| {
        json(&ledgerctl_as(
            &cluster,
            me,
            &["campaign", "counters", "--campaign", "2", "--merchant", m],
            "",
        ))
    };
    let old = counters(&me, &m);
    assert_eq!(
        (old["tx_count"].as_u64(), old["amount_fen"].as_u64()),
        (Some(1), Some(12_000)),
        "{old}"
    );
    assert_eq!(old["reward_payment"], Value::Null, "{old}");
    let (new_shop, new_me) = shop(&cluster, &client, 7, MerchantKind::Pos).await;
    let new_m = new_shop.0.to_string();
    let rewarded = json(&swipe_at(&new_me, &new_m, "135790", "n1"));
    assert_eq!(rewarded["rewards"], serde_json::json!([2]), "{rewarded}");
    assert_eq!(
        counters(&new_me, &new_m)["reward_payment"],
        rewarded["payment"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_reconciles_its_day_and_a_customer_reads_its_statement_with_ledgerctl() {
    use ledger_core::types::MerchantKind;
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let payer = open_account(&client, 4).await;
    client.deposit(payer, 50_000).await.expect("deposit");
    let (merchant, me) = shop(&cluster, &client, 5, MerchantKind::Pos).await;
    let m = merchant.0.to_string();
    let card = ledger_testkit::driver::test_pan(4);
    let swiped = ledgerctl_as(
        &cluster,
        &me,
        &[
            "pay",
            "swipe",
            "--merchant",
            &m,
            "--terminal",
            "1",
            "--card",
            "-",
            "--pin",
            "-",
            "--amount",
            "120",
            "--receipt",
            "r1",
        ],
        &format!("{card}\n135790\n"),
    );
    assert!(swiped.status.success(), "{}", json(&swiped));
    let payment = json(&swiped)["payment"].as_u64().expect("payment id");
    let refunded = ledgerctl_as(
        &cluster,
        &me,
        &[
            "pay",
            "refund",
            "--payment",
            &payment.to_string(),
            "--amount",
            "20",
        ],
        "",
    );
    assert!(refunded.status.success(), "{}", json(&refunded));
    // The day the swipe settled in (not the clock's: the test may straddle midnight CST).
    let settled_ms = client
        .payment(ledger_core::types::PaymentId(payment))
        .await
        .expect("read payment")
        .expect("payment exists")
        .created_ms;
    let (y, mo, d) = ledger_core::time::cst_date(ledger_core::time::cst_day(settled_ms));
    let day = format!("{y:04}-{mo:02}-{d:02}");

    let report = ledgerctl_as(
        &cluster,
        &me,
        &["merchant", "reconcile", &m, "--day", &day],
        "",
    );
    assert!(report.status.success(), "{}", json(&report));
    let report = json(&report);
    let totals = &report["totals"];
    assert_eq!(
        (totals["swipes"].as_u64(), totals["swipes_fen"].as_u64()),
        (Some(1), Some(12_000)),
        "{report}"
    );
    assert_eq!(totals["refunds"], 1, "{report}");
    assert_eq!(totals["refunds_to_payers_fen"], 2_000, "{report}");
    assert_eq!(totals["net_fen"], 10_000, "{report}");
    assert_eq!(report["balanced"], true, "{report}");
    assert_eq!(
        report["statement"]["rows"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );

    // As CSV: a header and a row per posting, the refund negative.
    let csv = Process::new(workspace_binary("ledger-client", "ledgerctl"))
        .args(["--endpoints", &endpoints(&cluster)])
        .args(["--certs", &cluster.pki().dir().display().to_string()])
        .args(["--identity", &me])
        .args(["merchant", "reconcile", &m, "--day", &day, "--csv"])
        .output()
        .expect("run ledgerctl");
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let csv = String::from_utf8_lossy(&csv.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("seq,log_index,at_ms"), "{csv}");
    assert!(
        lines[1].contains(",swipe,") && lines[1].contains(",120.00,"),
        "{csv}"
    );
    assert!(
        lines[2].contains(",refund,") && lines[2].contains(",-20.00,100.00"),
        "{csv}"
    );

    // Another merchant may not read this one's day.
    let (_, other) = shop(&cluster, &client, 6, MerchantKind::Online).await;
    let stranger = ledgerctl_as(
        &cluster,
        &other,
        &["merchant", "reconcile", &m, "--day", &day],
        "",
    );
    let forbidden = error(&stranger, 1);
    assert!(
        forbidden["message"]
            .as_str()
            .is_some_and(|m| m.contains("may not read a merchant's reconciliation")),
        "{forbidden}"
    );
    let bad_day = error(
        &ledgerctl_as(
            &cluster,
            &me,
            &["merchant", "reconcile", &m, "--day", "2026-02-30"],
            "",
        ),
        2,
    );
    assert_eq!(bad_day["type"], "InvalidArgument", "{bad_day}");

    // The customer's statement, read by the operator, one row a page, followed to the end.
    let statement = json(&ledgerctl(
        Some(&cluster),
        &endpoints(&cluster),
        &[
            "statement",
            &payer.0.to_string(),
            "--from",
            &day,
            "--page-size",
            "1",
            "--all",
        ],
    ));
    let causes: Vec<&str> = statement["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["cause"].as_str())
        .collect();
    assert_eq!(causes, ["deposit", "swipe", "refund"], "{statement}");
    assert_eq!(statement["closing_balance_fen"], 40_000, "{statement}");
    assert_eq!(statement["next_cursor"], Value::Null, "{statement}");
    // One page only, then on from its cursor.
    let first = json(&ledgerctl(
        Some(&cluster),
        &endpoints(&cluster),
        &[
            "statement",
            &payer.0.to_string(),
            "--from",
            &day,
            "--page-size",
            "2",
            "--newest-first",
        ],
    ));
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let rest = json(&ledgerctl(
        Some(&cluster),
        &endpoints(&cluster),
        &[
            "statement",
            &payer.0.to_string(),
            "--page-size",
            "2",
            "--cursor",
            &cursor,
        ],
    ));
    assert_eq!(rest["rows"][0]["cause"], "deposit", "{rest}");
    // A cursor for another account is refused.
    let foreign = error(
        &ledgerctl(
            Some(&cluster),
            &endpoints(&cluster),
            &["statement", "1", "--page-size", "2", "--cursor", &cursor],
        ),
        1,
    );
    assert!(
        foreign["message"]
            .as_str()
            .is_some_and(|m| m.contains("cursor belongs to another read")),
        "{foreign}"
    );
}
