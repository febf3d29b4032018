//! What an operator watches on the admin port, through `prometheus-client` in OpenMetrics
//! text: the node's request, SMS and webhook counters and its request latencies (kept here,
//! shared with the registry), and the Raft and storage gauges read at each scrape
//! (`NodeCollector`).

use crate::node::Shared;
use crate::raft_types::{NodeAddr, NodeId};
use openraft::RaftMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (250 µs to 5 s).
const BUCKETS_S: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// The series of `ledger_request_duration_seconds`, by call.
type LatencyFamily = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS_S)
}

/// A request latency histogram: one series of `ledger_request_duration_seconds` (a handle
/// on the family's own series).
#[derive(Clone, Debug)]
pub struct Latency(Histogram);

impl Latency {
    pub fn observe(&self, latency: Duration) {
        self.0.observe(latency.as_secs_f64());
    }
}

/// The node's own counters. Each is shared with the registry the admin port builds, so
/// counting needs no lock and no scrape sees a half-made update.
pub struct Metrics {
    pub submit_calls: Counter,
    pub commands_ok: Counter,
    pub commands_refused: Counter,
    pub not_leader: Counter,
    pub unavailable: Counter,
    /// Requests refused by the role table (`roles`), whatever their principal.
    pub forbidden: Counter,
    pub queries: Counter,
    pub sms_sent: Counter,
    pub sms_failed: Counter,
    /// Client calls refused because the database folder's free space is below its reserve.
    pub disk_full: Counter,
    /// Steps of the wall clock against the node's monotonic clock (`stamp::LedgerClock`).
    pub clock_steps: Counter,
    /// Webhook events a merchant answered with a 2xx.
    pub webhook_delivered: Counter,
    /// Webhook POSTs that failed (error status, connection, timeout; retried).
    pub webhook_failed: Counter,
    /// Webhook events given up on after `event_retry_ms`.
    pub webhook_abandoned: Counter,
    /// Merchants with a webhook, and those marked failing (leader only, each round).
    pub webhooks_registered: Gauge,
    pub webhooks_failing: Gauge,
    /// TLS connections refused on either port (failed, timed out, or role not served):
    /// counted by `ledger-wire`, which knows nothing of Prometheus.
    pub tls_refused: Arc<AtomicU64>,
    pub submit_latency: Latency,
    pub query_latency: Latency,
    latency: LatencyFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        let series = |call| Latency(latency.get_or_create_owned(&[("call", call)]));
        Metrics {
            submit_calls: Counter::default(),
            commands_ok: Counter::default(),
            commands_refused: Counter::default(),
            not_leader: Counter::default(),
            unavailable: Counter::default(),
            forbidden: Counter::default(),
            queries: Counter::default(),
            sms_sent: Counter::default(),
            sms_failed: Counter::default(),
            clock_steps: Counter::default(),
            disk_full: Counter::default(),
            webhook_delivered: Counter::default(),
            webhook_failed: Counter::default(),
            webhook_abandoned: Counter::default(),
            webhooks_registered: Gauge::default(),
            webhooks_failing: Gauge::default(),
            tls_refused: Arc::default(),
            submit_latency: series("submit"),
            query_latency: series("query"),
            latency,
        }
    }
}

impl Metrics {
    /// Registers every series of this node in `registry`: the counters above, and a
    /// collector of the Raft and storage gauges (which holds the node weakly, so a registry
    /// kept past the node reads nothing rather than keeping it alive).
    pub fn register(&self, registry: &mut Registry, shared: Weak<Shared>) {
        let counters: [(&str, &str, &Counter); 14] = [
            (
                "ledger_submit_calls",
                "Client submit calls",
                &self.submit_calls,
            ),
            (
                "ledger_commands_ok",
                "Commands applied successfully",
                &self.commands_ok,
            ),
            (
                "ledger_commands_refused",
                "Commands refused by the ledger",
                &self.commands_refused,
            ),
            (
                "ledger_not_leader",
                "Calls answered with NotLeader",
                &self.not_leader,
            ),
            (
                "ledger_unavailable",
                "Calls answered with Unavailable",
                &self.unavailable,
            ),
            (
                "ledger_forbidden",
                "Requests refused because the caller's role does not allow them",
                &self.forbidden,
            ),
            ("ledger_queries", "Client queries", &self.queries),
            (
                "ledger_sms_sent",
                "SMS messages handed to the gateway",
                &self.sms_sent,
            ),
            (
                "ledger_sms_failed",
                "SMS deliveries that failed (retried)",
                &self.sms_failed,
            ),
            (
                "ledger_disk_full",
                "Client calls refused because the database folder's free space was below its reserve",
                &self.disk_full,
            ),
            (
                "ledger_clock_steps",
                "Steps of the wall clock (either way, over 1 s) against the node's monotonic clock",
                &self.clock_steps,
            ),
            (
                "ledger_webhook_delivered",
                "Webhook events the merchant answered with a 2xx",
                &self.webhook_delivered,
            ),
            (
                "ledger_webhook_failed",
                "Webhook POSTs that failed (retried after a back-off)",
                &self.webhook_failed,
            ),
            (
                "ledger_webhook_abandoned",
                "Webhook events given up on after the retry time",
                &self.webhook_abandoned,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "ledger_webhooks_registered",
            "Merchants with a webhook (as the leader last saw)",
            self.webhooks_registered.clone(),
        );
        registry.register(
            "ledger_webhooks_failing",
            "Webhooks marked failing: too many undelivered events, pushing paused (as the leader last saw)",
            self.webhooks_failing.clone(),
        );
        registry.register_with_unit(
            "ledger_request_duration",
            "Latency of client calls",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register_collector(Box::new(NodeCollector {
            shared,
            tls_refused: self.tls_refused.clone(),
        }));
    }
}

/// The series read at each scrape: Raft's view, the disk, refused TLS connections.
#[derive(Debug)]
struct NodeCollector {
    shared: Weak<Shared>,
    tls_refused: Arc<AtomicU64>,
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl NodeCollector {
    fn raft(
        encoder: &mut DescriptorEncoder,
        raft: &RaftMetrics<NodeId, NodeAddr>,
    ) -> std::fmt::Result {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            encoder,
            "ledger_raft_term",
            "Current Raft term.",
            int(raft.current_term),
        )?;
        gauge(
            encoder,
            "ledger_raft_leader_id",
            "Current leader's node id, -1 if unknown.",
            raft.current_leader.map_or(-1, int),
        )?;
        gauge(
            encoder,
            "ledger_raft_is_leader",
            "1 on the leader.",
            i64::from(raft.current_leader == Some(raft.id)),
        )?;
        gauge(
            encoder,
            "ledger_raft_last_log_index",
            "Last log index.",
            int(raft.last_log_index.unwrap_or(0)),
        )?;
        gauge(
            encoder,
            "ledger_raft_applied_index",
            "Last applied log index.",
            int(raft.last_applied.map_or(0, |l| l.index)),
        )?;
        let lag = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "ledger_raft_replication_lag",
            "Entries a follower is behind the leader's last log (leader only).",
            None,
            lag.metric_type(),
        )?;
        if let Some(replication) = &raft.replication {
            let last = raft.last_log_index.unwrap_or(0);
            for (peer, matched) in replication.iter().filter(|(peer, _)| **peer != raft.id) {
                let behind = last.saturating_sub(matched.map_or(0, |m| m.index));
                let peer = peer.to_string();
                ConstGauge::new(int(behind))
                    .encode(family.encode_family(&[("peer", peer.as_str())])?)?;
            }
        }
        Ok(())
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let refused = ConstCounter::new(self.tls_refused.load(Ordering::Relaxed));
        refused.encode(encoder.encode_descriptor(
            "ledger_tls_refused",
            "TLS connections refused (handshake failed or timed out, certificate refused).",
            None,
            refused.metric_type(),
        )?)?;
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let raft = shared.raft.metrics().borrow().clone();
        Self::raft(&mut encoder, &raft)?;
        gauge(
            &mut encoder,
            "ledger_disk_bytes",
            "Size of the node's sled database on disk.",
            i64::try_from(shared.disk_bytes()).unwrap_or(i64::MAX),
        )?;
        let free = shared.disk.as_ref().and_then(|d| d.free_bytes());
        if let Some(free) = free {
            gauge(
                &mut encoder,
                "ledger_disk_free_bytes",
                "Free space on the database folder's filesystem (writes are refused below the reserve).",
                i64::try_from(free).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }
}
