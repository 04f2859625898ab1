//! The replicated cluster state and the pure function that changes it.
//!
//! `ClusterState::apply` has no IO, no locks and no clock: every voter applies the same
//! committed commands in the same order and reaches the same state. Time arrives inside the
//! command (`at_ms`, milliseconds since the Unix epoch, stamped by the proposer).
//!
//! - this file: endpoints, nodes and `apply`;
//! - [`command`]: the command set and what applying one did;
//! - [`policy`]: client keys, aliases, fallbacks, cooldowns and router settings;
//! - [`sources`]: replacing everything one config source declares (config reload);
//! - [`catalog`]: what declared endpoints list, their catalog filters and dead models;
//! - [`spend`]: deployment prices and key budgets;
//! - [`latency`]: measured time to first byte per deployment (for the `fast` alias);
//! - [`usage`]: usage and spend reported by edges, with hourly and daily rollups.

mod catalog;
mod command;
mod health;
mod latency;
mod policy;
mod report;
mod sources;
mod spend;
#[cfg(test)]
mod tests;
mod upstream;
pub mod usage;

use std::collections::BTreeMap;

use crate::lease::LeaseBook;
use serde::Deserialize;
use serde::Serialize;

pub use catalog::{CatalogFilter, CatalogSpec, Catalogs, DeadModel, ListedModel};
pub use command::{Command, Outcome};
pub use health::{CheckMode, Checked, HealthChecks};
pub use latency::{Latencies, Latency};
pub use policy::{Alias, ClientKey, Cooldown, Fallback, RouterSettings};
pub use sources::Declared;
pub use spend::{KeyBudget, Price};
pub use upstream::UpstreamStyle;
pub use usage::{MinuteRow, Retention, UsageBook};

/// Where an item was declared; decides precedence and is shown in every listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `config.yaml`.
    Config,
    /// `LLM_PROXY_ENDPOINT_<NAME>_*` environment variables.
    Env,
    /// The admin API.
    #[default]
    Api,
    /// The built-in demo model of `switchyard up --demo`.
    Demo,
    /// Found by a node agent; never clobbers a declared endpoint.
    Discovered,
}

impl Source {
    /// The name used on the wire and in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Env => "env",
            Source::Api => "api",
            Source::Demo => "demo",
            Source::Discovered => "discovered",
        }
    }

    /// Precedence: lower wins (config > env > api/demo > discovery).
    pub fn rank(self) -> u8 {
        match self {
            Source::Config => 0,
            Source::Env => 1,
            Source::Api | Source::Demo => 2,
            Source::Discovered => 3,
        }
    }
}

/// Limits; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: u64,
    /// Tokens per minute.
    pub tpm: u64,
    /// Requests per day.
    pub rpd: u64,
    /// Requests in flight at once.
    pub max_concurrent: u32,
}

impl Limits {
    /// Whether every limit is unlimited.
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// Where an upstream credential's secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Secret {
    /// Read by the edge from this environment variable.
    Env {
        /// Variable name.
        name: String,
    },
    /// Stored by value, sealed with the cluster key (base64url nonce + ciphertext).
    Sealed {
        /// The sealed bytes; never the plain secret.
        sealed: String,
    },
}

/// One upstream credential of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// `key`, `key_2`, ... in declaration order.
    pub id: String,
    /// Where the secret is.
    pub secret: Secret,
    /// A human label (`personal`, `work-paid`); empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Upstream model ids (globs) this credential may serve; empty means every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// What a node agent learned about a server beyond its model list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// Passed its recent probes.
    pub healthy: bool,
    /// Models loaded in memory now.
    pub loaded_models: Vec<String>,
    /// Whether `loaded_models` is known for this server kind.
    pub loaded_known: bool,
    /// Requests running.
    pub running: u32,
    /// Requests waiting.
    pub waiting: u32,
    /// KV-cache usage, 0..1; negative when unknown.
    pub kv_cache_usage: f64,
    /// Server version, when reported.
    pub server_version: String,
    /// Context length per model id.
    pub context_lengths: BTreeMap<String, u32>,
    /// Capabilities per model id, when the server says (`vision`, `embed`, `tools`, ...).
    pub capabilities: BTreeMap<String, Vec<String>>,
}

/// An upstream server or provider that serves models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Unique id (`ollama`, `vllm-gpu01`, `groq`, `ollama-auto`, ...).
    pub id: String,
    /// Server kind (`ollama`, `lmstudio`, `vllm`, `litellm`, `openai`).
    pub kind: String,
    /// OpenAI-compatible base URL, ending in `/v1`.
    pub base_url: String,
    /// Model ids the endpoint serves, sorted.
    pub models: Vec<String>,
    /// Relative share of traffic among deployments of one model.
    pub weight: u32,
    /// Where it was declared.
    pub source: Source,
    /// Node that discovered it, for discovered endpoints.
    pub node: Option<String>,
    /// The id the agent proposed, for discovered endpoints (the actual id may carry `-auto`).
    pub discovered_as: Option<String>,
    /// When the endpoint first appeared, ms since the Unix epoch.
    pub created_ms: u64,
    /// Upstream credentials, tried in order.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Upstream limits of the endpoint as a whole.
    #[serde(default)]
    pub limits: Limits,
    /// Request shaping (provider preset, auth header, fixed headers, query).
    #[serde(default, skip_serializing_if = "UpstreamStyle::is_default")]
    pub upstream: UpstreamStyle,
    /// What the node agent reports, for discovered endpoints.
    #[serde(default)]
    pub facts: Option<Facts>,
}

/// A declared endpoint, as written by config, env, the admin API or the demo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Unique id.
    pub id: String,
    /// Server kind.
    pub kind: String,
    /// OpenAI-compatible base URL, ending in `/v1`.
    pub base_url: String,
    /// Model ids served.
    pub models: Vec<String>,
    /// Relative traffic share; 0 is read as 1.
    pub weight: u32,
    /// Where it was declared; must not be `Discovered`.
    pub source: Source,
    /// Upstream credentials, in order.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Upstream limits.
    #[serde(default)]
    pub limits: Limits,
    /// Request shaping (provider preset, auth header, fixed headers, query).
    #[serde(default, skip_serializing_if = "UpstreamStyle::is_default")]
    pub upstream: Box<UpstreamStyle>,
}

/// A backend as a node agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredBackend {
    /// The id the agent proposes.
    pub id: String,
    /// Server kind.
    pub kind: String,
    /// OpenAI-compatible base URL.
    pub base_url: String,
    /// Model ids listed by the server.
    pub models: Vec<String>,
    /// What the agent learned beyond the model list.
    #[serde(default)]
    pub facts: Option<Facts>,
}

/// One way to serve a public model name: an endpoint and the model id it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Model id sent upstream.
    pub upstream_model: String,
    /// Relative traffic share; 0 is read as 1.
    pub weight: u32,
    /// Context window in tokens; 0 = unknown.
    #[serde(default)]
    pub context_length: u32,
    /// Upstream limits of this deployment (LiteLLM's rpm/tpm).
    #[serde(default)]
    pub limits: Limits,
    /// What it costs per 1M tokens; free by default.
    #[serde(default)]
    pub price: Price,
}

/// A public model name and the deployments that serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelGroup {
    /// Public model name clients ask for.
    pub name: String,
    /// Deployments in preference order.
    pub deployments: Vec<DeploymentSpec>,
    /// Where it was declared.
    #[serde(default)]
    pub source: Source,
}

/// Whether a node is reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Connected and reporting.
    Up,
    /// Missed its heartbeats for longer than the configured time.
    Down,
}

/// A host running a node agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Agent version.
    pub version: String,
    /// Addresses the node reported.
    pub addresses: Vec<String>,
    /// Last committed status.
    pub status: NodeStatus,
    /// When `status` last changed, ms since the Unix epoch.
    pub since_ms: u64,
}

/// Everything the control plane agrees on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Increases by one with every change; the routing-table version.
    pub revision: u64,
    /// Random id naming this cluster's history, set at bootstrap.
    #[serde(default)]
    pub cluster_id: String,
    /// Endpoints by id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Explicit model groups by public name.
    pub model_groups: BTreeMap<String, ModelGroup>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Aliases by name.
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
    /// Fallback chains by [`Fallback::key`].
    #[serde(default)]
    pub fallbacks: BTreeMap<String, Fallback>,
    /// Client keys by id.
    #[serde(default)]
    pub keys: BTreeMap<String, ClientKey>,
    /// Active cooldowns by [`Cooldown::key`].
    #[serde(default)]
    pub cooldowns: BTreeMap<String, Cooldown>,
    /// Router settings.
    #[serde(default)]
    pub settings: RouterSettings,
    /// Capacity granted to edges from cluster-wide limits. Not part of the routing table.
    #[serde(default)]
    pub leases: LeaseBook,
    /// Last committed active health check result per endpoint id.
    #[serde(default)]
    pub checked: BTreeMap<String, Checked>,
    /// What declared endpoints list, unfiltered, by endpoint id.
    #[serde(default)]
    pub catalogs: Catalogs,
    /// Catalog filters by endpoint id.
    #[serde(default)]
    pub catalog_filters: BTreeMap<String, CatalogSpec>,
    /// Models an audit verified dead, by endpoint id.
    #[serde(default)]
    pub dead_models: BTreeMap<String, Vec<DeadModel>>,
    /// Usage reported by edges. Not part of the routing table.
    #[serde(default)]
    pub usage: UsageBook,
    /// Measured latency by `endpoint/model`.
    #[serde(default)]
    pub latency: Latencies,
}

impl ClusterState {
    /// Applies one committed command. Pure: same state and command, same result.
    pub fn apply(&mut self, command: Command) -> Outcome {
        // Leases change the ledger, not the routing table: no new revision, no table push.
        let command = match command {
            Command::GrantWindow { request } => {
                return Outcome::WindowGranted {
                    grant: self.leases.grant_window(&request),
                };
            }
            Command::HoldSlots { request } => {
                return Outcome::SlotsHeld {
                    grant: self.leases.hold_slots(&request),
                };
            }
            // Usage is read by the admin API, never by edges: no new revision either.
            Command::RecordUsage {
                edge,
                batch,
                rows,
                keep,
                at_ms,
            } => {
                self.usage.record(&edge, batch, &rows, keep, at_ms);
                return Outcome::Unchanged {
                    revision: self.revision,
                };
            }
            other => other,
        };
        let changed = match self.apply_inner(command) {
            Ok(changed) => changed,
            Err(reason) => return Outcome::Rejected { reason },
        };
        if changed {
            self.revision += 1;
            Outcome::Changed {
                revision: self.revision,
            }
        } else {
            Outcome::Unchanged {
                revision: self.revision,
            }
        }
    }

    fn apply_inner(&mut self, command: Command) -> Result<bool, String> {
        Ok(match command {
            // Answered in `apply`.
            Command::GrantWindow { .. }
            | Command::HoldSlots { .. }
            | Command::RecordUsage { .. } => false,
            Command::SetClusterId { id } => {
                if id.is_empty() {
                    return Err("cluster id is empty".into());
                }
                if self.cluster_id.is_empty() {
                    self.cluster_id = id;
                    true
                } else {
                    false
                }
            }
            Command::PutEndpoint { spec, at_ms } => {
                validate_endpoint(&spec)?;
                if let Some(existing) = self.endpoints.get(&spec.id)
                    && existing.source.rank() < spec.source.rank()
                {
                    return Err(format!(
                        "endpoint `{}` is declared by {}, which takes precedence; change it there",
                        spec.id,
                        existing.source.as_str()
                    ));
                }
                self.put_endpoint(spec, at_ms)
            }
            Command::DeleteEndpoint { id } => self.endpoints.remove(&id).is_some(),
            Command::PutModelGroup { group } => {
                policy::validate_group(&group)?;
                self.guard(
                    self.model_groups.get(&group.name).map(|g| g.source),
                    group.source,
                    "model group",
                    &group.name,
                )?;
                self.model_groups.insert(group.name.clone(), group.clone()) != Some(group)
            }
            Command::DeleteModelGroup { name } => self.model_groups.remove(&name).is_some(),
            Command::ReplaceSource {
                source,
                declared,
                at_ms,
            } => self.replace_source(source, declared, at_ms)?,
            Command::PutAlias { alias } => {
                policy::validate_alias(&alias)?;
                self.guard(
                    self.aliases.get(&alias.name).map(|a| a.source),
                    alias.source,
                    "alias",
                    &alias.name,
                )?;
                self.aliases.insert(alias.name.clone(), alias.clone()) != Some(alias)
            }
            Command::DeleteAlias { name } => self.aliases.remove(&name).is_some(),
            Command::PutFallback { fallback } => {
                policy::validate_fallback(&fallback)?;
                let key = fallback.key();
                self.guard(
                    self.fallbacks.get(&key).map(|f| f.source),
                    fallback.source,
                    "fallback for",
                    &fallback.model,
                )?;
                self.fallbacks.insert(key, fallback.clone()) != Some(fallback)
            }
            Command::DeleteFallback {
                model,
                context_window,
            } => self
                .fallbacks
                .remove(&Fallback::key_of(&model, context_window))
                .is_some(),
            Command::PutKey { key } => {
                policy::validate_key(&key)?;
                if self.keys.contains_key(&key.id) {
                    return Err(format!("client key id `{}` already exists", key.id));
                }
                self.keys.insert(key.id.clone(), key);
                true
            }
            Command::RevokeKey { id } => match self.keys.get_mut(&id) {
                None => return Err(format!("no client key `{id}`")),
                Some(key) if key.source == Source::Config => {
                    return Err(format!(
                        "client key `{id}` is declared in config; remove it there"
                    ));
                }
                Some(key) => !std::mem::replace(&mut key.revoked, true),
            },
            Command::PutSettings { settings } => {
                policy::validate_settings(&settings)?;
                std::mem::replace(&mut self.settings, settings.clone()) != settings
            }
            Command::ReportLatency { measured } => self.report_latency(measured)?,
            Command::ReportCooldowns { cooldowns, at_ms } => {
                self.report_cooldowns(cooldowns, at_ms)?
            }
            Command::ClearCooldowns { endpoint_id } => {
                let before = self.cooldowns.len();
                self.cooldowns
                    .retain(|_, c| endpoint_id.as_ref().is_some_and(|e| &c.endpoint_id != e));
                self.cooldowns.len() != before
            }
            Command::NodeUp {
                name,
                version,
                addresses,
                at_ms,
            } => self.node_up(name, version, addresses, at_ms),
            Command::ReportHealth {
                endpoint_id,
                healthy,
                error,
                at_ms,
            } => self.report_health(endpoint_id, healthy, error, at_ms),
            Command::NodeDown { name, at_ms } => match self.nodes.get_mut(&name) {
                Some(node) if node.status == NodeStatus::Up => {
                    node.status = NodeStatus::Down;
                    node.since_ms = at_ms;
                    true
                }
                _ => false,
            },
            Command::ReportBackends {
                node,
                upserted,
                removed,
                full,
                at_ms,
            } => self.report_backends(&node, upserted, &removed, full, at_ms),
            Command::PutListing {
                endpoint_id,
                models,
            } => self.put_listing(endpoint_id, models),
            Command::PutDeadModels { endpoint_id, dead } => self.put_dead(endpoint_id, dead),
        })
    }

    /// Refuses to let `incoming` replace an item held by a source of higher precedence.
    fn guard(
        &self,
        existing: Option<Source>,
        incoming: Source,
        what: &str,
        name: &str,
    ) -> Result<(), String> {
        match existing {
            Some(existing) if existing.rank() < incoming.rank() => Err(format!(
                "{what} `{name}` is declared by {}, which takes precedence; change it there",
                existing.as_str()
            )),
            _ => Ok(()),
        }
    }

    /// Creates or replaces a validated declared endpoint; a discovered endpoint holding the id
    /// moves aside to `-auto`.
    fn put_endpoint(&mut self, spec: EndpointSpec, at_ms: u64) -> bool {
        let mut created_ms = at_ms;
        let mut displaced = None;
        if let Some(existing) = self.endpoints.get(&spec.id) {
            if existing.source == Source::Discovered {
                displaced = self.endpoints.remove(&spec.id);
            } else {
                created_ms = existing.created_ms;
            }
        }
        let endpoint = Endpoint {
            id: spec.id.clone(),
            kind: spec.kind,
            base_url: spec.base_url.trim_end_matches('/').to_string(),
            models: sorted(spec.models),
            weight: spec.weight.max(1),
            source: spec.source,
            node: None,
            discovered_as: None,
            created_ms,
            credentials: spec.credentials,
            limits: spec.limits,
            upstream: *spec.upstream,
            facts: None,
        };
        let changed = self.endpoints.insert(spec.id, endpoint.clone()) != Some(endpoint);
        if let Some(mut moved) = displaced {
            let base = moved
                .discovered_as
                .clone()
                .unwrap_or_else(|| moved.id.clone());
            moved.id = self.free_auto_id(&base);
            self.endpoints.insert(moved.id.clone(), moved);
        }
        changed
    }

    fn node_up(
        &mut self,
        name: String,
        version: String,
        addresses: Vec<String>,
        at_ms: u64,
    ) -> bool {
        let node = Node {
            name: name.clone(),
            version,
            addresses,
            status: NodeStatus::Up,
            since_ms: at_ms,
        };
        match self.nodes.get_mut(&name) {
            Some(old)
                if old.status == NodeStatus::Up
                    && old.version == node.version
                    && old.addresses == node.addresses =>
            {
                false
            }
            Some(old) => {
                let since_ms = if old.status == NodeStatus::Up {
                    old.since_ms
                } else {
                    at_ms
                };
                *old = Node { since_ms, ..node };
                true
            }
            None => {
                self.nodes.insert(name, node);
                true
            }
        }
    }

    fn report_backends(
        &mut self,
        node: &str,
        upserted: Vec<DiscoveredBackend>,
        removed: &[String],
        full: bool,
        at_ms: u64,
    ) -> bool {
        // Tracked as it goes rather than by comparing copies: a report touches a few endpoints
        // of a table that may hold thousands.
        let mut changed = false;
        let owned = self.owned_by(node);
        for (proposed, id) in &owned {
            let gone =
                removed.contains(proposed) || (full && !upserted.iter().any(|b| &b.id == proposed));
            if gone {
                changed |= self.endpoints.remove(id).is_some();
            }
        }
        for backend in upserted {
            let existing = owned
                .iter()
                .find(|(proposed, id)| proposed == &backend.id && self.endpoints.contains_key(id))
                .map(|(_, id)| id.clone());
            let (id, created_ms) = match existing {
                Some(id) => {
                    let created = self.endpoints.get(&id).map_or(at_ms, |e| e.created_ms);
                    (id, created)
                }
                None => (self.free_auto_id(&backend.id), at_ms),
            };
            let endpoint = report::discovered_endpoint(node, id.clone(), created_ms, backend);
            if self.endpoints.get(&id) != Some(&endpoint) {
                changed = true;
                self.endpoints.insert(id, endpoint);
            }
        }
        changed
    }

    /// `base` if free, else `base-auto`, `base-auto2`, ... — discovery never clobbers.
    fn free_auto_id(&self, base: &str) -> String {
        if !self.endpoints.contains_key(base) {
            return base.to_string();
        }
        let mut n = 1u32;
        loop {
            let candidate = if n == 1 {
                format!("{base}-auto")
            } else {
                format!("{base}-auto{n}")
            };
            if !self.endpoints.contains_key(&candidate) {
                return candidate;
            }
            n += 1;
        }
    }
}

/// Checks a declared endpoint before it is applied.
pub(crate) fn validate_endpoint(spec: &EndpointSpec) -> Result<(), String> {
    if spec.source == Source::Discovered {
        return Err("declared endpoints cannot have source `discovered`".into());
    }
    if spec.id.is_empty() || spec.id.contains('/') || spec.id.chars().any(char::is_whitespace) {
        return Err(format!(
            "endpoint id `{}` must be non-empty and contain no `/` or spaces",
            spec.id
        ));
    }
    if !(spec.base_url.starts_with("http://") || spec.base_url.starts_with("https://")) {
        return Err(format!(
            "endpoint `{}`: base_url must start with http:// or https://",
            spec.id
        ));
    }
    let mut ids: Vec<&str> = spec.credentials.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != spec.credentials.len() {
        return Err(format!(
            "endpoint `{}`: credential ids must be unique",
            spec.id
        ));
    }
    Ok(())
}

fn sorted(mut models: Vec<String>) -> Vec<String> {
    models.sort();
    models.dedup();
    models
}
