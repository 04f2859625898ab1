//! Active health checks of declared endpoints: their settings and the committed results.
//!
//! The control-plane leader runs the checks (`crate::health`); only transitions are
//! committed (healthy → unhealthy and back), never a check that changes nothing, so the log
//! grows with change, not with time.

use serde::{Deserialize, Serialize};

use super::ClusterState;

/// What a check sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    /// `GET {base}/models`: free, no tokens spent.
    #[default]
    Models,
    /// A chat completion with `max_tokens: 1` to the deployment's model: proves inference
    /// works, and costs a token per check.
    Completion,
}

/// Active health check settings (LiteLLM's `background_health_checks`,
/// `health_check_interval`, `enable_health_check_routing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthChecks {
    /// Whether the leader checks declared endpoints. Default false.
    pub enabled: bool,
    /// Time between checks of one endpoint, in ms; 0 = 300 000 (LiteLLM's default).
    pub interval_ms: u64,
    /// Whether a failed check takes the endpoint out of the pool (LiteLLM's
    /// `enable_health_check_routing`); otherwise results are only reported. Default false.
    pub routing: bool,
    /// What a check sends.
    pub mode: CheckMode,
}

impl HealthChecks {
    /// Default interval between checks.
    pub const DEFAULT_INTERVAL_MS: u64 = 300_000;

    /// The interval in effect.
    pub fn interval_ms(&self) -> u64 {
        match self.interval_ms {
            0 => Self::DEFAULT_INTERVAL_MS,
            n => n,
        }
    }
}

/// The last committed result of an endpoint's checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checked {
    /// Whether the last check passed.
    pub healthy: bool,
    /// When this result was first seen, ms since the Unix epoch.
    pub since_ms: u64,
    /// Why it failed (`connect`, `status 503`, `timeout`); empty when healthy.
    pub error: String,
}

impl ClusterState {
    /// Records a check result; true when it changed the state. Results for endpoints that no
    /// longer exist are dropped, and a result equal to the last one changes nothing (its
    /// `since_ms` stays the time of the transition).
    pub(super) fn report_health(
        &mut self,
        endpoint_id: String,
        healthy: bool,
        error: String,
        at_ms: u64,
    ) -> bool {
        self.checked.retain(|id, _| self.endpoints.contains_key(id));
        if !self.endpoints.contains_key(&endpoint_id) {
            return false;
        }
        let error = if healthy { String::new() } else { error };
        match self.checked.get(&endpoint_id) {
            Some(c) if c.healthy == healthy && c.error == error => false,
            _ => {
                self.checked.insert(
                    endpoint_id,
                    Checked {
                        healthy,
                        since_ms: at_ms,
                        error,
                    },
                );
                true
            }
        }
    }
}
