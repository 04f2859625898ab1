//! `POST /v1/completions`: legacy text completions, forwarded to the picked upstream's `/completions`.

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;

use super::forward::forward;
use crate::error::ApiError;
use crate::state::EdgeState;

/// Path appended to the upstream's base URL (which ends in `/v1`).
const UPSTREAM_PATH: &str = "/completions";

/// Forwards the request to an upstream serving its `model` and streams the answer back.
pub async fn handle(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    forward(&state, UPSTREAM_PATH, &headers, body).await
}
