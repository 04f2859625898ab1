//! The attempt engine, written once for every dialect: pick candidates across the model group
//! and its fallbacks, admit them against upstream limits, try them with a per-try timeout inside
//! an overall deadline ([`attempt`]), cool down what failed ([`book`]), settle token
//! reservations, and hand back the first answer. Failover happens only while no byte has reached
//! the client. The wire format of each try belongs to its outbound dialect
//! ([`crate::dialect::Outbound`]); the engine's own answer is always OpenAI-shaped, and an
//! inbound dialect turns it into its own shape.

mod attempt;
mod book;

use std::collections::VecDeque;
use std::sync::Arc;

use axum::response::Response;
use http::HeaderMap;
use tokio::time::Instant;
use tracing::debug;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::limits::upstream::{Settlement, TokenCharge};
use crate::metrics::Operation;
use crate::routing::target::now_ms;
use crate::routing::{Ask, Candidate, ModelGroup, RoutingTable, pick};
use crate::state::EdgeState;
use crate::upstream::RequestBody;
use crate::upstream::client::UpstreamError;
use crate::usage::Ticket;

pub use book::{
    ATTEMPTS_HEADER, CREDENTIAL_HEADER, ENDPOINT_HEADER, MODEL_HEADER, is_context_error,
};

/// What one request brings to the engine.
pub struct Job<'r> {
    /// The edge.
    pub state: &'r EdgeState,
    /// The table the request was routed with.
    pub table: &'r RoutingTable,
    /// The OpenAI operation the request is.
    pub operation: Operation,
    /// The client's headers (content type and accept are forwarded).
    pub headers: &'r HeaderMap,
    /// The OpenAI-shaped body.
    pub request: &'r RequestBody<'r>,
    /// The public model name asked for.
    pub model: Arc<str>,
    /// Who asked.
    pub principal: &'r Principal,
    /// When the whole request must be done.
    pub deadline: Instant,
    /// The key's token reservation, which the serving response takes over.
    pub key_charge: Option<TokenCharge>,
    /// The request's usage ticket, which the serving response settles.
    pub ticket: Option<Ticket>,
}

/// Serves `job` from `group` (then its fallbacks): the first usable answer, or the error that
/// sums up why there was none. A key reservation no answer took over is given back.
pub async fn run(job: Job<'_>, group: Arc<ModelGroup>) -> Result<Response, ApiError> {
    let request = job.request;
    let n = request.n.unwrap_or(1);
    let mut plan = Plan {
        state: job.state,
        table: job.table,
        operation: job.operation,
        headers: job.headers,
        request,
        model: job.model,
        principal: job.principal,
        deadline: job.deadline,
        // The edge meters streams itself; embeddings never stream.
        add_usage: request.stream
            && !request.client_wants_usage
            && job.operation != Operation::Embeddings,
        ask: Ask {
            now_ms: now_ms(),
            tokens: request.token_estimate(),
            // Under drop_params a target that cannot take `n` is sent the request without it.
            needs_n: n > 1 && !job.table.settings.drop_params,
            random: fastrand::u64(..),
        },
        attempts: 0,
        tally: Tally::default(),
        key_charge: job.key_charge,
        upstream_charge: None,
        ticket: job.ticket,
    };
    let result = plan.run(group).await;
    // A ticket no answer settled ends with the status the client gets.
    if let Some(ticket) = &mut plan.ticket {
        ticket.status(match &result {
            Ok(response) => response.status().as_u16(),
            Err(e) => e.parts().0.as_u16(),
        });
    }
    // A token reservation no response took over was not used upstream.
    if let Some(charge) = plan.key_charge.take() {
        charge.settle(0);
    }
    result
}

/// How the attempts so far failed, to choose the final error.
#[derive(Debug, Default)]
struct Tally {
    /// Deployments of the primary group left out because they cannot serve `n > 1`.
    unsupported_n: usize,
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
    operation: Operation,
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
    ticket: Option<Ticket>,
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
        // A capability alias falls through its other members, in order, before any fallback.
        queue.extend(crate::routing::alias::members(
            self.table,
            &self.model,
            self.ask.now_ms,
        ));
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
            if Arc::ptr_eq(&group, &primary) {
                self.tally.unsupported_n = picked.unsupported_n;
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
                let attempt = self.attempt_with_retries(candidate).await;
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

    /// Tries `candidate`, and again up to `same_deployment_retries` times after a
    /// `retry_after` pause when it fails in a way a retry may fix (LiteLLM's `num_retries`),
    /// before the caller moves on to the next candidate.
    async fn attempt_with_retries(&mut self, candidate: &Candidate) -> Attempt {
        let mut retries = self.table.settings.same_deployment_retries;
        loop {
            let attempt = self.attempt(candidate).await;
            self.refund_upstream();
            let retryable = matches!(&attempt, Attempt::Failed(e) if e.worth_retrying_in_place());
            if !retryable || retries == 0 {
                return attempt;
            }
            let wait = self.table.settings.retry_after;
            if Instant::now() + wait >= self.deadline {
                return attempt;
            }
            tokio::time::sleep(wait).await;
            if !self.admit_upstream(candidate).await {
                return attempt;
            }
            retries -= 1;
        }
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
            match self.table.models.get(name) {
                Some(g) => queue.push_front(g.clone()),
                None => debug!(
                    fallback = %name,
                    "the fallback names a model group that serves nothing; skipped (see `switchyard doctor`)"
                ),
            }
        }
    }

    fn push_back(&self, queue: &mut VecDeque<Arc<ModelGroup>>, chain: Option<&Vec<String>>) {
        for name in chain.into_iter().flatten() {
            match self.table.models.get(name) {
                Some(g) => queue.push_back(g.clone()),
                None => debug!(
                    fallback = %name,
                    "the fallback names a model group that serves nothing; skipped (see `switchyard doctor`)"
                ),
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
            if !primary.deployments.is_empty() && t.unsupported_n == primary.deployments.len() {
                return Err(ApiError::InvalidParam {
                    param: "n",
                    message: "n > 1 is not supported; call the endpoint multiple times",
                });
            }
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
}
