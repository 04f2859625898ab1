//! The forwarding path shared by the `/v1` POST endpoints: parse, pick, try upstreams in order,
//! stream the first answer back unbuffered.

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue};
use tracing::{info, warn};

use crate::error::ApiError;
use crate::routing::{Candidate, pick};
use crate::state::EdgeState;
use crate::upstream::RequestBody;

/// Names the endpoint that served the response.
pub const ENDPOINT_HEADER: HeaderName = HeaderName::from_static("x-switchyard-endpoint");
/// Names the upstream model id that served the response.
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-switchyard-model");
/// How many upstreams were tried, the serving one included.
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-switchyard-attempts");

/// Forwards a client's request to the upstreams serving its model, failing over only while
/// no byte has reached the client.
pub async fn forward(
    state: &EdgeState,
    upstream_path: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge {
                limit: state.config().max_body_bytes,
            }
        } else {
            ApiError::BodyUnreadable
        }
    })?;
    let request = RequestBody::parse(&body)?;
    let model = request.model()?;
    let table = state.table().ok_or(ApiError::NoRoutingTable)?;
    let candidates = pick(&table, &model, state.next_turn());
    if candidates.is_empty() {
        return Err(ApiError::ModelNotFound { model });
    }

    let mut attempts = 0;
    for candidate in &candidates {
        attempts += 1;
        let upstream_body = request.with_model(&candidate.upstream_model);
        match state
            .upstream()
            .send(candidate, upstream_path, headers, upstream_body)
            .await
        {
            Ok(response) => {
                info!(
                    model = %model,
                    endpoint = %candidate.endpoint_id,
                    upstream_model = %candidate.upstream_model,
                    status = response.status().as_u16(),
                    attempts,
                    "forwarding upstream response"
                );
                return Ok(stream_back(response, candidate, attempts));
            }
            Err(e) if e.retry_is_safe() => warn!(
                model = %model,
                endpoint = %candidate.endpoint_id,
                kind = e.kind(),
                error = %e,
                cause = ?std::error::Error::source(&e),
                "upstream failed before the first byte; trying the next"
            ),
            Err(e) => {
                warn!(
                    model = %model,
                    endpoint = %candidate.endpoint_id,
                    kind = e.kind(),
                    error = %e,
                    cause = ?std::error::Error::source(&e),
                    "upstream failed and a retry is not safe"
                );
                break;
            }
        }
    }
    Err(ApiError::UpstreamUnavailable { model, attempts })
}

/// The upstream's status, content type and body as it arrives (no buffering), plus headers
/// naming what served.
fn stream_back(upstream: reqwest::Response, candidate: &Candidate, attempts: usize) -> Response {
    let status = upstream.status();
    let content_type = upstream.headers().get(CONTENT_TYPE).cloned();
    let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(CONTENT_TYPE, content_type);
    }
    // Ids that are not valid header values (rare; not visible ASCII) are left out, not mangled.
    if let Ok(v) = HeaderValue::from_str(&candidate.endpoint_id) {
        headers.insert(ENDPOINT_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&candidate.upstream_model) {
        headers.insert(MODEL_HEADER, v);
    }
    headers.insert(ATTEMPTS_HEADER, HeaderValue::from(attempts));
    response
}
