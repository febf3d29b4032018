//! The Jepsen-style chaos harness (to come, see the chaos harness issue): real `ledger-node`
//! processes in network namespaces, nemeses (partitions, packet loss, kill -9, pauses,
//! membership changes), concurrent client workloads recorded as Jepsen histories, and
//! checkers (workload invariants, linearizability against the ledger core, durability).
