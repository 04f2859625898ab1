//! LiteLLM proxy: `GET /v1/models` (OpenAI list). A secured proxy needs a key: the probe sends the
//! one configured for the target, else none, and a 401 does not count. `GET /health/readiness`
//! (no auth) says whether it is ready and its version; `/health` is never called, because it sends
//! a real request to every model and costs money.

use super::ServerKind;
use super::openai::parse_model_list;
use crate::error::Error;

/// Path of LiteLLM's model listing (never `/health`, which calls every model and costs money).
pub const LISTING_PATH: &str = "/v1/models";
/// Path of LiteLLM's free readiness check.
pub const READINESS_PATH: &str = "/health/readiness";

/// What `/health/readiness` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `status` is `healthy` or `connected`.
    pub ready: bool,
    /// `litellm_version`, when present.
    pub version: Option<String>,
}

/// Parses a `/health/readiness` body; `None` when it is not LiteLLM's readiness object.
pub fn parse_readiness(body: &[u8]) -> Option<Readiness> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let status = value.get("status")?.as_str()?;
    let version = value
        .get("litellm_version")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Some(Readiness {
        ready: matches!(status, "healthy" | "connected"),
        version,
    })
}

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

    #[test]
    fn parses_readiness() {
        let ready = |ready, version: Option<&str>| {
            Some(Readiness {
                ready,
                version: version.map(str::to_owned),
            })
        };
        let cases: &[(&str, Option<Readiness>)] = &[
            (
                r#"{"status":"connected","db":"connected","cache":null,"litellm_version":"1.40.21",
                   "success_callbacks":["langfuse"],"last_updated":"2026-01-01T00:00:00"}"#,
                ready(true, Some("1.40.21")),
            ),
            (
                r#"{"status":"healthy","db":"Not connected"}"#,
                ready(true, None),
            ),
            (r#"{"status":"shutting_down"}"#, ready(false, None)),
            (r#""I'm alive!""#, None),
            ("<html>", None),
        ];
        for (body, want) in cases {
            assert_eq!(parse_readiness(body.as_bytes()), *want, "{body}");
        }
    }
}
