//! vLLM: `GET /v1/models` (OpenAI list); LoRA adapters appear as extra entries and are servable models.

use super::ServerKind;
use super::openai::parse_model_list;
use crate::error::Error;

/// Path of vLLM's model listing.
pub const LISTING_PATH: &str = "/v1/models";

/// Parses vLLM's `/v1/models` body into served model names, sorted and deduplicated.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, Error> {
    parse_model_list(ServerKind::Vllm, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from vLLM 0.10 serving a base model plus one LoRA adapter (protocol.py `ModelCard`).
    const MODELS: &str = r#"{"object":"list","data":[
      {"id":"Qwen/Qwen2.5-7B-Instruct","object":"model","created":1732000000,"owned_by":"vllm",
       "root":"Qwen/Qwen2.5-7B-Instruct","parent":null,"max_model_len":32768,
       "permission":[{"id":"modelperm-1","object":"model_permission","allow_sampling":true}]},
      {"id":"sql-lora","object":"model","created":1732000000,"owned_by":"vllm",
       "root":"/adapters/sql","parent":"Qwen/Qwen2.5-7B-Instruct","max_model_len":null}]}"#;

    #[test]
    fn parses_listings() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            (
                "captured /v1/models with LoRA",
                MODELS,
                Some(&["Qwen/Qwen2.5-7B-Instruct", "sql-lora"]),
            ),
            ("empty list", r#"{"object":"list","data":[]}"#, Some(&[])),
            (
                "id not a string skipped",
                r#"{"data":[{"id":7},{"id":"ok"}]}"#,
                Some(&["ok"]),
            ),
            ("health body is empty", "", None),
            ("auth error", r#"{"error":"Unauthorized"}"#, None),
            ("data not an array", r#"{"data":null}"#, None),
        ];
        for (name, body, want) in cases {
            let got = parse_models(body.as_bytes()).ok();
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{name}");
        }
    }
}
