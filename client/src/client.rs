//! The client: finds and follows the leader, retries with the same idempotency key.

use ledger_core::config::LedgerConfig;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::types::RequestKey;
use ledger_wire::api::{
    ApiError, BackupManifest, ClientRequest, Consistency, NodeInfo, NodeStatus, Operation, Query,
    QueryReply, MAX_BATCH,
};
use ledger_wire::principal::Principal;
use ledger_wire::rpc::{LedgerRpcClient, LedgerRpcRequest, LedgerRpcResponse};
pub use ledger_wire::tls::{TlsError, TlsIdentity};
use ledger_wire::transport;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tarpc::client::stub::Stub;

/// What the client needs from the world: a way to reach a node, a wall clock (request ids
/// start at it) and randomness (back-off jitter, a random client id). `Tcp` is the real one;
/// the simulator supplies its own, so its clients run this library's retry and
/// leader-following code on simulated connections, in virtual time, from a seed.
pub trait Transport: Send + Sync + 'static {
    /// A connection to one node's client port.
    type Stub: Stub<Req = LedgerRpcRequest, Resp = LedgerRpcResponse>
        + Clone
        + Send
        + Sync
        + 'static;

    /// Connects to `endpoint` within `timeout`.
    fn connect(
        &self,
        endpoint: &str,
        timeout: Duration,
    ) -> impl Future<Output = std::io::Result<Self::Stub>> + Send;

    /// Wall-clock time, µs since the Unix epoch.
    fn now_us(&self) -> u64;

    /// A uniformly random number.
    fn random_u64(&self) -> u64;
}

/// The real transport: tarpc over TCP, with mutual TLS when it has an identity (plaintext
/// otherwise), the system clock, the thread's random source.
#[derive(Clone, Debug, Default)]
pub struct Tcp {
    /// The certificate this client presents; `None` for a plaintext node.
    pub tls: Option<TlsIdentity>,
}

impl Transport for Tcp {
    type Stub = tarpc::client::Channel<LedgerRpcRequest, LedgerRpcResponse>;

    async fn connect(&self, endpoint: &str, timeout: Duration) -> std::io::Result<Self::Stub> {
        let config = tarpc::client::Config::default();
        Ok(match &self.tls {
            Some(identity) => {
                let framed =
                    transport::connect_tls(endpoint, timeout, identity.client_config()).await?;
                tarpc::client::new(config, framed).spawn()
            }
            None => {
                let framed = transport::connect(endpoint, timeout).await?;
                tarpc::client::new(config, framed).spawn()
            }
        })
    }

    fn now_us(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64)
    }

    fn random_u64(&self) -> u64 {
        rand::thread_rng().gen()
    }
}

/// The `ledger-node dev` cluster's client endpoints.
pub const DEV_ENDPOINTS: [&str; 3] = ["127.0.0.1:7201", "127.0.0.1:7202", "127.0.0.1:7203"];

/// How the client connects, waits and retries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Client ports of the cluster's nodes (`host:port`).
    pub endpoints: Vec<String>,
    /// Time allowed for one call to one node.
    pub call_timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Attempts per logical operation, the first included.
    pub max_attempts: u32,
    /// First back-off between attempts; doubles each time, with full jitter.
    pub backoff_initial: Duration,
    /// Largest back-off between attempts.
    pub backoff_max: Duration,
    /// The idempotency client id; random when None. Reuse it only with increasing request ids.
    pub client_id: Option<u64>,
    /// Most requests this client has outstanding at once. Must stay below the ledger's
    /// `idempotency_window_per_client` (default 1,024), so that the ledger never forgets a
    /// record of this client before the client has its answer.
    pub max_in_flight: usize,
    /// Whether to follow `NotLeader` answers to the leader (the default). Without it the
    /// client only ever talks to its configured endpoints: a node-bound client, for health
    /// checks and tests that must hear one particular node.
    pub follow_leader: bool,
    /// The certificate (and cluster CA) to connect with over mutual TLS; `None` connects in
    /// plaintext, which only a node started with `insecure_plaintext` accepts. The node
    /// answers this client as the principal the certificate names.
    pub tls: Option<TlsIdentity>,
    /// Multibatching: concurrent `submit` and `submit_with_key` calls on this client ride
    /// together. At most this many requests carry them at once; each leaves with every
    /// operation waiting when it does (up to `MAX_BATCH`), so a hundred callers of single
    /// transfers share a few requests, and a lone caller still goes at once. A caller
    /// cancelled while its operation waits sends nothing; one cancelled while its request is
    /// out leaves the callers it carried with an unknown outcome (`Unavailable`), as a
    /// cancelled call of its own would. 0 (the default): each call is its own request.
    pub coalesce: usize,
}

/// Most keys a client holds unanswered (issued, or sent without an answer yet). Half the
/// ledger's default per-client window, so the ledger never forgets a held key's record.
pub const MAX_UNANSWERED_KEYS: usize = 512;

/// Default of `ClientConfig::max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

impl ClientConfig {
    /// The defaults (5 s per call, 10 attempts, back-off from 50 ms to 2 s, 256 requests in
    /// flight, a random client id) for these endpoints.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            call_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            max_attempts: 10,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            client_id: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            follow_leader: true,
            tls: None,
            coalesce: 0,
        }
    }
}

/// Why an operation failed. `is_retryable` says whether trying the same operation again
/// later (the client reuses its key) may succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The ledger refused the operation; retrying the same request gives the same answer.
    #[error("refused: {0}")]
    Refused(#[from] LedgerError),
    /// No node could apply it within the attempts; the outcome is unknown: retry with the
    /// same key (`submit_with_key`) to learn it without applying it twice.
    #[error("cluster unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// What went wrong the last time.
        last: String,
    },
    /// The node refused the request itself (bad batch, forbidden command).
    #[error("rejected: {0}")]
    Rejected(ApiError),
    /// The node answered with a reply of another kind than the operation produces: a
    /// version mismatch between client and cluster.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// A node refused this client's certificate in the TLS handshake (unknown CA, expired,
    /// revoked, a role not served on that port): nothing was sent, and retrying with the
    /// same certificate will not help.
    #[error("certificate refused by {endpoint}: {reason}")]
    CertificateRefused {
        /// The node that refused it.
        endpoint: String,
        /// Why, in plain words.
        reason: String,
    },
}

impl ClientError {
    /// Whether the same operation, retried later (with the same key), may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Refused(e) => e.is_retryable(),
            ClientError::Unavailable { .. } => true,
            ClientError::Rejected(e) => e.is_retryable(),
            ClientError::UnexpectedReply(_) | ClientError::CertificateRefused { .. } => false,
        }
    }
}

struct State<S> {
    connections: BTreeMap<String, LedgerRpcClient<S>>,
    leader: Option<String>,
    next_request: u64,
    /// Keys not yet answered by the ledger (held, so that it keeps their records).
    in_flight: BTreeSet<u64>,
    /// Of those, the keys a call has gone unanswered for: the request may have been applied.
    /// Only the ledger's answer lets such a key go, not a later call refused before it
    /// reached the ledger (a full disk, a refused certificate).
    maybe_applied: BTreeSet<u64>,
}

impl<S> State<S> {
    /// The key is answered for, or given up on: the ledger may forget its record.
    fn release(&mut self, request_id: u64) {
        self.in_flight.remove(&request_id);
        self.maybe_applied.remove(&request_id);
    }
}

/// A connection to a cluster.
pub struct Client<T: Transport = Tcp> {
    config: ClientConfig,
    client_id: u64,
    transport: T,
    state: Mutex<State<T::Stub>>,
    in_flight: tokio::sync::Semaphore,
    /// Operations waiting to ride together (`ClientConfig::coalesce`).
    coalescing: Mutex<Coalescing>,
    /// Wakes the waiting callers when a request carrying coalesced operations ends.
    coalesce_turn: tokio::sync::Notify,
}

/// Concurrent callers' operations waiting for a request to carry them.
#[derive(Default)]
struct Coalescing {
    waiting: VecDeque<Waiting>,
    /// Requests carrying coalesced operations now outstanding.
    sending: usize,
}

/// One caller's operation, and where its answer goes.
struct Waiting {
    key: RequestKey,
    operation: Operation,
    answer: tokio::sync::oneshot::Sender<Result<Reply, ClientError>>,
}

/// A caller's operation in the queue, taken out again if the caller is cancelled before a
/// request carried it: a call given up on sends nothing it had not sent.
struct Queued<'a, T: Transport> {
    client: &'a Client<T>,
    key: RequestKey,
}

impl<T: Transport> Drop for Queued<'_, T> {
    fn drop(&mut self) {
        let mut coalescing = self.client.coalescing.lock().expect("coalescing");
        coalescing.waiting.retain(|w| w.key != self.key);
    }
}

/// One of the `coalesce` request slots, taken; given back (and the waiting callers woken)
/// when dropped, also when the caller sending it is cancelled.
struct CoalesceSlot<'a, T: Transport>(&'a Client<T>);

impl<T: Transport> Drop for CoalesceSlot<'_, T> {
    fn drop(&mut self) {
        self.0.coalescing.lock().expect("coalescing").sending -= 1;
        self.0.coalesce_turn.notify_waiters();
    }
}

enum Attempt<T> {
    Done(T),
    /// Sent, and no answer: it may have been applied.
    Unanswered(String),
    Retry(String),
}

impl Client {
    /// A client for the cluster at `config.endpoints`, with `config.tls`'s identity.
    /// Connections open on first use.
    pub fn new(config: ClientConfig) -> Self {
        let transport = Tcp {
            tls: config.tls.clone(),
        };
        Client::with_transport(config, transport)
    }
}

impl<T: Transport> Client<T> {
    /// The transport this client calls through.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// A client that reaches the cluster through `transport`.
    pub fn with_transport(config: ClientConfig, transport: T) -> Self {
        // Ids from 2^63 up are the nodes' own.
        let client_id = config
            .client_id
            .unwrap_or_else(|| transport.random_u64() >> 1);
        // Request ids start at the wall clock in µs, so a restarted process reusing its
        // client id still sends ids above everything it sent before.
        let now_us = transport.now_us().max(1);
        Client {
            in_flight: tokio::sync::Semaphore::new(config.max_in_flight),
            coalescing: Mutex::default(),
            coalesce_turn: tokio::sync::Notify::new(),
            config,
            client_id,
            transport,
            state: Mutex::new(State {
                connections: BTreeMap::new(),
                leader: None,
                next_request: now_us,
                in_flight: BTreeSet::new(),
                maybe_applied: BTreeSet::new(),
            }),
        }
    }

    /// The idempotency client id this client sends.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// A fresh idempotency key for a new logical operation. Until the operation is answered
    /// (or `forget_key` is called) the client does not acknowledge it, so the ledger keeps
    /// its record and a retry under this key learns its outcome. At most
    /// `MAX_UNANSWERED_KEYS` are held; beyond that the oldest is let go.
    pub fn new_key(&self) -> RequestKey {
        let mut state = self.state.lock().expect("client state");
        let request_id = state.next_request;
        state.next_request += 1;
        state.in_flight.insert(request_id);
        while state.in_flight.len() > MAX_UNANSWERED_KEYS {
            if let Some(oldest) = state.in_flight.first().copied() {
                state.release(oldest);
            }
        }
        RequestKey {
            client_id: self.client_id,
            request_id,
        }
    }

    /// Stops holding an unanswered key (the caller gave up on learning its outcome): the
    /// ledger may then forget it, and will refuse it as too old rather than apply it later.
    pub fn forget_key(&self, key: RequestKey) {
        self.state
            .lock()
            .expect("client state")
            .release(key.request_id);
    }

    fn acked_below(&self) -> u64 {
        let state = self.state.lock().expect("client state");
        state
            .in_flight
            .first()
            .copied()
            .unwrap_or(state.next_request)
    }

    /// The known leader, else the endpoints in turn (after a timeout the leader is
    /// forgotten, so the next attempt asks another node).
    fn pick_endpoint(&self, attempt: u32) -> String {
        let state = self.state.lock().expect("client state");
        match &state.leader {
            Some(leader) => leader.clone(),
            None => self.config.endpoints[attempt as usize % self.config.endpoints.len()].clone(),
        }
    }

    async fn connection(&self, endpoint: &str) -> Result<LedgerRpcClient<T::Stub>, std::io::Error> {
        if let Some(c) = self
            .state
            .lock()
            .expect("client state")
            .connections
            .get(endpoint)
        {
            return Ok(c.clone());
        }
        let stub = self
            .transport
            .connect(endpoint, self.config.connect_timeout)
            .await?;
        let client = LedgerRpcClient::from(stub);
        self.state
            .lock()
            .expect("client state")
            .connections
            .insert(endpoint.to_owned(), client.clone());
        Ok(client)
    }

    fn forget(&self, endpoint: &str) {
        let mut state = self.state.lock().expect("client state");
        state.connections.remove(endpoint);
        if state.leader.as_deref() == Some(endpoint) {
            state.leader = None;
        }
    }

    fn follow(&self, leader: Option<&NodeInfo>) {
        let mut state = self.state.lock().expect("client state");
        state.leader = leader.map(|l| l.client_addr.clone());
    }

    fn context(&self) -> tarpc::context::Context {
        let mut ctx = tarpc::context::current();
        ctx.deadline = Instant::now() + self.config.call_timeout;
        ctx
    }

    async fn backoff(&self, attempt: u32) {
        let exp = self
            .config
            .backoff_initial
            .saturating_mul(1 << attempt.min(16));
        let cap = exp.min(self.config.backoff_max);
        let jitter = self.transport.random_u64() % (cap.as_millis() as u64 + 1);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
    }

    /// Calls `f` on the leader (or whichever node answers), following `NotLeader` answers
    /// and retrying retryable failures with back-off, up to `max_attempts`.
    async fn with_leader<A, F, Fut>(&self, mut f: F) -> Result<A, ClientError>
    where
        F: FnMut(LedgerRpcClient<T::Stub>, tarpc::context::Context) -> Fut,
        Fut: std::future::Future<Output = Result<Result<A, ApiError>, tarpc::client::RpcError>>,
    {
        if self.config.endpoints.is_empty() {
            return Err(ClientError::Unavailable {
                attempts: 0,
                last: "no endpoint configured".to_owned(),
            });
        }
        let mut last = String::new();
        // An earlier attempt that reached a node without an answer (timed out, connection
        // lost, outcome unknown): a later refusal by a node (its TLS handshake, a full disk)
        // says nothing about that one, which may have been applied.
        let mut unanswered: Option<String> = None;
        let unknown = |attempt: u32, refusal: String, earlier: &str| ClientError::Unavailable {
            attempts: attempt + 1,
            last: format!("{refusal}; an earlier attempt may have been applied ({earlier})"),
        };
        // The last attempt was sent on to another node named as leader: a redirect, not a
        // failure, so the next attempt goes without backing off (a client that found the
        // new leader after a failover at once, not one back-off later).
        let mut redirected = false;
        // Back-offs so far: a redirect does not lengthen the next one.
        let mut backoffs = 0;
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 && !std::mem::take(&mut redirected) {
                self.backoff(backoffs).await;
                backoffs += 1;
            }
            let endpoint = self.pick_endpoint(attempt);
            let outcome = match self.connection(&endpoint).await {
                // The TLS handshake refused our certificate: no retry changes that.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    let reason = e.to_string();
                    if let Some(earlier) = &unanswered {
                        return Err(unknown(attempt, format!("{endpoint}: {reason}"), earlier));
                    }
                    return Err(ClientError::CertificateRefused { endpoint, reason });
                }
                Err(e) => {
                    self.forget(&endpoint);
                    Attempt::Retry(format!("{endpoint}: {e}"))
                }
                Ok(conn) => {
                    match tokio::time::timeout(self.config.call_timeout, f(conn, self.context()))
                        .await
                    {
                        Err(_) => {
                            // A silent node may be cut off from the cluster (a deposed leader
                            // behind a partition): ask the others next, they know the leader.
                            self.state
                                .lock()
                                .expect("client state")
                                .leader
                                .take_if(|l| *l == endpoint);
                            Attempt::Unanswered(format!(
                                "{endpoint}: no answer within {:?}",
                                self.config.call_timeout
                            ))
                        }
                        Ok(Err(rpc)) => {
                            self.forget(&endpoint);
                            Attempt::Unanswered(format!("{endpoint}: {rpc}"))
                        }
                        Ok(Ok(Err(ApiError::NotLeader { leader }))) => {
                            if self.config.follow_leader {
                                self.follow(leader.as_ref());
                                redirected = leader.is_some_and(|l| l.client_addr != endpoint);
                            }
                            Attempt::Retry(format!("{endpoint}: not the leader"))
                        }
                        // Not applied, and not soon to change: the caller decides when.
                        Ok(Ok(Err(e @ ApiError::DiskFull { .. }))) => {
                            if let Some(earlier) = &unanswered {
                                return Err(unknown(attempt, format!("{endpoint}: {e}"), earlier));
                            }
                            return Err(ClientError::Rejected(e));
                        }
                        Ok(Ok(Err(e))) if e.is_retryable() => {
                            Attempt::Unanswered(format!("{endpoint}: {e}"))
                        }
                        Ok(Ok(Err(ApiError::Ledger(e)))) => return Err(ClientError::Refused(e)),
                        Ok(Ok(Err(e))) => return Err(ClientError::Rejected(e)),
                        Ok(Ok(Ok(answer))) => Attempt::Done(answer),
                    }
                }
            };
            match outcome {
                Attempt::Done(answer) => {
                    self.state
                        .lock()
                        .expect("client state")
                        .leader
                        .get_or_insert(endpoint);
                    return Ok(answer);
                }
                Attempt::Retry(reason) => last = reason,
                Attempt::Unanswered(reason) => {
                    unanswered = Some(reason.clone());
                    last = reason;
                }
            }
        }
        Err(ClientError::Unavailable {
            attempts: self.config.max_attempts,
            last,
        })
    }

    /// Applies one operation exactly once: a fresh key, reused on every retry.
    pub async fn submit(&self, operation: Operation) -> Result<Reply, ClientError> {
        let key = self.new_key();
        self.submit_with_key(key, operation).await
    }

    /// Applies (or, if it was applied before, answers) the operation under `key`.
    pub async fn submit_with_key(
        &self,
        key: RequestKey,
        operation: Operation,
    ) -> Result<Reply, ClientError> {
        if self.config.coalesce > 0 {
            return self.submit_coalesced(key, operation).await;
        }
        let mut results = self.submit_batch_with_keys(vec![(key, operation)]).await?;
        results.pop().expect("one result per request")
    }

    /// Queues the operation, and sends the queue as one request whenever fewer than
    /// `coalesce` such requests are outstanding (the caller that finds room sends what is
    /// waiting, its own operation with the others'); returns once its answer is in.
    async fn submit_coalesced(
        &self,
        key: RequestKey,
        operation: Operation,
    ) -> Result<Reply, ClientError> {
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        self.coalescing
            .lock()
            .expect("coalescing")
            .waiting
            .push_back(Waiting {
                key,
                operation,
                answer,
            });
        let _queued = Queued { client: self, key };
        loop {
            // Listening before looking for room: a slot given back in between still wakes us.
            let turn = self.coalesce_turn.notified();
            tokio::pin!(turn);
            turn.as_mut().enable();
            if let Some((slot, batch)) = self.take_coalesced() {
                self.send_coalesced(batch).await;
                drop(slot);
            }
            tokio::select! {
                answer = &mut answered => {
                    return answer.unwrap_or_else(|_| Err(ClientError::Unavailable {
                        attempts: 1,
                        last: "the call that carried this request was cancelled; it may have \
                               been applied"
                            .to_owned(),
                    }));
                }
                () = &mut turn => {}
            }
        }
    }

    /// A request slot and the operations waiting (up to a batch), if there are both.
    fn take_coalesced(&self) -> Option<(CoalesceSlot<'_, T>, Vec<Waiting>)> {
        let mut coalescing = self.coalescing.lock().expect("coalescing");
        if coalescing.waiting.is_empty() || coalescing.sending >= self.config.coalesce {
            return None;
        }
        coalescing.sending += 1;
        let n = coalescing.waiting.len().min(self.max_batch());
        let batch = coalescing.waiting.drain(..n).collect();
        Some((CoalesceSlot(self), batch))
    }

    /// Sends `batch` as one request and hands each caller its own answer.
    async fn send_coalesced(&self, batch: Vec<Waiting>) {
        let (operations, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|w| ((w.key, w.operation), w.answer))
            .unzip();
        match self.submit_keyed(None, operations).await {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }

    /// Most operations one request of this client carries.
    fn max_batch(&self) -> usize {
        MAX_BATCH.min(self.config.max_in_flight)
    }

    /// Applies up to `MAX_BATCH` operations in one Raft entry, in order; one result each.
    pub async fn submit_batch(
        &self,
        operations: Vec<Operation>,
    ) -> Result<Vec<Result<Reply, ClientError>>, ClientError> {
        let keyed = operations
            .into_iter()
            .map(|op| (self.new_key(), op))
            .collect();
        self.submit_batch_with_keys(keyed).await
    }

    /// Like `submit_batch` with keys chosen by the caller.
    pub async fn submit_batch_with_keys(
        &self,
        operations: Vec<(RequestKey, Operation)>,
    ) -> Result<Vec<Result<Reply, ClientError>>, ClientError> {
        self.submit_keyed(None, operations).await
    }

    /// `submit_with_key` for `principal`: this client is a gateway's, which authenticated
    /// the principal itself (the node checks that this client's certificate names a
    /// gateway). The key lives in `principal`'s namespace, as if it had sent it.
    pub async fn submit_as(
        &self,
        principal: &Principal,
        key: RequestKey,
        operation: Operation,
    ) -> Result<Reply, ClientError> {
        let mut results = self
            .submit_keyed(Some(principal), vec![(key, operation)])
            .await?;
        results.pop().expect("one result per request")
    }

    /// `query` for `principal`, on the terms of `submit_as`.
    pub async fn query_as(
        &self,
        principal: &Principal,
        query: Query,
        consistency: Consistency,
    ) -> Result<QueryReply, ClientError> {
        self.with_leader(|c, ctx| {
            let (principal, query) = (principal.clone(), query.clone());
            async move { c.query_as(ctx, principal, query, consistency).await }
        })
        .await
    }

    async fn submit_keyed(
        &self,
        principal: Option<&Principal>,
        operations: Vec<(RequestKey, Operation)>,
    ) -> Result<Vec<Result<Reply, ClientError>>, ClientError> {
        let max = self.max_batch();
        if operations.len() > max {
            return Err(ClientError::Rejected(ApiError::BatchTooLarge { max }));
        }
        let _permits = self
            .in_flight
            .acquire_many(operations.len() as u32)
            .await
            .expect("the semaphore is never closed");
        let acked_below = self.acked_below();
        let requests: Vec<ClientRequest> = operations
            .iter()
            .map(|(key, operation)| ClientRequest {
                key: *key,
                acked_below,
                operation: operation.clone(),
            })
            .collect();
        let answer = self
            .with_leader(|c, ctx| {
                let (requests, principal) = (requests.clone(), principal.cloned());
                async move {
                    match principal {
                        None => c.submit(ctx, requests).await,
                        Some(p) => c.submit_as(ctx, p, requests).await,
                    }
                }
            })
            .await;
        // Answered by the ledger (a reply or its refusal): the ledger may forget the key's
        // record. Unanswered (Unavailable): the key stays held, so that a retry under it
        // learns the outcome. Refused before the ledger (a full disk, a certificate, a
        // role): let go, unless an earlier call under the key went unanswered.
        {
            let mut state = self.state.lock().expect("client state");
            for (n, (key, _)) in operations.iter().enumerate() {
                let ledger_answered = match &answer {
                    Ok(results) => matches!(results.get(n), Some(Ok(_) | Err(ApiError::Ledger(_)))),
                    Err(_) => false,
                };
                if matches!(answer, Err(ClientError::Unavailable { .. })) {
                    state.in_flight.insert(key.request_id);
                    state.maybe_applied.insert(key.request_id);
                } else if ledger_answered || !state.maybe_applied.contains(&key.request_id) {
                    state.release(key.request_id);
                }
            }
        }
        Ok(answer?
            .into_iter()
            .map(|r| {
                r.map_err(|e| match e {
                    ApiError::Ledger(l) => ClientError::Refused(l),
                    other => ClientError::Rejected(other),
                })
            })
            .collect())
    }

    /// Reads from the leader (linearizable) or from any node (stale).
    pub async fn query(
        &self,
        query: Query,
        consistency: Consistency,
    ) -> Result<QueryReply, ClientError> {
        self.with_leader(|c, ctx| {
            let query = query.clone();
            async move { c.query(ctx, query, consistency).await }
        })
        .await
    }

    /// The status of every configured node; unreachable ones as errors.
    pub async fn cluster_status(&self) -> Vec<(String, Result<NodeStatus, String>)> {
        let mut out = Vec::new();
        for endpoint in self.config.endpoints.clone() {
            let status = match self.connection(&endpoint).await {
                Err(e) => Err(format!("{endpoint}: {e}")),
                Ok(c) => {
                    match tokio::time::timeout(self.config.call_timeout, c.status(self.context()))
                        .await
                    {
                        Ok(Ok(s)) => Ok(s),
                        Ok(Err(e)) => {
                            self.forget(&endpoint);
                            Err(e.to_string())
                        }
                        Err(_) => Err("no answer".to_owned()),
                    }
                }
            };
            out.push((endpoint, status));
        }
        out
    }

    /// Fetches a backup from the node at `endpoint` (that node, not the leader: a backup is
    /// one node's copy): `backup_begin`, then its chunks until the manifest's length. Checking
    /// the bytes against the manifest's SHA-256 is the caller's (the backup file's writer).
    pub async fn backup(&self, endpoint: &str) -> Result<(BackupManifest, Vec<u8>), ClientError> {
        let unavailable = |last: String| ClientError::Unavailable { attempts: 1, last };
        let conn = match self.connection(endpoint).await {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(ClientError::CertificateRefused {
                    endpoint: endpoint.to_owned(),
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(unavailable(format!("{endpoint}: {e}"))),
            Ok(conn) => conn,
        };
        let call = |what: &'static str| {
            move |e: tarpc::client::RpcError| unavailable(format!("{endpoint}: {what}: {e}"))
        };
        let manifest = conn
            .backup_begin(self.context())
            .await
            .map_err(call("backup_begin"))?
            .map_err(ClientError::Rejected)?;
        let mut bytes = Vec::with_capacity(usize::try_from(manifest.bytes).unwrap_or(0));
        while (bytes.len() as u64) < manifest.bytes {
            let chunk = conn
                .backup_chunk(self.context(), manifest.backup_id, bytes.len() as u64)
                .await
                .map_err(call("backup_chunk"))?
                .map_err(ClientError::Rejected)?;
            if chunk.is_empty() {
                return Err(ClientError::UnexpectedReply(format!(
                    "{endpoint} ended backup {} after {} of {} bytes",
                    manifest.backup_id,
                    bytes.len(),
                    manifest.bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((manifest, bytes))
    }

    /// Initialises a new cluster (membership and ledger genesis).
    pub async fn init_cluster(
        &self,
        members: Vec<NodeInfo>,
        config: LedgerConfig,
    ) -> Result<(), ClientError> {
        self.with_leader(|c, ctx| {
            let (members, config) = (members.clone(), config.clone());
            async move { c.init_cluster(ctx, members, config).await }
        })
        .await
    }

    /// Adds a node (learner, then voter).
    pub async fn add_node(&self, node: NodeInfo) -> Result<(), ClientError> {
        self.with_leader(|c, ctx| {
            let node = node.clone();
            async move { c.add_node(ctx, node).await }
        })
        .await
    }

    /// Removes a voter.
    pub async fn remove_node(&self, id: u64) -> Result<(), ClientError> {
        self.with_leader(|c, ctx| async move { c.remove_node(ctx, id).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::types::AccountId;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use tarpc::client::RpcError;

    /// What the next attempt meets.
    #[derive(Clone, Copy, Debug)]
    enum Meets {
        /// A node that takes the request and never answers.
        Silence,
        /// The node's TLS handshake refuses the client's certificate.
        CertificateRefused,
        /// The leader's disk is below its reserve.
        DiskFull,
        /// The ledger applies the deposit (or answers how it did).
        Applied,
        /// A node that is not the leader names the one at this client address.
        Redirect(&'static str),
        /// The leader applies every request of the call, after this many ms.
        AppliesAllAfter(u64),
    }

    /// Answers each attempt as the script says, and records what the client did.
    #[derive(Clone)]
    struct Scripted {
        script: Arc<Mutex<VecDeque<Meets>>>,
        /// The endpoints connected to, in order.
        connected: Arc<Mutex<Vec<String>>>,
        /// Requests carried by each submit call, in order.
        calls: Arc<Mutex<Vec<usize>>>,
    }

    impl Scripted {
        fn new(script: &[Meets]) -> Scripted {
            Scripted {
                script: Arc::new(Mutex::new(script.iter().copied().collect())),
                connected: Arc::default(),
                calls: Arc::default(),
            }
        }
        fn next(&self) -> Meets {
            self.script
                .lock()
                .expect("script")
                .pop_front()
                .expect("a scripted attempt")
        }
        fn peek(&self) -> Option<Meets> {
            self.script.lock().expect("script").front().copied()
        }
    }

    impl tarpc::client::stub::Stub for Scripted {
        type Req = LedgerRpcRequest;
        type Resp = LedgerRpcResponse;

        async fn call(
            &self,
            _: tarpc::context::Context,
            request: LedgerRpcRequest,
        ) -> Result<LedgerRpcResponse, RpcError> {
            let requests = match request {
                LedgerRpcRequest::Submit { requests } => requests.len(),
                _ => 0,
            };
            self.calls.lock().expect("calls").push(requests);
            match self.next() {
                Meets::DiskFull => Ok(LedgerRpcResponse::Submit(Err(ApiError::DiskFull {
                    free_bytes: 1,
                    reserve_bytes: 2,
                }))),
                Meets::Applied => Ok(LedgerRpcResponse::Submit(Ok(vec![posted()]))),
                Meets::Redirect(to) => Ok(LedgerRpcResponse::Submit(Err(ApiError::NotLeader {
                    leader: Some(NodeInfo {
                        id: 2,
                        raft_addr: "raft:1".into(),
                        client_addr: to.into(),
                    }),
                }))),
                Meets::AppliesAllAfter(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(LedgerRpcResponse::Submit(Ok(vec![posted(); requests])))
                }
                _ => std::future::pending().await,
            }
        }
    }

    impl Transport for Scripted {
        type Stub = Scripted;

        async fn connect(&self, endpoint: &str, _: Duration) -> std::io::Result<Scripted> {
            self.connected
                .lock()
                .expect("endpoints")
                .push(endpoint.to_owned());
            if let Some(Meets::CertificateRefused) = self.peek() {
                self.next();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "certificate expired",
                ));
            }
            Ok(self.clone())
        }

        fn now_us(&self) -> u64 {
            1_000_000
        }

        fn random_u64(&self) -> u64 {
            // Back-offs of a fixed share of their cap (603 ms of 2 s), never zero.
            u64::MAX
        }
    }

    fn client(script: &[Meets]) -> Client<Scripted> {
        client_trying(script, 3)
    }

    /// A client that makes at most `attempts` attempts per call.
    fn client_trying(script: &[Meets], attempts: u32) -> Client<Scripted> {
        let mut config = ClientConfig::new(["a:1", "b:1"]);
        config.call_timeout = Duration::from_millis(50);
        config.backoff_initial = Duration::from_millis(1);
        config.backoff_max = Duration::from_millis(1);
        config.max_attempts = attempts;
        Client::with_transport(config, Scripted::new(script))
    }

    /// The ledger's answer to `deposit()`.
    fn posted() -> Result<ledger_core::outcome::Reply, ApiError> {
        Ok(ledger_core::outcome::Reply::Posted {
            account: AccountId(16),
            balance_fen: 1,
        })
    }

    /// A client that coalesces its calls into one request at a time.
    fn coalescing(script: &[Meets]) -> Client<Scripted> {
        let mut config = ClientConfig::new(["a:1"]);
        config.coalesce = 1;
        Client::with_transport(config, Scripted::new(script))
    }

    fn deposit() -> Operation {
        Operation::Command(ledger_core::command::Command::Deposit {
            account: AccountId(16),
            amount_fen: 1,
        })
    }

    #[tokio::test]
    async fn a_refusal_that_applied_nothing_is_reported_as_such_on_a_first_attempt() {
        let full = client(&[Meets::DiskFull]).submit(deposit()).await;
        assert!(
            matches!(full, Err(ClientError::Rejected(ApiError::DiskFull { .. }))),
            "{full:?}"
        );
        let refused = client(&[Meets::CertificateRefused]).submit(deposit()).await;
        assert!(
            matches!(refused, Err(ClientError::CertificateRefused { .. })),
            "{refused:?}"
        );
    }

    /// The chaos harness, 2026-12-04: a transfer timed out on one node, the retry met a node
    /// whose clock was stepped back (so the client's certificate was not yet valid there),
    /// and the client said nothing had been sent: yet the first attempt had been applied.
    #[tokio::test]
    async fn a_refusal_after_an_unanswered_attempt_leaves_the_outcome_unknown() {
        for refusal in [Meets::CertificateRefused, Meets::DiskFull] {
            let answer = client(&[Meets::Silence, refusal]).submit(deposit()).await;
            match answer {
                Err(ClientError::Unavailable { attempts, last }) => {
                    assert_eq!(attempts, 2);
                    assert!(
                        last.contains("an earlier attempt may have been applied"),
                        "{last}"
                    );
                }
                other => panic!("{refusal:?} after silence: expected Unavailable, got {other:?}"),
            }
        }
    }

    /// The chaos harness, 2026-12-04: a deposit's call went unanswered; the retry under its
    /// key, a new call, was refused before the ledger (a certificate not yet valid on a node
    /// whose clock stepped back); the client let the key go, the ledger forgot it, and every
    /// later retry was refused as too old: the outcome could never be learned.
    #[tokio::test]
    async fn a_key_left_unknown_is_held_until_the_ledger_answers_for_it() {
        // (A refused certificate takes the same path as a full disk: any error but
        // Unavailable.)
        let c = client_trying(&[Meets::Silence, Meets::DiskFull, Meets::Applied], 1);
        let key = c.new_key();
        let first = c.submit_with_key(key, deposit()).await;
        assert!(
            matches!(first, Err(ClientError::Unavailable { .. })),
            "{first:?}"
        );
        assert!(c.acked_below() <= key.request_id, "held while unknown");
        let refused = c.submit_with_key(key, deposit()).await;
        assert!(refused.is_err(), "{refused:?}");
        assert!(
            c.acked_below() <= key.request_id,
            "a full disk before the ledger says nothing of the first call: still held"
        );
        c.submit_with_key(key, deposit()).await.expect("answered");
        assert!(c.acked_below() > key.request_id, "let go once answered");
        // A key no call went unanswered for is let go on a refusal before the ledger.
        let c = client(&[Meets::DiskFull]);
        let key = c.new_key();
        assert!(c.submit_with_key(key, deposit()).await.is_err());
        assert!(c.acked_below() > key.request_id);
    }

    /// After a failover a follower names the new leader: the client asks it at once. The
    /// failover bench's writes waited one more back-off (hundreds of ms) after the new
    /// leader was known.
    #[tokio::test(start_paused = true)]
    async fn a_redirect_to_the_named_leader_goes_at_once_and_other_retries_back_off() {
        let backing_off = |script: &[Meets]| {
            let mut config = ClientConfig::new(["a:1", "b:1"]);
            config.backoff_initial = Duration::from_secs(2);
            config.backoff_max = Duration::from_secs(2);
            Client::with_transport(config, Scripted::new(script))
        };
        let redirected = backing_off(&[Meets::Redirect("b:1"), Meets::Applied]);
        let started = tokio::time::Instant::now();
        redirected.submit(deposit()).await.expect("applied");
        assert!(started.elapsed() < Duration::from_millis(1), "no back-off");
        assert_eq!(
            *redirected.transport().connected.lock().unwrap(),
            ["a:1", "b:1"]
        );
        // A node naming itself redirects nowhere: a retry like any other.
        let pointed_back = backing_off(&[Meets::Redirect("a:1"), Meets::Applied]);
        let started = tokio::time::Instant::now();
        pointed_back.submit(deposit()).await.expect("applied");
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "backed off"
        );
    }

    /// Multibatching: while one request is out (`coalesce` = 1), the calls made meanwhile
    /// wait and then leave together, each with its own answer.
    #[tokio::test(start_paused = true)]
    async fn concurrent_calls_ride_together_while_the_requests_allowed_are_out() {
        let client = coalescing(&[Meets::AppliesAllAfter(10), Meets::AppliesAllAfter(10)]);
        let answers = futures::future::join_all((0..3).map(|_| client.submit(deposit()))).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(*client.transport().calls.lock().unwrap(), [1, 2]);
        assert!(
            client.state.lock().unwrap().in_flight.is_empty(),
            "every key let go once answered"
        );
    }

    /// A caller cancelled while its request carried coalesced operations gives the request
    /// slot back: the callers waiting behind it go on.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_caller_strands_no_one_waiting_behind_it() {
        let client = coalescing(&[Meets::Silence, Meets::AppliesAllAfter(0)]);
        let mut first = Box::pin(client.submit(deposit()));
        let mut second = Box::pin(client.submit(deposit()));
        assert!(
            futures::poll!(&mut first).is_pending(),
            "out, never answered"
        );
        assert!(
            futures::poll!(&mut second).is_pending(),
            "waiting for the slot"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(60), second)
            .await
            .expect("not stranded")
            .expect("sent once the slot was given back");
        assert_eq!(*client.transport().calls.lock().unwrap(), [1, 1]);
    }

    /// A caller cancelled while its operation still waited for a request: it is not sent.
    #[tokio::test(start_paused = true)]
    async fn a_caller_cancelled_while_waiting_sends_nothing() {
        let client = coalescing(&[Meets::Silence, Meets::AppliesAllAfter(0)]);
        let mut out = Box::pin(client.submit(deposit()));
        let mut waiting = Box::pin(client.submit(deposit()));
        assert!(futures::poll!(&mut out).is_pending());
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(waiting);
        drop(out);
        client.submit(deposit()).await.expect("applied");
        assert_eq!(
            *client.transport().calls.lock().unwrap(),
            [1, 1],
            "the last request carries the last call alone"
        );
    }
}
