//! Ollama: `GET /api/tags` lists local models as `{"models":[{"name":..,"model":..}]}`;
//! `GET /api/ps` says which are loaded in memory (with their context length) and `GET /api/version`
//! the server version.

use std::collections::BTreeMap;

use super::{ServerKind, collect_ids, listing_array};
use crate::error::Error;

/// Path of Ollama's local-model listing.
pub const LISTING_PATH: &str = "/api/tags";
/// Path of Ollama's loaded-model listing.
pub const PS_PATH: &str = "/api/ps";
/// Path of Ollama's version.
pub const VERSION_PATH: &str = "/api/version";

/// What `/api/ps` says: the models in memory and the context each was loaded with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Loaded model names, sorted.
    pub models: Vec<String>,
    /// Context length per loaded model, when reported.
    pub context_lengths: BTreeMap<String, u32>,
}

/// Parses an `/api/ps` body.
pub fn parse_ps(body: &[u8]) -> Result<Loaded, Error> {
    let entries = listing_array(ServerKind::Ollama, body, "models")?;
    let models = collect_ids(entries.iter(), &["name", "model"]);
    let context_lengths = entries
        .iter()
        .filter_map(|e| {
            let name = e.get("name").or_else(|| e.get("model"))?.as_str()?.trim();
            let ctx = u32::try_from(e.get("context_length")?.as_u64()?).ok()?;
            (!name.is_empty() && ctx > 0).then(|| (name.to_owned(), ctx))
        })
        .collect();
    Ok(Loaded {
        models,
        context_lengths,
    })
}

/// Parses an `/api/version` body (`{"version":"0.5.1"}`); `None` when it has no version.
pub fn parse_version(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let version = value.get("version")?.as_str()?.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

/// What each model of an `/api/tags` body says it can do (recent Ollama lists
/// `capabilities`), in Switchyard's words: `embedding` becomes `embed`, `completion` (what
/// every chat model does) is left out, the rest are kept. Models that say nothing are absent.
pub fn parse_capabilities(body: &[u8]) -> BTreeMap<String, Vec<String>> {
    let Ok(entries) = listing_array(ServerKind::Ollama, body, "models") else {
        return BTreeMap::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let name = e.get("name").or_else(|| e.get("model"))?.as_str()?.trim();
            let mut caps: Vec<String> = e
                .get("capabilities")?
                .as_array()?
                .iter()
                .filter_map(|c| match c.as_str()? {
                    "completion" => None,
                    "embedding" => Some("embed".to_owned()),
                    other => Some(other.to_owned()),
                })
                .collect();
            caps.sort();
            caps.dedup();
            (!name.is_empty() && !caps.is_empty()).then(|| (name.to_owned(), caps))
        })
        .collect()
}

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
    fn capabilities_come_from_the_listing_in_our_words() {
        let got = parse_capabilities(TAGS.as_bytes());
        let want: BTreeMap<String, Vec<String>> =
            [("deepseek-r1:7b".to_string(), vec!["thinking".to_string()])].into();
        assert_eq!(got, want);
        let body = r#"{"models":[{"name":"nomic-embed-text","capabilities":["embedding"]},
            {"name":"llava","capabilities":["completion","vision","tools"]},{"name":"x","capabilities":["completion"]}]}"#;
        let got = parse_capabilities(body.as_bytes());
        assert_eq!(got["nomic-embed-text"], vec!["embed"]);
        assert_eq!(got["llava"], vec!["tools", "vision"]);
        assert!(!got.contains_key("x"));
        assert!(parse_capabilities(b"not json").is_empty());
    }

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

    /// Captured from Ollama 0.6 (docs/api.md `GET /api/ps`), one model loaded.
    const PS: &str = r#"{"models":[{"name":"mistral:latest","model":"mistral:latest","size":5137025024,
      "digest":"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
      "details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],
                 "parameter_size":"7.2B","quantization_level":"Q4_0"},
      "expires_at":"2024-06-04T14:38:31.83753-07:00","size_vram":5137025024,"context_length":4096}]}"#;

    #[test]
    fn parses_loaded_models() {
        let ctx = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs.iter().map(|(m, c)| (m.to_string(), *c)).collect()
        };
        type Want<'a> = Option<(&'a [&'a str], BTreeMap<String, u32>)>;
        let cases: &[(&str, &str, Want)] = &[
            (
                "captured /api/ps",
                PS,
                Some((&["mistral:latest"], ctx(&[("mistral:latest", 4096)]))),
            ),
            ("nothing loaded", r#"{"models":[]}"#, Some((&[], ctx(&[])))),
            (
                "older server without context_length",
                r#"{"models":[{"name":"a","size_vram":1},{"model":"b","context_length":0}]}"#,
                Some((&["a", "b"], ctx(&[]))),
            ),
            ("not JSON", "404 page not found", None),
        ];
        for (name, body, want) in cases {
            let got = parse_ps(body.as_bytes()).ok();
            let want = want.as_ref().map(|(models, context_lengths)| Loaded {
                models: models.iter().map(|m| m.to_string()).collect(),
                context_lengths: context_lengths.clone(),
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn parses_version() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"version":"0.5.1"}"#, Some("0.5.1")),
            (r#"{"version":""}"#, None),
            (r#"{"version":5}"#, None),
            ("Ollama is running", None),
        ];
        for (body, want) in cases {
            assert_eq!(parse_version(body.as_bytes()).as_deref(), *want, "{body}");
        }
    }
}
