//! The Raft type configuration: what a log entry carries and what applying it returns.

use ledger_core::command::Envelope;
use ledger_core::config::LedgerConfig;
use ledger_core::Outcome;
use openraft::RaftTypeConfig;
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A node's id in the cluster.
pub type NodeId = u64;

/// Where a node listens: Raft traffic and client traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub raft: String,
    pub client: String,
}

/// What the leader proposes: a batch of client commands stamped with its clock, or the
/// genesis of the ledger (its configuration), proposed once when the cluster is initialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The leader's wall clock when it proposed, ms since the Unix epoch.
    pub now_ms: u64,
    pub body: ProposalBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ProposalBody {
    Genesis(LedgerConfig),
    Commands(Vec<Envelope>),
}

/// What applying an entry returned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    /// Blank and membership entries.
    #[default]
    Nothing,
    /// Genesis applied; `fresh` is false when the ledger already existed.
    Genesis { fresh: bool },
    /// One outcome per command, in order.
    Outcomes(Vec<Outcome>),
    /// Commands arrived before genesis: none applied.
    NotInitialised,
}

openraft::declare_raft_types!(
    /// The production configuration: tokio runtime.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Any Raft type configuration for the ledger: the storage, the state machine and the node's
/// own code (service, intake, proposer, SMS outbox) are generic over it, so the simulator
/// runs all of them under a configuration of its own.
pub trait LedgerTypes:
    RaftTypeConfig<
    D = Proposal,
    R = Applied,
    NodeId = NodeId,
    Node = NodeAddr,
    Entry = openraft::Entry<Self>,
    SnapshotData = Cursor<Vec<u8>>,
    Responder = openraft::impls::OneshotResponder<Self>,
>
{
}

impl<C> LedgerTypes for C where
    C: RaftTypeConfig<
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = openraft::Entry<C>,
        SnapshotData = Cursor<Vec<u8>>,
        Responder = openraft::impls::OneshotResponder<C>,
    >
{
}

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeAddr>;
pub type StorageError = openraft::StorageError<NodeId>;
