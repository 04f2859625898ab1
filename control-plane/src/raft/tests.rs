//! openraft's storage suite against our redb store, and durability across reopen.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::{LogStore, StateMachine, TypeConfig};

struct RedbBuilder;

fn fail(e: impl std::error::Error + 'static) -> StorageError<TypeConfig> {
    StorageError::read(openraft::errors::ErrorSource::from_error(&e))
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(fail)?;
        let db = redb::Database::create(dir.path().join("raft.redb")).map_err(fail)?;
        let db = Arc::new(db);
        let log = LogStore::open(db.clone()).map_err(fail)?;
        let sm = StateMachine::open(db, None).map_err(fail)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_passes_openraft_storage_suite() {
    Suite::test_all(RedbBuilder).await.unwrap();
}
