//! The deterministic ledger core of the payment ledger.
//!
//! A pure state machine, `(state, command, context) -> outcome`, covering the whole domain:
//! accounts in double entry, ICBC e-Pay enrolment and two-step payments confirmed by OTP,
//! PSBC merchant campaigns (counters, one-time rewards, fee tiers) and voucher pools. It does
//! no I/O, never reads a clock or a random source, and iterates only ordered collections:
//! two replicas fed the same commands end with byte-identical state.
//!
//! - [`command`]: what changes the ledger, as it travels in the Raft log.
//! - [`ledger`]: applying commands; queries; snapshot, restore and the state hash.
//! - [`state`]: the records and the storage seam ([`state::Store`], [`state::MemStore`]).
//! - [`intake`]: turning a customer's secrets into hashed command fields, before proposal.
//! - [`otp`]: HOTP and OCRA (RFC 4226, RFC 6287).

pub mod command;
pub mod config;
pub mod intake;
pub mod ledger;
pub mod otp;
pub mod outcome;
pub mod state;
pub mod time;
pub mod types;
pub mod validate;

pub use command::{Command, Context, Envelope, SessionOwner};
pub use config::LedgerConfig;
pub use ledger::Ledger;
pub use outcome::{LedgerError, Outcome, Reply};
pub use state::{MemStore, Store};
