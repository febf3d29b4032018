//! Request counters and latency histograms, rendered with the Raft metrics in Prometheus'
//! text format on the admin port.

use crate::raft_types::{NodeAddr, NodeId};
use openraft::RaftMetrics;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, latency: Duration) {
        let us = latency.as_micros() as u64;
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{}}} {}",
            labels.trim_end_matches(','),
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "{name}_count{{{}}} {count}",
            labels.trim_end_matches(',')
        );
    }
}

/// The node's own counters.
#[derive(Default)]
pub struct Metrics {
    pub submit_calls: AtomicU64,
    pub commands_ok: AtomicU64,
    pub commands_refused: AtomicU64,
    pub not_leader: AtomicU64,
    pub unavailable: AtomicU64,
    /// Requests refused by the role table (`roles`), whatever their principal.
    pub forbidden: AtomicU64,
    pub queries: AtomicU64,
    pub sms_sent: AtomicU64,
    pub sms_failed: AtomicU64,
    /// Webhook events a merchant answered with a 2xx.
    pub webhook_delivered: AtomicU64,
    /// Webhook POSTs that failed (error status, connection, timeout; retried).
    pub webhook_failed: AtomicU64,
    /// Webhook events given up on after `event_retry_ms`.
    pub webhook_abandoned: AtomicU64,
    /// Merchants with a webhook, and those marked failing (leader only, each round).
    pub webhooks_registered: AtomicU64,
    pub webhooks_failing: AtomicU64,
    /// TLS connections refused on either port (failed, timed out, or role not served).
    pub tls_refused: Arc<AtomicU64>,
    pub submit_latency: Histogram,
    pub query_latency: Histogram,
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

impl Metrics {
    /// Prometheus text exposition of the node's counters and its Raft state.
    pub fn render(&self, raft: &RaftMetrics<NodeId, NodeAddr>, disk_bytes: u64) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "ledger_raft_term",
            "Current Raft term.",
            raft.current_term,
        );
        gauge(
            &mut out,
            "ledger_raft_leader_id",
            "Current leader's node id, -1 if unknown.",
            raft.current_leader.map_or(-1, |l| l as i64),
        );
        gauge(
            &mut out,
            "ledger_raft_is_leader",
            "1 on the leader.",
            u8::from(raft.current_leader == Some(raft.id)),
        );
        gauge(
            &mut out,
            "ledger_raft_last_log_index",
            "Last log index.",
            raft.last_log_index.unwrap_or(0),
        );
        gauge(
            &mut out,
            "ledger_raft_applied_index",
            "Last applied log index.",
            raft.last_applied.map_or(0, |l| l.index),
        );
        let _ = writeln!(out, "# HELP ledger_raft_replication_lag Entries a follower is behind the leader's last log (leader only).\n# TYPE ledger_raft_replication_lag gauge");
        if let Some(replication) = &raft.replication {
            let last = raft.last_log_index.unwrap_or(0);
            for (peer, matched) in replication.iter().filter(|(peer, _)| **peer != raft.id) {
                let lag = last.saturating_sub(matched.map_or(0, |m| m.index));
                let _ = writeln!(out, "ledger_raft_replication_lag{{peer=\"{peer}\"}} {lag}");
            }
        }
        gauge(
            &mut out,
            "ledger_disk_bytes",
            "Size of the node's sled database on disk.",
            disk_bytes,
        );
        gauge(
            &mut out,
            "ledger_webhooks_registered",
            "Merchants with a webhook (as the leader last saw).",
            load(&self.webhooks_registered),
        );
        gauge(
            &mut out,
            "ledger_webhooks_failing",
            "Webhooks marked failing: too many undelivered events, pushing paused (as the leader last saw).",
            load(&self.webhooks_failing),
        );
        let counters: [(&str, &str, &AtomicU64); 13] = [
            (
                "ledger_submit_calls_total",
                "Client submit calls.",
                &self.submit_calls,
            ),
            (
                "ledger_commands_ok_total",
                "Commands applied successfully.",
                &self.commands_ok,
            ),
            (
                "ledger_commands_refused_total",
                "Commands refused by the ledger.",
                &self.commands_refused,
            ),
            (
                "ledger_not_leader_total",
                "Calls answered with NotLeader.",
                &self.not_leader,
            ),
            (
                "ledger_unavailable_total",
                "Calls answered with Unavailable.",
                &self.unavailable,
            ),
            (
                "ledger_forbidden_total",
                "Requests refused because the caller's role does not allow them.",
                &self.forbidden,
            ),
            ("ledger_queries_total", "Client queries.", &self.queries),
            (
                "ledger_sms_sent_total",
                "SMS messages handed to the gateway.",
                &self.sms_sent,
            ),
            (
                "ledger_sms_failed_total",
                "SMS deliveries that failed (retried).",
                &self.sms_failed,
            ),
            (
                "ledger_webhook_delivered_total",
                "Webhook events the merchant answered with a 2xx.",
                &self.webhook_delivered,
            ),
            (
                "ledger_webhook_failed_total",
                "Webhook POSTs that failed (retried after a back-off).",
                &self.webhook_failed,
            ),
            (
                "ledger_webhook_abandoned_total",
                "Webhook events given up on after the retry time.",
                &self.webhook_abandoned,
            ),
            (
                "ledger_tls_refused_total",
                "TLS connections refused (handshake failed or timed out, certificate refused).",
                &self.tls_refused,
            ),
        ];
        for (name, help, value) in counters {
            counter(&mut out, name, help, load(value));
        }
        let _ = writeln!(out, "# HELP ledger_request_duration_seconds Latency of client calls.\n# TYPE ledger_request_duration_seconds histogram");
        self.submit_latency.render(
            &mut out,
            "ledger_request_duration_seconds",
            "call=\"submit\",",
        );
        self.query_latency.render(
            &mut out,
            "ledger_request_duration_seconds",
            "call=\"query\",",
        );
        out
    }
}
