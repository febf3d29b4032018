//! The deterministic simulator (to come, see the simulator issue): whole clusters of the
//! production node code (openraft storage, state machine, ledger core, wire encoding) in one
//! process on one thread, with virtual time, a seeded network that drops, duplicates, delays
//! and reorders messages, partitions, crashes that lose unflushed writes, and checkers that
//! replay any failure from its seed.
