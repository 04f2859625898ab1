//! The raft log, its vote and its commit point, durable in redb.
//!
//! Every write commits with `Durability::Immediate` (fsync) before openraft is told the IO is
//! done, so an acknowledged entry survives a crash. The one exception is the commit point: it
//! is a hint that spares re-deriving it after a restart, so it is written without an fsync of
//! its own (the next append's fsync carries it). That is one fsync fewer per batch of writes.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypeConfig;

/// Log entries by index, JSON-encoded.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Vote, commit point and last purged log id, JSON-encoded.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;

/// A storage failpoint (feature `failpoints`, the `fail` crate): configured as `return(msg)` it
/// makes the enclosing `io::Result` function fail with `msg`; `panic` and callbacks (a test's
/// `abort()`) stand in for a crash at that point. Compiles to nothing without the feature.
#[cfg(feature = "failpoints")]
macro_rules! failpoint {
    ($name:literal) => {
        fail::fail_point!($name, |msg: Option<String>| Err(io::Error::other(format!(
            "failpoint {}: {}",
            $name,
            msg.unwrap_or_default()
        ))))
    };
}
#[cfg(not(feature = "failpoints"))]
macro_rules! failpoint {
    ($name:literal) => {};
}
pub(super) use failpoint;

/// The durable raft log. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Opens the log tables in `db`, creating them on first use.
    pub fn open(db: Arc<Database>) -> io::Result<Self> {
        let txn = db.begin_write().map_err(io::Error::other)?;
        txn.open_table(LOG).map_err(io::Error::other)?;
        txn.open_table(META).map_err(io::Error::other)?;
        txn.commit().map_err(io::Error::other)?;
        Ok(Self { db })
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let txn = self.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(META).map_err(io::Error::other)?;
        match table.get(key).map_err(io::Error::other)? {
            Some(bytes) => Ok(Some(decode(bytes.value())?)),
            None => Ok(None),
        }
    }

    fn write_meta<T: Serialize>(&self, key: &str, value: &T, durable: bool) -> io::Result<()> {
        let bytes = encode(value)?;
        let mut txn = self.db.begin_write().map_err(io::Error::other)?;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(io::Error::other)?;
        }
        {
            let mut table = txn.open_table(META).map_err(io::Error::other)?;
            table
                .insert(key, bytes.as_slice())
                .map_err(io::Error::other)?;
        }
        failpoint!("log_store::meta::before_commit");
        txn.commit().map_err(io::Error::other)
    }

    fn last_entry(&self) -> io::Result<Option<Entry>> {
        let txn = self.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(LOG).map_err(io::Error::other)?;
        match table.last().map_err(io::Error::other)? {
            Some((_, bytes)) => Ok(Some(decode(bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Removes entries with index in `range`, and records `purged` in the same transaction.
    fn remove(
        &self,
        range: (Bound<u64>, Bound<u64>),
        purged: Option<&LogIdOf<TypeConfig>>,
    ) -> io::Result<()> {
        let txn = self.db.begin_write().map_err(io::Error::other)?;
        {
            let mut log = txn.open_table(LOG).map_err(io::Error::other)?;
            log.retain_in(range, |_, _| false)
                .map_err(io::Error::other)?;
            if let Some(purged) = purged {
                let bytes = encode(purged)?;
                let mut meta = txn.open_table(META).map_err(io::Error::other)?;
                meta.insert(LAST_PURGED, bytes.as_slice())
                    .map_err(io::Error::other)?;
            }
        }
        failpoint!("log_store::remove::before_commit");
        txn.commit().map_err(io::Error::other)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let txn = self.db.begin_read().map_err(io::Error::other)?;
        let table = txn.open_table(LOG).map_err(io::Error::other)?;
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let mut entries = Vec::new();
        for item in table.range::<u64>(bounds).map_err(io::Error::other)? {
            let (_, bytes) = item.map_err(io::Error::other)?;
            entries.push(decode(bytes.value())?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.read_meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogIdOf<TypeConfig>> = self.read_meta(LAST_PURGED)?;
        let last = self.last_entry()?.map(|e| e.log_id());
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.write_meta(VOTE, vote, true)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        // Losing the newest commit point in a crash only means openraft learns it again.
        self.write_meta(COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self
            .read_meta::<Option<LogIdOf<TypeConfig>>>(COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
    {
        let result = (|| {
            let txn = self.db.begin_write().map_err(io::Error::other)?;
            {
                let mut table = txn.open_table(LOG).map_err(io::Error::other)?;
                for entry in entries {
                    let bytes = encode(&entry)?;
                    table
                        .insert(entry.index(), bytes.as_slice())
                        .map_err(io::Error::other)?;
                }
            }
            // Entries are written in the transaction but not yet committed (nor fsynced).
            failpoint!("log_store::append::before_commit");
            // Immediate durability is redb's default: commit returns after fsync.
            txn.commit().map_err(io::Error::other)
        })();
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let start = last_log_id.map_or(0, |id| id.index() + 1);
        self.remove((Bound::Included(start), Bound::Unbounded), None)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        self.remove(
            (Bound::Unbounded, Bound::Included(log_id.index())),
            Some(&log_id),
        )
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
