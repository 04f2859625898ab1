//! Coalescing an agent's reports: what arrived while the previous one was being committed is
//! merged into one report, so a burst of changes from one agent costs one raft write.
//!
//! Pure: the merge of a snapshot and updates, in arrival order, equals applying them one by one.

use std::collections::BTreeMap;

use crate::state::{Command, DiscoveredBackend};

/// Reports from one agent not yet committed, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pending {
    /// Backends to upsert, by proposed id (a later report of the same backend wins).
    upserted: BTreeMap<String, DiscoveredBackend>,
    /// Proposed ids reported gone, unless reported again since.
    removed: Vec<String>,
    /// Whether a snapshot is among the merged reports (then `upserted` is everything).
    full: bool,
}

impl Pending {
    /// Starts over from a snapshot: what came before it no longer matters.
    pub fn snapshot(&mut self, backends: Vec<DiscoveredBackend>) {
        *self = Self {
            upserted: backends.into_iter().map(|b| (b.id.clone(), b)).collect(),
            removed: Vec::new(),
            full: true,
        };
    }

    /// Adds an update on top of what is pending.
    pub fn update(&mut self, upserted: Vec<DiscoveredBackend>, removed: Vec<String>) {
        for id in removed {
            self.upserted.remove(&id);
            // After a snapshot, absence from `upserted` already removes it.
            if !self.full && !self.removed.contains(&id) {
                self.removed.push(id);
            }
        }
        for backend in upserted {
            self.removed.retain(|id| id != &backend.id);
            self.upserted.insert(backend.id.clone(), backend);
        }
    }

    /// The command committing everything pending for `node` at `at_ms`.
    pub fn command(self, node: &str, at_ms: u64) -> Command {
        Command::ReportBackends {
            node: node.to_string(),
            upserted: self.upserted.into_values().collect(),
            removed: self.removed,
            full: self.full,
            at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ClusterState, Endpoint};

    fn backend(id: &str, model: &str) -> DiscoveredBackend {
        DiscoveredBackend {
            id: id.into(),
            kind: "ollama".into(),
            base_url: format!("http://{id}:11434/v1"),
            models: vec![model.into()],
            facts: None,
        }
    }

    enum Report {
        Snapshot(Vec<DiscoveredBackend>),
        Update(Vec<DiscoveredBackend>, Vec<String>),
    }

    fn endpoints(state: &ClusterState) -> Vec<Endpoint> {
        state.endpoints.values().cloned().collect()
    }

    /// Applies `reports` one command each, and merged into one, and compares the endpoints.
    fn same_as_one_by_one(start: &[Report], reports: Vec<Report>) {
        let mut base = ClusterState::default();
        for r in start {
            let cmd = match r {
                Report::Snapshot(b) => {
                    let mut p = Pending::default();
                    p.snapshot(b.clone());
                    p.command("n", 1)
                }
                Report::Update(u, rm) => {
                    let mut p = Pending::default();
                    p.update(u.clone(), rm.clone());
                    p.command("n", 1)
                }
            };
            base.apply(cmd);
        }
        let mut one_by_one = base.clone();
        let mut merged = Pending::default();
        for r in reports {
            let mut single = Pending::default();
            match r {
                Report::Snapshot(b) => {
                    single.snapshot(b.clone());
                    merged.snapshot(b);
                }
                Report::Update(u, rm) => {
                    single.update(u.clone(), rm.clone());
                    merged.update(u, rm);
                }
            }
            one_by_one.apply(single.command("n", 1));
        }
        let mut at_once = base;
        at_once.apply(merged.command("n", 1));
        assert_eq!(endpoints(&at_once), endpoints(&one_by_one));
    }

    #[test]
    fn a_merged_burst_changes_what_the_reports_one_by_one_change() {
        let start = [Report::Snapshot(vec![
            backend("a", "m1"),
            backend("b", "m1"),
        ])];
        // An update that changes one backend and removes another.
        same_as_one_by_one(
            &start,
            vec![
                Report::Update(vec![backend("a", "m2")], vec![]),
                Report::Update(vec![], vec!["b".into()]),
            ],
        );
        // A backend removed and then back.
        same_as_one_by_one(
            &start,
            vec![
                Report::Update(vec![], vec!["a".into()]),
                Report::Update(vec![backend("a", "m3")], vec![]),
            ],
        );
        // A snapshot in the middle of updates.
        same_as_one_by_one(
            &start,
            vec![
                Report::Update(vec![backend("c", "m1")], vec![]),
                Report::Snapshot(vec![backend("b", "m9")]),
                Report::Update(vec![backend("d", "m1")], vec!["b".into()]),
            ],
        );
    }

    #[test]
    fn reports_that_repeat_the_state_change_nothing() {
        let mut state = ClusterState::default();
        let snapshot = vec![backend("a", "m1"), backend("b", "m2")];
        let mut p = Pending::default();
        p.snapshot(snapshot.clone());
        state.apply(p.command("n", 1));
        assert!(!state.report_changes("n", &snapshot, &[], true));
        assert!(!state.report_changes("n", &snapshot[..1], &[], false));
        assert!(!state.report_changes("n", &[], &["zz".into()], false));
        assert!(state.report_changes("n", &[backend("a", "m3")], &[], false));
        assert!(state.report_changes("n", &snapshot[..1], &[], true));
        assert!(state.report_changes("n", &[], &["b".into()], false));
        assert!(state.report_changes("n", &[backend("c", "m1")], &[], false));
        // Another node reporting the same backends owns none of them yet.
        assert!(state.report_changes("other", &snapshot, &[], true));
    }
}
