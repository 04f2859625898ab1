//! The command set: every change to the cluster state, what applying one did, and the short
//! name a command logs under.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    Alias, ClientKey, Cooldown, DeadModel, Declared, DiscoveredBackend, EndpointSpec, Fallback,
    Latency, ListedModel, MinuteRow, ModelGroup, Retention, RouterSettings, Source,
};
use crate::lease::{SlotGrant, SlotRequest, WindowGrant, WindowRequest};

/// A change to the cluster state. Only committed commands change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Names the cluster's history once, at bootstrap; later attempts change nothing.
    SetClusterId {
        /// Random id.
        id: String,
    },
    /// Create or replace a declared endpoint.
    PutEndpoint {
        /// The endpoint.
        spec: EndpointSpec,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Remove an endpoint of any source.
    DeleteEndpoint {
        /// Endpoint id.
        id: String,
    },
    /// Create or replace an explicit model group.
    PutModelGroup {
        /// The group.
        group: ModelGroup,
    },
    /// Remove an explicit model group.
    DeleteModelGroup {
        /// Public model name.
        name: String,
    },
    /// Replace everything one source (config or env) declares with `declared`.
    ReplaceSource {
        /// `config` or `env`.
        source: Source,
        /// The complete new declaration of that source.
        declared: Declared,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Create or replace an alias.
    PutAlias {
        /// The alias.
        alias: Alias,
    },
    /// Remove an alias.
    DeleteAlias {
        /// Alias name.
        name: String,
    },
    /// Create or replace a fallback chain.
    PutFallback {
        /// The chain.
        fallback: Fallback,
    },
    /// Remove a fallback chain.
    DeleteFallback {
        /// Model whose chain goes.
        model: String,
        /// Whether it is the context-window chain.
        context_window: bool,
    },
    /// Add a client key (its hash only).
    PutKey {
        /// The key.
        key: ClientKey,
    },
    /// Refuse a client key from now on.
    RevokeKey {
        /// Key id.
        id: String,
    },
    /// Replace the router settings.
    PutSettings {
        /// The settings.
        settings: RouterSettings,
    },
    /// Cooldowns reported by edges; a new one never shortens an existing one.
    ReportCooldowns {
        /// The cooldowns.
        cooldowns: Vec<Cooldown>,
        /// Proposal time, ms since the Unix epoch (expired cooldowns are dropped).
        at_ms: u64,
    },
    /// Removes cooldowns, of one endpoint or all.
    ClearCooldowns {
        /// Only this endpoint's; all when `None`.
        endpoint_id: Option<String>,
    },
    /// A node agent connected.
    NodeUp {
        /// Node name.
        name: String,
        /// Agent version.
        version: String,
        /// Reported addresses.
        addresses: Vec<String>,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// A node missed its heartbeats for too long.
    NodeDown {
        /// Node name.
        name: String,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// An active health check of an endpoint changed its result. The checker proposes only
    /// transitions; a report that changes nothing is a no-op.
    ReportHealth {
        /// Endpoint id.
        endpoint_id: String,
        /// Whether the check passed.
        healthy: bool,
        /// Why it failed; empty when healthy.
        error: String,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// What a node agent found. With `full`, backends of this node missing from `upserted` are
    /// removed (a snapshot); otherwise only `removed` are.
    ReportBackends {
        /// Reporting node.
        node: String,
        /// New or changed backends.
        upserted: Vec<DiscoveredBackend>,
        /// Proposed ids of backends that are gone.
        removed: Vec<String>,
        /// Whether `upserted` is everything the node sees.
        full: bool,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// What a declared endpoint's own listing holds now (an empty list forgets it).
    PutListing {
        /// Endpoint id.
        endpoint_id: String,
        /// Every model listed, unfiltered.
        models: Vec<ListedModel>,
    },
    /// The models an audit verified dead on one endpoint (empty clears them).
    PutDeadModels {
        /// Endpoint id.
        endpoint_id: String,
        /// The dead models and why.
        dead: Vec<DeadModel>,
    },
    /// Measured latency of deployments (a bench run or an edge's summary), in one batch.
    ReportLatency {
        /// The measurements.
        measured: Vec<Latency>,
    },
    /// An edge asks for a slice of a windowed limit.
    GrantWindow {
        /// The request, stamped with the proposal time.
        request: WindowRequest,
    },
    /// An edge sets how many concurrency slots it holds.
    HoldSlots {
        /// The request, stamped with the proposal time.
        request: SlotRequest,
    },
    /// One batch of an edge's usage aggregates.
    RecordUsage {
        /// The reporting edge.
        edge: String,
        /// The edge's batch number; one already applied is skipped.
        batch: u64,
        /// Per (key, model, deployment, minute).
        rows: Vec<MinuteRow>,
        /// How long each granularity is kept, as the proposer is configured.
        keep: Retention,
        /// Proposal time, ms since the Unix epoch (drives compaction).
        at_ms: u64,
    },
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The state changed; `revision` is the new routing-table version.
    Changed {
        /// Revision after the change.
        revision: u64,
    },
    /// The command was valid but changed nothing.
    Unchanged {
        /// Current revision.
        revision: u64,
    },
    /// The command was refused; the state is untouched.
    Rejected {
        /// Why, for the proposer.
        reason: String,
    },
    /// A slice of a windowed limit was granted (possibly empty).
    WindowGranted {
        /// What the edge may spend.
        grant: WindowGrant,
    },
    /// The edge's concurrency slots were set.
    SlotsHeld {
        /// What the edge holds.
        grant: SlotGrant,
    },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::SetClusterId { .. } => write!(f, "set_cluster_id"),
            Command::PutEndpoint { spec, .. } => write!(f, "put_endpoint({})", spec.id),
            Command::DeleteEndpoint { id } => write!(f, "delete_endpoint({id})"),
            Command::PutModelGroup { group } => write!(f, "put_model_group({})", group.name),
            Command::DeleteModelGroup { name } => write!(f, "delete_model_group({name})"),
            Command::ReplaceSource { source, .. } => {
                write!(f, "replace_source({})", source.as_str())
            }
            Command::PutAlias { alias } => write!(f, "put_alias({})", alias.name),
            Command::DeleteAlias { name } => write!(f, "delete_alias({name})"),
            Command::PutFallback { fallback } => write!(f, "put_fallback({})", fallback.model),
            Command::DeleteFallback { model, .. } => write!(f, "delete_fallback({model})"),
            Command::PutKey { key } => write!(f, "put_key({})", key.id),
            Command::RevokeKey { id } => write!(f, "revoke_key({id})"),
            Command::PutSettings { .. } => write!(f, "put_settings"),
            Command::ReportCooldowns { cooldowns, .. } => {
                write!(f, "report_cooldowns({})", cooldowns.len())
            }
            Command::ClearCooldowns { .. } => write!(f, "clear_cooldowns"),
            Command::NodeUp { name, .. } => write!(f, "node_up({name})"),
            Command::NodeDown { name, .. } => write!(f, "node_down({name})"),
            Command::ReportHealth {
                endpoint_id,
                healthy,
                ..
            } => write!(f, "report_health({endpoint_id}, {healthy})"),
            Command::ReportBackends { node, .. } => write!(f, "report_backends({node})"),
            Command::GrantWindow { request } => write!(f, "grant_window({})", request.limit_key),
            Command::HoldSlots { request } => write!(f, "hold_slots({})", request.limit_key),
            Command::PutListing { endpoint_id, .. } => write!(f, "put_listing({endpoint_id})"),
            Command::PutDeadModels { endpoint_id, .. } => {
                write!(f, "put_dead_models({endpoint_id})")
            }
            Command::ReportLatency { measured } => write!(f, "report_latency({})", measured.len()),
            Command::RecordUsage { edge, rows, .. } => {
                write!(f, "record_usage({edge}, {})", rows.len())
            }
        }
    }
}
