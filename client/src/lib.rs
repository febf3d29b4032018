//! The merchant client library (and, later, the `ledgerctl` command line).
//!
//! - [`Client`]: connect to a list of endpoints, find and follow the leader, retry with the
//!   same idempotency key so that a retry never applies an operation twice.
//! - [`rpc`]: the client protocol every node serves. [`transport`]: its framing.

mod client;
mod domain;
pub mod rpc;
pub mod sms;
pub mod transport;

pub use client::{Client, ClientConfig, ClientError, DEFAULT_MAX_IN_FLIGHT, DEV_ENDPOINTS};
pub use domain::{IssuedChallenge, PendingPayment, Settlement};
pub use ledger_core::api::{Consistency, NodeInfo, NodeStatus, Operation, Query, QueryReply};
