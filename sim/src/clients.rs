//! The client side of the network: the real client library (`ledger_client::Client`, its
//! retries under one key and its leader following) on simulated connections to the nodes'
//! real client service (`ClientService`, the intake, the proposer). A call is delayed or
//! lost on the way there and back; the node serves it in a task of its own, as the tarpc
//! server does, so a call whose client gave up still runs to its end.

use crate::rng::SimRng;
use crate::trace::lock;
use crate::{SimConfig, EPOCH_MS};
use ledger_client::Transport;
use ledger_node::raft_types::NodeId;
use ledger_node::service::ClientService;
use ledger_wire::api::ClientResult;
use ledger_wire::principal::Principal;
use ledger_wire::rpc::{LedgerRpc, LedgerRpcRequest, LedgerRpcResponse};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tarpc::client::RpcError;
use tarpc::server::Serve;

/// Faults on the links between clients and nodes.
#[derive(Clone, Copy, Debug)]
pub struct ClientLinkFaults {
    /// Chance that a request, or its answer, is lost (the client times out).
    pub loss: f64,
    pub max_delay_ms: u64,
}

struct State {
    services: BTreeMap<NodeId, ClientService<SimConfig>>,
    rng: SimRng,
    faults: ClientLinkFaults,
    /// `network-duplicates-answer`: each client's last answer to a submit.
    duplicates_answers: bool,
    last_answer: BTreeMap<u64, Vec<ClientResult>>,
}

/// The nodes' client ports, as the simulated network reaches them.
#[derive(Clone)]
pub struct ClientNet(Arc<Mutex<State>>);

impl ClientNet {
    pub fn new(rng: SimRng, faults: ClientLinkFaults, duplicates_answers: bool) -> ClientNet {
        ClientNet(Arc::new(Mutex::new(State {
            services: BTreeMap::new(),
            rng,
            faults,
            duplicates_answers,
            last_answer: BTreeMap::new(),
        })))
    }

    /// A started node's client port opens.
    pub fn open(&self, id: NodeId, service: ClientService<SimConfig>) {
        lock(&self.0).services.insert(id, service);
    }

    /// A crashed node's client port closes.
    pub fn close(&self, id: NodeId) {
        lock(&self.0).services.remove(&id);
    }

    pub fn set_faults(&self, faults: ClientLinkFaults) {
        lock(&self.0).faults = faults;
    }

    /// How long the next message takes, or None if it is lost.
    fn draw(&self) -> Option<Duration> {
        let mut s = lock(&self.0);
        let faults = s.faults;
        if s.rng.chance(faults.loss) {
            return None;
        }
        Some(Duration::from_millis(1 + s.rng.below(faults.max_delay_ms)))
    }

    async fn call(
        &self,
        client: u64,
        principal: &Principal,
        node: NodeId,
        ctx: tarpc::context::Context,
        request: LedgerRpcRequest,
    ) -> Result<LedgerRpcResponse, RpcError> {
        let request = acknowledge_nothing(request);
        let Some(delay) = self.draw() else {
            return std::future::pending().await;
        };
        tokio::time::sleep(delay).await;
        let service = lock(&self.0).services.get(&node).cloned();
        let Some(service) = service else {
            return Err(RpcError::Shutdown);
        };
        // The connection's principal, as the TLS handshake gives it on a real port.
        let service = service.for_principal(principal.clone());
        let served = tokio::spawn(service.serve().serve(ctx, request))
            .await
            .map_err(|_| RpcError::Shutdown)?
            .map_err(RpcError::Server)?;
        let Some(delay) = self.draw() else {
            return std::future::pending().await;
        };
        tokio::time::sleep(delay).await;
        Ok(self.maybe_duplicate(client, served))
    }

    /// `network-duplicates-answer`: now and then a client's answer to a submit is replaced
    /// by its previous one.
    fn maybe_duplicate(&self, client: u64, answer: LedgerRpcResponse) -> LedgerRpcResponse {
        let mut s = lock(&self.0);
        let LedgerRpcResponse::Submit(Ok(results)) = answer else {
            return answer;
        };
        if !s.duplicates_answers {
            return LedgerRpcResponse::Submit(Ok(results));
        }
        let replay = s.rng.chance(0.1);
        match s.last_answer.insert(client, results.clone()) {
            Some(previous) if replay => LedgerRpcResponse::Submit(Ok(previous)),
            _ => LedgerRpcResponse::Submit(Ok(results)),
        }
    }
}

/// The simulated clients acknowledge nothing (`acked_below` zero), so that the ledger keeps
/// every idempotency record for the checks; the genesis window is large enough for a run.
fn acknowledge_nothing(request: LedgerRpcRequest) -> LedgerRpcRequest {
    match request {
        LedgerRpcRequest::Submit { mut requests } => {
            for r in &mut requests {
                r.acked_below = 0;
            }
            LedgerRpcRequest::Submit { requests }
        }
        other => other,
    }
}

/// One client's view of the simulated network: its connections, its virtual wall clock and
/// its own random stream.
pub struct SimTransport {
    pub net: ClientNet,
    pub client: u64,
    /// Who this client is to the nodes (what its certificate would name).
    pub principal: Principal,
    pub rng: Mutex<SimRng>,
    pub started: tokio::time::Instant,
}

/// A connection from a client to a node's client port.
#[derive(Clone)]
pub struct SimStub {
    net: ClientNet,
    client: u64,
    principal: Principal,
    node: NodeId,
}

impl tarpc::client::stub::Stub for SimStub {
    type Req = LedgerRpcRequest;
    type Resp = LedgerRpcResponse;

    async fn call(
        &self,
        ctx: tarpc::context::Context,
        request: LedgerRpcRequest,
    ) -> Result<LedgerRpcResponse, RpcError> {
        self.net
            .call(self.client, &self.principal, self.node, ctx, request)
            .await
    }
}

/// The client endpoint of a simulated node.
pub fn endpoint(id: NodeId) -> String {
    format!("sim:{id}")
}

impl Transport for SimTransport {
    type Stub = SimStub;

    async fn connect(&self, endpoint: &str, _timeout: Duration) -> std::io::Result<SimStub> {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let node: NodeId = endpoint
            .strip_prefix("sim:")
            .and_then(|id| id.parse().ok())
            .ok_or_else(refused)?;
        if !lock(&self.net.0).services.contains_key(&node) {
            return Err(refused());
        }
        Ok(SimStub {
            net: self.net.clone(),
            client: self.client,
            principal: self.principal.clone(),
            node,
        })
    }

    fn now_us(&self) -> u64 {
        (EPOCH_MS + self.started.elapsed().as_millis() as u64) * 1_000
    }

    fn random_u64(&self) -> u64 {
        lock(&self.rng).next_u64()
    }
}
