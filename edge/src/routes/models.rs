//! `GET /v1/models` and `GET /v1/models/{id}`: the model names (groups and aliases) the caller
//! may use, in OpenAI's shapes, with what OpenAI clients ignore and people want to see: the
//! context window, capabilities, whether it is free, and whether it can answer now.

use axum::Json;
use axum::extract::{Path, State};
use http::HeaderMap;
use serde::Serialize;

use crate::auth::{self, Principal};
use crate::error::ApiError;
use std::sync::Arc;

use crate::routing::RoutingTable;
use crate::routing::table::{Deployment, ModelGroup};
use crate::routing::target::now_ms;
use crate::state::EdgeState;

/// OpenAI's model list.
#[derive(Debug, Serialize, PartialEq)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// One card per name, sorted by id.
    pub data: Vec<ModelCard>,
}

/// One model in the list.
#[derive(Debug, Serialize, PartialEq)]
pub struct ModelCard {
    /// The public model name (or alias).
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds the model was first seen.
    pub created: i64,
    /// Who owns the model: the endpoint that serves it, or `switchyard` for a declared group.
    pub owned_by: String,
    /// The largest context window among its deployments, in tokens; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// What it accepts or does (`vision`, `embed`, `tools`, ...), from listings and agent facts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Every deployment costs nothing per token.
    pub free: bool,
    /// Whether it can answer now.
    pub status: Availability,
}

/// Whether a model can answer now.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// A healthy deployment is not cooling down.
    Healthy,
    /// Every healthy deployment is cooling down (rate limited or failing).
    CoolingDown,
    /// No deployment's endpoint is healthy.
    Unhealthy,
}

/// What a group's deployments say together, at `now_ms`. Pure.
pub fn facts(group: &ModelGroup, now_ms: i64) -> (Option<u32>, Vec<String>, bool, Availability) {
    let context = group
        .deployments
        .iter()
        .map(|d| d.context_window())
        .max()
        .filter(|&n| n > 0);
    let mut capabilities: Vec<String> = group
        .deployments
        .iter()
        .flat_map(|d| d.capabilities.iter().cloned())
        .collect();
    capabilities.sort();
    capabilities.dedup();
    let free = !group.deployments.is_empty() && group.deployments.iter().all(|d| d.free);
    let healthy: Vec<_> = group
        .deployments
        .iter()
        .filter(|d| d.endpoint.healthy)
        .collect();
    let resting =
        |d: &Arc<Deployment>| (0..d.endpoint.slots()).all(|slot| d.cooled_until(slot) > now_ms);
    let status = if healthy.is_empty() {
        Availability::Unhealthy
    } else if healthy.iter().all(|d| resting(d)) {
        Availability::CoolingDown
    } else {
        Availability::Healthy
    };
    (context, capabilities, free, status)
}

fn principal(
    state: &EdgeState,
    table: &RoutingTable,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    auth::authenticate(headers, &table.keys, state.bootstrap(), now_ms())
}

/// Lists the models the caller may use.
pub async fn list(
    State(state): State<EdgeState>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, ApiError> {
    let table = state
        .table_or_wait()
        .await
        .ok_or(ApiError::NoRoutingTable)?;
    let who = principal(&state, &table, &headers)?;
    Ok(Json(model_list(&table, &who)))
}

/// One model's card; 404 when it does not exist or the caller may not use it.
pub async fn retrieve(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ModelCard>, ApiError> {
    let table = state.table().ok_or(ApiError::NoRoutingTable)?;
    let who = principal(&state, &table, &headers)?;
    card(&table, &who, &id)
        .map(Json)
        .ok_or(ApiError::ModelNotFound { model: id })
}

/// The card for `id` (a group, alias or `endpoint/model`) if `who` may use it.
pub fn card(table: &RoutingTable, who: &Principal, id: &str) -> Option<ModelCard> {
    let group = table.resolve(id)?;
    if !who.allows(id) && !who.allows(&group.name) {
        return None;
    }
    let (context_length, capabilities, free, status) = facts(&group, now_ms());
    Some(ModelCard {
        id: id.to_owned(),
        object: "model",
        created: group.created,
        owned_by: group.owned_by.clone(),
        context_length,
        capabilities,
        free,
        status,
    })
}

/// The table's groups and user aliases `who` may use, as OpenAI's list sorted by id. The
/// built-in capability aliases (`fast`, `coding`, ...) answer by name and in
/// `/v1/models/{id}`, but are not listed: the list stays the models the cluster serves.
pub fn model_list(table: &RoutingTable, who: &Principal) -> ModelList {
    let user_aliases = table
        .aliases
        .keys()
        .filter(|a| !table.alias_members.contains_key(*a));
    let mut data: Vec<ModelCard> = table
        .models
        .keys()
        .chain(user_aliases)
        .filter_map(|name| card(table, who, name))
        .collect();
    data.sort_by(|a, b| a.id.cmp(&b.id));
    data.dedup_by(|a, b| a.id == b.id);
    ModelList {
        object: "list",
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1;

    fn table(healthy: bool, cooled_until_ms: i64) -> RoutingTable {
        let wire = v1::RoutingTable {
            version: 1,
            endpoints: vec![v1::RouteEndpoint {
                id: "or".into(),
                kind: "openai".into(),
                base_url: "http://127.0.0.1:1/v1".into(),
                healthy,
                ..Default::default()
            }],
            models: vec![v1::ModelRoute {
                name: "pixtral".into(),
                deployments: vec![v1::Deployment {
                    endpoint_id: "or".into(),
                    upstream_model: "pixtral".into(),
                    weight: 1,
                    context_length: 32768,
                    capabilities: vec!["vision".into(), "tools".into()],
                    free: true,
                    ..Default::default()
                }],
                owned_by: "or".into(),
                ..Default::default()
            }],
            cooldowns: vec![v1::Cooldown {
                endpoint_id: "or".into(),
                model: "pixtral".into(),
                until_ms: cooled_until_ms,
                ..Default::default()
            }],
            ..Default::default()
        };
        RoutingTable::compile(&wire, None)
    }

    #[test]
    fn cards_say_context_capabilities_price_and_availability() {
        let now = 1_000_000;
        // (endpoint healthy, cooldown until, availability)
        let cases = [
            (true, 0, Availability::Healthy),
            (true, now + 5_000, Availability::CoolingDown),
            (true, now - 1, Availability::Healthy),
            (false, 0, Availability::Unhealthy),
        ];
        for (i, (healthy, until, want)) in cases.into_iter().enumerate() {
            let t = table(healthy, until);
            let (context, capabilities, free, status) = facts(&t.models["pixtral"], now);
            assert_eq!(context, Some(32768), "case {i}");
            assert_eq!(capabilities, vec!["tools", "vision"], "case {i}");
            assert!(free, "case {i}");
            assert_eq!(status, want, "case {i}");
        }
    }
}
