//! Prometheus text for the control plane: raft progress and what the state holds, encoded by
//! `prometheus-client` as the edge's are. Labels come only from fixed sets (sources, statuses,
//! reasons), never from user input.
//!
//! Every value is read from the state when scraped, so each scrape builds its own registry.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::AdminState;
use crate::catalog::rot::Reason;
use crate::raft::RaftStatus;
use crate::state::{ClusterState, NodeStatus, Source};

/// One label, from a fixed set of names and values.
type Label = [(&'static str, &'static str); 1];

/// `GET /metrics`.
pub async fn render(State(s): State<AdminState>) -> impl IntoResponse {
    let raft = s.consensus.status();
    let state = s.consensus.state().await;
    let mut r = Registry::default();
    raft_gauges(&mut r, &raft, s.consensus.snapshot_age_ms());
    state_gauges(&mut r, &state);
    let mut out = String::with_capacity(4096);
    if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
        out.clear();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Raft progress and membership.
fn raft_gauges(r: &mut Registry, raft: &RaftStatus, snapshot_age_ms: Option<u64>) {
    // prometheus-client ends each help text with a period itself.
    let plain = [
        ("switchyard_raft_term", "Current raft term", raft.term),
        (
            "switchyard_raft_is_leader",
            "1 when this voter is the leader",
            u64::from(raft.role == "leader"),
        ),
        (
            "switchyard_raft_leader_id",
            "Raft id of the known leader; 0 when none is known",
            raft.leader_id.unwrap_or(0),
        ),
        (
            "switchyard_raft_last_log_index",
            "Index of the last log entry",
            raft.last_log_index,
        ),
        (
            "switchyard_raft_commit_index",
            "Index of the last committed entry",
            raft.commit_index,
        ),
        (
            "switchyard_raft_applied_index",
            "Index of the last applied entry",
            raft.applied_index,
        ),
        (
            "switchyard_raft_apply_lag",
            "Committed entries not yet applied",
            raft.commit_index.saturating_sub(raft.applied_index),
        ),
        (
            "switchyard_raft_snapshot_index",
            "Index the last snapshot covers",
            raft.snapshot_index,
        ),
    ];
    for (name, help, value) in plain {
        gauge(r, name, help, value);
    }
    r.register(
        "switchyard_raft_snapshot_age_seconds",
        "Seconds since the last snapshot; -1 before the first",
        ConstGauge::new(snapshot_age_ms.map_or(-1.0, |ms| ms as f64 / 1000.0)),
    );
    let voters = raft.members.iter().filter(|m| m.voter).count();
    gauge_by(
        r,
        "switchyard_raft_members",
        "Raft members by role",
        "role",
        &[("voter", voters), ("learner", raft.members.len() - voters)],
    );
}

/// What the applied state holds: its revision, endpoints by source, nodes by status,
/// cooldowns, keys and broken chain links.
fn state_gauges(r: &mut Registry, state: &ClusterState) {
    gauge(
        r,
        "switchyard_state_revision",
        "Routing-table version",
        state.revision,
    );
    let sources = [
        Source::Config,
        Source::Env,
        Source::Api,
        Source::Demo,
        Source::Discovered,
    ];
    let by_source: Vec<(&'static str, usize)> = sources
        .iter()
        .map(|src| {
            let n = state
                .endpoints
                .values()
                .filter(|e| e.source == *src)
                .count();
            (src.as_str(), n)
        })
        .collect();
    gauge_by(
        r,
        "switchyard_endpoints",
        "Endpoints by source",
        "source",
        &by_source,
    );
    let up = state
        .nodes
        .values()
        .filter(|n| n.status == NodeStatus::Up)
        .count();
    gauge_by(
        r,
        "switchyard_nodes",
        "Node agents by committed status",
        "status",
        &[("up", up), ("down", state.nodes.len() - up)],
    );
    gauge(
        r,
        "switchyard_cooldowns",
        "Cooldowns held in the state (expired ones are dropped on the next report)",
        state.cooldowns.len() as u64,
    );
    gauge(
        r,
        "switchyard_client_keys",
        "Client keys, revoked included",
        state.keys.len() as u64,
    );
    let broken = crate::table::compile(state, None).table.broken_links;
    let by_reason: Vec<(&'static str, usize)> = Reason::ALL
        .iter()
        .map(|reason| {
            let n = broken
                .iter()
                .filter(|b| b.reason == reason.as_str())
                .count();
            (reason.as_str(), n)
        })
        .collect();
    gauge_by(
        r,
        "switchyard_broken_chain_links",
        "Fallback chain members and alias targets that name a group serving nothing, by reason",
        "reason",
        &by_reason,
    );
}

/// Registers a gauge holding `value`.
fn gauge(r: &mut Registry, name: &str, help: &str, value: u64) {
    r.register(name, help, ConstGauge::new(value));
}

/// Registers a gauge with one sample per `(value of label, count)`.
fn gauge_by(
    r: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    samples: &[(&'static str, usize)],
) {
    let family = Family::<Label, Gauge<u64, AtomicU64>>::default();
    for (value, n) in samples {
        family.get_or_create(&[(label, *value)]).set(*n as u64);
    }
    r.register(name, help, family);
}
