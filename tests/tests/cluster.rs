//! End-to-end tests over real `ledger-node` processes on 127.0.0.1.

use ledger_client::{ClientError, Consistency, Operation, Query, QueryReply};
use ledger_core::command::Command;
use ledger_core::intake::Secret;
use ledger_core::outcome::Reply;
use ledger_core::types::{AccountId, MerchantKind, Payee, RequestKey};
use ledger_tests::ops::{balance, deposit, open_account, transfer};
use ledger_tests::{eventually, serial, Cluster};
use ledger_wire::api::{ApiError, MAX_ACCOUNT_RANGE};
use ledger_wire::principal::Principal;
use ledger_wire::rpc::LedgerRpcClient;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A 16-digit Luhn-valid card number from `n`.
fn pan(n: u64) -> String {
    ledger_testkit::driver::test_pan(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_elects_exactly_one_leader_that_every_node_knows() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let mut leaders = 0;
    let mut terms = Vec::new();
    for id in cluster.ids() {
        let status = cluster.status(id).await.expect("status");
        assert_eq!(status.leader, Some(leader));
        assert_eq!(status.voters, vec![1, 2, 3]);
        leaders += usize::from(status.role == "Leader");
        terms.push(status.term);
    }
    assert_eq!(leaders, 1, "exactly one node says it leads");
    assert!(
        terms.windows(2).all(|w| w[0] == w[1]),
        "terms agree: {terms:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sent_to_a_follower_names_the_leader_and_the_client_follows_it() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");

    let operator = cluster.pki().operator().expect("operator certificate");
    let transport = ledger_wire::transport::connect_tls(
        &cluster.info(follower).client_addr,
        Duration::from_secs(1),
        operator.client_config(),
    )
    .await
    .expect("connect");
    let raw = LedgerRpcClient::new(tarpc::client::Config::default(), transport).spawn();
    let request = ledger_wire::api::ClientRequest {
        key: RequestKey {
            client_id: 1,
            request_id: 1,
        },
        acked_below: 0,
        operation: deposit(AccountId(16), 1),
    };
    let answer = raw
        .submit(tarpc::context::current(), vec![request])
        .await
        .expect("rpc");
    assert_eq!(
        answer,
        Err(ApiError::NotLeader {
            leader: Some(cluster.info(leader))
        })
    );

    // A client that only knows the follower still gets its write applied, by the leader.
    let client = cluster.client_for(&[follower]);
    let account = open_account(&client, 1).await;
    client
        .submit(deposit(account, 500))
        .await
        .expect("deposit through a follower");
    assert_eq!(balance(&client, account).await, 500);

    // An account range is read at one applied index; a range over the limit is refused.
    match client
        .query(
            Query::AccountRange {
                first: account,
                count: 2,
            },
            Consistency::Linearizable,
        )
        .await
        .expect("account range")
    {
        QueryReply::Accounts {
            applied_index,
            accounts,
        } => {
            assert!(applied_index > 0);
            assert_eq!(accounts.len(), 1, "one account exists in the range");
            assert_eq!(
                (accounts[0].account, accounts[0].balance_fen),
                (account, 500)
            );
        }
        other => panic!("unexpected reply {other:?}"),
    }
    let too_many = client
        .query(
            Query::AccountRange {
                first: AccountId(1),
                count: MAX_ACCOUNT_RANGE + 1,
            },
            Consistency::Stale,
        )
        .await;
    assert!(
        matches!(
            too_many,
            Err(ClientError::Rejected(ApiError::NotAllowed { .. }))
        ),
        "{too_many:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_payment() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = Arc::new(cluster.client());
    let account = open_account(&client, 1).await;

    // Four writers deposit 1 fen each, every deposit under its own key, for ~10 s (the kill
    // comes at 2 s: an election takes 3-5 s, more on a loaded machine).
    let acknowledged: Arc<Mutex<Vec<(RequestKey, Reply)>>> = Arc::default();
    let attempted = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(10);
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, acknowledged, attempted) =
            (client.clone(), acknowledged.clone(), attempted.clone());
        writers.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let key = client.new_key();
                attempted.fetch_add(1, Ordering::Relaxed);
                if let Ok(reply) = client.submit_with_key(key, deposit(account, 1)).await {
                    acknowledged.lock().unwrap().push((key, reply));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old_leader = cluster.leader().await;
    let before_kill = acknowledged.lock().unwrap().len();
    cluster.kill(old_leader);
    for w in writers {
        w.await.expect("writer");
    }
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);

    let acknowledged = acknowledged.lock().unwrap().clone();
    let attempted = attempted.load(Ordering::Relaxed) as i64;
    eprintln!(
        "killed {old_leader}; new leader {new_leader}; acknowledged {} ({before_kill} before the kill) of {attempted}",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() > before_kill,
        "the new leader served no write after the kill; its log:\n{}",
        cluster.log(new_leader)
    );
    let final_balance = balance(&client, account).await;
    assert!(
        acknowledged.len() as i64 <= final_balance && final_balance <= attempted,
        "acknowledged {} <= balance {final_balance} <= attempted {attempted}",
        acknowledged.len()
    );
    // Retrying an acknowledged deposit never applies it twice: the answer is the original
    // reply, or, once the client acknowledged it, a refusal as too old.
    for (key, reply) in acknowledged.iter().rev().take(50) {
        match client.submit_with_key(*key, deposit(account, 1)).await {
            Ok(again) => assert_eq!(&again, reply),
            Err(ClientError::Refused(ledger_core::LedgerError::RequestTooOld { .. })) => {}
            Err(e) => panic!("retry of {key:?}: {e}"),
        }
    }
    assert_eq!(balance(&client, account).await, final_balance);

    cluster.restart(old_leader);
    cluster.wait_converged(&cluster.ids()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_long_enough_catches_up_from_a_snapshot() {
    let _serial = serial().await;
    let mut cluster = Cluster::start_with(3, 50).await;
    let client = cluster.client();
    let account = open_account(&client, 1).await;
    let leader = cluster.leader().await;
    let lagging = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.kill(lagging);
    for _ in 0..300 {
        client.submit(deposit(account, 1)).await.expect("deposit");
    }
    cluster.restart(lagging);
    let hash = cluster.wait_converged(&cluster.ids()).await;
    assert!(
        cluster.log(lagging).contains("snapshot installed"),
        "node {lagging} caught up without a snapshot:\n{}",
        cluster.log(lagging)
    );
    assert_eq!(balance(&client, account).await, 300);
    assert_eq!(cluster.state_hash(lagging).await.expect("hash").1, hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restart_preserves_state_on_every_replica() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client();
    let a = open_account(&client, 1).await;
    let b = open_account(&client, 2).await;
    client.submit(deposit(a, 10_000)).await.expect("deposit");
    client
        .submit(transfer(a, b, 2_500))
        .await
        .expect("transfer");
    let before = cluster.wait_converged(&cluster.ids()).await;
    for id in cluster.ids() {
        cluster.kill(id);
    }
    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster.leader().await;
    let after = cluster.wait_converged(&cluster.ids()).await;
    assert_eq!(before, after, "state hash after restart");
    let client = cluster.client();
    assert_eq!(
        (balance(&client, a).await, balance(&client, b).await),
        (7_500, 2_500)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_grows_from_three_to_five_nodes_and_back() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client_for(&[1, 2, 3]);
    let account = open_account(&client, 1).await;
    for id in [4, 5] {
        cluster.add_process(id);
        cluster.restart(id);
        client.add_node(cluster.info(id)).await.expect("add node");
    }
    let voters = eventually("five voters", Duration::from_secs(30), || async {
        let s = cluster.status(cluster.leader().await).await?;
        (s.voters.len() == 5).then_some(s.voters)
    })
    .await;
    assert_eq!(voters, vec![1, 2, 3, 4, 5]);
    client
        .submit(deposit(account, 7))
        .await
        .expect("write with five voters");
    cluster.wait_converged(&[1, 2, 3, 4, 5]).await;

    for id in [4, 5] {
        client.remove_node(id).await.expect("remove node");
    }
    let voters = eventually("three voters", Duration::from_secs(30), || async {
        let s = cluster.status(cluster.leader().await).await?;
        (s.voters.len() == 3).then_some(s.voters)
    })
    .await;
    assert_eq!(voters, vec![1, 2, 3]);
    cluster.stop(4);
    cluster.stop(5);
    client
        .submit(deposit(account, 3))
        .await
        .expect("write with three voters again");
    assert_eq!(balance(&client, account).await, 10);
}

/// The chaos harness, 2026-12-04: a leader removed from the cluster went on calling itself
/// leader, with the membership as of its removal; asked to re-add a node the cluster had
/// removed since, it answered "already a voter", and the node stayed out for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_removed_from_the_cluster_answers_no_membership_call() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client_for(&[1, 2, 3]);
    let old = cluster.leader().await;
    client.remove_node(old).await.expect("remove the leader");
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != old).collect();
    let leader = eventually(
        "a leader among the others",
        Duration::from_secs(30),
        || async {
            let s = cluster.status(others[0]).await?;
            s.leader.filter(|l| *l != old)
        },
    )
    .await;
    let follower = *others.iter().find(|id| **id != leader).expect("two others");
    cluster
        .client_for(&[leader])
        .remove_node(follower)
        .await
        .expect("remove a follower");
    // The removed leader, asked alone: as of its removal, `follower` was a voter.
    let mut config = cluster.client_config(&[old]);
    config.call_timeout = Duration::from_secs(2);
    config.max_attempts = 2;
    let stale = ledger_client::Client::new(config);
    let answer = stale.add_node(cluster.info(follower)).await;
    assert!(
        answer.is_err(),
        "the removed leader answered for the cluster: {answer:?}"
    );
    let removed = stale.remove_node(old).await;
    assert!(
        removed.is_err(),
        "the removed leader answered for the cluster: {removed:?}"
    );
    let s = cluster.status(leader).await.expect("status");
    assert_eq!(s.voters, vec![leader], "the cluster as it is");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_whose_promotion_never_went_through_removes_it() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    // Node 4 is given ports but not started: added, it becomes a learner that never
    // catches up, and its promotion to voter never comes.
    cluster.add_process(4);
    let mut config = cluster.client_config(&[1, 2, 3]);
    config.call_timeout = Duration::from_secs(2);
    config.max_attempts = 1;
    let impatient = ledger_client::Client::new(config);
    assert!(
        impatient.add_node(cluster.info(4)).await.is_err(),
        "a node that is not running cannot be added as a voter"
    );
    let learner = eventually("node 4 a learner", Duration::from_secs(30), || async {
        let s = cluster.status(cluster.leader().await).await?;
        s.members.iter().any(|m| m.id == 4).then_some(s.voters)
    })
    .await;
    assert_eq!(learner, vec![1, 2, 3]);
    // Asked again, it is refused again, without a second membership entry for the learner
    // (the cluster is idle: nothing else is appended to the log).
    let leader = cluster.leader().await;
    let before = cluster.status(leader).await.expect("status");
    assert!(
        impatient.add_node(cluster.info(4)).await.is_err(),
        "still not running"
    );
    let after = cluster.status(leader).await.expect("status");
    assert_eq!(
        (after.last_log_index, after.voters),
        (before.last_log_index, before.voters),
        "the learner was not added twice"
    );
    let client = cluster.client_for(&[1, 2, 3]);
    client.remove_node(4).await.expect("remove the learner");
    let members = eventually("node 4 gone", Duration::from_secs(30), || async {
        let s = cluster.status(cluster.leader().await).await?;
        let ids: Vec<u64> = s.members.iter().map(|m| m.id).collect();
        (ids.len() == 3).then_some(ids)
    })
    .await;
    assert_eq!(members, vec![1, 2, 3]);
    // Removing a node that is no member changes nothing and says so without error.
    client.remove_node(4).await.expect("remove again");
    let account = open_account(&client, 1).await;
    client
        .submit(deposit(account, 5))
        .await
        .expect("write after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epay_payment_is_confirmed_with_the_otp_from_the_sms() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let payer = open_account(&client, 1).await;
    let shop = open_account(&client, 2).await;
    client
        .submit(deposit(payer, 100_000))
        .await
        .expect("deposit");
    let phone = ledger_testkit::driver::test_phone(1);

    // Enrolment in four steps through the bank's channel, the code read from the SMS outbox.
    let channel = cluster.client_as(&Principal::Channel { name: "web".into() });
    channel
        .submit(Operation::EpayBegin {
            card_number: Secret::new(pan(1)),
            phone: phone.clone(),
        })
        .await
        .expect("step 1");
    channel
        .submit(Operation::EpayChooseAlias {
            account: payer,
            card_password: Secret::new("135790"),
            alias: "小王".into(),
        })
        .await
        .expect("step 2");
    let Ok(Reply::ChallengeIssued { challenge, .. }) = channel
        .submit(Operation::EpayConfirm { account: payer })
        .await
    else {
        panic!("step 3")
    };
    let code = cluster.otp(challenge.0).await;
    channel
        .submit(Operation::EpayActivate {
            account: payer,
            code: Secret::new(code),
        })
        .await
        .expect("step 4");

    let Ok(Reply::MerchantRegistered { merchant }) = client
        .submit(Operation::Command(Command::RegisterMerchant {
            kind: MerchantKind::Pos,
            name: "湘江小店".into(),
            settlement_account: shop,
            contact_phone: ledger_testkit::driver::test_phone(2),
            terminals: 1,
        }))
        .await
    else {
        panic!("register merchant")
    };
    // The shop takes the payment with its own certificate.
    let shop_client = cluster.client_as(&Principal::Merchant { merchant });
    let last_six = &pan(1)[10..];
    let Ok(Reply::PaymentPending {
        payment, challenge, ..
    }) = shop_client
        .submit(Operation::PaymentBegin {
            phone,
            last_six: Secret::new(last_six),
            payee: Payee::Merchant(merchant),
            amount_fen: 10_000,
            order_id: "order-1".into(),
        })
        .await
    else {
        panic!("payment step 1")
    };
    let sms = eventually("the payment SMS", Duration::from_secs(20), || async {
        cluster.sms().into_iter().find(|m| m.id == challenge.0)
    })
    .await;
    assert!(
        sms.text.contains("小王") && sms.text.contains("湘江小店") && sms.text.contains("100.00"),
        "{}",
        sms.text
    );
    let code = sms.code().expect("code in the SMS");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = shop_client
        .submit(Operation::PaymentConfirm {
            payment,
            code: Secret::new(wrong),
        })
        .await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Refused(ledger_core::LedgerError::WrongOtp {
                attempts_left: 2
            }))
        ),
        "{refused:?}"
    );
    let settled = shop_client
        .submit(Operation::PaymentConfirm {
            payment,
            code: Secret::new(code),
        })
        .await;
    assert!(
        matches!(
            settled,
            Ok(Reply::PaymentSettled {
                debited_fen: 10_000,
                ..
            })
        ),
        "{settled:?}"
    );
    assert_eq!(
        (balance(&client, payer).await, balance(&client, shop).await),
        (90_000, 10_000)
    );
    // The code never reached a node's log.
    for id in cluster.ids() {
        assert!(
            !cluster.log(id).contains(&pan(1)),
            "card number in node {id}'s log"
        );
    }
}

/// Sends raw bytes to an address and returns what came back before the peer closed (or 2 s).
async fn raw_exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_undecodable_frames_are_refused_without_harming_the_node() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let account = open_account(&client, 1).await;
    for id in cluster.ids() {
        let info = cluster.info(id);
        for addr in [&info.client_addr, &info.raft_addr] {
            // A frame announcing 1 GiB, far above the 16 MiB limit: the connection is closed.
            let mut oversized = (1u32 << 30).to_be_bytes().to_vec();
            oversized.extend_from_slice(&[0xAB; 4096]);
            raw_exchange(addr, &oversized).await;
            // A well-sized frame of garbage that does not decode.
            let mut garbage = 64u32.to_be_bytes().to_vec();
            garbage.extend_from_slice(&[0xFF; 64]);
            raw_exchange(addr, &garbage).await;
        }
    }
    cluster.assert_alive();
    client
        .submit(deposit(account, 42))
        .await
        .expect("the cluster still serves");
    assert_eq!(balance(&client, account).await, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_reports_health_readiness_and_metrics() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let account = open_account(&client, 1).await;
    client.submit(deposit(account, 1)).await.expect("deposit");
    let leader = cluster.leader().await;
    let admin = cluster
        .nodes
        .iter()
        .find(|n| n.info.id == leader)
        .expect("leader")
        .admin_addr
        .clone();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").into_bytes();
    let health = String::from_utf8(raw_exchange(&admin, &get("/health")).await).expect("utf8");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = String::from_utf8(raw_exchange(&admin, &get("/ready")).await).expect("utf8");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = String::from_utf8(raw_exchange(&admin, &get("/metrics")).await).expect("utf8");
    for series in [
        "ledger_raft_term ",
        &format!("ledger_raft_leader_id {leader}"),
        "ledger_raft_applied_index ",
        "ledger_raft_replication_lag{peer=",
        "ledger_commands_ok_total ",
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ledger_request_duration_seconds_bucket{")
                && l.contains("call=\"submit\"")
                && l.contains("le=\"+Inf\"")),
        "no submit latency histogram in:\n{metrics}"
    );
    assert!(
        metrics.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    let missing = String::from_utf8(raw_exchange(&admin, &get("/nope")).await).expect("utf8");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}
