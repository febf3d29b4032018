//! A disk filling up, for real: each node's data directory is a tmpfs of its own, and the
//! test fills the leader's with a file until less than the node's reserve is free (the
//! default `--min-free-disk-mib`, 256). Needs root (it mounts); CI runs as root.

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
    fn mount(dir: &Path, mib: u64) -> Tmpfs {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m"),
                "ledger-e2e-disk",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", dir.display());
        Tmpfs(dir.to_owned())
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

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_fills_refuses_writes_answers_reads_and_resumes() {
    assert!(
        is_root(),
        "this test mounts tmpfs filesystems: run it as root (CI does)"
    );
    let _serial = serial().await;
    let mut mounted = Vec::new();
    let cluster = Cluster::start_prepared(3, 10_000, |dir| {
        mounted.push(Tmpfs::mount(dir, TMPFS_MIB));
    })
    .await;
    // Dropped before the cluster (even on a panic): unmounted first, so that removing the
    // cluster's folder finds plain directories.
    let mounts = mounted;
    let client = cluster.client();
    let account = open_account(&client, 1).await;
    client
        .submit(deposit(account, 1_000))
        .await
        .expect("a deposit");

    // The leader's disk fills to below its reserve.
    let leader = cluster.leader().await;
    let data_dir = cluster.data_root().join(format!("node{leader}"));
    let filler = data_dir.join("filler");
    let fill_mib = free_mib(&data_dir) - DEFAULT_MIN_FREE_DISK_MIB / 2;
    std::fs::write(&filler, vec![0u8; (fill_mib * 1024 * 1024) as usize]).expect("fill");
    assert!(free_mib(&data_dir) < DEFAULT_MIN_FREE_DISK_MIB);

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
