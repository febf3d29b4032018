//! The client library and `ledgerctl` against a real 3-node cluster.

use ledger_client::{Client, ClientError, Operation};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::state::PaymentState;
use ledger_core::types::{AccountId, MerchantId, MerchantKind, Payee, PaymentId};
use ledger_core::LedgerError;
use ledger_tests::{eventually, serial, workspace_binary, Cluster};
use ledger_wire::principal::Principal;
use std::process::Command as Process;
use std::time::Duration;

fn channel() -> Principal {
    Principal::Channel { name: "web".into() }
}

/// The merchant's own client: it begins and confirms its payments.
fn as_merchant(cluster: &Cluster, merchant: MerchantId) -> Client {
    cluster.client_as(&Principal::Merchant { merchant })
}

struct Payer {
    account: AccountId,
    phone: String,
    last_six: String,
}

async fn enrolled_payer(cluster: &Cluster, client: &Client, n: u64, balance_fen: u64) -> Payer {
    let pan = ledger_testkit::driver::test_pan(n);
    let phone = ledger_testkit::driver::test_phone(n);
    let account = client
        .open_account(OpenAccountRequest {
            holder_name: format!("payer {n}"),
            card_number: Secret::new(&pan),
            card_password: Secret::new("135790"),
            phone: phone.clone(),
            flags: CampaignFlags::default(),
        })
        .await
        .expect("open account");
    client.deposit(account, balance_fen).await.expect("deposit");
    // The customer enrols through the bank's channel.
    let client = &cluster.client_as(&channel());
    client
        .epay_begin(Secret::new(&pan), &phone)
        .await
        .expect("step 1");
    client
        .epay_choose_alias(account, Secret::new("135790"), "卡")
        .await
        .expect("step 2");
    let issued = client.epay_confirm(account).await.expect("step 3");
    let code = cluster.otp(issued.challenge.0).await;
    client
        .epay_activate(account, Secret::new(code))
        .await
        .expect("step 4");
    Payer {
        account,
        phone,
        last_six: pan[pan.len() - 6..].to_owned(),
    }
}

async fn shop(client: &Client, n: u64) -> (MerchantId, AccountId) {
    let account = client
        .open_account(OpenAccountRequest {
            holder_name: "shop".into(),
            card_number: Secret::new(ledger_testkit::driver::test_pan(n)),
            card_password: Secret::new("135790"),
            phone: ledger_testkit::driver::test_phone(n),
            flags: CampaignFlags::default(),
        })
        .await
        .expect("open shop account");
    let merchant = client
        .register_merchant(
            MerchantKind::Online,
            "网店",
            account,
            &ledger_testkit::driver::test_phone(n),
            1,
        )
        .await
        .expect("register");
    (merchant, account)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_timeout_charges_once() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let payer = enrolled_payer(&cluster, &client, 1, 100_000).await;
    let (merchant, shop_account) = shop(&client, 2).await;
    let shop_client = as_merchant(&cluster, merchant);
    let pending = shop_client
        .begin_payment(
            &payer.phone,
            Secret::new(&payer.last_six),
            Payee::Merchant(merchant),
            3_000,
            "t-1",
        )
        .await
        .expect("begin");
    let code = cluster.otp(pending.challenge.0).await;
    let confirm = Operation::PaymentConfirm {
        payment: pending.payment,
        code: Secret::new(&code),
    };

    // A client so impatient that its only attempt times out: the outcome is unknown to it.
    let mut impatient = cluster.client_config_as(&Principal::Merchant { merchant });
    impatient.call_timeout = Duration::from_micros(1);
    impatient.max_attempts = 1;
    let impatient = Client::new(impatient);
    let key = impatient.new_key();
    let first = impatient.submit_with_key(key, confirm.clone()).await;
    assert!(
        matches!(first, Err(ClientError::Unavailable { .. })),
        "{first:?}"
    );

    // The retry, under the same key, settles the payment or answers how it settled.
    let retry = shop_client
        .submit_with_key(key, confirm.clone())
        .await
        .expect("retry");
    let again = shop_client
        .submit_with_key(key, confirm)
        .await
        .expect("second retry");
    assert_eq!(retry, again);
    assert!(
        matches!(
            retry,
            ledger_core::Reply::PaymentSettled {
                debited_fen: 3_000,
                ..
            }
        ),
        "{retry:?}"
    );
    assert_eq!(
        client.balance(payer.account).await.unwrap(),
        97_000,
        "charged once"
    );
    assert_eq!(client.balance(shop_account).await.unwrap(), 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_a_different_body_is_refused() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let payer = enrolled_payer(&cluster, &client, 1, 1_000).await;
    let key = client.new_key();
    client
        .submit_with_key(
            key,
            Operation::Command(Command::Deposit {
                account: payer.account,
                amount_fen: 1,
            }),
        )
        .await
        .expect("first use");
    let reused = client
        .submit_with_key(
            key,
            Operation::Command(Command::Deposit {
                account: payer.account,
                amount_fen: 2,
            }),
        )
        .await;
    assert_eq!(
        reused,
        Err(ClientError::Refused(LedgerError::IdempotencyKeyReused {
            key
        }))
    );
    assert_eq!(client.balance(payer.account).await.unwrap(), 1_001);
}

/// Pays one order to the end, through failures: a failed step is retried (begin with a new
/// key: a second begin for the same order supersedes the first or reports it paid; confirm
/// under its key: never twice).
async fn pay_through_failures(
    cluster: &Cluster,
    client: &Client,
    payer: &Payer,
    merchant: MerchantId,
    order: &str,
) -> PaymentId {
    for _ in 0..20 {
        let pending = match client
            .begin_payment(
                &payer.phone,
                Secret::new(&payer.last_six),
                Payee::Merchant(merchant),
                100,
                order,
            )
            .await
        {
            Ok(p) => p,
            Err(ClientError::Refused(LedgerError::OrderAlreadyPaid { payment })) => return payment,
            Err(e) if e.is_retryable() => continue,
            Err(e) => panic!("begin {order}: {e}"),
        };
        let code = cluster.otp(pending.challenge.0).await;
        let key = client.new_key();
        let confirm = Operation::PaymentConfirm {
            payment: pending.payment,
            code: Secret::new(code),
        };
        for _ in 0..5 {
            match client.submit_with_key(key, confirm.clone()).await {
                Ok(_) => return pending.payment,
                Err(e) if e.is_retryable() => continue,
                Err(ClientError::Refused(LedgerError::PaymentNotPending { .. })) => break,
                Err(e) => panic!("confirm {order}: {e}"),
            }
        }
    }
    panic!("order {order} could not be paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_in_a_merchants_stream_of_payments_loses_none_and_charges_none_twice() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client();
    let payer = enrolled_payer(&cluster, &client, 1, 100_000).await;
    let (merchant, shop_account) = shop(&client, 2).await;
    let shop_client = as_merchant(&cluster, merchant);
    let orders = 24;
    let mut payments = Vec::new();
    for i in 0..orders {
        if i == orders / 2 {
            let leader = cluster.leader().await;
            cluster.kill(leader);
        }
        payments.push(
            pay_through_failures(
                &cluster,
                &shop_client,
                &payer,
                merchant,
                &format!("stream-{i}"),
            )
            .await,
        );
    }
    payments.sort();
    payments.dedup();
    assert_eq!(payments.len(), orders, "one payment per order");
    for p in &payments {
        let payment = client.payment(*p).await.unwrap().expect("payment");
        assert!(
            matches!(payment.state, PaymentState::Settled { .. }),
            "{p}: {:?}",
            payment.state
        );
    }
    assert_eq!(
        client.balance(payer.account).await.unwrap(),
        100_000 - 100 * orders as i64,
        "each order charged once"
    );
    assert_eq!(
        client.balance(shop_account).await.unwrap(),
        100 * orders as i64
    );
    let counters = client
        .merchant_campaign(merchant, ledger_core::types::CampaignId(1))
        .await
        .unwrap()
        .expect("the test campaign counted the shop");
    assert_eq!(counters.tx_count, orders as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerctl_demo_plays_the_article_and_passes() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let endpoints: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.info(*id).client_addr)
        .collect();
    let ledgerctl = workspace_binary("ledger-client", "ledgerctl");
    let output = Process::new(&ledgerctl)
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .args(cluster.ledgerctl_identity())
        .arg("--data-dir")
        .arg(cluster.data_root())
        .arg("demo")
        .output()
        .expect("run ledgerctl demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("pool exhausted")
            && stdout.contains("earned the reward")
            && stdout.contains("deducted at the swipe")
            && stdout.contains("10.00 back to promotions")
            && stdout.contains("earned 80 points")
            && stdout.contains("out of stock"),
        "{stdout}"
    );
    // And `status` sees the cluster.
    let status = Process::new(&ledgerctl)
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .args(cluster.ledgerctl_identity())
        .arg("status")
        .output()
        .expect("status");
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("Leader"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerctl_explains_an_unreachable_cluster_and_bad_arguments() {
    let ledgerctl = workspace_binary("ledger-client", "ledgerctl");
    let unreachable = Process::new(&ledgerctl)
        .args([
            "--endpoints",
            "127.0.0.1:1",
            "--insecure-plaintext",
            "--timeout-ms",
            "500",
            "account",
            "16",
        ])
        .output()
        .expect("run");
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("Is the cluster running?"));
    let bad = Process::new(&ledgerctl)
        .args(["deposit", "16", "1.234"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an amount in yuan"));
}

/// Every command and subcommand of a binary, found from its own `--help`.
fn commands(binary: &std::path::Path, path: &[String]) -> Vec<Vec<String>> {
    let output = Process::new(binary)
        .args(path)
        .arg("--help")
        .output()
        .expect("run --help");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && text.contains("Usage:"),
        "{path:?} --help:\n{text}"
    );
    let mut found = vec![path.to_vec()];
    let Some(start) = text.find("Commands:") else {
        return found;
    };
    for line in text[start..].lines().skip(1) {
        let Some(name) = line.split_whitespace().next() else {
            break;
        };
        if !line.starts_with("  ") {
            break;
        }
        if name != "help" {
            let mut sub = path.to_vec();
            sub.push(name.to_owned());
            found.extend(commands(binary, &sub));
        }
    }
    found
}

#[test]
fn every_command_has_help() {
    for (package, bin, at_least) in [
        ("ledger-client", "ledgerctl", 30),
        ("ledger-node", "ledger-node", 7),
        ("ledger-client", "ledger-bench", 1),
    ] {
        let binary = workspace_binary(package, bin);
        let all = commands(&binary, &[]);
        assert!(
            all.len() >= at_least,
            "{bin}: only {} commands: {all:?}",
            all.len()
        );
    }
}

/// Submits `operation` under a fresh key, then again under the same key: both answers equal.
async fn twice(client: &Client, operation: Operation) -> ledger_core::Reply {
    let key = client.new_key();
    let first = client
        .submit_with_key(key, operation.clone())
        .await
        .expect("first");
    let again = client.submit_with_key(key, operation).await.expect("retry");
    assert_eq!(first, again, "a retry must return the original answer");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_any_operation_returns_its_original_answer() {
    use ledger_core::Reply;
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let pan = ledger_testkit::driver::test_pan(1);
    let phone = ledger_testkit::driver::test_phone(1);
    let open = Operation::OpenAccount(OpenAccountRequest {
        holder_name: "retry".into(),
        card_number: Secret::new(&pan),
        card_password: Secret::new("135790"),
        phone: phone.clone(),
        flags: CampaignFlags::default(),
    });
    let Reply::AccountOpened { account } = twice(&client, open).await else {
        panic!("open")
    };
    twice(
        &client,
        Operation::Command(Command::Deposit {
            account,
            amount_fen: 50_000,
        }),
    )
    .await;
    let channel = cluster.client_as(&channel());
    twice(
        &channel,
        Operation::EpayBegin {
            card_number: Secret::new(&pan),
            phone: phone.clone(),
        },
    )
    .await;
    twice(
        &channel,
        Operation::EpayChooseAlias {
            account,
            card_password: Secret::new("135790"),
            alias: "a".into(),
        },
    )
    .await;
    let Reply::ChallengeIssued { challenge, .. } =
        twice(&channel, Operation::EpayConfirm { account }).await
    else {
        panic!("confirm")
    };
    let code = cluster.otp(challenge.0).await;
    twice(
        &channel,
        Operation::EpayActivate {
            account,
            code: Secret::new(code),
        },
    )
    .await;
    let (merchant, _) = shop(&client, 2).await;
    let shop_client = as_merchant(&cluster, merchant);
    let begin = Operation::PaymentBegin {
        phone,
        last_six: Secret::new(&pan[pan.len() - 6..]),
        payee: Payee::Merchant(merchant),
        amount_fen: 1_000,
        order_id: "retry-1".into(),
    };
    let Reply::PaymentPending {
        payment, challenge, ..
    } = twice(&shop_client, begin).await
    else {
        panic!("begin")
    };
    let code = cluster.otp(challenge.0).await;
    twice(
        &shop_client,
        Operation::PaymentConfirm {
            payment,
            code: Secret::new(code),
        },
    )
    .await;
    assert_eq!(
        client.balance(account).await.unwrap(),
        49_000,
        "every operation applied once"
    );
}

/// The merchant's events, read from its cursor, all pages.
async fn all_events(shop: &Client, merchant: MerchantId) -> Vec<ledger_core::state::Event> {
    let mut events = Vec::new();
    loop {
        let after = events
            .last()
            .map_or(0, |e: &ledger_core::state::Event| e.id);
        let page = shop
            .events(
                merchant,
                after,
                100,
                ledger_client::Consistency::Linearizable,
            )
            .await
            .expect("read events");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchants_webhook_gets_every_event_once_signed_across_a_kill_of_the_leader() {
    use ledger_tests::merchant::{Answer, MerchantServer};
    use ledger_wire::webhook::Delivery;
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client();
    let payer = enrolled_payer(&cluster, &client, 1, 100_000).await;
    let (merchant, _) = shop(&client, 2).await;
    let shop_client = as_merchant(&cluster, merchant);
    // The merchant's endpoint fails at first: every event waits in the outbox.
    let server = MerchantServer::start(Answer::Fail).await;
    let version = shop_client
        .set_webhook(merchant, Some(&server.url()))
        .await
        .expect("register the webhook")
        .expect("a secret version");
    let (secret_version, secret) = shop_client
        .webhook_secret(merchant)
        .await
        .expect("read the secret")
        .expect("a secret");
    assert_eq!(secret_version, version);

    let orders = 6;
    let mut payments = Vec::new();
    for i in 0..orders {
        let order = format!("hook-{i}");
        payments.push(pay_through_failures(&cluster, &shop_client, &payer, merchant, &order).await);
    }
    shop_client
        .refund_payment(payments[0], 40)
        .await
        .expect("a partial refund");
    let events = all_events(&shop_client, merchant).await;
    for p in &payments {
        assert!(
            events.iter().any(|e| e.payment == *p
                && matches!(e.kind, ledger_core::state::EventKind::Settled { .. })),
            "settled payment {p} has its event: {events:?}"
        );
    }
    // The endpoint was tried and refused; nothing was acknowledged.
    eventually(
        "a failed delivery attempt",
        Duration::from_secs(20),
        || async { (!server.received().is_empty()).then_some(()) },
    )
    .await;
    let hook = shop_client.webhook(merchant).await.unwrap().expect("hook");
    assert_eq!(hook.delivered, 0);
    assert_eq!(hook.undelivered, events.len() as u64);

    // Settled, not delivered: the leader dies (kill -9); its successor delivers.
    let leader = cluster.leader().await;
    cluster.kill(leader);
    server.answer(Answer::Accept);
    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let reader = cluster.client_for(&survivors);
    eventually("every event delivered", Duration::from_secs(60), || async {
        let hook = reader.webhook(merchant).await.ok()??;
        (hook.undelivered == 0 && server.accepted().len() == events.len()).then_some(())
    })
    .await;

    // Each event exactly once after deduplication by id, signed with the merchant's secret,
    // its body the event the cursor shows.
    let accepted = server.accepted();
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(accepted.keys().copied().collect::<Vec<_>>(), ids);
    for received in server.received() {
        let signature = received.signature.as_deref().expect("X-Signature");
        assert!(
            ledger_core::intake::verify_webhook_signature(&secret, &received.body, signature),
            "a valid signature on event {:?}",
            received.event_id
        );
        let delivery: Delivery = serde_json::from_slice(&received.body).expect("a JSON body");
        assert_eq!(Some(delivery.id), received.event_id);
        assert_eq!(Some(delivery.sent_ms), received.timestamp);
        let event = events
            .iter()
            .find(|e| e.id == delivery.id)
            .expect("a known event");
        assert_eq!(delivery, Delivery::new(event, delivery.sent_ms));
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "payment.settled").count(),
        orders
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "payment.refunded").count(),
        1
    );
    let hook = reader.webhook(merchant).await.unwrap().expect("hook");
    assert_eq!(hook.delivered, events.len() as u64);
    assert!(!hook.failing);
}
