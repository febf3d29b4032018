//! `ledgerctl status`: each node's role, term, applied index and lag behind the longest log.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{or_dash, View};
use ledger_client::NodeStatus;
use serde::Serialize;

/// One endpoint as it answered (or did not).
#[derive(Serialize)]
pub struct NodeRow {
    endpoint: String,
    healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    term: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lag: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The cluster, a row per configured endpoint (JSON: the array of rows).
#[derive(Serialize)]
#[serde(transparent)]
pub struct ClusterView {
    rows: Vec<NodeRow>,
}

impl ClusterView {
    fn new(statuses: Vec<(String, Result<NodeStatus, String>)>) -> ClusterView {
        let longest_log = statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok()?.last_log_index)
            .max()
            .unwrap_or(0);
        let row = |(endpoint, status): (String, Result<NodeStatus, String>)| match status {
            Ok(s) => NodeRow {
                endpoint,
                healthy: true,
                id: Some(s.id),
                role: Some(s.role),
                term: Some(s.term),
                leader: s.leader,
                applied: s.applied_index,
                lag: Some(longest_log.saturating_sub(s.applied_index.unwrap_or(0))),
                error: None,
            },
            Err(error) => NodeRow {
                endpoint,
                healthy: false,
                id: None,
                role: None,
                term: None,
                leader: None,
                applied: None,
                lag: None,
                error: Some(error),
            },
        };
        ClusterView {
            rows: statuses.into_iter().map(row).collect(),
        }
    }

    fn leader(&self) -> Option<u64> {
        self.rows.iter().find_map(|r| r.leader)
    }
}

impl View for ClusterView {
    fn text(&self) -> String {
        let mut table = format!(
            "leader: {}\n{:<22} {:>4} {:<10} {:>6} {:>10} {:>6}  health\n",
            self.leader().map_or("none".into(), |l| format!("node {l}")),
            "endpoint",
            "id",
            "role",
            "term",
            "applied",
            "lag"
        );
        for r in &self.rows {
            table += &match &r.error {
                None => format!(
                    "{:<22} {:>4} {:<10} {:>6} {:>10} {:>6}  ok\n",
                    r.endpoint,
                    or_dash(r.id),
                    or_dash(r.role.as_ref()),
                    or_dash(r.term),
                    or_dash(r.applied),
                    or_dash(r.lag)
                ),
                Some(error) => format!("{:<22} unreachable: {error}\n", r.endpoint),
            };
        }
        table.trim_end().to_owned()
    }
}

pub async fn run(session: &Session) -> Result<(), Failure> {
    let statuses = session.client().cluster_status().await;
    let endpoints = statuses.iter().map(|(e, _)| e.clone()).collect();
    let none_answered = statuses.iter().all(|(_, s)| s.is_err());
    let view = ClusterView::new(statuses);
    // Under --json one document only: the error, which names the endpoints.
    if !(none_answered && session.json()) {
        session.show(&view);
    }
    if none_answered {
        return Err(Failure::NoNodeReachable { endpoints });
    }
    Ok(())
}
