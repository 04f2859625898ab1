//! vLLM: `GET /v1/models` (OpenAI list, with `max_model_len`); LoRA adapters appear as extra
//! entries and are servable models. `GET /metrics` (Prometheus text, open even with `--api-key`)
//! gives the queue and KV-cache gauges; `GET /version` the server version.

use std::collections::BTreeMap;

use super::ServerKind;
use super::openai::parse_model_list;
use crate::error::Error;

/// Path of vLLM's model listing.
pub const LISTING_PATH: &str = "/v1/models";
/// Path of vLLM's Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";
/// Path of vLLM's version.
pub const VERSION_PATH: &str = "/version";

/// The gauges routing cares about, summed over engines and models.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// Requests being processed (`vllm:num_requests_running`).
    pub running: u32,
    /// Requests queued (`vllm:num_requests_waiting`).
    pub waiting: u32,
    /// KV-cache usage as a 0..1 fraction, the fullest engine's; `None` when not exposed.
    pub kv_cache_usage: Option<f64>,
}

/// Parses vLLM's `/metrics`; fails when neither queue gauge is present (not a vLLM).
///
/// `vllm:kv_cache_usage_perc` is preferred; vLLM before 0.9.2 only has `vllm:gpu_cache_usage_perc`.
pub fn parse_metrics(text: &str) -> Result<Load, Error> {
    let mut running = None::<f64>;
    let mut waiting = None::<f64>;
    let mut kv = None::<f64>;
    let mut gpu_cache = None::<f64>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `name{labels} value [timestamp]`; label values may contain spaces, so split at the brace.
        let (name, rest) = match line.find('{') {
            Some(brace) => {
                let Some(close) = line.rfind('}') else {
                    continue;
                };
                (&line[..brace], &line[close + 1..])
            }
            None => match line.split_once(char::is_whitespace) {
                Some((name, rest)) => (name, rest),
                None => continue,
            },
        };
        let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        let add = |slot: &mut Option<f64>| *slot = Some(slot.unwrap_or(0.0) + value);
        let max = |slot: &mut Option<f64>| *slot = Some(slot.map_or(value, |v: f64| v.max(value)));
        match name {
            "vllm:num_requests_running" => add(&mut running),
            "vllm:num_requests_waiting" => add(&mut waiting),
            "vllm:kv_cache_usage_perc" => max(&mut kv),
            "vllm:gpu_cache_usage_perc" => max(&mut gpu_cache),
            _ => {}
        }
    }
    if running.is_none() && waiting.is_none() {
        return Err(Error::MalformedListing {
            kind: ServerKind::Vllm.as_str(),
            reason: "metrics have no vllm:num_requests gauges".to_owned(),
        });
    }
    let count =
        |v: Option<f64>| v.map_or(0, |v| v.max(0.0).min(f64::from(u32::MAX)).round() as u32);
    Ok(Load {
        running: count(running),
        waiting: count(waiting),
        kv_cache_usage: kv.or(gpu_cache).map(|v| v.clamp(0.0, 1.0)),
    })
}

/// Context length per model id from `/v1/models` (`max_model_len`); models without one are left out.
pub fn parse_context_lengths(body: &[u8]) -> BTreeMap<String, u32> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return BTreeMap::new();
    };
    value
        .get("data")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let id = e.get("id")?.as_str()?;
            let len = u32::try_from(e.get("max_model_len")?.as_u64()?).ok()?;
            (len > 0).then(|| (id.to_owned(), len))
        })
        .collect()
}

/// Parses `/version` (`{"version":"0.10.1"}`).
pub fn parse_version(body: &[u8]) -> Option<String> {
    super::ollama::parse_version(body)
}

/// Parses vLLM's `/v1/models` body into served model names, sorted and deduplicated.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>, Error> {
    parse_model_list(ServerKind::Vllm, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from vLLM 0.10 serving a base model plus one LoRA adapter (protocol.py `ModelCard`).
    const MODELS: &str = r#"{"object":"list","data":[
      {"id":"Qwen/Qwen2.5-7B-Instruct","object":"model","created":1732000000,"owned_by":"vllm",
       "root":"Qwen/Qwen2.5-7B-Instruct","parent":null,"max_model_len":32768,
       "permission":[{"id":"modelperm-1","object":"model_permission","allow_sampling":true}]},
      {"id":"sql-lora","object":"model","created":1732000000,"owned_by":"vllm",
       "root":"/adapters/sql","parent":"Qwen/Qwen2.5-7B-Instruct","max_model_len":null}]}"#;

    #[test]
    fn parses_listings() {
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            (
                "captured /v1/models with LoRA",
                MODELS,
                Some(&["Qwen/Qwen2.5-7B-Instruct", "sql-lora"]),
            ),
            ("empty list", r#"{"object":"list","data":[]}"#, Some(&[])),
            (
                "id not a string skipped",
                r#"{"data":[{"id":7},{"id":"ok"}]}"#,
                Some(&["ok"]),
            ),
            ("health body is empty", "", None),
            ("auth error", r#"{"error":"Unauthorized"}"#, None),
            ("data not an array", r#"{"data":null}"#, None),
        ];
        for (name, body, want) in cases {
            let got = parse_models(body.as_bytes()).ok();
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn context_lengths_from_listing() {
        let got = parse_context_lengths(MODELS.as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got["Qwen/Qwen2.5-7B-Instruct"], 32768);
        assert!(parse_context_lengths(b"nope").is_empty());
    }

    /// Trimmed from vLLM 0.10's `/metrics` with two data-parallel engines.
    const METRICS: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 3.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 7.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.42
vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.17
vllm:gpu_cache_usage_perc{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.99
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 12345.0
"#;

    /// Shaped like vLLM 0.8, before the KV-cache gauge was renamed.
    const OLD_METRICS: &str = "vllm:num_requests_running{model_name=\"m a\"} 1\n\
        vllm:num_requests_waiting{model_name=\"m a\"} 4 1712345678000\n\
        vllm:gpu_cache_usage_perc{model_name=\"m a\"} 0.5\n";

    #[test]
    fn parses_metrics() {
        let load = |running, waiting, kv| Load {
            running,
            waiting,
            kv_cache_usage: kv,
        };
        let cases: &[(&str, &str, Option<Load>)] = &[
            (
                "current names, summed over engines",
                METRICS,
                Some(load(5, 7, Some(0.42))),
            ),
            (
                "older gpu_cache name",
                OLD_METRICS,
                Some(load(1, 4, Some(0.5))),
            ),
            (
                "no kv gauge",
                "vllm:num_requests_waiting 2\nvllm:num_requests_running NaN\n",
                Some(load(0, 2, None)),
            ),
            ("not vLLM", "# HELP go_goroutines\ngo_goroutines 12\n", None),
            ("empty", "", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_metrics(text).ok(), *want, "{name}");
        }
    }
}
