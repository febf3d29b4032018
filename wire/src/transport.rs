//! The one place that frames the wire: length-delimited bincode over TCP or mutual TLS, with the frame
//! limit `MAX_FRAME_BYTES` on both sides. Used by the client library and by the node for
//! its client and Raft ports.

use crate::api::MAX_FRAME_BYTES;
use serde::{de::DeserializeOwned, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tarpc::serde_transport::Transport;
use tarpc::tokio_serde::formats::Bincode;
use tokio::net::TcpStream;

/// A framed connection carrying `Item`s in and `SinkItem`s out.
pub type Framed<Item, SinkItem> = Transport<TcpStream, Item, SinkItem, Bincode<Item, SinkItem>>;

/// Connects to `addr` within `timeout`.
pub async fn connect<Item, SinkItem>(
    addr: &str,
    timeout: Duration,
) -> std::io::Result<Framed<Item, SinkItem>>
where
    Item: DeserializeOwned,
    SinkItem: Serialize,
{
    let mut connect = tarpc::serde_transport::tcp::connect(addr, Bincode::default);
    connect.config_mut().max_frame_length(MAX_FRAME_BYTES);
    match tokio::time::timeout(timeout, connect).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connecting to {addr} timed out"),
        )),
    }
}

/// Listens on `addr`; yields framed connections.
pub async fn listen<Item, SinkItem>(
    addr: SocketAddr,
) -> std::io::Result<
    tarpc::serde_transport::tcp::Incoming<
        Item,
        SinkItem,
        Bincode<Item, SinkItem>,
        fn() -> Bincode<Item, SinkItem>,
    >,
>
where
    Item: DeserializeOwned,
    SinkItem: Serialize,
{
    let mut listener =
        tarpc::serde_transport::tcp::listen(addr, Bincode::default as fn() -> _).await?;
    listener.config_mut().max_frame_length(MAX_FRAME_BYTES);
    Ok(listener)
}

// ---- Mutual TLS ----------------------------------------------------------------------------
//
// After the TLS handshake the node answers with one byte before any frame: whether it admits
// the verified principal on this port. Under TLS 1.3 a client finishes its handshake before
// the node has checked the client's certificate, so without this byte a refused client
// would learn why only on its first call; with it, `connect_tls` fails with the reason.

/// The node admits the connection; frames follow.
const ADMITTED: u8 = 0x01;
/// The certificate is valid but its role is not served on this port.
const REFUSED_ROLE: u8 = 0x02;
/// The certificate names no principal (no or several `ledger:` SAN URIs).
const REFUSED_IDENTITY: u8 = 0x03;
/// Verified connections waiting to be taken by the server, past which handshakes wait.
const ACCEPTED_QUEUE: usize = 64;

/// A framed connection over TLS, server side.
pub type TlsFramed<Item, SinkItem> =
    Transport<tokio_rustls::server::TlsStream<TcpStream>, Item, SinkItem, Bincode<Item, SinkItem>>;
/// A framed connection over TLS, client side.
pub type TlsClientFramed<Item, SinkItem> =
    Transport<tokio_rustls::client::TlsStream<TcpStream>, Item, SinkItem, Bincode<Item, SinkItem>>;

fn framed<S, Item, SinkItem>(stream: S) -> Transport<S, Item, SinkItem, Bincode<Item, SinkItem>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
    Item: DeserializeOwned,
    SinkItem: Serialize,
{
    tarpc::serde_transport::new(
        tokio_util::codec::LengthDelimitedCodec::builder()
            .max_frame_length(MAX_FRAME_BYTES)
            .new_framed(stream),
        Bincode::default(),
    )
}

/// A verified, admitted connection: its frames and who is at the other end.
pub struct TlsConnection<Item, SinkItem> {
    pub framed: TlsFramed<Item, SinkItem>,
    pub peer: crate::tls::PeerIdentity,
    pub remote: SocketAddr,
}

/// The connections a TLS listener admitted.
pub struct TlsIncoming<Item, SinkItem> {
    accepted: tokio::sync::mpsc::Receiver<TlsConnection<Item, SinkItem>>,
}

impl<Item, SinkItem> TlsIncoming<Item, SinkItem> {
    /// The next admitted connection; `None` once the listener stopped.
    pub async fn next(&mut self) -> Option<TlsConnection<Item, SinkItem>> {
        self.accepted.recv().await
    }
}

impl<Item: Send + 'static, SinkItem: Send + 'static> TlsIncoming<Item, SinkItem> {
    /// Serves every admitted connection at once with `serve` (given its frames and who is at
    /// the other end), each until it ends or a reload of `tls` revokes its certificate.
    pub async fn serve_each<F, Fut>(self, tls: std::sync::Arc<crate::tls::NodeTls>, serve: F)
    where
        F: Fn(TlsFramed<Item, SinkItem>, &crate::tls::PeerIdentity) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use futures::StreamExt;
        let connections = futures::stream::unfold(self, |mut incoming| async move {
            incoming.next().await.map(|conn| (conn, incoming))
        });
        connections
            .for_each_concurrent(None, |conn| {
                let revoked = tls.until_revoked(conn.peer.serial.clone());
                let serving = serve(conn.framed, &conn.peer);
                let (peer, remote) = (conn.peer, conn.remote);
                async move {
                    tokio::select! {
                        () = serving => {}
                        () = revoked => tracing::info!(
                            %remote,
                            principal = %peer.principal,
                            serial = %peer.serial,
                            "certificate revoked: connection closed"
                        ),
                    }
                }
            })
            .await
    }
}

/// Listens on `addr` with mutual TLS. Each handshake runs in a task of its own, bounded by
/// `HANDSHAKE_TIMEOUT`, so a slow or garbled one never holds up the others. A connection is
/// admitted when its certificate is valid for the node's trust at that moment (re-read on
/// `NodeTls::reload`) and `admits` accepts its principal; any other is logged, counted in
/// `refused` and closed. The listener stops when the returned `TlsIncoming` is dropped.
pub async fn listen_tls<Item, SinkItem>(
    addr: SocketAddr,
    tls: std::sync::Arc<crate::tls::NodeTls>,
    admits: fn(&crate::principal::Principal) -> bool,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<TlsIncoming<Item, SinkItem>>
where
    Item: DeserializeOwned + Send + 'static,
    SinkItem: Serialize + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (sender, accepted) = tokio::sync::mpsc::channel(ACCEPTED_QUEUE);
    let counter = refused;
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: pause rather than spin.
                        tracing::warn!(%addr, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = sender.closed() => return,
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
            let (sender, counter) = (sender.clone(), counter.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, async {
                    admit(acceptor, tcp, admits).await
                });
                match handshake.await {
                    Ok(Ok((stream, peer))) => {
                        tracing::debug!(%remote, principal = %peer.principal, "TLS connection admitted");
                        let conn = TlsConnection {
                            framed: framed(stream),
                            peer,
                            remote,
                        };
                        let _ = sender.send(conn).await;
                    }
                    Ok(Err(why)) => {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(%remote, port = %addr, reason = %why, "TLS connection refused");
                    }
                    Err(_) => {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(%remote, port = %addr, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    Ok(TlsIncoming { accepted })
}

/// One server-side handshake: TLS, the principal, the port's admission, the answer byte.
async fn admit(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    admits: fn(&crate::principal::Principal) -> bool,
) -> Result<
    (
        tokio_rustls::server::TlsStream<TcpStream>,
        crate::tls::PeerIdentity,
    ),
    String,
> {
    use tokio::io::AsyncWriteExt;
    let mut stream = acceptor
        .accept(tcp)
        .await
        .map_err(|e| crate::tls::explain(&e).unwrap_or_else(|| e.to_string()))?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no client certificate")?;
    let (answer, outcome) = match crate::tls::peer_identity(leaf) {
        Err(e) => (REFUSED_IDENTITY, Err(e.to_string())),
        Ok(peer) if !admits(&peer.principal) => (
            REFUSED_ROLE,
            Err(format!("{} is not served on this port", peer.principal)),
        ),
        Ok(peer) => (ADMITTED, Ok(peer)),
    };
    stream
        .write_all(&[answer])
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    match outcome {
        Ok(peer) => Ok((stream, peer)),
        Err(why) => {
            let _ = stream.shutdown().await;
            Err(why)
        }
    }
}

/// Connects to the node at `addr` with mutual TLS within `timeout`, verifying it as
/// `NODE_SERVER_NAME`. A refusal is an error that says why in plain words (unknown CA,
/// certificate expired, certificate revoked, bad certificate, role not served on this port,
/// connection closed).
pub async fn connect_tls<Item, SinkItem>(
    addr: &str,
    timeout: Duration,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsClientFramed<Item, SinkItem>>
where
    Item: DeserializeOwned,
    SinkItem: Serialize,
{
    use std::io::{Error, ErrorKind};
    use tokio::io::AsyncReadExt;
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from(crate::tls::NODE_SERVER_NAME)
            .expect("a valid DNS name");
        let tls_error = |e: Error| match crate::tls::explain(&e) {
            Some(why) => Error::new(ErrorKind::PermissionDenied, why),
            None if e.kind() == ErrorKind::UnexpectedEof => Error::new(
                ErrorKind::ConnectionAborted,
                "the node closed the connection during the TLS handshake (is it serving TLS?)",
            ),
            None => Error::new(e.kind(), format!("TLS handshake: {e}")),
        };
        let mut stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(tls_error)?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.map_err(tls_error)?;
        match answer[0] {
            ADMITTED => Ok(stream),
            REFUSED_ROLE => Err(Error::new(
                ErrorKind::PermissionDenied,
                "the node refused this certificate: its role is not served on this port",
            )),
            REFUSED_IDENTITY => Err(Error::new(
                ErrorKind::PermissionDenied,
                "the node refused this certificate: bad certificate (it names no single `ledger:` principal)",
            )),
            other => Err(Error::new(
                ErrorKind::InvalidData,
                format!("unexpected answer {other:#04x} after the TLS handshake"),
            )),
        }
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(stream)) => Ok(framed(stream)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::new(
            ErrorKind::TimedOut,
            format!("connecting to {addr} with TLS timed out"),
        )),
    }
}
