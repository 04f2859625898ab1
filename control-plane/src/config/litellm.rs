//! LiteLLM's `config.yaml`, accepted as it is: `model_list`, `router_settings`,
//! `litellm_settings` and `general_settings`.
//!
//! Every `model_list` entry becomes a deployment of the model group `model_name`; entries that
//! share a provider and base URL share one endpoint, whose credentials are the distinct
//! `api_key`s in order. Provider prefixes with a preset (`groq/`, `gemini/`, `azure/`, …; see
//! [`super::providers`]) take their base URL, protocol and auth from it.
//!
//! What Switchyard does not implement is a warning (listed by `switchyard doctor`), never
//! fatal. Only a setting whose silent absence would be dangerous (an access rule, a spend cap, a
//! guardrail) refuses to load, and the error names it. Every key has a row in
//! `docs/migrate-from-litellm.md`.

mod settings;

use std::collections::BTreeMap;

use super::yaml::{Mapping, Value};
use settings::{number, settings_section};

use super::providers::{self, Place};
use super::{Parsed, Sealer, SecretRef};
use crate::state::{
    DeploymentSpec, EndpointSpec, Limits, ModelGroup, Price, RouterSettings, Source, UpstreamStyle,
};

/// OpenAI-compatible prefixes without a preset, with their base URL (`None`: `api_base` is
/// required). Local servers among them get `/v1` added to a bare `api_base`.
const COMPATIBLE: [(&str, Option<&str>); 7] = [
    ("hosted_vllm", None),
    ("vllm", None),
    ("ollama", Some("http://localhost:11434/v1")),
    ("ollama_chat", Some("http://localhost:11434/v1")),
    ("lm_studio", Some("http://localhost:1234/v1")),
    ("deepinfra", Some("https://api.deepinfra.com/v1/openai")),
    ("xai", Some("https://api.x.ai/v1")),
];

/// Keys whose silent absence would be dangerous: access rules, spend caps and guardrails
/// Switchyard does not enforce. A config that sets one refuses to load.
const REFUSED: [(&str, &str); 9] = [
    ("allowed_ips", "an IP allow-list"),
    ("allowed_routes", "a route allow-list"),
    ("admin_only_routes", "a route restriction"),
    ("enforce_user_param", "a required `user` parameter"),
    ("max_budget", "a spend cap"),
    ("budget_duration", "a spend cap"),
    ("max_end_user_budget", "a spend cap"),
    ("guardrails", "guardrails"),
    ("enable_jwt_auth", "JWT authentication"),
];

/// Settings that only concern LiteLLM's own process (logging, its database, its UI, its Redis)
/// and are safe to ignore: Switchyard keeps such state in its own replicated control plane.
const LITELLM_ONLY: [&str; 25] = [
    "set_verbose",
    "json_logs",
    "telemetry",
    "success_callback",
    "failure_callback",
    "callbacks",
    "service_callback",
    "database_url",
    "database_connection_pool_limit",
    "store_model_in_db",
    "store_prompts_in_spend_logs",
    "allow_requests_on_db_unavailable",
    "alerting",
    "alerting_threshold",
    "proxy_batch_write_at",
    "disable_spend_logs",
    "redis_host",
    "redis_port",
    "redis_password",
    "redis_url",
    "cache",
    "cache_params",
    "enable_pre_call_checks",
    "ui_access_mode",
    "health_check_details",
];

/// `litellm_params` that only tune LiteLLM's own client.
const CLIENT_PARAMS: [&str; 5] = [
    "stream_timeout",
    "max_retries",
    "timeout",
    "drop_params",
    "input_cost_per_token",
];

/// Parses LiteLLM's format from an already-read YAML value.
pub fn parse(
    value: Value,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<Parsed, String> {
    let root = value
        .as_mapping()
        .ok_or("the file is not a mapping of settings")?;
    let mut parsed = Parsed::default();
    let mut settings = RouterSettings {
        source: Source::Config,
        ..Default::default()
    };
    let mut any_settings = false;
    for (key, section) in root {
        let key = key.as_str().unwrap_or_default();
        match key {
            "model_list" => model_list(section, env, sealer, &mut parsed)?,
            "router_settings" | "litellm_settings" | "general_settings" => {
                any_settings |= settings_section(key, section, env, &mut settings, &mut parsed)?;
            }
            "environment_variables" => parsed.warnings.push(
                "environment_variables: ignored; export these variables in the environment of \
                 the control plane and edges instead"
                    .into(),
            ),
            other => parsed.warnings.push(format!(
                "{other}: not a LiteLLM section Switchyard implements; ignored"
            )),
        }
    }
    if any_settings {
        parsed.declared.settings = Some(settings);
    }
    Ok(parsed)
}

fn model_list(
    section: &Value,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let entries = section
        .as_sequence()
        .ok_or("model_list: must be a list of deployments")?;
    // Endpoint id -> (spec without credentials, secrets in order).
    let mut endpoints: BTreeMap<String, (EndpointSpec, Vec<SecretRef>)> = BTreeMap::new();
    let mut groups: BTreeMap<String, ModelGroup> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("model_list[{i}]");
        let entry = entry
            .as_mapping()
            .ok_or(format!("{at}: must be a mapping"))?;
        let mut name = None;
        let mut params = None;
        let mut info = None;
        for (k, v) in entry {
            match k.as_str().unwrap_or_default() {
                "model_name" => name = v.as_str().map(str::to_string),
                "litellm_params" => params = v.as_mapping(),
                "model_info" => info = v.as_mapping(),
                other => parsed.warnings.push(format!(
                    "{at}.{other}: not implemented by Switchyard; ignored"
                )),
            }
        }
        let name = name.ok_or(format!("{at}.model_name: missing"))?;
        let params = params.ok_or(format!("{at}.litellm_params: missing"))?;
        let Some(d) = deployment(&at, params, info, env, &mut parsed.warnings)? else {
            continue;
        };

        // Entries with the same provider and base URL share an endpoint.
        let base_id = d.provider.clone();
        let mut id = base_id.clone();
        let mut n = 1;
        while let Some((spec, _)) = endpoints.get(&id) {
            if spec.base_url == d.base_url && spec.upstream == d.style {
                break;
            }
            n += 1;
            id = format!("{base_id}-{n}");
        }
        let (_, secrets) = endpoints.entry(id.clone()).or_insert_with(|| {
            (
                EndpointSpec {
                    id: id.clone(),
                    kind: d.kind.to_string(),
                    base_url: d.base_url.clone(),
                    models: Vec::new(),
                    weight: 1,
                    source: Source::Config,
                    credentials: Vec::new(),
                    limits: Limits::default(),
                    upstream: d.style.clone(),
                },
                Vec::new(),
            )
        });
        if let Some(secret) = d.secret
            && !secrets.contains(&secret)
        {
            secrets.push(secret);
        }
        groups
            .entry(name.clone())
            .or_insert_with(|| ModelGroup {
                name: name.clone(),
                deployments: Vec::new(),
                source: Source::Config,
            })
            .deployments
            .push(DeploymentSpec {
                endpoint_id: id,
                upstream_model: d.model,
                weight: d.weight,
                context_length: d.context_length,
                limits: d.limits,
                price: d.price,
            });
    }
    for (id, (mut spec, secrets)) in endpoints {
        spec.credentials = sealer
            .credentials(
                &id,
                &secrets,
                &format!("model_list (endpoint {id}) api_key"),
            )
            .map_err(|e| e.to_string())?;
        parsed.declared.endpoints.push(spec);
    }
    parsed.declared.model_groups = groups.into_values().collect();
    Ok(())
}

/// One `model_list` entry, resolved.
struct Entry {
    provider: String,
    kind: &'static str,
    base_url: String,
    style: Box<UpstreamStyle>,
    model: String,
    secret: Option<SecretRef>,
    weight: u32,
    context_length: u32,
    limits: Limits,
    price: Price,
}

/// Resolves one entry; `None` (with a warning) when its provider cannot be served.
fn deployment(
    at: &str,
    params: &Mapping,
    info: Option<&Mapping>,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Entry>, String> {
    let Params {
        model,
        api_base,
        api_version,
        secret,
        mut limits,
        weight,
    } = litellm_params(at, params, warnings)?;
    let full = model.ok_or(format!("{at}.litellm_params.model: missing"))?;
    let (prefix, rest) = match full.split_once('/') {
        Some((p, rest)) => (Some(p), rest.to_string()),
        None => (None, full.clone()),
    };
    let preset = prefix.and_then(providers::find);
    let compatible = prefix.and_then(|p| COMPATIBLE.iter().find(|(n, _)| *n == p));
    let (provider, kind, base_url, style, upstream) = if let Some(preset) = preset {
        let place = Place {
            base_url: api_base.clone(),
            azure_endpoint: api_base.clone().filter(|_| preset.name == "azure"),
            azure_deployment: Some(rest.clone()),
            api_version,
            ..Default::default()
        }
        .or_env(preset, env);
        let base = preset
            .base_url(&place)
            .map_err(|reason| format!("{at}.litellm_params: {reason}"))?;
        limits = preset.default_limits(&rest, limits);
        (
            preset.name.to_string(),
            preset.kind,
            base,
            preset.style(&place),
            rest,
        )
    } else if let Some((name, default_base)) = compatible {
        let base = match (api_base, default_base) {
            (Some(base), _) => normalise_base(name, &base),
            (None, Some(base)) => base.to_string(),
            (None, None) => {
                return Err(format!(
                    "{at}.litellm_params.api_base: required for `{name}/` models"
                ));
            }
        };
        (name.to_string(), "openai", base, Box::default(), rest)
    } else if let Some(base) = api_base {
        // An unknown prefix with an api_base: an OpenAI-compatible server, model id as written.
        (
            "openai".to_string(),
            "openai",
            base.trim_end_matches('/').to_string(),
            Box::default(),
            full.clone(),
        )
    } else {
        warnings.push(format!(
            "{at}.litellm_params.model: provider of `{full}` is not one Switchyard forwards to \
             ({}, {}); this deployment is left out",
            providers::names(),
            COMPATIBLE.map(|(n, _)| n).join(", ")
        ));
        return Ok(None);
    };
    if upstream.is_empty() {
        return Err(format!(
            "{at}.litellm_params.model: `{full}` names no model"
        ));
    }
    let (context_length, input_cost, output_cost) = model_info(at, info)?;
    Ok(Some(Entry {
        provider,
        kind,
        base_url,
        style,
        model: upstream,
        secret,
        weight,
        context_length,
        limits,
        price: Price::per_token(input_cost, output_cost),
    }))
}

/// What an entry's `litellm_params` set, before the provider is resolved.
struct Params {
    model: Option<String>,
    api_base: Option<String>,
    api_version: Option<String>,
    secret: Option<SecretRef>,
    limits: Limits,
    weight: u32,
}

/// Reads `litellm_params`: the keys Switchyard uses; the rest is refused or a warning.
fn litellm_params(
    at: &str,
    params: &Mapping,
    warnings: &mut Vec<String>,
) -> Result<Params, String> {
    let mut out = Params {
        model: None,
        api_base: None,
        api_version: None,
        secret: None,
        limits: Limits::default(),
        weight: 1,
    };
    for (k, v) in params {
        let k = k.as_str().unwrap_or_default();
        match k {
            "model" => out.model = v.as_str().map(str::to_string),
            "api_base" | "base_url" => out.api_base = v.as_str().map(str::to_string),
            "api_version" => out.api_version = v.as_str().map(str::to_string),
            "api_key" => out.secret = v.as_str().map(SecretRef::parse),
            "rpm" => out.limits.rpm = number(at, k, v)?,
            "tpm" => out.limits.tpm = number(at, k, v)?,
            "max_parallel_requests" => {
                out.limits.max_concurrent = u32::try_from(number(at, k, v)?).unwrap_or(u32::MAX);
            }
            "weight" => out.weight = u32::try_from(number(at, k, v)?).unwrap_or(u32::MAX),
            k if CLIENT_PARAMS.contains(&k) => {}
            k => refuse_or_warn(&format!("{at}.litellm_params.{k}"), k, warnings)?,
        }
    }
    Ok(out)
}

/// What a deployment's `model_info` says that Switchyard uses: the context length (0 when
/// unknown) and the input and output prices in US dollars per token.
fn model_info(at: &str, info: Option<&Mapping>) -> Result<(u32, f64, f64), String> {
    let mut context_length = 0;
    let (mut input_cost, mut output_cost) = (0.0, 0.0);
    for (k, v) in info.into_iter().flatten() {
        match k.as_str().unwrap_or_default() {
            // US dollars per token; ours are per 1M tokens.
            "input_cost_per_token" => input_cost = cost(at, "input_cost_per_token", v)?,
            "output_cost_per_token" => output_cost = cost(at, "output_cost_per_token", v)?,
            "max_input_tokens" => {
                context_length = u32::try_from(number(at, "max_input_tokens", v)?).unwrap_or(0);
            }
            "max_tokens" if context_length == 0 => {
                context_length = u32::try_from(number(at, "max_tokens", v)?).unwrap_or(0);
            }
            // Descriptive only: ids, descriptions, costs, modes and capability flags.
            _ => {}
        }
    }
    Ok((context_length, input_cost, output_cost))
}

/// A key Switchyard does not implement: an error naming it when ignoring it would be
/// dangerous, else a warning.
fn refuse_or_warn(at: &str, key: &str, warnings: &mut Vec<String>) -> Result<(), String> {
    if let Some((_, what)) = REFUSED.iter().find(|(k, _)| *k == key) {
        return Err(format!(
            "{at}: sets {what}, which Switchyard does not enforce; loading it would silently \
             drop that protection, so remove it (and see docs/migrate-from-litellm.md for what \
             Switchyard offers instead)"
        ));
    }
    if LITELLM_ONLY.contains(&key) {
        warnings.push(format!("{at}: LiteLLM-only setting; ignored"));
    } else {
        warnings.push(format!("{at}: not implemented by Switchyard; ignored"));
    }
    Ok(())
}

/// A `model_info` cost per token: a number of 0 or more.
fn cost(at: &str, field: &str, v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(c) if c.is_finite() && c >= 0.0 => Ok(c),
        _ => Err(format!(
            "{at}.model_info.{field}: must be a number of 0 or more (US dollars per token)"
        )),
    }
}

/// Ollama's and LM Studio's `api_base` is the server root; ours ends in `/v1`.
fn normalise_base(provider: &str, base: &str) -> String {
    let base = base.trim_end_matches('/');
    let local = matches!(
        provider,
        "ollama" | "ollama_chat" | "lm_studio" | "hosted_vllm" | "vllm"
    );
    if local && !base.ends_with("/v1") {
        format!("{base}/v1")
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse as parse_any;
    use crate::seal::ClusterKey;
    use crate::state::{ClusterState, Secret};

    /// A four-provider gateway: local vLLM, Groq, NVIDIA NIM and OpenRouter.
    const FILE: &str = r#"
model_list:
  - model_name: llama-8b
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct
      api_base: http://gpu01:8000/v1
    model_info: {max_input_tokens: 8192}
  - model_name: llama-8b
    litellm_params:
      model: groq/llama-3.1-8b-instant
      api_key: os.environ/GROQ_API_KEY
      rpm: 30
      tpm: 6000
  - model_name: llama-8b
    litellm_params:
      model: groq/llama-3.1-8b-instant
      api_key: os.environ/GROQ_API_KEY_2
      rpm: 30
  - model_name: llama-70b
    litellm_params:
      model: nvidia_nim/meta/llama-3.1-70b-instruct
      api_key: os.environ/NVIDIA_NIM_API_KEY
    model_info: {max_input_tokens: 131072, mode: chat}
  - model_name: long-context
    litellm_params:
      model: openrouter/meta-llama/llama-3.1-405b-instruct
      api_key: sk-or-v1-secret
      rpm: 20
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 2
  retry_after: 5
  allowed_fails: 3
  cooldown_time: 30
  fallbacks: [{"llama-8b": ["llama-70b", "long-context"]}]
  context_window_fallbacks: [{"llama-8b": ["llama-70b"]}, {"llama-70b": ["long-context"]}]
litellm_settings:
  drop_params: true
general_settings:
  master_key: sk-1234
"#;

    #[test]
    fn multi_provider_config_imports_groups_and_chains() {
        let key = ClusterKey::from_bytes(&[9u8; 32]).unwrap();
        let state = ClusterState::default();
        let parsed = parse_any(FILE, &BTreeMap::new(), &Sealer::new(Some(&key), &state)).unwrap();
        let d = &parsed.declared;
        let endpoints: Vec<(&str, &str, usize)> = d
            .endpoints
            .iter()
            .map(|e| (e.id.as_str(), e.base_url.as_str(), e.credentials.len()))
            .collect();
        assert_eq!(
            endpoints,
            vec![
                ("groq", "https://api.groq.com/openai/v1", 2),
                ("hosted_vllm", "http://gpu01:8000/v1", 0),
                ("nvidia_nim", "https://integrate.api.nvidia.com/v1", 1),
                ("openrouter", "https://openrouter.ai/api/v1", 1),
            ]
        );
        let groq = &d.endpoints[0];
        assert_eq!(groq.credentials[1].id, "key_2");
        assert_eq!(
            groq.credentials[1].secret,
            Secret::Env {
                name: "GROQ_API_KEY_2".into()
            }
        );
        let Secret::Sealed { sealed } = &d.endpoints[3].credentials[0].secret else {
            panic!("a literal key is sealed");
        };
        assert_eq!(key.open(sealed).as_deref(), Some("sk-or-v1-secret"));

        type Row<'a> = (&'a str, &'a str, u32, u64);
        let groups: Vec<(&str, Vec<Row>)> = d
            .model_groups
            .iter()
            .map(|g| {
                (
                    g.name.as_str(),
                    g.deployments
                        .iter()
                        .map(|x| {
                            (
                                x.endpoint_id.as_str(),
                                x.upstream_model.as_str(),
                                x.context_length,
                                x.limits.rpm,
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                (
                    "llama-70b",
                    vec![("nvidia_nim", "meta/llama-3.1-70b-instruct", 131072, 0)]
                ),
                (
                    "llama-8b",
                    vec![
                        ("hosted_vllm", "meta-llama/Llama-3.1-8B-Instruct", 8192, 0),
                        ("groq", "llama-3.1-8b-instant", 0, 30),
                        ("groq", "llama-3.1-8b-instant", 0, 30),
                    ]
                ),
                (
                    "long-context",
                    vec![("openrouter", "meta-llama/llama-3.1-405b-instruct", 0, 20)]
                ),
            ]
        );
        let chains: Vec<(&str, bool, Vec<&str>)> = d
            .fallbacks
            .iter()
            .map(|f| {
                (
                    f.model.as_str(),
                    f.context_window,
                    f.chain.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            chains,
            vec![
                ("llama-8b", false, vec!["llama-70b", "long-context"]),
                ("llama-8b", true, vec!["llama-70b"]),
                ("llama-70b", true, vec!["long-context"]),
            ]
        );
        let s = d.settings.as_ref().unwrap();
        assert_eq!(
            (
                s.num_retries,
                s.allowed_fails,
                s.cooldown_ms,
                s.routing_strategy.as_str()
            ),
            (2, 3, 30_000, "simple-shuffle")
        );
        assert_eq!(
            (s.retry_after_ms, s.same_deployment_retries, s.drop_params),
            (5_000, 2, true)
        );
        assert_eq!(groq.upstream.provider, "groq");
        assert_eq!(d.keys[0].id, "master");
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    }

    #[test]
    fn what_cannot_be_honoured_is_named() {
        let state = ClusterState::default();
        let sealer = Sealer::new(None, &state);
        let env = BTreeMap::new();
        let cases = [
            (
                "model_list: [{model_name: a, litellm_params: {model: hosted_vllm/x}}]",
                "model_list[0].litellm_params.api_base",
            ),
            (
                "model_list: [{model_name: a, litellm_params: {model: groq/x, api_key: plain}}]",
                "cluster key",
            ),
            (
                "model_list: [{model_name: a, litellm_params: {model: cloudflare/@cf/x}}]",
                "CLOUDFLARE_ACCOUNT_ID",
            ),
            (
                "model_list: [{model_name: a, litellm_params: {model: groq/x, max_budget: 5}}]",
                "model_list[0].litellm_params.max_budget",
            ),
            (
                "model_list: []\ngeneral_settings: {allowed_ips: [10.0.0.1]}",
                "general_settings.allowed_ips",
            ),
            (
                "model_list: []\nlitellm_settings: {guardrails: [x]}",
                "litellm_settings.guardrails",
            ),
            (
                "model_list: []\nrouter_settings: {fallbacks: [a]}",
                "router_settings.fallbacks",
            ),
            (
                "model_list: []\ngeneral_settings: {master_key: os.environ/NOPE}",
                "NOPE",
            ),
        ];
        for (text, needle) in cases {
            let err = parse_any(text, &env, &sealer).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn what_is_not_implemented_is_a_warning() {
        let state = ClusterState::default();
        let sealer = Sealer::new(None, &state);
        let env = BTreeMap::new();
        let cases = [
            (
                "model_list: [{model_name: a, litellm_params: {model: bedrock/claude}}]",
                "bedrock/claude",
            ),
            (
                "model_list: [{model_name: a, litellm_params: {model: groq/x, aws_region_name: us}}]",
                "model_list[0].litellm_params.aws_region_name",
            ),
            (
                "model_list: []\nrouter_settings: {redis_url: x}",
                "router_settings.redis_url",
            ),
            (
                "model_list: []\nenvironment_variables: {A: b}",
                "environment_variables",
            ),
            ("model_list: []\nmcp_servers: {}", "mcp_servers"),
            (
                "model_list: []\ngeneral_settings: {store_model_in_db: true}",
                "LiteLLM-only",
            ),
        ];
        for (text, needle) in cases {
            let parsed = parse_any(text, &env, &sealer).unwrap();
            assert!(
                parsed.warnings.iter().any(|w| w.contains(needle)),
                "{text}: {:?}",
                parsed.warnings
            );
        }
    }

    #[test]
    fn presets_give_gemini_anthropic_and_azure_their_protocol_and_auth() {
        let state = ClusterState::default();
        let sealer = Sealer::new(None, &state);
        let env = BTreeMap::from([(
            "AZURE_OPENAI_ENDPOINT".to_string(),
            "https://acme.openai.azure.com".to_string(),
        )]);
        let text = r#"
model_list:
  - model_name: flash
    litellm_params: {model: gemini/gemini-2.5-flash, api_key: os.environ/GEMINI_API_KEY}
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4-5, api_key: os.environ/ANTHROPIC_API_KEY}
  - model_name: gpt4o
    litellm_params:
      model: azure/gpt4o-prod
      api_version: "2025-01-01-preview"
      api_key: os.environ/AZURE_API_KEY
  - model_name: free
    litellm_params: {model: openrouter/meta-llama/llama-3.3-70b-instruct:free}
"#;
        let parsed = parse_any(text, &env, &sealer).unwrap();
        let rows: Vec<(&str, &str, &str, &str, &str)> = parsed
            .declared
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    e.kind.as_str(),
                    e.base_url.as_str(),
                    e.upstream.auth_header.as_str(),
                    e.upstream.query.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    "anthropic",
                    "anthropic",
                    "https://api.anthropic.com/v1",
                    "x-api-key",
                    ""
                ),
                (
                    "azure",
                    "openai",
                    "https://acme.openai.azure.com/openai/deployments/gpt4o-prod",
                    "api-key",
                    "api-version=2025-01-01-preview"
                ),
                (
                    "gemini",
                    "gemini",
                    "https://generativelanguage.googleapis.com/v1beta",
                    "x-goog-api-key",
                    ""
                ),
                (
                    "openrouter",
                    "openai",
                    "https://openrouter.ai/api/v1",
                    "",
                    ""
                ),
            ]
        );
        let free = parsed
            .declared
            .model_groups
            .iter()
            .find(|g| g.name == "free")
            .unwrap();
        assert_eq!(free.deployments[0].limits.rpm, 20);
    }
}
