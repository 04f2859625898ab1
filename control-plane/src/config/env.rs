//! `LLM_PROXY_ENDPOINT_<NAME>_{URL,KEY,KEY_2,...,MODELS,PROVIDER}`: endpoints declared in the
//! environment. `NAME` may contain `_`; the endpoint id is `NAME` lowercased. Keys are read by
//! the control plane and stored sealed, so edges on other hosts need not share the variables.

use std::collections::BTreeMap;

use super::{Sealer, SecretRef};
use crate::state::{EndpointSpec, Limits, Source};

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
        let models = get("MODELS")
            .map(|m| {
                m.split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let kind = match get("PROVIDER").map(|p| p.trim().to_ascii_lowercase()) {
            None => "openai".to_string(),
            Some(p) if p.is_empty() || p == "openai-compatible" => "openai".to_string(),
            Some(p) => p,
        };
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{var}: `{url}` is not an http(s) URL"));
        }
        out.push(EndpointSpec {
            id,
            kind,
            base_url: url.to_string(),
            models,
            weight: 1,
            source: Source::Env,
            credentials,
            limits: Limits::default(),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
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
