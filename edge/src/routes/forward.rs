//! The forwarding path shared by the `/v1` POST endpoints: read the body within its limit,
//! authenticate, parse the few fields routing needs, resolve the model, admit the key against
//! its limits, and hand the request to the attempt engine ([`crate::engine`]).

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use tokio::time::Instant;

use crate::auth::{self, KeyStore, Principal};
use crate::dialect::Inbound;
use crate::engine;
use crate::error::ApiError;
use crate::limits;
use crate::metrics::Operation;
use crate::routing::target::now_ms;
use crate::state::EdgeState;
use crate::upstream::RequestBody;
use crate::usage::Ticket;

pub use crate::engine::{
    ATTEMPTS_HEADER, CREDENTIAL_HEADER, ENDPOINT_HEADER, MODEL_HEADER, is_context_error,
};

impl Operation {
    /// The parameter the operation cannot do without.
    fn required(self) -> &'static str {
        match self {
            Self::Chat => "messages",
            Self::Completions => "prompt",
            Self::Embeddings => "input",
        }
    }
}

/// Serves one POST of `operation` spoken in `inbound`'s dialect: the upstream's answer, or an
/// error, in that dialect's shape.
pub async fn forward(
    state: &EdgeState,
    operation: Operation,
    inbound: Inbound,
    request: Request,
) -> Response {
    let started = Instant::now();
    let _in_flight = InFlightRequest::start(state);
    let (parts, body) = request.into_parts();
    let limit = state.config().max_body_bytes;
    // A body announced larger than the limit is refused at once, not read until it overflows.
    let body = if hyper::body::Body::size_hint(&body).lower() > limit as u64 {
        Err(ApiError::BodyTooLarge { limit })
    } else {
        axum::body::to_bytes(body, limit).await.map_err(|e| {
            if is_length_limit(&e) {
                ApiError::BodyTooLarge { limit }
            } else {
                ApiError::BodyUnreadable
            }
        })
    };
    let response = match serve(state, operation, inbound, &parts.headers, body, started).await {
        Ok(response) => response,
        Err(e) => inbound.error(e),
    };
    state.metrics().request(
        operation,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Counts a request in the in-flight gauge until dropped: a client that goes away before the
/// answer drops this future midway, and must not stay counted forever.
struct InFlightRequest(prometheus_client::metrics::gauge::Gauge);

impl InFlightRequest {
    fn start(state: &EdgeState) -> Self {
        let gauge = state.metrics().in_flight().clone();
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Tells the request's ticket the status of the error it is refused with.
fn refuse(ticket: &mut Option<Ticket>, e: ApiError) -> ApiError {
    if let Some(t) = ticket {
        t.status(e.parts().0.as_u16());
    }
    e
}

/// Whether reading the body failed because it passed the size limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn serve(
    state: &EdgeState,
    operation: Operation,
    inbound: Inbound,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
    started: Instant,
) -> Result<Response, ApiError> {
    let table = state.table_or_wait().await;
    let now = now_ms();
    let no_keys = KeyStore::default();
    let keys = table.as_deref().map_or(&no_keys, |t| &t.keys);
    let principal = auth::authenticate(headers, keys, state.bootstrap(), now)?;
    let body = body?;
    // Other dialects become an OpenAI body here; OpenAI's own bytes go on untouched.
    let translated;
    let body = match inbound {
        Inbound::OpenAi => &body[..],
        _ => {
            translated = inbound.request(&body)?;
            &translated[..]
        }
    };
    let request = RequestBody::parse(body)?;
    let model = request.model()?;
    request.require(operation.required())?;
    let table = table.ok_or(ApiError::NoRoutingTable)?;
    let group = table
        .resolve(&model)
        .or_else(|| match inbound {
            // Ollama clients (Open WebUI) tag every name: `gpt-4o` is asked for as `gpt-4o:latest`.
            Inbound::Ollama(_) => model.strip_suffix(":latest").and_then(|m| table.resolve(m)),
            _ => None,
        })
        .ok_or_else(|| ApiError::ModelNotFound {
            model: model.clone(),
        })?;
    // From here on the request counts in usage under its model group (names from the table,
    // never free client input); one that ends without an answer counts as an error.
    let mut ticket = state
        .usage()
        .ticket(&crate::usage::key_of(&principal), &group.name);
    if let Some(ticket) = &mut ticket {
        ticket.describe(headers, operation, request.stream);
    }
    if !principal.allows(&model) && !principal.allows(&group.name) {
        return Err(refuse(&mut ticket, ApiError::ModelNotAllowed { model }));
    }
    // Cluster-wide key limits; held (the concurrency slot) until the response is built.
    let mut admission = match &principal {
        Principal::Key(key) => {
            limits::admission::admit(state.limiter(), key, request.token_estimate())
                .await
                .map_err(|e| refuse(&mut ticket, e))?
        }
        _ => limits::admission::Admission::default(),
    };
    if let (Principal::Key(key), Some(t)) = (&principal, &mut ticket) {
        let cost = crate::usage::estimate_nanos(&group, &request);
        let at = limits::now_ms();
        match limits::spend::admit(state.limiter(), key, cost, at).await {
            Ok(charges) => t.reserve(charges),
            Err(e) => return Err(refuse(&mut ticket, e)),
        }
    }
    let budget = table
        .settings
        .timeout
        .unwrap_or_else(|| state.config().request_timeout());
    let job = engine::Job {
        state,
        table: &table,
        operation,
        headers,
        request: &request,
        model: Arc::from(model.as_str()),
        principal: &principal,
        deadline: Instant::now() + budget,
        key_charge: admission.take_token_charge(),
        ticket,
    };
    let response = engine::run(job, group).await?;
    let mut response = inbound.answer(response, &model, started).await;
    admission.headers(response.headers_mut());
    // A concurrency slot lasts until the body has been sent, not just its headers.
    Ok(admission.hold_until_sent(response))
}
