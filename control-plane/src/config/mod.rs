//! Declared configuration: `config.yaml` (ours or LiteLLM's, told apart by their top-level
//! keys) and `LLM_PROXY_ENDPOINT_<NAME>_*` environment variables, turned into the
//! [`Declared`] sets the state replaces on every load and reload.
//!
//! - [`ours`]: Switchyard's own format;
//! - [`litellm`]: LiteLLM's `model_list` / `router_settings`, accepted as-is;
//! - [`env`]: the environment variables;
//! - [`providers`]: cloud provider presets (`provider: groq`, `GROQ_API_KEY`).
//!
//! Pure apart from reading the file: the environment arrives as a map, so tests pass their own.

pub mod env;
pub mod litellm;
pub mod ours;
pub mod providers;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::seal::{self, ClusterKey};
use crate::state::{ClientKey, ClusterState, Credential, Declared, Limits, Secret, Source};

/// What loading the declared sources produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// From the config file.
    pub config: Declared,
    /// From the environment.
    pub env: Declared,
    /// Things accepted but not acted on, or dropped by precedence; for the log.
    pub warnings: Vec<String>,
    /// Peers the node agent should probe (`discovery.peers`), from our format only.
    pub discovery_peers: Vec<String>,
}

/// A secret as written in a config: by value, or by environment-variable reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// The secret itself.
    Value(String),
    /// The name of the variable the edge reads it from.
    Env(String),
}

impl SecretRef {
    /// Reads LiteLLM's `os.environ/NAME` convention; anything else is a value.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("os.environ/") {
            Some(name) => SecretRef::Env(name.to_string()),
            None => SecretRef::Value(text.to_string()),
        }
    }
}

/// Turns secrets into credentials (`key`, `key_2`, ...), sealing values with the cluster key.
/// A value whose plaintext is unchanged keeps its previous sealed form, so a reload of an
/// unchanged file changes nothing.
pub struct Sealer<'a> {
    key: Option<&'a ClusterKey>,
    current: &'a ClusterState,
    env: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Sealer<'a> {
    /// Seals with `key`, reusing ciphertext from `current` where the plaintext is unchanged.
    pub fn new(key: Option<&'a ClusterKey>, current: &'a ClusterState) -> Self {
        Self {
            key,
            current,
            env: None,
        }
    }

    /// Whether secrets given by value can be stored (a cluster key is configured).
    pub fn can_seal(&self) -> bool {
        self.key.is_some()
    }

    /// Credentials for endpoint `endpoint` from `secrets`, in order.
    pub fn credentials(
        &self,
        endpoint: &str,
        secrets: &[SecretRef],
        field: &str,
    ) -> Result<Vec<Credential>, Error> {
        secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let id = credential_id(i);
                let secret = match s {
                    SecretRef::Env(name) if name.is_empty() => {
                        return Err(Error::BadRequest(format!(
                            "{field}: os.environ/ needs a variable name"
                        )));
                    }
                    SecretRef::Env(name) => match self.env.and_then(|env| env.get(name)) {
                        Some(value) if self.key.is_some() && !value.trim().is_empty() => {
                            Secret::Sealed {
                                sealed: self.seal(endpoint, &id, value.trim(), field)?,
                            }
                        }
                        _ => Secret::Env { name: name.clone() },
                    },
                    SecretRef::Value(value) => Secret::Sealed {
                        sealed: self.seal(endpoint, &id, value, field)?,
                    },
                };
                Ok(Credential {
                    id,
                    secret,
                    label: String::new(),
                    models: Vec::new(),
                })
            })
            .collect()
    }

    fn seal(&self, endpoint: &str, id: &str, value: &str, field: &str) -> Result<String, Error> {
        let Some(key) = self.key else {
            return Err(Error::BadRequest(format!(
                "{field}: a secret given by value needs a cluster key to be stored encrypted; \
                 use api_key_env / os.environ/NAME instead, or configure cluster_key_file"
            )));
        };
        let previous = self
            .current
            .endpoints
            .get(endpoint)
            .and_then(|e| e.credentials.iter().find(|c| c.id == id))
            .and_then(|c| match &c.secret {
                Secret::Sealed { sealed } => Some(sealed.clone()),
                Secret::Env { .. } => None,
            });
        if let Some(previous) = previous
            && key.open(&previous).as_deref() == Some(value)
        {
            return Ok(previous);
        }
        key.seal(value)
    }
}

/// `key`, `key_2`, `key_3`, ... for the credential at position `i`.
pub fn credential_id(i: usize) -> String {
    if i == 0 {
        "key".into()
    } else {
        format!("key_{}", i + 1)
    }
}

/// Checks a client secret imported as it is (from another gateway, in any format): it must be
/// something a client can send in a header. Its format is otherwise free; only its hash is kept.
pub fn check_imported_secret(secret: &str) -> Result<(), String> {
    if secret.is_empty() {
        return Err("must not be empty".into());
    }
    if secret.len() > 512 {
        return Err("is longer than 512 characters".into());
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "may hold only visible ASCII characters (no spaces), as clients send it in a header"
                .into(),
        );
    }
    Ok(())
}

/// A client key declared in a config file, by its secret (or the secret's hash).
pub fn declared_key(
    id: &str,
    name: &str,
    secret: Option<&str>,
    sha256: Option<&str>,
    allowed_models: Vec<String>,
    expires_at_ms: i64,
    limits: Limits,
) -> Result<ClientKey, String> {
    let (sha256_hex, last4) = match (secret, sha256) {
        (Some(secret), None) => {
            check_imported_secret(secret).map_err(|reason| format!("key `{id}`: {reason}"))?;
            (seal::sha256_hex(secret), seal::last4(secret))
        }
        (None, Some(hash)) => (hash.to_ascii_lowercase(), String::new()),
        _ => {
            return Err(format!(
                "key `{id}`: give exactly one of key, key_env or sha256"
            ));
        }
    };
    Ok(ClientKey {
        id: id.to_string(),
        name: name.to_string(),
        sha256_hex,
        last4,
        allowed_models,
        expires_at_ms,
        revoked: false,
        limits,
        created_ms: 0,
        source: Source::Config,
        budget: Default::default(),
    })
}

/// Loads the config file (when given) and the environment, applying "YAML wins" on collisions.
pub fn load(
    file: Option<&Path>,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<Loaded, Error> {
    let mut loaded = Loaded::default();
    let mut disabled_listed = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let parsed = parse(&text, env, sealer).map_err(|reason| Error::ConfigFile {
            path: path.display().to_string(),
            reason: redact_quoted(&reason),
        })?;
        loaded.config = parsed.declared;
        loaded.warnings = parsed.warnings;
        loaded.discovery_peers = parsed.discovery_peers;
        disabled_listed = parsed.disabled_providers;
    }
    let mut from_env = env::endpoints(env, sealer).map_err(|reason| Error::Config {
        field: "LLM_PROXY_ENDPOINT_*",
        reason: redact_quoted(&reason),
    })?;
    from_env.retain(|e| {
        let clash = loaded.config.endpoints.iter().any(|c| c.id == e.id);
        if clash {
            loaded.warnings.push(format!(
                "endpoint `{}` is declared in both the config file and LLM_PROXY_ENDPOINT_*; the config file wins",
                e.id
            ));
        }
        !clash
    });
    // A provider the config file declares reads its own variables; the environment adds
    // only the providers the file does not mention.
    let declared: Vec<&str> = loaded
        .config
        .endpoints
        .iter()
        .map(|e| e.upstream.provider.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    let mut from_providers =
        env::providers(env, sealer, &declared, &mut loaded.warnings).map_err(|reason| {
            Error::Config {
                field: "<PROVIDER>_API_KEY",
                reason: redact_quoted(&reason),
            }
        })?;
    from_providers.retain(|p| {
        let clash = loaded.config.endpoints.iter().any(|c| c.id == p.id)
            || from_env.iter().any(|e| e.id == p.id);
        if clash {
            loaded.warnings.push(format!(
                "endpoint `{}` is declared elsewhere; its <PROVIDER>_API_KEY preset is not added",
                p.id
            ));
        }
        !clash
    });
    from_env.extend(from_providers);
    loaded.env.endpoints = from_env;
    loaded.env.keys = env::keys(env).map_err(|reason| Error::Config {
        field: "LLM_PROXY_API_KEYS / LMRELAY_TOKEN / LITELLM_MASTER_KEY",
        reason,
    })?;
    // Disabled providers leave both sources; their keys stay where they are.
    let (disabled, unknown) = providers::disabled(&disabled_listed, env);
    for name in unknown {
        loaded.warnings.push(format!(
            "disabled_providers: `{name}` is not a provider Switchyard knows ({})",
            providers::names()
        ));
    }
    for declared in [&mut loaded.config, &mut loaded.env] {
        declared.endpoints.retain(|e| {
            let off = disabled.contains(&e.upstream.provider.as_str());
            if off {
                loaded.warnings.push(format!(
                    "endpoint `{}`: provider {} is disabled",
                    e.id, e.upstream.provider
                ));
            }
            !off
        });
    }
    Ok(loaded)
}

/// Loads `file` and the environment as a voter would, only to report what it would warn
/// about (`switchyard doctor --config`). Secrets given by value are sealed with a throw-away
/// key, so a file that needs the cluster key can be checked on any machine.
pub fn lint(file: &Path, env: &BTreeMap<String, String>) -> Result<Vec<String>, Error> {
    let throwaway = ClusterKey::from_bytes(&[0u8; 32])?;
    let state = ClusterState::default();
    let loaded = load(Some(file), env, &Sealer::new(Some(&throwaway), &state))?;
    Ok(loaded.warnings)
}

/// Hides all but the last four characters of every double-quoted string longer than eight
/// characters in a parse error. serde quotes the offending value (`invalid type: string
/// "sk-…", expected a sequence`), and a secret pasted into the wrong field would otherwise
/// reach the log and the admin API's answer.
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        // The closing quote is the first one not escaped by a backslash.
        let mut close = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    close = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(close) = close else {
            out.push_str(rest);
            return out;
        };
        let inner = &rest[..close];
        let len = inner.chars().count();
        if len > 8 {
            out.push_str("****");
            out.extend(inner.chars().skip(len - 4));
        } else {
            out.push_str(inner);
        }
        out.push('"');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// One parsed config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// What it declares.
    pub declared: Declared,
    /// Accepted but not acted on.
    pub warnings: Vec<String>,
    /// `discovery.peers`.
    pub discovery_peers: Vec<String>,
    /// `disabled_providers`: preset names (or aliases) to leave out.
    pub disabled_providers: Vec<String>,
}

/// Parses a config file's text in either format.
pub fn parse(
    text: &str,
    env: &BTreeMap<String, String>,
    sealer: &Sealer<'_>,
) -> Result<Parsed, String> {
    let value = yaml::parse(text).map_err(|e| format!("not valid YAML: {e}"))?;
    // `os.environ/NAME` references the control plane's environment sets are stored sealed,
    // so edges on other hosts need not share the variable; others stay references that each
    // edge reads.
    let sealer = &Sealer {
        key: sealer.key,
        current: sealer.current,
        env: Some(env),
    };
    let is_litellm = value.as_mapping().is_some_and(|m| {
        ["model_list", "litellm_settings", "general_settings"]
            .iter()
            .any(|k| m.contains_key(k))
    });
    if is_litellm {
        litellm::parse(value, env, sealer)
    } else if value.is_null() {
        Ok(Parsed::default())
    } else {
        ours::parse(value, env, sealer)
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_quoted;

    #[test]
    fn quoted_values_keep_only_their_last_four_characters() {
        let cases = [
            (
                r#"invalid type: string "sk-live-0123456789abcd", expected a sequence"#,
                r#"invalid type: string "****abcd", expected a sequence"#,
            ),
            (
                r#"unknown kind "vllm", and "fast""#,
                r#"unknown kind "vllm", and "fast""#,
            ),
            (
                r#"a "quoted \"inner\" secret-value" end"#,
                r#"a "****alue" end"#,
            ),
            (
                r#"unterminated "sk-0123456789"#,
                r#"unterminated "sk-0123456789"#,
            ),
            ("no quotes at all", "no quotes at all"),
            (r#""""#, r#""""#),
        ];
        for (input, want) in cases {
            assert_eq!(redact_quoted(input), want, "{input}");
        }
    }
}
