//! End-to-end tests over real `ledger-node` processes on 127.0.0.1 (to come with the
//! replicated node): elections, writes sent to followers, kill -9 of the leader under load,
//! snapshot catch-up, full restarts and membership changes.
