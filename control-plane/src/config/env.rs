//! The environment's declarations:
//! - `LLM_PROXY_ENDPOINT_<NAME>_{URL,KEY,KEY_2,...,MODELS,PROVIDER}`: endpoints. `NAME` may
//!   contain `_`; the endpoint id is `NAME` lowercased;
//! - `<PROVIDER>_API_KEY[_N]` (lmrelay's convention): a provider preset enabled with its key
//!   ring, its models from `<PROVIDER>_MODELS`;
//! - `LLM_PROXY_API_KEYS`, `LMRELAY_TOKEN`, `LITELLM_MASTER_KEY`: client keys other gateways
//!   read, imported as they are.
//!
//! Upstream keys are read by the control plane and stored sealed when it has a cluster key, so
//! edges on other hosts need not share the variables; without one they stay references.

use std::collections::BTreeMap;

use super::providers::{self, Place};
use super::{Sealer, SecretRef, declared_key};
use crate::state::{ClientKey, EndpointSpec, Limits, Source};

const PREFIX: &str = "LLM_PROXY_ENDPOINT_";

/// The endpoints the environment declares, sorted by id.
pub fn endpoints(
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<Vec<EndpointSpec>, String> {
    let mut out = Vec::new();
    for (var, url) in env {
        let Some(name) = var
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix("_URL"))
        else {
            continue;
        };
        if name.is_empty() {
            return Err(format!("{var}: the endpoint name is empty"));
        }
        let get = |suffix: &str| env.get(&format!("{PREFIX}{name}_{suffix}"));
        let mut secrets = Vec::new();
        if let Some(key) = get("KEY").filter(|k| !k.is_empty()) {
            secrets.push(SecretRef::Value(key.clone()));
        }
        // KEY_2, KEY_3, ... in order, stopping at the first gap.
        for n in 2.. {
            match get(&format!("KEY_{n}")).filter(|k| !k.is_empty()) {
                Some(key) => secrets.push(SecretRef::Value(key.clone())),
                None => break,
            }
        }
        let id = name.to_ascii_lowercase();
        let credentials = sealer
            .credentials(&id, &secrets, &format!("{PREFIX}{name}_KEY"))
            .map_err(|e| e.to_string())?;
        let models = get("MODELS").map(|m| list(m)).unwrap_or_default();
        let kind = match get("PROVIDER").map(|p| p.trim().to_ascii_lowercase()) {
            None => "openai".to_string(),
            Some(p) if p.is_empty() || p == "openai-compatible" => "openai".to_string(),
            Some(p) => p,
        };
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{var}: `{url}` is not an http(s) URL"));
        }
        // A provider name picks its preset's protocol and auth; the URL stays as given.
        let (kind, upstream) = match providers::find(&kind) {
            Some(p) => (p.kind.to_string(), p.style(&Place::default())),
            None => (kind, Box::default()),
        };
        out.push(EndpointSpec {
            id,
            kind,
            base_url: url.to_string(),
            models,
            weight: 1,
            source: Source::Env,
            credentials,
            limits: Limits::default(),
            upstream,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Provider presets enabled by `<PROVIDER>_API_KEY[_N]`, one endpoint each (id = the preset's
/// name), with the warnings for those that cannot be used. `skip` names presets the config
/// file already declares: those read the same variables themselves.
pub fn providers(
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
    skip: &[&str],
    warnings: &mut Vec<String>,
) -> Result<Vec<EndpointSpec>, String> {
    let mut out = Vec::new();
    for preset in &providers::PRESETS {
        let ring = preset.key_ring(env);
        if ring.is_empty() || skip.contains(&preset.name) {
            continue;
        }
        let place = Place {
            azure_deployment: env.get("AZURE_OPENAI_DEPLOYMENT").cloned(),
            ..Default::default()
        }
        .or_env(preset, env);
        let base_url = match preset.base_url(&place) {
            Ok(url) => url,
            Err(reason) => {
                warnings.push(format!("{}: {reason}; provider not enabled", ring[0]));
                continue;
            }
        };
        let secrets: Vec<SecretRef> = ring
            .iter()
            .map(|name| match env.get(name) {
                Some(value) if sealer.can_seal() => SecretRef::Value(value.trim().to_string()),
                _ => SecretRef::Env(name.clone()),
            })
            .collect();
        let credentials = sealer
            .credentials(preset.name, &secrets, &ring[0])
            .map_err(|e| e.to_string())?;
        let stem = preset.env_stem;
        let models = env
            .get(&format!("{stem}_MODELS"))
            .map(|m| list(m))
            .unwrap_or_default();
        if models.is_empty() {
            warnings.push(format!(
                "{}: enables {} but names no models; set {stem}_MODELS (comma-separated) or \
                 declare model groups that use endpoint `{}`",
                ring[0], preset.title, preset.name
            ));
        }
        out.push(EndpointSpec {
            id: preset.name.to_string(),
            kind: preset.kind.to_string(),
            base_url,
            models,
            weight: 1,
            source: Source::Env,
            credentials,
            limits: Limits::default(),
            upstream: preset.style(&place),
        });
    }
    Ok(out)
}

/// A comma-separated list, trimmed, without empty items.
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

/// Client keys other gateways read from the environment, imported as they are: LLMProxy's
/// `LLM_PROXY_API_KEYS` (comma-separated), lmrelay's `LMRELAY_TOKEN` and LiteLLM's
/// `LITELLM_MASTER_KEY`.
pub fn keys(env: &BTreeMap<String, String>) -> Result<Vec<ClientKey>, String> {
    let mut out = Vec::new();
    let mut push = |id: String, name: &str, secret: &str| -> Result<(), String> {
        out.push(declared_key(
            &id,
            name,
            Some(secret),
            None,
            Vec::new(),
            0,
            Limits::default(),
        )?);
        Ok(())
    };
    if let Some(secrets) = env.get("LLM_PROXY_API_KEYS") {
        for (i, secret) in list(secrets).iter().enumerate() {
            push(format!("llm-proxy-{}", i + 1), "LLM_PROXY_API_KEYS", secret)?;
        }
    }
    for (var, id) in [
        ("LMRELAY_TOKEN", "lmrelay"),
        ("LITELLM_MASTER_KEY", "litellm-master"),
    ] {
        if let Some(secret) = env.get(var).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            push(id.to_string(), var, secret)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::ClusterKey;
    use crate::state::{ClusterState, Secret};

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn endpoints_from_variables() {
        let key = ClusterKey::from_bytes(&[2u8; 32]).unwrap();
        let state = ClusterState::default();
        let sealer = Sealer::new(Some(&key), &state);
        let got = endpoints(
            &env(&[
                ("LLM_PROXY_ENDPOINT_MY_VLLM_URL", "http://gpu:8000/v1"),
                ("LLM_PROXY_ENDPOINT_MY_VLLM_MODELS", "a, b,,c"),
                ("LLM_PROXY_ENDPOINT_MY_VLLM_PROVIDER", "vllm"),
                (
                    "LLM_PROXY_ENDPOINT_GROQ_URL",
                    "https://api.groq.com/openai/v1",
                ),
                ("LLM_PROXY_ENDPOINT_GROQ_KEY", "gsk_1"),
                ("LLM_PROXY_ENDPOINT_GROQ_KEY_2", "gsk_2"),
                ("LLM_PROXY_ENDPOINT_GROQ_KEY_4", "skipped: KEY_3 is missing"),
                ("UNRELATED", "x"),
            ]),
            &sealer,
        )
        .unwrap();
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, vec!["groq", "my_vllm"]);
        assert_eq!(got[0].kind, "openai");
        assert_eq!(got[0].source, Source::Env);
        let creds: Vec<(String, Option<String>)> = got[0]
            .credentials
            .iter()
            .map(|c| match &c.secret {
                Secret::Sealed { sealed } => (c.id.clone(), key.open(sealed)),
                Secret::Env { .. } => (c.id.clone(), None),
            })
            .collect();
        assert_eq!(
            creds,
            vec![
                ("key".into(), Some("gsk_1".into())),
                ("key_2".into(), Some("gsk_2".into()))
            ]
        );
        assert_eq!(got[1].models, vec!["a", "b", "c"]);
        assert_eq!(got[1].kind, "vllm");
    }

    #[test]
    fn provider_keys_enable_presets_with_their_rings() {
        let key = ClusterKey::from_bytes(&[3u8; 32]).unwrap();
        let state = ClusterState::default();
        let sealer = Sealer::new(Some(&key), &state);
        let mut warnings = Vec::new();
        let got = providers(
            &env(&[
                ("GROQ_API_KEY", "gsk_1"),
                ("GROQ_API_KEY_2", "gsk_2"),
                ("GROQ_MODELS", "llama-3.1-8b-instant"),
                ("OPENROUTER_API_KEY", "sk-or-1"),
                ("CLOUDFLARE_API_TOKEN", "cf"),
                ("ANTHROPIC_API_KEY", "sk-ant"),
            ]),
            &sealer,
            &["anthropic"],
            &mut warnings,
        )
        .unwrap();
        let rows: Vec<(&str, &str, usize, &str)> = got
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    e.base_url.as_str(),
                    e.credentials.len(),
                    e.upstream.provider.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    "openrouter",
                    "https://openrouter.ai/api/v1",
                    1,
                    "openrouter"
                ),
                ("groq", "https://api.groq.com/openai/v1", 2, "groq"),
            ]
        );
        let Secret::Sealed { sealed } = &got[1].credentials[1].secret else {
            panic!("sealed with the cluster key");
        };
        assert_eq!(key.open(sealed).as_deref(), Some("gsk_2"));
        assert_eq!(got[1].models, vec!["llama-3.1-8b-instant"]);
        assert!(warnings.iter().any(|w| w.contains("CLOUDFLARE_ACCOUNT_ID")));
        assert!(warnings.iter().any(|w| w.contains("OPENROUTER_MODELS")));
        // Without a cluster key the credentials stay references to the variables.
        let plain = Sealer::new(None, &state);
        let got = providers(&env(&[("GROQ_API_KEY", "g")]), &plain, &[], &mut warnings).unwrap();
        assert_eq!(
            got[0].credentials[0].secret,
            Secret::Env {
                name: "GROQ_API_KEY".into()
            }
        );
    }

    #[test]
    fn client_keys_of_other_gateways_are_imported() {
        let got = keys(&env(&[
            ("LLM_PROXY_API_KEYS", "alpha-key, beta-key,"),
            ("LMRELAY_TOKEN", "0123abcd"),
        ]))
        .unwrap();
        let rows: Vec<(&str, &str)> = got
            .iter()
            .map(|k| (k.id.as_str(), k.last4.as_str()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("llm-proxy-1", "-key"),
                ("llm-proxy-2", "-key"),
                ("lmrelay", "abcd")
            ]
        );
        assert_eq!(got[2].sha256_hex, crate::seal::sha256_hex("0123abcd"));
        assert!(keys(&env(&[("LMRELAY_TOKEN", "has space")])).is_err());
    }

    #[test]
    fn bad_variables_are_named() {
        let state = ClusterState::default();
        let sealer = Sealer::new(None, &state);
        let cases = [
            (
                vec![("LLM_PROXY_ENDPOINT_X_URL", "gpu:8000")],
                "LLM_PROXY_ENDPOINT_X_URL",
            ),
            (
                vec![("LLM_PROXY_ENDPOINT__URL", "http://x/v1")],
                "name is empty",
            ),
            (
                vec![
                    ("LLM_PROXY_ENDPOINT_X_URL", "http://x/v1"),
                    ("LLM_PROXY_ENDPOINT_X_KEY", "k"),
                ],
                "LLM_PROXY_ENDPOINT_X_KEY",
            ),
        ];
        for (vars, needle) in cases {
            let err = endpoints(&env(&vars), &sealer).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
