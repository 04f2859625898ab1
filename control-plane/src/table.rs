//! Compiles the cluster state into the edge-ready routing table.
//!
//! The table is a resolved, denormalised view: every model name an edge can be asked for, with
//! its deployments and their endpoints, and nothing of raft or of the control plane's bookkeeping.

use std::collections::{BTreeMap, BTreeSet};

use switchyard_proto::v1 as pb;
use switchyard_proto::v1::{Deployment, ModelRoute, RouteEndpoint, RoutingTable};

use crate::catalog::filter::{self, ServedModel};
use crate::catalog::{capability, rot};
use crate::seal::ClusterKey;
use crate::state::{ClusterState, Endpoint, Facts, Limits, ListedModel, NodeStatus, Secret};

/// Builds the routing table for the state's current revision.
///
/// Every model an endpoint lists becomes a model of the same name served by that endpoint;
/// explicit model groups add their deployments first (they are the declared preference).
/// Credentials stored by value are opened with `key`; one that cannot be opened is left out
/// (and named in `unopened`), so an edge never receives ciphertext as a key.
pub fn compile(state: &ClusterState, key: Option<&ClusterKey>) -> Compiled {
    let mut unopened = Vec::new();
    let endpoints: Vec<RouteEndpoint> = state
        .endpoints
        .values()
        .map(|e| route_endpoint(state, e, key, &mut unopened))
        .collect();

    let mut models: BTreeMap<String, ModelRoute> = BTreeMap::new();
    declared_routes(state, &mut models);
    served_routes(state, &mut models);
    // A group whose deployments all point at missing endpoints serves nothing.
    models.retain(|_, m| !m.deployments.is_empty());
    let served: BTreeSet<&str> = models
        .keys()
        .map(String::as_str)
        .chain(state.aliases.keys().map(String::as_str))
        .collect();
    let broken_links = rot::broken(state, &served);
    let models: Vec<ModelRoute> = models.into_values().collect();
    let aliases = aliases(state, &models, &endpoints);
    let table = RoutingTable {
        version: state.revision,
        endpoints,
        models,
        keys: wire_keys(state),
        aliases,
        fallbacks: wire_fallbacks(state),
        cooldowns: wire_cooldowns(state),
        settings: Some(wire_settings(state)),
        cluster_id: state.cluster_id.clone(),
        broken_links,
        delta: None,
    };
    Compiled { table, unopened }
}

/// The routes of declared model groups: every deployment whose endpoint exists and does not
/// list its model as dead.
fn declared_routes(state: &ClusterState, models: &mut BTreeMap<String, ModelRoute>) {
    for group in state.model_groups.values() {
        let route = models
            .entry(group.name.clone())
            .or_insert_with(|| ModelRoute {
                name: group.name.clone(),
                deployments: Vec::new(),
                created: 0,
                owned_by: "switchyard".into(),
            });
        for d in &group.deployments {
            let dead = state
                .dead_models
                .get(&d.endpoint_id)
                .is_some_and(|dead| dead.iter().any(|m| m.model == d.upstream_model));
            if dead {
                continue;
            }
            if let Some(endpoint) = state.endpoints.get(&d.endpoint_id) {
                route.created = oldest(route.created, endpoint.created_ms);
                let context_length = match d.context_length {
                    0 => context_of(endpoint, &d.upstream_model),
                    n => n,
                };
                let listed = state
                    .catalogs
                    .get(&d.endpoint_id)
                    .and_then(|l| l.iter().find(|m| m.id == d.upstream_model));
                route.deployments.push(Deployment {
                    endpoint_id: d.endpoint_id.clone(),
                    upstream_model: d.upstream_model.clone(),
                    weight: d.weight.max(1),
                    context_length: context_length.max(listed.map_or(0, |m| m.context_length)),
                    limits: Some(limits(&d.limits)),
                    input_usd_per_mtok: d.price.input_usd_per_mtok,
                    output_usd_per_mtok: d.price.output_usd_per_mtok,
                    capabilities: capabilities_of(endpoint, &d.upstream_model, listed),
                    free: is_free(endpoint, listed),
                });
            }
        }
    }
}

/// The routes of what endpoints serve without a declared group (discovered or listed models),
/// added to the groups of the same name unless a declared deployment already covers them.
fn served_routes(state: &ClusterState, models: &mut BTreeMap<String, ModelRoute>) {
    for endpoint in state.endpoints.values() {
        for ServedModel { id: model, listed } in filter::served(state, endpoint) {
            let route = models
                .entry(model.to_string())
                .or_insert_with(|| ModelRoute {
                    name: model.to_string(),
                    deployments: Vec::new(),
                    created: 0,
                    owned_by: endpoint.id.clone(),
                });
            let already = route
                .deployments
                .iter()
                .any(|d| d.endpoint_id == endpoint.id && d.upstream_model == model);
            if !already {
                route.created = oldest(route.created, endpoint.created_ms);
                route.deployments.push(Deployment {
                    endpoint_id: endpoint.id.clone(),
                    upstream_model: model.to_string(),
                    weight: endpoint.weight.max(1),
                    context_length: match context_of(endpoint, model) {
                        0 => listed.map_or(0, |m| m.context_length),
                        n => n,
                    },
                    limits: Some(limits(&endpoint.limits)),
                    capabilities: capabilities_of(endpoint, model, listed),
                    free: is_free(endpoint, listed),
                    // A model served without a declared group is priced 0 (local).
                    ..Default::default()
                });
            }
        }
    }
}

/// Client keys as edges check them.
fn wire_keys(state: &ClusterState) -> Vec<pb::ClientKey> {
    state
        .keys
        .values()
        .map(|k| pb::ClientKey {
            id: k.id.clone(),
            sha256: hex_bytes(&k.sha256_hex),
            name: k.name.clone(),
            allowed_models: k.allowed_models.clone(),
            expires_at_ms: k.expires_at_ms,
            revoked: k.revoked,
            limits: Some(limits(&k.limits)),
            budget_usd_per_day: k.budget.usd_per_day,
            budget_usd_per_month: k.budget.usd_per_month,
        })
        .collect()
}

/// Fallback chains.
fn wire_fallbacks(state: &ClusterState) -> Vec<pb::Fallback> {
    state
        .fallbacks
        .values()
        .map(|f| pb::Fallback {
            model: f.model.clone(),
            chain: f.chain.clone(),
            context_window: f.context_window,
        })
        .collect()
}

/// Cooldowns in force.
fn wire_cooldowns(state: &ClusterState) -> Vec<pb::Cooldown> {
    state
        .cooldowns
        .values()
        .map(|c| pb::Cooldown {
            endpoint_id: c.endpoint_id.clone(),
            credential_id: c.credential_id.clone(),
            model: c.model.clone(),
            until_ms: c.until_ms,
            reason: c.reason.clone(),
        })
        .collect()
}

/// The router's retry, timeout and cooldown settings.
fn wire_settings(state: &ClusterState) -> pb::RouterSettings {
    pb::RouterSettings {
        num_retries: state.settings.num_retries,
        timeout_ms: state.settings.timeout_ms,
        allowed_fails: state.settings.allowed_fails,
        cooldown_ms: state.settings.cooldown_ms,
        routing_strategy: state.settings.routing_strategy.clone(),
        retry_after_ms: state.settings.retry_after_ms,
        same_deployment_retries: state.settings.same_deployment_retries,
        drop_params: state.settings.drop_params,
    }
}

/// A compiled table and the credentials that could not be opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The table for edges.
    pub table: RoutingTable,
    /// `endpoint/credential` ids whose sealed secret did not open with the cluster key.
    pub unopened: Vec<String>,
}

/// The user's aliases, then the capability aliases whose names neither a user alias nor a
/// model group has (see [`capability`]).
fn aliases(
    state: &ClusterState,
    models: &[ModelRoute],
    endpoints: &[RouteEndpoint],
) -> Vec<pb::Alias> {
    let mut aliases: Vec<pb::Alias> = state
        .aliases
        .values()
        .map(|a| pb::Alias {
            name: a.name.clone(),
            target: a.target.clone(),
            ..Default::default()
        })
        .collect();
    let taken: BTreeSet<String> = state
        .aliases
        .keys()
        .cloned()
        .chain(models.iter().map(|m| m.name.clone()))
        .collect();
    let facts = capability::gather(state, models, endpoints);
    for resolved in capability::resolve(&facts, &taken) {
        aliases.push(pb::Alias {
            name: resolved.name.to_string(),
            target: resolved.members.first().cloned().unwrap_or_default(),
            members: resolved.members,
            rule: resolved.name.to_string(),
        });
    }
    aliases
}

fn route_endpoint(
    state: &ClusterState,
    e: &Endpoint,
    key: Option<&ClusterKey>,
    unopened: &mut Vec<String>,
) -> RouteEndpoint {
    // A discovered endpoint is unhealthy when its agent says so, or once its node has been
    // committed down (which happens only after the heartbeat grace period).
    let node_down = e
        .node
        .as_ref()
        .and_then(|n| state.nodes.get(n))
        .is_some_and(|n| n.status == NodeStatus::Down);
    let probe_healthy = e.facts.as_ref().is_none_or(|f| f.healthy);
    let credentials = e
        .credentials
        .iter()
        .filter_map(|c| match &c.secret {
            Secret::Env { name } => Some(pb::Credential {
                id: c.id.clone(),
                env: name.clone(),
                models: c.models.clone(),
                label: c.label.clone(),
                ..Default::default()
            }),
            Secret::Sealed { sealed } => match key.and_then(|k| k.open(sealed)) {
                Some(value) => Some(pb::Credential {
                    id: c.id.clone(),
                    value,
                    models: c.models.clone(),
                    label: c.label.clone(),
                    ..Default::default()
                }),
                None => {
                    unopened.push(format!("{}/{}", e.id, c.id));
                    None
                }
            },
        })
        .collect();
    // Active checks take an endpoint out of the pool only with `routing` on (LiteLLM's
    // `enable_health_check_routing`); otherwise their results are only reported.
    let checks = &state.settings.health_checks;
    let checked = state.checked.get(&e.id);
    let check_healthy = !checks.routing || checked.is_none_or(|c| c.healthy);
    RouteEndpoint {
        id: e.id.clone(),
        kind: e.kind.clone(),
        base_url: e.base_url.clone(),
        source: e.source.as_str().to_string(),
        node: e.node.clone().unwrap_or_default(),
        healthy: probe_healthy && !node_down && check_healthy,
        credentials,
        facts: e.facts.as_ref().map(facts),
        auth_header: e.upstream.auth_header.clone(),
        headers: e.upstream.headers.clone().into_iter().collect(),
        query: e.upstream.query.clone(),
        provider: e.upstream.provider.clone(),
        checked: checked.is_some(),
        check_passed: checked.is_some_and(|c| c.healthy),
        checked_at_ms: checked.map_or(0, |c| i64::try_from(c.since_ms).unwrap_or(i64::MAX)),
        check_error: checked.map(|c| c.error.clone()).unwrap_or_default(),
        unsupported_params: e.upstream.unsupported_params.clone(),
    }
}

fn facts(f: &Facts) -> pb::BackendFacts {
    pb::BackendFacts {
        healthy: f.healthy,
        loaded_models: f.loaded_models.clone(),
        loaded_known: f.loaded_known,
        running: f.running,
        waiting: f.waiting,
        kv_cache_usage: f.kv_cache_usage,
        server_version: f.server_version.clone(),
        context_lengths: f.context_lengths.clone().into_iter().collect(),
        capabilities: f
            .capabilities
            .iter()
            .map(|(model, names)| {
                let names = names.clone();
                (model.clone(), pb::Capabilities { names })
            })
            .collect(),
    }
}

fn limits(l: &Limits) -> pb::Limits {
    pb::Limits {
        rpm: l.rpm,
        tpm: l.tpm,
        rpd: l.rpd,
        max_concurrent: l.max_concurrent,
    }
}

/// Whether a deployment costs nothing per token: the listing says so, or it runs on a local
/// model server.
fn is_free(endpoint: &Endpoint, listed: Option<&ListedModel>) -> bool {
    listed.is_some_and(|m| m.free == Some(true))
        || matches!(endpoint.kind.as_str(), "ollama" | "lmstudio" | "vllm")
}

/// What a deployment can do: its listing's capabilities, else what the agent reported.
fn capabilities_of(endpoint: &Endpoint, model: &str, listed: Option<&ListedModel>) -> Vec<String> {
    match listed {
        Some(m) if !m.capabilities.is_empty() => m.capabilities.clone(),
        _ => endpoint
            .facts
            .as_ref()
            .and_then(|f| f.capabilities.get(model).cloned())
            .unwrap_or_default(),
    }
}

fn context_of(endpoint: &Endpoint, model: &str) -> u32 {
    endpoint
        .facts
        .as_ref()
        .and_then(|f| f.context_lengths.get(model).copied())
        .unwrap_or(0)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

/// The earlier of a route's `created` (unix seconds, 0 = unset) and an endpoint's creation.
fn oldest(created: i64, endpoint_created_ms: u64) -> i64 {
    let secs = i64::try_from(endpoint_created_ms / 1000).unwrap_or(i64::MAX);
    if created == 0 {
        secs
    } else {
        created.min(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{
        ClientKey, Command, Credential, DeploymentSpec, DiscoveredBackend, EndpointSpec,
        ModelGroup, Source,
    };

    #[test]
    fn models_come_from_endpoints_and_groups() {
        let mut state = ClusterState::default();
        state.apply(Command::ReportBackends {
            node: "n1".into(),
            upserted: vec![DiscoveredBackend {
                id: "ollama".into(),
                kind: "ollama".into(),
                base_url: "http://127.0.0.1:11434/v1".into(),
                models: vec!["llama3".into(), "qwen".into()],
                facts: None,
            }],
            removed: vec![],
            full: true,
            at_ms: 2_000,
        });
        state.apply(Command::PutEndpoint {
            spec: EndpointSpec {
                id: "groq".into(),
                kind: "openai".into(),
                base_url: "https://api.groq.com/openai/v1".into(),
                models: vec!["llama-3.1-8b-instant".into()],
                weight: 3,
                source: Source::Config,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 1_000,
        });
        state.apply(Command::PutModelGroup {
            group: ModelGroup {
                name: "llama3".into(),
                deployments: vec![
                    DeploymentSpec {
                        price: Default::default(),
                        endpoint_id: "groq".into(),
                        upstream_model: "llama-3.1-8b-instant".into(),
                        weight: 0,
                        context_length: 8192,
                        limits: Limits {
                            rpm: 30,
                            ..Default::default()
                        },
                    },
                    DeploymentSpec {
                        price: Default::default(),
                        endpoint_id: "missing".into(),
                        upstream_model: "x".into(),
                        weight: 1,
                        context_length: 0,
                        limits: Limits::default(),
                    },
                ],
                source: Source::Config,
            },
        });
        let table = compile(&state, None).table;
        assert_eq!(table.version, 3);
        let names: Vec<&str> = table.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["llama-3.1-8b-instant", "llama3", "qwen"]);
        let llama3 = &table.models[1];
        let served: Vec<(&str, &str)> = llama3
            .deployments
            .iter()
            .map(|d| (d.endpoint_id.as_str(), d.upstream_model.as_str()))
            .collect();
        assert_eq!(
            served,
            vec![("groq", "llama-3.1-8b-instant"), ("ollama", "llama3")]
        );
        assert_eq!(llama3.created, 1);
        assert_eq!(table.models[2].owned_by, "ollama");
        let ollama = table.endpoints.iter().find(|e| e.id == "ollama");
        assert_eq!(
            ollama.map(|e| (e.source.as_str(), e.node.as_str())),
            Some(("discovered", "n1"))
        );
    }

    #[test]
    fn llama3_deployment_carries_context_and_limits() {
        let mut state = ClusterState::default();
        state.apply(Command::PutEndpoint {
            spec: EndpointSpec {
                id: "groq".into(),
                kind: "openai".into(),
                base_url: "https://api.groq.com/openai/v1".into(),
                models: vec![],
                weight: 1,
                source: Source::Config,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        });
        state.apply(Command::PutModelGroup {
            group: ModelGroup {
                name: "fast".into(),
                deployments: vec![DeploymentSpec {
                    price: Default::default(),
                    endpoint_id: "groq".into(),
                    upstream_model: "llama-3.1-8b-instant".into(),
                    weight: 1,
                    context_length: 8192,
                    limits: Limits {
                        rpm: 30,
                        tpm: 6000,
                        ..Default::default()
                    },
                }],
                source: Source::Config,
            },
        });
        let table = compile(&state, None).table;
        let d = &table.models[0].deployments[0];
        assert_eq!(d.context_length, 8192);
        assert_eq!(d.limits.as_ref().map(|l| (l.rpm, l.tpm)), Some((30, 6000)));
    }

    #[test]
    fn credentials_keys_health_and_policy_reach_the_table() {
        let key = ClusterKey::from_bytes(&[3u8; 32]).unwrap();
        let wrong = ClusterKey::from_bytes(&[4u8; 32]).unwrap();
        let mut state = ClusterState::default();
        state.apply(Command::SetClusterId { id: "c1".into() });
        state.apply(Command::PutEndpoint {
            spec: EndpointSpec {
                id: "groq".into(),
                kind: "openai".into(),
                base_url: "https://api.groq.com/openai/v1".into(),
                models: vec!["llama".into()],
                weight: 1,
                source: Source::Api,
                credentials: vec![
                    Credential {
                        id: "key".into(),
                        secret: Secret::Sealed {
                            sealed: key.seal("gsk_1").unwrap(),
                        },
                        label: "personal".into(),
                        models: vec!["llama*".into()],
                    },
                    Credential {
                        id: "key_2".into(),
                        secret: Secret::Env {
                            name: "GROQ_API_KEY_2".into(),
                        },
                        label: String::new(),
                        models: vec![],
                    },
                ],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        });
        state.apply(Command::ReportBackends {
            node: "n1".into(),
            upserted: vec![DiscoveredBackend {
                id: "vllm".into(),
                kind: "vllm".into(),
                base_url: "http://10.0.0.2:8000/v1".into(),
                models: vec!["q".into()],
                facts: Some(Facts {
                    healthy: true,
                    context_lengths: [("q".to_string(), 32768)].into(),
                    capabilities: [("q".to_string(), vec!["vision".to_string()])].into(),
                    ..Default::default()
                }),
            }],
            removed: vec![],
            full: true,
            at_ms: 0,
        });
        state.apply(Command::PutKey {
            key: ClientKey {
                budget: Default::default(),
                id: "k1".into(),
                name: "team".into(),
                sha256_hex: crate::seal::sha256_hex("sy_live_x"),
                last4: "_x".into(),
                allowed_models: vec!["llama*".into()],
                expires_at_ms: 0,
                revoked: false,
                limits: Limits {
                    rpm: 60,
                    ..Default::default()
                },
                created_ms: 0,
                source: Source::Api,
            },
        });
        let compiled = compile(&state, Some(&key));
        let t = &compiled.table;
        assert_eq!(t.cluster_id, "c1");
        let groq = t.endpoints.iter().find(|e| e.id == "groq").unwrap();
        let creds: Vec<(&str, &str, &str)> = groq
            .credentials
            .iter()
            .map(|c| (c.id.as_str(), c.value.as_str(), c.env.as_str()))
            .collect();
        assert_eq!(
            creds,
            vec![("key", "gsk_1", ""), ("key_2", "", "GROQ_API_KEY_2")]
        );
        assert!(compiled.unopened.is_empty());
        assert_eq!(t.keys[0].sha256.len(), 32);
        assert_eq!(t.keys[0].limits.as_ref().map(|l| l.rpm), Some(60));
        let q = t.models.iter().find(|m| m.name == "q").unwrap();
        assert_eq!(q.deployments[0].context_length, 32768);
        // The agent's facts say what an unlisted model can do; the vision alias follows.
        assert_eq!(q.deployments[0].capabilities, vec!["vision"]);
        let vision = t.aliases.iter().find(|a| a.name == "vision");
        assert_eq!(
            vision.map(|a| a.members.clone()),
            Some(vec!["q".to_string()])
        );
        let vllm = t.endpoints.iter().find(|e| e.id == "vllm").unwrap();
        assert!(vllm.healthy);

        // A wrong key leaves the sealed credential out instead of sending ciphertext.
        let compiled = compile(&state, Some(&wrong));
        let groq = compiled
            .table
            .endpoints
            .iter()
            .find(|e| e.id == "groq")
            .unwrap();
        assert_eq!(groq.credentials.len(), 1);
        assert_eq!(compiled.unopened, vec!["groq/key"]);

        // The node going down marks its endpoints unhealthy.
        state.apply(Command::NodeUp {
            name: "n1".into(),
            version: "1".into(),
            addresses: vec![],
            at_ms: 0,
        });
        state.apply(Command::NodeDown {
            name: "n1".into(),
            at_ms: 1,
        });
        let t = compile(&state, Some(&key)).table;
        assert!(!t.endpoints.iter().find(|e| e.id == "vllm").unwrap().healthy);
    }

    #[test]
    fn preset_endpoints_carry_their_protocol_auth_and_health() {
        let key = ClusterKey::from_bytes(&[5u8; 32]).unwrap();
        let state_of = |routing: bool| {
            let mut state = ClusterState::default();
            let text = "model_list:\n  - model_name: claude\n    litellm_params: {model: anthropic/claude-sonnet-4-5, api_key: os.environ/ANTHROPIC_API_KEY}\n  - model_name: flash\n    litellm_params: {model: gemini/gemini-2.5-flash, api_key: os.environ/GEMINI_API_KEY}\n";
            let env = std::collections::BTreeMap::from([(
                "ANTHROPIC_API_KEY".to_string(),
                "sk-ant-secret-1234".to_string(),
            )]);
            let current = ClusterState::default();
            let sealer = crate::config::Sealer::new(Some(&key), &current);
            let parsed = crate::config::parse(text, &env, &sealer).unwrap();
            let mut declared = parsed.declared;
            declared.settings = Some(crate::state::RouterSettings {
                health_checks: crate::state::HealthChecks {
                    enabled: true,
                    routing,
                    ..Default::default()
                },
                ..Default::default()
            });
            state.apply(Command::ReplaceSource {
                source: Source::Config,
                declared,
                at_ms: 1,
            });
            state.apply(Command::ReportHealth {
                endpoint_id: "gemini".into(),
                healthy: false,
                error: "status 503".into(),
                at_ms: 2,
            });
            state
        };
        let table = compile(&state_of(true), Some(&key)).table;
        let claude = table
            .endpoints
            .iter()
            .find(|e| e.id == "anthropic")
            .unwrap();
        assert_eq!(
            (
                claude.kind.as_str(),
                claude.base_url.as_str(),
                claude.auth_header.as_str()
            ),
            ("anthropic", "https://api.anthropic.com/v1", "x-api-key")
        );
        assert_eq!(claude.headers["anthropic-version"], "2023-06-01");
        // The control plane had the variable: the edge gets the value, not a reference.
        assert_eq!(claude.credentials[0].value, "sk-ant-secret-1234");
        assert!(claude.healthy && !claude.checked);
        let gemini = table.endpoints.iter().find(|e| e.id == "gemini").unwrap();
        assert_eq!(
            (gemini.kind.as_str(), gemini.auth_header.as_str()),
            ("gemini", "x-goog-api-key")
        );
        assert_eq!(gemini.credentials[0].env, "GEMINI_API_KEY");
        assert!(gemini.checked && !gemini.check_passed && !gemini.healthy);
        assert_eq!(gemini.check_error, "status 503");
        // Without health-check routing a failed check is reported, not acted on.
        let table = compile(&state_of(false), Some(&key)).table;
        let gemini = table.endpoints.iter().find(|e| e.id == "gemini").unwrap();
        assert!(gemini.healthy && gemini.checked && !gemini.check_passed);
    }
}
