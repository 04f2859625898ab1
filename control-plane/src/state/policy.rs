//! Routing policy in the cluster state: client keys, aliases, fallbacks, cooldowns, settings.

use serde::{Deserialize, Serialize};

use super::{ClusterState, Limits, ModelGroup, Source};

/// An alternative name for a model group (`fast` -> `llama3.1-8b`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// The name clients may ask for.
    pub name: String,
    /// The model group it resolves to.
    pub target: String,
    /// Where it was declared.
    #[serde(default)]
    pub source: Source,
}

/// An ordered fallback chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// Model group whose failure triggers the chain.
    pub model: String,
    /// Model groups to try next, in order.
    pub chain: Vec<String>,
    /// A context-window fallback: used when the prompt does not fit `model`.
    #[serde(default)]
    pub context_window: bool,
    /// Where it was declared.
    #[serde(default)]
    pub source: Source,
}

impl Fallback {
    /// The state's map key for this chain.
    pub fn key(&self) -> String {
        Self::key_of(&self.model, self.context_window)
    }

    /// The state's map key for the chain of `model` (general or context-window).
    pub fn key_of(model: &str, context_window: bool) -> String {
        if context_window {
            format!("context:{model}")
        } else {
            format!("general:{model}")
        }
    }
}

/// A client API key; only its SHA-256 is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientKey {
    /// Short public id shown in listings and logs instead of the secret.
    pub id: String,
    /// Human label.
    pub name: String,
    /// Lowercase hex SHA-256 of the full secret.
    pub sha256_hex: String,
    /// The secret's last four characters, so an operator can tell keys apart.
    pub last4: String,
    /// Model globs this key may use; empty means all.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    /// Unix ms after which the key is refused; 0 = never.
    #[serde(default)]
    pub expires_at_ms: i64,
    /// Refused from now on.
    #[serde(default)]
    pub revoked: bool,
    /// Client limits.
    #[serde(default)]
    pub limits: Limits,
    /// When it was created, ms since the Unix epoch.
    #[serde(default)]
    pub created_ms: u64,
    /// Where it was declared.
    #[serde(default)]
    pub source: Source,
    /// Money budgets; none by default.
    #[serde(default)]
    pub budget: super::KeyBudget,
}

/// One (endpoint, credential, model) target resting until a deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooldown {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Credential id within the endpoint; empty for an endpoint without keys.
    #[serde(default)]
    pub credential_id: String,
    /// Upstream model; empty cools down every model of the endpoint.
    #[serde(default)]
    pub model: String,
    /// Unix ms the cooldown ends.
    pub until_ms: i64,
    /// Why (`rate_limited`, `quota_exhausted`, `failures`, ...).
    #[serde(default)]
    pub reason: String,
}

impl Cooldown {
    /// The state's map key: one cooldown per target.
    pub fn key(&self) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}",
            self.endpoint_id, self.credential_id, self.model
        )
    }
}

/// How edges retry, cool down and balance (LiteLLM's `router_settings` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSettings {
    /// Extra attempts after the first, across candidates. 0 = the edge's default.
    pub num_retries: u32,
    /// Overall deadline per request in ms. 0 = the edge's default.
    pub timeout_ms: u64,
    /// Failures within a minute before a target is cooled down. 0 = the edge's default.
    pub allowed_fails: u32,
    /// Cooldown after `allowed_fails`, in ms. 0 = the edge's default.
    pub cooldown_ms: u64,
    /// `simple-shuffle`, `least-busy`, `latency-based-routing`, `usage-based-routing`.
    pub routing_strategy: String,
    /// Where they were declared.
    pub source: Source,
    /// Wait before a deployment is retried after a retryable failure, in ms (LiteLLM's
    /// `retry_after`); 0 tries the next candidate at once.
    pub retry_after_ms: u64,
    /// Attempts on the same deployment before the next candidate is tried, beyond the first
    /// (LiteLLM's `num_retries` as it applies to one deployment); 0 = none.
    pub same_deployment_retries: u32,
    /// Drop request parameters a target protocol cannot take instead of refusing
    /// (LiteLLM's `drop_params`). Default false.
    pub drop_params: bool,
    /// Active health checks of declared endpoints.
    pub health_checks: super::HealthChecks,
}

/// Routing strategies edges implement (LiteLLM's names).
pub const ROUTING_STRATEGIES: [&str; 5] = [
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
];

pub(super) fn validate_group(group: &ModelGroup) -> Result<(), String> {
    if group.name.is_empty() {
        return Err("model group name is empty".into());
    }
    if let Some(d) = group
        .deployments
        .iter()
        .find(|d| d.endpoint_id.is_empty() || d.upstream_model.is_empty())
    {
        return Err(format!(
            "model group `{}`: a deployment needs an endpoint and a model (got `{}`/`{}`)",
            group.name, d.endpoint_id, d.upstream_model
        ));
    }
    for d in &group.deployments {
        d.price.validate(&format!(
            "model group `{}` deployment `{}`: price",
            group.name, d.endpoint_id
        ))?;
    }
    Ok(())
}

pub(super) fn validate_alias(alias: &Alias) -> Result<(), String> {
    if alias.name.is_empty() || alias.target.is_empty() {
        return Err("alias name and target must be non-empty".into());
    }
    if alias.name == alias.target {
        return Err(format!("alias `{}` points at itself", alias.name));
    }
    Ok(())
}

pub(super) fn validate_fallback(fallback: &Fallback) -> Result<(), String> {
    if fallback.model.is_empty() {
        return Err("fallback model is empty".into());
    }
    if fallback.chain.is_empty() {
        return Err(format!(
            "fallback for `{}` has an empty chain",
            fallback.model
        ));
    }
    if fallback
        .chain
        .iter()
        .any(|m| m == &fallback.model || m.is_empty())
    {
        return Err(format!(
            "fallback chain of `{}` must not name the model itself or an empty name",
            fallback.model
        ));
    }
    Ok(())
}

pub(super) fn validate_key(key: &ClientKey) -> Result<(), String> {
    if key.id.is_empty() {
        return Err("client key id is empty".into());
    }
    key.budget.validate(&format!("key `{}`: budget", key.id))?;
    let hex = key.sha256_hex.len() == 64
        && key
            .sha256_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(format!(
            "client key `{}`: sha256_hex must be 64 lowercase hex digits",
            key.id
        ));
    }
    Ok(())
}

pub(super) fn validate_settings(settings: &RouterSettings) -> Result<(), String> {
    let strategy = settings.routing_strategy.as_str();
    if !strategy.is_empty() && !ROUTING_STRATEGIES.contains(&strategy) {
        return Err(format!(
            "routing_strategy `{strategy}` is not one of {}",
            ROUTING_STRATEGIES.join(", ")
        ));
    }
    Ok(())
}

impl ClusterState {
    /// Merges reported cooldowns (keeping the later deadline) and drops those expired at `at_ms`.
    pub(super) fn report_cooldowns(
        &mut self,
        cooldowns: Vec<Cooldown>,
        at_ms: u64,
    ) -> Result<bool, String> {
        if let Some(c) = cooldowns.iter().find(|c| c.endpoint_id.is_empty()) {
            return Err(format!(
                "a cooldown needs an endpoint id (model `{}`)",
                c.model
            ));
        }
        let now = i64::try_from(at_ms).unwrap_or(i64::MAX);
        let before = self.cooldowns.clone();
        self.cooldowns.retain(|_, c| c.until_ms > now);
        for cooldown in cooldowns {
            if cooldown.until_ms <= now {
                continue;
            }
            let key = cooldown.key();
            match self.cooldowns.get(&key) {
                // A new cooldown never shortens an existing one.
                Some(existing) if existing.until_ms >= cooldown.until_ms => {}
                _ => {
                    self.cooldowns.insert(key, cooldown);
                }
            }
        }
        Ok(self.cooldowns != before)
    }
}
