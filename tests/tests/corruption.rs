//! Corrupted storage, for real: a stopped node's stored data has a bit flipped (in a ledger
//! record, in a log entry); started again, it refuses to serve from it and exits saying
//! why; `ledger-node scrub` names the bad value; the node is repaired from its peers as the
//! operator's guide says (removed, wiped, started empty, added again) and converges.

use ledger_client::Consistency;
use ledger_core::state::Key;
use ledger_tests::ops::{balance, deposit, open_account};
use ledger_tests::{eventually, node_binary, serial, Cluster};
use ledger_wire::api::{Query, QueryReply};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Flips one bit of the value stored under `key` (or, without one, of the last value) in
/// tree `tree` of the stopped node's database at `data_dir`: what a disk can do.
fn flip_a_bit(data_dir: &Path, tree: &str, key: Option<Vec<u8>>) {
    let db = sled::open(data_dir.join("sled")).expect("the stopped node's database");
    let tree = db.open_tree(tree).expect("tree");
    let (key, value) = match key {
        Some(key) => {
            let value = tree.get(&key).expect("read").expect("the record is stored");
            (sled::IVec::from(key), value)
        }
        None => tree.last().expect("read").expect("a stored value"),
    };
    let mut value = value.to_vec();
    value[0] ^= 0x04;
    tree.insert(key, value).expect("write");
    db.flush().expect("flush");
}

/// `ledger-node scrub` on a stopped node's data directory: (success, stdout + stderr).
fn scrub(data_dir: &Path) -> (bool, String) {
    let out = Command::new(node_binary())
        .arg("scrub")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run ledger-node scrub");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Waits for node `id` to exit on its own and returns its log.
async fn exits_with_its_reason(cluster: &Cluster, id: u64) -> String {
    let status = eventually(
        &format!("node {id} exits"),
        Duration::from_secs(30),
        || async { cluster.exit_status(id) },
    )
    .await;
    assert!(!status.success(), "{status}");
    cluster.log(id)
}

/// The operator's repair: remove the node, wipe its database and snapshot, start it
/// empty, add it back; it converges with the others.
async fn repair(cluster: &mut Cluster, id: u64) {
    let admin = cluster.client();
    admin
        .remove_node(id)
        .await
        .expect("remove the corrupted node");
    let data_dir = cluster.data_root().join(format!("node{id}"));
    for folder in ["sled", "snapshots"] {
        let _ = std::fs::remove_dir_all(data_dir.join(folder));
    }
    let _ = std::fs::remove_file(data_dir.join(ledger_node::node::WATERMARK_FILE));
    cluster.kill(id); // the exited process's slot
    cluster.restart(id);
    admin
        .add_node(cluster.info(id))
        .await
        .expect("add the wiped node back");
    cluster.wait_converged(&cluster.ids()).await;
    let (clean, report) = scrub_running_copy(cluster, id);
    assert!(clean, "{report}");
}

/// The repaired node's storage, scrubbed after stopping it, then started again.
fn scrub_running_copy(cluster: &mut Cluster, id: u64) -> (bool, String) {
    cluster.stop(id);
    let report = scrub(&cluster.data_root().join(format!("node{id}")));
    cluster.restart(id);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_node_refuses_to_serve_says_why_and_is_repaired_from_its_peers() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await;
    let client = cluster.client();
    let account = open_account(&client, 1).await;
    client
        .submit(deposit(account, 1_000))
        .await
        .expect("a deposit");
    let leader = cluster.leader().await;
    let followers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    cluster.wait_converged(&cluster.ids()).await;

    // A bit flipped in the account's record on a stopped follower.
    let state_victim = followers[0];
    let dir = cluster.data_root().join(format!("node{state_victim}"));
    cluster.stop(state_victim);
    let (clean, report) = scrub(&dir);
    assert!(clean, "before the flip every value checks: {report}");
    assert!(
        report.contains("state: ") && report.contains("every checksum good"),
        "{report}"
    );
    flip_a_bit(&dir, "state", Some(Key::Account(account).encode()));
    let (clean, report) = scrub(&dir);
    assert!(!clean, "the scrub finds the flipped bit");
    assert!(
        report.contains("fails its checksum") && report.contains("tree `state`"),
        "{report}"
    );

    // Started again, it refuses its state and exits, saying why; the others go on.
    cluster.restart(state_victim);
    let log = exits_with_its_reason(&cluster, state_victim).await;
    assert!(log.contains("storage corruption"), "{log}");
    client
        .submit(deposit(account, 5))
        .await
        .expect("two nodes still write");
    assert_eq!(balance(&client, account).await, 1_005);

    repair(&mut cluster, state_victim).await;
    let repaired = cluster.client_for(&[state_victim]);
    eventually(
        "the repaired node serves the balance its peers hold",
        Duration::from_secs(20),
        || {
            let repaired = &repaired;
            async move {
                let reply = repaired
                    .query(Query::Account(account), Consistency::Stale)
                    .await
                    .ok()?;
                match reply {
                    QueryReply::Account(Some(view)) if view.balance_fen == 1_005 => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;

    // A bit flipped in the last log entry of the other follower: it cannot even read its
    // log's state at start.
    let log_victim = followers[1];
    let dir = cluster.data_root().join(format!("node{log_victim}"));
    cluster.stop(log_victim);
    flip_a_bit(&dir, "raft_log", None);
    let (clean, report) = scrub(&dir);
    assert!(!clean && report.contains("tree `raft_log`"), "{report}");
    cluster.restart(log_victim);
    let log = exits_with_its_reason(&cluster, log_victim).await;
    assert!(log.contains("fails its checksum"), "{log}");
    repair(&mut cluster, log_victim).await;
    client
        .submit(deposit(account, 7))
        .await
        .expect("a deposit after both repairs");
    assert_eq!(balance(&client, account).await, 1_012);
    cluster.assert_alive();
}
