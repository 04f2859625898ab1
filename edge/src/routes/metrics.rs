//! `GET /metrics`: the edge's metrics in the Prometheus text format.

use axum::extract::State;
use axum::response::IntoResponse;
use http::header::CONTENT_TYPE;

use crate::state::EdgeState;

/// Renders every metric.
pub async fn render(State(state): State<EdgeState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics().render(),
    )
}
