//! A disk filling up, for real: each node's database folder (`<data dir>/sled`) is a tmpfs
//! of its own (its log file stays outside, so that it can say why it stopped), and the
//! tests fill one with a file. Needs root (it mounts); CI runs as root.

use ledger_client::ClientError;
use ledger_node::disk::DEFAULT_MIN_FREE_DISK_MIB;
use ledger_tests::ops::{balance, deposit, open_account};
use ledger_tests::{eventually, serial, Cluster};
use ledger_wire::api::ApiError;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Each node's filesystem: the reserve and some room above it.
const TMPFS_MIB: u64 = DEFAULT_MIN_FREE_DISK_MIB + 64;

/// A tmpfs mounted for the test, lazily unmounted when dropped (a node still running on it
/// keeps it alive until the node is killed).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one at the database folder of the data directory `data_dir`.
    fn mount(data_dir: &Path, mib: u64) -> Tmpfs {
        let dir = data_dir.join("sled");
        std::fs::create_dir_all(&dir).expect("the database folder");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m"),
                "ledger-e2e-disk",
            ])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", dir.display());
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_mib(dir: &Path) -> u64 {
    let stat = rustix::fs::statvfs(dir).expect("statvfs");
    stat.f_bavail * stat.f_frsize / (1024 * 1024)
}

/// Three nodes, each with its database on a tmpfs of `TMPFS_MIB`.
async fn cluster_on_tmpfs() -> (Cluster, Vec<Tmpfs>) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts tmpfs filesystems: run it as root (CI does)"
    );
    let mut mounts = Vec::new();
    let cluster = Cluster::start_prepared(3, 10_000, |dir| {
        mounts.push(Tmpfs::mount(dir, TMPFS_MIB));
    })
    .await;
    (cluster, mounts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_fills_refuses_writes_answers_reads_and_resumes() {
    let _serial = serial().await;
    let (cluster, mounts) = cluster_on_tmpfs().await;
    // `mounts` is dropped before `cluster` (even on a panic): unmounted first, so that
    // removing the cluster's folder finds plain directories.
    let client = cluster.client();
    let account = open_account(&client, 1).await;
    client
        .submit(deposit(account, 1_000))
        .await
        .expect("a deposit");

    // The leader's disk fills to below its reserve.
    let leader = cluster.leader().await;
    let db_dir = cluster.data_root().join(format!("node{leader}/sled"));
    let filler = db_dir.join("filler");
    let fill_mib = free_mib(&db_dir) - DEFAULT_MIN_FREE_DISK_MIB / 2;
    std::fs::write(&filler, vec![0u8; (fill_mib * 1024 * 1024) as usize]).expect("fill");
    assert!(free_mib(&db_dir) < DEFAULT_MIN_FREE_DISK_MIB);

    let refused = eventually(
        "a write refused for the full disk",
        Duration::from_secs(10),
        || {
            let client = &client;
            async move {
                match client.submit(deposit(account, 5)).await {
                    Err(ClientError::Rejected(e @ ApiError::DiskFull { .. })) => Some(e),
                    // The reading of the free space is at most half a second old: a write may
                    // still pass just after filling.
                    Ok(_) => None,
                    Err(other) => panic!("expected DiskFull, got {other}"),
                }
            }
        },
    )
    .await;
    let ApiError::DiskFull {
        free_bytes,
        reserve_bytes,
    } = refused
    else {
        unreachable!()
    };
    assert_eq!(reserve_bytes, DEFAULT_MIN_FREE_DISK_MIB * 1024 * 1024);
    assert!(free_bytes < reserve_bytes);
    assert!(ClientError::Rejected(refused.clone()).is_retryable());

    // Refused means not applied: the balance holds the deposits acknowledged, and reads
    // go on (linearizable, through the leader).
    let before = balance(&client, account).await;
    for _ in 0..3 {
        let again = client.submit(deposit(account, 5)).await;
        assert!(
            matches!(again, Err(ClientError::Rejected(ApiError::DiskFull { .. }))),
            "{again:?}"
        );
    }
    assert_eq!(balance(&client, account).await, before);
    let metrics = cluster.metrics(leader).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ledger_disk_full_total ") && !l.ends_with(" 0")),
        "the leader counts its refusals: {metrics}"
    );
    assert!(metrics.contains("ledger_disk_free_bytes "), "{metrics}");
    cluster.assert_alive();

    // Space returns: writes go through again, each applied once.
    std::fs::remove_file(&filler).expect("remove the filler");
    eventually(
        "a write once space returned",
        Duration::from_secs(10),
        || {
            let client = &client;
            async move { client.submit(deposit(account, 7)).await.ok() }
        },
    )
    .await;
    assert_eq!(balance(&client, account).await, before + 7);
    cluster.assert_alive();
    drop(mounts);
    let root = cluster.data_root().to_owned();
    drop(cluster);
    assert!(!root.exists(), "the cluster's folder is removed");
}

/// A follower whose disk fills to the last byte cannot write what the leader sends: Raft
/// stops on the storage error and the node exits, saying why, rather than linger half
/// alive. The others go on; once space returns, the node restarted recovers from what was
/// durable and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_out_of_disk_stops_with_a_clear_error_and_recovers_when_restarted() {
    let _serial = serial().await;
    let (mut cluster, mounts) = cluster_on_tmpfs().await;
    let client = cluster.client();
    let account = open_account(&client, 1).await;
    let leader = cluster.leader().await;
    let follower = *cluster
        .ids()
        .iter()
        .find(|id| **id != leader)
        .expect("a follower");

    // Every byte of the follower's filesystem taken (the write itself fails at the end).
    let db_dir = cluster.data_root().join(format!("node{follower}/sled"));
    let filler = db_dir.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; (TMPFS_MIB * 1024 * 1024) as usize]);
    assert_eq!(free_mib(&db_dir), 0);

    // Deposits of 1 fen: those acknowledged were applied, the others may have been.
    let (mut acknowledged, mut sent) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = cluster.exit_status(follower) {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower did not stop within 60 s; its log:\n{}",
            cluster.log(follower)
        );
        sent += 1;
        if client.submit(deposit(account, 1)).await.is_ok() {
            acknowledged += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "{status}");
    let log = cluster.log(follower);
    assert!(
        log.contains("raft stopped on a storage failure"),
        "the node says why it stopped: {log}"
    );
    // The leader and the other follower are a majority: writes go on.
    client
        .submit(deposit(account, 1))
        .await
        .expect("a write without the stopped follower");
    acknowledged += 1;
    sent += 1;

    std::fs::remove_file(&filler).expect("remove the filler");
    cluster.kill(follower);
    cluster.restart(follower);
    cluster.wait_converged(&cluster.ids()).await;
    let held = balance(&client, account).await;
    assert!(
        (acknowledged..=sent).contains(&held),
        "{held} fen: {acknowledged} deposits acknowledged, {sent} sent"
    );
    cluster.assert_alive();
    drop(mounts);
    drop(cluster);
}
