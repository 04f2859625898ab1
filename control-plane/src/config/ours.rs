//! Switchyard's own `config.yaml`: endpoints, model groups, aliases, fallbacks, router
//! settings, client keys and discovery peers. Unknown fields are errors naming the field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Parsed, Sealer, SecretRef, declared_key};
use crate::state::{
    Alias, DeploymentSpec, EndpointSpec, Fallback, KeyBudget, Limits, ModelGroup, Price,
    RouterSettings, Source,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointDoc {
    id: String,
    #[serde(alias = "base_url")]
    url: String,
    #[serde(default = "openai")]
    kind: String,
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
}

fn openai() -> String {
    "openai".into()
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
    value: serde_yaml::Value,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<Parsed, String> {
    let file: File = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
    let mut parsed = Parsed::default();
    let d = &mut parsed.declared;
    for e in file.endpoints {
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
        d.endpoints.push(EndpointSpec {
            id: e.id,
            kind: e.kind,
            base_url: e.url,
            models: e.models,
            weight: e.weight,
            source: Source::Config,
            credentials,
            limits: e.limits,
        });
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
    });
    for k in file.keys {
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
        d.keys.push(key);
    }
    parsed.discovery_peers = file.discovery.map(|x| x.peers).unwrap_or_default();
    Ok(parsed)
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
        ];
        for (text, needle) in cases {
            let err = parse_any(text, &env, &sealer).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
