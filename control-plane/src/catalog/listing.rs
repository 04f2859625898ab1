//! Reading an endpoint's own model listing: OpenAI's `GET /v1/models` (with OpenRouter's
//! pricing, context length and modalities, vLLM's `max_model_len`), Ollama's `GET /api/tags`.
//! Parsing is pure; [`list`] is the one call that does IO.

use std::time::Duration;

use serde_json::Value;

use crate::seal::ClusterKey;
use crate::state::{Endpoint, ListedModel, Secret};

/// How long one listing may take. Provider listings are small but some (OpenRouter) are a few
/// hundred models.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an endpoint could not be listed. Messages carry no URL and no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// Not reachable, or no answer in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Answered with a non-2xx status.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// Answered 2xx with a body that is not a listing.
    #[error("the listing is not in a known shape")]
    Shape,
}

/// The URL of `endpoint`'s listing.
pub fn listing_url(endpoint: &Endpoint) -> String {
    let base = endpoint.base_url.trim_end_matches('/');
    if endpoint.kind == "ollama" {
        format!("{}/api/tags", base.trim_end_matches("/v1"))
    } else {
        format!("{base}/models")
    }
}

/// The first credential's secret, opened (sealed) or read from this process's environment.
pub fn first_secret(endpoint: &Endpoint, key: Option<&ClusterKey>) -> Option<String> {
    secret_of(endpoint.credentials.first().map(|c| &c.secret)?, key)
}

/// One credential's secret, opened or read from this process's environment.
pub fn secret_of(secret: &Secret, key: Option<&ClusterKey>) -> Option<String> {
    match secret {
        Secret::Env { name } => std::env::var(name).ok(),
        Secret::Sealed { sealed } => key?.open(sealed),
    }
}

/// Lists `endpoint`'s models, authenticating with `secret` when given.
pub async fn list(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    secret: Option<&str>,
) -> Result<Vec<ListedModel>, ListingError> {
    let mut request = client.get(listing_url(endpoint)).timeout(LIST_TIMEOUT);
    if let Some(secret) = secret {
        request = if endpoint.kind == "anthropic" {
            request
                .header("x-api-key", secret)
                .header("anthropic-version", "2023-06-01")
        } else {
            request.bearer_auth(secret)
        };
    }
    let response = request
        .send()
        .await
        .map_err(|e| ListingError::Unreachable(kind_of(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ListingError::Status(status.as_u16()));
    }
    let body: Value = response.json().await.map_err(|_| ListingError::Shape)?;
    parse(&body).ok_or(ListingError::Shape)
}

fn kind_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or failed".into()
    } else {
        "request failed".into()
    }
}

/// Reads either listing shape: OpenAI's `{"data": [...]}` or Ollama's `{"models": [...]}`.
pub fn parse(body: &Value) -> Option<Vec<ListedModel>> {
    if let Some(data) = body.get("data").and_then(Value::as_array) {
        return Some(data.iter().filter_map(openai_model).collect());
    }
    let models = body.get("models").and_then(Value::as_array)?;
    Some(models.iter().filter_map(ollama_model).collect())
}

fn openai_model(m: &Value) -> Option<ListedModel> {
    let id = m.get("id")?.as_str()?.to_string();
    let context_length = ["context_length", "max_model_len", "context_window"]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_u64))
        .or_else(|| m.pointer("/top_provider/context_length")?.as_u64())
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
    // Listed prices decide; without them, OpenRouter's `:free` suffix does.
    let free = m
        .get("pricing")
        .map(|p| {
            ["prompt", "completion"]
                .iter()
                .all(|k| p.get(*k).is_none_or(price_is_zero))
        })
        .or_else(|| id.ends_with(":free").then_some(true));
    let mut capabilities = Vec::new();
    let has = |pointer: &str, what: &str| {
        m.pointer(pointer)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(what)))
    };
    if has("/architecture/input_modalities", "image") {
        capabilities.push("vision".to_string());
    }
    if has("/architecture/output_modalities", "embeddings") {
        capabilities.push("embed".to_string());
    }
    if has("/supported_parameters", "tools") {
        capabilities.push("tools".to_string());
    }
    Some(ListedModel {
        id,
        context_length,
        free,
        capabilities,
        owned_by: m
            .get("owned_by")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// A price written as a string (`"0"`, `"0.0000015"`) or a number.
fn price_is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.trim().parse::<f64>().is_ok_and(|p| p == 0.0),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn ollama_model(m: &Value) -> Option<ListedModel> {
    let id = m
        .get("name")
        .or_else(|| m.get("model"))?
        .as_str()?
        .to_string();
    // A local server costs nothing per token.
    Some(ListedModel {
        id,
        free: Some(true),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openrouter_listing_marks_free_paid_context_and_capabilities() {
        let body = json!({"data": [
            {"id": "meta-llama/llama-3.2-3b-instruct:free", "context_length": 131072,
             "pricing": {"prompt": "0", "completion": "0"}},
            {"id": "openai/gpt-4o-mini", "context_length": 128000,
             "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
             "architecture": {"input_modalities": ["text", "image"]},
             "supported_parameters": ["tools", "temperature"]},
            {"id": "qwen/qwen3-coder", "pricing": {"prompt": 0, "completion": 0}},
            {"id": "was/free:free", "pricing": {"prompt": "0.1", "completion": "0"}},
            {"id": "mistral:free"},
            {"id": "llama-3.1-8b-instant", "owned_by": "Meta"},
            {"id": "Qwen/Qwen2.5-7B", "max_model_len": 32768},
            {"object": "model"}
        ]});
        let listed = parse(&body).unwrap();
        let summary: Vec<(&str, u32, Option<bool>, Vec<&str>)> = listed
            .iter()
            .map(|m| {
                (
                    m.id.as_str(),
                    m.context_length,
                    m.free,
                    m.capabilities.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "meta-llama/llama-3.2-3b-instruct:free",
                    131072,
                    Some(true),
                    vec![]
                ),
                (
                    "openai/gpt-4o-mini",
                    128000,
                    Some(false),
                    vec!["vision", "tools"]
                ),
                ("qwen/qwen3-coder", 0, Some(true), vec![]),
                ("was/free:free", 0, Some(false), vec![]),
                ("mistral:free", 0, Some(true), vec![]),
                ("llama-3.1-8b-instant", 0, None, vec![]),
                ("Qwen/Qwen2.5-7B", 32768, None, vec![]),
            ]
        );
        assert_eq!(listed[5].owned_by, "Meta");
    }

    #[test]
    fn ollama_tags_and_unknown_shapes() {
        let tags = json!({"models": [{"name": "llama3.2:latest"}, {"model": "qwen2.5:7b"}]});
        let ids: Vec<String> = parse(&tags).unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, vec!["llama3.2:latest", "qwen2.5:7b"]);
        assert_eq!(parse(&json!({"object": "list"})), None);
    }

    #[test]
    fn listing_urls_follow_the_kind() {
        let mut e = Endpoint {
            id: "o".into(),
            kind: "ollama".into(),
            base_url: "http://h:11434/v1".into(),
            models: vec![],
            weight: 1,
            source: crate::state::Source::Config,
            node: None,
            discovered_as: None,
            created_ms: 0,
            credentials: vec![],
            limits: Default::default(),
            upstream: Default::default(),
            facts: None,
        };
        assert_eq!(listing_url(&e), "http://h:11434/api/tags");
        e.kind = "openai".into();
        e.base_url = "https://openrouter.ai/api/v1".into();
        assert_eq!(listing_url(&e), "https://openrouter.ai/api/v1/models");
    }
}
