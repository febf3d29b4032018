//! The HTTPS listener: one task per connection, the TLS handshake under a deadline, the
//! client certificate's principal (if one was sent) put on each request, HTTP/1.1 served by
//! hyper, and the connection cut when a CRL reload revokes its certificate.

use crate::extract::{CertPrincipal, MAX_BODY_BYTES};
use crate::metrics::GatewayMetrics;
use crate::routes::{self, ApiDoc};
use crate::App;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use ledger_wire::tls::{peer_identity, NodeTls};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

/// Most connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 1_024;
/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request's headers to arrive.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenAPI document as published. utoipa 5 writes a link's fields in snake case
/// (`operation_id`); OpenAPI says `operationId`, and tools that follow links (schemathesis'
/// stateful phase) need it.
pub fn published(api: &utoipa::openapi::OpenApi) -> serde_json::Value {
    fn fix(value: &mut serde_json::Value, in_links: bool) {
        match value {
            serde_json::Value::Object(map) => {
                if in_links {
                    for link in map.values_mut() {
                        if let serde_json::Value::Object(link) = link {
                            for (from, to) in [
                                ("operation_id", "operationId"),
                                ("operation_ref", "operationRef"),
                                ("request_body", "requestBody"),
                            ] {
                                if let Some(v) = link.remove(from) {
                                    link.insert(to.into(), v);
                                }
                            }
                        }
                    }
                    return;
                }
                for (key, v) in map.iter_mut() {
                    fix(v, key == "links");
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| fix(v, false)),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(api).expect("the document encodes");
    fix(&mut value, false);
    value
}

/// The OpenAPI document and the router that serves it: `/v1/...`, `/openapi.json`, `/docs`
/// (Swagger UI, served from the binary) and `/health`.
pub fn router(app: App, metrics: Arc<GatewayMetrics>) -> (Router, serde_json::Value) {
    let (v1, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1", routes::router())
        .split_for_parts();
    let api = published(&api);
    let router = Router::new()
        .merge(v1)
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", api.clone()))
        .route("/health", get(|| async { (StatusCode::OK, "ok\n") }))
        .layer(axum::middleware::from_fn(crate::extract::read_body_first))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .with_state(app);
    (router, api)
}

/// Serves `router` on `listener` over HTTPS with `tls` until the task is aborted.
pub async fn serve(listener: TcpListener, router: Router, tls: Arc<NodeTls>) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (router, tls) = (router.clone(), tls.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let peer = match stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
            {
                None => None,
                Some(leaf) => match peer_identity(leaf) {
                    Ok(identity) => Some(identity),
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "certificate names no principal");
                        return;
                    }
                },
            };
            let revoked = peer.as_ref().map(|p| tls.until_revoked(p.serial.clone()));
            let principal = CertPrincipal(peer.map(|p| p.principal));
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(principal.clone());
                    router.clone().oneshot(request.map(axum::body::Body::new))
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            match revoked {
                None => {
                    let _ = connection.await;
                }
                Some(revoked) => {
                    tokio::select! {
                        _ = connection => {}
                        () = revoked => tracing::info!(%remote, "certificate revoked: connection closed"),
                    }
                }
            }
        });
    }
}

/// What a gateway needs to start.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where it serves HTTPS.
    pub listen: std::net::SocketAddr,
    /// The nodes' client ports.
    pub endpoints: Vec<String>,
    /// The cluster CA, the gateway's certificate (role gateway: its HTTPS server certificate
    /// and its identity to the nodes) and key, and the CA's revocation list.
    pub tls: ledger_wire::tls::TlsFiles,
    /// A certificate for HTTPS callers from a CA their HTTP stacks trust, presented instead
    /// of the gateway certificate in `tls` (which the nodes still see); `None` serves that one.
    pub https: Option<ledger_wire::tls::ServingCert>,
    /// The API key file (hashes only); `None` accepts client certificates only.
    pub api_keys: Option<std::path::PathBuf>,
    /// Longest a request waits for the cluster before a 503 (`crate::REQUEST_DEADLINE`).
    pub request_deadline: std::time::Duration,
    /// Where to serve plain-HTTP `/metrics` and `/health` for the operator (keep it off the
    /// public network); `None` serves none.
    pub admin: Option<std::net::SocketAddr>,
}

/// A gateway serving.
pub struct Running {
    /// Where it listens (the port resolved when 0 was asked for).
    pub addr: std::net::SocketAddr,
    config: GatewayConfig,
    tls: Arc<NodeTls>,
    app: App,
    task: tokio::task::JoinHandle<()>,
    admin: Option<tokio::task::JoinHandle<()>>,
}

/// Loads the TLS files and the keys, binds, and serves in a task.
pub async fn start(config: GatewayConfig) -> Result<Running, String> {
    let tls = NodeTls::load_gateway(config.tls.clone(), config.https.clone())
        .map_err(|e| format!("gateway TLS: {e}"))?;
    let identity =
        ledger_wire::tls::TlsIdentity::load(&config.tls.ca, &config.tls.cert, &config.tls.key)
            .map_err(|e| format!("gateway identity: {e}"))?;
    let keys = match &config.api_keys {
        Some(path) => crate::keys::ApiKeys::load_existing(path).map_err(|e| e.to_string())?,
        None => crate::keys::ApiKeys::default(),
    };
    let mut client = ledger_client::ClientConfig::new(config.endpoints.clone());
    client.tls = Some(identity);
    let mut app = App::new(ledger_client::Client::new(client), keys);
    app.deadline = config.request_deadline;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = Arc::new(tls);
    let metrics = Arc::new(GatewayMetrics::default());
    let (router, _) = router(app.clone(), metrics.clone());
    let task = tokio::spawn(serve(listener, router, tls.clone()));
    let admin = match config.admin {
        None => None,
        Some(at) => {
            let listener = TcpListener::bind(at)
                .await
                .map_err(|e| format!("binding the admin port {at}: {e}"))?;
            let admin = Router::new()
                .route(
                    "/metrics",
                    get(move || {
                        let metrics = metrics.clone();
                        async move {
                            (
                                [(
                                    header::CONTENT_TYPE,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )],
                                metrics.render(),
                            )
                        }
                    }),
                )
                .route("/health", get(|| async { (StatusCode::OK, "ok\n") }));
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, admin).await;
            }))
        }
    };
    Ok(Running {
        addr,
        config,
        tls,
        app,
        task,
        admin,
    })
}

impl Running {
    /// Re-reads the TLS files (the CRL after a revocation) and the API key file (a removed
    /// line is a revoked key), each on its own: a file that fails to load leaves what was in
    /// force from it, and does not hold up the other.
    pub fn reload(&self) -> Result<String, String> {
        let tls = self
            .tls
            .reload()
            .map(|revoked| format!("{revoked} revoked certificates"))
            .map_err(|e| format!("TLS files: {e}"));
        let keys = match &self.config.api_keys {
            Some(path) => crate::keys::ApiKeys::load_existing(path)
                .map(|keys| {
                    let count = keys.len();
                    *self.app.keys.write().expect("keys lock") = keys;
                    format!("{count} API keys")
                })
                .map_err(|e| format!("API keys: {e}")),
            None => Ok("no API key file".to_owned()),
        };
        match (tls, keys) {
            (Ok(tls), Ok(keys)) => Ok(format!("{tls}, {keys}")),
            (Err(e), Ok(done)) | (Ok(done), Err(e)) => Err(format!("{e} (reloaded: {done})")),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        }
    }

    /// Where the admin port listens, if it was asked for.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.config.admin
    }

    /// Stops serving (open connections end with the runtime).
    pub fn shutdown(self) {
        self.task.abort();
        if let Some(admin) = self.admin {
            admin.abort();
        }
    }
}
