//! The client protocol: the tarpc service every node serves on its client port. This file is
//! the one place that defines it; the node implements it, the client library calls it.
//! Frames are length-delimited bincode, at most `api::MAX_FRAME_BYTES`.

use crate::api::{
    ApiError, BackupManifest, ClientRequest, ClientResult, Consistency, NodeInfo, NodeStatus,
    Query, QueryReply,
};
use crate::principal::Principal;
use ledger_core::config::LedgerConfig;

/// The client service of a payment node.
#[tarpc::service]
pub trait LedgerRpc {
    /// Applies a batch of requests in order, in one Raft entry. Only the leader accepts; a
    /// follower answers `NotLeader` with the leader's address.
    async fn submit(requests: Vec<ClientRequest>) -> Result<Vec<ClientResult>, ApiError>;
    /// Reads the ledger; linearizable unless `Stale` is asked for.
    async fn query(query: Query, consistency: Consistency) -> Result<QueryReply, ApiError>;
    /// This node's view of the cluster.
    async fn status() -> NodeStatus;
    /// Initialises a new cluster with these members and the ledger configuration (genesis).
    /// Answers Ok when the cluster is already initialised with a ledger.
    async fn init_cluster(members: Vec<NodeInfo>, config: LedgerConfig) -> Result<(), ApiError>;
    /// Adds a node: as a learner until it has caught up, then as a voter.
    async fn add_node(node: NodeInfo) -> Result<(), ApiError>;
    /// Removes a voter from the cluster.
    async fn remove_node(id: u64) -> Result<(), ApiError>;
    /// `submit` for `principal`, called by a gateway that authenticated it (the HTTP/JSON
    /// gateway: an API key or a client certificate). Only a gateway may call it, and only
    /// for a merchant, channel or auditor; the role table and the idempotency namespace are
    /// then `principal`'s, as if it had called `submit` itself.
    async fn submit_as(
        principal: Principal,
        requests: Vec<ClientRequest>,
    ) -> Result<Vec<ClientResult>, ApiError>;
    /// `query` for `principal`, on the same terms as `submit_as`.
    async fn query_as(
        principal: Principal,
        query: Query,
        consistency: Consistency,
    ) -> Result<QueryReply, ApiError>;
    /// Takes a consistent copy of this node's ledger state for a backup and holds it for
    /// `backup_chunk` (the operator only). On the leader the copy follows a read barrier, so it
    /// holds every write acknowledged before the call; on a follower it is the state the
    /// node has applied. A node holds one prepared backup at a time.
    async fn backup_begin() -> Result<BackupManifest, ApiError>;
    /// Up to `api::BACKUP_CHUNK_BYTES` of the prepared backup `backup_id`, from `offset`.
    async fn backup_chunk(backup_id: u64, offset: u64) -> Result<Vec<u8>, ApiError>;
}
