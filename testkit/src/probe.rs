//! Asking a running node what it knows, and waiting until the answers agree. The caller
//! builds the client (its timeouts and whether it follows the leader are the caller's to
//! choose); these functions only ask and compare.

use ledger_client::{Client, Consistency, NodeStatus, Query, QueryReply};
use ledger_core::types::Digest32;
use std::future::Future;
use std::time::{Duration, Instant};

/// A node's applied log index and state hash.
pub type StateHash = (u64, Digest32);

/// The node's status, if it answers.
pub async fn status(client: &Client) -> Option<NodeStatus> {
    client
        .cluster_status()
        .await
        .pop()
        .and_then(|(_, s)| s.ok())
}

/// The node's applied index and state hash, read locally (stale), if it answers.
pub async fn state_hash(client: &Client) -> Option<StateHash> {
    match client.query(Query::StateHash, Consistency::Stale).await {
        Ok(QueryReply::StateHash {
            applied_index,
            hash,
        }) => Some((applied_index, hash)),
        _ => None,
    }
}

/// The leader every node names, if each answers and they agree (the first node that does
/// not answer, or disagrees, ends the asking).
pub async fn agreed_leader<'a>(nodes: impl IntoIterator<Item = &'a Client>) -> Option<u64> {
    let mut leader = None;
    for node in nodes {
        let status = status(node).await?;
        if leader.is_some() && status.leader != leader {
            return None;
        }
        leader = status.leader;
    }
    leader
}

/// The applied index and state hash every node reports, if each answers with the same.
pub async fn converged<'a>(nodes: impl IntoIterator<Item = &'a Client>) -> Option<StateHash> {
    let mut seen: Option<StateHash> = None;
    for node in nodes {
        let here = state_hash(node).await?;
        match seen {
            Some(s) if s != here => return None,
            _ => seen = Some(here),
        }
    }
    seen
}

/// Calls `check` every `interval` until it returns Some, or until `deadline` has passed
/// (None then). `check` runs at least once.
pub async fn poll_until<T, F, Fut>(
    deadline: Duration,
    interval: Duration,
    mut check: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(interval).await;
    }
}
