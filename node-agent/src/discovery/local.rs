//! Scans of the configured targets and the pure tracker that turns scans into what to report.
//!
//! A scan probes every target concurrently and yields the [`Backend`]s that answered. The
//! [`Tracker`] keeps what has been reported: new or changed backends are upserted at once, while
//! a backend must be missing from `fail_threshold` consecutive scans before it is reported removed,
//! so one slow answer does not flap the routing table.

use std::collections::{BTreeMap, HashMap};

use futures::future::join_all;
use switchyard_proto::v1::Backend;

use crate::config::{Config, Naming};
use crate::error::Error;
use crate::probe::{self, ProbeTarget};

/// Probes a fixed set of targets, each under the backend id it will be reported as.
#[derive(Debug, Clone)]
pub struct Scanner {
    client: reqwest::Client,
    targets: Vec<(String, ProbeTarget)>,
}

impl Scanner {
    /// A scanner for `cfg.targets`, with ids from `cfg.naming` and probes limited to `cfg.probe_timeout_ms`.
    pub fn new(cfg: &Config) -> Result<Self, Error> {
        let client = probe::http_client(cfg.probe_timeout())?;
        let ids = backend_ids(&cfg.targets, cfg.naming, &cfg.node_name);
        Ok(Self {
            client,
            targets: ids.into_iter().zip(cfg.targets.iter().cloned()).collect(),
        })
    }

    /// Probes every target concurrently; returns the backends that answered, sorted by id.
    pub async fn scan(&self) -> Vec<Backend> {
        let probes = self.targets.iter().map(|(id, target)| async move {
            match probe::probe(&self.client, target).await {
                Ok(models) => Some(Backend {
                    id: id.clone(),
                    kind: target.kind.as_str().to_owned(),
                    base_url: target.base_url(),
                    models,
                    facts: None,
                }),
                Err(error) => {
                    // Most targets are simply not running; that is normal, so keep it quiet.
                    tracing::debug!(backend = %id, error = %error, "probe found no backend");
                    None
                }
            }
        });
        let mut found: Vec<Backend> = join_all(probes).await.into_iter().flatten().collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }
}

/// Backend ids for `targets`, in the same order, all distinct.
///
/// The id is the kind name ([`Naming::Bare`]) or `<kind>-<node_name>` ([`Naming::NodeSuffix`]).
/// When a kind appears more than once, targets off the kind's default port get `-<port>`; if ids
/// still collide (same kind and port on several hosts), the host is appended as well.
pub fn backend_ids(targets: &[ProbeTarget], naming: Naming, node_name: &str) -> Vec<String> {
    let mut per_kind: HashMap<_, usize> = HashMap::new();
    for t in targets {
        *per_kind.entry(t.kind).or_default() += 1;
    }
    let mut ids: Vec<String> = targets
        .iter()
        .map(|t| {
            let mut id = match naming {
                Naming::Bare => t.kind.as_str().to_owned(),
                Naming::NodeSuffix => format!("{}-{node_name}", t.kind),
            };
            if per_kind.get(&t.kind).copied().unwrap_or(0) > 1 && t.port != t.kind.default_port() {
                id = format!("{id}-{}", t.port);
            }
            id
        })
        .collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        *count.entry(id.clone()).or_default() += 1;
    }
    for (id, t) in ids.iter_mut().zip(targets) {
        if count.get(id.as_str()).copied().unwrap_or(0) > 1 {
            let host: String = t
                .host
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            *id = format!("{id}-{host}");
        }
    }
    ids
}

/// What to tell the control plane after a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Backends that are new, or whose kind, URL or model list changed.
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

/// The set of reported backends, updated scan by scan. Pure: no IO, no clock.
#[derive(Debug, Clone)]
pub struct Tracker {
    fail_threshold: u32,
    reported: BTreeMap<String, Reported>,
}

#[derive(Debug, Clone)]
struct Reported {
    backend: Backend,
    /// Consecutive scans this backend was missing from.
    misses: u32,
}

impl Tracker {
    /// An empty tracker that reports a backend removed after `fail_threshold` consecutive misses
    /// (at least 1).
    pub fn new(fail_threshold: u32) -> Self {
        Self {
            fail_threshold: fail_threshold.max(1),
            reported: BTreeMap::new(),
        }
    }

    /// Takes one scan's result and returns what to report.
    pub fn observe(&mut self, scan: Vec<Backend>) -> Changes {
        let mut changes = Changes::default();
        let mut seen: BTreeMap<String, Backend> =
            scan.into_iter().map(|b| (b.id.clone(), b)).collect();
        let mut gone = Vec::new();
        for (id, entry) in &mut self.reported {
            match seen.remove(id) {
                Some(backend) => {
                    entry.misses = 0;
                    if entry.backend != backend {
                        changes.upserted.push(backend.clone());
                        entry.backend = backend;
                    }
                }
                None => {
                    entry.misses += 1;
                    if entry.misses >= self.fail_threshold {
                        gone.push(id.clone());
                    }
                }
            }
        }
        for id in gone {
            self.reported.remove(&id);
            changes.removed.push(id);
        }
        for (id, backend) in seen {
            changes.upserted.push(backend.clone());
            self.reported.insert(id, Reported { backend, misses: 0 });
        }
        changes.upserted.sort_by(|a, b| a.id.cmp(&b.id));
        changes
    }

    /// Every backend currently reported (including ones within their grace of missed scans), by id.
    pub fn snapshot(&self) -> Vec<Backend> {
        self.reported.values().map(|r| r.backend.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ServerKind;

    fn backend(id: &str, models: &[&str]) -> Backend {
        Backend {
            id: id.to_owned(),
            kind: "ollama".to_owned(),
            base_url: format!("http://{id}:11434/v1"),
            models: models.iter().map(|m| m.to_string()).collect(),
            facts: None,
        }
    }

    fn ids(bs: &[Backend]) -> Vec<&str> {
        bs.iter().map(|b| b.id.as_str()).collect()
    }

    /// (scan result, expected upserted ids, expected removed ids, expected snapshot ids)
    type Step<'a> = (Vec<Backend>, &'a [&'a str], &'a [&'a str], &'a [&'a str]);

    fn run_steps(fail_threshold: u32, steps: Vec<Step<'_>>) {
        let mut tracker = Tracker::new(fail_threshold);
        for (i, (scan, up, rm, snap)) in steps.into_iter().enumerate() {
            let changes = tracker.observe(scan);
            assert_eq!(ids(&changes.upserted), up, "step {i} upserted");
            assert_eq!(changes.removed, rm.to_vec(), "step {i} removed");
            assert_eq!(ids(&tracker.snapshot()), snap, "step {i} snapshot");
        }
    }

    #[test]
    fn new_backends_are_upserted_once() {
        run_steps(
            2,
            vec![
                (vec![backend("a", &["m1"])], &["a"], &[], &["a"]),
                (vec![backend("a", &["m1"])], &[], &[], &["a"]),
                (
                    vec![backend("a", &["m1"]), backend("b", &["m2"])],
                    &["b"],
                    &[],
                    &["a", "b"],
                ),
            ],
        );
    }

    #[test]
    fn model_list_change_is_upserted() {
        let mut tracker = Tracker::new(2);
        tracker.observe(vec![backend("a", &["m1"])]);
        let changes = tracker.observe(vec![backend("a", &["m1", "m2"])]);
        assert_eq!(changes.upserted, vec![backend("a", &["m1", "m2"])]);
        assert!(changes.removed.is_empty());
        assert_eq!(tracker.snapshot(), vec![backend("a", &["m1", "m2"])]);
    }

    #[test]
    fn removal_only_after_fail_threshold_misses() {
        run_steps(
            3,
            vec![
                (vec![backend("a", &["m"])], &["a"], &[], &["a"]),
                (vec![], &[], &[], &["a"]),
                (vec![], &[], &[], &["a"]),
                (vec![], &[], &["a"], &[]),
                (vec![], &[], &[], &[]),
            ],
        );
    }

    #[test]
    fn a_hit_resets_the_miss_count() {
        run_steps(
            2,
            vec![
                (vec![backend("a", &["m"])], &["a"], &[], &["a"]),
                (vec![], &[], &[], &["a"]),
                (vec![backend("a", &["m"])], &[], &[], &["a"]),
                (vec![], &[], &[], &["a"]),
                (vec![], &[], &["a"], &[]),
            ],
        );
    }

    #[test]
    fn reappearance_after_removal_is_upserted() {
        run_steps(
            1,
            vec![
                (vec![backend("a", &["m"])], &["a"], &[], &["a"]),
                (vec![], &[], &["a"], &[]),
                (vec![backend("a", &["m"])], &["a"], &[], &["a"]),
            ],
        );
    }

    #[test]
    fn diff_of_snapshots() {
        let before = vec![backend("a", &["m"]), backend("b", &["m"])];
        let after = vec![backend("b", &["m", "n"]), backend("c", &["m"])];
        let changes = diff(&before, &after);
        assert_eq!(ids(&changes.upserted), ["b", "c"]);
        assert_eq!(changes.removed, ["a"]);
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn ids_follow_naming_and_stay_unique() {
        let t = |kind, host: &str, port| ProbeTarget::new(kind, host, port);
        use ServerKind::*;
        let cases: Vec<(Naming, Vec<ProbeTarget>, Vec<&str>)> = vec![
            (
                Naming::Bare,
                ProbeTarget::local_defaults(),
                vec!["ollama", "lmstudio", "vllm", "litellm"],
            ),
            (
                Naming::NodeSuffix,
                vec![t(Ollama, "127.0.0.1", 11434), t(Vllm, "127.0.0.1", 8000)],
                vec!["ollama-gpu01", "vllm-gpu01"],
            ),
            (
                Naming::Bare,
                vec![t(Ollama, "127.0.0.1", 11434), t(Ollama, "127.0.0.1", 11435)],
                vec!["ollama", "ollama-11435"],
            ),
            (
                Naming::NodeSuffix,
                vec![t(Vllm, "127.0.0.1", 8001), t(Vllm, "127.0.0.1", 8002)],
                vec!["vllm-gpu01-8001", "vllm-gpu01-8002"],
            ),
            (
                Naming::Bare,
                vec![t(Vllm, "10.0.0.1", 8000), t(Vllm, "10.0.0.2", 8000)],
                vec!["vllm-10-0-0-1", "vllm-10-0-0-2"],
            ),
            (
                Naming::Bare,
                vec![t(Ollama, "127.0.0.1", 5555)],
                vec!["ollama"],
            ),
        ];
        for (naming, targets, want) in cases {
            assert_eq!(backend_ids(&targets, naming, "gpu01"), want, "{targets:?}");
        }
    }
}
