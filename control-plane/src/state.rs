//! The replicated cluster state and the pure function that changes it.
//!
//! `ClusterState::apply` has no IO, no locks and no clock: every voter applies the same
//! committed commands in the same order and reaches the same state. Time arrives inside the
//! command (`at_ms`, milliseconds since the Unix epoch, stamped by the proposer).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

/// Where an endpoint was declared; decides precedence and is shown in every listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `config.yaml`.
    Config,
    /// `LLM_PROXY_ENDPOINT_<NAME>_*` environment variables.
    Env,
    /// The admin API.
    Api,
    /// The built-in demo model of `switchyard up --demo`.
    Demo,
    /// Found by a node agent; never clobbers a declared endpoint.
    Discovered,
}

impl Source {
    /// The name used on the wire and in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Env => "env",
            Source::Api => "api",
            Source::Demo => "demo",
            Source::Discovered => "discovered",
        }
    }
}

/// An upstream server or provider that serves models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Unique id (`ollama`, `vllm-gpu01`, `groq`, `ollama-auto`, ...).
    pub id: String,
    /// Server kind (`ollama`, `lmstudio`, `vllm`, `litellm`, `openai`).
    pub kind: String,
    /// OpenAI-compatible base URL, ending in `/v1`.
    pub base_url: String,
    /// Model ids the endpoint serves, sorted.
    pub models: Vec<String>,
    /// Relative share of traffic among deployments of one model.
    pub weight: u32,
    /// Where it was declared.
    pub source: Source,
    /// Node that discovered it, for discovered endpoints.
    pub node: Option<String>,
    /// The id the agent proposed, for discovered endpoints (the actual id may carry `-auto`).
    pub discovered_as: Option<String>,
    /// When the endpoint first appeared, ms since the Unix epoch.
    pub created_ms: u64,
}

/// A declared endpoint, as written by config, env, the admin API or the demo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Unique id.
    pub id: String,
    /// Server kind.
    pub kind: String,
    /// OpenAI-compatible base URL, ending in `/v1`.
    pub base_url: String,
    /// Model ids served.
    pub models: Vec<String>,
    /// Relative traffic share; 0 is read as 1.
    pub weight: u32,
    /// Where it was declared; must not be `Discovered`.
    pub source: Source,
}

/// A backend as a node agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredBackend {
    /// The id the agent proposes.
    pub id: String,
    /// Server kind.
    pub kind: String,
    /// OpenAI-compatible base URL.
    pub base_url: String,
    /// Model ids listed by the server.
    pub models: Vec<String>,
}

/// One way to serve a public model name: an endpoint and the model id it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Model id sent upstream.
    pub upstream_model: String,
    /// Relative traffic share; 0 is read as 1.
    pub weight: u32,
}

/// A public model name and the deployments that serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelGroup {
    /// Public model name clients ask for.
    pub name: String,
    /// Deployments in preference order.
    pub deployments: Vec<DeploymentSpec>,
}

/// Whether a node is reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Connected and reporting.
    Up,
    /// Disconnected or silent.
    Down,
}

/// A host running a node agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Agent version.
    pub version: String,
    /// Addresses the node reported.
    pub addresses: Vec<String>,
    /// Last committed status.
    pub status: NodeStatus,
    /// When `status` last changed, ms since the Unix epoch.
    pub since_ms: u64,
}

/// A change to the cluster state. Only committed commands change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Create or replace a declared endpoint.
    PutEndpoint {
        /// The endpoint.
        spec: EndpointSpec,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Remove an endpoint of any source.
    DeleteEndpoint {
        /// Endpoint id.
        id: String,
    },
    /// Create or replace an explicit model group.
    PutModelGroup {
        /// The group.
        group: ModelGroup,
    },
    /// Remove an explicit model group.
    DeleteModelGroup {
        /// Public model name.
        name: String,
    },
    /// A node agent connected.
    NodeUp {
        /// Node name.
        name: String,
        /// Agent version.
        version: String,
        /// Reported addresses.
        addresses: Vec<String>,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// A node agent went away.
    NodeDown {
        /// Node name.
        name: String,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
    /// What a node agent found. With `full`, backends of this node missing from `upserted` are
    /// removed (a snapshot); otherwise only `removed` are.
    ReportBackends {
        /// Reporting node.
        node: String,
        /// New or changed backends.
        upserted: Vec<DiscoveredBackend>,
        /// Proposed ids of backends that are gone.
        removed: Vec<String>,
        /// Whether `upserted` is everything the node sees.
        full: bool,
        /// Proposal time, ms since the Unix epoch.
        at_ms: u64,
    },
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The state changed; `revision` is the new routing-table version.
    Changed {
        /// Revision after the change.
        revision: u64,
    },
    /// The command was valid but changed nothing.
    Unchanged {
        /// Current revision.
        revision: u64,
    },
    /// The command was refused; the state is untouched.
    Rejected {
        /// Why, for the proposer.
        reason: String,
    },
}

/// Everything the control plane agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Increases by one with every change; the routing-table version.
    pub revision: u64,
    /// Endpoints by id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Explicit model groups by public name.
    pub model_groups: BTreeMap<String, ModelGroup>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
}

impl ClusterState {
    /// Applies one committed command. Pure: same state and command, same result.
    pub fn apply(&mut self, command: Command) -> Outcome {
        let changed = match command {
            Command::PutEndpoint { spec, at_ms } => match self.put_endpoint(spec, at_ms) {
                Ok(changed) => changed,
                Err(reason) => return Outcome::Rejected { reason },
            },
            Command::DeleteEndpoint { id } => self.endpoints.remove(&id).is_some(),
            Command::PutModelGroup { group } => {
                if group.name.is_empty() {
                    return Outcome::Rejected {
                        reason: "model group name is empty".into(),
                    };
                }
                self.model_groups.insert(group.name.clone(), group.clone()) != Some(group)
            }
            Command::DeleteModelGroup { name } => self.model_groups.remove(&name).is_some(),
            Command::NodeUp {
                name,
                version,
                addresses,
                at_ms,
            } => self.node_up(name, version, addresses, at_ms),
            Command::NodeDown { name, at_ms } => match self.nodes.get_mut(&name) {
                Some(node) if node.status == NodeStatus::Up => {
                    node.status = NodeStatus::Down;
                    node.since_ms = at_ms;
                    true
                }
                _ => false,
            },
            Command::ReportBackends {
                node,
                upserted,
                removed,
                full,
                at_ms,
            } => self.report_backends(&node, upserted, &removed, full, at_ms),
        };
        if changed {
            self.revision += 1;
            Outcome::Changed {
                revision: self.revision,
            }
        } else {
            Outcome::Unchanged {
                revision: self.revision,
            }
        }
    }

    fn put_endpoint(&mut self, spec: EndpointSpec, at_ms: u64) -> Result<bool, String> {
        if spec.source == Source::Discovered {
            return Err("declared endpoints cannot have source `discovered`".into());
        }
        if spec.id.is_empty() || spec.id.contains('/') {
            return Err(format!(
                "endpoint id `{}` must be non-empty and contain no `/`",
                spec.id
            ));
        }
        if !(spec.base_url.starts_with("http://") || spec.base_url.starts_with("https://")) {
            return Err(format!(
                "endpoint `{}`: base_url must start with http:// or https://",
                spec.id
            ));
        }
        // A declared endpoint takes its id from a discovered one, which moves aside.
        let mut created_ms = at_ms;
        let mut displaced = None;
        if let Some(existing) = self.endpoints.get(&spec.id) {
            if existing.source == Source::Discovered {
                displaced = self.endpoints.remove(&spec.id);
            } else {
                created_ms = existing.created_ms;
            }
        }
        let endpoint = Endpoint {
            id: spec.id.clone(),
            kind: spec.kind,
            base_url: spec.base_url.trim_end_matches('/').to_string(),
            models: sorted(spec.models),
            weight: spec.weight.max(1),
            source: spec.source,
            node: None,
            discovered_as: None,
            created_ms,
        };
        let changed = self.endpoints.insert(spec.id, endpoint.clone()) != Some(endpoint);
        if let Some(mut moved) = displaced {
            let base = moved
                .discovered_as
                .clone()
                .unwrap_or_else(|| moved.id.clone());
            moved.id = self.free_auto_id(&base);
            self.endpoints.insert(moved.id.clone(), moved);
        }
        Ok(changed)
    }

    fn node_up(
        &mut self,
        name: String,
        version: String,
        addresses: Vec<String>,
        at_ms: u64,
    ) -> bool {
        let node = Node {
            name: name.clone(),
            version,
            addresses,
            status: NodeStatus::Up,
            since_ms: at_ms,
        };
        match self.nodes.get_mut(&name) {
            Some(old)
                if old.status == NodeStatus::Up
                    && old.version == node.version
                    && old.addresses == node.addresses =>
            {
                false
            }
            Some(old) => {
                let since_ms = if old.status == NodeStatus::Up {
                    old.since_ms
                } else {
                    at_ms
                };
                *old = Node { since_ms, ..node };
                true
            }
            None => {
                self.nodes.insert(name, node);
                true
            }
        }
    }

    fn report_backends(
        &mut self,
        node: &str,
        upserted: Vec<DiscoveredBackend>,
        removed: &[String],
        full: bool,
        at_ms: u64,
    ) -> bool {
        let before = self.endpoints.clone();
        let owned: Vec<(String, String)> = self
            .endpoints
            .values()
            .filter(|e| e.source == Source::Discovered && e.node.as_deref() == Some(node))
            .map(|e| (e.discovered_as.clone().unwrap_or_default(), e.id.clone()))
            .collect();
        for (proposed, id) in &owned {
            let gone =
                removed.contains(proposed) || (full && !upserted.iter().any(|b| &b.id == proposed));
            if gone {
                self.endpoints.remove(id);
            }
        }
        for backend in upserted {
            let existing = owned
                .iter()
                .find(|(proposed, id)| proposed == &backend.id && self.endpoints.contains_key(id))
                .map(|(_, id)| id.clone());
            let (id, created_ms) = match existing {
                Some(id) => {
                    let created = self.endpoints.get(&id).map_or(at_ms, |e| e.created_ms);
                    (id, created)
                }
                None => (self.free_auto_id(&backend.id), at_ms),
            };
            let endpoint = Endpoint {
                id: id.clone(),
                kind: backend.kind,
                base_url: backend.base_url.trim_end_matches('/').to_string(),
                models: sorted(backend.models),
                weight: 1,
                source: Source::Discovered,
                node: Some(node.to_string()),
                discovered_as: Some(backend.id),
                created_ms,
            };
            self.endpoints.insert(id, endpoint);
        }
        self.endpoints != before
    }

    /// `base` if free, else `base-auto`, `base-auto2`, ... — discovery never clobbers.
    fn free_auto_id(&self, base: &str) -> String {
        if !self.endpoints.contains_key(base) {
            return base.to_string();
        }
        let mut n = 1u32;
        loop {
            let candidate = if n == 1 {
                format!("{base}-auto")
            } else {
                format!("{base}-auto{n}")
            };
            if !self.endpoints.contains_key(&candidate) {
                return candidate;
            }
            n += 1;
        }
    }
}

fn sorted(mut models: Vec<String>) -> Vec<String> {
    models.sort();
    models.dedup();
    models
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: &str, models: &[&str]) -> DiscoveredBackend {
        DiscoveredBackend {
            id: id.into(),
            kind: "ollama".into(),
            base_url: "http://127.0.0.1:11434/v1".into(),
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn report(
        node: &str,
        upserted: Vec<DiscoveredBackend>,
        removed: &[&str],
        full: bool,
    ) -> Command {
        Command::ReportBackends {
            node: node.into(),
            upserted,
            removed: removed.iter().map(|r| r.to_string()).collect(),
            full,
            at_ms: 1_000,
        }
    }

    fn declared(id: &str) -> Command {
        Command::PutEndpoint {
            spec: EndpointSpec {
                id: id.into(),
                kind: "openai".into(),
                base_url: "https://api.example.com/v1/".into(),
                models: vec!["b".into(), "a".into(), "a".into()],
                weight: 0,
                source: Source::Config,
            },
            at_ms: 5,
        }
    }

    #[test]
    fn commands_change_state_and_revision() {
        // (commands applied in order, expected outcome of the last, expected endpoint ids)
        let cases: Vec<(Vec<Command>, Outcome, Vec<&str>)> = vec![
            (
                vec![declared("groq")],
                Outcome::Changed { revision: 1 },
                vec!["groq"],
            ),
            (
                vec![declared("groq"), declared("groq")],
                Outcome::Unchanged { revision: 1 },
                vec!["groq"],
            ),
            (
                vec![
                    declared("groq"),
                    Command::DeleteEndpoint { id: "groq".into() },
                ],
                Outcome::Changed { revision: 2 },
                vec![],
            ),
            (
                vec![Command::DeleteEndpoint { id: "nope".into() }],
                Outcome::Unchanged { revision: 0 },
                vec![],
            ),
            (
                vec![report(
                    "n1",
                    vec![backend("ollama", &["llama3"])],
                    &[],
                    true,
                )],
                Outcome::Changed { revision: 1 },
                vec!["ollama"],
            ),
            // The same report again changes nothing.
            (
                vec![
                    report("n1", vec![backend("ollama", &["llama3"])], &[], true),
                    report("n1", vec![backend("ollama", &["llama3"])], &[], true),
                ],
                Outcome::Unchanged { revision: 1 },
                vec!["ollama"],
            ),
            // Discovery never clobbers a declared endpoint.
            (
                vec![
                    declared("ollama"),
                    report("n1", vec![backend("ollama", &["x"])], &[], true),
                ],
                Outcome::Changed { revision: 2 },
                vec!["ollama", "ollama-auto"],
            ),
            // A second node proposing the same id gets -auto2 after -auto is taken.
            (
                vec![
                    declared("ollama"),
                    report("n1", vec![backend("ollama", &["x"])], &[], true),
                    report("n2", vec![backend("ollama", &["y"])], &[], true),
                ],
                Outcome::Changed { revision: 3 },
                vec!["ollama", "ollama-auto", "ollama-auto2"],
            ),
            // A declared endpoint arriving later moves the discovered one aside.
            (
                vec![
                    report("n1", vec![backend("ollama", &["x"])], &[], true),
                    declared("ollama"),
                ],
                Outcome::Changed { revision: 2 },
                vec!["ollama", "ollama-auto"],
            ),
            // A removal names the proposed id, and only touches the reporting node.
            (
                vec![
                    report("n1", vec![backend("vllm", &["q"])], &[], true),
                    report("n2", vec![backend("vllm", &["q"])], &[], true),
                    report("n1", vec![], &["vllm"], false),
                ],
                Outcome::Changed { revision: 3 },
                vec!["vllm-auto"],
            ),
            // A full snapshot drops what is missing from it.
            (
                vec![
                    report(
                        "n1",
                        vec![backend("a", &["m"]), backend("b", &["m"])],
                        &[],
                        true,
                    ),
                    report("n1", vec![backend("b", &["m"])], &[], true),
                ],
                Outcome::Changed { revision: 2 },
                vec!["b"],
            ),
            // An update without `full` keeps the others.
            (
                vec![
                    report("n1", vec![backend("a", &["m"])], &[], true),
                    report("n1", vec![backend("b", &["m"])], &[], false),
                ],
                Outcome::Changed { revision: 2 },
                vec!["a", "b"],
            ),
        ];
        for (i, (commands, want, ids)) in cases.into_iter().enumerate() {
            let mut state = ClusterState::default();
            let mut last = None;
            for command in commands {
                last = Some(state.apply(command));
            }
            assert_eq!(last, Some(want), "case {i}");
            let got: Vec<&str> = state.endpoints.keys().map(String::as_str).collect();
            assert_eq!(got, ids, "case {i}");
        }
    }

    #[test]
    fn declared_endpoint_is_normalised() {
        let mut state = ClusterState::default();
        state.apply(declared("groq"));
        let e = &state.endpoints["groq"];
        assert_eq!(e.base_url, "https://api.example.com/v1");
        assert_eq!(e.models, vec!["a", "b"]);
        assert_eq!(e.weight, 1);
        assert_eq!(e.created_ms, 5);
    }

    #[test]
    fn bad_commands_are_rejected_without_change() {
        let bad = [
            Command::PutEndpoint {
                spec: EndpointSpec {
                    id: "x".into(),
                    kind: "openai".into(),
                    base_url: "ftp://nope".into(),
                    models: vec![],
                    weight: 1,
                    source: Source::Api,
                },
                at_ms: 0,
            },
            Command::PutEndpoint {
                spec: EndpointSpec {
                    id: "a/b".into(),
                    kind: "openai".into(),
                    base_url: "http://x/v1".into(),
                    models: vec![],
                    weight: 1,
                    source: Source::Api,
                },
                at_ms: 0,
            },
            Command::PutEndpoint {
                spec: EndpointSpec {
                    id: "x".into(),
                    kind: "openai".into(),
                    base_url: "http://x/v1".into(),
                    models: vec![],
                    weight: 1,
                    source: Source::Discovered,
                },
                at_ms: 0,
            },
            Command::PutModelGroup {
                group: ModelGroup {
                    name: String::new(),
                    deployments: vec![],
                },
            },
        ];
        for command in bad {
            let mut state = ClusterState::default();
            assert!(matches!(state.apply(command), Outcome::Rejected { .. }));
            assert_eq!(state, ClusterState::default());
        }
    }

    #[test]
    fn node_transitions_are_changes_and_repeats_are_not() {
        let up = |at_ms| Command::NodeUp {
            name: "gpu01".into(),
            version: "0.1.0".into(),
            addresses: vec!["10.0.0.5".into()],
            at_ms,
        };
        let mut state = ClusterState::default();
        assert_eq!(state.apply(up(1)), Outcome::Changed { revision: 1 });
        assert_eq!(state.apply(up(2)), Outcome::Unchanged { revision: 1 });
        let down = Command::NodeDown {
            name: "gpu01".into(),
            at_ms: 3,
        };
        assert_eq!(state.apply(down.clone()), Outcome::Changed { revision: 2 });
        assert_eq!(state.apply(down), Outcome::Unchanged { revision: 2 });
        assert_eq!(state.nodes["gpu01"].status, NodeStatus::Down);
        assert_eq!(state.nodes["gpu01"].since_ms, 3);
        assert_eq!(state.apply(up(4)), Outcome::Changed { revision: 3 });
        assert_eq!(state.nodes["gpu01"].since_ms, 4);
    }

    #[test]
    fn rediscovered_endpoint_keeps_its_auto_id_and_creation_time() {
        let mut state = ClusterState::default();
        state.apply(declared("ollama"));
        state.apply(report("n1", vec![backend("ollama", &["x"])], &[], true));
        let mut again = report("n1", vec![backend("ollama", &["x", "z"])], &[], true);
        if let Command::ReportBackends { at_ms, .. } = &mut again {
            *at_ms = 9_000;
        }
        state.apply(again);
        let e = &state.endpoints["ollama-auto"];
        assert_eq!(e.models, vec!["x", "z"]);
        assert_eq!(e.created_ms, 1_000);
        assert_eq!(state.endpoints.len(), 2);
    }
}
