//! `GET /health/liveliness` and `GET /health/readiness`: probes for load balancers and Kubernetes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::EdgeState;

/// The process is up and answering.
pub async fn liveliness() -> Json<&'static str> {
    Json("I'm alive!")
}

/// Ready once a routing table is held (from the control plane or the cache); 503 before.
/// This is a probe answer, not an API error, so it picks its own status.
pub async fn readiness(State(state): State<EdgeState>) -> (StatusCode, Json<Value>) {
    match state.table() {
        Some(table) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "table_version": table.version})),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "table_version": null})),
        ),
    }
}
