//! The replicated payment node: the ledger core on openraft, stored in sled, served over
//! tarpc.
//!
//! - [`raft_types`]: what a log entry carries. [`log_store`], [`state_machine`],
//!   [`state_store`]: storage on sled. [`network`]: Raft over tarpc.
//! - [`service`]: the client port (intake, leader stamping, reads). [`node`]: wiring.
//! - [`sms`]: the SMS outbox and gateways. [`stamp`]: clock and randomness. [`metrics`].

// openraft's storage traits return its `StorageError` (over 200 bytes) by value; helpers
// that build it follow suit rather than box what the traits will unbox again.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod config;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod node;
pub mod proposer;
pub mod raft_types;
pub mod service;
pub mod sms;
pub mod stamp;
pub mod state_machine;
pub mod state_store;
