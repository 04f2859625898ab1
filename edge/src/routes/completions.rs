//! `POST /v1/completions`: legacy text completions, forwarded to an upstream serving the requested model.

use axum::extract::{Request, State};
use axum::response::Response;

use super::forward::forward;
use crate::metrics::Route;
use crate::state::EdgeState;

/// Forwards the request to an upstream serving its `model` and relays the answer.
pub async fn handle(State(state): State<EdgeState>, request: Request) -> Response {
    forward(&state, Route::Completions, request).await
}
