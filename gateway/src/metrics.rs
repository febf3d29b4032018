//! The gateway's own series, in OpenMetrics text on its admin port (`/metrics`): requests by
//! route (the path template, never the ids in it) and status, and their latency by route.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Instant;

/// Upper bounds of the latency buckets, in seconds (1 ms to 10 s).
const BUCKETS_S: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS_S)
}

/// The gateway's counters and histograms, and the registry that exposes them.
pub struct GatewayMetrics {
    requests: Family<RouteStatus, Counter>,
    latency: Family<Route, Histogram, fn() -> Histogram>,
    registry: Registry,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let requests = Family::<RouteStatus, Counter>::default();
        let latency =
            Family::<Route, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let mut registry = Registry::default();
        registry.register(
            "ledger_gateway_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "ledger_gateway_request_duration",
            "Time to answer an HTTP request, by route",
            Unit::Seconds,
            latency.clone(),
        );
        GatewayMetrics {
            requests,
            latency,
            registry,
        }
    }
}

impl GatewayMetrics {
    /// The OpenMetrics text of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware: counts and times each request under its route template (`/v1/payments/{payment}`),
/// or `unmatched` (so a scan of random paths cannot grow the series without bound).
pub async fn track(
    State(metrics): State<Arc<GatewayMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m,
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    metrics
        .requests
        .get_or_create(&RouteStatus {
            method: method.clone(),
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .latency
        .get_or_create(&Route { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}
