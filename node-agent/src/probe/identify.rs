//! Which server kind answers at a port given without a kind (`host:port` peers).
//!
//! Every signature is tried, most specific first, so a custom-port Ollama is still an Ollama:
//! 1. `/api/tags` lists models → Ollama (which also serves `/v1/models`, so it goes first).
//! 2. `/v1/models` must list models, else nothing is there. Then: entries `owned_by: "vllm"` or with
//!    `max_model_len` → vLLM; LM Studio's `/api/v1/models` or `/api/v0/models` parse → LM Studio;
//!    LiteLLM's `/health/readiness` parses → LiteLLM; `/metrics` has vLLM gauges → vLLM.
//! 3. An OpenAI-compatible server matching none of these is reported as the kind whose default port
//!    it uses, else as vLLM (llama.cpp, SGLang and TGI speak the same API).

use super::{ServerKind, get, listing, litellm, lmstudio, vllm};
use crate::error::Error;

/// Finds the kind serving at `origin` (`http://host:port`), or the error of the last signature tried.
pub async fn identify(
    client: &reqwest::Client,
    origin: &str,
    port: u16,
    api_key: Option<&str>,
) -> Result<ServerKind, Error> {
    if listing(client, origin, ServerKind::Ollama, api_key)
        .await
        .is_ok()
    {
        return Ok(ServerKind::Ollama);
    }
    let openai = listing(client, origin, ServerKind::Vllm, api_key).await?;
    if looks_like_vllm(&openai.body) {
        return Ok(ServerKind::Vllm);
    }
    let url = |path: &str| format!("{origin}{path}");
    for (path, parse) in [
        (
            lmstudio::NATIVE_PATH,
            lmstudio::parse_native as fn(&[u8]) -> _,
        ),
        (lmstudio::LEGACY_PATH, lmstudio::parse_legacy),
    ] {
        if let Ok(body) = get(client, &url(path), api_key).await
            && parse(&body).is_ok()
        {
            return Ok(ServerKind::LmStudio);
        }
    }
    if let Ok(body) = get(client, &url(litellm::READINESS_PATH), None).await
        && litellm::parse_readiness(&body).is_some()
    {
        return Ok(ServerKind::Litellm);
    }
    if let Ok(body) = get(client, &url(vllm::METRICS_PATH), api_key).await
        && vllm::parse_metrics(&String::from_utf8_lossy(&body)).is_ok()
    {
        return Ok(ServerKind::Vllm);
    }
    Ok(fallback_kind(port))
}

/// The kind an unrecognised OpenAI-compatible server at `port` is reported as.
pub fn fallback_kind(port: u16) -> ServerKind {
    ServerKind::ALL
        .into_iter()
        .find(|k| k.default_port() == port)
        .unwrap_or(ServerKind::Vllm)
}

/// True when an OpenAI model list carries vLLM's marks (`owned_by: "vllm"` or `max_model_len`).
pub fn looks_like_vllm(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    value
        .get("data")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                e.get("owned_by").and_then(serde_json::Value::as_str) == Some("vllm")
                    || e.get("max_model_len").is_some()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_marks_and_fallbacks() {
        let cases: &[(&str, bool)] = &[
            (r#"{"data":[{"id":"a","owned_by":"vllm"}]}"#, true),
            (r#"{"data":[{"id":"a","max_model_len":4096}]}"#, true),
            (
                r#"{"data":[{"id":"a","owned_by":"organization_owner"}]}"#,
                false,
            ),
            (r#"{"data":[{"id":"a","owned_by":"openai"}]}"#, false),
            ("nope", false),
        ];
        for (body, want) in cases {
            assert_eq!(looks_like_vllm(body.as_bytes()), *want, "{body}");
        }
        assert_eq!(fallback_kind(1234), ServerKind::LmStudio);
        assert_eq!(fallback_kind(4000), ServerKind::Litellm);
        assert_eq!(fallback_kind(9999), ServerKind::Vllm);
    }
}
