//! Failover: how long after the leader is killed (kill -9) the cluster commits a write again,
//! and where the time goes. Three real `ledger-node` processes on 127.0.0.1 (mutual TLS); a
//! writer deposits without pause through the client library; each round waits for steady
//! writes, kills the leader, and measures from the kill
//!
//! - to the first moment a surviving node names a new leader (polled every 20 ms), and
//! - to the acknowledgement of the first write sent after the kill (the client finding the
//!   new leader; a write sent before it may have been committed by the old leader and
//!   acknowledged just after, which says nothing of the new one).
//!
//! Then, writes paused, the old leader restarts and catches up before the next round.
//! Prints each round and the percentiles.
//!
//!     cargo bench -p ledger-tests --bench failover             # 10 rounds
//!     FAILOVER_ROUNDS=30 cargo bench -p ledger-tests --bench failover
//!     FAILOVER_NODE_ARGS="--heartbeat-ms 100 --election-timeout-min-ms 300 \
//!         --election-timeout-max-ms 500" cargo bench -p ledger-tests --bench failover
//!
//! `FAILOVER_NODE_ARGS` (split at white space) goes to every node: Raft timings to compare.

use ledger_tests::ops::{deposit, open_account};
use ledger_tests::Cluster;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rounds unless `FAILOVER_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 10;
/// How long a round waits for a new leader or a write before it counts as stalled.
const STALL: Duration = Duration::from_secs(30);
/// How often the survivors are asked who leads.
const POLL: Duration = Duration::from_millis(20);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = std::env::var("FAILOVER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let node_args: Vec<String> = std::env::var("FAILOVER_NODE_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    println!("node flags: {node_args:?}");
    let mut cluster = Cluster::start_with_node_args(3, &node_args).await;
    let client = Arc::new(cluster.client());
    let account = open_account(&client, 1).await;
    // When each write was sent and when acknowledged.
    let acks: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Paused while the killed node catches up (replicas converge only without writes).
    let paused = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acks) = (client.clone(), acks.clone());
        let (stop, paused) = (stop.clone(), paused.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if paused.load(Ordering::Relaxed) {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                let sent = Instant::now();
                if client.submit(deposit(account, 1)).await.is_ok() {
                    acks.lock().expect("acks").push((sent, Instant::now()));
                }
            }
        })
    };
    let mut elected_ms = Vec::new();
    let mut committed_ms = Vec::new();
    let mut stalled = 0;
    for round in 1..=rounds {
        // Steady: a write acknowledged within the last 100 ms.
        let steady = Instant::now();
        while acks
            .lock()
            .expect("acks")
            .last()
            .is_none_or(|(_, acked)| acked.elapsed() > Duration::from_millis(100))
        {
            assert!(
                steady.elapsed() < STALL,
                "no steady writes before round {round}"
            );
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let old = cluster.leader().await;
        let survivors: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
        let killed = Instant::now();
        cluster.kill(old);
        let mut elected = None;
        let mut committed = None;
        while (elected.is_none() || committed.is_none()) && killed.elapsed() < STALL {
            if elected.is_none() {
                for id in &survivors {
                    let leader = cluster.status(*id).await.and_then(|s| s.leader);
                    if leader.is_some_and(|l| l != old) {
                        elected = Some(killed.elapsed());
                        break;
                    }
                }
            }
            if committed.is_none() {
                committed = acks
                    .lock()
                    .expect("acks")
                    .iter()
                    .find(|(sent, _)| *sent > killed)
                    .map(|(_, acked)| *acked - killed);
            }
            tokio::time::sleep(POLL).await;
        }
        let show = |d: Option<Duration>| {
            d.map_or("stalled".to_owned(), |d| format!("{} ms", d.as_millis()))
        };
        println!(
            "round {round}: killed node {old}; new leader named after {}, next write committed after {}",
            show(elected),
            show(committed)
        );
        match (elected, committed) {
            (Some(e), Some(c)) => {
                elected_ms.push(e.as_millis() as u64);
                committed_ms.push(c.as_millis() as u64);
            }
            _ => stalled += 1,
        }
        paused.store(true, Ordering::Relaxed);
        cluster.restart(old);
        cluster.wait_converged(&cluster.ids()).await;
        paused.store(false, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    for (what, mut ms) in [
        ("new leader named", elected_ms),
        ("next write committed", committed_ms),
    ] {
        ms.sort_unstable();
        let at = |p: f64| {
            ms.get(((ms.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "kill -> {what}: p50 {} ms, p99 {} ms, max {} ms ({} rounds)",
            at(0.5),
            at(0.99),
            ms.last().copied().unwrap_or(0),
            ms.len()
        );
    }
    println!(
        "stalled rounds (nothing within {} s): {stalled}",
        STALL.as_secs()
    );
}
