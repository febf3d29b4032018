//! The merchant client library (and, later, the `ledgerctl` command line).
//!
//! - [`rpc`]: the client protocol every node serves.
//! - [`Client`]: connect to a list of endpoints, find and follow the leader, retry with the
//!   same idempotency key.

pub mod rpc;
