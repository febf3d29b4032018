//! The client port: the `LedgerRpc` service. The leader checks each request, turns its
//! secrets into hashes (the intake), stamps the batch with its clock and nonces, and proposes
//! it as one Raft entry. Followers answer `NotLeader` with the leader's address.

use crate::intake;
use crate::node::{node_addr, Shared, NODE_CLIENT_ID_BASE};
use crate::planted::PlantedBug;
use crate::proposer;
use crate::raft_types::{LedgerTypes, Proposal, ProposalBody, TypeConfig};
use crate::roles;
use crate::state_store::SledState;
use futures::{future, StreamExt};
use ledger_core::command::{Envelope, SessionOwner};
use ledger_core::config::LedgerConfig;
use ledger_core::types::RequestKey;
use ledger_core::{Ledger, LedgerError};
use ledger_wire::api::{
    AccountView, ApiError, BackupManifest, ClientRequest, ClientResult, Consistency, NodeInfo,
    NodeStatus, Query, QueryReply, API_VERSION, MAX_ACCOUNT_RANGE, MAX_BATCH,
};
use ledger_wire::principal::{Principal, Role};
use ledger_wire::rpc::{LedgerRpc, LedgerRpcRequest, LedgerRpcResponse};
use ledger_wire::tls::NodeTls;
use ledger_wire::transport;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::server::{BaseChannel, Channel};

/// A node added to the cluster becomes a voter only once its log is within this many
/// entries of the leader's: a node that is down or cannot be reached stays a learner
/// (counted in no quorum) rather than a voter nobody hears.
pub const LEARNER_MAX_LAG: u64 = 256;
/// How long one `add_node` call waits for the new learner to come within
/// `LEARNER_MAX_LAG`; then it answers `Unavailable` (retryable: the client asks again).
pub const LEARNER_CATCH_UP_WAIT: Duration = Duration::from_millis(500);

/// Serves the client port until the task is aborted: with mutual TLS when `tls` is given
/// (each connection answered as the principal its certificate names; node certificates
/// refused; a connection whose certificate is revoked by a later CRL reload is closed), else
/// in plaintext, every connection as `plaintext_principal()`.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<Arc<NodeTls>>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let refused = shared.metrics.tls_refused.clone();
    // Every connection starts from this service and gets its own principal.
    let service = ClientService::new(shared, plaintext_principal());
    let Some(tls) = tls else {
        let listener = transport::listen(addr).await?;
        return Ok(tokio::spawn(
            listener
                .filter_map(|conn| future::ready(conn.ok()))
                .map(BaseChannel::with_defaults)
                .for_each_concurrent(None, move |channel| serve_channel(channel, service.clone())),
        ));
    };
    // Nodes speak to each other on the Raft port only (DOMAIN.md section 10).
    let incoming =
        transport::listen_tls(addr, tls.clone(), |p| p.role() != Role::Node, refused).await?;
    Ok(tokio::spawn(incoming.serve_each(
        tls,
        move |framed, peer| {
            let service = service.for_principal(peer.principal.clone());
            serve_channel(BaseChannel::with_defaults(framed), service)
        },
    )))
}

/// Answers one connection's calls until it closes, each call in a task of its own.
async fn serve_channel<T>(
    channel: BaseChannel<LedgerRpcRequest, LedgerRpcResponse, T>,
    service: ClientService,
) where
    T: tarpc::Transport<tarpc::Response<LedgerRpcResponse>, tarpc::ClientMessage<LedgerRpcRequest>>
        + Send
        + 'static,
{
    channel
        .execute(service.serve())
        .for_each(|response| async move {
            tokio::spawn(response);
        })
        .await
}

/// The principal of a connection on a port without TLS.
pub fn plaintext_principal() -> Principal {
    Principal::Operator {
        name: "plaintext".into(),
    }
}

/// The client port's service for one caller: what a node answers, whatever transport
/// brought the call (tarpc over TCP for `ledger-node`, the simulator's router in
/// `ledger-sim`), and who it answers (the principal its connection authenticated as).
pub struct ClientService<C: LedgerTypes = TypeConfig> {
    shared: Arc<Shared<C>>,
    principal: Arc<Principal>,
    /// Whose sessions the caller's requests open: a client's, or, for calls a gateway makes
    /// for a principal (`submit_as`), that principal's keyed sessions, one per HTTP
    /// `Idempotency-Key`, kept a day and counted against the principal's own quota.
    owner: SessionOwner,
}

impl<C: LedgerTypes> Clone for ClientService<C> {
    fn clone(&self) -> Self {
        ClientService {
            shared: self.shared.clone(),
            principal: self.principal.clone(),
            owner: self.owner,
        }
    }
}

fn unavailable(reason: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable {
        reason: reason.to_string(),
    }
}

impl<C: LedgerTypes> ClientService<C> {
    pub fn new(shared: Arc<Shared<C>>, principal: Principal) -> Self {
        ClientService {
            shared,
            principal: Arc::new(principal),
            owner: SessionOwner::Client,
        }
    }

    /// The same node's service for another caller (one per connection).
    pub fn for_principal(&self, principal: Principal) -> Self {
        ClientService::new(self.shared.clone(), principal)
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn not_leader(&self) -> ApiError {
        self.shared.metrics.not_leader.inc();
        let leader = self.shared.raft.metrics().borrow().current_leader;
        ApiError::NotLeader {
            leader: leader.and_then(|id| self.shared.member(id)),
        }
    }

    fn write_error(
        &self,
        e: RaftError<u64, ClientWriteError<u64, crate::raft_types::NodeAddr>>,
    ) -> ApiError {
        let error = proposer::write_error(e);
        self.count_error(&error);
        error
    }

    /// Counts and logs a refusal by the role table (never the request's contents).
    fn forbidden(&self, e: ApiError) -> ApiError {
        self.shared.metrics.forbidden.inc();
        if let ApiError::Forbidden {
            principal,
            operation,
        } = &e
        {
            tracing::warn!(%principal, %operation, "forbidden");
        }
        e
    }

    fn count_error(&self, e: &ApiError) {
        let counter = match e {
            ApiError::NotLeader { .. } => &self.shared.metrics.not_leader,
            _ => &self.shared.metrics.unavailable,
        };
        counter.inc();
    }

    /// Commits a change of the voter set (joint, then uniform configuration).
    async fn change_voters(
        &self,
        change: ChangeMembers<u64, crate::raft_types::NodeAddr>,
    ) -> Result<(), ApiError> {
        self.shared
            .raft
            .change_membership(change, false)
            .await
            .map(drop)
            .map_err(|e| self.write_error(e))
    }

    /// Read index: confirms leadership with a quorum, then waits until this node has applied
    /// everything committed before the call.
    async fn read_index(&self) -> Result<(), ApiError> {
        self.shared
            .raft
            .ensure_linearizable()
            .await
            .map(drop)
            .map_err(|e| match e {
                RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(_)) => {
                    self.not_leader()
                }
                other => unavailable(other),
            })
    }

    /// The same node's service for `principal`, when this caller may act for it.
    fn delegate(&self, principal: Principal) -> Result<Self, ApiError> {
        roles::authorize_delegation(&self.principal, &principal).map_err(|e| self.forbidden(e))?;
        tracing::debug!(gateway = %self.principal, %principal, "delegated call");
        let owner = SessionOwner::Keyed {
            principal: principal.digest64(),
        };
        Ok(ClientService {
            owner,
            ..self.for_principal(principal)
        })
    }

    fn ledger(&self) -> Result<Ledger<SledState>, ApiError> {
        self.shared
            .reader
            .ledger()
            .ok_or_else(|| unavailable("the cluster has no ledger yet (not initialised)"))
    }
}

/// An answer that names the request's key names it as the client sent it, not as the
/// ledger keeps it in the principal's namespace.
fn as_sent(result: ClientResult, sent: RequestKey) -> ClientResult {
    match result {
        Err(ApiError::Ledger(LedgerError::IdempotencyKeyReused { .. })) => {
            Err(ApiError::Ledger(LedgerError::IdempotencyKeyReused {
                key: sent,
            }))
        }
        Err(ApiError::Ledger(LedgerError::RequestTooOld { floor, .. })) => {
            Err(ApiError::Ledger(LedgerError::RequestTooOld {
                key: sent,
                floor,
            }))
        }
        other => other,
    }
}

fn view(ledger: &Ledger<SledState>, account: ledger_core::types::AccountId) -> Option<AccountView> {
    let a = ledger.account(account)?;
    let holder = ledger.holder(account);
    Some(AccountView {
        account,
        holder_name: holder
            .as_ref()
            .map_or_else(|| "(internal)".into(), |h| h.name.clone()),
        phone: holder.map(|h| h.phone).unwrap_or_default(),
        pan_last4: String::from_utf8_lossy(&a.pan_last4).into_owned(),
        status: a.status,
        balance_fen: a.balance_fen,
        merchant: a.merchant,
        flags: a.flags,
        vip: a.vip,
    })
}

/// Whether learner `id` has matched the leader's log to within `LEARNER_MAX_LAG` entries;
/// `None` when this node no longer leads (the promotion that follows then says so).
fn learner_caught_up<N: openraft::Node>(
    m: &openraft::RaftMetrics<u64, N>,
    id: u64,
) -> Option<bool> {
    let matched = m.replication.as_ref()?.get(&id).copied().flatten();
    // A learner that never answered has matched nothing, however short the log.
    Some(matched.is_some_and(|l| l.index + LEARNER_MAX_LAG >= m.last_log_index.unwrap_or(0)))
}

impl<C: LedgerTypes> LedgerRpc for ClientService<C> {
    async fn submit(
        self,
        _: tarpc::context::Context,
        requests: Vec<ClientRequest>,
    ) -> Result<Vec<ClientResult>, ApiError> {
        let started = Instant::now();
        let metrics = &self.shared.metrics;
        metrics.submit_calls.inc();
        if requests.len() > MAX_BATCH {
            return Err(ApiError::BatchTooLarge { max: MAX_BATCH });
        }
        if !self.shared.is_leader() {
            return Err(self.not_leader());
        }
        if let Some(disk) = &self.shared.disk {
            disk.check().inspect_err(|_| {
                metrics.disk_full.inc();
            })?;
        }
        if requests
            .iter()
            .any(|r| r.key.client_id >= NODE_CLIENT_ID_BASE)
        {
            return Err(ApiError::NotAllowed {
                reason: format!("client ids from {NODE_CLIENT_ID_BASE} up are the nodes' own"),
            });
        }
        if requests.iter().any(|r| intake::reads_state(&r.operation)) {
            self.read_index().await?;
        }
        let ledger = self.ledger()?;
        let intake = &self.shared.intake;
        let mut results: Vec<Option<ClientResult>> = vec![None; requests.len()];
        let mut envelopes = Vec::with_capacity(requests.len());
        let mut slots = Vec::with_capacity(requests.len());
        let sent_keys: Vec<RequestKey> = requests.iter().map(|r| r.key).collect();
        for (slot, mut request) in requests.into_iter().enumerate() {
            let skip_roles = intake.planted == Some(PlantedBug::ServiceSkipsRoleCheck);
            let allowed = roles::authorize_operation(&self.principal, &request.operation, &ledger);
            if let (Err(e), false) = (allowed, skip_roles) {
                results[slot] = Some(Err(self.forbidden(e)));
                continue;
            }
            // The ledger keeps each principal's keys apart: nobody reads another's recorded
            // answers or pushes another's retry floor (`acked_below`).
            request.key.client_id = self
                .principal
                .namespaced_client_id(request.key.client_id, NODE_CLIENT_ID_BASE);
            let request_digest = intake.digest(&request.operation);
            if let Some(answer) = intake.recorded_answer(&ledger, request.key, request_digest) {
                results[slot] = Some(answer);
                continue;
            }
            match intake
                .command(&ledger, request.key, request.operation)
                .await
            {
                Ok(command) => {
                    envelopes.push(Envelope {
                        key: request.key,
                        acked_below: request.acked_below,
                        command,
                        request_digest,
                        owner: self.owner,
                    });
                    slots.push(slot);
                }
                Err(e) => results[slot] = Some(Err(e)),
            }
        }
        if !envelopes.is_empty() {
            let outcomes = self
                .shared
                .proposer
                .propose(envelopes)
                .await
                .inspect_err(|e| self.count_error(e))?;
            for (slot, outcome) in slots.into_iter().zip(outcomes) {
                results[slot] = Some(outcome.map_err(ApiError::Ledger));
            }
        }
        let results: Vec<ClientResult> = results
            .into_iter()
            .zip(sent_keys)
            .map(|(r, key)| as_sent(r.expect("every slot answered"), key))
            .collect();
        if results.iter().any(|r| {
            matches!(
                r,
                Ok(ledger_core::Reply::ChallengeIssued { .. }
                    | ledger_core::Reply::PaymentPending { .. })
            )
        }) {
            self.shared.sms_wakeup.notify_one();
        }
        let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        metrics.commands_ok.inc_by(ok);
        metrics.commands_refused.inc_by(results.len() as u64 - ok);
        metrics.submit_latency.observe(started.elapsed());
        Ok(results)
    }

    async fn query(
        self,
        _: tarpc::context::Context,
        query: Query,
        consistency: Consistency,
    ) -> Result<QueryReply, ApiError> {
        let started = Instant::now();
        self.shared.metrics.queries.inc();
        // `unsafe_local_reads` is a test-only fault: the chaos harness's proof that its
        // checkers catch stale reads.
        if consistency == Consistency::Linearizable && !self.shared.unsafe_local_reads {
            self.read_index().await?;
        }
        if let Query::AccountRange { count, .. } = query {
            if count > MAX_ACCOUNT_RANGE {
                return Err(ApiError::NotAllowed {
                    reason: format!("an account range holds at most {MAX_ACCOUNT_RANGE}"),
                });
            }
        }
        // One consistent view: no applied batch lands halfway through the query, nor
        // between the role check and the read.
        let principal = self.principal.clone();
        let reply = self
            .shared
            .reader
            .read(|ledger, applied_index| {
                roles::authorize_query(&principal, &query, ledger)?;
                Ok(match query {
                    Query::Account(a) => QueryReply::Account(view(ledger, a)),
                    Query::Credential(a) => QueryReply::Credential(ledger.credential(a)),
                    Query::Merchant(m) => QueryReply::Merchant(ledger.merchant(m)),
                    Query::Pool(p) => QueryReply::Pool(ledger.pool(p)),
                    Query::Voucher(a, p) => QueryReply::Voucher(ledger.voucher(a, p)),
                    Query::Payment(p) => QueryReply::Payment(ledger.payment(p)),
                    Query::Points(a) => QueryReply::Points(ledger.points(a)),
                    Query::Promotion(p) => QueryReply::Promotion(ledger.promotion(p)),
                    Query::Prize(p) => QueryReply::Prize(ledger.prize(p)),
                    Query::Campaign(c) => QueryReply::Campaign(ledger.campaign(c)),
                    Query::MerchantCampaign(m, c) => {
                        QueryReply::MerchantCampaign(ledger.merchant_campaign(m, c))
                    }
                    Query::StateHash => QueryReply::StateHash {
                        applied_index: applied_index.unwrap_or(0),
                        hash: ledger.state_hash(),
                    },
                    Query::AccountRange { first, count } => QueryReply::Accounts {
                        applied_index: applied_index.unwrap_or(0),
                        accounts: (first.0..first.0.saturating_add(u64::from(count)))
                            .filter_map(|id| view(ledger, ledger_core::types::AccountId(id)))
                            .collect(),
                    },
                    Query::Statement(request) => QueryReply::Statement {
                        applied_index: applied_index.unwrap_or(0),
                        page: ledger.statement(&request)?,
                    },
                    Query::Reconciliation {
                        merchant,
                        day,
                        page_size,
                        cursor,
                    } => QueryReply::Reconciliation {
                        applied_index: applied_index.unwrap_or(0),
                        reconciliation: ledger.reconcile(merchant, day, page_size, cursor)?,
                    },
                    Query::Journal {
                        after_seq,
                        page_size,
                    } => QueryReply::Journal {
                        applied_index: applied_index.unwrap_or(0),
                        rows: ledger.journal(after_seq, page_size)?,
                    },
                    Query::Events {
                        merchant,
                        after_id,
                        page_size,
                    } => QueryReply::Events {
                        applied_index: applied_index.unwrap_or(0),
                        events: ledger.events(merchant, after_id, page_size as usize),
                    },
                    Query::Webhook(m) => QueryReply::Webhook(ledger.webhook(m)),
                    Query::WebhookSecret(m) => {
                        QueryReply::WebhookSecret(ledger.webhook(m).map(|hook| {
                            let version = hook.secret_version;
                            (
                                version,
                                ledger_core::intake::webhook_secret(
                                    &self.shared.intake.keys,
                                    m,
                                    version,
                                ),
                            )
                        }))
                    }
                })
            })
            .ok_or_else(|| unavailable("the cluster has no ledger yet (not initialised)"))?
            .map_err(|e| self.forbidden(e))?;
        self.shared.metrics.query_latency.observe(started.elapsed());
        Ok(reply)
    }

    async fn status(self, _: tarpc::context::Context) -> NodeStatus {
        let m = self.shared.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        NodeStatus {
            api_version: API_VERSION,
            id: m.id,
            role: match m.state {
                ServerState::Leader => "Leader",
                ServerState::Follower => "Follower",
                ServerState::Candidate => "Candidate",
                ServerState::Learner => "Learner",
                ServerState::Shutdown => "Shutdown",
            }
            .into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            replication: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
                .unwrap_or_default(),
            members: membership
                .nodes()
                .map(|(id, n)| NodeInfo {
                    id: *id,
                    raft_addr: n.raft.clone(),
                    client_addr: n.client.clone(),
                })
                .collect(),
            voters: membership.voter_ids().collect(),
        }
    }

    async fn init_cluster(
        self,
        _: tarpc::context::Context,
        members: Vec<NodeInfo>,
        config: LedgerConfig,
    ) -> Result<(), ApiError> {
        roles::authorize_admin(&self.principal, "initialise the cluster")
            .map_err(|e| self.forbidden(e))?;
        let nodes: BTreeMap<u64, crate::raft_types::NodeAddr> =
            members.iter().map(|m| (m.id, node_addr(m))).collect();
        match self.shared.raft.initialize(nodes).await {
            Ok(()) => {}
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(unavailable(e)),
        }
        // Genesis goes through the leader, once an election has produced one.
        let metrics = self
            .shared
            .raft
            .wait(Some(std::time::Duration::from_secs(10)))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(unavailable)?;
        if metrics.current_leader != Some(self.shared.id) {
            return Err(self.not_leader());
        }
        let proposal = Proposal {
            now_ms: self.shared.stamper.now_ms(),
            body: ProposalBody::Genesis(config),
        };
        crate::proposer::write_bounded(&self.shared.raft, proposal)
            .await
            .ok_or_else(|| unavailable("genesis was not applied in time: its outcome is unknown"))?
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    async fn add_node(self, _: tarpc::context::Context, node: NodeInfo) -> Result<(), ApiError> {
        roles::authorize_admin(&self.principal, "add a node").map_err(|e| self.forbidden(e))?;
        if !self.shared.is_leader() {
            return Err(self.not_leader());
        }
        // The answers below come from this node's view of the membership: first confirm
        // that it leads. (A leader removed from the cluster went on calling itself leader
        // with the membership as of its removal, and answered the chaos harness's re-adding
        // of a wiped node "already a voter" while the cluster had removed it.)
        self.read_index().await?;
        let raft = &self.shared.raft;
        let (voter, learner) = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            // Already a voter (in every configuration, when a change is half way): done.
            let voter = membership
                .get_joint_config()
                .iter()
                .all(|config| config.contains(&node.id));
            // Already a learner at this address (an earlier call whose promotion did not go
            // through): no second membership entry for it, only the catch-up and promotion.
            let learner = membership.get_node(&node.id) == Some(&node_addr(&node));
            (voter, learner)
        };
        if voter {
            return Ok(());
        }
        if !learner {
            raft.add_learner(node.id, node_addr(&node), false)
                .await
                .map_err(|e| self.write_error(e))?;
        }
        // openraft's own blocking wait gives up after a while and reports success anyway;
        // this one refuses until the learner has caught up.
        let caught_up = raft
            .wait(Some(LEARNER_CATCH_UP_WAIT))
            .metrics(
                |m| learner_caught_up(m, node.id) != Some(false),
                "the new learner catching up",
            )
            .await;
        if caught_up.is_err() {
            return Err(ApiError::Unavailable {
                reason: format!(
                    "node {} is a learner that has not caught up with the leader's log yet: it becomes a voter once it has (make sure it runs and reaches the leader, then add it again), or remove it",
                    node.id
                ),
            });
        }
        self.change_voters(ChangeMembers::AddVoterIds(BTreeSet::from([node.id])))
            .await
    }

    async fn submit_as(
        self,
        ctx: tarpc::context::Context,
        principal: Principal,
        requests: Vec<ClientRequest>,
    ) -> Result<Vec<ClientResult>, ApiError> {
        self.delegate(principal)?.submit(ctx, requests).await
    }

    async fn query_as(
        self,
        ctx: tarpc::context::Context,
        principal: Principal,
        query: Query,
        consistency: Consistency,
    ) -> Result<QueryReply, ApiError> {
        self.delegate(principal)?
            .query(ctx, query, consistency)
            .await
    }

    async fn remove_node(self, _: tarpc::context::Context, id: u64) -> Result<(), ApiError> {
        roles::authorize_admin(&self.principal, "remove a node").map_err(|e| self.forbidden(e))?;
        if !self.shared.is_leader() {
            return Err(self.not_leader());
        }
        // A voter leaves the voters and the nodes at once; a learner (a node added whose
        // promotion never went through) is removed as a node. Removing a node that is
        // neither changes nothing.
        // As in `add_node`: "not a member" must come from a leader.
        self.read_index().await?;
        let membership = self
            .shared
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let ids = BTreeSet::from([id]);
        let change = if membership.voter_ids().any(|v| v == id) {
            ChangeMembers::RemoveVoters(ids)
        } else if membership.learner_ids().any(|l| l == id) {
            ChangeMembers::RemoveNodes(ids)
        } else {
            return Ok(());
        };
        self.change_voters(change).await
    }

    async fn backup_begin(self, _: tarpc::context::Context) -> Result<BackupManifest, ApiError> {
        roles::authorize_admin(&self.principal, "take a backup").map_err(|e| self.forbidden(e))?;
        // On the leader, a read barrier first: the copy then holds every acknowledged write.
        let linearizable = self.shared.is_leader() && self.read_index().await.is_ok();
        let shared = self.shared.clone();
        let manifest = tokio::task::spawn_blocking(move || {
            let copy =
                shared.reader.copy().map_err(unavailable)?.ok_or_else(|| {
                    unavailable("the cluster has no ledger yet (not initialised)")
                })?;
            let now_ms = shared.stamper.now_ms();
            Ok::<_, ApiError>(
                shared
                    .backups
                    .prepare(copy, shared.id, linearizable, now_ms),
            )
        })
        .await
        .map_err(unavailable)??;
        tracing::info!(
            principal = %self.principal,
            backup = manifest.backup_id,
            applied_index = manifest.applied_index,
            records = manifest.records,
            bytes = manifest.bytes,
            linearizable,
            "backup prepared"
        );
        Ok(manifest)
    }

    async fn backup_chunk(
        self,
        _: tarpc::context::Context,
        backup_id: u64,
        offset: u64,
    ) -> Result<Vec<u8>, ApiError> {
        roles::authorize_admin(&self.principal, "take a backup").map_err(|e| self.forbidden(e))?;
        self.shared.backups.chunk(backup_id, offset)
    }
}
