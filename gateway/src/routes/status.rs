//! The cluster as the gateway sees it.

use crate::extract::Caller;
use crate::problem::Problems;
use crate::App;
use axum::extract::State;
use axum::Json;
use ledger_wire::principal::Role;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_status))
}

/// One node's view, or that it did not answer.
#[derive(Serialize, ToSchema)]
pub struct NodeView {
    /// The node's client address: shown to auditors only (the bank's network is none of a
    /// merchant's business).
    pub endpoint: Option<String>,
    /// Whether the node answered.
    pub reachable: bool,
    pub id: Option<u64>,
    /// `Leader`, `Follower`, `Candidate`, `Learner`, or absent when unreachable.
    pub role: Option<String>,
    pub term: Option<u64>,
    pub leader: Option<u64>,
    pub applied_index: Option<u64>,
    /// Why it did not answer: auditors only.
    pub error: Option<String>,
}

/// Every configured node.
#[derive(Serialize, ToSchema)]
pub struct ClusterStatus {
    /// The leader's id, when a reachable node names one.
    pub leader: Option<u64>,
    pub nodes: Vec<NodeView>,
}

/// The cluster's nodes and leader (any authenticated caller; node addresses and errors
/// for auditors only).
#[utoipa::path(get, path = "/status", tag = "reader", operation_id = "getStatus",
    responses((status = 200, body = ClusterStatus), Problems))]
async fn get_status(caller: Caller, State(app): State<App>) -> Json<ClusterStatus> {
    let auditor = caller.0.role() == Role::Auditor;
    let nodes: Vec<NodeView> = app
        .client
        .cluster_status()
        .await
        .into_iter()
        .map(|(endpoint, status)| match status {
            Ok(s) => NodeView {
                endpoint: auditor.then_some(endpoint),
                reachable: true,
                id: Some(s.id),
                role: Some(s.role),
                term: Some(s.term),
                leader: s.leader,
                applied_index: s.applied_index,
                error: None,
            },
            Err(e) => NodeView {
                endpoint: auditor.then_some(endpoint),
                reachable: false,
                id: None,
                role: None,
                term: None,
                leader: None,
                applied_index: None,
                error: auditor.then_some(e),
            },
        })
        .collect();
    Json(ClusterStatus {
        leader: nodes.iter().find_map(|n| n.leader),
        nodes,
    })
}
