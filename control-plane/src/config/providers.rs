//! Cloud provider presets: what `provider: groq` (in our config, a LiteLLM `groq/…` prefix or
//! `GROQ_API_KEY` in the environment) stands for. A preset supplies the base URL, the wire
//! protocol (the endpoint `kind`), where the credential goes, the rate-limit headers the
//! provider sends and the quirks Switchyard applies for it.
//!
//! Pure data and pure functions over an environment map; nothing here does IO.

use std::collections::BTreeMap;

use crate::state::{Limits, UpstreamStyle};

/// Where a provider expects the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the whole value of this header (`api-key`, `x-api-key`, `x-goog-api-key`).
    Header(&'static str),
}

/// One provider preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Switchyard's name, also the endpoint id an environment-enabled provider gets.
    pub name: &'static str,
    /// Display name.
    pub title: &'static str,
    /// Other names that select it: LiteLLM's model prefixes and lmrelay's provider names.
    pub aliases: &'static [&'static str],
    /// Stem of its environment variables: `{stem}_API_KEY[_N]`, `{stem}_API_BASE`,
    /// `{stem}_MODELS`.
    pub env_stem: &'static str,
    /// Other variables that hold a key, read when `{stem}_API_KEY` is unset.
    pub key_envs: &'static [&'static str],
    /// Base URL; `{account_id}` (Cloudflare) and `{endpoint}` (Azure) are filled in.
    pub base_url: &'static str,
    /// The endpoint kind: the protocol the edge speaks to it.
    pub kind: &'static str,
    /// Where the credential goes.
    pub auth: Auth,
    /// Headers every request to it carries besides the credential.
    pub headers: &'static [(&'static str, &'static str)],
    /// The rate-limit headers it answers with (documentation and `switchyard endpoints`).
    pub rate_limit_headers: &'static str,
    /// What Switchyard does differently for it, in a sentence (docs/providers.md).
    pub quirks: &'static str,
    /// Request parameters it refuses; with `drop_params` the edge leaves them out.
    pub unsupported_params: &'static [&'static str],
}

/// The Azure OpenAI `api-version` used when none is configured.
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// Every preset, in the order `docs/providers.md` lists them.
pub const PRESETS: [Preset; 14] = [
    Preset {
        name: "openrouter",
        title: "OpenRouter",
        aliases: &[],
        env_stem: "OPENROUTER",
        key_envs: &[],
        base_url: "https://openrouter.ai/api/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "x-ratelimit-*",
        quirks: "model ids ending in `:free` get OpenRouter's free-tier limit of 20 requests per \
                 minute unless the deployment declares its own rpm",
        unsupported_params: &[],
    },
    Preset {
        name: "groq",
        title: "Groq",
        aliases: &[],
        env_stem: "GROQ",
        key_envs: &[],
        base_url: "https://api.groq.com/openai/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "x-ratelimit-{limit,remaining,reset}-{requests,tokens}, retry-after",
        quirks: "reset times are Go durations (`1m26.4s`); refuses logprobs, top_logprobs and \
                 logit_bias, which drop_params leaves out",
        unsupported_params: &["logprobs", "top_logprobs", "logit_bias"],
    },
    Preset {
        name: "nvidia_nim",
        title: "NVIDIA NIM",
        aliases: &["nvidia", "nim"],
        env_stem: "NVIDIA_NIM",
        key_envs: &["NVIDIA_API_KEY"],
        base_url: "https://integrate.api.nvidia.com/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "retry-after",
        quirks: "the key is read from NVIDIA_NIM_API_KEY (LiteLLM's name), else NVIDIA_API_KEY",
        unsupported_params: &[],
    },
    Preset {
        name: "huggingface",
        title: "Hugging Face router",
        aliases: &["hf"],
        env_stem: "HUGGINGFACE",
        key_envs: &["HF_TOKEN"],
        base_url: "https://router.huggingface.co/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "retry-after",
        quirks: "a `model:provider` suffix picks the hosting provider and is sent as written",
        unsupported_params: &[],
    },
    Preset {
        name: "cerebras",
        title: "Cerebras",
        aliases: &[],
        env_stem: "CEREBRAS",
        key_envs: &[],
        base_url: "https://api.cerebras.ai/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "x-ratelimit-*",
        quirks: "counts the whole max_completion_tokens against the token limit",
        unsupported_params: &[],
    },
    Preset {
        name: "cloudflare",
        title: "Cloudflare Workers AI",
        aliases: &["cloudflare_wai", "workers_ai"],
        env_stem: "CLOUDFLARE",
        key_envs: &["CLOUDFLARE_API_TOKEN"],
        base_url: "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "retry-after",
        quirks: "the account id (CLOUDFLARE_ACCOUNT_ID or `account_id`) is part of the URL; \
                 requests without a User-Agent are refused, and every Switchyard request has one",
        unsupported_params: &[],
    },
    Preset {
        name: "gemini",
        title: "Google Gemini",
        aliases: &["google", "google_ai_studio"],
        env_stem: "GEMINI",
        key_envs: &["GOOGLE_API_KEY"],
        base_url: "https://generativelanguage.googleapis.com/v1beta",
        kind: "gemini",
        auth: Auth::Header("x-goog-api-key"),
        headers: &[],
        rate_limit_headers: "429 RESOURCE_EXHAUSTED with retry details",
        quirks: "spoken in Gemini's own generateContent protocol",
        unsupported_params: &[],
    },
    Preset {
        name: "anthropic",
        title: "Anthropic",
        aliases: &[],
        env_stem: "ANTHROPIC",
        key_envs: &[],
        base_url: "https://api.anthropic.com/v1",
        kind: "anthropic",
        auth: Auth::Header("x-api-key"),
        headers: &[("anthropic-version", "2023-06-01")],
        rate_limit_headers: "anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}, \
                             retry-after",
        quirks: "spoken in the Messages protocol, with anthropic-version 2023-06-01",
        unsupported_params: &[],
    },
    Preset {
        name: "openai",
        title: "OpenAI",
        aliases: &[],
        env_stem: "OPENAI",
        key_envs: &[],
        base_url: "https://api.openai.com/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "x-ratelimit-{limit,remaining,reset}-{requests,tokens}",
        quirks: "none",
        unsupported_params: &[],
    },
    Preset {
        name: "mistral",
        title: "Mistral",
        aliases: &[],
        env_stem: "MISTRAL",
        key_envs: &[],
        base_url: "https://api.mistral.ai/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "x-ratelimit-*",
        quirks: "none",
        unsupported_params: &[],
    },
    Preset {
        name: "deepseek",
        title: "DeepSeek",
        aliases: &[],
        env_stem: "DEEPSEEK",
        key_envs: &[],
        base_url: "https://api.deepseek.com/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "retry-after",
        quirks: "reasoning arrives as `reasoning_content` deltas, passed through",
        unsupported_params: &[],
    },
    Preset {
        name: "together",
        title: "Together",
        aliases: &["together_ai"],
        env_stem: "TOGETHER",
        key_envs: &["TOGETHERAI_API_KEY"],
        base_url: "https://api.together.xyz/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "x-ratelimit-*",
        quirks: "none",
        unsupported_params: &[],
    },
    Preset {
        name: "fireworks",
        title: "Fireworks",
        aliases: &["fireworks_ai"],
        env_stem: "FIREWORKS",
        key_envs: &["FIREWORKS_AI_API_KEY"],
        base_url: "https://api.fireworks.ai/inference/v1",
        kind: "openai",
        auth: Auth::Bearer,
        headers: &[],
        rate_limit_headers: "x-ratelimit-*",
        quirks: "model ids look like accounts/fireworks/models/<model>",
        unsupported_params: &[],
    },
    Preset {
        name: "azure",
        title: "Azure OpenAI",
        aliases: &["azure_openai"],
        env_stem: "AZURE_OPENAI",
        key_envs: &["AZURE_API_KEY"],
        base_url: "{endpoint}/openai/deployments/{deployment}",
        kind: "openai",
        auth: Auth::Header("api-key"),
        headers: &[],
        rate_limit_headers: "x-ratelimit-*, retry-after",
        quirks: "one endpoint per deployment (the deployment in the URL replaces `model`), \
                 `api-version` on every request, the key in the `api-key` header",
        unsupported_params: &[],
    },
];

/// The preset named `name` (its name or an alias, any case).
pub fn find(name: &str) -> Option<&'static Preset> {
    let name = name.trim().to_ascii_lowercase();
    PRESETS
        .iter()
        .find(|p| p.name == name || p.aliases.contains(&name.as_str()))
}

/// Names of every preset, for error messages.
pub fn names() -> String {
    PRESETS.map(|p| p.name).join(", ")
}

/// What a preset needs from its user besides a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// A base URL that replaces the preset's (a proxy, a test fake, a regional host).
    pub base_url: Option<String>,
    /// Cloudflare's account id.
    pub account_id: Option<String>,
    /// Azure: the resource URL (`https://NAME.openai.azure.com`).
    pub azure_endpoint: Option<String>,
    /// Azure: the deployment name.
    pub azure_deployment: Option<String>,
    /// Azure: the `api-version`.
    pub api_version: Option<String>,
}

impl Place {
    /// Fills what is unset from the environment: `{stem}_API_BASE`, `CLOUDFLARE_ACCOUNT_ID`,
    /// `AZURE_OPENAI_ENDPOINT` / `AZURE_API_BASE` and `OPENAI_API_VERSION` /
    /// `AZURE_API_VERSION`.
    pub fn or_env(mut self, preset: &Preset, env: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
        if preset.name == "azure" {
            self.azure_endpoint = self
                .azure_endpoint
                .or_else(|| get("AZURE_OPENAI_ENDPOINT"))
                .or_else(|| get("AZURE_API_BASE"));
            self.api_version = self
                .api_version
                .or_else(|| get("OPENAI_API_VERSION"))
                .or_else(|| get("AZURE_API_VERSION"));
        } else {
            self.base_url = self
                .base_url
                .or_else(|| get(&format!("{}_API_BASE", preset.env_stem)));
        }
        if preset.name == "cloudflare" {
            self.account_id = self.account_id.or_else(|| get("CLOUDFLARE_ACCOUNT_ID"));
        }
        self
    }
}

impl Preset {
    /// The base URL for `place`, or what is missing, naming the setting.
    pub fn base_url(&self, place: &Place) -> Result<String, String> {
        if let Some(base) = &place.base_url
            && self.name != "azure"
        {
            // An override may keep the account placeholder (a proxy in front of Cloudflare).
            let base = match &place.account_id {
                Some(account) => base.replace("{account_id}", account.trim()),
                None => base.clone(),
            };
            return Ok(base.trim_end_matches('/').to_string());
        }
        let url = match self.name {
            "cloudflare" => {
                let account = place.account_id.as_deref().ok_or(
                    "Cloudflare Workers AI needs an account id: set CLOUDFLARE_ACCOUNT_ID or \
                     `account_id`",
                )?;
                self.base_url.replace("{account_id}", account.trim())
            }
            "azure" => {
                let endpoint = place
                    .azure_endpoint
                    .as_deref()
                    .or(place.base_url.as_deref())
                    .ok_or(
                        "Azure OpenAI needs the resource URL: set AZURE_OPENAI_ENDPOINT or \
                         `api_base` (https://NAME.openai.azure.com)",
                    )?;
                let deployment = place
                    .azure_deployment
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .ok_or("Azure OpenAI needs the deployment name (the model after `azure/`)")?;
                let endpoint = endpoint.trim_end_matches('/');
                // A resource URL given with its deployment path already is used as it is.
                if endpoint.contains("/openai/deployments/") {
                    endpoint.to_string()
                } else {
                    self.base_url
                        .replace("{endpoint}", endpoint)
                        .replace("{deployment}", deployment)
                }
            }
            _ => self.base_url.to_string(),
        };
        Ok(url)
    }

    /// How requests to it are shaped beyond URL and body.
    pub fn style(&self, place: &Place) -> Box<UpstreamStyle> {
        let headers: BTreeMap<String, String> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut query = String::new();
        if self.name == "azure" {
            let version = place.api_version.as_deref().unwrap_or(AZURE_API_VERSION);
            query = format!("api-version={version}");
        }
        Box::new(UpstreamStyle {
            provider: self.name.to_string(),
            auth_header: match self.auth {
                Auth::Bearer => String::new(),
                Auth::Header(name) => name.to_string(),
            },
            headers,
            query,
            unsupported_params: self
                .unsupported_params
                .iter()
                .map(|p| p.to_string())
                .collect(),
        })
    }

    /// Limits a deployment of `model` gets when it declares none: OpenRouter's `:free`
    /// models allow 20 requests per minute.
    pub fn default_limits(&self, model: &str, declared: Limits) -> Limits {
        if self.name == "openrouter" && model.ends_with(":free") && declared.rpm == 0 {
            return Limits {
                rpm: 20,
                ..declared
            };
        }
        declared
    }

    /// The environment variables holding its keys, in ring order: `{stem}_API_KEY`,
    /// `_2`, `_3`, … up to the first gap; when unset, the first of `key_envs` that is set.
    pub fn key_ring(&self, env: &BTreeMap<String, String>) -> Vec<String> {
        let set = |name: &str| env.get(name).is_some_and(|v| !v.trim().is_empty());
        let mut stems = vec![format!("{}_API_KEY", self.env_stem)];
        stems.extend(self.key_envs.iter().map(|s| s.to_string()));
        for stem in stems {
            if !set(&stem) {
                continue;
            }
            let mut ring = vec![stem.clone()];
            for n in 2.. {
                let name = format!("{stem}_{n}");
                if !set(&name) {
                    break;
                }
                ring.push(name);
            }
            return ring;
        }
        Vec::new()
    }
}

/// Providers turned off by `disabled_providers` or `SWITCHYARD_DISABLED_PROVIDERS`
/// (comma-separated names or aliases), as preset names. Unknown names are returned apart.
pub fn disabled(
    listed: &[String],
    env: &BTreeMap<String, String>,
) -> (Vec<&'static str>, Vec<String>) {
    let from_env = env
        .get("SWITCHYARD_DISABLED_PROVIDERS")
        .or_else(|| env.get("LMRELAY_DISABLED_PROVIDERS"))
        .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for name in listed.iter().chain(&from_env) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        match find(name) {
            Some(p) if !known.contains(&p.name) => known.push(p.name),
            Some(_) => {}
            None => unknown.push(name.to_string()),
        }
    }
    (known, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_preset_is_found_by_its_names_and_has_an_https_base() {
        for p in &PRESETS {
            assert_eq!(find(p.name).map(|f| f.name), Some(p.name));
            assert_eq!(find(&p.name.to_uppercase()).map(|f| f.name), Some(p.name));
            for a in p.aliases {
                assert_eq!(find(a).map(|f| f.name), Some(p.name), "{a}");
            }
            assert!(
                p.base_url.starts_with("https://") || p.base_url.starts_with("{endpoint}"),
                "{}",
                p.name
            );
            assert!(["openai", "anthropic", "gemini"].contains(&p.kind));
        }
        assert_eq!(find("together_ai").map(|p| p.name), Some("together"));
        assert!(find("bedrock").is_none());
    }

    #[test]
    fn base_urls_fill_account_and_deployment() {
        let cf = find("cloudflare").unwrap();
        let e = env(&[("CLOUDFLARE_ACCOUNT_ID", "abc123")]);
        let place = Place::default().or_env(cf, &e);
        assert_eq!(
            cf.base_url(&place).unwrap(),
            "https://api.cloudflare.com/client/v4/accounts/abc123/ai/v1"
        );
        let err = cf.base_url(&Place::default()).unwrap_err();
        assert!(err.contains("CLOUDFLARE_ACCOUNT_ID"), "{err}");

        let az = find("azure").unwrap();
        let place = Place {
            azure_deployment: Some("gpt4o-prod".into()),
            ..Default::default()
        }
        .or_env(
            az,
            &env(&[
                ("AZURE_OPENAI_ENDPOINT", "https://acme.openai.azure.com/"),
                ("OPENAI_API_VERSION", "2025-01-01-preview"),
            ]),
        );
        assert_eq!(
            az.base_url(&place).unwrap(),
            "https://acme.openai.azure.com/openai/deployments/gpt4o-prod"
        );
        let style = az.style(&place);
        assert_eq!(
            (style.auth_header.as_str(), style.query.as_str()),
            ("api-key", "api-version=2025-01-01-preview")
        );
        assert_eq!(
            az.style(&Place::default()).query,
            format!("api-version={AZURE_API_VERSION}")
        );

        let groq = find("groq").unwrap();
        let moved = Place::default().or_env(groq, &env(&[("GROQ_API_BASE", "http://fake:1/v1/")]));
        assert_eq!(groq.base_url(&moved).unwrap(), "http://fake:1/v1");
        let anthropic = find("anthropic").unwrap().style(&Place::default());
        assert_eq!(anthropic.auth_header, "x-api-key");
        assert_eq!(anthropic.headers["anthropic-version"], "2023-06-01");
    }

    #[test]
    fn key_rings_follow_the_numbering_and_fall_back_to_other_names() {
        let groq = find("groq").unwrap();
        let e = env(&[
            ("GROQ_API_KEY", "a"),
            ("GROQ_API_KEY_2", "b"),
            ("GROQ_API_KEY_4", "gap before me"),
        ]);
        assert_eq!(groq.key_ring(&e), vec!["GROQ_API_KEY", "GROQ_API_KEY_2"]);
        let nim = find("nvidia").unwrap();
        assert_eq!(
            nim.key_ring(&env(&[("NVIDIA_API_KEY", "n")])),
            vec!["NVIDIA_API_KEY"]
        );
        assert!(groq.key_ring(&env(&[("GROQ_API_KEY", " ")])).is_empty());
    }

    #[test]
    fn disabled_providers_come_from_the_list_and_the_environment() {
        let (known, unknown) = disabled(
            &["Groq".into(), "nope".into()],
            &env(&[(
                "SWITCHYARD_DISABLED_PROVIDERS",
                "cloudflare_wai, huggingface,groq",
            )]),
        );
        assert_eq!(known, vec!["groq", "cloudflare", "huggingface"]);
        assert_eq!(unknown, vec!["nope"]);
    }

    #[test]
    fn free_openrouter_models_get_the_free_tier_rpm() {
        let or = find("openrouter").unwrap();
        assert_eq!(or.default_limits("x/y:free", Limits::default()).rpm, 20);
        let own = Limits {
            rpm: 5,
            ..Default::default()
        };
        assert_eq!(or.default_limits("x/y:free", own).rpm, 5);
        assert_eq!(or.default_limits("x/y", Limits::default()).rpm, 0);
    }
}
