//! What a node agent's report would change, decided before it is proposed.
//!
//! The leader asks this of its applied state so that a report repeating what is already
//! committed (an agent's periodic snapshot, a reconnect after a blip) costs no raft write: the
//! log grows with change, not with time. The answers mirror `apply` exactly; the tests in
//! `state/tests.rs` hold both to the same cases.

use super::{
    ClusterState, DiscoveredBackend, Endpoint, Limits, NodeStatus, Source, UpstreamStyle, sorted,
};

impl ClusterState {
    /// Whether committing `NodeUp` for `name` with this version and these addresses would
    /// change anything (it does not when the node is already up with the same facts).
    pub fn node_up_changes(&self, name: &str, version: &str, addresses: &[String]) -> bool {
        !self.nodes.get(name).is_some_and(|n| {
            n.status == NodeStatus::Up && n.version == version && n.addresses == addresses
        })
    }

    /// Whether committing this `ReportBackends` from `node` would change any endpoint.
    pub fn report_changes(
        &self,
        node: &str,
        upserted: &[DiscoveredBackend],
        removed: &[String],
        full: bool,
    ) -> bool {
        let owned = self.owned_by(node);
        let gone = owned.iter().any(|(proposed, _)| {
            removed.contains(proposed) || (full && !upserted.iter().any(|b| &b.id == proposed))
        });
        if gone {
            return true;
        }
        upserted.iter().any(|backend| {
            let existing = owned
                .iter()
                .find(|(proposed, _)| proposed == &backend.id)
                .and_then(|(_, id)| self.endpoints.get(id));
            match existing {
                // A backend not yet held becomes a new endpoint.
                None => true,
                Some(held) => {
                    *held
                        != discovered_endpoint(
                            node,
                            held.id.clone(),
                            held.created_ms,
                            backend.clone(),
                        )
                }
            }
        })
    }

    /// The discovered endpoints `node` owns: (the id its agent proposed, the id it got).
    pub(super) fn owned_by(&self, node: &str) -> Vec<(String, String)> {
        self.endpoints
            .values()
            .filter(|e| e.source == Source::Discovered && e.node.as_deref() == Some(node))
            .map(|e| (e.discovered_as.clone().unwrap_or_default(), e.id.clone()))
            .collect()
    }
}

/// The endpoint a discovered backend becomes, under the id `id` it was given.
pub(super) fn discovered_endpoint(
    node: &str,
    id: String,
    created_ms: u64,
    backend: DiscoveredBackend,
) -> Endpoint {
    Endpoint {
        id,
        kind: backend.kind,
        base_url: backend.base_url.trim_end_matches('/').to_string(),
        models: sorted(backend.models),
        weight: 1,
        source: Source::Discovered,
        node: Some(node.to_string()),
        discovered_as: Some(backend.id),
        created_ms,
        credentials: Vec::new(),
        limits: Limits::default(),
        upstream: UpstreamStyle::default(),
        facts: backend.facts,
    }
}
