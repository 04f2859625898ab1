//! LM Studio: `GET /v1/models` (OpenAI list). With JIT loading it lists downloaded models too, so
//! which are loaded comes from the native REST API: `GET /api/v1/models` (0.4+, `loaded_instances`)
//! or else the older `GET /api/v0/models` (`state`: `loaded` / `not-loaded`).

use std::collections::BTreeMap;

use super::ServerKind;
use super::openai::parse_model_list;
use crate::error::Error;

/// Path of LM Studio's OpenAI-compatible model listing.
pub const LISTING_PATH: &str = "/v1/models";
/// Path of the native REST model listing (LM Studio 0.4 and later).
pub const NATIVE_PATH: &str = "/api/v1/models";
/// Path of the legacy REST model listing (LM Studio 0.3.6 and later).
pub const LEGACY_PATH: &str = "/api/v0/models";

/// Which models are loaded, and each model's context length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelStates {
    /// Loaded model ids, sorted.
    pub loaded: Vec<String>,
    /// Context length per model id: the loaded context when loaded, else the maximum.
    pub context_lengths: BTreeMap<String, u32>,
}

fn malformed(reason: &str) -> Error {
    Error::MalformedListing {
        kind: ServerKind::LmStudio.as_str(),
        reason: reason.to_owned(),
    }
}

fn as_u32(value: Option<&serde_json::Value>) -> Option<u32> {
    value
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
}

/// Parses `/api/v1/models`: a model is loaded when `loaded_instances` is non-empty.
pub fn parse_native(body: &[u8]) -> Result<ModelStates, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| malformed("native listing is not JSON"))?;
    let entries = value
        .get("models")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| malformed("native listing has no `models` array"))?;
    let mut states = ModelStates::default();
    for entry in entries {
        let Some(key) = entry.get("key").and_then(serde_json::Value::as_str) else {
            continue;
        };
        let instances = entry
            .get("loaded_instances")
            .and_then(serde_json::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let loaded_ctx = instances
            .iter()
            .find_map(|i| as_u32(i.get("config").and_then(|c| c.get("context_length"))));
        if !instances.is_empty() {
            states.loaded.push(key.to_owned());
        }
        if let Some(ctx) = loaded_ctx.or_else(|| as_u32(entry.get("max_context_length"))) {
            states.context_lengths.insert(key.to_owned(), ctx);
        }
    }
    states.loaded.sort();
    states.loaded.dedup();
    Ok(states)
}

/// Parses `/api/v0/models`: a model is loaded when its `state` is `loaded`.
pub fn parse_legacy(body: &[u8]) -> Result<ModelStates, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| malformed("legacy listing is not JSON"))?;
    let entries = value
        .get("data")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| malformed("legacy listing has no `data` array"))?;
    let mut states = ModelStates::default();
    for entry in entries {
        let Some(id) = entry.get("id").and_then(serde_json::Value::as_str) else {
            continue;
        };
        if entry.get("state").and_then(serde_json::Value::as_str) == Some("loaded") {
            states.loaded.push(id.to_owned());
        }
        if let Some(ctx) = as_u32(entry.get("max_context_length")) {
            states.context_lengths.insert(id.to_owned(), ctx);
        }
    }
    states.loaded.sort();
    states.loaded.dedup();
    Ok(states)
}

/// Parses LM Studio's `/v1/models` body into model ids, sorted and deduplicated.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, Error> {
    parse_model_list(ServerKind::LmStudio, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from LM Studio 0.3 with two downloaded models.
    const MODELS: &str = r#"{"data":[
      {"id":"qwen2.5-7b-instruct","object":"model","owned_by":"organization_owner"},
      {"id":"text-embedding-nomic-embed-text-v1.5","object":"model","owned_by":"organization_owner"}],
      "object":"list"}"#;

    #[test]
    fn parses_listings() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            (
                "captured /v1/models",
                MODELS,
                Some(&[
                    "qwen2.5-7b-instruct",
                    "text-embedding-nomic-embed-text-v1.5",
                ]),
            ),
            (
                "no models loaded",
                r#"{"data":[],"object":"list"}"#,
                Some(&[]),
            ),
            ("minimal entry", r#"{"data":[{"id":"m"}]}"#, Some(&["m"])),
            ("not JSON", "Unexpected endpoint or method.", None),
            (
                "error object",
                r#"{"error":"Unexpected endpoint or method. (GET /v1/models)"}"#,
                None,
            ),
        ];
        for (name, body, want) in cases {
            let got = parse_models(body.as_bytes()).ok();
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{name}");
        }
    }

    /// Shaped like LM Studio 0.4's `/api/v1/models`: one model loaded with an 8k context.
    const NATIVE: &str = r#"{"models":[
      {"type":"llm","publisher":"qwen","key":"qwen2.5-7b-instruct","display_name":"Qwen2.5 7B",
       "architecture":"qwen2","quantization":{"name":"Q4_K_M","bits_per_weight":4.8},"size_bytes":4683073184,
       "params_string":"7B","loaded_instances":[{"id":"qwen2.5-7b-instruct",
         "config":{"context_length":8192,"eval_batch_size":512,"parallel":4,"flash_attention":true}}],
       "max_context_length":32768,"format":"gguf","capabilities":{"vision":false,"trained_for_tool_use":true}},
      {"type":"embedding","publisher":"nomic-ai","key":"text-embedding-nomic-embed-text-v1.5",
       "loaded_instances":[],"max_context_length":2048,"format":"gguf"}]}"#;

    /// Shaped like LM Studio 0.3's `/api/v0/models`.
    const LEGACY: &str = r#"{"object":"list","data":[
      {"id":"meta-llama-3.1-8b-instruct","object":"model","type":"llm","publisher":"lmstudio-community",
       "arch":"llama","compatibility_type":"gguf","quantization":"Q4_K_M","state":"loaded","max_context_length":131072},
      {"id":"qwen2-vl-7b-instruct","object":"model","type":"vlm","state":"not-loaded","max_context_length":32768}]}"#;

    #[test]
    fn parses_model_states() {
        let states = |loaded: &[&str], ctx: &[(&str, u32)]| ModelStates {
            loaded: loaded.iter().map(|m| m.to_string()).collect(),
            context_lengths: ctx.iter().map(|(m, c)| (m.to_string(), *c)).collect(),
        };
        type Parse = fn(&[u8]) -> Result<ModelStates, Error>;
        let cases: Vec<(&str, Parse, &str, Option<ModelStates>)> = vec![
            (
                "native: loaded context wins over the maximum",
                parse_native,
                NATIVE,
                Some(states(
                    &["qwen2.5-7b-instruct"],
                    &[
                        ("qwen2.5-7b-instruct", 8192),
                        ("text-embedding-nomic-embed-text-v1.5", 2048),
                    ],
                )),
            ),
            (
                "native: empty",
                parse_native,
                r#"{"models":[]}"#,
                Some(states(&[], &[])),
            ),
            (
                "native: legacy body is not native",
                parse_native,
                LEGACY,
                None,
            ),
            (
                "legacy: state loaded",
                parse_legacy,
                LEGACY,
                Some(states(
                    &["meta-llama-3.1-8b-instruct"],
                    &[
                        ("meta-llama-3.1-8b-instruct", 131072),
                        ("qwen2-vl-7b-instruct", 32768),
                    ],
                )),
            ),
            (
                "legacy: 404 text",
                parse_legacy,
                "Unexpected endpoint or method.",
                None,
            ),
        ];
        for (name, parse, body, want) in cases {
            assert_eq!(parse(body.as_bytes()).ok(), want, "{name}");
        }
    }
}
