//! The admin API's request and response bodies, shared by the server and the CLI's client.

use serde::{Deserialize, Serialize};

use crate::liveness::GpuView;
use crate::raft::Member;
use crate::state::{ClientKey, KeyBudget, Limits, Source, UsageBook};

/// `GET /api/v1/status`: the cluster as the answering voter sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    /// Random id of the cluster's history.
    pub cluster_id: String,
    /// The answering voter's raft id.
    pub node_id: u64,
    /// Its role: `leader`, `follower`, `candidate`, `learner`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Leader id, when known.
    pub leader_id: Option<u64>,
    /// Leader gRPC address, when known.
    pub leader_addr: Option<String>,
    /// Last log index.
    pub last_log_index: u64,
    /// Committed index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Index the last snapshot covers.
    pub snapshot_index: u64,
    /// Milliseconds since the last snapshot, when there is one.
    pub snapshot_age_ms: Option<u64>,
    /// State revision (the routing-table version).
    pub revision: u64,
    /// SHA-256 of the applied state, equal on voters that applied the same log.
    pub digest: String,
    /// Raft members (with the etcd backend: etcd's members).
    pub members: Vec<Member>,
    /// With the etcd backend: etcd's endpoints, revision and this node's log progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<crate::etcd::EtcdStatus>,
    /// Node agents.
    pub nodes: Vec<NodeView>,
    /// Endpoints.
    pub endpoints: Vec<EndpointView>,
}

/// A node agent's host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// `up` or `down` (committed).
    pub status: String,
    /// Since when, ms since the Unix epoch.
    pub since_ms: u64,
    /// Agent version.
    pub version: String,
    /// Reported addresses.
    pub addresses: Vec<String>,
    /// Milliseconds since the leader last heard from it (only the leader knows).
    pub last_seen_ms_ago: Option<u64>,
    /// GPUs from its last heartbeat (only the leader knows).
    pub gpus: Vec<GpuView>,
}

/// An endpoint as listings show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointView {
    /// Id.
    pub id: String,
    /// Server kind.
    pub kind: String,
    /// Base URL.
    pub base_url: String,
    /// `config`, `env`, `api`, `demo` or `discovered`.
    pub source: String,
    /// Discovering node.
    pub node: Option<String>,
    /// Whether edges may route to it.
    pub healthy: bool,
    /// Models it serves.
    pub models: Vec<String>,
    /// Credential ids (never the secrets).
    pub credentials: Vec<String>,
    /// Traffic weight.
    pub weight: u32,
    /// The provider preset it was made from; empty for none.
    #[serde(default)]
    pub provider: String,
    /// Each credential: label, model filter and where its secret is (last four characters
    /// or the variable's name, never the secret).
    #[serde(default)]
    pub credential_details: Vec<CredentialView>,
    /// Why the last active health check failed; empty when it passed or none ran.
    #[serde(default)]
    pub check_error: String,
}

/// One upstream credential as listings show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialView {
    /// `key`, `key_2`, ….
    pub id: String,
    /// Its label; empty for none.
    #[serde(default)]
    pub label: String,
    /// Upstream model globs it serves; empty means all.
    #[serde(default)]
    pub models: Vec<String>,
    /// The last four characters of a stored secret; empty for one read from a variable.
    #[serde(default)]
    pub last4: String,
    /// The variable an edge reads it from; empty for a stored secret.
    #[serde(default)]
    pub env: String,
}

impl CredentialView {
    /// `key …abcd personal [*:free]` for a table cell.
    pub fn describe(&self) -> String {
        let mut out = self.id.clone();
        if !self.last4.is_empty() {
            out.push_str(&format!(" …{}", self.last4));
        }
        if !self.env.is_empty() {
            out.push_str(&format!(" ${}", self.env));
        }
        if !self.label.is_empty() {
            out.push_str(&format!(" {}", self.label));
        }
        if !self.models.is_empty() {
            out.push_str(&format!(" [{}]", self.models.join(",")));
        }
        out
    }
}

/// `POST /api/v1/endpoints` (also `POST /api/v1/registry`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Unique id.
    pub id: String,
    /// OpenAI-compatible base URL.
    #[serde(alias = "base_url")]
    pub url: String,
    /// Server kind; default `openai`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Models served.
    #[serde(default)]
    pub models: Vec<String>,
    /// Traffic weight; default 1.
    #[serde(default)]
    pub weight: u32,
    /// One secret by value (stored sealed) or `os.environ/NAME`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// One secret by environment-variable reference.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Further secrets, rotated in order.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Upstream limits.
    #[serde(default)]
    pub limits: Limits,
}

/// A model group as listings show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelView {
    /// Public name.
    pub name: String,
    /// Deployments in preference order.
    pub deployments: Vec<DeploymentView>,
    /// Aliases that resolve to it.
    pub aliases: Vec<String>,
    /// General fallback chain.
    pub fallbacks: Vec<String>,
    /// Context-window fallback chain.
    pub context_window_fallbacks: Vec<String>,
}

/// One deployment of a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentView {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Model id sent upstream.
    pub upstream_model: String,
    /// Whether the endpoint is healthy.
    pub healthy: bool,
    /// Context window in tokens; 0 = unknown.
    pub context_length: u32,
}

/// A client key as listings show it (no hash, no secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyView {
    /// Public id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Last four characters of the secret.
    pub last4: String,
    /// Model globs; empty means all.
    pub allowed_models: Vec<String>,
    /// Expiry, Unix ms; 0 = never.
    pub expires_at_ms: i64,
    /// Refused.
    pub revoked: bool,
    /// Limits.
    pub limits: Limits,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Where it was declared.
    pub source: Source,
    /// Money budgets.
    #[serde(default)]
    pub budget: KeyBudget,
    /// Spent in the current UTC day, US dollars (as far as edges have reported).
    #[serde(default)]
    pub spend_today_usd: f64,
    /// Spent in the current UTC calendar month, US dollars.
    #[serde(default)]
    pub spend_month_usd: f64,
}

impl KeyView {
    /// The view of `k` with what it spent by `at_ms` according to `usage`.
    pub fn with_spend(k: &ClientKey, usage: &UsageBook, at_ms: u64) -> Self {
        let (today, month) = usage.spend(&k.id, at_ms);
        Self {
            spend_today_usd: today as f64 / 1e9,
            spend_month_usd: month as f64 / 1e9,
            ..Self::from(k)
        }
    }
}

impl From<&ClientKey> for KeyView {
    fn from(k: &ClientKey) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            last4: k.last4.clone(),
            allowed_models: k.allowed_models.clone(),
            expires_at_ms: k.expires_at_ms,
            revoked: k.revoked,
            limits: k.limits,
            created_ms: k.created_ms,
            source: k.source,
            budget: k.budget,
            spend_today_usd: 0.0,
            spend_month_usd: 0.0,
        }
    }
}

/// `POST /api/v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Label.
    pub name: String,
    /// Model globs; empty means all.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    /// Expiry, Unix ms; 0 = never.
    #[serde(default)]
    pub expires_at_ms: i64,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Money budgets.
    #[serde(default)]
    pub budget: KeyBudget,
    /// An existing secret to import as it is (a key another gateway issued, in any format);
    /// `None` mints a new `sy_live_…` key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The answer to `POST /api/v1/keys`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The key's listing.
    pub key: KeyView,
    /// The secret, `sy_live_…`; store it now. Empty for an imported key.
    pub secret: String,
}

/// `POST /api/v1/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Raft node id.
    pub id: u64,
    /// gRPC address.
    pub addr: String,
    /// Promote to voter once added (default true); false leaves a learner.
    #[serde(default = "yes")]
    pub voter: bool,
}

fn yes() -> bool {
    true
}

/// The answer to `POST /api/v1/reload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Whether anything changed.
    pub changed: bool,
    /// Revision afterwards.
    pub revision: u64,
    /// Accepted-but-ignored settings and precedence notes.
    pub warnings: Vec<String>,
}

/// The answer to `DELETE /api/v1/cooldowns`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cleared {
    /// Revision afterwards.
    pub revision: u64,
}

/// Error bodies: `{"error": {"message", "code"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What went wrong.
    pub message: String,
    /// Machine-readable kind.
    pub code: String,
}

/// A fallback chain member or alias target that serves nothing (`GET /api/v1/chains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLinkView {
    /// `fallback`, `context_fallback` or `alias`.
    pub kind: String,
    /// The model whose chain it is, or the alias's name.
    pub owner: String,
    /// The group named.
    pub target: String,
    /// `unknown`, `filtered`, `dead` or `no_deployments`.
    pub reason: String,
}

impl From<&switchyard_proto::v1::BrokenLink> for BrokenLinkView {
    fn from(l: &switchyard_proto::v1::BrokenLink) -> Self {
        Self {
            kind: l.kind.clone(),
            owner: l.owner.clone(),
            target: l.target.clone(),
            reason: l.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CredentialView;

    #[test]
    fn credentials_are_described_without_their_secret() {
        let cases = [
            (
                CredentialView {
                    id: "key".into(),
                    label: "free-tier".into(),
                    models: vec!["*:free".into()],
                    last4: "3f9a".into(),
                    env: String::new(),
                },
                "key …3f9a free-tier [*:free]",
            ),
            (
                CredentialView {
                    id: "key_2".into(),
                    env: "OR_WORK".into(),
                    ..Default::default()
                },
                "key_2 $OR_WORK",
            ),
        ];
        for (view, want) in cases {
            assert_eq!(view.describe(), want);
        }
    }
}
