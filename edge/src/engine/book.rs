//! Booking what an attempt did: success and failure counts, latency, tokens, cooldowns (by
//! [`crate::routing::cooldown`]) and their reports, and the headers of the client's answer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue};
use switchyard_proto::v1;
use tracing::{debug, info, warn};

use super::{Attempt, Plan};
use crate::metrics::{AttemptOutcome, DeploymentSeries};
use crate::routing::cooldown::{self, CooldownReason, Decision, Rest, Scope};
use crate::routing::target::{mono_us, now_ms};
use crate::routing::{Candidate, Deployment};
use crate::upstream::client::UpstreamError;
use crate::upstream::redact;
use crate::upstream::relay::BodyError;
use crate::upstream::sse::Usage;

/// Names the endpoint that served the response.
pub const ENDPOINT_HEADER: HeaderName = HeaderName::from_static("x-switchyard-endpoint");
/// Names the upstream model id that served the response.
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-switchyard-model");
/// How many upstream attempts were made, the serving one included.
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-switchyard-attempts");
/// Names the endpoint credential that served (`key`, `key_2`, …), when the endpoint has any.
pub const CREDENTIAL_HEADER: HeaderName = HeaderName::from_static("x-switchyard-credential");

impl Plan<'_> {
    /// Counts and logs an upstream's refusal of the request (a 4xx the client gets back as the
    /// upstream said it); says whether it was "context too long".
    pub(super) fn refused(&self, candidate: &Candidate, status: StatusCode, whole: &[u8]) -> bool {
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

    pub(super) fn succeeded(&self, candidate: &Candidate, sent_us: u64) {
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
    pub(super) fn tokens(&self, d: &Deployment, u: Usage) {
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
    pub(super) fn failed(&mut self, candidate: &Candidate, e: UpstreamError) -> Attempt {
        let d = &candidate.deployment;
        let settings = &self.table.settings;
        self.state.metrics().attempt(&d.endpoint.id, e.outcome());
        if let Some(ticket) = &mut self.ticket {
            ticket.attempt_failed(e.outcome());
        }
        warn!(
            model = %self.model,
            endpoint = %d.endpoint.id,
            upstream_model = %d.upstream_model,
            credential = %candidate.credential_id(),
            error = %e,
            attempt = self.attempts,
            "upstream attempt failed; trying the next candidate"
        );
        match e {
            UpstreamError::RateLimited { .. } => self.tally.rate_limited += 1,
            UpstreamError::Timeout { .. } => self.tally.timeouts += 1,
            _ => self.tally.other += 1,
        }
        let now = now_ms();
        match cooldown::decide(&e, settings.cooldown) {
            Decision::Rest(rest) => self.rest(candidate, rest),
            Decision::Backoff => {
                let wait = d
                    .target
                    .creds
                    .get(candidate.slot)
                    .map_or(settings.cooldown, |c| c.next_backoff(settings.cooldown));
                self.rest(
                    candidate,
                    Rest {
                        scope: Scope::Target,
                        wait,
                        reason: CooldownReason::RateLimited,
                    },
                );
            }
            Decision::Count { scope, then } => {
                // An endpoint's failure window is kept on its first credential.
                let (creds, slot) = match scope {
                    Scope::Endpoint => (&d.endpoint.wide.creds, 0),
                    Scope::Credential => (&d.endpoint.wide.creds, candidate.slot),
                    Scope::Target => (&d.target.creds, candidate.slot),
                };
                if creds
                    .get(slot)
                    .is_some_and(|c| c.record_failure(now, settings.allowed_fails))
                {
                    self.rest(candidate, then);
                }
            }
        }
        Attempt::Failed(e)
    }

    /// Applies `rest` to the candidate, here at once and, through the report, on every edge.
    pub(super) fn rest(&mut self, candidate: &Candidate, rest: Rest) {
        let d = &candidate.deployment;
        let until = now_ms() + rest.wait.as_millis().min(i64::MAX as u128) as i64;
        match rest.scope {
            Scope::Endpoint => {
                for c in d.endpoint.wide.creds.iter() {
                    c.cool_until(until);
                }
                self.announce(&d.endpoint.id, "", "", until, rest.reason);
            }
            Scope::Credential | Scope::Target => {
                let (creds, model) = if rest.scope == Scope::Credential {
                    (&d.endpoint.wide.creds, "")
                } else {
                    (&d.target.creds, &*d.upstream_model)
                };
                if let Some(c) = creds.get(candidate.slot) {
                    c.cool_until(until);
                }
                self.tally.cooled(until);
                self.announce(
                    &d.endpoint.id,
                    candidate.credential_id(),
                    model,
                    until,
                    rest.reason,
                );
            }
        }
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
    pub(super) fn answer(
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
pub(super) fn sent_secret(candidate: &Candidate) -> &[u8] {
    candidate
        .deployment
        .endpoint
        .credentials
        .get(candidate.slot)
        .map_or(&[][..], |c| redact::secret_of(&c.authorization))
}

pub(super) fn body_failure(e: BodyError, allowed: Duration) -> UpstreamError {
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
