//! Chains that cannot silently rot: every fallback chain member and alias target must name a
//! model group that serves something. Those that do not are reported with a reason, compiled
//! into the routing table (so `doctor`, edges and metrics all read one list), and warned about
//! at config load. Pure.

use std::collections::BTreeSet;

use switchyard_proto::v1::BrokenLink;

use super::filter::{Verdict, catalogued, verdict};
use crate::state::ClusterState;

/// Why a named group serves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No endpoint lists it and no group declares it.
    Unknown,
    /// A catalog lists it, but the endpoint's filter keeps it out.
    Filtered,
    /// An audit verified it dead.
    Dead,
    /// A declared group whose endpoints are all missing.
    NoDeployments,
}

impl Reason {
    /// The name in the table, the metric label and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unknown => "unknown",
            Reason::Filtered => "filtered",
            Reason::Dead => "dead",
            Reason::NoDeployments => "no_deployments",
        }
    }

    /// Every reason, for metrics that list zeros too.
    pub const ALL: [Reason; 4] = [
        Reason::Unknown,
        Reason::Filtered,
        Reason::Dead,
        Reason::NoDeployments,
    ];
}

/// Why `name` serves nothing in `state`.
fn reason(state: &ClusterState, name: &str) -> Reason {
    let dead = state
        .dead_models
        .values()
        .any(|d| d.iter().any(|m| m.model == name));
    if dead {
        return Reason::Dead;
    }
    let default_filter = Default::default();
    let filtered = state.catalogs.iter().any(|(id, listing)| {
        let Some(endpoint) = state.endpoints.get(id) else {
            return false;
        };
        let f = state
            .catalog_filters
            .get(id)
            .map_or(&default_filter, |s| &s.filter);
        catalogued(state, endpoint)
            && listing
                .iter()
                .any(|m| m.id == name && verdict(f, m) != Verdict::Served)
    });
    if filtered {
        return Reason::Filtered;
    }
    if state.model_groups.contains_key(name) {
        return Reason::NoDeployments;
    }
    Reason::Unknown
}

/// The fallback members and alias targets of `state` not among `served` (the table's model
/// names), in a stable order.
pub fn broken(state: &ClusterState, served: &BTreeSet<&str>) -> Vec<BrokenLink> {
    let mut out = Vec::new();
    let mut check = |kind: &str, owner: &str, target: &str| {
        if !served.contains(target) {
            out.push(BrokenLink {
                kind: kind.into(),
                owner: owner.into(),
                target: target.into(),
                reason: reason(state, target).as_str().into(),
            });
        }
    };
    for f in state.fallbacks.values() {
        let kind = if f.context_window {
            "context_fallback"
        } else {
            "fallback"
        };
        for target in &f.chain {
            check(kind, &f.model, target);
        }
    }
    for a in state.aliases.values() {
        check("alias", &a.name, &a.target);
    }
    out
}

/// One line for a log or a report: `fallback of llama3 names big, which is filtered`.
pub fn describe(link: &BrokenLink) -> String {
    let what = match link.kind.as_str() {
        "alias" => format!("alias {}", link.owner),
        "context_fallback" => format!("context-window fallback of {}", link.owner),
        _ => format!("fallback of {}", link.owner),
    };
    let why = match link.reason.as_str() {
        "filtered" => "which the catalog filter keeps out",
        "dead" => "which an audit found dead",
        "no_deployments" => "whose endpoints are all missing",
        _ => "which no endpoint serves",
    };
    format!("{what} names `{}`, {why}", link.target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{
        Alias, CatalogFilter, CatalogSpec, Command, DeadModel, DeploymentSpec, EndpointSpec,
        Fallback, Limits, ListedModel, ModelGroup, Source,
    };

    #[test]
    fn every_kind_of_broken_link_is_named() {
        let mut state = ClusterState::default();
        state.apply(Command::PutEndpoint {
            spec: EndpointSpec {
                id: "or".into(),
                kind: "openai".into(),
                base_url: "https://openrouter.ai/api/v1".into(),
                models: vec![],
                weight: 1,
                source: Source::Config,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        });
        state.catalog_filters.insert(
            "or".into(),
            CatalogSpec {
                endpoint: "or".into(),
                filter: CatalogFilter::default(),
                source: Source::Config,
            },
        );
        let listed = |id: &str, free| ListedModel {
            id: id.into(),
            free: Some(free),
            ..Default::default()
        };
        state.apply(Command::PutListing {
            endpoint_id: "or".into(),
            models: vec![
                listed("a:free", true),
                listed("paid", false),
                listed("gone:free", true),
            ],
        });
        state.apply(Command::PutDeadModels {
            endpoint_id: "or".into(),
            dead: vec![DeadModel {
                model: "gone:free".into(),
                reason: "not_found".into(),
                at_ms: 0,
            }],
        });
        state.apply(Command::PutModelGroup {
            group: ModelGroup {
                name: "orphan".into(),
                deployments: vec![DeploymentSpec {
                    endpoint_id: "missing".into(),
                    upstream_model: "x".into(),
                    weight: 1,
                    context_length: 0,
                    limits: Limits::default(),
                    price: Default::default(),
                }],
                source: Source::Config,
            },
        });
        state.apply(Command::PutFallback {
            fallback: Fallback {
                model: "a:free".into(),
                chain: vec![
                    "paid".into(),
                    "gone:free".into(),
                    "orphan".into(),
                    "typo".into(),
                ],
                context_window: false,
                source: Source::Config,
            },
        });
        state.apply(Command::PutAlias {
            alias: Alias {
                name: "fast".into(),
                target: "a:free".into(),
                source: Source::Config,
            },
        });
        let table = crate::table::compile(&state, None).table;
        let found: Vec<(&str, &str, &str, &str)> = table
            .broken_links
            .iter()
            .map(|l| {
                (
                    l.kind.as_str(),
                    l.owner.as_str(),
                    l.target.as_str(),
                    l.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("fallback", "a:free", "paid", "filtered"),
                ("fallback", "a:free", "gone:free", "dead"),
                ("fallback", "a:free", "orphan", "no_deployments"),
                ("fallback", "a:free", "typo", "unknown"),
            ]
        );
        assert_eq!(
            describe(&table.broken_links[0]),
            "fallback of a:free names `paid`, which the catalog filter keeps out"
        );
    }
}
