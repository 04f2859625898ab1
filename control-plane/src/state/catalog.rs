//! Catalogs in the cluster state: what each declared endpoint lists, the filters its
//! declaration puts on that listing, and the models an audit verified dead.
//!
//! The listing is stored unfiltered, so a changed filter (a config reload) takes effect at once,
//! without waiting for the next listing; the table compiler applies filters and verdicts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ClusterState, Source};

/// What to serve from an endpoint's catalog. Every field is optional in config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogFilter {
    /// Serve models the provider marks as paid too. Default false: where a provider marks free
    /// models (OpenRouter's `:free`, zero pricing), only those are served. Models a provider
    /// does not mark either way are always served.
    pub include_paid: bool,
    /// Globs (`*`, `?`) of paid models to serve anyway. Default none.
    pub include_extra: Vec<String>,
    /// Globs of models never to serve; wins over everything else. Default none.
    pub exclude: Vec<String>,
}

/// A catalog filter declared for one endpoint by one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSpec {
    /// Endpoint id the filter applies to.
    pub endpoint: String,
    /// The filter.
    pub filter: CatalogFilter,
    /// Where it was declared.
    #[serde(default)]
    pub source: Source,
}

/// One model as an endpoint's own listing describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct ListedModel {
    /// Upstream model id.
    pub id: String,
    /// Context window in tokens; 0 = not listed.
    pub context_length: u32,
    /// Whether the provider marks it free (`Some(true)`), paid (`Some(false)`) or neither.
    pub free: Option<bool>,
    /// What it accepts or does, as listed: `vision`, `embed`, `tools`, `completion`, ...
    pub capabilities: Vec<String>,
    /// Who publishes the model (`owned_by` of the listing), when listed.
    pub owned_by: String,
}

/// A model an audit found dead on an endpoint: it no longer serves it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeadModel {
    /// Upstream model id.
    pub model: String,
    /// Why: `not_found`, `auth_failed` (with every credential), ...
    pub reason: String,
    /// When the audit decided, ms since the Unix epoch.
    pub at_ms: u64,
}

impl ClusterState {
    /// Replaces what `endpoint_id` lists; an empty listing forgets it. Returns whether the
    /// state changed.
    pub(super) fn put_listing(
        &mut self,
        endpoint_id: String,
        mut models: Vec<ListedModel>,
    ) -> bool {
        models.sort();
        models.dedup_by(|a, b| a.id == b.id);
        if models.is_empty() {
            return self.catalogs.remove(&endpoint_id).is_some();
        }
        self.catalogs.insert(endpoint_id, models.clone()) != Some(models)
    }

    /// Replaces the models an audit verified dead on `endpoint_id`; empty clears them.
    pub(super) fn put_dead(&mut self, endpoint_id: String, mut dead: Vec<DeadModel>) -> bool {
        dead.sort();
        if dead.is_empty() {
            return self.dead_models.remove(&endpoint_id).is_some();
        }
        self.dead_models.insert(endpoint_id, dead.clone()) != Some(dead)
    }

    /// Makes the catalog filters `source` declares exactly `declared`; a filter of a source
    /// with higher precedence stays.
    pub(super) fn replace_catalog_filters(&mut self, source: Source, declared: Vec<CatalogSpec>) {
        self.catalog_filters
            .retain(|id, f| f.source != source || declared.iter().any(|d| &d.endpoint == id));
        for mut spec in declared {
            spec.source = source;
            if self
                .catalog_filters
                .get(&spec.endpoint)
                .is_some_and(|f| f.source.rank() < source.rank())
            {
                continue;
            }
            self.catalog_filters.insert(spec.endpoint.clone(), spec);
        }
    }
}

/// Checks a declared filter's globs.
pub(super) fn validate_spec(spec: &CatalogSpec) -> Result<(), String> {
    let empty = spec
        .filter
        .include_extra
        .iter()
        .chain(&spec.filter.exclude)
        .any(String::is_empty);
    if empty {
        return Err(format!(
            "endpoint `{}`: catalog globs must not be empty",
            spec.endpoint
        ));
    }
    Ok(())
}

/// Listings by endpoint id.
pub type Catalogs = BTreeMap<String, Vec<ListedModel>>;
