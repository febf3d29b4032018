//! The admin HTTP port, on axum: `/health` (the process runs and Raft is up), `/ready` (a
//! leader is known and this node has applied the ledger), `/metrics` (OpenMetrics text from
//! `prometheus-client`). GET only (other methods 405), unknown paths 404, one request per
//! connection, request heads within a deadline.

use crate::node::Shared;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most admin connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// The OpenMetrics text content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Admin {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
}

/// The admin port's routes for this node.
fn router(shared: Arc<Shared>) -> Router {
    let mut registry = Registry::default();
    shared
        .metrics
        .register(&mut registry, Arc::downgrade(&shared));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found; try /health, /ready or /metrics\n",
            )
        })
        .with_state(Admin {
            shared,
            registry: Arc::new(registry),
        })
}

async fn health(State(admin): State<Admin>) -> Response {
    match &admin.shared.raft.metrics().borrow().running_state {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("raft stopped: {e}\n"),
        )
            .into_response(),
    }
}

async fn ready(State(admin): State<Admin>) -> Response {
    let ready = {
        let m = admin.shared.raft.metrics().borrow().clone();
        m.running_state.is_ok() && m.current_leader.is_some()
    } && admin.shared.reader.ledger().is_some();
    if ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no leader or no ledger yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(admin): State<Admin>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &admin.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding: {e}\n"),
        )
            .into_response(),
    }
}

/// Serves the admin port until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    let router = router(shared);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok(permit) = connections.clone().acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let router = router.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        router.clone().oneshot(request.map(axum::body::Body::new))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(READ_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}
