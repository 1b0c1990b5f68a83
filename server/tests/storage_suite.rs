//! openraft's own storage test suite, run against tenure's sled log store and state machine.

use std::sync::{Arc, Mutex};

use openraft::testing::{StoreBuilder, Suite};
use tenure_server::lock::Event;
use tenure_server::raft::log_store::LogStore;
use tenure_server::raft::node_file::NodeFile;
use tenure_server::raft::state_machine::{ApplyObserver, StateMachine};
use tenure_server::raft::storage::Storage;
use tenure_server::raft::{StorageError, TypeConfig};

struct NoObserver;

impl ApplyObserver for NoObserver {
    fn applied(&self, _last_applied: u64, _events: Vec<Event>) {}
    fn reset(&self) {}
}

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&dir.path().join("db"), 8 << 20).expect("open sled");
        let node_file = Arc::new(Mutex::new(NodeFile::create(dir.path(), 1).expect("node file")));
        let log = LogStore::open(storage.clone(), node_file).expect("log store");
        let sm = StateMachine::open(storage, &dir.path().join("snapshots"), Arc::new(NoObserver), 1000).expect("sm");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_sled_store() {
    Suite::test_all(SledBuilder).expect("openraft storage suite");
}
