//! The edge-side routing table: the control plane's table compiled into lookups by model
//! name, alias and endpoint, with credentials resolved and live target state carried over from
//! the previous version.

mod compile;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::target::{CredState, Target};
use crate::auth::KeyStore;
use crate::metrics::DeploymentSeries;
use crate::usage::Price;

/// Default extra attempts after the first, per model group.
pub const DEFAULT_NUM_RETRIES: u32 = 2;
/// Default failures within a minute that cool a target down.
pub const DEFAULT_ALLOWED_FAILS: u32 = 3;
/// Default cooldown after failures, and the base of the 429 backoff.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);

/// The routing table as the edge reads it on every request.
#[derive(Debug, Default)]
pub struct RoutingTable {
    /// The control plane's version of this table; newer tables have larger versions.
    pub version: u64,
    /// Identifies the cluster's history.
    pub cluster_id: String,
    /// Model groups by public model name.
    pub models: HashMap<String, Arc<ModelGroup>>,
    /// Alias name → model group name.
    pub aliases: HashMap<String, String>,
    /// Capability alias name → its member groups, best first ([`super::alias`]).
    pub alias_members: HashMap<String, Vec<String>>,
    /// Model group → groups to try when all of its deployments fail.
    pub fallbacks: HashMap<String, Vec<String>>,
    /// Model group → larger groups to try when the prompt does not fit.
    pub context_fallbacks: HashMap<String, Vec<String>>,
    /// Endpoints by id.
    pub endpoints: HashMap<String, Arc<Endpoint>>,
    /// Client keys.
    pub keys: KeyStore,
    /// Retry, timeout and cooldown settings.
    pub settings: Settings,
    /// Live state per (endpoint id, upstream model), carried into the next version.
    targets: HashMap<(Arc<str>, Arc<str>), Arc<Target>>,
}

/// Router settings with the table's zeros replaced by defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Extra attempts after the first, per model group.
    pub num_retries: u32,
    /// Overall deadline per request, when the table sets one.
    pub timeout: Option<Duration>,
    /// Failures within a minute that cool a target down.
    pub allowed_fails: u32,
    /// Cooldown after failures; base of the 429 backoff.
    pub cooldown: Duration,
    /// How deployments are ordered.
    pub strategy: Strategy,
    /// Attempts on the same deployment beyond the first before the next candidate.
    pub same_deployment_retries: u32,
    /// Wait before such a retry.
    pub retry_after: Duration,
    /// Drop request parameters a target cannot take instead of refusing.
    pub drop_params: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            num_retries: DEFAULT_NUM_RETRIES,
            timeout: None,
            allowed_fails: DEFAULT_ALLOWED_FAILS,
            cooldown: DEFAULT_COOLDOWN,
            strategy: Strategy::PeakEwma,
            same_deployment_retries: 0,
            retry_after: Duration::ZERO,
            drop_params: false,
        }
    }
}

/// How deployments of a group are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Power of two weighted choices, comparing in-flight requests × peak-EWMA latency.
    PeakEwma,
    /// Weighted random order (LiteLLM's `simple-shuffle`).
    Shuffle,
    /// Fewest requests in flight first (LiteLLM's `least-busy`).
    LeastBusy,
}

/// What kind of server an endpoint is; decides what it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// Any OpenAI-compatible server (vLLM, LM Studio, LiteLLM, cloud providers).
    OpenAi,
    /// Ollama's OpenAI surface (ignores `n`), or its native API when that surface is missing.
    Ollama,
    /// Anthropic's Messages API (`{base}/messages`, `x-api-key`).
    Anthropic,
    /// Google's Gemini `generateContent` API (`x-goog-api-key`).
    Gemini,
}

impl EndpointKind {
    /// Maps the table's kind string (unknown kinds are OpenAI-compatible).
    pub fn parse(kind: &str) -> Self {
        match kind.to_ascii_lowercase().as_str() {
            "ollama" => Self::Ollama,
            "anthropic" => Self::Anthropic,
            "gemini" => Self::Gemini,
            _ => Self::OpenAi,
        }
    }

    /// Whether the server honours `n > 1`.
    pub fn supports_n(self) -> bool {
        matches!(self, Self::OpenAi)
    }
}

/// An upstream credential, ready to send.
#[derive(Clone)]
pub struct Credential {
    /// `key`, `key_2`, … (for cooldowns, headers and logs).
    pub id: Arc<str>,
    /// The header it goes in: `authorization`, or the provider's own (`api-key`, `x-api-key`).
    pub header: HeaderName,
    /// `Bearer <secret>` for `authorization`, else the secret itself; marked sensitive.
    pub authorization: HeaderValue,
    /// `id` as a response header value (`None` if it is not one).
    pub id_header: Option<HeaderValue>,
    /// Upstream model globs it may serve; empty means every model.
    pub models: Vec<String>,
}

impl Credential {
    /// Whether this credential may carry a request for `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|g| crate::auth::glob(g, model))
    }
}

/// The `user-agent` of every upstream request unless the endpoint sets its own (Cloudflare
/// refuses requests without one).
pub const USER_AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An endpoint with its credentials resolved.
#[derive(Debug)]
pub struct Endpoint {
    /// Endpoint id.
    pub id: Arc<str>,
    /// `id` as a response header value (`None` if it is not one: not visible ASCII).
    pub id_header: Option<HeaderValue>,
    /// Server kind.
    pub kind: EndpointKind,
    /// OpenAI-compatible base URL without a trailing slash.
    pub base_url: Arc<str>,
    /// `{base_url}/chat/completions`, `/completions` and `/embeddings`, parsed once; `None`
    /// when the base URL is not a valid URI.
    pub uris: Option<[http::Uri; 3]>,
    /// The `host` header for those URIs (what the HTTP client would otherwise format on every
    /// request): the host, and the port unless it is the scheme's default.
    pub host_header: Option<HeaderValue>,
    /// False while its node is down, its probes fail, or (with health-check routing) the
    /// cluster's last active check failed.
    pub healthy: bool,
    /// The cluster's last active check, when it checks this endpoint: (passed, unix ms of
    /// the last transition, why it failed).
    pub checked: Option<(bool, i64, String)>,
    /// Credentials in order; empty for servers without auth.
    pub credentials: Vec<Credential>,
    /// Headers every request carries (`user-agent`, the provider's fixed ones).
    pub request_headers: Vec<(HeaderName, HeaderValue)>,
    /// Request parameters it refuses, left out under `drop_params` (`n` for Ollama).
    pub unsupported_params: Vec<String>,
    /// Requests running + waiting on the server as its agent reported (vLLM).
    pub queued: u32,
    /// Models the server has loaded, when known.
    pub loaded: Option<HashSet<String>>,
    /// Context lengths the server reported per model id.
    pub context_lengths: HashMap<String, u32>,
    /// Cooldowns for every model of the endpoint, per credential (connect failures).
    pub wide: Arc<Target>,
    /// Deadlines from the table's cooldowns with an empty model, per credential.
    pub table_wide_until: Box<[i64]>,
}

impl Endpoint {
    /// Number of credential slots (at least one).
    pub fn slots(&self) -> usize {
        self.credentials.len().max(1)
    }
}

/// A public model name and the deployments that serve it, in preference order.
#[derive(Debug)]
pub struct ModelGroup {
    /// The public model name clients send.
    pub name: Arc<str>,
    /// Unix seconds the model was first seen.
    pub created: i64,
    /// Owner shown in `/v1/models`.
    pub owned_by: String,
    /// Deployments serving the model.
    pub deployments: Vec<Arc<Deployment>>,
}

/// One upstream that serves a model.
#[derive(Debug)]
pub struct Deployment {
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// Model id sent upstream in place of the public name.
    pub upstream_model: Arc<str>,
    /// `upstream_model` as a response header value (`None` if it is not one).
    pub model_header: Option<HeaderValue>,
    /// Relative weight (0 counts as 1).
    pub weight: u32,
    /// Context window in tokens; 0 = unknown.
    pub context_length: u32,
    /// Live load and cooldowns.
    pub target: Arc<Target>,
    /// Deadlines from the table's cooldowns for this model, per credential.
    pub table_until: Box<[i64]>,
    /// Limits declared in config for each credential of this deployment.
    pub limits: UpstreamLimits,
    /// Its metric series, looked up at its first answer.
    pub series: OnceLock<DeploymentSeries>,
    /// `<endpoint>/<upstream model>`, as usage names it.
    pub usage_id: Arc<str>,
    /// What it costs per 1M tokens.
    pub price: Price,
    /// What the model accepts or does (`vision`, `embed`, `tools`, ...), for listings.
    pub capabilities: Vec<String>,
    /// Costs nothing per token (marked free, or a local server), for listings.
    pub free: bool,
}

/// An upstream deployment's limits per credential; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Requests per minute.
    pub rpm: u64,
    /// Tokens per minute.
    pub tpm: u64,
    /// Requests per day.
    pub rpd: u64,
}

impl UpstreamLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.rpm != 0 || self.tpm != 0 || self.rpd != 0
    }
}

impl Deployment {
    /// Unix ms until which credential `slot` rests, from every source.
    pub fn cooled_until(&self, slot: usize) -> i64 {
        let at = |s: &[CredState]| s.get(slot).map_or(0, CredState::until_ms);
        let table = |t: &[i64]| t.get(slot).copied().unwrap_or(0);
        at(&self.target.creds)
            .max(at(&self.endpoint.wide.creds))
            .max(table(&self.table_until))
            .max(table(&self.endpoint.table_wide_until))
    }

    /// The limits in force for credential `slot`: each declared one, else the one the upstream
    /// announced in its `x-ratelimit-limit-*` headers (per minute), else none.
    pub fn limits(&self, slot: usize) -> UpstreamLimits {
        let declared = self.limits;
        let (rpm, tpm) = self
            .target
            .creds
            .get(slot)
            .map_or((0, 0), CredState::learned);
        UpstreamLimits {
            rpm: if declared.rpm != 0 { declared.rpm } else { rpm },
            tpm: if declared.tpm != 0 { declared.tpm } else { tpm },
            rpd: declared.rpd,
        }
    }

    /// The context window: the table's, else what the server reported, else unknown (0).
    pub fn context_window(&self) -> u32 {
        if self.context_length != 0 {
            return self.context_length;
        }
        self.endpoint
            .context_lengths
            .get(&*self.upstream_model)
            .copied()
            .unwrap_or(0)
    }

    /// False when the server is known to have the model unloaded (the first request pays a load).
    pub fn is_warm(&self) -> bool {
        self.endpoint
            .loaded
            .as_ref()
            .is_none_or(|l| l.contains(&*self.upstream_model))
    }
}

impl RoutingTable {
    /// The model group a client's name means: a group, an alias of one, or `endpoint-id/model`
    /// (served by that endpoint alone). `None` when it names nothing.
    pub fn resolve(&self, name: &str) -> Option<Arc<ModelGroup>> {
        if let Some(group) = self.models.get(name) {
            return Some(group.clone());
        }
        if let Some(first) = super::alias::members(self, name, super::target::now_ms()).first() {
            return Some(first.clone());
        }
        if let Some(target) = self.aliases.get(name) {
            return self.models.get(target).cloned();
        }
        let (endpoint_id, model) = name.split_once('/')?;
        let endpoint = self.endpoints.get(endpoint_id)?;
        if model.is_empty() {
            return None;
        }
        let key = (endpoint.id.clone(), Arc::<str>::from(model));
        // A pair no group serves gets fresh state; its cooldowns last for this request only.
        let target = self
            .targets
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Target::new(endpoint.credentials.len()));
        let deployment = Deployment {
            usage_id: Arc::from(name),
            price: Price::default(),
            endpoint: endpoint.clone(),
            model_header: HeaderValue::from_str(&key.1).ok(),
            upstream_model: key.1,
            weight: 1,
            context_length: 0,
            table_until: vec![0; endpoint.slots()].into(),
            target,
            limits: UpstreamLimits::default(),
            series: OnceLock::new(),
            capabilities: Vec::new(),
            free: false,
        };
        Some(Arc::new(ModelGroup {
            name: Arc::from(name),
            created: 0,
            owned_by: endpoint.id.to_string(),
            deployments: vec![Arc::new(deployment)],
        }))
    }
}

#[cfg(test)]
mod tests {
    use switchyard_proto::v1;

    use crate::routing::endpoint::host_header;

    use super::*;

    fn wire() -> v1::RoutingTable {
        v1::RoutingTable {
            version: 7,
            endpoints: vec![
                v1::RouteEndpoint {
                    id: "ollama".into(),
                    kind: "ollama".into(),
                    base_url: "http://10.0.0.1:11434/v1/".into(),
                    healthy: true,
                    facts: Some(v1::BackendFacts {
                        loaded_known: true,
                        loaded_models: vec!["llama3:8b".into()],
                        context_lengths: [("llama3:8b".to_owned(), 8192)].into(),
                        running: 2,
                        waiting: 1,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                v1::RouteEndpoint {
                    id: "groq".into(),
                    kind: "openai".into(),
                    base_url: "https://api.groq.com/openai/v1".into(),
                    healthy: true,
                    credentials: vec![
                        v1::Credential {
                            id: "key".into(),
                            value: "gsk_1".into(),
                            ..Default::default()
                        },
                        v1::Credential {
                            id: "key_2".into(),
                            env: "SWITCHYARD_TEST_SURELY_UNSET_VAR".into(),
                            ..Default::default()
                        },
                        v1::Credential {
                            id: "key_3".into(),
                            value: "gsk_3".into(),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
            ],
            models: vec![v1::ModelRoute {
                name: "llama3".into(),
                deployments: vec![
                    v1::Deployment {
                        endpoint_id: "ollama".into(),
                        upstream_model: "llama3:8b".into(),
                        weight: 1,
                        ..Default::default()
                    },
                    v1::Deployment {
                        endpoint_id: "groq".into(),
                        upstream_model: "llama-3.1-8b-instant".into(),
                        weight: 3,
                        context_length: 131072,
                        limits: Some(v1::Limits {
                            rpm: 30,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    v1::Deployment {
                        endpoint_id: "gone".into(),
                        upstream_model: "llama3".into(),
                        ..Default::default()
                    },
                ],
                created: 1_700_000_000,
                owned_by: "ollama".into(),
            }],
            aliases: vec![v1::Alias {
                name: "fast".into(),
                target: "llama3".into(),
                ..Default::default()
            }],
            fallbacks: vec![
                v1::Fallback {
                    model: "llama3".into(),
                    chain: vec!["big".into()],
                    context_window: false,
                },
                v1::Fallback {
                    model: "llama3".into(),
                    chain: vec!["long".into()],
                    context_window: true,
                },
            ],
            cooldowns: vec![
                v1::Cooldown {
                    endpoint_id: "groq".into(),
                    credential_id: "key_3".into(),
                    model: "llama-3.1-8b-instant".into(),
                    until_ms: 5_000,
                    reason: "rate_limited".into(),
                },
                v1::Cooldown {
                    endpoint_id: "ollama".into(),
                    model: String::new(),
                    until_ms: 9_000,
                    ..Default::default()
                },
            ],
            settings: Some(v1::RouterSettings {
                num_retries: 4,
                routing_strategy: "least-busy".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn host_headers_name_the_port_unless_default() {
        for (url, want) in [
            ("http://127.0.0.1:8080/v1", Some("127.0.0.1:8080")),
            ("https://api.groq.com/openai/v1", Some("api.groq.com")),
            ("http://h:80/v1", Some("h")),
            ("https://h:443/v1", Some("h")),
            ("https://h:8443", Some("h:8443")),
            ("http://h:443", Some("h:443")),
            ("http://[::1]:11434/v1", Some("[::1]:11434")),
        ] {
            let uri: http::Uri = url.parse().unwrap();
            let got = host_header(&uri);
            assert_eq!(got.as_ref().map(|v| v.to_str().unwrap()), want, "{url}");
        }
    }

    #[test]
    fn compile_resolves_everything() {
        let table = RoutingTable::compile(&wire(), None);
        assert_eq!(table.version, 7);
        let group = &table.models["llama3"];
        assert_eq!(
            group.deployments.len(),
            2,
            "the dangling deployment is dropped"
        );
        let ollama = &group.deployments[0];
        assert_eq!(&*ollama.endpoint.base_url, "http://10.0.0.1:11434/v1");
        assert_eq!(ollama.endpoint.kind, EndpointKind::Ollama);
        assert_eq!(ollama.context_window(), 8192);
        assert_eq!(ollama.endpoint.queued, 3);
        assert!(ollama.is_warm());
        assert_eq!(
            ollama.cooled_until(0),
            9_000,
            "endpoint-wide table cooldown"
        );
        let groq = &group.deployments[1];
        let ids: Vec<&str> = groq.endpoint.credentials.iter().map(|c| &*c.id).collect();
        assert_eq!(
            ids,
            vec!["key", "key_3"],
            "the unset env credential is skipped"
        );
        assert_eq!(groq.context_window(), 131072);
        assert_eq!(groq.cooled_until(0), 0);
        assert_eq!(groq.cooled_until(1), 5_000);
        assert_eq!(table.aliases["fast"], "llama3");
        assert_eq!(table.fallbacks["llama3"], vec!["big"]);
        assert_eq!(table.context_fallbacks["llama3"], vec!["long"]);
        assert_eq!(table.settings.num_retries, 4);
        assert_eq!(table.settings.allowed_fails, DEFAULT_ALLOWED_FAILS);
        assert_eq!(table.settings.strategy, Strategy::LeastBusy);
        assert!(!format!("{:?}", groq.endpoint.credentials).contains("gsk_"));
        // Declared limits win; what the upstream announced fills the rest, per credential.
        groq.target.creds[1].learn(Some(100), Some(6_000));
        let got = |slot| {
            let l = groq.limits(slot);
            (l.rpm, l.tpm, l.rpd)
        };
        assert_eq!(got(0), (30, 0, 0));
        assert_eq!(got(1), (30, 6_000, 0));
        assert!(!ollama.limits(0).any());
    }

    #[test]
    fn resolve_names_aliases_and_explicit_endpoints() {
        let table = RoutingTable::compile(&wire(), None);
        let cases = [
            ("llama3", Some(("llama3", 2))),
            ("fast", Some(("llama3", 2))),
            ("groq/some-other-model", Some(("groq/some-other-model", 1))),
            ("nobody/model", None),
            ("groq/", None),
            ("unknown", None),
        ];
        for (name, want) in cases {
            let got = table
                .resolve(name)
                .map(|g| (g.name.to_string(), g.deployments.len()));
            assert_eq!(got.as_ref().map(|(n, l)| (n.as_str(), *l)), want, "{name}");
        }
        let explicit = table.resolve("groq/some-other-model").unwrap();
        assert_eq!(&*explicit.deployments[0].upstream_model, "some-other-model");
    }

    #[test]
    fn live_state_survives_a_new_version() {
        let first = RoutingTable::compile(&wire(), None);
        let d = &first.models["llama3"].deployments[1];
        d.target.creds[0].cool_until(42_000);
        let _busy = d.target.start();
        let mut next = wire();
        next.version = 8;
        next.cooldowns.clear();
        let second = RoutingTable::compile(&next, Some(&first));
        let d2 = &second.models["llama3"].deployments[1];
        assert_eq!(d2.cooled_until(0), 42_000);
        assert_eq!(d2.target.outstanding(), 1);
        assert_eq!(
            second.models["llama3"].deployments[0].cooled_until(0),
            0,
            "a cooldown the control plane cleared is gone"
        );
    }
}
