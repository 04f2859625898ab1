//! `GET /api/v1/aliases`: every alias with its current members (user aliases and the built-in
//! capability aliases, see [`crate::catalog::capability`]), and `POST /api/v1/latency`:
//! measured latency per deployment (what `switchyard bench` reports), committed in one command.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{AdminState, commit};
use crate::catalog::capability::{self, Health};
use crate::error::Error;
use crate::state::{Command, Latency};
use crate::table;

/// One alias as `switchyard models` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasView {
    /// The name clients ask for.
    pub name: String,
    /// The built-in rule that made it (`fast`, `coding`, ...); empty for a user alias.
    pub rule: String,
    /// Model groups it resolves to, in the order an edge tries them.
    pub members: Vec<AliasMember>,
}

/// One member of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasMember {
    /// Model group name.
    pub model: String,
    /// `healthy`, `cooling` or `down`, as the control plane last knew it (`unknown` when the
    /// alias names a group that serves nothing).
    pub status: String,
    /// Measured median time to first byte, ms, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<u64>,
}

/// What `POST /api/v1/latency` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyReport {
    /// Measurements, one per deployment.
    pub measured: Vec<Latency>,
}

/// What committing measurements did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyCommitted {
    /// Routing-table revision after the commit.
    pub revision: u64,
}

/// `GET /api/v1/aliases`.
pub async fn list(State(s): State<AdminState>) -> Json<Vec<AliasView>> {
    let state = s.consensus.state().await;
    let t = table::compile(&state, None).table;
    let facts = capability::gather(&state, &t.models, &t.endpoints);
    let member = |model: &str| {
        let f = facts.iter().find(|f| f.name == model);
        AliasMember {
            model: model.to_string(),
            status: match f.map(|f| f.health) {
                Some(Health::Healthy) => "healthy",
                Some(Health::Cooling) => "cooling",
                Some(Health::Down) => "down",
                None => "unknown",
            }
            .into(),
            ttfb_ms: f.and_then(|f| f.ttfb_ms),
        }
    };
    Json(
        t.aliases
            .iter()
            .map(|a| {
                let names = if a.members.is_empty() {
                    std::slice::from_ref(&a.target)
                } else {
                    &a.members[..]
                };
                AliasView {
                    name: a.name.clone(),
                    rule: a.rule.clone(),
                    members: names.iter().map(|m| member(m)).collect(),
                }
            })
            .collect(),
    )
}

/// `POST /api/v1/latency`.
pub async fn report(
    State(s): State<AdminState>,
    Json(body): Json<LatencyReport>,
) -> Result<Json<LatencyCommitted>, Error> {
    if body.measured.is_empty() {
        return Err(Error::BadRequest("no measurements".into()));
    }
    let revision = commit(
        &s.consensus,
        Command::ReportLatency {
            measured: body.measured,
        },
    )
    .await?;
    Ok(Json(LatencyCommitted { revision }))
}
