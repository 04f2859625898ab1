//! Choosing upstreams for a request: a pure function of the table, the model and a turn counter.

use std::sync::Arc;

use super::table::RoutingTable;

/// One upstream to try, in the order `pick` returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Id of the endpoint.
    pub endpoint_id: Arc<str>,
    /// OpenAI-compatible base URL, ending in `/v1`.
    pub base_url: Arc<str>,
    /// Model id to send upstream.
    pub upstream_model: Arc<str>,
    /// Whether the table marks the endpoint healthy.
    pub healthy: bool,
}

/// Orders the deployments of `model` for trying: healthy ones first, rotated by `turn` so
/// successive requests spread over equals; unhealthy ones last, in preference order, as a
/// last resort (a probe can be wrong; a request that might succeed beats a certain 502).
/// Returns nothing when the model is unknown.
pub fn pick(table: &RoutingTable, model: &str, turn: usize) -> Vec<Candidate> {
    let Some(group) = table.models.get(model) else {
        return Vec::new();
    };
    let candidate = |d: &super::Deployment| Candidate {
        endpoint_id: d.endpoint_id.clone(),
        base_url: d.base_url.clone(),
        upstream_model: d.upstream_model.clone(),
        healthy: d.healthy,
    };
    let mut healthy: Vec<Candidate> = group
        .deployments
        .iter()
        .filter(|d| d.healthy)
        .map(candidate)
        .collect();
    if !healthy.is_empty() {
        let start = turn % healthy.len();
        healthy.rotate_left(start);
    }
    healthy.extend(
        group
            .deployments
            .iter()
            .filter(|d| !d.healthy)
            .map(candidate),
    );
    healthy
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::routing::{Deployment, ModelGroup};

    fn table(deployments: &[(&str, bool)]) -> RoutingTable {
        let deployments = deployments
            .iter()
            .map(|(id, healthy)| Deployment {
                endpoint_id: Arc::from(*id),
                base_url: Arc::from(format!("http://{id}/v1")),
                upstream_model: Arc::from(format!("{id}-model")),
                weight: 1,
                healthy: *healthy,
            })
            .collect();
        let group = ModelGroup {
            name: "m".into(),
            created: 0,
            owned_by: "o".into(),
            deployments,
        };
        RoutingTable {
            version: 1,
            models: HashMap::from([("m".to_owned(), group)]),
        }
    }

    fn ids(candidates: &[Candidate]) -> Vec<&str> {
        candidates.iter().map(|c| &*c.endpoint_id).collect()
    }

    #[test]
    fn pick_orders_healthy_first_and_rotates_among_them() {
        // (deployments, model, turn) → endpoint ids in the order they are tried
        type Case<'a> = (Vec<(&'a str, bool)>, &'a str, usize, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (vec![("a", true)], "m", 0, vec!["a"]),
            (vec![("a", true)], "unknown", 0, vec![]),
            (vec![], "m", 3, vec![]),
            (vec![("a", true), ("b", true)], "m", 0, vec!["a", "b"]),
            (vec![("a", true), ("b", true)], "m", 1, vec!["b", "a"]),
            (vec![("a", true), ("b", true)], "m", 2, vec!["a", "b"]),
            (vec![("a", false), ("b", true)], "m", 0, vec!["b", "a"]),
            (vec![("a", false), ("b", true)], "m", 1, vec!["b", "a"]),
            (
                vec![("a", true), ("b", true), ("c", true)],
                "m",
                5,
                vec!["c", "a", "b"],
            ),
            (vec![("a", false), ("b", false)], "m", 1, vec!["a", "b"]),
            (
                vec![("a", false), ("b", true), ("c", false), ("d", true)],
                "m",
                1,
                vec!["d", "b", "a", "c"],
            ),
        ];
        for (deployments, model, turn, want) in cases {
            let got = pick(&table(&deployments), model, turn);
            assert_eq!(
                ids(&got),
                want,
                "deployments {deployments:?}, model {model}, turn {turn}"
            );
        }
    }

    #[test]
    fn pick_carries_the_resolved_upstream() {
        let got = pick(&table(&[("a", false)]), "m", 0);
        assert_eq!(
            got,
            vec![Candidate {
                endpoint_id: "a".into(),
                base_url: "http://a/v1".into(),
                upstream_model: "a-model".into(),
                healthy: false,
            }]
        );
    }
}
