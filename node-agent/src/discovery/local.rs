//! Names of local hits: the configured targets on this host, named by [`Naming`].

use std::collections::HashMap;

use crate::config::Naming;
use crate::probe::{ProbeTarget, ServerKind};

/// The id a local hit of `kind` on its default port takes: `kind` or `<kind>-<node_name>`.
pub fn local_id(kind: ServerKind, naming: Naming, node_name: &str) -> String {
    match naming {
        Naming::Bare => kind.as_str().to_owned(),
        Naming::NodeSuffix => format!("{kind}-{node_name}"),
    }
}

/// Backend ids for `targets`, in the same order, all distinct.
///
/// The id is the kind name ([`Naming::Bare`]) or `<kind>-<node_name>` ([`Naming::NodeSuffix`]).
/// When a kind appears more than once, targets off the kind's default port get `-<port>`; if ids
/// still collide (same kind and port on several hosts), the host is appended as well.
pub fn backend_ids(targets: &[ProbeTarget], naming: Naming, node_name: &str) -> Vec<String> {
    let mut per_kind: HashMap<_, usize> = HashMap::new();
    for t in targets {
        *per_kind.entry(t.kind).or_default() += 1;
    }
    let mut ids: Vec<String> = targets
        .iter()
        .map(|t| {
            let mut id = local_id(t.kind, naming, node_name);
            if per_kind.get(&t.kind).copied().unwrap_or(0) > 1 && t.port != t.kind.default_port() {
                id = format!("{id}-{}", t.port);
            }
            id
        })
        .collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        *count.entry(id.clone()).or_default() += 1;
    }
    for (id, t) in ids.iter_mut().zip(targets) {
        if count.get(id.as_str()).copied().unwrap_or(0) > 1 {
            let host: String = t
                .host
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            *id = format!("{id}-{host}");
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_naming_and_stay_unique() {
        let t = |kind, host: &str, port| ProbeTarget::new(kind, host, port);
        use ServerKind::*;
        let cases: Vec<(Naming, Vec<ProbeTarget>, Vec<&str>)> = vec![
            (
                Naming::Bare,
                ProbeTarget::local_defaults(),
                vec!["ollama", "lmstudio", "vllm", "litellm"],
            ),
            (
                Naming::NodeSuffix,
                vec![t(Ollama, "127.0.0.1", 11434), t(Vllm, "127.0.0.1", 8000)],
                vec!["ollama-gpu01", "vllm-gpu01"],
            ),
            (
                Naming::Bare,
                vec![t(Ollama, "127.0.0.1", 11434), t(Ollama, "127.0.0.1", 11435)],
                vec!["ollama", "ollama-11435"],
            ),
            (
                Naming::NodeSuffix,
                vec![t(Vllm, "127.0.0.1", 8001), t(Vllm, "127.0.0.1", 8002)],
                vec!["vllm-gpu01-8001", "vllm-gpu01-8002"],
            ),
            (
                Naming::Bare,
                vec![t(Vllm, "10.0.0.1", 8000), t(Vllm, "10.0.0.2", 8000)],
                vec!["vllm-10-0-0-1", "vllm-10-0-0-2"],
            ),
            (
                Naming::Bare,
                vec![t(Ollama, "127.0.0.1", 5555)],
                vec!["ollama"],
            ),
        ];
        for (naming, targets, want) in cases {
            assert_eq!(backend_ids(&targets, naming, "gpu01"), want, "{targets:?}");
        }
    }
}
