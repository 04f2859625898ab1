//! How requests to an endpoint are shaped beyond its URL and body: the provider preset it came
//! from, where the credential goes, fixed headers and a query string (Azure's `api-version`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Request shaping for one endpoint; the default is a plain OpenAI-compatible server that
/// takes `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamStyle {
    /// The preset it was made from (`groq`, `azure`, …); empty for none.
    pub provider: String,
    /// Header the credential goes in as its whole value (`api-key`, `x-api-key`); empty means
    /// `Authorization: Bearer`.
    pub auth_header: String,
    /// Headers sent with every request (`anthropic-version`, a custom `user-agent`).
    pub headers: BTreeMap<String, String>,
    /// Query string appended to every request URL, without `?` (`api-version=2024-10-21`).
    pub query: String,
    /// Request parameters it refuses, dropped when `drop_params` is on.
    pub unsupported_params: Vec<String>,
}

impl UpstreamStyle {
    /// Whether it is the plain default.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
