//! The webhook delivery loop: while this node leads, it POSTs each merchant's waiting payment
//! events (`Ledger::event_outbox`) to the merchant's webhook, one merchant per task, oldest
//! event first, and acknowledges what was answered with a 2xx through the log
//! (`Command::AckEvents`). An event committed before a leader change is still waiting
//! afterwards and the new leader sends it: at least once, with the event's id in
//! `X-Event-Id` for the merchant to deduplicate.
//!
//! A merchant that fails (an error status, a refused or reset connection, no answer within
//! [`POST_TIMEOUT`]) is tried again after an exponential back-off with jitter
//! (`ledger_wire::webhook::Backoff`); its later events wait behind the failed one, so a
//! merchant sees its events in order. An event still undelivered `event_retry_ms` after it
//! happened is given up on (acknowledged as abandoned, without sending). Deliveries run beside
//! applying, never in it: a merchant that hangs holds one of [`MAX_CONCURRENT_MERCHANTS`]
//! delivery slots for at most [`POST_TIMEOUT`] a round, and nothing else.

use crate::node::Shared;
use crate::planted::PlantedBug;
use crate::raft_types::{Applied, LedgerTypes, Proposal, ProposalBody};
use ledger_core::command::{Command, Envelope};
use ledger_core::intake;
use ledger_core::state::{Event, Webhook};
use ledger_core::types::MerchantId;
use ledger_wire::webhook::{
    Backoff, Delivery, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Most events of one merchant sent in one round (then acknowledged together).
pub const EVENTS_PER_ROUND: usize = 64;
/// Most merchants being delivered to at once.
pub const MAX_CONCURRENT_MERCHANTS: usize = 64;
/// How long one POST may take, connecting included, before it counts as failed.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One POST of one event, signed.
#[derive(Clone)]
pub struct WebhookPost {
    pub url: String,
    pub event_id: u64,
    /// When this attempt was made (the leader's clock): `X-Timestamp`.
    pub sent_ms: u64,
    pub body: Vec<u8>,
    /// HMAC-SHA256 of `body` under the merchant's secret: `X-Signature`.
    pub signature: String,
}

impl std::fmt::Debug for WebhookPost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookPost")
            .field("url", &self.url)
            .field("event_id", &self.event_id)
            .field("sent_ms", &self.sent_ms)
            .finish_non_exhaustive()
    }
}

/// Why a POST did not count as delivered; the event is tried again after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("the merchant answered {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(
        "plain http is not allowed for webhooks on this node (start it with --webhook-plain-http)"
    )]
    PlainHttpRefused,
    #[error("{0}")]
    Transport(String),
}

/// A POST under way: `Ok` when the merchant answered 2xx.
pub type PostFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PostError>> + Send + 'a>>;

/// Where events go: HTTP(S) in production, the simulator's merchants in simulation.
pub trait WebhookTransport: Send + Sync + 'static {
    fn post<'a>(&'a self, post: &'a WebhookPost) -> PostFuture<'a>;

    /// Whether `http://` URLs are posted to: when not, the intake refuses to register one
    /// (`WebhookNeedsHttps`) rather than let its events wait for ever.
    fn posts_plain_http(&self) -> bool {
        true
    }
}

/// The production transport: HTTPS (rustls, the ring provider; the system's trust store
/// plus an optional extra CA file) with [`CONNECT_TIMEOUT`] and [`POST_TIMEOUT`], no
/// redirects followed, no proxy from the environment; plain http only when allowed.
pub struct HttpTransport {
    client: reqwest::Client,
    plain_http: bool,
}

/// Why the HTTP transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("webhook CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("webhook HTTP client: {0}")]
    Client(String),
}

impl HttpTransport {
    /// `extra_ca`: a PEM file of CAs trusted besides the system's (a bank's own CA).
    /// `plain_http`: whether `http://` URLs are posted to (development and tests).
    pub fn new(extra_ca: Option<&Path>, plain_http: bool) -> Result<HttpTransport, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        // A system without a trust store (a minimal container) still works with --webhook-ca.
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
        if let Some(path) = extra_ca {
            let ca_error = |reason: String| TransportError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs = rustls_pemfile_certs(&pem).map_err(ca_error)?;
            for cert in certs {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
        }
        if roots.is_empty() {
            // Payments matter more than notifications: the node starts, and https
            // deliveries fail (and are retried) until the trust store is fixed.
            tracing::warn!(
                "no trusted CA for https webhooks: the system has none and no --webhook-ca \
                 was given; https deliveries will fail"
            );
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!(
                "payment-ledger-webhooks/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| TransportError::Client(e.to_string()))?;
        Ok(HttpTransport { client, plain_http })
    }
}

/// The certificates in a PEM file.
fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

impl WebhookTransport for HttpTransport {
    fn posts_plain_http(&self) -> bool {
        self.plain_http
    }

    fn post<'a>(&'a self, post: &'a WebhookPost) -> PostFuture<'a> {
        Box::pin(async move {
            if !self.plain_http && !post.url.starts_with("https://") {
                return Err(PostError::PlainHttpRefused);
            }
            let answer = self
                .client
                .post(&post.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &post.signature)
                .header(EVENT_ID_HEADER, post.event_id.to_string())
                .header(TIMESTAMP_HEADER, post.sent_ms.to_string())
                .body(post.body.clone())
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        PostError::Timeout(POST_TIMEOUT)
                    } else {
                        // The error's chain names the cause (refused, reset, TLS) and the URL,
                        // which the merchant registered and is not secret.
                        PostError::Transport(error_chain(&e))
                    }
                })?;
            let status = answer.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(PostError::Status(status.as_u16()))
            }
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How the loop runs.
#[derive(Clone, Copy, Debug)]
pub struct WebhookOptions {
    /// How often the leader looks at the outbox.
    pub interval: Duration,
    pub backoff: Backoff,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            interval: Duration::from_millis(200),
            backoff: Backoff::DEFAULT,
        }
    }
}

/// This leader's memory of one merchant: not replicated (a new leader starts afresh, and
/// may send again what the old one sent but had not acknowledged: at least once).
#[derive(Default)]
struct MerchantState {
    busy: bool,
    failures: u32,
    /// Not before (a monotonic clock: a stepped wall clock neither hurries nor stalls it).
    next_attempt: Option<tokio::time::Instant>,
}

/// What a merchant's delivery task reports back.
struct RoundDone {
    merchant: MerchantId,
    /// A POST failed (the events from it on wait for the next round).
    failed: bool,
    /// The merchant accepted at least one event first.
    delivered_any: bool,
}

/// Runs the loop until the task is aborted.
pub async fn run<C: LedgerTypes>(
    shared: Arc<Shared<C>>,
    transport: Arc<dyn WebhookTransport>,
    options: WebhookOptions,
) {
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<RoundDone>();
    let mut merchants: HashMap<MerchantId, MerchantState> = HashMap::new();
    loop {
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => {
                let state = merchants.entry(done.merchant).or_default();
                state.busy = false;
                if done.failed {
                    // A merchant that took some events before failing is making progress:
                    // the back-off starts again from its first step. Only rounds that
                    // delivered nothing push it further out.
                    state.failures = if done.delivered_any {
                        1
                    } else {
                        state.failures.saturating_add(1)
                    };
                    let jitter = jitter(
                        shared.id,
                        done.merchant,
                        state.failures,
                        shared.stamper.now_ms(),
                    );
                    let delay = options.backoff.delay_ms(state.failures, jitter);
                    state.next_attempt =
                        Some(tokio::time::Instant::now() + Duration::from_millis(delay));
                } else {
                    state.failures = 0;
                    state.next_attempt = None;
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let Some(ledger) = shared.reader.ledger() else {
            continue;
        };
        let leading = shared.is_leader();
        if !leading {
            // A later leadership starts afresh; tasks still running finish on their own.
            merchants.retain(|_, s| s.busy);
            continue;
        }
        let (registered, failing) = ledger.webhook_counts();
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        shared.metrics.webhooks_registered.set(gauge(registered));
        shared.metrics.webhooks_failing.set(gauge(failing));
        let now = tokio::time::Instant::now();
        let mut busy = merchants.values().filter(|s| s.busy).count();
        let retry_ms = ledger.config().event_retry_ms;
        for (merchant, hook, events) in ledger.event_outbox(EVENTS_PER_ROUND) {
            if busy >= MAX_CONCURRENT_MERCHANTS {
                break;
            }
            let state = merchants.entry(merchant).or_default();
            if state.busy || state.next_attempt.is_some_and(|t| now < t) || events.is_empty() {
                continue;
            }
            state.busy = true;
            busy += 1;
            let task = MerchantRound {
                shared: shared.clone(),
                transport: transport.clone(),
                merchant,
                hook,
                events,
                retry_ms,
            };
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                let (failed, delivered_any) = task.deliver().await;
                let _ = done_tx.send(RoundDone {
                    merchant,
                    failed,
                    delivered_any,
                });
            });
        }
    }
}

/// One merchant's round: its waiting events, in order, up to the first failure.
struct MerchantRound<C: LedgerTypes> {
    shared: Arc<Shared<C>>,
    transport: Arc<dyn WebhookTransport>,
    merchant: MerchantId,
    hook: Webhook,
    events: Vec<Event>,
    retry_ms: u64,
}

impl<C: LedgerTypes> MerchantRound<C> {
    /// Returns whether a POST failed, and whether any event was delivered.
    async fn deliver(self) -> (bool, bool) {
        let metrics = &self.shared.metrics;
        let secret = intake::webhook_secret(
            &self.shared.intake.keys,
            self.merchant,
            self.hook.secret_version,
        );
        let mut delivered = Vec::new();
        let mut abandoned = Vec::new();
        let mut failed = false;
        for event in &self.events {
            let now_ms = self.shared.stamper.now_ms();
            if now_ms >= event.at_ms.saturating_add(self.retry_ms) {
                abandoned.push(event.id);
                continue;
            }
            let body = Delivery::new(event, now_ms).body();
            let post = WebhookPost {
                url: self.hook.url.clone(),
                event_id: event.id,
                sent_ms: now_ms,
                signature: intake::webhook_signature(&secret, &body),
                body,
            };
            match self.transport.post(&post).await {
                Ok(()) => {
                    metrics.webhook_delivered.inc();
                    delivered.push(event.id);
                }
                Err(e) => {
                    metrics.webhook_failed.inc();
                    tracing::warn!(
                        merchant = self.merchant.0,
                        event = event.id,
                        url = %self.hook.url,
                        error = %e,
                        "webhook not delivered; will retry after a back-off"
                    );
                    if self.shared.intake.planted == Some(PlantedBug::WebhookAcksUndelivered) {
                        delivered.push(event.id);
                    }
                    failed = true;
                    break;
                }
            }
        }
        let delivered_any = !delivered.is_empty();
        if delivered.is_empty() && abandoned.is_empty() {
            return (failed, false);
        }
        metrics.webhook_abandoned.inc_by(abandoned.len() as u64);
        let Some(ledger) = self.shared.reader.ledger() else {
            return (failed, delivered_any);
        };
        let key = self.shared.internal_key(&ledger);
        let command = Command::AckEvents {
            merchant: self.merchant,
            delivered,
            abandoned,
        };
        let proposal = Proposal {
            now_ms: self.shared.stamper.now_ms(),
            body: ProposalBody::Commands(vec![Envelope::new(key, key.request_id, command)]),
        };
        let Some(written) = crate::proposer::write_bounded(&self.shared.raft, proposal).await
        else {
            tracing::warn!(
                merchant = self.merchant.0,
                "webhook acknowledgement not applied in time; the events are sent again"
            );
            return (failed, delivered_any);
        };
        match written {
            Ok(written) => {
                if let Applied::Outcomes(outcomes) = written.data {
                    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
                        tracing::error!(
                            merchant = self.merchant.0,
                            error = %refused,
                            "webhook acknowledgement refused by the ledger"
                        );
                    }
                }
            }
            Err(e) => tracing::debug!(
                merchant = self.merchant.0,
                error = %e,
                "webhook acknowledgement not committed; the events are sent again"
            ),
        }
        (failed, delivered_any)
    }
}

/// A number in [0, 1) that differs between merchants, attempts and nodes, without reading
/// randomness (the simulator replays the node's code exactly).
fn jitter(node: u64, merchant: MerchantId, failures: u32, now_ms: u64) -> f64 {
    let mut x = node
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(merchant.0.rotate_left(17))
        .wrapping_add(u64::from(failures).rotate_left(41))
        .wrapping_add(now_ms);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_in_the_unit_interval_and_spreads_merchants() {
        let values: Vec<f64> = (0..1_000)
            .map(|m| jitter(1, MerchantId(m), 3, 1_700_000_000_000))
            .collect();
        assert!(values.iter().all(|j| (0.0..1.0).contains(j)));
        let low = values.iter().filter(|j| **j < 0.5).count();
        assert!((400..600).contains(&low), "{low} of 1000 below one half");
        assert_eq!(
            jitter(1, MerchantId(7), 3, 5),
            jitter(1, MerchantId(7), 3, 5)
        );
    }

    #[test]
    fn a_post_does_not_show_its_body_or_signature() {
        let post = WebhookPost {
            url: "https://shop.example/hooks".into(),
            event_id: 9,
            sent_ms: 1,
            body: b"{\"secret-ish\":1}".to_vec(),
            signature: "deadbeef".into(),
        };
        let shown = format!("{post:?}");
        assert!(shown.contains("event_id: 9"), "{shown}");
        assert!(
            !shown.contains("deadbeef") && !shown.contains("secret-ish"),
            "{shown}"
        );
    }

    /// What the test merchant received: each request's headers and body.
    type Seen = Arc<std::sync::Mutex<Vec<(hyper::HeaderMap, Vec<u8>)>>>;

    /// A merchant's https endpoint on 127.0.0.1 with a certificate from a CA of its own;
    /// records each request's headers and body and answers `status`.
    struct HttpsMerchant {
        url: String,
        ca_pem: String,
        seen: Seen,
    }

    async fn https_merchant(status: u16) -> HttpsMerchant {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hooks", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let recorded = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let recorded = recorded.clone();
                            async move {
                                let headers = request.headers().clone();
                                let body = request.into_body().collect().await?.to_bytes().to_vec();
                                recorded.lock().unwrap().push((headers, body));
                                Ok::<_, hyper::Error>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::new()))
                                        .expect("a response"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        HttpsMerchant {
            url,
            ca_pem: ca.pem(),
            seen,
        }
    }

    fn post_to(url: &str) -> WebhookPost {
        WebhookPost {
            url: url.into(),
            event_id: 42,
            sent_ms: 1_700_000_000_000,
            body: br#"{"id":42}"#.to_vec(),
            signature: "ab".repeat(32),
        }
    }

    #[tokio::test]
    async fn an_https_post_trusts_the_extra_ca_and_carries_the_signed_headers() {
        let merchant = https_merchant(204).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("merchant-ca.pem");
        std::fs::write(&ca_file, &merchant.ca_pem).unwrap();
        let transport = HttpTransport::new(Some(&ca_file), false).unwrap();
        transport
            .post(&post_to(&merchant.url))
            .await
            .expect("delivered");
        let seen = merchant.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let (headers, body) = &seen[0];
        assert_eq!(body, br#"{"id":42}"#);
        assert_eq!(headers[EVENT_ID_HEADER], "42");
        assert_eq!(headers[TIMESTAMP_HEADER], "1700000000000");
        assert_eq!(headers[SIGNATURE_HEADER], "ab".repeat(32).as_str());
        assert_eq!(headers["content-type"], "application/json");
    }

    #[tokio::test]
    async fn a_merchant_the_node_does_not_trust_or_that_fails_is_not_delivered() {
        let merchant = https_merchant(204).await;
        // Only the system's CAs: the merchant's own CA is not among them.
        let untrusting = HttpTransport::new(None, false).unwrap();
        let refused = untrusting.post(&post_to(&merchant.url)).await;
        assert!(
            matches!(refused, Err(PostError::Transport(_))),
            "{refused:?}"
        );
        assert!(merchant.seen.lock().unwrap().is_empty());
        // Plain http is refused unless allowed, before any connection.
        let plain = untrusting.post(&post_to("http://127.0.0.1:9/hooks")).await;
        assert!(
            matches!(plain, Err(PostError::PlainHttpRefused)),
            "{plain:?}"
        );
        // An error status is a failure.
        let failing = https_merchant(500).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &failing.ca_pem).unwrap();
        let transport = HttpTransport::new(Some(&ca_file), false).unwrap();
        let answer = transport.post(&post_to(&failing.url)).await;
        assert!(matches!(answer, Err(PostError::Status(500))), "{answer:?}");
        // A CA file that holds no certificate is a configuration error.
        std::fs::write(&ca_file, "not a certificate").unwrap();
        assert!(matches!(
            HttpTransport::new(Some(&ca_file), false),
            Err(TransportError::CaFile { .. })
        ));
    }
}
