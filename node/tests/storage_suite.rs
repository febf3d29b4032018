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

mod corruption {
    use ledger_core::command::{Command, Envelope};
    use ledger_core::config::LedgerConfig;
    use ledger_core::types::{AccountId, RequestKey};
    use ledger_node::raft_types::{Proposal, ProposalBody, TypeConfig};
    use ledger_node::state_machine::StateMachine;
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    fn entry(index: u64, body: ProposalBody) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal {
                now_ms: 1_700_000_000_000,
                body,
            }),
        }
    }

    /// A bit flipped in a stored state record: applying the next entry is a storage error
    /// (nothing applied), no snapshot is built from it, reopening the state refuses it, and
    /// the scrub names it.
    #[tokio::test]
    async fn a_corrupt_state_record_stops_applying_and_opening() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("sled"))
            .open()
            .unwrap();
        let snapshots = dir.path().join("snapshots");
        let mut sm = StateMachine::<TypeConfig>::open(&db, &snapshots).unwrap();
        let genesis = ProposalBody::Genesis(LedgerConfig::default());
        sm.apply([entry(1, genesis)]).await.unwrap();

        // Flip one bit in every ledger record (not the markers under 0xFF).
        let state = db.open_tree("state").unwrap();
        for row in state.range(..[0xFFu8].as_slice()) {
            let (key, value) = row.unwrap();
            let mut value = value.to_vec();
            value[0] ^= 0x01;
            state.insert(key, value).unwrap();
        }
        let deposit = Command::Deposit {
            account: AccountId(1),
            amount_fen: 100,
        };
        let key = RequestKey {
            client_id: 7,
            request_id: 1,
        };
        let body = ProposalBody::Commands(vec![Envelope::new(key, 0, deposit)]);
        let error = sm.apply([entry(2, body)]).await.unwrap_err().to_string();
        assert!(error.contains("fails its checksum"), "{error}");
        assert_eq!(
            sm.applied_state().await.unwrap().0.map(|l| l.index),
            Some(1)
        );

        let mut builder = sm.get_snapshot_builder().await;
        let error = builder.build_snapshot().await.unwrap_err().to_string();
        assert!(error.contains("fails its checksum"), "{error}");
        drop(sm);

        let reopened = StateMachine::<TypeConfig>::open(&db, &snapshots);
        let error = reopened
            .err()
            .expect("a corrupt state is refused")
            .to_string();
        assert!(error.contains("fails its checksum"), "{error}");
        let scrubbed = ledger_node::checksum::scrub(&db, dir.path());
        assert!(
            matches!(&scrubbed, Err(ledger_node::checksum::ScrubError::Corrupt(c)) if c.tree == "state"),
            "{scrubbed:?}"
        );
    }
}
