//! A full probe of one server: its listing, then what its own endpoints say about load and state.
//!
//! Fact requests run concurrently after the listing answered. A fact endpoint that is missing or
//! malformed leaves that fact unknown; it never fails the probe. Two answers do fail it, because
//! they mean "do not route here": vLLM's `/health` answering 503 (engine dead, warming up or
//! draining) and LiteLLM's `/health/readiness` saying it is not ready.

use std::collections::HashMap;

use switchyard_proto::v1::{BackendFacts, Capabilities};

use super::{Listing, ServerKind, get, listing, litellm, lmstudio, ollama, vllm};
use crate::error::Error;

/// What one successful probe learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    /// Model ids the server lists, sorted, never empty.
    pub models: Vec<String>,
    /// Facts for routing; `healthy` is true (the tracker decides it over several probes).
    pub facts: BackendFacts,
}

/// Facts with every field unknown and `healthy` set.
pub fn unknown_facts() -> BackendFacts {
    BackendFacts {
        healthy: true,
        kv_cache_usage: -1.0,
        ..Default::default()
    }
}

/// Probes `kind` at `origin`: the listing (which must succeed), then the kind's fact endpoints.
pub async fn probe_backend(
    client: &reqwest::Client,
    origin: &str,
    kind: ServerKind,
    api_key: Option<&str>,
) -> Result<Probed, Error> {
    let found = listing(client, origin, kind, api_key).await?;
    let mut facts = unknown_facts();
    let url = |path: &str| format!("{origin}{path}");
    match kind {
        ServerKind::Ollama => {
            let (ps_url, version_url) = (url(ollama::PS_PATH), url(ollama::VERSION_PATH));
            let (ps, version) = tokio::join!(
                get(client, &ps_url, api_key),
                get(client, &version_url, api_key),
            );
            if let Some(loaded) = ps.ok().and_then(|b| ollama::parse_ps(&b).ok()) {
                facts.loaded_known = true;
                facts.loaded_models = loaded.models;
                facts.context_lengths = loaded.context_lengths.into_iter().collect();
            }
            facts.server_version = version
                .ok()
                .and_then(|b| ollama::parse_version(&b))
                .unwrap_or_default();
            facts.capabilities = ollama::parse_capabilities(&found.body)
                .into_iter()
                .map(|(model, names)| (model, Capabilities { names }))
                .collect();
        }
        ServerKind::LmStudio => {
            // The native API first (0.4+), then the legacy one.
            let native = get(client, &url(lmstudio::NATIVE_PATH), api_key).await;
            let states = match native.ok().and_then(|b| lmstudio::parse_native(&b).ok()) {
                Some(states) => Some(states),
                None => get(client, &url(lmstudio::LEGACY_PATH), api_key)
                    .await
                    .ok()
                    .and_then(|b| lmstudio::parse_legacy(&b).ok()),
            };
            if let Some(states) = states {
                facts.loaded_known = true;
                facts.loaded_models = states.loaded;
                facts.context_lengths = states.context_lengths.into_iter().collect();
            }
        }
        ServerKind::Vllm => vllm_facts(client, origin, api_key, &found, &mut facts).await?,
        ServerKind::Litellm => litellm_facts(client, origin, &mut facts).await?,
    }
    // Context lengths are only useful for models the server actually lists.
    facts
        .context_lengths
        .retain(|model, _| found.models.binary_search(model).is_ok());
    Ok(Probed {
        models: found.models,
        facts,
    })
}

/// vLLM: a 503 from `/health` means not ready; the load comes from the metrics, the context
/// lengths from the listing.
async fn vllm_facts(
    client: &reqwest::Client,
    origin: &str,
    api_key: Option<&str>,
    found: &Listing,
    facts: &mut BackendFacts,
) -> Result<(), Error> {
    let url = |path: &str| format!("{origin}{path}");
    let (metrics_url, version_url) = (url(vllm::METRICS_PATH), url(vllm::VERSION_PATH));
    let (health, metrics, version) = tokio::join!(
        client.get(url("/health")).send(),
        get(client, &metrics_url, api_key),
        get(client, &version_url, api_key),
    );
    if let Ok(response) = health
        && response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
    {
        return Err(Error::NotReady {
            url: url("/health"),
            reason: "vLLM answered 503 (engine dead, warming up or draining)".to_owned(),
        });
    }
    let load = metrics
        .ok()
        .and_then(|b| vllm::parse_metrics(&String::from_utf8_lossy(&b)).ok());
    if let Some(load) = load {
        facts.running = load.running;
        facts.waiting = load.waiting;
        facts.kv_cache_usage = load.kv_cache_usage.unwrap_or(-1.0);
    }
    facts.context_lengths = vllm::parse_context_lengths(&found.body)
        .into_iter()
        .collect::<HashMap<_, _>>();
    facts.server_version = version
        .ok()
        .and_then(|b| vllm::parse_version(&b))
        .unwrap_or_default();
    Ok(())
}

/// LiteLLM: its readiness endpoint says whether it is ready and its version.
async fn litellm_facts(
    client: &reqwest::Client,
    origin: &str,
    facts: &mut BackendFacts,
) -> Result<(), Error> {
    let url = |path: &str| format!("{origin}{path}");
    // No key: readiness is open, and a key would be wasted on it.
    let readiness = get(client, &url(litellm::READINESS_PATH), None).await;
    match readiness {
        Ok(body) => {
            if let Some(r) = litellm::parse_readiness(&body) {
                if !r.ready {
                    return Err(Error::NotReady {
                        url: url(litellm::READINESS_PATH),
                        reason: "LiteLLM reports it is not ready".to_owned(),
                    });
                }
                facts.server_version = r.version.unwrap_or_default();
            }
        }
        Err(Error::ProbeStatus { status: 503, .. }) => {
            return Err(Error::NotReady {
                url: url(litellm::READINESS_PATH),
                reason: "LiteLLM answered 503".to_owned(),
            });
        }
        Err(_) => {}
    }
    Ok(())
}
