//! The edge-side routing table: the control plane's table compiled into lookups by model name.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_proto::v1;
use tracing::warn;

/// The routing table as the edge reads it on every request: model name → deployments, with each
/// deployment's endpoint already resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingTable {
    /// The control plane's version of this table; newer tables have larger versions.
    pub version: u64,
    /// Model groups by public model name.
    pub models: HashMap<String, ModelGroup>,
}

/// A public model name and the deployments that serve it, in preference order.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelGroup {
    /// The public model name clients send.
    pub name: String,
    /// Unix seconds the model was first seen.
    pub created: i64,
    /// Owner shown in `/v1/models`.
    pub owned_by: String,
    /// Deployments serving the model, in the control plane's preference order.
    pub deployments: Vec<Deployment>,
}

/// One upstream that serves a model, with its endpoint resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Id of the endpoint (for headers and logs).
    pub endpoint_id: Arc<str>,
    /// OpenAI-compatible base URL, ending in `/v1`, without a trailing slash.
    pub base_url: Arc<str>,
    /// Model id sent upstream in place of the public name.
    pub upstream_model: Arc<str>,
    /// Relative weight from the control plane (not used for picking yet).
    pub weight: u32,
    /// False while the endpoint's node is down or its probes fail.
    pub healthy: bool,
}

impl RoutingTable {
    /// Compiles the wire table; deployments naming an unknown endpoint are dropped with a warning.
    pub fn compile(wire: &v1::RoutingTable) -> Self {
        let endpoints: HashMap<&str, &v1::RouteEndpoint> =
            wire.endpoints.iter().map(|e| (e.id.as_str(), e)).collect();
        let models = wire
            .models
            .iter()
            .map(|route| {
                let deployments = route
                    .deployments
                    .iter()
                    .filter_map(|d| {
                        let Some(endpoint) = endpoints.get(d.endpoint_id.as_str()) else {
                            warn!(
                                version = wire.version,
                                model = %route.name,
                                endpoint = %d.endpoint_id,
                                "deployment names an unknown endpoint; dropped"
                            );
                            return None;
                        };
                        Some(Deployment {
                            endpoint_id: Arc::from(endpoint.id.as_str()),
                            base_url: Arc::from(endpoint.base_url.trim_end_matches('/')),
                            upstream_model: Arc::from(d.upstream_model.as_str()),
                            weight: d.weight,
                            healthy: endpoint.healthy,
                        })
                    })
                    .collect();
                let group = ModelGroup {
                    name: route.name.clone(),
                    created: route.created,
                    owned_by: route.owned_by.clone(),
                    deployments,
                };
                (route.name.clone(), group)
            })
            .collect();
        Self {
            version: wire.version,
            models,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_resolves_endpoints_and_drops_dangling_deployments() {
        let wire = v1::RoutingTable {
            version: 7,
            endpoints: vec![v1::RouteEndpoint {
                id: "ollama".into(),
                kind: "ollama".into(),
                base_url: "http://10.0.0.1:11434/v1/".into(),
                source: "discovered".into(),
                node: "gpu01".into(),
                healthy: true,
                ..Default::default()
            }],
            models: vec![v1::ModelRoute {
                name: "llama3".into(),
                deployments: vec![
                    v1::Deployment {
                        endpoint_id: "ollama".into(),
                        upstream_model: "llama3:8b".into(),
                        weight: 1,
                        ..Default::default()
                    },
                    v1::Deployment {
                        endpoint_id: "gone".into(),
                        upstream_model: "llama3".into(),
                        weight: 1,
                        ..Default::default()
                    },
                ],
                created: 1_700_000_000,
                owned_by: "ollama".into(),
            }],
            ..Default::default()
        };
        let table = RoutingTable::compile(&wire);
        assert_eq!(table.version, 7);
        let group = &table.models["llama3"];
        assert_eq!(group.created, 1_700_000_000);
        assert_eq!(
            group.deployments,
            vec![Deployment {
                endpoint_id: "ollama".into(),
                base_url: "http://10.0.0.1:11434/v1".into(),
                upstream_model: "llama3:8b".into(),
                weight: 1,
                healthy: true,
            }]
        );
    }
}
