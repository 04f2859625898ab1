//! Compiling the control plane's table: endpoints with their credentials resolved, model groups
//! with live target state carried over from the previous version, and the cooldown deadlines the
//! table names.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderValue;
use switchyard_proto::v1;
use tracing::warn;

use super::{
    Credential, Deployment, Endpoint, EndpointKind, ModelGroup, RoutingTable, Settings, Strategy,
    UpstreamLimits,
};
use crate::auth::KeyStore;
use crate::routing::endpoint::{
    host_header, operation_uris, request_headers, resolve_credentials, unsupported_params,
};
use crate::routing::target::Target;
use crate::usage::Price;

/// Live state per (endpoint id, upstream model).
type Targets = HashMap<(Arc<str>, Arc<str>), Arc<Target>>;

/// Cooldown deadlines (ms since the epoch) by (endpoint id, model, credential id; empty: all).
type Cooldowns<'a> = HashMap<(&'a str, &'a str, &'a str), i64>;

impl RoutingTable {
    /// Compiles the wire table, carrying live target state over from `previous`.
    /// Deployments naming an unknown endpoint are dropped with a warning; credentials naming an
    /// unset environment variable are skipped with a warning (never printing a value).
    pub fn compile(wire: &v1::RoutingTable, previous: Option<&RoutingTable>) -> Self {
        let empty = HashMap::new();
        let prev_targets = previous.map_or(&empty, |p| &p.targets);
        let prev_endpoints = previous.map(|p| &p.endpoints);

        let cooldowns = cooldowns(wire);
        let mut endpoints = HashMap::new();
        for e in &wire.endpoints {
            let endpoint = compile_endpoint(e, prev_endpoints, &cooldowns);
            endpoints.insert(e.id.clone(), Arc::new(endpoint));
        }

        let (models, targets) = compile_models(wire, &endpoints, prev_targets, &cooldowns);

        let aliases = wire
            .aliases
            .iter()
            .map(|a| (a.name.clone(), a.target.clone()))
            .collect();
        let alias_members = wire
            .aliases
            .iter()
            .filter(|a| !a.members.is_empty())
            .map(|a| (a.name.clone(), a.members.clone()))
            .collect();
        let (fallbacks, context_fallbacks) = fallbacks(wire);
        Self {
            version: wire.version,
            cluster_id: wire.cluster_id.clone(),
            models,
            aliases,
            alias_members,
            fallbacks,
            context_fallbacks,
            endpoints,
            keys: KeyStore::compile(&wire.keys),
            settings: Settings::compile(wire.settings.as_ref()),
            targets,
        }
    }
}

/// The wire table's cooldown deadlines by (endpoint id, model, credential id); the latest wins.
fn cooldowns(wire: &v1::RoutingTable) -> Cooldowns<'_> {
    let mut cooldowns: Cooldowns<'_> = HashMap::new();
    for c in &wire.cooldowns {
        let key = (
            c.endpoint_id.as_str(),
            c.model.as_str(),
            c.credential_id.as_str(),
        );
        let until = cooldowns.entry(key).or_default();
        *until = (*until).max(c.until_ms);
    }
    cooldowns
}

/// The model groups of the wire table over the compiled `endpoints`, and the live target state
/// of every deployment (carried over from `prev_targets` when its credentials did not change in
/// number).
fn compile_models(
    wire: &v1::RoutingTable,
    endpoints: &HashMap<String, Arc<Endpoint>>,
    prev_targets: &Targets,
    cooldowns: &Cooldowns<'_>,
) -> (HashMap<String, Arc<ModelGroup>>, Targets) {
    let mut targets = HashMap::new();
    let mut models = HashMap::new();
    for route in &wire.models {
        let mut deployments = Vec::with_capacity(route.deployments.len());
        for d in &route.deployments {
            let Some(endpoint) = endpoints.get(&d.endpoint_id) else {
                warn!(
                    version = wire.version,
                    model = %route.name,
                    endpoint = %d.endpoint_id,
                    "deployment names an unknown endpoint; dropped"
                );
                continue;
            };
            let key = (
                endpoint.id.clone(),
                Arc::<str>::from(d.upstream_model.as_str()),
            );
            let target = targets
                .get(&key)
                .or_else(|| prev_targets.get(&key))
                .filter(|t: &&Arc<Target>| t.creds.len() == endpoint.slots())
                .cloned()
                .unwrap_or_else(|| Target::new(endpoint.credentials.len()));
            targets.insert(key.clone(), target.clone());
            let until = table_until(
                cooldowns,
                &endpoint.id,
                &d.upstream_model,
                &endpoint.credentials,
            );
            let deployment = compile_deployment(d, endpoint, key.1, target, until);
            deployments.push(Arc::new(deployment));
        }
        let group = ModelGroup {
            name: Arc::from(route.name.as_str()),
            created: route.created,
            owned_by: route.owned_by.clone(),
            deployments,
        };
        models.insert(route.name.clone(), Arc::new(group));
    }
    (models, targets)
}

/// Model group → fallback chain, for failures and for prompts that do not fit.
type FallbackMaps = (HashMap<String, Vec<String>>, HashMap<String, Vec<String>>);

/// The wire table's fallbacks, split into the ordinary and the context-window chains.
fn fallbacks(wire: &v1::RoutingTable) -> FallbackMaps {
    let mut fallbacks = HashMap::new();
    let mut context_fallbacks = HashMap::new();
    for f in &wire.fallbacks {
        let into = if f.context_window {
            &mut context_fallbacks
        } else {
            &mut fallbacks
        };
        into.insert(f.model.clone(), f.chain.clone());
    }
    (fallbacks, context_fallbacks)
}

impl Settings {
    fn compile(wire: Option<&v1::RouterSettings>) -> Self {
        let d = Self::default();
        let Some(w) = wire else { return d };
        Self {
            num_retries: if w.num_retries == 0 {
                d.num_retries
            } else {
                w.num_retries
            },
            timeout: (w.timeout_ms != 0).then(|| Duration::from_millis(w.timeout_ms)),
            allowed_fails: if w.allowed_fails == 0 {
                d.allowed_fails
            } else {
                w.allowed_fails
            },
            cooldown: if w.cooldown_ms == 0 {
                d.cooldown
            } else {
                Duration::from_millis(w.cooldown_ms)
            },
            strategy: match w.routing_strategy.as_str() {
                "simple-shuffle" => Strategy::Shuffle,
                "least-busy" => Strategy::LeastBusy,
                _ => Strategy::PeakEwma,
            },
            same_deployment_retries: w.same_deployment_retries,
            retry_after: Duration::from_millis(w.retry_after_ms),
            drop_params: w.drop_params,
        }
    }
}

/// Cooldown deadlines (ms since the epoch) from the wire table's cooldowns, per credential of
/// `creds` (one slot when it has none): a credential's own deadline or the one for all of them,
/// whichever is later.
fn table_until(
    cooldowns: &Cooldowns<'_>,
    endpoint: &str,
    model: &str,
    creds: &[Credential],
) -> Box<[i64]> {
    let all = cooldowns.get(&(endpoint, model, "")).copied().unwrap_or(0);
    if creds.is_empty() {
        return Box::new([all]);
    }
    creds
        .iter()
        .map(|c| {
            cooldowns
                .get(&(endpoint, model, &*c.id))
                .copied()
                .unwrap_or(0)
                .max(all)
        })
        .collect()
}

/// One wire endpoint, compiled; its endpoint-wide target state carries over from `previous`
/// when its credentials did not change in number.
fn compile_endpoint(
    e: &v1::RouteEndpoint,
    prev_endpoints: Option<&HashMap<String, Arc<Endpoint>>>,
    cooldowns: &Cooldowns<'_>,
) -> Endpoint {
    let credentials = resolve_credentials(e);
    let wide = prev_endpoints
        .and_then(|p| p.get(&e.id))
        .filter(|p| p.wide.creds.len() == credentials.len().max(1))
        .map_or_else(|| Target::new(credentials.len()), |p| p.wide.clone());
    let facts = e.facts.clone().unwrap_or_default();
    let uris = operation_uris(&e.id, e.base_url.trim_end_matches('/'), &e.query);
    let host_header = uris.as_ref().and_then(|u| host_header(&u[0]));
    Endpoint {
        id: Arc::from(e.id.as_str()),
        id_header: HeaderValue::from_str(&e.id).ok(),
        kind: EndpointKind::parse(&e.kind),
        base_url: Arc::from(e.base_url.trim_end_matches('/')),
        uris,
        host_header,
        healthy: e.healthy,
        checked: e
            .checked
            .then(|| (e.check_passed, e.checked_at_ms, e.check_error.clone())),
        table_wide_until: table_until(cooldowns, &e.id, "", &credentials),
        credentials,
        request_headers: request_headers(e),
        unsupported_params: unsupported_params(e),
        queued: facts.running.saturating_add(facts.waiting),
        loaded: facts
            .loaded_known
            .then(|| facts.loaded_models.iter().cloned().collect()),
        context_lengths: facts.context_lengths.clone(),
        wide,
    }
}

/// One deployment of a model group on `endpoint`, serving `upstream_model`, with its live
/// `target` state and the table's cooldown deadlines for it.
fn compile_deployment(
    d: &v1::Deployment,
    endpoint: &Arc<Endpoint>,
    upstream_model: Arc<str>,
    target: Arc<Target>,
    table_until: Box<[i64]>,
) -> Deployment {
    Deployment {
        usage_id: Arc::from(format!("{}/{}", endpoint.id, d.upstream_model)),
        price: Price {
            input_usd_per_mtok: d.input_usd_per_mtok,
            output_usd_per_mtok: d.output_usd_per_mtok,
        },
        table_until,
        endpoint: endpoint.clone(),
        model_header: HeaderValue::from_str(&upstream_model).ok(),
        upstream_model,
        weight: d.weight,
        context_length: d.context_length,
        target,
        limits: d
            .limits
            .as_ref()
            .map_or_else(UpstreamLimits::default, |l| UpstreamLimits {
                rpm: l.rpm,
                tpm: l.tpm,
                rpd: l.rpd,
            }),
        series: OnceLock::new(),
        capabilities: d.capabilities.clone(),
        free: d.free,
    }
}
