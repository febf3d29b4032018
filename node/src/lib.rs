//! The replicated payment node: the ledger core on openraft, stored in sled, served over
//! tarpc.
//!
//! - [`raft_types`]: what a log entry carries. [`log_store`], [`state_machine`],
//!   [`state_store`]: storage on sled. [`network`]: Raft over tarpc.
//! - [`service`]: the client port (reads, writes, status, cluster administration), over any
//!   transport. [`intake`]: one request to one command (secrets hashed, randomness from the
//!   key, field bounds, request digests). [`proposer`]: batching in the log, leader stamping.
//! - [`outbox`]: the SMS outbox loop; [`sms`]: messages and gateways. [`stamp`]: the clock.
//! - [`webhooks`]: the loop that POSTs merchants' payment events, and its HTTPS transport.
//! - [`node`]: wiring (`assemble` for any transport, `start` for tarpc and sled).
//!   [`planted`]: deliberately broken variants, for the simulator only. [`metrics`], [`admin`].

// openraft's storage traits return its `StorageError` (over 200 bytes) by value; helpers
// that build it follow suit rather than box what the traits will unbox again.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod backup;
pub mod blocking;
pub mod certs;
pub mod checksum;
pub mod config;
pub mod disk;
pub mod elections;
pub mod intake;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod node;
pub mod outbox;
pub mod planted;
pub mod proposer;
pub mod raft_types;
pub mod roles;
pub mod service;
pub mod sms;
pub mod stamp;
pub mod state_machine;
pub mod state_store;
pub mod watermark;
pub mod webhooks;
