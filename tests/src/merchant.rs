//! A merchant's webhook receiver for the end-to-end tests: a real HTTP server on 127.0.0.1
//! (hyper) that records every POST the nodes make, and answers as the test tells it: accept
//! (204), fail (500), or hang without answering. It stops when dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// How the merchant answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 204 No Content: delivered.
    Accept,
    /// 500: the node must try again later.
    Fail,
    /// Reads the request and never answers (the node's timeout must end the attempt).
    Hang,
}

/// One POST as the merchant received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub event_id: Option<u64>,
    pub signature: Option<String>,
    pub timestamp: Option<u64>,
    pub body: Vec<u8>,
    /// What the merchant answered.
    pub answer: Answer,
}

#[derive(Default)]
struct State {
    answer: Option<Answer>,
    received: Vec<Received>,
}

/// The running receiver.
pub struct MerchantServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl MerchantServer {
    /// Starts a receiver on a free port of 127.0.0.1, answering `answer`.
    pub async fn start(answer: Answer) -> MerchantServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the merchant's server");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State {
            answer: Some(answer),
            received: Vec::new(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        MerchantServer { addr, state, task }
    }

    /// The URL to register as the webhook.
    pub fn url(&self) -> String {
        format!("http://{}/ledger/events", self.addr)
    }

    pub fn answer(&self, answer: Answer) {
        self.lock().answer = Some(answer);
    }

    /// Every POST so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The bodies of accepted deliveries, by event id (the merchant's deduplication).
    pub fn accepted(&self) -> BTreeMap<u64, Vec<Vec<u8>>> {
        let mut by_id: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for r in self.lock().received.iter() {
            if let (Answer::Accept, Some(id)) = (r.answer, r.event_id) {
                by_id.entry(id).or_default().push(r.body.clone());
            }
        }
        by_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for MerchantServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let event_id = header(ledger_wire::webhook::EVENT_ID_HEADER).and_then(|v| v.parse().ok());
    let signature = header(ledger_wire::webhook::SIGNATURE_HEADER);
    let timestamp = header(ledger_wire::webhook::TIMESTAMP_HEADER).and_then(|v| v.parse().ok());
    let body = request.into_body().collect().await?.to_bytes().to_vec();
    let answer = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let answer = state.answer.unwrap_or(Answer::Accept);
        state.received.push(Received {
            event_id,
            signature,
            timestamp,
            body,
            answer,
        });
        answer
    };
    let status = match answer {
        Answer::Accept => StatusCode::NO_CONTENT,
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Hang => std::future::pending().await,
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .expect("a response"))
}
