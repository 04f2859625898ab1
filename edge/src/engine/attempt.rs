//! One attempt at one candidate, whatever its wire: build the upstream request in the
//! candidate's outbound dialect, send it, wait for the head and the first byte within the
//! per-try timeout and the deadline, classify what came back, and relay the answer (passed
//! through, or translated event by event into OpenAI's shape). An Ollama server whose `/v1`
//! turns out to be missing is retried on its native API within the same attempt.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::{debug, info};

use super::book::{body_failure, sent_secret};
use super::{Attempt, Plan};
use crate::dialect::Outbound;
use crate::dialect::ollama::{self, Ids, NativeOp};
use crate::dialect::upstream::{Built, Unbuilt};
use crate::limits;
use crate::metrics::AttemptOutcome;
use crate::routing::cooldown;
use crate::routing::target::{mono_us, now_ms};
use crate::routing::{Candidate, EndpointKind, InFlight};
use crate::state::EdgeState;
use crate::upstream::client::UpstreamError;
use crate::upstream::redact;
use crate::upstream::relay::{self, ByteStream, Meter, SseRelay};

/// Largest upstream error body read to decide what it means.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// The time frame of one attempt.
struct Try {
    /// First byte due by then.
    by: Instant,
    /// The time that allowed (for timeout errors).
    allowed: Duration,
    /// When the request went out (latency observations).
    sent_us: u64,
}

impl Plan<'_> {
    /// Tries one candidate; see the module doc.
    pub(super) async fn attempt(&mut self, candidate: &Candidate) -> Attempt {
        self.attempts += 1;
        if let Some(ticket) = &mut self.ticket {
            let d = &candidate.deployment;
            ticket.served_by(&d.usage_id, d.price);
            ticket.attempt(d);
        }
        let per_try = self.state.config().first_byte_timeout();
        let now = Instant::now();
        let by = (now + per_try).min(self.deadline);
        let t = Try {
            by,
            allowed: by.saturating_duration_since(now),
            sent_us: mono_us(),
        };
        let in_flight = candidate.deployment.target.start();
        let mut wire = self.outbound(candidate);
        loop {
            let d = &candidate.deployment;
            // With `drop_params`, what the endpoint is known to refuse is left out.
            let dropped: &[String] = if self.table.settings.drop_params {
                &d.endpoint.unsupported_params
            } else {
                &[]
            };
            let built = wire.build(
                &d.endpoint,
                self.operation,
                self.request,
                (&d.upstream_model, dropped),
                self.add_usage,
            );
            let built = match built {
                Ok(built) => built,
                Err(Unbuilt::NoUri) => return self.failed(candidate, UpstreamError::Connect),
                Err(Unbuilt::Refused(error)) => {
                    let metrics = self.state.metrics();
                    metrics.attempt(&d.endpoint.id, AttemptOutcome::ClientError);
                    return Attempt::Answer(error.into_response());
                }
            };
            if !built.dropped.is_empty() {
                debug!(
                    endpoint = %d.endpoint.id,
                    dropped = ?built.dropped,
                    "request fields without a meaning upstream were dropped"
                );
            }
            let base64 = built.base64;
            let response = match send(self.state, self.headers, candidate, built, &t).await {
                Ok(response) => response,
                Err(e) => return self.failed(candidate, e),
            };
            let (head, body) = response.into_parts();
            limits::upstream::learn(candidate, &head.headers);
            if head.status.is_success() {
                return self
                    .success(candidate, wire, head, body, base64, &t, in_flight)
                    .await;
            }
            // An Ollama 404 may mean no OpenAI surface at all: then the native API, same attempt.
            if head.status == StatusCode::NOT_FOUND
                && wire == Outbound::OpenAi
                && let Some(op) = self.ollama_op(candidate)
            {
                match surface_absent(self.state, candidate, op, body, &t).await {
                    Some(native) => {
                        wire = native;
                        continue;
                    }
                    None => {
                        let status = StatusCode::NOT_FOUND;
                        return self.failed(candidate, UpstreamError::Status { status });
                    }
                }
            }
            return self
                .refusal(
                    candidate,
                    wire,
                    head.status,
                    head.headers,
                    body,
                    &t,
                    in_flight,
                )
                .await;
        }
    }

    /// The native operation this attempt's operation has on an Ollama endpoint, if any.
    fn ollama_op(&self, candidate: &Candidate) -> Option<NativeOp> {
        (candidate.deployment.endpoint.kind == EndpointKind::Ollama)
            .then(|| NativeOp::of(self.operation))
            .flatten()
    }

    /// The wire to start the attempt on: the endpoint's protocol, or Ollama's native API while
    /// the server is known to lack the OpenAI surface and no re-probe is due yet.
    fn outbound(&self, candidate: &Candidate) -> Outbound {
        match candidate.deployment.endpoint.kind {
            EndpointKind::Anthropic => return Outbound::Anthropic,
            EndpointKind::Gemini => {
                return Outbound::gemini(&candidate.deployment.endpoint.base_url);
            }
            EndpointKind::OpenAi | EndpointKind::Ollama => {}
        }
        let Some(op) = self.ollama_op(candidate) else {
            return Outbound::OpenAi;
        };
        let base = &candidate.deployment.endpoint.base_url;
        if self.state.ollama_surfaces().go_native(base, op, now_ms()) {
            Outbound::Ollama(op)
        } else {
            Outbound::OpenAi
        }
    }

    /// A 2xx: the answer relayed as a stream (event by event, metered on the way) or read
    /// whole, in OpenAI's shape either way.
    #[expect(
        clippy::too_many_arguments,
        reason = "one attempt's parts, passed once"
    )]
    async fn success(
        &mut self,
        candidate: &Candidate,
        wire: Outbound,
        head: http::response::Parts,
        body: Incoming,
        base64: bool,
        t: &Try,
        in_flight: InFlight,
    ) -> Attempt {
        let (status, mut headers) = (head.status, head.headers);
        if let Some(rest) = cooldown::after_success(&headers) {
            self.rest(candidate, rest);
        }
        let d = &candidate.deployment;
        let cfg = self.state.config();
        let raw = relay::byte_stream(body);
        let created = now_ms() / 1000;
        let ids = Ids::new(fastrand::u64(..));
        let model = &d.upstream_model;
        if wire.streams(&headers, self.request) {
            // A translated stream always carries the usage chunk: metered, then removed unless
            // the client asked for it.
            let strip_usage = if wire.translates() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                !self.request.client_wants_usage
            } else {
                self.add_usage
            };
            let sse = wire.stream(raw, model, created, ids, cfg.max_response_bytes);
            return match self.relay(candidate, sse, strip_usage, t, in_flight).await {
                Ok(body) => self.serve(candidate, status, &headers, body),
                Err(e) => self.failed(candidate, e),
            };
        }
        let whole =
            match relay::read_all(raw, t.by, cfg.stream_idle_timeout(), cfg.max_response_bytes)
                .await
            {
                Ok(whole) => whole,
                Err(e) => return self.failed(candidate, body_failure(e, t.allowed)),
            };
        let (body, usage) = match wire.whole(whole, model, created, ids, base64) {
            Ok(decoded) => decoded,
            Err(what) => return self.failed(candidate, UpstreamError::Protocol { what }),
        };
        if wire.translates() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        self.settlement().settle(usage);
        if let Some(u) = usage {
            self.tokens(d, u);
        }
        self.succeeded(candidate, t.sent_us);
        drop(in_flight);
        self.serve(candidate, status, &headers, Body::from(body))
    }

    /// Relays an OpenAI SSE stream once its first chunk is in: metered as it goes, settled when
    /// it ends.
    async fn relay(
        &mut self,
        candidate: &Candidate,
        mut stream: ByteStream,
        strip_usage: bool,
        t: &Try,
        in_flight: InFlight,
    ) -> Result<Body, UpstreamError> {
        let cfg = self.state.config();
        let first = relay::first_chunk(&mut stream, t.by)
            .await
            .map_err(|e| body_failure(e, t.allowed))?;
        self.succeeded(candidate, t.sent_us);
        let settlement = self.settlement();
        let mut relay = SseRelay::new(
            first,
            stream,
            strip_usage,
            cfg.stream_idle_timeout(),
            cfg.max_response_bytes,
            Meter {
                metrics: self.state.metrics().clone(),
                endpoint: candidate.deployment.endpoint.id.clone(),
                model: self.model.clone(),
                in_flight: Some(in_flight),
            },
        );
        if !settlement.is_empty() {
            relay = relay.on_end(Box::new(move |usage| {
                settlement.settle(usage);
            }));
        }
        Ok(Body::from_stream(relay.into_stream()))
    }

    /// The answer to relay, logged.
    fn serve(
        &self,
        candidate: &Candidate,
        status: StatusCode,
        headers: &HeaderMap,
        body: Body,
    ) -> Attempt {
        let d = &candidate.deployment;
        // Per-request lines are debug: at info they would cost more than the routing does.
        debug!(
            model = %self.model,
            key = %self.principal.id(),
            endpoint = %d.endpoint.id,
            upstream_model = %d.upstream_model,
            credential = %candidate.credential_id(),
            status = status.as_u16(),
            attempts = self.attempts,
            "serving upstream answer"
        );
        Attempt::Answer(self.answer(status, headers, body, candidate))
    }

    /// A non-2xx: a failure to fail over from, or a request error the client gets back as the
    /// upstream said it (in OpenAI's shape), kept aside when it says the prompt is too long.
    #[expect(
        clippy::too_many_arguments,
        reason = "one attempt's parts, passed once"
    )]
    async fn refusal(
        &mut self,
        candidate: &Candidate,
        wire: Outbound,
        status: StatusCode,
        mut headers: HeaderMap,
        body: Incoming,
        t: &Try,
        in_flight: InFlight,
    ) -> Attempt {
        if !wire.reads_error_body()
            && let Some(e) = wire.classify(status, &headers, None, SystemTime::now())
        {
            return self.failed(candidate, e);
        }
        let idle = self.state.config().stream_idle_timeout();
        let whole =
            match relay::read_all(relay::byte_stream(body), t.by, idle, MAX_ERROR_BODY).await {
                Ok(whole) => whole,
                Err(e) => return self.failed(candidate, body_failure(e, t.allowed)),
            };
        if wire.reads_error_body()
            && let Some(e) = wire.classify(status, &headers, Some(&whole), SystemTime::now())
        {
            return self.failed(candidate, e);
        }
        drop(in_flight);
        let context = self.refused(candidate, status, &whole);
        // Some upstreams echo the request headers in their errors: our key is never relayed.
        let whole = match redact::redact(&whole, sent_secret(candidate)) {
            std::borrow::Cow::Borrowed(_) => whole,
            std::borrow::Cow::Owned(masked) => Bytes::from(masked),
        };
        if wire.translates() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let body = wire.error(status.as_u16(), whole);
        let answer = self.answer(status, &headers, Body::from(body), candidate);
        if context {
            Attempt::ContextExceeded(answer)
        } else {
            Attempt::Answer(answer)
        }
    }
}

/// Sends `built` and waits for the response head until the try's deadline.
async fn send(
    state: &EdgeState,
    headers: &HeaderMap,
    candidate: &Candidate,
    built: Built,
    t: &Try,
) -> Result<http::Response<Incoming>, UpstreamError> {
    let send = state
        .upstream()
        .send(candidate, built.uri, headers, built.body);
    match tokio::time::timeout_at(t.by, send).await {
        Err(_) | Ok(Err(UpstreamError::Timeout { .. })) => {
            Err(UpstreamError::Timeout { after: t.allowed })
        }
        Ok(r) => r,
    }
}

/// A 404 from an Ollama endpoint's `/v1`: when its body shows the surface is absent, the
/// server is remembered as such and the native wire is returned; otherwise `None` (the
/// model is missing there).
async fn surface_absent(
    state: &EdgeState,
    candidate: &Candidate,
    op: NativeOp,
    body: Incoming,
    t: &Try,
) -> Option<Outbound> {
    let idle = state.config().stream_idle_timeout();
    let read = relay::read_all(relay::byte_stream(body), t.by, idle, MAX_ERROR_BODY).await;
    if !read.is_ok_and(|b| ollama::surface_absent(&b)) {
        return None;
    }
    let endpoint = &candidate.deployment.endpoint;
    info!(
        endpoint = %endpoint.id,
        operation = ?op,
        reprobe_after_s = ollama::REPROBE_AFTER_MS / 1000,
        "Ollama endpoint has no OpenAI surface; using its native API"
    );
    state
        .ollama_surfaces()
        .mark_absent(&endpoint.base_url, op, now_ms());
    Some(Outbound::Ollama(op))
}
