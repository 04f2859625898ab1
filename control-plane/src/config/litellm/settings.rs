//! `router_settings`, `litellm_settings` and `general_settings`, and the number, flag and
//! duration readers the sections share with `model_list`.

use std::collections::BTreeMap;

use super::super::yaml::Value;
use super::super::{Parsed, SecretRef, declared_key};
use super::refuse_or_warn;
use crate::state::{Alias, CheckMode, Fallback, Limits, RouterSettings, Source};

pub(super) fn number(at: &str, key: &str, v: &Value) -> Result<u64, String> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .ok_or(format!("{at}.{key}: must be a non-negative number"))
}

fn flag(at: &str, v: &Value) -> Result<bool, String> {
    v.as_bool()
        .or_else(|| match v.as_str() {
            Some("true" | "True") => Some(true),
            Some("false" | "False") => Some(false),
            _ => None,
        })
        .ok_or(format!("{at}: must be true or false"))
}

/// `router_settings`, `litellm_settings` and `general_settings`: LiteLLM accepts most keys in
/// more than one of them, and so does Switchyard. True when a router setting was set.
pub(super) fn settings_section(
    section_name: &str,
    section: &Value,
    env: &BTreeMap<String, String>,
    settings: &mut RouterSettings,
    parsed: &mut Parsed,
) -> Result<bool, String> {
    let Some(map) = section.as_mapping() else {
        return Ok(false);
    };
    let mut any = false;
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default();
        let at = format!("{section_name}.{key}");
        match key {
            "fallbacks" | "context_window_fallbacks" => {
                fallbacks(&at, key == "context_window_fallbacks", v, parsed)?;
            }
            "model_group_alias" => group_aliases(&at, v, parsed)?,
            // LiteLLM's master key also works as a client key; keep it working the same way.
            "master_key" => master_key(&at, v, env, parsed)?,
            other => {
                if router_setting(section_name, &at, other, v, settings)? {
                    any = true;
                } else {
                    refuse_or_warn(&at, other, &mut parsed.warnings)?;
                }
            }
        }
    }
    Ok(any)
}

/// `fallbacks` or `context_window_fallbacks`: a later chain for a model replaces an earlier one.
fn fallbacks(at: &str, context_window: bool, v: &Value, parsed: &mut Parsed) -> Result<(), String> {
    for (model, chain) in fallback_list(at, v)? {
        parsed
            .declared
            .fallbacks
            .retain(|f| !(f.model == model && f.context_window == context_window));
        parsed.declared.fallbacks.push(Fallback {
            model,
            chain,
            context_window,
            source: Source::Config,
        });
    }
    Ok(())
}

/// `model_group_alias`: a mapping of alias names to model names.
fn group_aliases(at: &str, v: &Value, parsed: &mut Parsed) -> Result<(), String> {
    let aliases = v.as_mapping().ok_or(format!("{at}: must be a mapping"))?;
    for (name, target) in aliases {
        let (Some(name), Some(target)) = (name.as_str(), target.as_str()) else {
            return Err(format!("{at}: aliases map names to model names"));
        };
        parsed.declared.aliases.push(Alias {
            name: name.into(),
            target: target.into(),
            source: Source::Config,
        });
    }
    Ok(())
}

/// One key of the router's settings into `settings`; false when `key` is not one of them.
fn router_setting(
    section_name: &str,
    at: &str,
    key: &str,
    v: &Value,
    settings: &mut RouterSettings,
) -> Result<bool, String> {
    match key {
        // LiteLLM retries the same deployment `num_retries` times (waiting `retry_after`)
        // before it falls back; the edge's overall attempt budget follows it too.
        "num_retries" => {
            let n = u32::try_from(number(section_name, key, v)?).unwrap_or(0);
            settings.num_retries = n;
            settings.same_deployment_retries = n;
        }
        "retry_after" => settings.retry_after_ms = seconds_ms(at, v)?,
        "allowed_fails" => {
            settings.allowed_fails = u32::try_from(number(section_name, key, v)?).unwrap_or(0);
        }
        // LiteLLM's times are seconds; ours are milliseconds.
        "cooldown_time" => settings.cooldown_ms = seconds_ms(at, v)?,
        "timeout" | "request_timeout" => settings.timeout_ms = seconds_ms(at, v)?,
        "routing_strategy" => {
            settings.routing_strategy = v.as_str().unwrap_or_default().to_string();
        }
        "drop_params" => settings.drop_params = flag(at, v)?,
        "background_health_checks" => settings.health_checks.enabled = flag(at, v)?,
        "health_check_interval" => settings.health_checks.interval_ms = seconds_ms(at, v)?,
        "enable_health_check_routing" => settings.health_checks.routing = flag(at, v)?,
        // Switchyard's own: spend a token per check to prove inference works.
        "health_check_mode" => {
            settings.health_checks.mode = match v.as_str() {
                Some("models") => CheckMode::Models,
                Some("completion") => CheckMode::Completion,
                _ => return Err(format!("{at}: must be `models` or `completion`")),
            };
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn master_key(
    at: &str,
    v: &Value,
    env: &BTreeMap<String, String>,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let text = v.as_str().unwrap_or_default();
    let secret = match SecretRef::parse(text) {
        SecretRef::Value(s) => s,
        SecretRef::Env(name) => env
            .get(&name)
            .cloned()
            .ok_or(format!("{at}: environment variable {name} is not set"))?,
    };
    parsed.declared.keys.push(declared_key(
        "master",
        "LiteLLM master_key",
        Some(&secret),
        None,
        Vec::new(),
        0,
        Limits::default(),
    )?);
    Ok(())
}

/// LiteLLM writes fallbacks as a list of one-entry maps: `[{"a": ["b", "c"]}]`.
fn fallback_list(at: &str, v: &Value) -> Result<Vec<(String, Vec<String>)>, String> {
    let shape = || format!("{at}: must be a list like [{{\"model\": [\"fallback\", ...]}}]");
    let mut out = Vec::new();
    for item in v.as_sequence().ok_or_else(shape)? {
        for (model, chain) in item.as_mapping().ok_or_else(shape)? {
            let model = model.as_str().ok_or_else(shape)?.to_string();
            let chain = chain
                .as_sequence()
                .ok_or_else(shape)?
                .iter()
                .map(|m| m.as_str().map(str::to_string).ok_or_else(shape))
                .collect::<Result<Vec<_>, _>>()?;
            out.push((model, chain));
        }
    }
    Ok(out)
}

fn seconds_ms(at: &str, v: &Value) -> Result<u64, String> {
    v.as_f64()
        .filter(|s| *s >= 0.0)
        .map(|s| (s * 1000.0) as u64)
        .ok_or(format!("{at}: must be a number of seconds"))
}
