//! LiteLLM proxy: `GET /v1/models` (OpenAI list). It needs a key on secured proxies; the probe sends
//! none, so a secured proxy answers 401 and is not counted.

use super::ServerKind;
use super::openai::parse_model_list;
use crate::error::Error;

/// Path of LiteLLM's model listing (never `/health`, which calls every model and costs money).
pub const LISTING_PATH: &str = "/v1/models";

/// Parses LiteLLM's `/v1/models` body into model-group names, sorted and deduplicated.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, Error> {
    parse_model_list(ServerKind::Litellm, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from LiteLLM 1.40 with two model groups.
    const MODELS: &str = r#"{"data":[
      {"id":"gpt-4o","object":"model","created":1677610602,"owned_by":"openai"},
      {"id":"claude-3-5-sonnet","object":"model","created":1677610602,"owned_by":"openai"}],
      "object":"list"}"#;

    #[test]
    fn parses_listings() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            (
                "captured /v1/models",
                MODELS,
                Some(&["claude-3-5-sonnet", "gpt-4o"]),
            ),
            (
                "no model groups",
                r#"{"data":[],"object":"list"}"#,
                Some(&[]),
            ),
            (
                "auth error",
                r#"{"error":{"message":"Authentication Error, No api key passed in.","type":"auth_error","code":"401"}}"#,
                None,
            ),
            ("liveliness string", r#""I'm alive!""#, None),
        ];
        for (name, body, want) in cases {
            let got = parse_models(body.as_bytes()).ok();
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{name}");
        }
    }
}
