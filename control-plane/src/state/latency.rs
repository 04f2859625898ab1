//! Measured latency per deployment, which the `fast` capability alias orders by.
//!
//! Measurements arrive in batches (one `switchyard bench` run, or an edge's periodic summary),
//! never per request. A new measurement replaces the old one only when it moved by more than
//! [`NOISE_PCT`] percent, so repeated benches of a steady server do not bump the table version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ClusterState;

/// Changes smaller than this, in percent of the stored value, are noise and change nothing.
pub const NOISE_PCT: u64 = 10;

/// One deployment's measured latency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Upstream model id.
    pub model: String,
    /// Median time to first byte, ms.
    pub ttfb_ms: u64,
    /// Median total time, ms.
    pub total_ms: u64,
    /// When it was measured, ms since the Unix epoch.
    pub at_ms: u64,
}

impl Latency {
    /// The key in [`Latencies`]: `endpoint/model`.
    pub fn key(&self) -> String {
        Self::key_of(&self.endpoint_id, &self.model)
    }

    /// The key of one deployment.
    pub fn key_of(endpoint_id: &str, model: &str) -> String {
        format!("{endpoint_id}/{model}")
    }
}

/// Measured latency by `endpoint/model`.
pub type Latencies = BTreeMap<String, Latency>;

impl ClusterState {
    /// Stores `measured`; returns whether any stored value moved by more than the noise.
    pub(super) fn report_latency(&mut self, measured: Vec<Latency>) -> Result<bool, String> {
        let mut changed = false;
        for m in measured {
            if m.endpoint_id.is_empty() || m.model.is_empty() {
                return Err("a latency measurement needs an endpoint and a model".into());
            }
            let key = m.key();
            let moved = self.latency.get(&key).is_none_or(|old| {
                differs(old.ttfb_ms, m.ttfb_ms) || differs(old.total_ms, m.total_ms)
            });
            if moved {
                self.latency.insert(key, m);
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// Whether `new` is more than the noise away from `old`.
fn differs(old: u64, new: u64) -> bool {
    old.abs_diff(new).saturating_mul(100) > old.saturating_mul(NOISE_PCT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Outcome};

    fn sample(ttfb_ms: u64) -> Latency {
        Latency {
            endpoint_id: "groq".into(),
            model: "llama".into(),
            ttfb_ms,
            total_ms: ttfb_ms * 2,
            at_ms: 1,
        }
    }

    #[test]
    fn measurements_change_the_state_only_past_the_noise() {
        let mut state = ClusterState::default();
        let cases: &[(u64, bool)] = &[
            (100, true),
            (105, false),
            (95, false),
            (150, true),
            (0, true),
        ];
        for (i, &(ttfb, changes)) in cases.iter().enumerate() {
            let before = state.revision;
            let outcome = state.apply(Command::ReportLatency {
                measured: vec![sample(ttfb)],
            });
            assert_eq!(
                matches!(outcome, Outcome::Changed { .. }),
                changes,
                "case {i}"
            );
            assert_eq!(state.revision, before + u64::from(changes), "case {i}");
        }
        let bad = Latency {
            model: String::new(),
            ..sample(1)
        };
        let outcome = state.apply(Command::ReportLatency {
            measured: vec![bad],
        });
        assert!(matches!(outcome, Outcome::Rejected { .. }));
    }
}
