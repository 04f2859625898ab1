//! Replacing everything one declaring source (config file or environment) owns, so a reload
//! applies exactly the difference between the old and the new declaration.

use serde::{Deserialize, Serialize};

use super::{
    Alias, CatalogSpec, ClientKey, ClusterState, EndpointSpec, Fallback, ModelGroup,
    RouterSettings, Source, policy, validate_endpoint,
};

/// The complete declaration of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Declared {
    /// Endpoints.
    pub endpoints: Vec<EndpointSpec>,
    /// Explicit model groups.
    pub model_groups: Vec<ModelGroup>,
    /// Aliases.
    pub aliases: Vec<Alias>,
    /// Fallback chains.
    pub fallbacks: Vec<Fallback>,
    /// Client keys (hashes only).
    pub keys: Vec<ClientKey>,
    /// Router settings, when the source declares them.
    pub settings: Option<RouterSettings>,
    /// Catalog filters of the source's endpoints.
    pub catalog: Vec<CatalogSpec>,
}

impl ClusterState {
    /// Makes the items owned by `source` exactly `declared`. Items of a source with higher
    /// precedence keep their ids; items of lower precedence are replaced.
    pub(super) fn replace_source(
        &mut self,
        source: Source,
        mut declared: Declared,
        at_ms: u64,
    ) -> Result<bool, String> {
        if !matches!(source, Source::Config | Source::Env) {
            return Err(format!(
                "only config and env declarations can be replaced, not {}",
                source.as_str()
            ));
        }
        // Stamp and check everything before touching the state: all or nothing.
        stamp_and_check(source, &mut declared)?;
        let before = self.clone();
        let outranks = |existing: Source| existing.rank() < source.rank();

        self.endpoints
            .retain(|id, e| e.source != source || declared.endpoints.iter().any(|d| &d.id == id));
        for spec in declared.endpoints {
            if self
                .endpoints
                .get(&spec.id)
                .is_some_and(|e| outranks(e.source))
            {
                continue;
            }
            self.put_endpoint(spec, at_ms);
        }

        self.model_groups.retain(|name, g| {
            g.source != source || declared.model_groups.iter().any(|d| &d.name == name)
        });
        for group in declared.model_groups {
            if !self
                .model_groups
                .get(&group.name)
                .is_some_and(|g| outranks(g.source))
            {
                self.model_groups.insert(group.name.clone(), group);
            }
        }

        self.aliases.retain(|name, a| {
            a.source != source || declared.aliases.iter().any(|d| &d.name == name)
        });
        for alias in declared.aliases {
            if !self
                .aliases
                .get(&alias.name)
                .is_some_and(|a| outranks(a.source))
            {
                self.aliases.insert(alias.name.clone(), alias);
            }
        }

        self.fallbacks.retain(|key, f| {
            f.source != source || declared.fallbacks.iter().any(|d| &d.key() == key)
        });
        for fallback in declared.fallbacks {
            let key = fallback.key();
            if !self.fallbacks.get(&key).is_some_and(|f| outranks(f.source)) {
                self.fallbacks.insert(key, fallback);
            }
        }

        self.keys
            .retain(|id, k| k.source != source || declared.keys.iter().any(|d| &d.id == id));
        for mut key in declared.keys {
            match self.keys.get(&key.id) {
                Some(k) if outranks(k.source) => continue,
                // A declared key keeps the creation time it had.
                Some(k) => key.created_ms = k.created_ms,
                None => key.created_ms = at_ms,
            }
            self.keys.insert(key.id.clone(), key);
        }

        match declared.settings {
            Some(settings) if !outranks(self.settings.source) => self.settings = settings,
            Some(_) => {}
            None if self.settings.source == source => self.settings = RouterSettings::default(),
            None => {}
        }
        self.replace_catalog_filters(source, std::mem::take(&mut declared.catalog));
        Ok(*self != before)
    }
}

/// Marks every declared item as owned by `source` and checks it; the first invalid item is the
/// error.
fn stamp_and_check(source: Source, declared: &mut Declared) -> Result<(), String> {
    for e in &mut declared.endpoints {
        e.source = source;
        validate_endpoint(e)?;
    }
    for g in &mut declared.model_groups {
        g.source = source;
        policy::validate_group(g)?;
    }
    for a in &mut declared.aliases {
        a.source = source;
        policy::validate_alias(a)?;
    }
    for f in &mut declared.fallbacks {
        f.source = source;
        policy::validate_fallback(f)?;
    }
    for k in &mut declared.keys {
        k.source = source;
        policy::validate_key(k)?;
    }
    if let Some(s) = &mut declared.settings {
        s.source = source;
        policy::validate_settings(s)?;
    }
    for c in &declared.catalog {
        super::catalog::validate_spec(c)?;
    }
    Ok(())
}
