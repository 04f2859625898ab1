//! Compiles the cluster state into the edge-ready routing table.
//!
//! The table is a resolved, denormalised view: every model name an edge can be asked for, with
//! its deployments and their endpoints, and nothing of raft or of the control plane's bookkeeping.

use std::collections::BTreeMap;

use switchyard_proto::v1::{Deployment, ModelRoute, RouteEndpoint, RoutingTable};

use crate::state::ClusterState;

/// Builds the routing table for the state's current revision.
///
/// Every model an endpoint lists becomes a model of the same name served by that endpoint;
/// explicit model groups add their deployments first (they are the declared preference).
pub fn compile(state: &ClusterState) -> RoutingTable {
    let endpoints: Vec<RouteEndpoint> = state
        .endpoints
        .values()
        .map(|e| RouteEndpoint {
            id: e.id.clone(),
            kind: e.kind.clone(),
            base_url: e.base_url.clone(),
            source: e.source.as_str().to_string(),
            node: e.node.clone().unwrap_or_default(),
            // Discovered endpoints stay routable while their node is down: the agent reports
            // removals itself, and a control-plane restart must not empty the table. Probe
            // health arrives with the agent's richer reports.
            healthy: true,
            ..Default::default()
        })
        .collect();

    let mut models: BTreeMap<String, ModelRoute> = BTreeMap::new();
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
            if let Some(endpoint) = state.endpoints.get(&d.endpoint_id) {
                route.created = oldest(route.created, endpoint.created_ms);
                route.deployments.push(Deployment {
                    endpoint_id: d.endpoint_id.clone(),
                    upstream_model: d.upstream_model.clone(),
                    weight: d.weight.max(1),
                    ..Default::default()
                });
            }
        }
    }
    for endpoint in state.endpoints.values() {
        for model in &endpoint.models {
            let route = models.entry(model.clone()).or_insert_with(|| ModelRoute {
                name: model.clone(),
                deployments: Vec::new(),
                created: 0,
                owned_by: endpoint.kind.clone(),
            });
            let already = route
                .deployments
                .iter()
                .any(|d| d.endpoint_id == endpoint.id && &d.upstream_model == model);
            if !already {
                route.created = oldest(route.created, endpoint.created_ms);
                route.deployments.push(Deployment {
                    endpoint_id: endpoint.id.clone(),
                    upstream_model: model.clone(),
                    weight: endpoint.weight.max(1),
                    ..Default::default()
                });
            }
        }
    }
    RoutingTable {
        version: state.revision,
        endpoints,
        // A group whose deployments all point at missing endpoints serves nothing.
        models: models
            .into_values()
            .filter(|m| !m.deployments.is_empty())
            .collect(),
        ..Default::default()
    }
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
        Command, DeploymentSpec, DiscoveredBackend, EndpointSpec, ModelGroup, Source,
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
            },
            at_ms: 1_000,
        });
        state.apply(Command::PutModelGroup {
            group: ModelGroup {
                name: "llama3".into(),
                deployments: vec![
                    DeploymentSpec {
                        endpoint_id: "groq".into(),
                        upstream_model: "llama-3.1-8b-instant".into(),
                        weight: 0,
                    },
                    DeploymentSpec {
                        endpoint_id: "missing".into(),
                        upstream_model: "x".into(),
                        weight: 1,
                    },
                ],
            },
        });
        let table = compile(&state);
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
}
