//! Anthropic's side endpoints: `count_tokens` (an estimate: the edge has no tokenizer) and the
//! model list in Anthropic's shape under `/anthropic/v1/models`. The Messages POSTs themselves
//! go through [`super::forward`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use http::HeaderMap;
use serde_json::{Value, json};

use super::models::model_list;
use crate::auth::{self, KeyStore, Principal};
use crate::dialect::Inbound;
use crate::dialect::anthropic;
use crate::dialect::canonical::Part;
use crate::error::ApiError;
use crate::routing::target::now_ms;
use crate::state::EdgeState;

/// The paths Anthropic clients POST messages to (`ANTHROPIC_BASE_URL` set to the edge, or to
/// the edge's `/anthropic`).
pub const MESSAGES: [&str; 2] = ["/v1/messages", "/anthropic/v1/messages"];

fn principal(state: &EdgeState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let table = state.table();
    let no_keys = KeyStore::default();
    let keys = table.as_deref().map_or(&no_keys, |t| &t.keys);
    auth::authenticate(headers, keys, state.bootstrap(), now_ms())
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`, estimated at four bytes a token
/// over the request's text, tool arguments and tool definitions.
pub async fn count_tokens(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let counted = principal(&state, &headers).and_then(|_| {
        let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson {
            reason: e.to_string(),
        })?;
        let request = anthropic::request::decode(&value)
            .map_err(|message| ApiError::InvalidRequest { message })?;
        let mut bytes: usize = request.system.iter().map(String::len).sum();
        for part in request.messages.iter().flat_map(|m| &m.parts) {
            bytes += match part {
                Part::Text(t) => t.len(),
                Part::Thinking { text, .. } => text.len(),
                Part::ToolCall {
                    name, arguments, ..
                } => name.len() + arguments.to_string().len(),
                Part::ToolResult { content, .. } => content.len(),
                // Anthropic bills a typical image at about 1.6k tokens.
                Part::Image { .. } => 6_400,
            };
        }
        for tool in &request.tools {
            bytes += tool.name.len()
                + tool.description.as_deref().map_or(0, str::len)
                + tool.parameters.to_string().len();
        }
        Ok(json!({"input_tokens": bytes.div_ceil(4)}))
    });
    match counted {
        Ok(v) => Json(v).into_response(),
        Err(e) => Inbound::Anthropic.error(e),
    }
}

/// `GET /anthropic/v1/models`: the same names and facts as `/v1/models`, in Anthropic's list
/// shape.
pub async fn models(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    let listed = principal(&state, &headers).and_then(|who| {
        let table = state.table().ok_or(ApiError::NoRoutingTable)?;
        Ok(model_list(&table, &who))
    });
    let list = match listed {
        Ok(list) => list,
        Err(e) => return Inbound::Anthropic.error(e),
    };
    let data: Vec<Value> = list
        .data
        .iter()
        .map(|card| {
            let created = httpdate::fmt_http_date(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(card.created).unwrap_or(0)),
            );
            // Anthropic's fields, then the same facts `/v1/models` carries.
            json!({"type": "model", "id": card.id, "display_name": card.id, "created_at": created,
                   "owned_by": card.owned_by, "context_length": card.context_length,
                   "capabilities": card.capabilities, "free": card.free, "status": card.status})
        })
        .collect();
    Json(json!({
        "data": data,
        "has_more": false,
        "first_id": list.data.first().map(|c| c.id.clone()),
        "last_id": list.data.last().map(|c| c.id.clone()),
    }))
    .into_response()
}
