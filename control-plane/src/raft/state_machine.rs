//! The applied cluster state and its snapshots, durable in redb.
//!
//! Each batch of committed entries is applied to the in-memory `ClusterState` and the result
//! written in one transaction with the last applied log id, so what openraft is told was applied
//! is exactly what is on disk. After a batch that changed the state, the compiled routing table
//! is published to watchers.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StoredMembership};
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::TypeConfig;
use super::log_store::{decode, encode, failpoint};
use crate::seal::ClusterKey;
use crate::service::agent::now_ms;
use crate::state::{ClusterState, Outcome};
use crate::table;
use switchyard_proto::v1::RoutingTable;

/// Applied state and the current snapshot, JSON-encoded.
const SM: TableDefinition<&str, &[u8]> = TableDefinition::new("state_machine");

const APPLIED: &str = "applied";
const SNAPSHOT: &str = "snapshot";

/// Snapshot bytes: a JSON-encoded `Applied`.
pub type SnapshotData = Vec<u8>;

/// What the state machine persists after every applied batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogIdOf<TypeConfig>>,
    last_membership: StoredMembershipOf<TypeConfig>,
    state: ClusterState,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    data: Vec<u8>,
    /// When it was built or installed, ms since the Unix epoch.
    #[serde(default)]
    at_ms: u64,
}

/// The durable state machine. Clones share the state, the database and the table publisher.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    applied: Arc<Mutex<Applied>>,
    table: Arc<watch::Sender<Arc<RoutingTable>>>,
    key: Option<Arc<ClusterKey>>,
    /// When the last snapshot was built or installed (ms since the epoch; 0 = never).
    snapshot_at_ms: Arc<AtomicU64>,
}

impl StateMachine {
    /// Opens the state-machine table in `db` and loads the last applied state. `key` opens
    /// credentials stored by value when the routing table is compiled.
    pub fn open(db: Arc<Database>, key: Option<Arc<ClusterKey>>) -> io::Result<Self> {
        let txn = db.begin_write().map_err(io::Error::other)?;
        txn.open_table(SM).map_err(io::Error::other)?;
        txn.commit().map_err(io::Error::other)?;
        let applied: Applied = read(&db, APPLIED)?.unwrap_or_default();
        let snapshot_at_ms = read::<StoredSnapshot>(&db, SNAPSHOT)?.map_or(0, |s| s.at_ms);
        let (table, _) = watch::channel(Arc::new(compile(&applied.state, key.as_deref())));
        Ok(Self {
            db,
            applied: Arc::new(Mutex::new(applied)),
            table: Arc::new(table),
            key,
            snapshot_at_ms: Arc::new(AtomicU64::new(snapshot_at_ms)),
        })
    }

    /// Milliseconds since the last snapshot; `None` before the first.
    pub fn snapshot_age_ms(&self) -> Option<u64> {
        match self.snapshot_at_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(now_ms().saturating_sub(at)),
        }
    }

    /// Follows the compiled routing table: the current one at once, then every new version.
    pub fn watch_table(&self) -> watch::Receiver<Arc<RoutingTable>> {
        self.table.subscribe()
    }

    /// A copy of the applied state.
    pub async fn state(&self) -> ClusterState {
        self.applied.lock().await.state.clone()
    }

    /// Runs `read` on the applied state without copying it (a copy of thousands of endpoints
    /// is what a periodic check cannot afford).
    pub async fn with_state<R>(&self, read: impl FnOnce(&ClusterState) -> R) -> R {
        read(&self.applied.lock().await.state)
    }

    fn publish(&self, state: &ClusterState) {
        self.table
            .send_replace(Arc::new(compile(state, self.key.as_deref())));
    }
}

/// Compiles the table, naming credentials the cluster key cannot open.
fn compile(state: &ClusterState, key: Option<&ClusterKey>) -> RoutingTable {
    let compiled = table::compile(state, key);
    for credential in &compiled.unopened {
        tracing::warn!(credential = %credential, "a stored credential does not open with this voter's cluster key; edges will not get it");
    }
    compiled.table
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let applied = self.applied.lock().await.clone();
        let data = encode(&applied)?;
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: applied.last_applied,
            last_membership: applied.last_membership,
        };
        write(
            &self.db,
            SNAPSHOT,
            &StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
                at_ms: now_ms(),
            },
        )?;
        self.snapshot_at_ms.store(now_ms(), Ordering::Relaxed);
        Ok(SnapshotOf::<TypeConfig, SnapshotData> {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let applied = self.applied.lock().await;
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut applied = self.applied.lock().await;
        let revision = applied.state.revision;
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            applied.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Normal(command) => applied.state.apply(command),
                EntryPayload::Membership(membership) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    Outcome::Unchanged {
                        revision: applied.state.revision,
                    }
                }
                EntryPayload::Blank => Outcome::Unchanged {
                    revision: applied.state.revision,
                },
            };
            if let Some(responder) = responder {
                responders.push((responder, outcome));
            }
        }
        // Persist before answering: an acknowledged write is applied on disk.
        failpoint!("state_machine::apply::before_persist");
        write(&self.db, APPLIED, &*applied)?;
        if applied.state.revision != revision {
            self.publish(&applied.state);
        }
        for (responder, outcome) in responders {
            responder.send(outcome);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let mut installed: Applied = decode(&snapshot)?;
        installed.last_applied = meta.last_log_id;
        installed.last_membership = meta.last_membership.clone();
        write(
            &self.db,
            SNAPSHOT,
            &StoredSnapshot {
                meta: meta.clone(),
                data: snapshot,
                at_ms: now_ms(),
            },
        )?;
        self.snapshot_at_ms.store(now_ms(), Ordering::Relaxed);
        write(&self.db, APPLIED, &installed)?;
        let mut applied = self.applied.lock().await;
        *applied = installed;
        self.publish(&applied.state);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        let stored: Option<StoredSnapshot> = read(&self.db, SNAPSHOT)?;
        Ok(stored.map(|s| SnapshotOf::<TypeConfig, SnapshotData> {
            meta: s.meta,
            snapshot: s.data,
        }))
    }
}

fn read<T: serde::de::DeserializeOwned>(db: &Database, key: &str) -> io::Result<Option<T>> {
    let txn = db.begin_read().map_err(io::Error::other)?;
    let table = txn.open_table(SM).map_err(io::Error::other)?;
    match table.get(key).map_err(io::Error::other)? {
        Some(bytes) => Ok(Some(decode(bytes.value())?)),
        None => Ok(None),
    }
}

fn write<T: Serialize>(db: &Database, key: &str, value: &T) -> io::Result<()> {
    let bytes = encode(value)?;
    let txn = db.begin_write().map_err(io::Error::other)?;
    {
        let mut table = txn.open_table(SM).map_err(io::Error::other)?;
        table
            .insert(key, bytes.as_slice())
            .map_err(io::Error::other)?;
    }
    // The state is written in the transaction but not yet committed (nor fsynced).
    failpoint!("state_machine::persist::before_commit");
    txn.commit().map_err(io::Error::other)
}
