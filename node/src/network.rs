//! Raft traffic over tarpc: the service a node serves on its Raft port, and the client side
//! openraft uses to reach its peers.
//!
//! Both directions use mutual TLS when the node has it: the port admits node certificates
//! only, and a node dials its peers presenting its own.
//!
//! Every call has a deadline (openraft's per-RPC `hard_ttl`, enforced with a tokio timeout);
//! a broken connection is dropped and re-established on the next call, no sooner than a
//! back-off after the last failure. A call past its deadline does not break the connection
//! (a loaded or lossy link, or a paused peer, answers late; a new TLS handshake over the same
//! link would only add to it): only one silent for `SILENT_CONNECTION_LIMIT` is dropped.
//! Frames are bounded (`api::MAX_FRAME_BYTES`), and an oversized or undecodable frame closes
//! that connection only.

use crate::raft_types::{NodeAddr, NodeId, Raft, TypeConfig};
use futures::{future, StreamExt};
use ledger_wire::principal::Principal;
use ledger_wire::tls::NodeTls;
use ledger_wire::transport;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::server::{BaseChannel, Channel};

/// Time allowed to open a connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed call, wait at least this long before connecting again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// A connection on which no call has been answered for this long is dropped at its next
/// timed-out call and made anew (its peer may be gone without a reset).
pub const SILENT_CONNECTION_LIMIT: Duration = Duration::from_secs(5);

/// The Raft service between nodes.
#[tarpc::service]
pub trait RaftRpc {
    async fn append_entries(
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
    async fn vote(req: VoteRequest<NodeId>) -> Result<VoteResponse<NodeId>, RaftError<NodeId>>;
    async fn install_snapshot(
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;
}

#[derive(Clone)]
struct RaftServer {
    raft: Raft,
}

impl RaftRpc for RaftServer {
    async fn append_entries(
        self,
        _: tarpc::context::Context,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.raft.append_entries(req).await
    }

    async fn vote(
        self,
        _: tarpc::context::Context,
        req: VoteRequest<NodeId>,
    ) -> Result<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.raft.vote(req).await
    }

    async fn install_snapshot(
        self,
        _: tarpc::context::Context,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.raft.install_snapshot(req).await
    }
}

/// Serves Raft traffic on `addr` until the task is aborted: with mutual TLS when `tls` is
/// given, admitting node certificates only (a connection whose certificate a later CRL
/// reload revokes is closed; refusals counted in `refused`), else in plaintext.
pub async fn serve(
    addr: SocketAddr,
    raft: Raft,
    tls: Option<Arc<NodeTls>>,
    refused: Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let server = RaftServer { raft };
    let Some(tls) = tls else {
        let listener = transport::listen(addr).await?;
        return Ok(tokio::spawn(
            listener
                .filter_map(|conn| future::ready(conn.ok()))
                .map(BaseChannel::with_defaults)
                .for_each_concurrent(None, move |channel| serve_channel(channel, server.clone())),
        ));
    };
    let incoming = transport::listen_tls(
        addr,
        tls.clone(),
        |p| matches!(p, Principal::Node { .. }),
        refused,
    )
    .await?;
    Ok(tokio::spawn(incoming.serve_each(tls, move |framed, _| {
        serve_channel(BaseChannel::with_defaults(framed), server.clone())
    })))
}

/// Answers one peer connection's calls until it closes.
async fn serve_channel<T>(
    channel: BaseChannel<RaftRpcRequest, RaftRpcResponse, T>,
    server: RaftServer,
) where
    T: tarpc::Transport<tarpc::Response<RaftRpcResponse>, tarpc::ClientMessage<RaftRpcRequest>>
        + Send
        + 'static,
{
    channel
        .execute(server.serve())
        .for_each(|response| async move {
            tokio::spawn(response);
        })
        .await
}

/// Creates a connection per peer for openraft; connects lazily, with mutual TLS (presenting
/// this node's certificate) when `tls` is set.
#[derive(Clone, Default)]
pub struct Network {
    pub tls: Option<Arc<NodeTls>>,
    /// The open connection to each peer, shared by every client openraft makes for it:
    /// openraft makes a new one for each linearizable read's round of heartbeats, and a TLS
    /// handshake per peer per read would cost more than the read.
    pub open: Arc<std::sync::Mutex<std::collections::BTreeMap<(NodeId, String), RaftRpcClient>>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerConnection {
        PeerConnection {
            target,
            addr: node.raft.clone(),
            tls: self.tls.clone(),
            open: self.open.clone(),
            client: None,
            connecting: None,
            last_failure: None,
            last_answer: Instant::now(),
            silent_limit: SILENT_CONNECTION_LIMIT,
        }
    }
}

/// A (re)connecting client to one peer.
pub struct PeerConnection {
    target: NodeId,
    addr: String,
    tls: Option<Arc<NodeTls>>,
    open: Arc<std::sync::Mutex<std::collections::BTreeMap<(NodeId, String), RaftRpcClient>>>,
    client: Option<RaftRpcClient>,
    /// A connection being opened in a task of its own: openraft cancels a call at its
    /// deadline (200 ms for a heartbeat), and a TLS handshake cancelled with it would be
    /// started afresh by every call, never finishing while the node is loaded (seen after a
    /// leader's SIGSTOP in the chaos harness). The task runs to `CONNECT_TIMEOUT` whatever
    /// happens to the call that started it; the next call takes its connection.
    connecting: Option<tokio::task::JoinHandle<Result<RaftRpcClient, String>>>,
    last_failure: Option<Instant>,
    /// When a call was last answered (or the connection taken up).
    last_answer: Instant,
    silent_limit: Duration,
}

/// Opens a connection to `target` at `addr` (mutual TLS, presenting this node's
/// certificate, when `tls` is set), within `CONNECT_TIMEOUT`.
async fn connect(
    target: NodeId,
    addr: String,
    tls: Option<Arc<NodeTls>>,
) -> Result<RaftRpcClient, String> {
    let failed = |e: std::io::Error| format!("connect to node {target} at {addr}: {e}");
    let config = tarpc::client::Config::default();
    Ok(match &tls {
        // The current client configuration: a CRL reload applies to new connections.
        Some(tls) => {
            let transport = transport::connect_tls(&addr, CONNECT_TIMEOUT, tls.client_config())
                .await
                .map_err(failed)?;
            RaftRpcClient::new(config, transport).spawn()
        }
        None => {
            let transport = transport::connect(&addr, CONNECT_TIMEOUT)
                .await
                .map_err(failed)?;
            RaftRpcClient::new(config, transport).spawn()
        }
    })
}

/// A failed call: the peer could not be reached, or it answered with an error.
enum CallError<E> {
    Unreachable(String),
    Network(String),
    Remote(E),
}

impl PeerConnection {
    async fn client(&mut self) -> Result<RaftRpcClient, String> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let shared = self.open_connections().get(&self.peer()).cloned();
        if let Some(client) = shared {
            self.client = Some(client.clone());
            self.last_answer = Instant::now();
            return Ok(client);
        }
        if self.connecting.is_none() {
            if let Some(failed) = self.last_failure {
                let wait = RECONNECT_BACKOFF.saturating_sub(failed.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let (target, addr, tls) = (self.target, self.addr.clone(), self.tls.clone());
            self.connecting = Some(tokio::spawn(connect(target, addr, tls)));
        }
        let connecting = self.connecting.as_mut().expect("set above");
        // If the caller's deadline cancels this await, the task goes on and the next call
        // finds its outcome.
        let outcome = connecting
            .await
            .unwrap_or_else(|e| Err(format!("connect task: {e}")));
        self.connecting = None;
        let client = outcome?;
        self.open_connections().insert(self.peer(), client.clone());
        self.client = Some(client.clone());
        self.last_answer = Instant::now();
        Ok(client)
    }

    fn peer(&self) -> (NodeId, String) {
        (self.target, self.addr.clone())
    }

    fn open_connections(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(NodeId, String), RaftRpcClient>>
    {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection broke: neither this client nor any other uses it again.
    fn drop_connection(&mut self) {
        self.client = None;
        self.open_connections().remove(&self.peer());
        self.last_failure = Some(Instant::now());
    }

    /// Runs one call with openraft's deadline; drops the connection on any transport error.
    async fn call<T, E, F, Fut>(&mut self, option: &RPCOption, f: F) -> Result<T, CallError<E>>
    where
        F: FnOnce(RaftRpcClient, tarpc::context::Context) -> Fut,
        Fut: std::future::Future<Output = Result<Result<T, E>, tarpc::client::RpcError>>,
    {
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => {
                self.last_failure = Some(Instant::now());
                return Err(CallError::Unreachable(e));
            }
        };
        let ttl = option.hard_ttl();
        let mut ctx = tarpc::context::current();
        ctx.deadline = Instant::now() + ttl;
        let outcome = tokio::time::timeout(ttl, f(client, ctx)).await.ok();
        self.settle(outcome, ttl)
    }

    /// A call's result from its outcome (`None`: our timer ran out first), and what the
    /// outcome says about the connection: answered, late, or broken (dropped).
    fn settle<T, E>(
        &mut self,
        outcome: Option<Result<Result<T, E>, tarpc::client::RpcError>>,
        ttl: Duration,
    ) -> Result<T, CallError<E>> {
        use tarpc::client::RpcError;
        if matches!(outcome, Some(Ok(_)) | Some(Err(RpcError::Server(_)))) {
            self.last_answer = Instant::now();
        }
        match outcome {
            Some(Ok(Ok(answer))) => Ok(answer),
            Some(Ok(Err(remote))) => Err(CallError::Remote(remote)),
            // Late, not broken: tarpc's own deadline (the same as ours) or ours.
            Some(Err(RpcError::DeadlineExceeded)) | None => {
                if self.last_answer.elapsed() >= self.silent_limit {
                    self.drop_connection();
                }
                Err(CallError::Network(format!(
                    "node {}: no answer within {ttl:?}",
                    self.target
                )))
            }
            // The server answered with an error of its own: the connection works.
            Some(Err(rpc @ RpcError::Server(_))) => {
                Err(CallError::Network(format!("node {}: {rpc}", self.target)))
            }
            Some(Err(rpc)) => {
                self.drop_connection();
                Err(CallError::Network(format!("node {}: {rpc}", self.target)))
            }
        }
    }

    fn convert<E: std::error::Error>(
        &self,
        e: CallError<RaftError<NodeId, E>>,
    ) -> RPCError<NodeId, NodeAddr, RaftError<NodeId, E>> {
        match e {
            CallError::Unreachable(m) => {
                RPCError::Unreachable(Unreachable::from(openraft::AnyError::error(m)))
            }
            CallError::Network(m) => {
                RPCError::Network(NetworkError::from(openraft::AnyError::error(m)))
            }
            CallError::Remote(r) => RPCError::RemoteError(RemoteError::new(self.target, r)),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        let result = self
            .call(
                &option,
                |c, ctx| async move { c.append_entries(ctx, rpc).await },
            )
            .await;
        result.map_err(|e| self.convert(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeAddr, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let result = self
            .call(&option, |c, ctx| async move {
                c.install_snapshot(ctx, rpc).await
            })
            .await;
        result.map_err(|e| self.convert(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        let result = self
            .call(&option, |c, ctx| async move { c.vote(ctx, rpc).await })
            .await;
        result.map_err(|e| self.convert(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Vote;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tarpc::client::RpcError;

    /// A peer that takes connections and never answers, counting them.
    async fn silent_peer() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        (addr, accepted)
    }

    async fn vote(peer: &mut PeerConnection) {
        let request = VoteRequest::new(Vote::new(1, 1), None);
        let answer = peer
            .vote(request, RPCOption::new(Duration::from_millis(50)))
            .await;
        assert!(answer.is_err(), "a silent peer answered: {answer:?}");
    }

    /// Calls past their deadline keep the connection (the old rule dropped it at tarpc's
    /// "deadline exceeded" and put a handshake on an already slow link); one silent for the
    /// limit is made anew.
    #[tokio::test]
    async fn a_late_call_keeps_its_connection_and_a_silent_one_is_made_anew() {
        let (addr, accepted) = silent_peer().await;
        let mut peer = PeerConnection {
            target: 2,
            addr,
            tls: None,
            open: Arc::default(),
            client: None,
            connecting: None,
            last_failure: None,
            last_answer: Instant::now(),
            silent_limit: Duration::from_millis(800),
        };
        for _ in 0..6 {
            vote(&mut peer).await;
        }
        assert!(peer.client.is_some(), "the connection was dropped");
        assert!(peer.last_failure.is_none(), "a failure was recorded");
        // Whichever timer fires first, tarpc's or ours, the call was late, not broken.
        let ttl = Duration::from_millis(50);
        let late = peer.settle::<(), ()>(Some(Err(RpcError::DeadlineExceeded)), ttl);
        assert!(matches!(late, Err(CallError::Network(_))));
        assert!(
            peer.client.is_some(),
            "tarpc's deadline dropped the connection"
        );
        assert!(peer.settle::<(), ()>(None, ttl).is_err());
        assert!(peer.client.is_some(), "our deadline dropped the connection");

        tokio::time::sleep(Duration::from_millis(800)).await;
        vote(&mut peer).await;
        assert!(peer.client.is_none(), "a silent connection was kept");
        vote(&mut peer).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while accepted.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "no new connection");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // A broken connection is dropped at once.
        assert!(peer.client.is_some());
        let broken = peer.settle::<(), ()>(Some(Err(RpcError::Shutdown)), ttl);
        assert!(matches!(broken, Err(CallError::Network(_))));
        assert!(peer.client.is_none(), "a shut connection was kept");
    }
}
