//! The wire protocol of the payment ledger: the one boundary both sides depend on. The client
//! library and the node depend on this crate; it depends on neither (only on the ledger core's
//! domain types).
//!
//! - [`api`]: what a merchant or operator sends to a node and gets back. Versioned
//!   (`API_VERSION`), changed only additively.
//! - [`rpc`]: the tarpc service every node serves on its client port.
//! - [`transport`]: the framing (length-delimited bincode, `MAX_FRAME_BYTES`), for the client
//!   port and the Raft port.
//! - [`principal`]: who is calling, as a verified certificate names them, and their role.
//! - [`tls`]: mutual TLS 1.3 for both ports and every client; [`pki`]: the cluster's
//!   certificate authority (issue, revoke).
//! - [`dev_sms`]: the development SMS outbox file a node writes and tools read codes from.

pub mod api;
pub mod dev_sms;
pub mod pki;
pub mod principal;
pub mod rpc;
pub mod tls;
pub mod transport;
pub mod webhook;
