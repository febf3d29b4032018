//! The Jepsen-style chaos harness: real `ledger-node` processes in network namespaces, a
//! nemesis (partitions, packet loss, kill -9, pauses, membership changes), concurrent client
//! workloads recorded as Jepsen histories, and checkers (workload invariants,
//! linearizability against the ledger core, durability after healing).

pub mod checker;
pub mod cleanup;
pub mod db;
pub mod history;
pub mod lin;
pub mod model;
pub mod nemesis;
pub mod net;
pub mod ops;
pub mod plots;
pub mod report;
pub mod runner;
pub mod sweep;
pub mod workloads;
