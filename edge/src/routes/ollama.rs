//! Ollama's side endpoints, so Ollama clients (Open WebUI's Ollama connection, the `ollama`
//! client) can point at an edge: `GET /`, `/api/version`, `/api/tags`, `/api/ps` and
//! `POST /api/show`. The chat, generate and embed POSTs go through [`super::forward`]. Every
//! model is listed with a tag (`gpt-4o:latest`): Open WebUI adds `:latest` to bare names.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use http::HeaderMap;
use serde_json::{Value, json};

use super::models::{ModelCard, model_list};
use crate::auth::{self, KeyStore};
use crate::dialect::Inbound;
use crate::dialect::ollama::inbound::ApiOp;
use crate::error::ApiError;
use crate::metrics::Operation;
use crate::routing::target::now_ms;
use crate::state::EdgeState;

/// The Ollama version the edge answers as (Open WebUI checks it is recent enough).
const VERSION: &str = "0.6.2";

/// The POSTs served by the forwarding path: (path, engine operation, dialect).
pub const POSTS: [(&str, Operation, Inbound); 4] = [
    ("/api/chat", Operation::Chat, Inbound::Ollama(ApiOp::Chat)),
    (
        "/api/generate",
        Operation::Chat,
        Inbound::Ollama(ApiOp::Generate),
    ),
    (
        "/api/embed",
        Operation::Embeddings,
        Inbound::Ollama(ApiOp::Embed),
    ),
    (
        "/api/embeddings",
        Operation::Embeddings,
        Inbound::Ollama(ApiOp::Embeddings),
    ),
];

/// The operation and dialect of an Ollama POST path.
pub fn operation(path: &str) -> Option<(Operation, Inbound)> {
    POSTS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|&(_, op, inbound)| (op, inbound))
}

/// `GET /`: what Ollama answers, which clients use as a liveness check.
pub async fn running() -> &'static str {
    "Ollama is running"
}

/// `GET /api/version`.
pub async fn version() -> Json<Value> {
    Json(json!({"version": VERSION}))
}

/// The models the caller may use.
fn listed(state: &EdgeState, headers: &HeaderMap) -> Result<Vec<ModelCard>, ApiError> {
    let table = state.table();
    let no_keys = KeyStore::default();
    let keys = table.as_deref().map_or(&no_keys, |t| &t.keys);
    let who = auth::authenticate(headers, keys, state.bootstrap(), now_ms())?;
    let table = table.ok_or(ApiError::NoRoutingTable)?;
    Ok(model_list(&table, &who).data)
}

/// An error in Ollama's shape.
fn error(e: ApiError) -> Response {
    Inbound::Ollama(ApiOp::Chat).error(e)
}

/// A name as Ollama lists it: with a tag.
fn tagged(id: &str) -> String {
    if id.contains(':') {
        id.to_owned()
    } else {
        format!("{id}:latest")
    }
}

/// One model in Ollama's list shape. Size and digest are not known at the edge: 0 and a
/// digest of the name, stable across calls.
fn entry(card: &ModelCard) -> Value {
    use sha2::Digest as _;
    let name = tagged(&card.id);
    let digest = sha2::Sha256::digest(name.as_bytes());
    let digest: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let modified = crate::dialect::rfc3339(u64::try_from(card.created).unwrap_or(0));
    // Ollama's fields, then the same facts `/v1/models` carries.
    json!({
        "name": name, "model": name, "modified_at": modified, "size": 0, "digest": digest,
        "details": {"parent_model": "", "format": "", "family": card.owned_by,
                    "families": [card.owned_by], "parameter_size": "", "quantization_level": ""},
        "capabilities": capabilities(card), "context_length": card.context_length,
        "free": card.free, "status": card.status,
    })
}

/// What `/api/show` claims: the card's capabilities, and `tools` always (the edge forwards
/// tools to any model, and Ollama clients send none to a model that does not claim them).
fn shown_capabilities(card: &ModelCard) -> Vec<String> {
    let mut caps = capabilities(card);
    if !caps.iter().any(|c| c == "tools") && caps.iter().any(|c| c == "completion") {
        caps.push("tools".into());
    }
    caps
}

/// A card's capabilities in Ollama's words: `completion` unless it only embeds, `embedding`
/// for `embed`, the others as listed.
fn capabilities(card: &ModelCard) -> Vec<String> {
    let embeds = card.capabilities.iter().any(|c| c == "embed");
    let mut out: Vec<String> = (!embeds)
        .then(|| "completion".to_string())
        .into_iter()
        .collect();
    out.extend(card.capabilities.iter().map(|c| match c.as_str() {
        "embed" => "embedding".to_string(),
        other => other.to_string(),
    }));
    out
}

/// `GET /api/tags`: every model the caller may use.
pub async fn tags(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    match listed(&state, &headers) {
        Ok(cards) => {
            Json(json!({"models": cards.iter().map(entry).collect::<Vec<_>>()})).into_response()
        }
        Err(e) => error(e),
    }
}

/// `GET /api/ps`: the same models, as "running" (they are served remotely, never unloaded).
pub async fn ps(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    let cards = match listed(&state, &headers) {
        Ok(cards) => cards,
        Err(e) => return error(e),
    };
    let expires = crate::dialect::rfc3339(u64::try_from(now_ms() / 1000).unwrap_or(0) + 86_400);
    let models: Vec<Value> = cards
        .iter()
        .map(|c| {
            let mut e = entry(c);
            e["expires_at"] = json!(expires);
            e["size_vram"] = json!(0);
            e
        })
        .collect();
    Json(json!({"models": models})).into_response()
}

/// `POST /api/show {"model"}`: what the edge knows of a model; 404 in Ollama's shape when the
/// caller may not use it.
pub async fn show(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let cards = match listed(&state, &headers) {
        Ok(cards) => cards,
        Err(e) => return error(e),
    };
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let name = asked["model"]
        .as_str()
        .or_else(|| asked["name"].as_str())
        .unwrap_or("");
    let Some(card) = cards.iter().find(|c| c.id == name || tagged(&c.id) == name) else {
        let e = ApiError::ModelNotFound {
            model: name.to_owned(),
        };
        return error(e);
    };
    let e = entry(card);
    Json(json!({
        "modelfile": "", "parameters": "", "template": "", "details": e["details"],
        "model_info": {}, "capabilities": shown_capabilities(card),
        "modified_at": e["modified_at"],
    }))
    .into_response()
}
