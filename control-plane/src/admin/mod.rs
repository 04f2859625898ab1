//! The admin REST API under `/api/v1`, on its own listener, and Prometheus `/metrics`.
//!
//! - [`views`]: request and response bodies;
//! - [`client`]: the client the `switchyard` CLI uses;
//! - [`metrics`]: the Prometheus text;
//! - [`usage`]: `GET /api/v1/usage`;
//! - [`aliases`]: `GET /api/v1/aliases` (with current members) and `POST /api/v1/latency`;
//! - [`ui`]: the web dashboard at `/ui`, which reads the same `/api/v1` routes;
//! - [`https`]: serving it all over HTTPS.
//!
//! Every `/api/v1` route needs a bearer token: an admin token for writes, an admin or read-only
//! token for reads (401 without a known token, 403 for a read-only token on a write). Writes on a
//! follower are forwarded to the leader.

pub mod aliases;
pub mod client;
pub mod https;
pub mod metrics;
pub mod ui;
pub mod usage;
pub mod views;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use crate::catalog::probe::{AuditReport, AuditRequest};
use crate::catalog::refresh::{EndpointCatalog, RefreshReport};
use crate::catalog::{Auditor, Catalogue};
use crate::config::{self, Sealer, SecretRef};
use crate::error::Error;
use crate::liveness::Liveness;
use crate::raft::{Consensus, Forwarded, Member};
use crate::reload::Declarations;
use crate::seal::{self, ClusterKey};
use crate::service::agent::now_ms;
use crate::state::{
    ClientKey, ClusterState, Command, EndpointSpec, NodeStatus, Outcome, Secret, Source,
};
use crate::table;
use subtle::ConstantTimeEq;
use views::{
    Cleared, CreatedKey, CredentialView, DeploymentView, EndpointView, ErrorBody, ErrorDetail,
    KeyView, ModelView, NewEndpoint, NewKey, NewMember, NodeView, ReloadReport, StatusView,
};

/// Tokens the admin API accepts.
#[derive(Clone, Default)]
pub struct Tokens {
    /// May read and write.
    pub admin: Vec<String>,
    /// May only read.
    pub read_only: Vec<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tokens {{ admin: {} tokens, read_only: {} tokens }}",
            self.admin.len(),
            self.read_only.len()
        )
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// This voter.
    pub consensus: Consensus,
    /// The leader's heartbeat memory.
    pub liveness: Liveness,
    /// Declared sources, for reload.
    pub declarations: Arc<Declarations>,
    /// Seals secrets given to the API by value.
    pub key: Option<Arc<ClusterKey>>,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
    /// Lists declared endpoints' models on demand.
    pub catalogue: Catalogue,
    /// Probes declared endpoints' models on demand.
    pub auditor: Auditor,
}

/// The admin router: `/api/v1/…` behind token checks, the dashboard at `/ui` (which reads
/// `/api/v1` with the visitor's token), `/metrics` and `/health` open.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/status", get(status))
        .route("/endpoints", get(list_endpoints).post(add_endpoint))
        .route("/registry", post(add_endpoint))
        .route("/endpoints/{id}", delete(remove_endpoint))
        .route("/models", get(models))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(revoke_key))
        .route("/keys/{id}/revoke", post(revoke_key))
        .route("/cooldowns", get(list_cooldowns).delete(clear_cooldowns))
        .route("/members", get(list_members).post(add_member))
        .route("/members/{id}", delete(remove_member))
        .route("/members/{id}/promote", post(promote_member))
        .route("/reload", post(reload))
        .route("/catalog", get(catalog))
        .route("/catalog/refresh", post(refresh_catalog))
        .route("/catalog/audit", post(audit_catalog))
        .route("/chains", get(chains))
        .route("/snapshot", post(snapshot))
        .route("/usage", get(usage::get_usage))
        .route("/aliases", get(aliases::list))
        .route("/latency", post(aliases::report))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state.clone());
    Router::new()
        .route("/metrics", get(metrics::render))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
        .nest("/api/v1", api.clone())
        .merge(ui::router(api))
}

/// Admin token for writes, admin or read-only token for reads.
async fn authorize(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let matches = |tokens: &[String]| {
        !presented.is_empty()
            && tokens
                .iter()
                .any(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
    };
    let is_admin = matches(&state.tokens.admin);
    let is_reader = matches(&state.tokens.read_only);
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    match (is_admin, is_reader, reading) {
        (true, _, _) | (false, true, true) => Ok(next.run(request).await),
        (false, true, false) => Err(Error::Forbidden),
        (false, false, _) => Err(Error::Unauthorized),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Rejected(_) => (StatusCode::CONFLICT, "rejected"),
            Error::BadRequest(_) | Error::Config { .. } | Error::ConfigFile { .. } => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            Error::NotLeader { .. } | Error::Raft(_) | Error::Etcd(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Error::DataDir { .. }
            | Error::Storage(_)
            | Error::Transport(_)
            | Error::Crypto(_)
            | Error::Admin { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    message: self.to_string(),
                    code: code.into(),
                },
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(value) = "Bearer".parse()
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Commits `command`, turning a refusal into an error.
async fn commit(consensus: &Consensus, command: Command) -> Result<u64, Error> {
    match consensus.write(command).await? {
        Outcome::Changed { revision } | Outcome::Unchanged { revision } => Ok(revision),
        Outcome::Rejected { reason } => Err(Error::Rejected(reason)),
        lease @ (Outcome::WindowGranted { .. } | Outcome::SlotsHeld { .. }) => Err(
            Error::Rejected(format!("unexpected lease outcome {lease:?}")),
        ),
    }
}

/// SHA-256 of the state's canonical JSON (maps are ordered), equal across voters.
pub fn digest(state: &ClusterState) -> String {
    seal::sha256_hex(&serde_json::to_string(state).unwrap_or_default())
}

fn endpoint_views(state: &ClusterState, key: Option<&ClusterKey>) -> Vec<EndpointView> {
    let compiled = table::compile(state, key).table;
    // Looked up by id once, not searched per endpoint: a listing of thousands stays linear.
    let healthy: std::collections::HashMap<&str, bool> = compiled
        .endpoints
        .iter()
        .map(|r| (r.id.as_str(), r.healthy))
        .collect();
    state
        .endpoints
        .values()
        .map(|e| {
            endpoint_view(
                state,
                e,
                healthy.get(e.id.as_str()).copied().unwrap_or(false),
                key,
            )
        })
        .collect()
}

/// The view of one endpoint, `healthy` as the routing table has it.
fn endpoint_view(
    state: &ClusterState,
    e: &crate::state::Endpoint,
    healthy: bool,
    key: Option<&ClusterKey>,
) -> EndpointView {
    EndpointView {
        id: e.id.clone(),
        kind: e.kind.clone(),
        base_url: e.base_url.clone(),
        source: e.source.as_str().into(),
        node: e.node.clone(),
        healthy,
        models: e.models.clone(),
        credentials: e.credentials.iter().map(|c| c.id.clone()).collect(),
        weight: e.weight,
        provider: e.upstream.provider.clone(),
        credential_details: e
            .credentials
            .iter()
            .map(|c| CredentialView {
                id: c.id.clone(),
                label: c.label.clone(),
                models: c.models.clone(),
                last4: match &c.secret {
                    Secret::Sealed { sealed } => key
                        .and_then(|k| k.open(sealed))
                        .map(|v| seal::last4(&v))
                        .unwrap_or_default(),
                    Secret::Env { .. } => String::new(),
                },
                env: match &c.secret {
                    Secret::Env { name } => name.clone(),
                    Secret::Sealed { .. } => String::new(),
                },
            })
            .collect(),
        check_error: state
            .checked
            .get(&e.id)
            .map(|c| c.error.clone())
            .unwrap_or_default(),
    }
}

async fn status(State(s): State<AdminState>) -> Json<StatusView> {
    let state = s.consensus.state().await;
    let raft = s.consensus.status();
    let seen = s.liveness.last_seen();
    let now = now_ms();
    let nodes = state
        .nodes
        .values()
        .map(|n| NodeView {
            name: n.name.clone(),
            status: match n.status {
                NodeStatus::Up => "up",
                NodeStatus::Down => "down",
            }
            .into(),
            since_ms: n.since_ms,
            version: n.version.clone(),
            addresses: n.addresses.clone(),
            last_seen_ms_ago: seen.get(&n.name).map(|at| now.saturating_sub(*at)),
            gpus: s.liveness.gpus(&n.name),
        })
        .collect();
    Json(StatusView {
        cluster_id: state.cluster_id.clone(),
        node_id: raft.node_id,
        role: raft.role,
        term: raft.term,
        leader_id: raft.leader_id,
        leader_addr: raft.leader_addr,
        last_log_index: raft.last_log_index,
        commit_index: raft.commit_index,
        applied_index: raft.applied_index,
        snapshot_index: raft.snapshot_index,
        snapshot_age_ms: s.consensus.snapshot_age_ms(),
        revision: state.revision,
        digest: digest(&state),
        members: raft.members,
        etcd: raft.etcd,
        nodes,
        endpoints: endpoint_views(&state, s.key.as_deref()),
    })
}

/// `?consistent=true` on a read: answer only what the leader has confirmed is current.
#[derive(Debug, Default, Deserialize)]
struct ReadQuery {
    #[serde(default)]
    consistent: bool,
}

/// Reads answer this voter's applied state, which on a follower may lag the leader by a
/// heartbeat. With `?consistent=true` the read is linearizable: only the leader answers, after
/// confirming its leadership with a quorum (others answer 503 naming the leader).
async fn list_endpoints(
    State(s): State<AdminState>,
    Query(query): Query<ReadQuery>,
) -> Result<Json<Vec<EndpointView>>, Error> {
    if query.consistent {
        s.consensus.read_barrier().await?;
    }
    let state = s.consensus.state().await;
    Ok(Json(endpoint_views(&state, s.key.as_deref())))
}

async fn add_endpoint(
    State(s): State<AdminState>,
    Json(body): Json<NewEndpoint>,
) -> Result<(StatusCode, Json<EndpointView>), Error> {
    let mut secrets = Vec::new();
    if let Some(k) = &body.api_key {
        secrets.push(SecretRef::parse(k));
    }
    if let Some(name) = &body.api_key_env {
        secrets.push(SecretRef::Env(name.clone()));
    }
    secrets.extend(body.api_keys.iter().map(|k| SecretRef::parse(k)));
    // Read in place rather than copied: the state may hold thousands of endpoints.
    let credentials = s
        .consensus
        .with_state(|current| {
            Sealer::new(s.key.as_deref(), current).credentials(&body.id, &secrets, "api_key")
        })
        .await?;
    let spec = EndpointSpec {
        id: body.id.clone(),
        kind: body.kind.unwrap_or_else(|| "openai".into()),
        base_url: body.url,
        models: body.models,
        weight: body.weight,
        source: Source::Api,
        credentials,
        limits: body.limits,
        upstream: Default::default(),
    };
    commit(
        &s.consensus,
        Command::PutEndpoint {
            spec,
            at_ms: now_ms(),
        },
    )
    .await?;
    // Only this endpoint's view: compiling the whole table per write made each write cost
    // more as the table grew. Its health comes from the table this voter already published.
    let healthy = s
        .consensus
        .watch_table()
        .borrow()
        .endpoints
        .iter()
        .any(|r| r.id == body.id && r.healthy);
    let view = s
        .consensus
        .with_state(|state| {
            state
                .endpoints
                .get(&body.id)
                .map(|e| endpoint_view(state, e, healthy, s.key.as_deref()))
        })
        .await
        .ok_or_else(|| Error::NotFound {
            what: format!("endpoint `{}`", body.id),
        })?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn remove_endpoint(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    let state = s.consensus.state().await;
    let endpoint = state.endpoints.get(&id).ok_or_else(|| Error::NotFound {
        what: format!("endpoint `{id}`"),
    })?;
    if matches!(endpoint.source, Source::Config | Source::Env) {
        return Err(Error::Rejected(format!(
            "endpoint `{id}` is declared by {}; remove it there and reload",
            endpoint.source.as_str()
        )));
    }
    commit(&s.consensus, Command::DeleteEndpoint { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/catalog`: every catalogued endpoint's listing, filter verdicts and dead models.
async fn catalog(State(s): State<AdminState>) -> Json<Vec<EndpointCatalog>> {
    let state = s.consensus.state().await;
    Json(s.catalogue.view(&state))
}

/// `POST /api/v1/catalog/refresh`: lists every catalogued endpoint now.
async fn refresh_catalog(State(s): State<AdminState>) -> Result<Json<RefreshReport>, Error> {
    s.catalogue.refresh().await.map(Json)
}

/// `POST /api/v1/catalog/audit`: probes every model × credential; see [`crate::catalog::probe`].
async fn audit_catalog(
    State(s): State<AdminState>,
    body: Option<Json<AuditRequest>>,
) -> Result<Json<AuditReport>, Error> {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    s.auditor.audit(&request).await.map(Json)
}

/// `GET /api/v1/chains`: fallbacks and aliases naming a group that serves nothing.
async fn chains(State(s): State<AdminState>) -> Json<Vec<views::BrokenLinkView>> {
    let state = s.consensus.state().await;
    let t = table::compile(&state, None).table;
    Json(
        t.broken_links
            .iter()
            .map(views::BrokenLinkView::from)
            .collect(),
    )
}

async fn models(State(s): State<AdminState>) -> Json<Vec<ModelView>> {
    let state = s.consensus.state().await;
    let t = table::compile(&state, None).table;
    let healthy = |id: &str| t.endpoints.iter().any(|e| e.id == id && e.healthy);
    let chain = |model: &str, context_window: bool| {
        t.fallbacks
            .iter()
            .find(|f| f.model == model && f.context_window == context_window)
            .map(|f| f.chain.clone())
            .unwrap_or_default()
    };
    Json(
        t.models
            .iter()
            .map(|m| ModelView {
                name: m.name.clone(),
                deployments: m
                    .deployments
                    .iter()
                    .map(|d| DeploymentView {
                        endpoint_id: d.endpoint_id.clone(),
                        upstream_model: d.upstream_model.clone(),
                        healthy: healthy(&d.endpoint_id),
                        context_length: d.context_length,
                    })
                    .collect(),
                aliases: t
                    .aliases
                    .iter()
                    .filter(|a| a.target == m.name && a.members.is_empty())
                    .map(|a| a.name.clone())
                    .collect(),
                fallbacks: chain(&m.name, false),
                context_window_fallbacks: chain(&m.name, true),
            })
            .collect(),
    )
}

async fn list_keys(State(s): State<AdminState>) -> Json<Vec<KeyView>> {
    let state = s.consensus.state().await;
    let now = now_ms();
    Json(
        state
            .keys
            .values()
            .map(|k| KeyView::with_spend(k, &state.usage, now))
            .collect(),
    )
}

async fn create_key(
    State(s): State<AdminState>,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), Error> {
    if body.name.trim().is_empty() {
        return Err(Error::BadRequest("name: must not be empty".into()));
    }
    let imported = body.secret.is_some();
    let secret = match body.secret {
        Some(secret) => {
            config::check_imported_secret(&secret)
                .map_err(|reason| Error::BadRequest(format!("secret: {reason}")))?;
            secret
        }
        None => seal::new_client_secret()?,
    };
    let key = ClientKey {
        id: format!("key_{}", seal::random_id(6)?),
        name: body.name,
        sha256_hex: seal::sha256_hex(&secret),
        last4: seal::last4(&secret),
        allowed_models: body.allowed_models,
        expires_at_ms: body.expires_at_ms,
        revoked: false,
        limits: body.limits,
        created_ms: now_ms(),
        source: Source::Api,
        budget: body.budget,
    };
    let view = KeyView::from(&key);
    commit(&s.consensus, Command::PutKey { key }).await?;
    tracing::info!(key_id = %view.id, name = %view.name, imported, "client key created");
    // The caller already holds an imported secret; it is not sent back.
    let secret = if imported { String::new() } else { secret };
    Ok((StatusCode::CREATED, Json(CreatedKey { key: view, secret })))
}

async fn revoke_key(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, Error> {
    if !s.consensus.state().await.keys.contains_key(&id) {
        return Err(Error::NotFound {
            what: format!("client key `{id}`"),
        });
    }
    commit(&s.consensus, Command::RevokeKey { id: id.clone() }).await?;
    let state = s.consensus.state().await;
    state
        .keys
        .get(&id)
        .map(|k| Json(KeyView::from(k)))
        .ok_or_else(|| Error::NotFound {
            what: format!("client key `{id}`"),
        })
}

async fn list_cooldowns(State(s): State<AdminState>) -> Json<Vec<crate::state::Cooldown>> {
    let state = s.consensus.state().await;
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    Json(
        state
            .cooldowns
            .values()
            .filter(|c| c.until_ms > now)
            .cloned()
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
struct CooldownFilter {
    endpoint: Option<String>,
}

async fn clear_cooldowns(
    State(s): State<AdminState>,
    Query(filter): Query<CooldownFilter>,
) -> Result<Json<Cleared>, Error> {
    let revision = commit(
        &s.consensus,
        Command::ClearCooldowns {
            endpoint_id: filter.endpoint,
        },
    )
    .await?;
    Ok(Json(Cleared { revision }))
}

async fn list_members(State(s): State<AdminState>) -> Json<Vec<Member>> {
    Json(s.consensus.status().members)
}

async fn add_member(
    State(s): State<AdminState>,
    Json(body): Json<NewMember>,
) -> Result<(StatusCode, Json<Vec<Member>>), Error> {
    if body.id == 0 || body.addr.is_empty() {
        return Err(Error::BadRequest(
            "id must be at least 1 and addr non-empty".into(),
        ));
    }
    s.consensus
        .change_members(Forwarded::AddLearner {
            id: body.id,
            addr: body.addr,
        })
        .await?;
    if body.voter {
        s.consensus
            .change_members(Forwarded::Promote { id: body.id })
            .await?;
    }
    Ok((StatusCode::CREATED, Json(s.consensus.status().members)))
}

async fn promote_member(
    State(s): State<AdminState>,
    Path(id): Path<u64>,
) -> Result<Json<Vec<Member>>, Error> {
    s.consensus
        .change_members(Forwarded::Promote { id })
        .await?;
    Ok(Json(s.consensus.status().members))
}

async fn remove_member(
    State(s): State<AdminState>,
    Path(id): Path<u64>,
) -> Result<Json<Vec<Member>>, Error> {
    if !s.consensus.status().members.iter().any(|m| m.id == id) {
        return Err(Error::NotFound {
            what: format!("member {id}"),
        });
    }
    s.consensus.change_members(Forwarded::Remove { id }).await?;
    Ok(Json(s.consensus.status().members))
}

async fn reload(State(s): State<AdminState>) -> Result<Json<ReloadReport>, Error> {
    Ok(Json(s.declarations.apply(&s.consensus).await?))
}

async fn snapshot(State(s): State<AdminState>) -> Result<StatusCode, Error> {
    s.consensus.snapshot_now().await?;
    Ok(StatusCode::ACCEPTED)
}
