//! Backup of a running cluster and restore into a new one, with the `ledger-node backup` and
//! `restore` commands an operator runs, over real node processes on 127.0.0.1.

use ledger_core::types::MerchantId;
use ledger_tests::ops::{balance, deposit, open_account, transfer};
use ledger_tests::{serial, workspace_binary, Cluster};
use ledger_wire::principal::Principal;
use std::path::Path;
use std::process::{Command as Process, Output};

fn ledger_node(args: &[String]) -> Output {
    Process::new(workspace_binary("ledger-node", "ledger-node"))
        .args(args)
        .output()
        .expect("run ledger-node")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `ledger-node restore` of node `id` into `data_dir`, for a cluster of `members`.
fn restore_args(file: &Path, data_dir: &Path, id: u64, members: &[String]) -> Vec<String> {
    let mut args = vec![
        "restore".to_owned(),
        "--from".into(),
        file.display().to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--id".into(),
        id.to_string(),
    ];
    for m in members {
        args.extend(["--member".to_owned(), m.clone()]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_a_new_cluster_has_the_same_state_and_goes_on() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client();
    let a = open_account(&client, 1).await;
    let b = open_account(&client, 2).await;
    client.submit(deposit(a, 50_000)).await.expect("deposit");
    client
        .submit(transfer(a, b, 12_345))
        .await
        .expect("transfer");
    // The client's last request: its answer is what a retry must get, before and after.
    let key = client.new_key();
    let answered = client
        .submit_with_key(key, deposit(b, 7_000))
        .await
        .expect("deposit with a known key");

    // The backup, from the leader, as an operator.
    let leader = cluster.leader().await;
    let file = cluster.data_root().join("cluster.ledger-backup");
    let mut args = vec![
        "backup".to_owned(),
        "--endpoint".into(),
        cluster.info(leader).client_addr,
        "--to".into(),
        file.display().to_string(),
    ];
    args.extend(cluster.ledgerctl_identity());
    let taken = ledger_node(&args);
    assert!(taken.status.success(), "backup: {}", text(&taken));
    let report = text(&taken);
    assert!(report.contains("linearizable"), "{report}");
    let (_, leader_hash) = cluster.state_hash(leader).await.expect("leader's hash");
    assert!(
        report.contains(&format!("state hash {}", leader_hash.to_hex())),
        "the backup's state hash is the leader's ({}): {report}",
        leader_hash.to_hex()
    );
    // Never over an existing file.
    let again = ledger_node(&args);
    assert!(!again.status.success() && text(&again).contains("already exists"));

    // A merchant may not take one (the operator only).
    let merchant = cluster.client_as(&Principal::Merchant {
        merchant: MerchantId(1),
    });
    let refused = merchant
        .backup(&cluster.info(leader).client_addr)
        .await
        .expect_err("a merchant's backup");
    assert!(
        matches!(
            refused,
            ledger_client::ClientError::Rejected(ledger_wire::api::ApiError::Forbidden { .. })
        ),
        "{refused}"
    );

    // The old cluster goes away; three new nodes are restored from the file.
    for id in cluster.ids() {
        cluster.stop(id);
    }
    let new_ids = [4, 5, 6];
    for id in new_ids {
        cluster.add_process(id);
    }
    let members: Vec<String> = new_ids
        .iter()
        .map(|id| {
            let info = cluster.info(*id);
            format!("{id}={},{}", info.raft_addr, info.client_addr)
        })
        .collect();
    let data_dir = |id: u64| cluster.data_root().join(format!("node{id}"));

    // A damaged file is refused and leaves nothing behind.
    let damaged = cluster.data_root().join("damaged.ledger-backup");
    let mut bytes = std::fs::read(&file).expect("backup file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&damaged, &bytes).expect("damaged copy");
    let refused = ledger_node(&restore_args(&damaged, &data_dir(4), 4, &members));
    assert!(
        !refused.status.success() && text(&refused).contains("damaged"),
        "{}",
        text(&refused)
    );
    assert!(!data_dir(4).join("sled").exists());

    for id in new_ids {
        let restored = ledger_node(&restore_args(&file, &data_dir(id), id, &members));
        assert!(
            restored.status.success(),
            "restore {id}: {}",
            text(&restored)
        );
    }
    // A second restore into the same folder is refused: it holds a node's data now.
    let twice = ledger_node(&restore_args(&file, &data_dir(4), 4, &members));
    assert!(
        !twice.status.success() && text(&twice).contains("already holds"),
        "{}",
        text(&twice)
    );
    for id in new_ids {
        cluster.restart(id);
    }
    cluster.wait_ready(&new_ids).await;
    let restored_hash = cluster.wait_converged(&new_ids).await;
    assert_eq!(
        restored_hash.to_hex(),
        leader_hash.to_hex(),
        "the restored cluster's state is the backup's"
    );

    // It goes on: balances as they were, the recorded answer of a request made before the
    // backup is replayed (not applied again), and new writes apply.
    let client = cluster.client_for(&new_ids);
    assert_eq!(balance(&client, a).await, 50_000 - 12_345);
    assert_eq!(balance(&client, b).await, 7_000 + 12_345);
    let replayed = client
        .submit_with_key(key, deposit(b, 7_000))
        .await
        .expect("the same request again");
    assert_eq!(replayed, answered);
    assert_eq!(balance(&client, b).await, 7_000 + 12_345);
    client.submit(deposit(a, 1)).await.expect("a new deposit");
    assert_eq!(balance(&client, a).await, 50_000 - 12_345 + 1);

    // A node that joins later starts empty and gets the state from the restored snapshot
    // (the log before the backup's position is not there to replay).
    cluster.add_process(7);
    cluster.restart(7);
    client
        .add_node(cluster.info(7))
        .await
        .expect("add node 7 to the restored cluster");
    let with_seven = [4, 5, 6, 7];
    cluster.wait_converged(&with_seven).await;
    assert_eq!(
        balance(&cluster.client_for(&[7]), a).await,
        50_000 - 12_345 + 1
    );
}
