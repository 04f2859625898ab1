//! Ollama: `GET /api/tags` lists local models as `{"models":[{"name":..,"model":..}]}`.

use super::{ServerKind, collect_ids, listing_array};
use crate::error::Error;

/// Path of Ollama's local-model listing.
pub const LISTING_PATH: &str = "/api/tags";

/// Parses an `/api/tags` body into model names (`name`, else `model`), sorted and deduplicated.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, Error> {
    let entries = listing_array(ServerKind::Ollama, body, "models")?;
    Ok(collect_ids(entries.iter(), &["name", "model"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Ollama 0.5 (docs/api.md), trimmed digests.
    const TAGS: &str = r#"{"models":[
      {"name":"llama3.2:latest","model":"llama3.2:latest","modified_at":"2025-05-04T17:37:44.706015396-07:00",
       "size":2019393189,"digest":"a80c4f17acd5",
       "details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],
                  "parameter_size":"3.2B","quantization_level":"Q4_K_M"}},
      {"name":"deepseek-r1:7b","model":"deepseek-r1:7b","size":4683075271,"digest":"0a8c2669",
       "capabilities":["completion","thinking"]},
      {"name":"gpt-oss:120b-cloud","model":"gpt-oss:120b-cloud","remote_model":"gpt-oss:120b",
       "remote_host":"https://ollama.com:443"}]}"#;

    #[test]
    fn parses_listings() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            (
                "captured /api/tags",
                TAGS,
                Some(&["deepseek-r1:7b", "gpt-oss:120b-cloud", "llama3.2:latest"]),
            ),
            ("no models installed", r#"{"models":[]}"#, Some(&[])),
            (
                "model only, no name",
                r#"{"models":[{"model":"qwen3:8b"}]}"#,
                Some(&["qwen3:8b"]),
            ),
            (
                "entries without ids skipped, duplicates merged",
                r#"{"models":[{"size":1},{"name":"a"},{"name":"a"},{"name":""}]}"#,
                Some(&["a"]),
            ),
            ("not JSON", "Ollama is running", None),
            ("HTML error page", "<html><body>502</body></html>", None),
            (
                "OpenAI list is not an Ollama listing",
                r#"{"data":[{"id":"x"}]}"#,
                None,
            ),
            ("models not an array", r#"{"models":{"name":"x"}}"#, None),
            ("empty body", "", None),
        ];
        for (name, body, want) in cases {
            let got = parse_models(body.as_bytes()).ok();
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{name}");
        }
    }
}
