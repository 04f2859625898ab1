//! The pure tracker that turns successive scans into what to report: found, healthy, unhealthy,
//! removed. No IO and no clock: each scan arrives with its time.
//!
//! - A backend seen for the first time is reported at once, healthy (it just answered with models).
//! - Missing from `fail` consecutive scans, it is reported unhealthy (`facts.healthy = false`), so
//!   routing can skip it while it may come back.
//! - Seen in `success` consecutive scans while unhealthy, it is reported healthy again.
//! - Unanswered for `remove_after_ms` since it was last seen, it is reported removed.
//! - Any other change (models, URL, facts) is reported as an upsert when it happens.

use std::collections::BTreeMap;

use switchyard_proto::v1::Backend;

use crate::probe::facts::unknown_facts;

/// When a backend turns unhealthy, healthy again, or is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive missed scans before unhealthy (at least 1).
    pub fail: u32,
    /// Consecutive answered scans before an unhealthy backend is healthy again (at least 1).
    pub success: u32,
    /// Milliseconds since last seen before removal.
    pub remove_after_ms: u64,
}

/// What to tell the control plane after a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Backends that are new, or whose kind, URL, models or facts (health included) changed.
    pub upserted: Vec<Backend>,
    /// Ids of backends that are gone.
    pub removed: Vec<String>,
}

impl Changes {
    /// True when there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.removed.is_empty()
    }
}

/// What changed from `before` to `after` (both sets of backends keyed by id).
pub fn diff(before: &[Backend], after: &[Backend]) -> Changes {
    let before: BTreeMap<&str, &Backend> = before.iter().map(|b| (b.id.as_str(), b)).collect();
    let after_ids: BTreeMap<&str, &Backend> = after.iter().map(|b| (b.id.as_str(), b)).collect();
    Changes {
        upserted: after_ids
            .values()
            .filter(|b| before.get(b.id.as_str()) != Some(*b))
            .map(|b| (*b).clone())
            .collect(),
        removed: before
            .keys()
            .filter(|id| !after_ids.contains_key(*id))
            .map(|id| (*id).to_owned())
            .collect(),
    }
}

/// The set of reported backends, updated scan by scan.
#[derive(Debug, Clone)]
pub struct Tracker {
    thresholds: Thresholds,
    tracked: BTreeMap<String, Tracked>,
}

#[derive(Debug, Clone)]
struct Tracked {
    /// As reported, `facts.healthy` included.
    backend: Backend,
    healthy: bool,
    /// Consecutive scans missed (reset by an answer).
    misses: u32,
    /// Consecutive scans answered (reset by a miss).
    hits: u32,
    last_seen_ms: u64,
}

fn with_health(mut backend: Backend, healthy: bool) -> Backend {
    backend.facts.get_or_insert_with(unknown_facts).healthy = healthy;
    backend
}

impl Tracker {
    /// An empty tracker; thresholds of 0 count as 1.
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds: Thresholds {
                fail: thresholds.fail.max(1),
                success: thresholds.success.max(1),
                remove_after_ms: thresholds.remove_after_ms,
            },
            tracked: BTreeMap::new(),
        }
    }

    /// Takes one scan's result, made at `now_ms`, and returns what to report.
    pub fn observe(&mut self, scan: Vec<Backend>, now_ms: u64) -> Changes {
        let th = self.thresholds;
        let mut changes = Changes::default();
        let mut seen: BTreeMap<String, Backend> =
            scan.into_iter().map(|b| (b.id.clone(), b)).collect();
        let mut gone = Vec::new();
        for (id, entry) in &mut self.tracked {
            let before = entry.backend.clone();
            match seen.remove(id) {
                Some(backend) => {
                    entry.misses = 0;
                    entry.hits = entry.hits.saturating_add(1);
                    entry.last_seen_ms = now_ms;
                    if !entry.healthy && entry.hits >= th.success {
                        entry.healthy = true;
                    }
                    entry.backend = with_health(backend, entry.healthy);
                }
                None => {
                    entry.hits = 0;
                    entry.misses = entry.misses.saturating_add(1);
                    if now_ms.saturating_sub(entry.last_seen_ms) >= th.remove_after_ms
                        && entry.misses >= th.fail
                    {
                        gone.push(id.clone());
                        continue;
                    }
                    if entry.healthy && entry.misses >= th.fail {
                        entry.healthy = false;
                        entry.backend = with_health(entry.backend.clone(), false);
                    }
                }
            }
            if entry.backend != before {
                changes.upserted.push(entry.backend.clone());
            }
        }
        for id in gone {
            self.tracked.remove(&id);
            changes.removed.push(id);
        }
        for (id, backend) in seen {
            let backend = with_health(backend, true);
            changes.upserted.push(backend.clone());
            self.tracked.insert(
                id,
                Tracked {
                    backend,
                    healthy: true,
                    misses: 0,
                    hits: 1,
                    last_seen_ms: now_ms,
                },
            );
        }
        changes.upserted.sort_by(|a, b| a.id.cmp(&b.id));
        changes
    }

    /// Every backend currently reported (unhealthy ones included), by id.
    pub fn snapshot(&self) -> Vec<Backend> {
        self.tracked.values().map(|t| t.backend.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: &str, models: &[&str]) -> Backend {
        Backend {
            id: id.to_owned(),
            kind: "ollama".to_owned(),
            base_url: format!("http://{id}:11434/v1"),
            models: models.iter().map(|m| m.to_string()).collect(),
            facts: None,
            api_key: String::new(),
        }
    }

    fn health(bs: &[Backend]) -> Vec<(&str, bool)> {
        bs.iter()
            .map(|b| (b.id.as_str(), b.facts.as_ref().is_some_and(|f| f.healthy)))
            .collect()
    }

    /// One scan: (time, backends answering) → (upserted with health, removed, snapshot with health).
    struct Step<'a> {
        at: u64,
        scan: Vec<Backend>,
        upserted: &'a [(&'a str, bool)],
        removed: &'a [&'a str],
        snapshot: &'a [(&'a str, bool)],
    }

    fn step<'a>(
        at: u64,
        scan: Vec<Backend>,
        upserted: &'a [(&'a str, bool)],
        removed: &'a [&'a str],
        snapshot: &'a [(&'a str, bool)],
    ) -> Step<'a> {
        Step {
            at,
            scan,
            upserted,
            removed,
            snapshot,
        }
    }

    fn run_steps(th: Thresholds, steps: Vec<Step<'_>>) {
        let mut tracker = Tracker::new(th);
        for (i, s) in steps.into_iter().enumerate() {
            let changes = tracker.observe(s.scan, s.at);
            assert_eq!(health(&changes.upserted), s.upserted, "step {i} upserted");
            assert_eq!(changes.removed, s.removed.to_vec(), "step {i} removed");
            assert_eq!(health(&tracker.snapshot()), s.snapshot, "step {i} snapshot");
        }
    }

    const TH: Thresholds = Thresholds {
        fail: 2,
        success: 2,
        remove_after_ms: 1000,
    };

    #[test]
    fn new_backends_are_upserted_once_and_healthy() {
        let a = || backend("a", &["m1"]);
        run_steps(
            TH,
            vec![
                step(0, vec![a()], &[("a", true)], &[], &[("a", true)]),
                step(100, vec![a()], &[], &[], &[("a", true)]),
                step(
                    200,
                    vec![a(), backend("b", &["m2"])],
                    &[("b", true)],
                    &[],
                    &[("a", true), ("b", true)],
                ),
            ],
        );
    }

    #[test]
    fn misses_make_unhealthy_then_removed_after_the_grace() {
        let a = || backend("a", &["m"]);
        run_steps(
            TH,
            vec![
                step(0, vec![a()], &[("a", true)], &[], &[("a", true)]),
                step(100, vec![], &[], &[], &[("a", true)]),
                step(200, vec![], &[("a", false)], &[], &[("a", false)]),
                step(900, vec![], &[], &[], &[("a", false)]),
                step(1000, vec![], &[], &["a"], &[]),
                step(1100, vec![], &[], &[], &[]),
                // Back after removal: new again, healthy at once.
                step(1200, vec![a()], &[("a", true)], &[], &[("a", true)]),
            ],
        );
    }

    #[test]
    fn recovery_needs_the_success_threshold() {
        let a = || backend("a", &["m"]);
        run_steps(
            TH,
            vec![
                step(0, vec![a()], &[("a", true)], &[], &[("a", true)]),
                step(100, vec![], &[], &[], &[("a", true)]),
                step(200, vec![], &[("a", false)], &[], &[("a", false)]),
                step(300, vec![a()], &[], &[], &[("a", false)]),
                // A miss in between restarts the count.
                step(400, vec![], &[], &[], &[("a", false)]),
                step(500, vec![a()], &[], &[], &[("a", false)]),
                step(600, vec![a()], &[("a", true)], &[], &[("a", true)]),
            ],
        );
    }

    #[test]
    fn a_hit_resets_the_miss_count_and_the_grace() {
        let a = || backend("a", &["m"]);
        run_steps(
            Thresholds {
                fail: 3,
                success: 1,
                remove_after_ms: 250,
            },
            vec![
                step(0, vec![a()], &[("a", true)], &[], &[("a", true)]),
                step(100, vec![], &[], &[], &[("a", true)]),
                step(200, vec![], &[], &[], &[("a", true)]),
                step(300, vec![a()], &[], &[], &[("a", true)]),
                step(400, vec![], &[], &[], &[("a", true)]),
                step(500, vec![], &[], &[], &[("a", true)]),
                // Grace passed (300 → 600) but only now the third miss: straight to removed.
                step(600, vec![], &[], &["a"], &[]),
            ],
        );
    }

    #[test]
    fn changes_are_upserted_with_current_health() {
        let mut tracker = Tracker::new(TH);
        tracker.observe(vec![backend("a", &["m1"])], 0);
        let changes = tracker.observe(vec![backend("a", &["m1", "m2"])], 100);
        assert_eq!(health(&changes.upserted), [("a", true)]);
        assert_eq!(changes.upserted[0].models, ["m1", "m2"]);
        assert!(changes.removed.is_empty());
        // Facts (here the loaded list) changing is a change too.
        let mut loaded = backend("a", &["m1", "m2"]);
        loaded.facts = Some(switchyard_proto::v1::BackendFacts {
            loaded_models: vec!["m1".to_owned()],
            ..unknown_facts()
        });
        let changes = tracker.observe(vec![loaded], 200);
        assert_eq!(changes.upserted.len(), 1);
        assert_eq!(tracker.observe(vec![], 300), Changes::default());
    }

    #[test]
    fn diff_of_snapshots() {
        let ids = |bs: &[Backend]| bs.iter().map(|b| b.id.clone()).collect::<Vec<_>>();
        let before = vec![backend("a", &["m"]), backend("b", &["m"])];
        let after = vec![backend("b", &["m", "n"]), backend("c", &["m"])];
        let changes = diff(&before, &after);
        assert_eq!(ids(&changes.upserted), ["b", "c"]);
        assert_eq!(changes.removed, ["a"]);
        assert!(diff(&after, &after).is_empty());
    }
}
