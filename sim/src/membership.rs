//! Membership changes: a spare node joins (learner, then voter) and leaves again, through
//! openraft's membership API on the leader (what `ledger-node cluster add|remove` reach).

use crate::clients::{endpoint, SimTransport};
use crate::cluster::Cluster;
use ledger_client::Client;
use ledger_node::raft_types::NodeId;
use ledger_wire::api::NodeInfo;
use std::sync::Arc;
use std::time::Duration;

/// How long a membership change may take before it is abandoned, virtual time.
const LIMIT: Duration = Duration::from_secs(5);

/// Adds the spare node (learner, then voter) or removes it, through the nodes' own cluster
/// administration calls (`add_node`, `remove_node`: what `ledger-node cluster add|remove`
/// send), by the client library. A change that does not go through within `LIMIT`
/// (partitions, a leader change) is abandoned; a spare that is not a member at the end is
/// stopped, so that only members are compared.
pub async fn change_membership(
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    admin: Arc<Client<SimTransport>>,
    spare: NodeId,
    join: bool,
) {
    let change = async {
        if join {
            let node = NodeInfo {
                id: spare,
                raft_addr: endpoint(spare),
                client_addr: endpoint(spare),
            };
            admin.add_node(node).await
        } else {
            admin.remove_node(spare).await
        }
    };
    let done = matches!(tokio::time::timeout(LIMIT, change).await, Ok(Ok(())));
    let mut c = cluster.lock().await;
    c.trace(&format!(
        "membership: node {spare} {} {}\n",
        if join { "join" } else { "leave" },
        if done { "done" } else { "abandoned" }
    ));
    stop_spare_unless_voter(&mut c, spare).await;
}

/// A spare the leader's committed membership no longer holds (voter or learner) stops, so
/// that only members are compared. Without a leader, or while the leader's last change is
/// not committed, nothing is decided: a node that has not seen the change yet may still
/// need the spare's vote (a joint configuration counts it). Its data folder stays; a later
/// join starts it from there.
pub async fn stop_spare_unless_voter(c: &mut Cluster, spare: NodeId) {
    if committed_member(c, spare) == Some(false) && c.nodes.contains_key(&spare) {
        c.crash(spare).await;
    }
}

/// Whether the leader's membership holds `id` (voter or learner), once that membership has
/// been applied on the leader (so committed: it cannot be rolled back); `None` without a
/// leader or while a change is not yet committed.
///
/// A node that believes it leads an older term than one of its voters has seen (a leader
/// restarted with its vote, not yet told of the later terms) decides nothing, nor while a
/// voter has just started and not yet said which term it is in.
fn committed_member(c: &Cluster, id: NodeId) -> Option<bool> {
    let leader = c.leader()?;
    let m = c.nodes.get(&leader)?.raft().metrics().borrow().clone();
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    // A node started a moment ago has not said its term yet (0): wait for it.
    let stale = voters.iter().filter_map(|v| c.nodes.get(v)).any(|n| {
        let term = n.raft().metrics().borrow().current_term;
        term == 0 || term > m.current_term
    });
    if stale {
        return None;
    }
    let config = &m.membership_config;
    let applied = m.last_applied.map(|l| l.index);
    let at = config.log_id().map(|l| l.index);
    (at <= applied).then(|| config.membership().get_node(&id).is_some())
}

/// Repairs a node whose storage is corrupt, as an operator would: stops it, removes it from
/// the membership (a committed removal: only then may its data go), wipes its data, starts
/// it empty and adds it again (learner, then voter: it catches up from its peers before it
/// votes). Whether it is a member again; a step that does not go through within `LIMIT`
/// leaves the repair to be tried again.
pub async fn repair(
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    admin: Arc<Client<SimTransport>>,
    id: NodeId,
) -> (NodeId, bool) {
    let member = {
        let mut c = cluster.lock().await;
        if c.nodes.contains_key(&id) {
            c.crash(id).await;
        }
        committed_member(&c, id)
    };
    let removal = match member {
        Some(false) => None,
        Some(true) => Some(tokio::time::timeout(LIMIT, admin.remove_node(id)).await),
        None => return (id, false),
    };
    // The removal answered may still not be what the leader shows: check it again.
    let out = committed_member(&*cluster.lock().await, id) == Some(false);
    if !out {
        cluster
            .lock()
            .await
            .trace(&format!("repair {id}: removal abandoned: {removal:?}\n"));
        return (id, false);
    }
    {
        let mut c = cluster.lock().await;
        c.wipe(id);
        if !c.start(id).await {
            return (id, false);
        }
    }
    let node = NodeInfo {
        id,
        raft_addr: endpoint(id),
        client_addr: endpoint(id),
    };
    let joined = matches!(
        tokio::time::timeout(LIMIT, admin.add_node(node)).await,
        Ok(Ok(()))
    );
    cluster.lock().await.trace(&format!(
        "repair {id}: {}\n",
        if joined { "rejoined" } else { "join abandoned" }
    ));
    (id, joined)
}
