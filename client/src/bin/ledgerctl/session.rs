//! One command's connection to the cluster: the client, the deadline, the idempotency key.
//!
//! The client library retries a call a few times; a leader election takes longer (3-5 s,
//! sometimes more), so the session retries rounds of such calls until `--deadline-ms`,
//! a write under one key throughout. A write given up on is `OutcomeUnknown` with its key,
//! never "failed": it may have been applied, and only a retry under the same key can tell
//! without applying it twice. When no node accepts connections at all, nothing is sent and
//! the command fails at once.

use crate::failure::Failure;
use crate::view::{unexpected, Record, Table, View};
use futures::future::select_ok;
use ledger_client::{Client, ClientConfig, ClientError, Operation, TlsIdentity, DEV_ENDPOINTS};
use ledger_core::types::RequestKey;
use ledger_core::Reply;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Attempts of one round in the client library; the session runs rounds until the deadline.
const ATTEMPTS_PER_ROUND: u32 = 5;
/// The client library's back-off between attempts, from the first to the largest.
const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(1_000);
/// Pause between rounds: about one attempt's worth, so an election is polled, not hammered.
const ROUND_PAUSE: Duration = Duration::from_millis(250);
/// Longest wait for a TCP connection when probing whether any node is up.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);
/// A whole cluster down for this long during a write ends the wait (the outcome stays
/// unknown); an election never takes every node down.
const NO_NODE_GRACE: Duration = Duration::from_secs(5);

/// What the command line decides about the session.
pub struct Settings {
    pub endpoints: Vec<String>,
    /// The certificate to connect with; `None` for plaintext.
    pub tls: Option<TlsIdentity>,
    /// Where other identities are found (`patient_client_as`).
    pub certs_dir: PathBuf,
    pub json: bool,
    pub call_timeout_ms: u64,
    pub deadline_ms: u64,
    pub key: Option<RequestKey>,
}

pub struct Session {
    client: Client,
    certs_dir: PathBuf,
    config: ClientConfig,
    json: bool,
    deadline: Duration,
    key: Option<RequestKey>,
}

/// Why retrying a call ended without its answer.
enum Unanswered {
    /// No node accepted a connection, so nothing was sent.
    NothingSent,
    /// The deadline passed, or the whole cluster went away, after the call may have been
    /// sent; `last` is the last reason a call failed.
    GaveUp { waited: Duration, last: String },
    /// The call failed in a way no retry changes.
    Failed(ClientError),
}

impl Session {
    pub fn new(settings: Settings) -> Session {
        let endpoints = if settings.endpoints.is_empty() {
            DEV_ENDPOINTS.iter().map(|e| e.to_string()).collect()
        } else {
            settings.endpoints
        };
        let mut config = ClientConfig::new(endpoints);
        config.tls = settings.tls;
        config.call_timeout = Duration::from_millis(settings.call_timeout_ms);
        config.max_attempts = ATTEMPTS_PER_ROUND;
        config.backoff_initial = BACKOFF_INITIAL;
        config.backoff_max = BACKOFF_MAX;
        Session {
            client: Client::new(config.clone()),
            certs_dir: settings.certs_dir,
            config,
            json: settings.json,
            deadline: Duration::from_millis(settings.deadline_ms),
            key: settings.key,
        }
    }

    /// The client, for commands that need more than one call (`cluster_status`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A client that itself retries for about the deadline, for `demo`, which calls the
    /// library's domain methods directly.
    pub fn patient_client(&self) -> Client {
        self.patient_client_as(self.config.tls.clone())
    }

    /// `patient_client` presenting another certificate (the demo acting as a merchant or
    /// the channel): `identity(self.certs_dir(), "merchant-1")`.
    pub fn patient_client_as(&self, tls: Option<TlsIdentity>) -> Client {
        let mut config = self.config.clone();
        config.tls = tls;
        let per_attempt = BACKOFF_MAX.as_millis() as u64 / 2 + 1;
        config.max_attempts = (self.deadline.as_millis() as u64 / per_attempt).max(1) as u32;
        Client::new(config)
    }

    /// The certificates folder of `--certs`.
    pub fn certs_dir(&self) -> &Path {
        &self.certs_dir
    }

    /// The key of this command's write: `--key`, else a fresh one.
    pub fn write_key(&self) -> RequestKey {
        self.key.unwrap_or_else(|| self.client.new_key())
    }

    /// Whether answers and errors print as JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints a command's answer as text or JSON.
    pub fn show(&self, view: &impl View) {
        view.print(self.json);
    }

    /// Applies `operation` under `key` (from `write_key`), retrying under that key through
    /// leader elections until the deadline.
    pub async fn write_with_key(
        &self,
        key: RequestKey,
        operation: Operation,
    ) -> Result<Reply, Failure> {
        let attempt = || self.client.submit_with_key(key, operation.clone());
        self.patiently(attempt)
            .await
            .map_err(|unanswered| match unanswered {
                Unanswered::NothingSent => self.no_node(),
                Unanswered::GaveUp { waited, last } => Failure::OutcomeUnknown {
                    key,
                    waited_ms: waited.as_millis() as u64,
                    last,
                },
                Unanswered::Failed(error) => Failure::answered(error),
            })
    }

    /// Applies `operation` under `key` (from `write_key`) and prints the answer `view` makes
    /// of the reply; a reply `view` gives back is of another kind than the operation's.
    pub async fn write_shown_with_key<V: View>(
        &self,
        key: RequestKey,
        operation: Operation,
        view: impl FnOnce(Reply) -> Result<V, Reply>,
    ) -> Result<(), Failure> {
        let reply = self.write_with_key(key, operation).await?;
        self.show(&view(reply).map_err(unexpected)?);
        Ok(())
    }

    /// Applies `operation` under this command's key and prints the answer `view` makes of
    /// the reply.
    pub async fn write_shown<V: View>(
        &self,
        operation: Operation,
        view: impl FnOnce(Reply) -> Result<V, Reply>,
    ) -> Result<(), Failure> {
        self.write_shown_with_key(self.write_key(), operation, view)
            .await
    }

    /// Applies `operation`, whose reply says no more than that it was applied, under this
    /// command's key, and prints `view`.
    pub async fn write_then_show(
        &self,
        operation: Operation,
        view: impl View,
    ) -> Result<(), Failure> {
        self.write_shown(operation, |_| Ok(view)).await
    }

    /// Reads with `read`, retried through leader elections until the deadline.
    pub async fn read<T, F, Fut>(&self, read: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.patiently(read)
            .await
            .map_err(|unanswered| match unanswered {
                Unanswered::NothingSent => self.no_node(),
                Unanswered::GaveUp { waited, last } => Failure::Unavailable {
                    waited_ms: waited.as_millis() as u64,
                    last,
                },
                Unanswered::Failed(error) => Failure::answered(error),
            })
    }

    /// Reads one record, which must exist: `what` and `id` name it when it does not.
    pub async fn read_record<T, F, Fut>(
        &self,
        what: &'static str,
        id: u64,
        read: F,
    ) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, ClientError>>,
    {
        self.read(read).await?.ok_or(Failure::NotFound { what, id })
    }

    /// Reads one record, which must exist, and prints it (see `read_record`).
    pub async fn show_record<T, F, Fut>(
        &self,
        what: &'static str,
        id: u64,
        read: F,
    ) -> Result<(), Failure>
    where
        T: Table,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, ClientError>>,
    {
        self.show(&Record(self.read_record(what, id, read).await?));
        Ok(())
    }

    fn no_node(&self) -> Failure {
        Failure::NoNodeReachable {
            endpoints: self.config.endpoints.clone(),
        }
    }

    /// Runs `call` in rounds until it answers (with a result or a non-retryable error), the
    /// deadline passes, or no node has accepted connections for `NO_NODE_GRACE`.
    async fn patiently<T, F, Fut>(&self, mut call: F) -> Result<T, Unanswered>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        if !self.any_node_up().await {
            return Err(Unanswered::NothingSent);
        }
        let started = Instant::now();
        let mut down_since: Option<Instant> = None;
        let mut last = String::from("no node answered in time");
        loop {
            let left = self.deadline.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, call()).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(ClientError::Unavailable { last: reason, .. })) => last = reason,
                Ok(Err(error)) => return Err(Unanswered::Failed(error)),
                // The deadline cut a round short: `last` keeps the round before's reason.
                Err(_) => {}
            }
            let waited = started.elapsed();
            let left = self.deadline.saturating_sub(waited);
            if left.is_zero() {
                return Err(Unanswered::GaveUp { waited, last });
            }
            down_since = if self.any_node_up().await {
                None
            } else {
                down_since.or(Some(Instant::now()))
            };
            if down_since.is_some_and(|t| t.elapsed() >= NO_NODE_GRACE) {
                let waited = started.elapsed();
                let last = format!("{last}; no node accepted connections for {NO_NODE_GRACE:?}");
                return Err(Unanswered::GaveUp { waited, last });
            }
            tokio::time::sleep(ROUND_PAUSE.min(left)).await;
        }
    }

    /// Whether any endpoint accepts a TCP connection (probed concurrently).
    async fn any_node_up(&self) -> bool {
        if self.config.endpoints.is_empty() {
            return false;
        }
        let probes = self.config.endpoints.iter().map(|endpoint| {
            Box::pin(async move {
                match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(endpoint))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    _ => Err(()),
                }
            })
        });
        select_ok(probes).await.is_ok()
    }
}
