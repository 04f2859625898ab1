//! `POST /v1/embeddings`: embeddings, forwarded to an upstream serving the requested model.

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;

use super::forward::forward;
use crate::metrics::Route;
use crate::state::EdgeState;

/// Forwards the request to an upstream serving its `model` and relays the answer.
pub async fn handle(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    forward(&state, Route::Embeddings, &headers, body).await
}
