//! Node liveness: heartbeats and GPUs live in the leader's memory; only the up → down
//! transition of a node that stayed silent too long is committed.
//!
//! A new leader starts with no heartbeats at all, so it waits a grace period after taking over
//! before it marks anyone down; agents reconnect to it well within that time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::raft::Consensus;
use crate::service::agent::now_ms;
use crate::state::{Command, Node, NodeStatus};

/// A GPU as an agent last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuView {
    /// Index on its host.
    pub index: u32,
    /// Model name.
    pub name: String,
    /// Total memory in MiB.
    pub memory_total_mib: u64,
    /// Used memory in MiB.
    pub memory_used_mib: u64,
    /// Utilisation in percent; negative when unknown.
    pub utilization_pct: i32,
}

#[derive(Debug, Clone, Default)]
struct Seen {
    at_ms: u64,
    gpus: Vec<GpuView>,
}

/// When to commit a silent node as down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownPolicy {
    /// Silence (ms) after which a node is down.
    pub down_after_ms: u64,
    /// Time (ms) after becoming leader before any node may be marked down.
    pub leader_grace_ms: u64,
}

/// The leader's memory of heartbeats. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl Liveness {
    /// Records a sign of life from `node` at `at_ms`, with its GPUs when reported.
    pub fn beat(&self, node: &str, at_ms: u64, gpus: Option<Vec<GpuView>>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(node.to_string()).or_default();
        entry.at_ms = entry.at_ms.max(at_ms);
        if let Some(gpus) = gpus {
            entry.gpus = gpus;
        }
    }

    /// When each node was last heard from (ms since the epoch).
    pub fn last_seen(&self) -> BTreeMap<String, u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().map(|(k, v)| (k.clone(), v.at_ms)).collect()
    }

    /// The GPUs `node` last reported.
    pub fn gpus(&self, node: &str) -> Vec<GpuView> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(node).map(|s| s.gpus.clone()).unwrap_or_default()
    }

    /// Forgets everything (on losing leadership, so a later term starts fresh).
    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The up nodes to commit as down at `now_ms`. Pure.
///
/// A node is overdue when it has been silent for `down_after_ms` (counting from when this
/// voter became leader if it has not heard from it since), and never within `leader_grace_ms`
/// of the leader change.
pub fn overdue(
    nodes: &BTreeMap<String, Node>,
    last_seen: &BTreeMap<String, u64>,
    now_ms: u64,
    leader_since_ms: u64,
    policy: DownPolicy,
) -> Vec<String> {
    if now_ms < leader_since_ms.saturating_add(policy.leader_grace_ms) {
        return Vec::new();
    }
    nodes
        .values()
        .filter(|n| n.status == NodeStatus::Up)
        .filter(|n| {
            let last = last_seen
                .get(&n.name)
                .copied()
                .unwrap_or(0)
                .max(leader_since_ms);
            now_ms.saturating_sub(last) >= policy.down_after_ms
        })
        .map(|n| n.name.clone())
        .collect()
}

/// Runs on every voter; while it is the leader, commits silent nodes as down.
pub async fn watch_nodes(
    consensus: Consensus,
    liveness: Liveness,
    policy: DownPolicy,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leadership = consensus.watch_leadership();
    let tick = Duration::from_millis((policy.down_after_ms / 4).clamp(50, 1_000));
    let mut leader_since = None;
    loop {
        let is_leader = *leadership.borrow_and_update();
        match (is_leader, leader_since) {
            (true, None) => leader_since = Some(now_ms()),
            (false, Some(_)) => {
                leader_since = None;
                liveness.clear();
            }
            _ => {}
        }
        if let Some(since) = leader_since {
            let now = now_ms();
            let seen = liveness.last_seen();
            // Read in place: this runs every tick, and the state may hold thousands of endpoints.
            let due = consensus
                .with_state(|s| overdue(&s.nodes, &seen, now, since, policy))
                .await;
            for name in due {
                tracing::warn!(node = %name, silent_ms = policy.down_after_ms, "node missed its heartbeats; marking it down");
                if let Err(e) = consensus
                    .write_local(Command::NodeDown {
                        name: name.clone(),
                        at_ms: now,
                    })
                    .await
                {
                    tracing::warn!(node = %name, error = %e, "could not mark the node down");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            changed = leadership.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, status: NodeStatus) -> (String, Node) {
        (
            name.to_string(),
            Node {
                name: name.into(),
                version: "1".into(),
                addresses: vec![],
                status,
                since_ms: 0,
            },
        )
    }

    #[test]
    fn silent_nodes_go_down_after_the_grace_period() {
        let policy = DownPolicy {
            down_after_ms: 1_000,
            leader_grace_ms: 3_000,
        };
        let nodes: BTreeMap<String, Node> = [
            node("a", NodeStatus::Up),
            node("b", NodeStatus::Up),
            node("c", NodeStatus::Down),
        ]
        .into();
        // (last seen, now, leader since, expected)
        type Case = (Vec<(&'static str, u64)>, u64, u64, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            // Within the grace period after a leader change nobody goes down.
            (vec![], 12_000, 10_000, vec![]),
            // After it, nodes never heard from by this leader go down.
            (vec![], 13_000, 10_000, vec!["a", "b"]),
            // A node heard from recently stays up.
            (vec![("a", 12_500)], 13_000, 10_000, vec!["b"]),
            // Exactly down_after of silence is down.
            (
                vec![("a", 12_000), ("b", 12_001)],
                13_000,
                10_000,
                vec!["a"],
            ),
            // Already-down nodes are not reported again.
            (vec![("a", 20_000), ("b", 20_000)], 20_500, 0, vec![]),
        ];
        for (i, (seen, now, since, want)) in cases.into_iter().enumerate() {
            let seen: BTreeMap<String, u64> =
                seen.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(overdue(&nodes, &seen, now, since, policy), want, "case {i}");
        }
    }

    #[test]
    fn beats_keep_the_latest_time_and_gpus() {
        let l = Liveness::default();
        let gpu = GpuView {
            index: 0,
            name: "A100".into(),
            memory_total_mib: 80_000,
            memory_used_mib: 1,
            utilization_pct: -1,
        };
        l.beat("a", 10, Some(vec![gpu.clone()]));
        l.beat("a", 5, None);
        assert_eq!(l.last_seen()["a"], 10);
        assert_eq!(l.gpus("a"), vec![gpu]);
        l.clear();
        assert!(l.last_seen().is_empty());
    }
}
