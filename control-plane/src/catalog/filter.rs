//! Which models an endpoint serves: the ones it is declared with, plus those its listing holds
//! that pass its catalog filter, minus those an audit verified dead. Pure.
//!
//! Filter rules, in order: an `exclude` glob drops the model; an `include_extra` glob serves
//! it; a model the provider marks paid is dropped unless `include_paid`; anything else is
//! served (a provider that marks nothing serves its whole listing).

use serde::{Deserialize, Serialize};

use crate::state::{CatalogFilter, ClusterState, Endpoint, ListedModel, Source};

/// Why a listed model is or is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Passes the filter.
    Served,
    /// Matches an `exclude` glob.
    Excluded,
    /// Marked paid, and neither `include_paid` nor an `include_extra` glob lets it through.
    Paid,
}

/// The filter's verdict on one listed model.
pub fn verdict(filter: &CatalogFilter, model: &ListedModel) -> Verdict {
    if filter.exclude.iter().any(|g| glob(g, &model.id)) {
        return Verdict::Excluded;
    }
    if filter.include_extra.iter().any(|g| glob(g, &model.id)) {
        return Verdict::Served;
    }
    if model.free == Some(false) && !filter.include_paid {
        return Verdict::Paid;
    }
    Verdict::Served
}

/// A model an endpoint serves, with what its listing says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel<'a> {
    /// Upstream model id.
    pub id: &'a str,
    /// The listing's entry, when the endpoint lists the model.
    pub listed: Option<&'a ListedModel>,
}

/// Whether the catalog task lists `endpoint`: a declared endpoint without a model list, or one
/// with a catalog filter. Discovered endpoints are listed by their node agent instead.
pub fn catalogued(state: &ClusterState, endpoint: &Endpoint) -> bool {
    matches!(endpoint.source, Source::Config | Source::Env | Source::Api)
        && (endpoint.models.is_empty() || state.catalog_filters.contains_key(&endpoint.id))
}

/// The models `endpoint` serves, sorted and unique.
pub fn served<'a>(state: &'a ClusterState, endpoint: &'a Endpoint) -> Vec<ServedModel<'a>> {
    let mut out = servable(state, endpoint);
    let dead = state.dead_models.get(&endpoint.id);
    out.retain(|m| !dead.is_some_and(|d| d.iter().any(|x| x.model == m.id)));
    out
}

/// The models `endpoint` would serve if none were dead: what an audit probes, so that a dead
/// model that recovers comes back.
pub fn servable<'a>(state: &'a ClusterState, endpoint: &'a Endpoint) -> Vec<ServedModel<'a>> {
    let listing = state
        .catalogs
        .get(&endpoint.id)
        .filter(|_| catalogued(state, endpoint))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let default_filter = CatalogFilter::default();
    let filter = state
        .catalog_filters
        .get(&endpoint.id)
        .map_or(&default_filter, |s| &s.filter);
    let listed = |id: &str| listing.iter().find(|m| m.id == id);

    let mut out: Vec<ServedModel<'a>> = endpoint
        .models
        .iter()
        .map(|id| ServedModel {
            id,
            listed: listed(id),
        })
        .collect();
    out.extend(
        listing
            .iter()
            .filter(|m| verdict(filter, m) == Verdict::Served)
            .map(|m| ServedModel {
                id: &m.id,
                listed: Some(m),
            }),
    );
    out.sort_by(|a, b| a.id.cmp(b.id));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

pub use switchyard_proto::glob;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CatalogSpec, Command, DeadModel, EndpointSpec, Limits};

    fn model(id: &str, free: Option<bool>) -> ListedModel {
        ListedModel {
            id: id.into(),
            free,
            ..Default::default()
        }
    }

    #[test]
    fn filter_verdicts() {
        let filter = |paid: bool, extra: &[&str], exclude: &[&str]| CatalogFilter {
            include_paid: paid,
            include_extra: extra.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        };
        let free = model("meta-llama/llama-3.2-3b:free", Some(true));
        let paid = model("openai/gpt-4o-mini", Some(false));
        let unmarked = model("llama-3.1-8b-instant", None);
        // (filter, model, verdict)
        let cases = [
            (filter(false, &[], &[]), &free, Verdict::Served),
            (filter(false, &[], &[]), &paid, Verdict::Paid),
            (filter(false, &[], &[]), &unmarked, Verdict::Served),
            (filter(true, &[], &[]), &paid, Verdict::Served),
            (filter(false, &["openai/*"], &[]), &paid, Verdict::Served),
            // Exclude wins over include_extra and include_paid.
            (
                filter(true, &["openai/*"], &["*gpt*"]),
                &paid,
                Verdict::Excluded,
            ),
            (filter(false, &[], &["*:free"]), &free, Verdict::Excluded),
            (
                filter(false, &[], &["llama-3.1-?b-instant"]),
                &unmarked,
                Verdict::Excluded,
            ),
        ];
        for (i, (f, m, want)) in cases.into_iter().enumerate() {
            assert_eq!(verdict(&f, m), want, "case {i}");
        }
    }

    fn endpoint(state: &mut ClusterState, id: &str, models: &[&str]) {
        state.apply(Command::PutEndpoint {
            spec: EndpointSpec {
                id: id.into(),
                kind: "openai".into(),
                base_url: "https://openrouter.ai/api/v1".into(),
                models: models.iter().map(|s| s.to_string()).collect(),
                weight: 1,
                source: Source::Config,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        });
    }

    fn ids(state: &ClusterState, id: &str) -> Vec<String> {
        served(state, &state.endpoints[id])
            .iter()
            .map(|m| m.id.to_string())
            .collect()
    }

    #[test]
    fn an_endpoint_without_models_serves_its_filtered_listing_minus_the_dead() {
        let mut state = ClusterState::default();
        endpoint(&mut state, "or", &[]);
        assert!(ids(&state, "or").is_empty());
        state.apply(Command::PutListing {
            endpoint_id: "or".into(),
            models: vec![model("b:free", Some(true)), model("a", Some(false))],
        });
        assert_eq!(ids(&state, "or"), vec!["b:free"]);
        state.catalog_filters.insert(
            "or".into(),
            CatalogSpec {
                endpoint: "or".into(),
                filter: CatalogFilter {
                    include_paid: true,
                    ..Default::default()
                },
                source: Source::Config,
            },
        );
        assert_eq!(ids(&state, "or"), vec!["a", "b:free"]);
        state.apply(Command::PutDeadModels {
            endpoint_id: "or".into(),
            dead: vec![DeadModel {
                model: "a".into(),
                reason: "not_found".into(),
                at_ms: 1,
            }],
        });
        assert_eq!(ids(&state, "or"), vec!["b:free"]);
    }

    #[test]
    fn declared_models_are_served_and_a_listing_without_a_filter_is_ignored() {
        let mut state = ClusterState::default();
        endpoint(&mut state, "groq", &["llama"]);
        state.apply(Command::PutListing {
            endpoint_id: "groq".into(),
            models: vec![model("llama", None), model("other", None)],
        });
        // Declared with a model list and no filter: the list is what it serves.
        assert_eq!(ids(&state, "groq"), vec!["llama"]);
        let served = served(&state, &state.endpoints["groq"]);
        assert!(served[0].listed.is_none());
    }

    #[test]
    fn unchanged_listings_change_nothing() {
        let mut state = ClusterState::default();
        let put = |models| Command::PutListing {
            endpoint_id: "x".into(),
            models,
        };
        assert!(matches!(
            state.apply(put(vec![model("a", None)])),
            crate::state::Outcome::Changed { .. }
        ));
        assert!(matches!(
            state.apply(put(vec![model("a", None)])),
            crate::state::Outcome::Unchanged { .. }
        ));
        assert!(matches!(
            state.apply(put(vec![])),
            crate::state::Outcome::Changed { .. }
        ));
        assert!(state.catalogs.is_empty());
    }
}
