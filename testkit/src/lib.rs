//! Real `ledger-node` processes for tests: one way to launch them (`nodes`) and one way to
//! ask a running node what it knows (`probe`). The end-to-end tests (`ledger-tests`) and the
//! chaos harness (`ledger-jepsen`) both start their nodes through here; what differs between
//! them (addresses, a network namespace to exec in, dying with the harness) is a builder
//! option, not a second copy. `pki`: a cluster's CA and certificates (nodes start with
//! mutual TLS; tests act as any principal). `driver`: a single-replica driver of the ledger core that
//! plays leader, intake and customer, for the core's tests and benchmark, the chaos
//! harness's model and the simulator's random streams (`splitmix64`). `progress`: a progress
//! bar on a terminal, plain lines elsewhere.

pub mod bench;
pub mod driver;
pub mod nodes;
pub mod pki;
pub mod probe;
pub mod progress;

pub use nodes::{now_ms, NodeLauncher, NodeProcess, StopError};
pub use pki::{ClusterPki, LaunchTls};
