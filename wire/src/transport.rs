//! The one place that frames the wire: length-delimited bincode over TCP, with the frame
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
