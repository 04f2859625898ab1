//! `GET /v1/models` and `GET /v1/models/{id}`: the model names (groups and aliases) the caller
//! may use, in OpenAI's shapes.

use axum::Json;
use axum::extract::{Path, State};
use http::HeaderMap;
use serde::Serialize;

use crate::auth::{self, Principal};
use crate::error::ApiError;
use crate::routing::RoutingTable;
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
    /// Who owns the model.
    pub owned_by: String,
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
    Some(ModelCard {
        id: id.to_owned(),
        object: "model",
        created: group.created,
        owned_by: group.owned_by.clone(),
    })
}

/// The table's groups and aliases `who` may use, as OpenAI's list sorted by id.
pub fn model_list(table: &RoutingTable, who: &Principal) -> ModelList {
    let mut data: Vec<ModelCard> = table
        .models
        .keys()
        .chain(table.aliases.keys())
        .filter_map(|name| card(table, who, name))
        .collect();
    data.sort_by(|a, b| a.id.cmp(&b.id));
    data.dedup_by(|a, b| a.id == b.id);
    ModelList {
        object: "list",
        data,
    }
}
