//! The Ollama native fallback inside an attempt: going straight to `/api/chat`,
//! `/api/generate` or `/api/embed` while a server is known to lack the OpenAI surface, telling a missing surface from a missing
//! model on a `/v1` 404, and classifying and relaying the native answer as the OpenAI path does
//! (same failover, cooldowns, metering and limit settlement). The translation itself is
//! [`crate::upstream::ollama`].

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use hyper::body::Incoming;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{Attempt, MAX_ERROR_BODY, Plan, body_failure, failure_of, sent_secret};
use crate::error::ApiError;
use crate::limits;
use crate::metrics::AttemptOutcome;
use crate::routing::target::now_ms;
use crate::routing::{Candidate, EndpointKind, InFlight};
use crate::upstream::client::UpstreamError;
use crate::upstream::ollama::{self, Ids, NativeOp, NativeStream};
use crate::upstream::ratelimit::{self, CooldownReason};
use crate::upstream::redact;
use crate::upstream::relay::{self, Meter, SseRelay};

/// The time frame of one attempt, carried from the `/v1` try into the native one.
pub(super) struct Try {
    /// First byte due by then.
    pub by: Instant,
    /// The time that allowed (for timeout errors).
    pub allowed: Duration,
    /// When the request went out (latency observations).
    pub sent_us: u64,
}

impl Plan<'_> {
    /// The native operation this attempt's route has on an Ollama endpoint, if any.
    pub(super) fn ollama_op(&self, candidate: &Candidate) -> Option<NativeOp> {
        (candidate.deployment.endpoint.kind == EndpointKind::Ollama)
            .then(|| NativeOp::of(self.route))
            .flatten()
    }

    /// Whether this attempt goes straight to the native API: the server was found without the
    /// OpenAI surface and no re-probe is due yet.
    pub(super) fn goes_native(&self, candidate: &Candidate) -> Option<NativeOp> {
        let op = self.ollama_op(candidate)?;
        let base = &candidate.deployment.endpoint.base_url;
        self.state
            .ollama_surfaces()
            .go_native(base, op, now_ms())
            .then_some(op)
    }

    /// A 404 from an Ollama endpoint's `/v1`: when its body shows the surface is absent, the
    /// server is remembered as such and the same attempt continues on the native API;
    /// otherwise it is the failure it looks like (the model is missing there).
    pub(super) async fn after_v1_404(
        &mut self,
        candidate: &Candidate,
        op: NativeOp,
        body: Incoming,
        t: Try,
        in_flight: InFlight,
    ) -> Attempt {
        let idle = self.state.config().stream_idle_timeout();
        let read = relay::read_all(relay::byte_stream(body), t.by, idle, MAX_ERROR_BODY).await;
        if !read.is_ok_and(|b| ollama::surface_absent(&b)) {
            let status = StatusCode::NOT_FOUND;
            return self.failed(candidate, UpstreamError::Status { status });
        }
        let endpoint = &candidate.deployment.endpoint;
        info!(
            endpoint = %endpoint.id,
            operation = ?op,
            reprobe_after_s = ollama::REPROBE_AFTER_MS / 1000,
            "Ollama endpoint has no OpenAI surface; using its native API"
        );
        self.state
            .ollama_surfaces()
            .mark_absent(&endpoint.base_url, op, now_ms());
        self.native(candidate, op, t, in_flight).await
    }

    /// One attempt on the native API: translate the request, send it, and classify and relay
    /// the translated answer.
    pub(super) async fn native(
        &mut self,
        candidate: &Candidate,
        op: NativeOp,
        t: Try,
        in_flight: InFlight,
    ) -> Attempt {
        let state = self.state;
        let cfg = state.config();
        let d = &candidate.deployment;
        let endpoint = d.endpoint.clone();
        let Some(uri) = ollama::native_uri(&endpoint.base_url, op) else {
            return self.failed(candidate, UpstreamError::Connect);
        };
        let openai = self.request.upstream_body(&d.upstream_model, false);
        let translated = match op {
            NativeOp::Chat => ollama::chat_request(&openai),
            NativeOp::Generate => ollama::completion_request(&openai),
            NativeOp::Embed => ollama::embed_request(&openai),
        };
        let request = match translated {
            Ok(request) => request,
            Err(refusal) => {
                drop(in_flight);
                state
                    .metrics()
                    .attempt(&endpoint.id, AttemptOutcome::ClientError);
                let error = ApiError::InvalidParam {
                    param: refusal.param,
                    message: refusal.message,
                };
                return Attempt::Answer(error.into_response());
            }
        };
        if !request.dropped.is_empty() {
            debug!(
                endpoint = %endpoint.id,
                dropped = ?request.dropped,
                "request fields without an Ollama meaning were dropped"
            );
        }
        let send = state
            .upstream()
            .send(candidate, uri, self.headers, request.body);
        let result = match tokio::time::timeout_at(t.by, send).await {
            Err(_) | Ok(Err(UpstreamError::Timeout { .. })) => {
                Err(UpstreamError::Timeout { after: t.allowed })
            }
            Ok(r) => r,
        };
        let response = match result {
            Ok(response) => response,
            Err(e) => return self.failed(candidate, e),
        };
        let (head, response_body) = response.into_parts();
        let status = head.status;
        let mut headers = head.headers;
        limits::upstream::learn(candidate, &headers);
        let stream = relay::byte_stream(response_body);
        let idle = cfg.stream_idle_timeout();
        if status.is_success() {
            if let Some(wait) = ratelimit::exhausted(&headers) {
                self.cool(candidate, wait, CooldownReason::QuotaExhausted, false);
            }
            let created = now_ms() / 1000;
            let mut ids = Ids::new(fastrand::u64(..));
            let body = if op != NativeOp::Embed && self.request.stream {
                let translator = if op == NativeOp::Chat {
                    NativeStream::chat(&d.upstream_model, created, ids)
                } else {
                    NativeStream::completion(&d.upstream_model, created, ids)
                };
                let mut sse = ollama::sse_from_ndjson(stream, translator, cfg.max_response_bytes);
                let first = match relay::first_chunk(&mut sse, t.by).await {
                    Ok(first) => first,
                    Err(e) => return self.failed(candidate, body_failure(e, t.allowed)),
                };
                self.succeeded(candidate, t.sent_us);
                let settlement = self.settlement();
                // The translation always writes the usage chunk: metered, then removed unless
                // the client asked for it.
                let mut relay = SseRelay::new(
                    first,
                    sse,
                    !self.request.client_wants_usage,
                    idle,
                    cfg.max_response_bytes,
                    Meter {
                        state: state.clone(),
                        endpoint: endpoint.id.clone(),
                        model: self.model.clone(),
                        in_flight: Some(in_flight),
                    },
                );
                if !settlement.is_empty() {
                    relay = relay.on_end(Box::new(move |usage| {
                        settlement.settle(usage);
                    }));
                }
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                Body::from_stream(relay.into_stream())
            } else {
                let whole = match relay::read_all(stream, t.by, idle, cfg.max_response_bytes).await
                {
                    Ok(whole) => whole,
                    Err(e) => return self.failed(candidate, body_failure(e, t.allowed)),
                };
                let answer = match op {
                    NativeOp::Chat => {
                        ollama::chat_response(&whole, &d.upstream_model, created, &mut ids)
                    }
                    NativeOp::Generate => {
                        ollama::completion_response(&whole, &d.upstream_model, created, &mut ids)
                    }
                    NativeOp::Embed => {
                        ollama::embed_response(&whole, &d.upstream_model, request.base64)
                    }
                };
                let Some(answer) = answer else {
                    return self.failed(
                        candidate,
                        UpstreamError::Protocol {
                            what: "the upstream's native answer was malformed",
                        },
                    );
                };
                let u = answer.usage;
                self.settlement().settle(Some(u));
                self.tokens(d, u);
                self.succeeded(candidate, t.sent_us);
                drop(in_flight);
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Body::from(answer.body)
            };
            debug!(
                model = %self.model,
                key = %self.principal.id(),
                endpoint = %endpoint.id,
                upstream_model = %d.upstream_model,
                credential = %candidate.credential_id(),
                attempts = self.attempts,
                "serving Ollama native answer"
            );
            return Attempt::Answer(self.answer(status, &headers, body, candidate));
        }

        // Not a success: classified exactly as on the OpenAI path.
        if let Some(e) = failure_of(status, &headers) {
            return self.failed(candidate, e);
        }
        let whole = match relay::read_all(stream, t.by, idle, MAX_ERROR_BODY).await {
            Ok(whole) => whole,
            Err(e) => return self.failed(candidate, body_failure(e, t.allowed)),
        };
        drop(in_flight);
        let context = self.refused(candidate, status, &whole);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Some upstreams echo the request headers in their errors: our key is never relayed.
        let whole = redact::redact(&whole, sent_secret(candidate));
        let body = Body::from(ollama::error_body(status.as_u16(), &whole));
        let answer = self.answer(status, &headers, body, candidate);
        if context {
            Attempt::ContextExceeded(answer)
        } else {
            Attempt::Answer(answer)
        }
    }
}
