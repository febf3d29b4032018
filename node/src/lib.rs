//! The replicated payment node: the ledger core on openraft, stored in sled, served over
//! tarpc.

pub mod log_store;
pub mod raft_types;
pub mod state_machine;
pub mod state_store;
