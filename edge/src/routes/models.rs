//! `GET /v1/models`: the public model names in the routing table, in OpenAI's list shape.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::error::ApiError;
use crate::routing::RoutingTable;
use crate::state::EdgeState;

/// OpenAI's model list.
#[derive(Debug, Serialize, PartialEq)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// One card per public model name, sorted by id.
    pub data: Vec<ModelCard>,
}

/// One model in the list.
#[derive(Debug, Serialize, PartialEq)]
pub struct ModelCard {
    /// The public model name.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds the model was first seen.
    pub created: i64,
    /// Who owns the model.
    pub owned_by: String,
}

/// Lists the models of the current table.
pub async fn list(State(state): State<EdgeState>) -> Result<Json<ModelList>, ApiError> {
    let table = state.table().ok_or(ApiError::NoRoutingTable)?;
    Ok(Json(model_list(&table)))
}

/// The table's models as OpenAI's list, sorted by id so the answer is stable.
pub fn model_list(table: &RoutingTable) -> ModelList {
    let mut data: Vec<ModelCard> = table
        .models
        .values()
        .map(|group| ModelCard {
            id: group.name.clone(),
            object: "model",
            created: group.created,
            owned_by: group.owned_by.clone(),
        })
        .collect();
    data.sort_by(|a, b| a.id.cmp(&b.id));
    ModelList {
        object: "list",
        data,
    }
}
