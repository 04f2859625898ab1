//! Prometheus text for the control plane: raft progress and what the state holds. Labels come
//! only from fixed sets (sources, statuses), never from user input.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AdminState;
use crate::catalog::rot::Reason;
use crate::state::{NodeStatus, Source};

/// `GET /metrics`.
pub async fn render(State(s): State<AdminState>) -> impl IntoResponse {
    let raft = s.consensus.status();
    let state = s.consensus.state().await;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(&str, f64)]| {
        let _infallible = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _infallible = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "switchyard_raft_term",
        "Current raft term.",
        &[("", raft.term as f64)],
    );
    gauge(
        "switchyard_raft_is_leader",
        "1 when this voter is the leader.",
        &[("", f64::from(u8::from(raft.role == "leader")))],
    );
    gauge(
        "switchyard_raft_leader_id",
        "Raft id of the known leader; 0 when none is known.",
        &[("", raft.leader_id.unwrap_or(0) as f64)],
    );
    gauge(
        "switchyard_raft_last_log_index",
        "Index of the last log entry.",
        &[("", raft.last_log_index as f64)],
    );
    gauge(
        "switchyard_raft_commit_index",
        "Index of the last committed entry.",
        &[("", raft.commit_index as f64)],
    );
    gauge(
        "switchyard_raft_applied_index",
        "Index of the last applied entry.",
        &[("", raft.applied_index as f64)],
    );
    gauge(
        "switchyard_raft_apply_lag",
        "Committed entries not yet applied.",
        &[(
            "",
            raft.commit_index.saturating_sub(raft.applied_index) as f64,
        )],
    );
    gauge(
        "switchyard_raft_snapshot_index",
        "Index the last snapshot covers.",
        &[("", raft.snapshot_index as f64)],
    );
    gauge(
        "switchyard_raft_snapshot_age_seconds",
        "Seconds since the last snapshot; -1 before the first.",
        &[(
            "",
            s.consensus
                .snapshot_age_ms()
                .map_or(-1.0, |ms| ms as f64 / 1000.0),
        )],
    );
    let voters = raft.members.iter().filter(|m| m.voter).count();
    gauge(
        "switchyard_raft_members",
        "Raft members by role.",
        &[
            ("{role=\"voter\"}", voters as f64),
            ("{role=\"learner\"}", (raft.members.len() - voters) as f64),
        ],
    );
    gauge(
        "switchyard_state_revision",
        "Routing-table version.",
        &[("", state.revision as f64)],
    );
    let sources = [
        Source::Config,
        Source::Env,
        Source::Api,
        Source::Demo,
        Source::Discovered,
    ];
    let labels: Vec<String> = sources
        .iter()
        .map(|s| format!("{{source=\"{}\"}}", s.as_str()))
        .collect();
    let samples: Vec<(&str, f64)> = sources
        .iter()
        .zip(&labels)
        .map(|(src, l)| {
            let n = state
                .endpoints
                .values()
                .filter(|e| e.source == *src)
                .count();
            (l.as_str(), n as f64)
        })
        .collect();
    gauge("switchyard_endpoints", "Endpoints by source.", &samples);
    let up = state
        .nodes
        .values()
        .filter(|n| n.status == NodeStatus::Up)
        .count();
    gauge(
        "switchyard_nodes",
        "Node agents by committed status.",
        &[
            ("{status=\"up\"}", up as f64),
            ("{status=\"down\"}", (state.nodes.len() - up) as f64),
        ],
    );
    gauge(
        "switchyard_cooldowns",
        "Cooldowns held in the state (expired ones are dropped on the next report).",
        &[("", state.cooldowns.len() as f64)],
    );
    gauge(
        "switchyard_client_keys",
        "Client keys, revoked included.",
        &[("", state.keys.len() as f64)],
    );
    let broken = crate::table::compile(&state, None).table.broken_links;
    let labels: Vec<String> = Reason::ALL
        .iter()
        .map(|r| format!("{{reason=\"{}\"}}", r.as_str()))
        .collect();
    let samples: Vec<(&str, f64)> = Reason::ALL
        .iter()
        .zip(&labels)
        .map(|(r, l)| {
            let n = broken.iter().filter(|b| b.reason == r.as_str()).count();
            (l.as_str(), n as f64)
        })
        .collect();
    gauge(
        "switchyard_broken_chain_links",
        "Fallback chain members and alias targets that name a group serving nothing, by reason.",
        &samples,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
