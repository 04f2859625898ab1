//! The forwarding path shared by the `/v1` POST endpoints: authenticate, parse the few fields
//! routing needs, pick candidates across the model group and its fallbacks, try them with a
//! per-try timeout inside an overall deadline, cool down what failed, and relay the first
//! answer back. Failover happens only while no byte has reached the client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue};
use switchyard_proto::v1;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::auth::{self, KeyStore, Principal};
use crate::error::ApiError;
use crate::limits;
use crate::limits::upstream::{Settlement, TokenCharge};
use crate::metrics::{AttemptOutcome, DeploymentSeries, Route};
use crate::routing::target::{mono_us, now_ms};
use crate::routing::{Ask, Candidate, Deployment, ModelGroup, RoutingTable, pick};
use crate::state::EdgeState;
use crate::upstream::RequestBody;
use crate::upstream::client::UpstreamError;
use crate::upstream::ratelimit::{self, CooldownReason};
use crate::upstream::redact;
use crate::upstream::relay::{self, BodyError, ByteStream, Meter, SseRelay};

mod native;

/// Names the endpoint that served the response.
pub const ENDPOINT_HEADER: HeaderName = HeaderName::from_static("x-switchyard-endpoint");
/// Names the upstream model id that served the response.
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-switchyard-model");
/// How many upstream attempts were made, the serving one included.
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-switchyard-attempts");
/// Names the endpoint credential that served (`key`, `key_2`, …), when the endpoint has any.
pub const CREDENTIAL_HEADER: HeaderName = HeaderName::from_static("x-switchyard-credential");

/// Largest upstream error body read to decide what it means.
const MAX_ERROR_BODY: usize = 1024 * 1024;
/// Shortest rest for a credential the upstream refused.
const CREDENTIAL_COOLDOWN: Duration = Duration::from_secs(60);

impl Route {
    /// The parameter the operation cannot do without.
    fn required(self) -> &'static str {
        match self {
            Self::Chat => "messages",
            Self::Completions => "prompt",
            Self::Embeddings => "input",
        }
    }
}

/// Serves one `/v1` POST: the upstream's answer, or an OpenAI-shaped error.
pub async fn forward(state: &EdgeState, route: Route, request: Request) -> Response {
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
    let response = match serve(state, route, &parts.headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    state.metrics().request(
        route,
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
    route: Route,
    headers: &HeaderMap,
    body: Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let table = state.table();
    let now = now_ms();
    let no_keys = KeyStore::default();
    let keys = table.as_deref().map_or(&no_keys, |t| &t.keys);
    let principal = auth::authenticate(headers, keys, state.bootstrap(), now)?;
    let body = body?;
    let request = RequestBody::parse(&body)?;
    let model = request.model()?;
    request.require(route.required())?;
    let table = table.ok_or(ApiError::NoRoutingTable)?;
    let group = table
        .resolve(&model)
        .ok_or_else(|| ApiError::ModelNotFound {
            model: model.clone(),
        })?;
    // From here on the request counts in usage under its model group (names from the table,
    // never free client input); one that ends without an answer counts as an error.
    let mut ticket = state
        .usage()
        .ticket(&crate::usage::key_of(&principal), &group.name);
    if !principal.allows(&model) && !principal.allows(&group.name) {
        return Err(ApiError::ModelNotAllowed { model });
    }
    // Cluster-wide key limits; held (the concurrency slot) until the response is built.
    let mut admission = match &principal {
        Principal::Key(key) => {
            limits::admission::admit(state.limiter(), key, request.token_estimate()).await?
        }
        _ => limits::admission::Admission::default(),
    };
    if let (Principal::Key(key), Some(ticket)) = (&principal, &mut ticket) {
        let cost = crate::usage::estimate_nanos(&group, &request);
        let at = limits::now_ms();
        ticket.reserve(limits::spend::admit(state.limiter(), key, cost, at).await?);
    }
    let n = request.n.unwrap_or(1);
    if n > 1
        && !group.deployments.is_empty()
        && group
            .deployments
            .iter()
            .all(|d| !d.endpoint.kind.supports_n())
    {
        return Err(ApiError::InvalidParam {
            param: "n",
            message: "n > 1 is not supported; call the endpoint multiple times",
        });
    }
    let budget = table
        .settings
        .timeout
        .unwrap_or_else(|| state.config().request_timeout());
    let mut plan = Plan {
        state,
        table: &table,
        route,
        headers,
        request: &request,
        model: Arc::from(model.as_str()),
        principal: &principal,
        deadline: Instant::now() + budget,
        // The edge meters streams itself; embeddings never stream.
        add_usage: request.stream && !request.client_wants_usage && route != Route::Embeddings,
        ask: Ask {
            now_ms: now,
            tokens: request.token_estimate(),
            needs_n: n > 1,
            random: fastrand::u64(..),
        },
        attempts: 0,
        tally: Tally::default(),
        key_charge: admission.take_token_charge(),
        upstream_charge: None,
        ticket,
    };
    let result = plan.run(group).await;
    // A token reservation no response took over was not used upstream.
    if let Some(charge) = plan.key_charge.take() {
        charge.settle(0);
    }
    let mut response = result?;
    admission.headers(response.headers_mut());
    // A concurrency slot lasts until the body has been sent, not just its headers.
    Ok(admission.hold_until_sent(response))
}

/// How the attempts so far failed, to choose the final error.
#[derive(Debug, Default)]
struct Tally {
    rate_limited: usize,
    /// Candidates skipped because their upstream limit's window is spent.
    limited: usize,
    timeouts: usize,
    other: usize,
    /// Earliest end of a cooldown that excluded or stopped a candidate.
    cooled_until: Option<i64>,
    /// An upstream's "context too long" answer, returned when no larger model helps.
    context_answer: Option<Response>,
    /// Candidates left out because their window is too small, tried last.
    too_small: Vec<Candidate>,
}

impl Tally {
    fn cooled(&mut self, until: i64) {
        self.cooled_until = Some(self.cooled_until.map_or(until, |m| m.min(until)));
    }
}

/// One request's way through its candidates.
struct Plan<'r> {
    state: &'r EdgeState,
    table: &'r RoutingTable,
    route: Route,
    headers: &'r HeaderMap,
    request: &'r RequestBody<'r>,
    model: Arc<str>,
    principal: &'r Principal,
    deadline: Instant,
    add_usage: bool,
    ask: Ask,
    attempts: usize,
    tally: Tally,
    /// The key's token reservation until a response takes it over.
    key_charge: Option<TokenCharge>,
    /// The current candidate's upstream token reservation.
    upstream_charge: Option<TokenCharge>,
    /// The request's usage, until a response takes it over.
    ticket: Option<crate::usage::Ticket>,
}

/// What one attempt produced.
enum Attempt {
    /// An answer to relay to the client (success, or a request error as the upstream said it).
    Answer(Response),
    /// The upstream said the prompt does not fit; its answer is kept in case nothing larger helps.
    ContextExceeded(Response),
    /// Nothing usable; try the next candidate.
    Failed(UpstreamError),
}

impl Plan<'_> {
    async fn run(&mut self, primary: Arc<ModelGroup>) -> Result<Response, ApiError> {
        let mut queue: VecDeque<Arc<ModelGroup>> = VecDeque::from([primary.clone()]);
        let mut seen: Vec<Arc<str>> = Vec::new();
        let mut dead_endpoints: Vec<Arc<str>> = Vec::new();
        let per_group = self.table.settings.num_retries as usize + 1;
        while let Some(group) = queue.pop_front() {
            if seen.contains(&group.name) {
                continue;
            }
            seen.push(group.name.clone());
            let picked = pick(&group, &self.ask, self.table.settings.strategy);
            if let Some(until) = picked.cooled_until {
                self.tally.cooled(until);
            }
            if picked.fit.is_empty() && !picked.too_small.is_empty() {
                // Nothing here fits: larger groups first, these as a last resort.
                self.push_front(&mut queue, self.table.context_fallbacks.get(&*group.name));
                if Arc::ptr_eq(&group, &primary) {
                    self.tally.too_small = picked.too_small;
                }
            }
            let mut tried = 0;
            let mut context_exceeded = false;
            for candidate in &picked.fit {
                if tried == per_group || Instant::now() >= self.deadline {
                    break;
                }
                let endpoint = &candidate.deployment.endpoint.id;
                if dead_endpoints.contains(endpoint) {
                    continue;
                }
                if !self.admit_upstream(candidate).await {
                    continue;
                }
                tried += 1;
                let attempt = self.attempt(candidate).await;
                self.refund_upstream();
                match attempt {
                    Attempt::Answer(response) => return Ok(response),
                    Attempt::ContextExceeded(response) => {
                        self.tally.context_answer = Some(response);
                        context_exceeded = true;
                        break;
                    }
                    Attempt::Failed(e) => {
                        if e.endpoint_wide() {
                            dead_endpoints.push(endpoint.clone());
                        }
                    }
                }
            }
            if context_exceeded {
                self.push_front(&mut queue, self.table.context_fallbacks.get(&*group.name));
            } else {
                self.push_back(&mut queue, self.table.fallbacks.get(&*group.name));
            }
        }
        // Last resort: deployments whose window looked too small (the estimate is rough).
        let last_resort = std::mem::take(&mut self.tally.too_small);
        for candidate in last_resort
            .iter()
            .take(self.table.settings.num_retries as usize + 1)
        {
            if Instant::now() >= self.deadline {
                break;
            }
            if !self.admit_upstream(candidate).await {
                continue;
            }
            let attempt = self.attempt(candidate).await;
            self.refund_upstream();
            match attempt {
                Attempt::Answer(response) => return Ok(response),
                Attempt::ContextExceeded(response) => self.tally.context_answer = Some(response),
                Attempt::Failed(_) => {}
            }
        }
        self.final_error(&primary)
    }

    /// Takes `candidate`'s upstream limits (its token reservation is held in
    /// `upstream_charge`); false when a limit's window is spent and the candidate is skipped.
    async fn admit_upstream(&mut self, candidate: &Candidate) -> bool {
        match self
            .state
            .limiter()
            .admit_upstream(candidate, self.ask.tokens)
            .await
        {
            Ok(charge) => {
                self.upstream_charge = charge;
                true
            }
            Err(limited) => {
                debug!(
                    model = %self.model,
                    endpoint = %candidate.deployment.endpoint.id,
                    limit = %limited.key,
                    "upstream limit spent; skipping the deployment"
                );
                self.tally.limited += 1;
                let wait = i64::try_from(limited.retry_after.as_millis()).unwrap_or(i64::MAX);
                self.tally.cooled(now_ms().saturating_add(wait));
                false
            }
        }
    }

    /// Gives back an upstream token reservation no response took over.
    fn refund_upstream(&mut self) {
        if let Some(charge) = self.upstream_charge.take() {
            charge.settle(0);
        }
    }

    /// The token reservations a response takes over, to settle with its usage.
    fn settlement(&mut self) -> Settlement {
        let mut settlement = Settlement::default();
        settlement.push(self.key_charge.take());
        settlement.push(self.upstream_charge.take());
        settlement.record(self.ticket.take());
        settlement
    }

    fn push_front(&self, queue: &mut VecDeque<Arc<ModelGroup>>, chain: Option<&Vec<String>>) {
        for name in chain.into_iter().flatten().rev() {
            if let Some(g) = self.table.models.get(name) {
                queue.push_front(g.clone());
            }
        }
    }

    fn push_back(&self, queue: &mut VecDeque<Arc<ModelGroup>>, chain: Option<&Vec<String>>) {
        for name in chain.into_iter().flatten() {
            if let Some(g) = self.table.models.get(name) {
                queue.push_back(g.clone());
            }
        }
    }

    fn final_error(&mut self, primary: &ModelGroup) -> Result<Response, ApiError> {
        if let Some(answer) = self.tally.context_answer.take() {
            return Ok(answer);
        }
        let model = self.model.to_string();
        let retry_after_ms =
            |until: Option<i64>| until.map_or(1_000, |u| u.saturating_sub(now_ms()).max(1) as u64);
        let t = &self.tally;
        if self.attempts == 0 {
            if primary.deployments.is_empty() {
                return Err(ApiError::NoUpstreamAvailable {
                    model,
                    retry_after_ms: 1_000,
                });
            }
            if t.cooled_until.is_some() {
                return Err(ApiError::RateLimited {
                    model,
                    retry_after_ms: retry_after_ms(t.cooled_until),
                });
            }
            if Instant::now() >= self.deadline {
                return Err(ApiError::UpstreamTimeout { model, attempts: 0 });
            }
            return Err(ApiError::ContextTooLong {
                model,
                estimate: self.ask.tokens,
            });
        }
        if t.rate_limited + t.limited > 0 && t.timeouts == 0 && t.other == 0 {
            return Err(ApiError::RateLimited {
                model,
                retry_after_ms: retry_after_ms(t.cooled_until),
            });
        }
        if t.timeouts > 0 && t.other == 0 && t.rate_limited == 0 {
            return Err(ApiError::UpstreamTimeout {
                model,
                attempts: self.attempts,
            });
        }
        Err(ApiError::UpstreamUnavailable {
            model,
            attempts: self.attempts,
        })
    }

    /// Tries one candidate: send, wait for the head and the first byte within the per-try
    /// timeout and the deadline, and classify what came back.
    async fn attempt(&mut self, candidate: &Candidate) -> Attempt {
        self.attempts += 1;
        let state = self.state;
        let cfg = state.config();
        let d = &candidate.deployment;
        if let Some(ticket) = &mut self.ticket {
            ticket.served_by(&d.usage_id, d.price);
        }
        let endpoint = d.endpoint.clone();
        let per_try = cfg.first_byte_timeout();
        let now = Instant::now();
        let try_by = (now + per_try).min(self.deadline);
        let allowed = try_by.saturating_duration_since(now);
        let in_flight = d.target.start();
        let sent_us = mono_us();
        let Some(uri) = endpoint
            .uris
            .as_ref()
            .map(|u| u[self.route.index()].clone())
        else {
            return self.failed(candidate, UpstreamError::Connect);
        };
        if let Some(op) = self.goes_native(candidate) {
            let t = native::Try {
                by: try_by,
                allowed,
                sent_us,
            };
            return self.native(candidate, op, t, in_flight).await;
        }
        let body = self
            .request
            .upstream_body(&d.upstream_model, self.add_usage);
        let send = state.upstream().send(candidate, uri, self.headers, body);
        let result = match tokio::time::timeout_at(try_by, send).await {
            Err(_) => Err(UpstreamError::Timeout { after: allowed }),
            Ok(Err(UpstreamError::Timeout { .. })) => {
                Err(UpstreamError::Timeout { after: allowed })
            }
            Ok(r) => r,
        };
        let response = match result {
            Ok(response) => response,
            Err(e) => return self.failed(candidate, e),
        };
        let (head, response_body) = response.into_parts();
        let status = head.status;
        let upstream_headers = head.headers;
        limits::upstream::learn(candidate, &upstream_headers);
        if status.is_success() {
            if let Some(wait) = ratelimit::exhausted(&upstream_headers) {
                self.cool(candidate, wait, CooldownReason::QuotaExhausted, false);
            }
            let is_sse = upstream_headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("text/event-stream"));
            let mut stream: ByteStream = relay::byte_stream(response_body);
            let body = if is_sse {
                match relay::first_chunk(&mut stream, try_by).await {
                    Ok(first) => {
                        self.succeeded(candidate, sent_us);
                        let settlement = self.settlement();
                        let mut relay = SseRelay::new(
                            first,
                            stream,
                            self.add_usage,
                            cfg.stream_idle_timeout(),
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
                        Body::from_stream(relay.into_stream())
                    }
                    Err(e) => return self.failed(candidate, body_failure(e, allowed)),
                }
            } else {
                let whole = match relay::read_all(
                    stream,
                    try_by,
                    cfg.stream_idle_timeout(),
                    cfg.max_response_bytes,
                )
                .await
                {
                    Ok(whole) => whole,
                    Err(e) => return self.failed(candidate, body_failure(e, allowed)),
                };
                match relay::json_usage(&whole) {
                    Some(usage) => {
                        self.settlement().settle(usage);
                        if let Some(u) = usage {
                            self.tokens(d, u);
                        }
                    }
                    None => {
                        return self.failed(
                            candidate,
                            UpstreamError::Protocol {
                                what: "the upstream answered with malformed JSON",
                            },
                        );
                    }
                }
                self.succeeded(candidate, sent_us);
                drop(in_flight);
                Body::from(whole)
            };
            // Per-request lines are debug: at info they would cost more than the routing does.
            debug!(
                model = %self.model,
                key = %self.principal.id(),
                endpoint = %endpoint.id,
                upstream_model = %d.upstream_model,
                credential = %candidate.credential_id(),
                status = status.as_u16(),
                attempts = self.attempts,
                "serving upstream answer"
            );
            return Attempt::Answer(self.answer(status, &upstream_headers, body, candidate));
        }

        // An Ollama 404 may mean no OpenAI surface at all: then the native API, same attempt.
        if status == StatusCode::NOT_FOUND
            && let Some(op) = self.ollama_op(candidate)
        {
            let t = native::Try {
                by: try_by,
                allowed,
                sent_us,
            };
            return self
                .after_v1_404(candidate, op, response_body, t, in_flight)
                .await;
        }
        // Not a success: the head tells most of it, the (small) body the rest.
        if let Some(e) = failure_of(status, &upstream_headers) {
            return self.failed(candidate, e);
        }
        let stream: ByteStream = relay::byte_stream(response_body);
        let whole = match relay::read_all(stream, try_by, cfg.stream_idle_timeout(), MAX_ERROR_BODY)
            .await
        {
            Ok(whole) => whole,
            Err(e) => return self.failed(candidate, body_failure(e, allowed)),
        };
        drop(in_flight);
        let context = self.refused(candidate, status, &whole);
        // Some upstreams echo the request headers in their errors: our key is never relayed.
        let whole = match redact::redact(&whole, sent_secret(candidate)) {
            std::borrow::Cow::Borrowed(_) => whole,
            std::borrow::Cow::Owned(masked) => Bytes::from(masked),
        };
        let answer = self.answer(status, &upstream_headers, Body::from(whole), candidate);
        if context {
            Attempt::ContextExceeded(answer)
        } else {
            Attempt::Answer(answer)
        }
    }

    /// Counts and logs an upstream's refusal of the request (a 4xx the client gets back as the
    /// upstream said it); says whether it was "context too long".
    fn refused(&self, candidate: &Candidate, status: StatusCode, whole: &[u8]) -> bool {
        let endpoint = &candidate.deployment.endpoint;
        let context = is_context_error(whole);
        self.state.metrics().attempt(
            &endpoint.id,
            if context {
                AttemptOutcome::ContextExceeded
            } else {
                AttemptOutcome::ClientError
            },
        );
        debug!(
            model = %self.model,
            endpoint = %endpoint.id,
            status = status.as_u16(),
            context,
            "upstream refused the request"
        );
        context
    }

    fn succeeded(&self, candidate: &Candidate, sent_us: u64) {
        let d = &candidate.deployment;
        let now = mono_us();
        let took = now.saturating_sub(sent_us);
        d.target.observe(took, now);
        if let Some(c) = d.target.creds.get(candidate.slot) {
            c.record_success();
        }
        self.series(d).succeeded(took as f64 / 1e6);
    }

    /// The deployment's metric series, looked up at its first answer.
    fn series<'d>(&self, d: &'d Deployment) -> &'d DeploymentSeries {
        d.series.get_or_init(|| {
            self.state
                .metrics()
                .deployment_series(&d.endpoint.id, &self.model)
        })
    }

    /// Counts the tokens an answer used.
    fn tokens(&self, d: &Deployment, u: crate::upstream::sse::Usage) {
        if !self
            .series(d)
            .tokens(&self.model, u.prompt_tokens, u.completion_tokens)
        {
            self.state.metrics().tokens(
                &d.endpoint.id,
                &self.model,
                u.prompt_tokens,
                u.completion_tokens,
            );
        }
    }

    /// Books a failed attempt: cooldowns, failure counts, metrics; always `Attempt::Failed`.
    fn failed(&mut self, candidate: &Candidate, e: UpstreamError) -> Attempt {
        let d = &candidate.deployment;
        let settings = &self.table.settings;
        self.state.metrics().attempt(&d.endpoint.id, e.outcome());
        warn!(
            model = %self.model,
            endpoint = %d.endpoint.id,
            upstream_model = %d.upstream_model,
            credential = %candidate.credential_id(),
            error = %e,
            attempt = self.attempts,
            "upstream attempt failed; trying the next candidate"
        );
        let now = now_ms();
        match e {
            UpstreamError::RateLimited { wait } => {
                self.tally.rate_limited += 1;
                let wait = wait.unwrap_or_else(|| {
                    d.target
                        .creds
                        .get(candidate.slot)
                        .map_or(settings.cooldown, |c| c.next_backoff(settings.cooldown))
                });
                self.cool(candidate, wait, CooldownReason::RateLimited, false);
            }
            UpstreamError::Credential { .. } => {
                self.tally.other += 1;
                let wait = settings.cooldown.max(CREDENTIAL_COOLDOWN);
                self.cool(candidate, wait, CooldownReason::Credential, true);
            }
            UpstreamError::Connect => {
                self.tally.other += 1;
                let wide = &d.endpoint.wide.creds;
                if wide
                    .first()
                    .is_some_and(|c| c.record_failure(now, settings.allowed_fails))
                {
                    let until = now + settings.cooldown.as_millis() as i64;
                    for c in wide.iter() {
                        c.cool_until(until);
                    }
                    self.announce(&d.endpoint.id, "", "", until, CooldownReason::Failures);
                }
            }
            UpstreamError::Timeout { .. }
            | UpstreamError::Status { .. }
            | UpstreamError::Protocol { .. } => {
                if matches!(e, UpstreamError::Timeout { .. }) {
                    self.tally.timeouts += 1;
                } else {
                    self.tally.other += 1;
                }
                if d.target
                    .creds
                    .get(candidate.slot)
                    .is_some_and(|c| c.record_failure(now, settings.allowed_fails))
                {
                    self.cool(
                        candidate,
                        settings.cooldown,
                        CooldownReason::Failures,
                        false,
                    );
                }
            }
        }
        Attempt::Failed(e)
    }

    /// Rests the candidate's credential for `wait` (for every model of the endpoint when
    /// `endpoint_wide`), here at once and, through the report, on every edge.
    fn cool(
        &mut self,
        candidate: &Candidate,
        wait: Duration,
        reason: CooldownReason,
        endpoint_wide: bool,
    ) {
        let d = &candidate.deployment;
        let until = now_ms() + wait.as_millis().min(i64::MAX as u128) as i64;
        let creds = if endpoint_wide {
            &d.endpoint.wide.creds
        } else {
            &d.target.creds
        };
        if let Some(c) = creds.get(candidate.slot) {
            c.cool_until(until);
        }
        self.tally.cooled(until);
        let model = if endpoint_wide { "" } else { &d.upstream_model };
        self.announce(
            &d.endpoint.id,
            candidate.credential_id(),
            model,
            until,
            reason,
        );
    }

    fn announce(
        &self,
        endpoint: &Arc<str>,
        credential: &str,
        model: &str,
        until_ms: i64,
        reason: CooldownReason,
    ) {
        info!(
            endpoint = %endpoint,
            credential,
            upstream_model = model,
            until_ms,
            reason = reason.as_str(),
            "cooling down upstream target"
        );
        self.state.metrics().cooldown(endpoint, reason.as_str());
        self.state.report(v1::Cooldown {
            endpoint_id: endpoint.to_string(),
            credential_id: credential.to_owned(),
            model: model.to_owned(),
            until_ms,
            reason: reason.as_str().to_owned(),
        });
    }

    /// The client's response: the upstream status, content type, rate-limit and request-id
    /// headers, the body, and headers naming what served.
    fn answer(
        &self,
        status: StatusCode,
        upstream: &HeaderMap,
        body: Body,
        candidate: &Candidate,
    ) -> Response {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        let secret = sent_secret(candidate);
        for (name, value) in upstream {
            let n = name.as_str();
            if redact::carries(value, secret) {
                continue;
            }
            if n == CONTENT_TYPE
                || n.starts_with("x-ratelimit-")
                || n == "x-request-id"
                || (n == RETRY_AFTER && !status.is_success())
            {
                headers.append(name.clone(), value.clone());
            }
        }
        let d = &candidate.deployment;
        // Ids that are not valid header values (rare; not visible ASCII) are left out, not mangled.
        if let Some(v) = &d.endpoint.id_header {
            headers.insert(ENDPOINT_HEADER, v.clone());
        }
        if let Some(v) = &d.model_header {
            headers.insert(MODEL_HEADER, v.clone());
        }
        if let Some(v) = d
            .endpoint
            .credentials
            .get(candidate.slot)
            .and_then(|c| c.id_header.as_ref())
            .filter(|v| !v.is_empty())
        {
            headers.insert(CREDENTIAL_HEADER, v.clone());
        }
        headers.insert(
            ATTEMPTS_HEADER,
            match self.attempts {
                1 => HeaderValue::from_static("1"),
                n => HeaderValue::from(n),
            },
        );
        response
    }
}

/// The secret of the credential this attempt sent upstream (empty without one).
/// What a non-2xx upstream answer means for the attempt: a failure to fail over from, or
/// `None` for a request error the client gets back as the upstream said it.
fn failure_of(status: StatusCode, headers: &HeaderMap) -> Option<UpstreamError> {
    match status.as_u16() {
        429 => Some(UpstreamError::RateLimited {
            wait: ratelimit::retry_after(headers, SystemTime::now()),
        }),
        401 | 403 => Some(UpstreamError::Credential { status }),
        404 | 408 | 500..=599 => Some(UpstreamError::Status { status }),
        _ => None,
    }
}

fn sent_secret(candidate: &Candidate) -> &[u8] {
    candidate
        .deployment
        .endpoint
        .credentials
        .get(candidate.slot)
        .map_or(&[][..], |c| redact::secret_of(&c.authorization))
}

fn body_failure(e: BodyError, allowed: Duration) -> UpstreamError {
    match e {
        BodyError::Timeout => UpstreamError::Timeout { after: allowed },
        BodyError::TooLarge => UpstreamError::Protocol {
            what: "the upstream answer exceeded the size limit",
        },
        BodyError::Broken => UpstreamError::Protocol {
            what: "the upstream connection broke before the answer was complete",
        },
    }
}

/// Whether an upstream's 4xx body says the prompt is longer than the model's context.
pub fn is_context_error(body: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 6] = [
        b"context_length_exceeded",
        b"maximum context length",
        b"context window",
        b"context length",
        b"prompt is too long",
        b"too many tokens",
    ];
    let lower = body.to_ascii_lowercase();
    NEEDLES
        .iter()
        .any(|n| memchr::memmem::find(&lower, n).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_errors_are_recognised() {
        let cases: [(&[u8], bool); 5] = [
            (
                br#"{"error":{"code":"context_length_exceeded","message":"..."}}"#,
                true,
            ),
            (
                b"This model's maximum context length is 8192 tokens. However, you requested 9000",
                true,
            ),
            (br#"{"error":"Prompt is too long"}"#, true),
            (
                br#"{"error":{"message":"temperature must be <= 2"}}"#,
                false,
            ),
            (b"", false),
        ];
        for (body, want) in cases {
            assert_eq!(
                is_context_error(body),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
