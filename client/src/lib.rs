//! The merchant client library of the payment ledger, and the `ledgerctl` and
//! `ledger-bench` commands built on it.
//!
//! - [`Client`]: connect to a list of endpoints, find and follow the leader, retry with the
//!   same idempotency key so that a retry never applies an operation twice.
//! - The protocol it speaks (API types, the tarpc service, framing, the development SMS
//!   outbox) is the `ledger-wire` crate, which the node depends on too.
//!
//! Clients connect with mutual TLS: [`ClientConfig::tls`] holds the certificate the node
//! answers as (an operator, a merchant, a channel, an auditor), loaded with [`identity`]
//! from a certificates folder (`ledger-node certs`, or `data/dev/certs` of `ledger-node
//! dev`).
//!
//! Every method that changes the ledger is one logical operation: the client creates its
//! idempotency key once and reuses it on every retry, so a retry after a timeout or a
//! leader change never applies it twice. Errors are typed and say whether a retry can help.
//!
//! A merchant's payment, both steps (runnable versions in `examples/`):
//!
//! ```no_run
//! use ledger_client::{Client, ClientConfig, DEV_ENDPOINTS};
//! use ledger_core::intake::Secret;
//! use ledger_core::types::{MerchantId, Payee};
//!
//! # async fn pay(code_from_the_payer: String) -> Result<(), ledger_client::ClientError> {
//! let mut config = ClientConfig::new(DEV_ENDPOINTS);
//! // The dev cluster's operator certificate (`ledger-node dev` makes it).
//! config.tls = ledger_client::identity::dev_identity("operator-ledgerctl").ok();
//! let client = Client::new(config);
//! // Step 1: the payer's phone and the last six digits of the card, amount and order.
//! let pending = client
//!     .begin_payment("13800000001", Secret::new("123456"), Payee::Merchant(MerchantId(1)), 10_000, "order-42")
//!     .await?;
//! // The bank sends the payer an SMS with a code bound to this payment; the payer types it.
//! let settled = client.confirm_payment(pending.payment, Secret::new(code_from_the_payer)).await?;
//! assert_eq!(settled.bill_fen, 10_000);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod client;
mod domain;
pub mod identity;
pub mod records;
pub mod sample;

pub use client::{
    Client, ClientConfig, ClientError, Tcp, TlsError, TlsIdentity, Transport,
    DEFAULT_MAX_IN_FLIGHT, DEV_ENDPOINTS,
};
pub use domain::{IssuedChallenge, PendingPayment, Refund, Settlement};
pub use identity::{identity, TlsArgs};
pub use ledger_wire::api::{Consistency, NodeInfo, NodeStatus, Operation, Query, QueryReply};
