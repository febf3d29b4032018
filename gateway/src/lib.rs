//! The HTTP/JSON gateway: merchants, the bank's channels and auditors reach the ledger over
//! HTTPS with JSON bodies and a published OpenAPI 3.1 schema (`/openapi.json`, a human page at
//! `/docs`), versioned under `/v1`.
//!
//! The gateway is a client of the cluster (`ledger_client::Client`, with its leader
//! following and retries) holding a `gateway` certificate. It authenticates each HTTP caller
//! (a client certificate from the cluster CA, or an API key stored only as a hash) and calls
//! the nodes *for* that principal (`submit_as`, `query_as`), so the nodes' role table and
//! idempotency namespaces apply exactly as if the caller had used the Rust client.

pub mod extract;
pub mod keys;
pub mod metrics;
pub mod problem;
pub mod routes;
pub mod server;

use extract::{Caller, IdempotencyKey};
use keys::ApiKeys;
use ledger_client::{Client, ClientError};
use ledger_core::Reply;
use ledger_wire::api::{Consistency, Operation, Query, QueryReply};
use problem::{Call, Problem};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Default of `GatewayConfig::request_deadline`: longest a request waits for the cluster
/// before the gateway answers 503, under the 30 s at which many HTTP clients give up (the
/// client library alone may keep retrying through a failover for over a minute).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(25);

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub client: Arc<Client>,
    pub keys: Arc<RwLock<ApiKeys>>,
    /// Longest a request waits for the cluster: past it a read is 503 `Unavailable`, a write
    /// 503 `OutcomeUnknown` (its retry with the same `Idempotency-Key` learns the outcome).
    pub deadline: Duration,
}

impl App {
    pub fn new(client: Client, keys: ApiKeys) -> App {
        App {
            client: Arc::new(client),
            keys: Arc::new(RwLock::new(keys)),
            deadline: REQUEST_DEADLINE,
        }
    }

    /// Applies `operation` for the caller, under its `Idempotency-Key` if it sent one.
    pub async fn submit(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        operation: Operation,
    ) -> Result<Reply, Problem> {
        let (request_key, call) = match &key.0 {
            Some(text) => (extract::http_request_key(text), Call::KeyedWrite),
            None => (self.client.new_key(), Call::UnkeyedWrite),
        };
        let answer = self.client.submit_as(&caller.0, request_key, operation);
        match tokio::time::timeout(self.deadline, answer).await {
            Ok(answer) => answer.map_err(|e| Problem::client(e, call)),
            Err(_) => Err(Problem::unavailable(call)),
        }
    }

    /// Reads for the caller (linearizable).
    pub async fn query(&self, caller: &Caller, query: Query) -> Result<QueryReply, Problem> {
        let answer = self
            .client
            .query_as(&caller.0, query, Consistency::Linearizable);
        match tokio::time::timeout(self.deadline, answer).await {
            Ok(answer) => answer.map_err(|e: ClientError| Problem::client(e, Call::Read)),
            Err(_) => Err(Problem::unavailable(Call::Read)),
        }
    }
}
