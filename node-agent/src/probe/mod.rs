//! Listing probes, one file per server kind: does a model server answer here, and with which models?
//!
//! - [`ollama`]: `GET /api/tags`, plus `/api/ps` and `/api/version` for facts.
//! - [`lmstudio`], [`vllm`], [`litellm`]: `GET /v1/models`, parsed by [`openai`], plus each kind's
//!   own fact endpoints.
//! - [`facts`]: what a responder's own endpoints say beyond its model list.
//! - [`identify`]: which kind answers at a port of unknown kind.
//!
//! A responder counts only with HTTP 200 and at least one model. Probes never run inference.

pub mod facts;
pub mod identify;
pub mod litellm;
pub mod lmstudio;
pub mod ollama;
pub mod openai;
pub mod vllm;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The kinds of model server the agent recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServerKind {
    /// Ollama, default port 11434.
    #[serde(rename = "ollama")]
    Ollama,
    /// LM Studio, default port 1234.
    #[serde(rename = "lmstudio")]
    LmStudio,
    /// vLLM's OpenAI server, default port 8000.
    #[serde(rename = "vllm")]
    Vllm,
    /// LiteLLM proxy, default port 4000.
    #[serde(rename = "litellm")]
    Litellm,
}

impl ServerKind {
    /// All kinds, in the order they are probed by default.
    pub const ALL: [ServerKind; 4] = [Self::Ollama, Self::LmStudio, Self::Vllm, Self::Litellm];

    /// The kind's wire name, as in `Backend.kind` and config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ollama => "ollama",
            Self::LmStudio => "lmstudio",
            Self::Vllm => "vllm",
            Self::Litellm => "litellm",
        }
    }

    /// The port the server listens on out of the box.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Ollama => 11434,
            Self::LmStudio => 1234,
            Self::Vllm => 8000,
            Self::Litellm => 4000,
        }
    }

    /// Path of the model-listing request the probe sends.
    pub fn listing_path(self) -> &'static str {
        match self {
            Self::Ollama => ollama::LISTING_PATH,
            Self::LmStudio => lmstudio::LISTING_PATH,
            Self::Vllm => vllm::LISTING_PATH,
            Self::Litellm => litellm::LISTING_PATH,
        }
    }

    /// Parses a listing body into model ids: sorted, deduplicated, possibly empty.
    pub fn parse_models(self, body: &[u8]) -> Result<Vec<String>, Error> {
        match self {
            Self::Ollama => ollama::parse_models(body),
            Self::LmStudio => lmstudio::parse_models(body),
            Self::Vllm => vllm::parse_models(body),
            Self::Litellm => litellm::parse_models(body),
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One place a model server may listen: a kind at a host and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTarget {
    /// Which server kind to expect there.
    pub kind: ServerKind,
    /// Host name or IP address (IPv6 without brackets is fine).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl ProbeTarget {
    /// A target of `kind` at `host:port`.
    pub fn new(kind: ServerKind, host: impl Into<String>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
        }
    }

    /// Every kind on `127.0.0.1` at its default port.
    pub fn local_defaults() -> Vec<ProbeTarget> {
        ServerKind::ALL
            .into_iter()
            .map(|kind| Self::new(kind, "127.0.0.1", kind.default_port()))
            .collect()
    }

    /// `http://host:port`, with IPv6 hosts bracketed.
    pub fn origin(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }

    /// The OpenAI-compatible base URL reported for this target (`http://host:port/v1`, for all kinds).
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// The URL the listing probe requests.
    pub fn listing_url(&self) -> String {
        format!("{}{}", self.origin(), self.kind.listing_path())
    }
}

/// Builds the HTTP client probes share.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    // reqwest is built without a bundled TLS provider; install ring once per process.
    // An error only means some provider is already installed, which is what we need.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::trace!("rustls crypto provider already installed");
    }
    reqwest::Client::builder()
        .timeout(timeout)
        // Probes target local and LAN hosts; an HTTP(S)_PROXY from the environment must not intercept them.
        .no_proxy()
        // No pooled connections: a stale keep-alive socket would make a stopped server look alive
        // (or a restarted one look dead), and one connection per target per scan is cheap.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(Error::HttpClient)
}

/// Sends the listing request for `target` and returns its models, sorted.
///
/// Fails unless the server answers HTTP 200 with a listing of at least one model.
pub async fn probe(client: &reqwest::Client, target: &ProbeTarget) -> Result<Vec<String>, Error> {
    Ok(listing(client, &target.origin(), target.kind, None)
        .await?
        .models)
}

/// A successful listing probe: the models and the raw body (some kinds read more facts from it).
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Model ids, sorted, never empty.
    pub models: Vec<String>,
    /// The listing body as received.
    pub body: bytes::Bytes,
}

/// Requests `kind`'s listing at `origin` (`http://host:port`), sending `api_key` as a bearer token
/// when given. Fails unless the answer is HTTP 200 with at least one model.
pub async fn listing(
    client: &reqwest::Client,
    origin: &str,
    kind: ServerKind,
    api_key: Option<&str>,
) -> Result<Listing, Error> {
    let url = format!("{origin}{}", kind.listing_path());
    let body = get(client, &url, api_key).await?;
    let models = kind.parse_models(&body)?;
    if models.is_empty() {
        return Err(Error::NoModels { url });
    }
    Ok(Listing { models, body })
}

/// `GET url` (with `api_key` as a bearer token when given); the body when the answer is HTTP 200.
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
) -> Result<bytes::Bytes, Error> {
    let request_error = |source| Error::ProbeRequest {
        url: url.to_owned(),
        source,
    };
    let mut request = client.get(url);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(request_error)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(Error::ProbeStatus {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    response.bytes().await.map_err(request_error)
}

/// Collects the string at `field` of every object in `entries`, skipping entries without it;
/// sorted and deduplicated.
fn collect_ids<'a>(
    entries: impl Iterator<Item = &'a serde_json::Value>,
    fields: &[&str],
) -> Vec<String> {
    let mut ids: Vec<String> = entries
        .filter_map(|entry| {
            fields
                .iter()
                .find_map(|f| entry.get(*f).and_then(serde_json::Value::as_str))
        })
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Parses `body` as JSON and returns the array under `key`, or says why it is not a listing.
fn listing_array(
    kind: ServerKind,
    body: &[u8],
    key: &str,
) -> Result<Vec<serde_json::Value>, Error> {
    let malformed = |reason: String| Error::MalformedListing {
        kind: kind.as_str(),
        reason,
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
    match value.get_mut(key).map(serde_json::Value::take) {
        Some(serde_json::Value::Array(entries)) => Ok(entries),
        Some(_) => Err(malformed(format!("`{key}` is not an array"))),
        None => Err(malformed(format!("no `{key}` field"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = ProbeTarget::new(ServerKind::Ollama, "127.0.0.1", 11434);
        assert_eq!(t.base_url(), "http://127.0.0.1:11434/v1");
        assert_eq!(t.listing_url(), "http://127.0.0.1:11434/api/tags");
        let t = ProbeTarget::new(ServerKind::Vllm, "::1", 8000);
        assert_eq!(t.base_url(), "http://[::1]:8000/v1");
        assert_eq!(t.listing_url(), "http://[::1]:8000/v1/models");
    }

    #[test]
    fn local_defaults_cover_every_kind_on_loopback() {
        let got: Vec<(ServerKind, u16)> = ProbeTarget::local_defaults()
            .iter()
            .map(|t| {
                assert_eq!(t.host, "127.0.0.1");
                (t.kind, t.port)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (ServerKind::Ollama, 11434),
                (ServerKind::LmStudio, 1234),
                (ServerKind::Vllm, 8000),
                (ServerKind::Litellm, 4000),
            ]
        );
    }

    #[test]
    fn kind_wire_names_round_trip() {
        for kind in ServerKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ServerKind>(&json).unwrap(), kind);
        }
    }
}
