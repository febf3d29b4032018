//! The admin HTTP port: `/health` (the process runs and Raft is up), `/ready` (a leader is
//! known and this node has applied the ledger), `/metrics` (Prometheus text). A deliberately
//! small HTTP/1.1 responder: GET only, request heads bounded, one response per connection.

use crate::node::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Largest request head read.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the admin port until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_TIMEOUT, handle(stream, shared)).await;
            });
        }
    }))
}

async fn handle(mut stream: tokio::net::TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return respond(&mut stream, 431, "request head too large\n").await;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(&mut stream, 405, "only GET\n").await;
    }
    let metrics = shared.raft.metrics().borrow().clone();
    match path {
        "/health" => match metrics.running_state {
            Ok(()) => respond(&mut stream, 200, "ok\n").await,
            Err(e) => respond(&mut stream, 503, &format!("raft stopped: {e}\n")).await,
        },
        "/ready" => {
            let ready = metrics.running_state.is_ok()
                && metrics.current_leader.is_some()
                && shared.reader.ledger().is_some();
            if ready {
                respond(&mut stream, 200, "ready\n").await
            } else {
                respond(&mut stream, 503, "not ready: no leader or no ledger yet\n").await
            }
        }
        "/metrics" => {
            let body = shared.metrics.render(&metrics, shared.disk_bytes());
            respond(&mut stream, 200, &body).await
        }
        _ => {
            respond(
                &mut stream,
                404,
                "not found; try /health, /ready or /metrics\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: u16,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
