//! The recent routing-table deltas a voter keeps, so an edge that is a few versions behind
//! (a slow stream, a reconnect after a blip or a failover) catches up with the deltas it missed
//! instead of the whole table.
//!
//! Every stream feeds the ring the newest table it sees; the first to see a version diffs it
//! against the previous one, once for all edges. The ring is bounded in deltas and in bytes; an
//! edge whose version fell out of it (or never was in it) gets the full table.

use std::collections::VecDeque;
use std::sync::Arc;

use prost::Message;
use switchyard_proto::delta;
use switchyard_proto::v1::{RoutingTable, TableDelta};

/// Deltas kept by default: at 10 changes per second, about half a minute of history.
pub const DEFAULT_DELTAS: usize = 256;
/// Encoded bytes of deltas kept by default.
pub const DEFAULT_BYTES: usize = 8 * 1024 * 1024;

/// Recent deltas, oldest first, ending at the newest table seen.
#[derive(Debug)]
pub struct DeltaRing {
    latest: Option<Arc<RoutingTable>>,
    deltas: VecDeque<Arc<RoutingTable>>,
    bytes: usize,
    max_deltas: usize,
    max_bytes: usize,
}

impl Default for DeltaRing {
    fn default() -> Self {
        Self::new(DEFAULT_DELTAS, DEFAULT_BYTES)
    }
}

impl DeltaRing {
    /// A ring keeping at most `max_deltas` deltas of at most `max_bytes` encoded bytes together.
    pub fn new(max_deltas: usize, max_bytes: usize) -> Self {
        Self {
            latest: None,
            deltas: VecDeque::new(),
            bytes: 0,
            max_deltas,
            max_bytes,
        }
    }

    /// Records `table` as the newest, with the delta from the previous newest. Older or equal
    /// versions of the same cluster change nothing; another cluster's table starts over.
    pub fn advance(&mut self, table: &Arc<RoutingTable>) {
        if let Some(latest) = &self.latest {
            if latest.cluster_id == table.cluster_id && latest.version >= table.version {
                return;
            }
            match delta::diff(latest, table) {
                Some(message) => {
                    self.bytes += message.encoded_len();
                    self.deltas.push_back(Arc::new(message));
                    while self.deltas.len() > self.max_deltas || self.bytes > self.max_bytes {
                        let Some(old) = self.deltas.pop_front() else {
                            break;
                        };
                        self.bytes -= old.encoded_len();
                    }
                }
                None => {
                    self.deltas.clear();
                    self.bytes = 0;
                }
            }
        }
        self.latest = Some(Arc::clone(table));
    }

    /// What an edge holding version `held` of cluster `cluster_id` (`None`: nothing usable)
    /// needs to reach the newest table: the deltas after `held` (none when it is current, or
    /// ahead of this voter in the same cluster), or the full table when `held` is outside the
    /// ring. Also returns the version the edge then holds.
    pub fn catch_up(&self, held: Option<u64>, cluster_id: &str) -> (Vec<Arc<RoutingTable>>, u64) {
        let Some(latest) = &self.latest else {
            return (Vec::new(), 0);
        };
        match held {
            Some(v) if v == latest.version => (Vec::new(), v),
            // This voter lags the one the edge followed: wait for it rather than go back.
            Some(v) if v > latest.version && cluster_id == latest.cluster_id => (Vec::new(), v),
            Some(v) => match self.deltas.iter().position(|d| base_of(d) == Some(v)) {
                Some(i) => (
                    self.deltas.iter().skip(i).cloned().collect(),
                    latest.version,
                ),
                None => (vec![Arc::clone(latest)], latest.version),
            },
            None => (vec![Arc::clone(latest)], latest.version),
        }
    }

    /// A delta changing nothing at `version` when that is the newest: tells an edge that is
    /// current that the stream works.
    pub fn current(&self, version: u64) -> Option<RoutingTable> {
        self.latest
            .as_ref()
            .filter(|t| t.version == version)
            .map(|t| RoutingTable {
                version: t.version,
                cluster_id: t.cluster_id.clone(),
                delta: Some(TableDelta {
                    base_version: t.version,
                    ..Default::default()
                }),
                ..Default::default()
            })
    }

    /// How many deltas the ring holds.
    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    /// Whether the ring holds no delta.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }
}

fn base_of(message: &RoutingTable) -> Option<u64> {
    message.delta.as_ref().map(|d| d.base_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1::ClientKey;

    fn table(version: u64, keys: usize) -> Arc<RoutingTable> {
        Arc::new(RoutingTable {
            version,
            cluster_id: "c".into(),
            keys: (0..keys)
                .map(|i| ClientKey {
                    id: format!("k{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn versions(sent: &[Arc<RoutingTable>]) -> Vec<(Option<u64>, u64)> {
        sent.iter().map(|m| (base_of(m), m.version)).collect()
    }

    #[test]
    fn edges_behind_get_the_deltas_they_missed_or_the_full_table() {
        let mut ring = DeltaRing::new(3, usize::MAX);
        for v in 1..=5 {
            ring.advance(&table(v, usize::try_from(v).unwrap_or(0)));
        }
        // An older version seen late changes nothing.
        ring.advance(&table(2, 2));
        assert_eq!(ring.len(), 3);
        // (held, what is sent as (base, version), version then held)
        type Case = (Option<u64>, Vec<(Option<u64>, u64)>, u64);
        let cases: Vec<Case> = vec![
            (Some(5), vec![], 5),
            (Some(4), vec![(Some(4), 5)], 5),
            (Some(2), vec![(Some(2), 3), (Some(3), 4), (Some(4), 5)], 5),
            // Outside the ring: the whole table.
            (Some(1), vec![(None, 5)], 5),
            (Some(9), vec![(None, 5)], 5),
            (None, vec![(None, 5)], 5),
        ];
        for (held, want, at) in cases {
            let (sent, version) = ring.catch_up(held, "");
            assert_eq!((versions(&sent), version), (want, at), "held {held:?}");
        }
    }

    #[test]
    fn the_byte_bound_and_a_new_cluster_empty_the_ring() {
        let mut ring = DeltaRing::new(100, 64);
        ring.advance(&table(1, 0));
        ring.advance(&table(2, 40));
        assert!(ring.is_empty(), "a delta over the byte bound is not kept");
        ring.advance(&table(3, 41));
        assert_eq!(ring.len(), 1);
        let mut other = RoutingTable::clone(&table(1, 0));
        other.cluster_id = "other".into();
        ring.advance(&Arc::new(other));
        assert!(ring.is_empty());
        assert_eq!(versions(&ring.catch_up(Some(3), "c").0), vec![(None, 1)]);
        // An edge ahead of this voter in the same cluster waits; from another cluster, resyncs.
        assert_eq!(versions(&ring.catch_up(Some(7), "other").0), vec![]);
        assert_eq!(ring.catch_up(Some(7), "other").1, 7);
        assert_eq!(versions(&ring.catch_up(Some(7), "c").0), vec![(None, 1)]);
    }
}
