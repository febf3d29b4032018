//! openraft's own storage test suite against our sled log store and state machine.

use ledger_node::log_store::LogStore;
use ledger_node::raft_types::{StorageError, TypeConfig};
use ledger_node::state_machine::StateMachine;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, StateMachine<TypeConfig>, TempDir>
    for SledBuilder
{
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TypeConfig>, StateMachine<TypeConfig>), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let db = sled::Config::new()
            .path(dir.path().join("sled"))
            .flush_every_ms(None)
            .open()
            .expect("open sled");
        let log = LogStore::open(&db).expect("log store");
        let sm = StateMachine::open(&db, &dir.path().join("snapshots"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_storage_passes_the_openraft_suite() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("storage suite failed: {e}");
    }
}
