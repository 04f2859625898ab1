//! LM Studio: `GET /v1/models` (OpenAI list). With JIT loading it lists downloaded models too.

use super::ServerKind;
use super::openai::parse_model_list;
use crate::error::Error;

/// Path of LM Studio's OpenAI-compatible model listing.
pub const LISTING_PATH: &str = "/v1/models";

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
}
