//! Switchyard's own `config.yaml`: endpoints (optionally from a provider preset), providers
//! with their credentials, model groups, aliases, fallbacks, router settings, client keys and
//! discovery peers. Unknown fields are errors naming the field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::providers::{self, Place};
use super::{Parsed, Sealer, SecretRef, declared_key};
use crate::state::{
    Alias, CatalogFilter, CatalogSpec, ClientKey, DeploymentSpec, EndpointSpec, Fallback,
    HealthChecks, KeyBudget, Limits, ModelGroup, Price, RouterSettings, Source,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    endpoints: Vec<EndpointDoc>,
    #[serde(default)]
    models: Vec<ModelDoc>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    #[serde(default)]
    fallbacks: Vec<FallbackDoc>,
    #[serde(default)]
    context_window_fallbacks: Vec<FallbackDoc>,
    #[serde(default)]
    router_settings: Option<RouterSettingsDoc>,
    #[serde(default)]
    keys: Vec<KeyDoc>,
    #[serde(default)]
    discovery: Option<DiscoveryDoc>,
    /// Provider presets by name, each with its credentials.
    #[serde(default)]
    providers: BTreeMap<String, ProviderDoc>,
    /// Providers to leave out without removing their keys.
    #[serde(default)]
    disabled_providers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDoc {
    /// Replaces the preset's base URL.
    #[serde(default, alias = "base_url")]
    url: Option<String>,
    /// Cloudflare's account id.
    #[serde(default)]
    account_id: Option<String>,
    /// Azure: resource URL, deployment and api-version.
    #[serde(default)]
    azure_endpoint: Option<String>,
    #[serde(default)]
    deployment: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    keys: Vec<CredentialDoc>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    weight: u32,
}

/// One credential: its key (by value or `os.environ/NAME`), a label and the upstream models
/// it may serve (globs; lmrelay's per-key filter).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialDoc {
    api_key: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    models: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointDoc {
    id: String,
    /// Required unless `provider` supplies it.
    #[serde(default, alias = "base_url")]
    url: Option<String>,
    /// A preset (`groq`, `azure`, …) supplying URL, kind and auth.
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    weight: u32,
    /// One key by value (or `os.environ/NAME`).
    #[serde(default)]
    api_key: Option<String>,
    /// One key by environment reference.
    #[serde(default)]
    api_key_env: Option<String>,
    /// Several keys, rotated in order.
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default)]
    limits: Limits,
    /// What to serve of the endpoint's own listing (see docs/catalog.md).
    #[serde(default)]
    catalog: Option<CatalogFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDoc {
    name: String,
    deployments: Vec<DeploymentDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentDoc {
    endpoint: String,
    model: String,
    #[serde(default)]
    weight: u32,
    #[serde(default)]
    context_length: u32,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    price: Price,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackDoc {
    model: String,
    chain: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterSettingsDoc {
    #[serde(default)]
    num_retries: u32,
    #[serde(default)]
    timeout_ms: u64,
    #[serde(default)]
    allowed_fails: u32,
    #[serde(default)]
    cooldown_ms: u64,
    #[serde(default)]
    routing_strategy: String,
    #[serde(default)]
    retry_after_ms: u64,
    #[serde(default)]
    same_deployment_retries: u32,
    #[serde(default)]
    drop_params: bool,
    #[serde(default)]
    health_checks: HealthChecks,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDoc {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_env: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    allowed_models: Vec<String>,
    #[serde(default)]
    expires_at_ms: i64,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    budget: KeyBudget,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoveryDoc {
    #[serde(default)]
    peers: Vec<String>,
}

/// Parses our format from an already-read YAML value.
pub fn parse(
    value: super::yaml::Value,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<Parsed, String> {
    let file: File = serde_json::from_value(value.into_json()).map_err(|e| e.to_string())?;
    let mut parsed = Parsed::default();
    let d = &mut parsed.declared;
    for e in file.endpoints {
        let (endpoint, catalog) = endpoint_spec(e, env, sealer)?;
        d.catalog.extend(catalog);
        d.endpoints.push(endpoint);
    }
    for (name, p) in file.providers {
        d.endpoints.push(provider_spec(&name, p, env, sealer)?);
    }
    for m in file.models {
        d.model_groups.push(ModelGroup {
            name: m.name,
            deployments: m
                .deployments
                .into_iter()
                .map(|x| DeploymentSpec {
                    endpoint_id: x.endpoint,
                    upstream_model: x.model,
                    weight: x.weight,
                    context_length: x.context_length,
                    limits: x.limits,
                    price: x.price,
                })
                .collect(),
            source: Source::Config,
        });
    }
    for (name, target) in file.aliases {
        d.aliases.push(Alias {
            name,
            target,
            source: Source::Config,
        });
    }
    for (docs, context_window) in [
        (file.fallbacks, false),
        (file.context_window_fallbacks, true),
    ] {
        for f in docs {
            d.fallbacks.push(Fallback {
                model: f.model,
                chain: f.chain,
                context_window,
                source: Source::Config,
            });
        }
    }
    d.settings = file.router_settings.map(|s| RouterSettings {
        num_retries: s.num_retries,
        timeout_ms: s.timeout_ms,
        allowed_fails: s.allowed_fails,
        cooldown_ms: s.cooldown_ms,
        routing_strategy: s.routing_strategy,
        source: Source::Config,
        retry_after_ms: s.retry_after_ms,
        same_deployment_retries: s.same_deployment_retries,
        drop_params: s.drop_params,
        health_checks: s.health_checks,
    });
    for k in file.keys {
        d.keys.push(client_key(k, env)?);
    }
    parsed.discovery_peers = file.discovery.map(|x| x.peers).unwrap_or_default();
    parsed.disabled_providers = file.disabled_providers;
    Ok(parsed)
}

/// One `endpoints[]` entry, with its catalog spec when it has a `catalog` filter.
fn endpoint_spec(
    e: EndpointDoc,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<(EndpointSpec, Option<CatalogSpec>), String> {
    let field = format!("endpoints[{}]", e.id);
    let mut secrets = Vec::new();
    if let Some(k) = &e.api_key {
        secrets.push(SecretRef::parse(k));
    }
    if let Some(name) = &e.api_key_env {
        secrets.push(SecretRef::Env(name.clone()));
    }
    secrets.extend(e.api_keys.iter().map(|k| SecretRef::parse(k)));
    let credentials = sealer
        .credentials(&e.id, &secrets, &format!("{field}.api_key"))
        .map_err(|err| err.to_string())?;
    let (kind, base_url, upstream) = match &e.provider {
        Some(name) => {
            let preset = providers::find(name).ok_or_else(|| {
                format!(
                    "{field}.provider: `{name}` is not a preset ({})",
                    providers::names()
                )
            })?;
            let place = Place {
                base_url: e.url.clone(),
                ..Default::default()
            }
            .or_env(preset, env);
            let base = preset
                .base_url(&place)
                .map_err(|reason| format!("{field}: {reason}"))?;
            let kind = e.kind.clone().unwrap_or_else(|| preset.kind.to_string());
            (kind, base, preset.style(&place))
        }
        None => (
            e.kind.clone().unwrap_or_else(|| "openai".into()),
            e.url
                .clone()
                .ok_or_else(|| format!("{field}.url: required unless `provider` is given"))?,
            Box::default(),
        ),
    };
    let catalog = e.catalog.map(|filter| CatalogSpec {
        endpoint: e.id.clone(),
        filter,
        source: Source::Config,
    });
    let endpoint = EndpointSpec {
        id: e.id,
        kind,
        base_url,
        models: e.models,
        weight: e.weight,
        source: Source::Config,
        credentials,
        limits: e.limits,
        upstream,
    };
    Ok((endpoint, catalog))
}

/// One `providers.<name>` entry: a preset's endpoint with its keys.
fn provider_spec(
    name: &str,
    p: ProviderDoc,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<EndpointSpec, String> {
    let field = format!("providers.{name}");
    let preset = providers::find(name)
        .ok_or_else(|| format!("{field}: `{name}` is not a preset ({})", providers::names()))?;
    let place = Place {
        base_url: p.url,
        account_id: p.account_id,
        azure_endpoint: p.azure_endpoint,
        azure_deployment: p.deployment,
        api_version: p.api_version,
    }
    .or_env(preset, env);
    let base_url = preset
        .base_url(&place)
        .map_err(|reason| format!("{field}: {reason}"))?;
    let secrets: Vec<SecretRef> = p
        .keys
        .iter()
        .map(|k| SecretRef::parse(&k.api_key))
        .collect();
    let mut credentials = sealer
        .credentials(preset.name, &secrets, &format!("{field}.keys"))
        .map_err(|err| err.to_string())?;
    for (c, doc) in credentials.iter_mut().zip(p.keys) {
        c.label = doc.label;
        c.models = doc.models;
    }
    Ok(EndpointSpec {
        id: preset.name.to_string(),
        kind: preset.kind.to_string(),
        base_url,
        models: p.models,
        weight: p.weight,
        source: Source::Config,
        credentials,
        limits: p.limits,
        upstream: preset.style(&place),
    })
}

/// One `keys[]` entry: its secret from `key` or `key_env` (or only its hash).
fn client_key(k: KeyDoc, env: &BTreeMap<String, String>) -> Result<ClientKey, String> {
    let secret = match (&k.key, &k.key_env) {
        (Some(key), None) => Some(key.clone()),
        (None, Some(var)) => Some(env.get(var).cloned().ok_or_else(|| {
            format!(
                "keys[{}].key_env: environment variable {var} is not set",
                k.id
            )
        })?),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(format!("keys[{}]: give key or key_env, not both", k.id));
        }
    };
    let name = k.name.clone().unwrap_or_else(|| k.id.clone());
    let mut key = declared_key(
        &k.id,
        &name,
        secret.as_deref(),
        k.sha256.as_deref(),
        k.allowed_models,
        k.expires_at_ms,
        k.limits,
    )?;
    key.budget = k.budget;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse as parse_any;
    use crate::seal::ClusterKey;
    use crate::state::{ClusterState, Secret};

    const FILE: &str = r#"
endpoints:
  - id: groq
    url: https://api.groq.com/openai/v1
    models: [llama-3.1-8b-instant]
    api_key_env: GROQ_API_KEY
    api_keys: ["gsk_second"]
  - id: gpu01
    base_url: http://10.0.0.5:8000/v1
    kind: vllm
    models: [qwen]
models:
  - name: fast
    deployments:
      - {endpoint: groq, model: llama-3.1-8b-instant, context_length: 8192, limits: {rpm: 30}}
aliases: {quick: fast}
fallbacks: [{model: fast, chain: [qwen]}]
context_window_fallbacks: [{model: fast, chain: [qwen]}]
router_settings: {num_retries: 2, routing_strategy: least-busy}
keys:
  - {id: team-a, key_env: TEAM_A_KEY, allowed_models: ["fast"]}
discovery: {peers: [10.0.0.7]}
"#;

    #[test]
    fn our_format_declares_everything() {
        let key = ClusterKey::from_bytes(&[1u8; 32]).unwrap();
        let state = ClusterState::default();
        let env = BTreeMap::from([("TEAM_A_KEY".to_string(), "sy_live_abcd".to_string())]);
        let parsed = parse_any(FILE, &env, &Sealer::new(Some(&key), &state)).unwrap();
        let d = &parsed.declared;
        assert_eq!(d.endpoints.len(), 2);
        let groq = &d.endpoints[0];
        assert_eq!(groq.credentials.len(), 2);
        assert_eq!(
            groq.credentials[0].secret,
            Secret::Env {
                name: "GROQ_API_KEY".into()
            }
        );
        assert_eq!(groq.credentials[1].id, "key_2");
        let Secret::Sealed { sealed } = &groq.credentials[1].secret else {
            panic!("expected a sealed secret");
        };
        assert_eq!(key.open(sealed).as_deref(), Some("gsk_second"));
        assert_eq!(d.endpoints[1].kind, "vllm");
        assert_eq!(d.model_groups[0].deployments[0].limits.rpm, 30);
        assert_eq!(d.aliases[0].target, "fast");
        assert_eq!(d.fallbacks.len(), 2);
        assert_eq!(d.settings.as_ref().map(|s| s.num_retries), Some(2));
        assert_eq!(
            d.keys[0].sha256_hex,
            crate::seal::sha256_hex("sy_live_abcd")
        );
        assert_eq!(d.keys[0].last4, "abcd");
        assert_eq!(parsed.discovery_peers, vec!["10.0.0.7"]);
    }

    #[test]
    fn providers_and_preset_endpoints_take_the_preset() {
        let state = ClusterState::default();
        let sealer = Sealer::new(None, &state);
        let env = BTreeMap::from([("CLOUDFLARE_ACCOUNT_ID".to_string(), "acc1".to_string())]);
        let text = r#"
endpoints:
  - {id: fast, provider: groq, api_key_env: GROQ_API_KEY}
providers:
  openrouter:
    models: ["meta-llama/llama-3.3-70b-instruct:free", "openai/gpt-4o-mini"]
    keys:
      - {api_key: os.environ/OR_FREE, label: free-tier, models: ["*:free"]}
      - {api_key: os.environ/OR_PAID, label: work-paid}
  cloudflare:
    keys: [{api_key: os.environ/CF_TOKEN}]
disabled_providers: [huggingface]
"#;
        let parsed = parse_any(text, &env, &sealer).unwrap();
        let d = &parsed.declared;
        let rows: Vec<(&str, &str, &str)> = d
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    e.base_url.as_str(),
                    e.upstream.provider.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("fast", "https://api.groq.com/openai/v1", "groq"),
                (
                    "cloudflare",
                    "https://api.cloudflare.com/client/v4/accounts/acc1/ai/v1",
                    "cloudflare"
                ),
                ("openrouter", "https://openrouter.ai/api/v1", "openrouter"),
            ]
        );
        let or = &d.endpoints[2];
        assert_eq!(
            (
                or.credentials[0].label.as_str(),
                or.credentials[0].models.clone()
            ),
            ("free-tier", vec!["*:free".to_string()])
        );
        assert!(or.credentials[1].models.is_empty());
        assert_eq!(parsed.disabled_providers, vec!["huggingface"]);
    }

    #[test]
    fn errors_name_the_field() {
        let state = ClusterState::default();
        let sealer = Sealer::new(None, &state);
        let env = BTreeMap::new();
        let cases = [
            (
                "endpoints: [{id: a, url: http://x/v1, colour: red}]",
                "colour",
            ),
            (
                "endpoints: [{id: a, url: http://x/v1, api_key: plain}]",
                "endpoints[a].api_key",
            ),
            ("keys: [{id: k, key_env: MISSING}]", "MISSING"),
            ("keys: [{id: k}]", "key `k`"),
            ("routers: {}", "routers"),
            ("endpoints: [{id: a}]", "endpoints[a].url"),
            (
                "endpoints: [{id: a, provider: bedrock}]",
                "endpoints[a].provider",
            ),
            ("providers: {cloudflare: {}}", "CLOUDFLARE_ACCOUNT_ID"),
        ];
        for (text, needle) in cases {
            let err = parse_any(text, &env, &sealer).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
