//! The simulated network: every Raft RPC goes through a router that, from the seed, drops,
//! duplicates, delays (and so reorders) messages, and honours partitions and crashed nodes.
//! Messages are encoded and decoded with bincode on the way, like on the wire.

use crate::rng::SimRng;
use crate::SimConfig;
use ledger_node::raft_types::{NodeAddr, NodeId};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::Raft;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fault probabilities of a run, chosen from the seed.
#[derive(Clone, Debug)]
pub struct NetFaults {
    pub loss: f64,
    pub duplicate: f64,
    pub max_delay_ms: u64,
}

impl NetFaults {
    /// A healthy network: nothing lost or duplicated, up to 5 ms of delay.
    pub const NONE: NetFaults = NetFaults {
        loss: 0.0,
        duplicate: 0.0,
        max_delay_ms: 5,
    };
}

/// What the router knows: who is up, which links are cut, and the network's randomness.
pub struct RouterState {
    pub rng: SimRng,
    pub faults: NetFaults,
    pub nodes: BTreeMap<NodeId, Raft<SimConfig>>,
    /// Directed links that drop everything (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub delivered: u64,
    pub dropped: u64,
}

/// Shared handle on the router.
#[derive(Clone)]
pub struct Router(pub Arc<Mutex<RouterState>>);

fn lock(r: &Router) -> std::sync::MutexGuard<'_, RouterState> {
    r.0.lock().unwrap_or_else(|p| p.into_inner())
}

impl Router {
    pub fn new(rng: SimRng, faults: NetFaults) -> Self {
        Router(Arc::new(Mutex::new(RouterState {
            rng,
            faults,
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            delivered: 0,
            dropped: 0,
        })))
    }

    /// One message's fate: (delivered, delay, duplicated).
    fn decide(&self, from: NodeId, to: NodeId) -> (bool, Duration, bool) {
        let mut s = lock(self);
        let faults = s.faults.clone();
        let lost = s.rng.chance(faults.loss);
        let delay = Duration::from_millis(1 + s.rng.below(faults.max_delay_ms.max(1)));
        let duplicate = s.rng.chance(faults.duplicate);
        let up = !s.cut.contains(&(from, to))
            && s.nodes.contains_key(&to)
            && s.nodes.contains_key(&from);
        (up && !lost, delay, duplicate)
    }

    fn target(&self, to: NodeId) -> Option<Raft<SimConfig>> {
        lock(self).nodes.get(&to).cloned()
    }

    fn count(&self, delivered: bool) {
        let mut s = lock(self);
        if delivered {
            s.delivered += 1;
        } else {
            s.dropped += 1;
        }
    }

    /// Sends `req` from `from` to `to`, lets `handle` answer it there, and brings the answer
    /// back; either leg may be lost or delayed. Duplicates are delivered and their answers
    /// discarded, as a late retransmission would be.
    async fn call<Req, Resp, E, F, Fut>(
        &self,
        from: NodeId,
        to: NodeId,
        req: Req,
        handle: F,
    ) -> Result<Result<Resp, E>, String>
    where
        Req: Serialize + DeserializeOwned + Send,
        Resp: Serialize + DeserializeOwned + Send,
        E: Serialize + DeserializeOwned + Send,
        F: Fn(Raft<SimConfig>, Req) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let bytes = bincode::serialize(&req).map_err(|e| e.to_string())?;
        let (deliver, delay, duplicate) = self.decide(from, to);
        tokio::time::sleep(delay).await;
        if !deliver {
            self.count(false);
            return Err(format!("message {from} -> {to} lost"));
        }
        let Some(target) = self.target(to) else {
            self.count(false);
            return Err(format!("node {to} is down"));
        };
        self.count(true);
        let decoded: Req = bincode::deserialize(&bytes).map_err(|e| e.to_string())?;
        if duplicate {
            let copy: Req = bincode::deserialize(&bytes).map_err(|e| e.to_string())?;
            let fut = handle(target.clone(), copy);
            tokio::spawn(async move {
                let _ = fut.await;
            });
        }
        let answer = handle(target, decoded).await;
        let answer_bytes = bincode::serialize(&answer).map_err(|e| e.to_string())?;
        let (back, delay, _) = self.decide(to, from);
        tokio::time::sleep(delay).await;
        if !back {
            self.count(false);
            return Err(format!("answer {to} -> {from} lost"));
        }
        bincode::deserialize(&answer_bytes).map_err(|e| e.to_string())
    }
}

/// openraft's network factory for one simulated node.
pub struct SimNetwork {
    pub id: NodeId,
    pub router: Router,
}

impl RaftNetworkFactory<SimConfig> for SimNetwork {
    type Network = SimConnection;

    async fn new_client(&mut self, target: NodeId, _node: &NodeAddr) -> SimConnection {
        SimConnection {
            from: self.id,
            to: target,
            router: self.router.clone(),
        }
    }
}

/// A simulated connection from one node to another.
pub struct SimConnection {
    from: NodeId,
    to: NodeId,
    router: Router,
}

fn convert<T, E: std::error::Error>(
    to: NodeId,
    r: Result<Result<T, RaftError<NodeId, E>>, String>,
) -> Result<T, RPCError<NodeId, NodeAddr, RaftError<NodeId, E>>> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(to, e))),
        Err(m) if m.contains("down") => Err(RPCError::Unreachable(Unreachable::from(
            openraft::AnyError::error(m),
        ))),
        Err(m) => Err(RPCError::Network(NetworkError::from(
            openraft::AnyError::error(m),
        ))),
    }
}

impl RaftNetwork<SimConfig> for SimConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<SimConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        let r = self
            .router
            .call(self.from, self.to, rpc, |raft, req| async move {
                raft.append_entries(req).await
            })
            .await;
        convert(self.to, r)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<SimConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeAddr, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let r = self
            .router
            .call(self.from, self.to, rpc, |raft, req| async move {
                raft.install_snapshot(req).await
            })
            .await;
        convert(self.to, r)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        let r = self
            .router
            .call(self.from, self.to, rpc, |raft, req| async move {
                raft.vote(req).await
            })
            .await;
        convert(self.to, r)
    }
}
