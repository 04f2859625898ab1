//! Routing-table deltas: what changed between two versions of the table, and applying that
//! change to the older one.
//!
//! Every list in the table is a set of items keyed by an identity (an endpoint's id, a model's
//! name, a cooldown's endpoint, credential and model …). A delta names the items put (added or
//! changed) and the keys removed, so its size follows the change, not the table. Applying a
//! delta yields the table in [`canonical`] order (each list sorted by key); the edge reads the
//! lists into maps, so order carries no meaning there.

use std::collections::BTreeMap;

use crate::v1::{
    Alias, ClientKey, Cooldown, Fallback, ModelRoute, RouteEndpoint, RoutingTable, TableDelta,
};

/// Why a delta cannot be applied to the table held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta starts from another version than the one held (a gap): resync in full.
    #[error("delta applies to version {base} but version {held} is held")]
    Gap {
        /// The delta's base version.
        base: u64,
        /// The held table's version.
        held: u64,
    },
    /// The delta comes from another cluster's history.
    #[error("delta is from another cluster")]
    OtherCluster,
    /// The message carries no delta.
    #[error("message is a full table, not a delta")]
    NotADelta,
}

type FallbackKey = (String, bool);
type CooldownKey = (String, String, String);

fn fallback_key(f: &Fallback) -> FallbackKey {
    (f.model.clone(), f.context_window)
}

fn cooldown_key(c: &Cooldown) -> CooldownKey {
    (
        c.endpoint_id.clone(),
        c.credential_id.clone(),
        c.model.clone(),
    )
}

/// The changes that turn `old` into `new`, as a message carrying `new`'s version and cluster
/// id. `None` when a list holds two items with one key, or the cluster changed: then only the
/// full table says it exactly.
pub fn diff(old: &RoutingTable, new: &RoutingTable) -> Option<RoutingTable> {
    if old.cluster_id != new.cluster_id {
        return None;
    }
    let (endpoints_put, endpoints_removed) =
        keyed(&old.endpoints, &new.endpoints, |e| e.id.clone())?;
    let (models_put, models_removed) = keyed(&old.models, &new.models, |m| m.name.clone())?;
    let (keys_put, keys_removed) = keyed(&old.keys, &new.keys, |k| k.id.clone())?;
    let (aliases_put, aliases_removed) = keyed(&old.aliases, &new.aliases, |a| a.name.clone())?;
    let (fallbacks_put, fallbacks_removed) = keyed(&old.fallbacks, &new.fallbacks, fallback_key)?;
    let (cooldowns_put, cooldowns_removed) = keyed(&old.cooldowns, &new.cooldowns, cooldown_key)?;
    let settings_changed = old.settings != new.settings;
    let broken_links_changed = old.broken_links != new.broken_links;
    let delta = TableDelta {
        base_version: old.version,
        endpoints_put,
        endpoints_removed,
        models_put,
        models_removed,
        keys_put,
        keys_removed,
        aliases_put,
        aliases_removed,
        fallbacks_put,
        fallbacks_removed: fallbacks_removed
            .into_iter()
            .map(|(model, context_window)| Fallback {
                model,
                chain: Vec::new(),
                context_window,
            })
            .collect(),
        cooldowns_put,
        cooldowns_removed: cooldowns_removed
            .into_iter()
            .map(|(endpoint_id, credential_id, model)| Cooldown {
                endpoint_id,
                credential_id,
                model,
                ..Default::default()
            })
            .collect(),
        settings_changed,
        settings: if settings_changed {
            new.settings.clone()
        } else {
            None
        },
        broken_links_changed,
        broken_links: if broken_links_changed {
            new.broken_links.clone()
        } else {
            Vec::new()
        },
    };
    Some(RoutingTable {
        version: new.version,
        cluster_id: new.cluster_id.clone(),
        delta: Some(delta),
        ..Default::default()
    })
}

/// Applies the delta message `message` to `held`, giving the table of `message.version`.
pub fn apply(held: &RoutingTable, message: &RoutingTable) -> Result<RoutingTable, DeltaError> {
    let delta = message.delta.as_ref().ok_or(DeltaError::NotADelta)?;
    if delta.base_version != held.version {
        return Err(DeltaError::Gap {
            base: delta.base_version,
            held: held.version,
        });
    }
    if !message.cluster_id.is_empty() && message.cluster_id != held.cluster_id {
        return Err(DeltaError::OtherCluster);
    }
    let fallbacks_removed: Vec<FallbackKey> =
        delta.fallbacks_removed.iter().map(fallback_key).collect();
    let cooldowns_removed: Vec<CooldownKey> =
        delta.cooldowns_removed.iter().map(cooldown_key).collect();
    Ok(RoutingTable {
        version: message.version,
        cluster_id: held.cluster_id.clone(),
        endpoints: patch(
            &held.endpoints,
            &delta.endpoints_put,
            &delta.endpoints_removed,
            |e: &RouteEndpoint| e.id.clone(),
        ),
        models: patch(
            &held.models,
            &delta.models_put,
            &delta.models_removed,
            |m: &ModelRoute| m.name.clone(),
        ),
        keys: patch(
            &held.keys,
            &delta.keys_put,
            &delta.keys_removed,
            |k: &ClientKey| k.id.clone(),
        ),
        aliases: patch(
            &held.aliases,
            &delta.aliases_put,
            &delta.aliases_removed,
            |a: &Alias| a.name.clone(),
        ),
        fallbacks: patch(
            &held.fallbacks,
            &delta.fallbacks_put,
            &fallbacks_removed,
            fallback_key,
        ),
        cooldowns: patch(
            &held.cooldowns,
            &delta.cooldowns_put,
            &cooldowns_removed,
            cooldown_key,
        ),
        settings: if delta.settings_changed {
            delta.settings.clone()
        } else {
            held.settings.clone()
        },
        broken_links: if delta.broken_links_changed {
            delta.broken_links.clone()
        } else {
            held.broken_links.clone()
        },
        delta: None,
    })
}

/// `table` with every keyed list sorted by its key: the order [`apply`] produces.
pub fn canonical(table: &RoutingTable) -> RoutingTable {
    let mut t = table.clone();
    t.endpoints.sort_by(|a, b| a.id.cmp(&b.id));
    t.models.sort_by(|a, b| a.name.cmp(&b.name));
    t.keys.sort_by(|a, b| a.id.cmp(&b.id));
    t.aliases.sort_by(|a, b| a.name.cmp(&b.name));
    t.fallbacks.sort_by_key(fallback_key);
    t.cooldowns.sort_by_key(cooldown_key);
    t
}

/// Items of `new` that `old` lacks or holds otherwise, and keys of `old` that `new` lacks.
/// `None` when either list repeats a key.
fn keyed<T: Clone + PartialEq, K: Ord + Clone>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> K,
) -> Option<(Vec<T>, Vec<K>)> {
    let index = |items: &[T]| -> Option<BTreeMap<K, usize>> {
        let mut map = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            if map.insert(key(item), i).is_some() {
                return None;
            }
        }
        Some(map)
    };
    let (before, after) = (index(old)?, index(new)?);
    let put = after
        .iter()
        .filter(|&(k, &i)| before.get(k).is_none_or(|&j| old[j] != new[i]))
        .map(|(_, &i)| new[i].clone())
        .collect();
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    Some((put, removed))
}

/// `held` with `removed` taken out and `put` put in, sorted by key.
fn patch<T: Clone, K: Ord>(held: &[T], put: &[T], removed: &[K], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut items: BTreeMap<K, T> = held.iter().map(|t| (key(t), t.clone())).collect();
    for k in removed {
        items.remove(k);
    }
    for t in put {
        items.insert(key(t), t.clone());
    }
    items.into_values().collect()
}

#[cfg(test)]
mod tests;
