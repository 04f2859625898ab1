//! The cooldown policy: what an upstream's answer means for failover, and which failures rest
//! what, for how long. Pure: the caller passes the answer's head and the table's cooldown, and
//! applies the [`Decision`] (failure counters, backoffs, cooldowns, reports). The rules:
//! - 429 rests this credential for this model for what the headers asked (`retry-after-ms`,
//!   `retry-after`, `x-ratelimit-reset-*`), else its backoff;
//! - 401/403 rests the credential for every model of the endpoint, at least a minute;
//! - a refused connection counts against the whole endpoint, and rests all of it once the
//!   failures in the window pass `allowed_fails`;
//! - a timeout, 5xx, 404, 408 or malformed answer counts against this credential and model, and
//!   rests it the same way;
//! - a success whose headers say a budget reached zero rests the target until it resets.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::upstream::UpstreamError;
use crate::upstream::ratelimit;

/// Shortest rest for a credential the upstream refused.
pub const CREDENTIAL_COOLDOWN: Duration = Duration::from_secs(60);

/// Why a target cools down; also the reason reported to the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CooldownReason {
    /// The upstream answered 429.
    RateLimited,
    /// The upstream said its remaining requests or tokens reached zero.
    QuotaExhausted,
    /// Repeated connect errors or 5xx within the window.
    Failures,
    /// The upstream refused the credential (401/403).
    Credential,
}

impl CooldownReason {
    /// The wire and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Failures => "failures",
            Self::Credential => "credential",
        }
    }
}

/// What a cooldown covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This credential, for this deployment's model.
    Target,
    /// This credential, for every model of the endpoint.
    Credential,
    /// Every credential and model of the endpoint.
    Endpoint,
}

/// A cooldown to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rest {
    /// What it covers.
    pub scope: Scope,
    /// For how long.
    pub wait: Duration,
    /// Why (reported and counted).
    pub reason: CooldownReason,
}

/// What a failed attempt does to the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Rest at once.
    Rest(Rest),
    /// Rest this credential for this model for its next 429 backoff (doubling per 429 in a row).
    Backoff,
    /// Count one failure against `scope`'s window; apply `then` when the count passes the
    /// table's `allowed_fails`.
    Count {
        /// Whose failure window counts it ([`Scope::Target`] or [`Scope::Endpoint`]).
        scope: Scope,
        /// The rest once the window is full.
        then: Rest,
    },
}

/// What a non-2xx upstream answer means for the attempt: a failure to fail over from, or
/// `None` for a request error the client gets back as the upstream said it.
pub fn classify(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Option<UpstreamError> {
    match status.as_u16() {
        429 => Some(UpstreamError::RateLimited {
            wait: ratelimit::retry_after(headers, now),
        }),
        401 | 403 => Some(UpstreamError::Credential { status }),
        // 529 is Anthropic's "overloaded": a 5xx by another number.
        404 | 408 | 500..=599 => Some(UpstreamError::Status { status }),
        _ => None,
    }
}

/// The cooldown a failure calls for, given the table's `cooldown`.
pub fn decide(error: &UpstreamError, cooldown: Duration) -> Decision {
    match *error {
        UpstreamError::RateLimited { wait: Some(wait) } => Decision::Rest(Rest {
            scope: Scope::Target,
            wait,
            reason: CooldownReason::RateLimited,
        }),
        UpstreamError::RateLimited { wait: None } => Decision::Backoff,
        UpstreamError::Credential { .. } => Decision::Rest(Rest {
            scope: Scope::Credential,
            wait: cooldown.max(CREDENTIAL_COOLDOWN),
            reason: CooldownReason::Credential,
        }),
        UpstreamError::Connect => Decision::Count {
            scope: Scope::Endpoint,
            then: Rest {
                scope: Scope::Endpoint,
                wait: cooldown,
                reason: CooldownReason::Failures,
            },
        },
        UpstreamError::Timeout { .. }
        | UpstreamError::Status { .. }
        | UpstreamError::Protocol { .. } => Decision::Count {
            scope: Scope::Target,
            then: Rest {
                scope: Scope::Target,
                wait: cooldown,
                reason: CooldownReason::Failures,
            },
        },
    }
}

/// The rest a successful answer calls for: when its headers say the remaining requests or
/// tokens reached zero, until that budget resets.
pub fn after_success(headers: &HeaderMap) -> Option<Rest> {
    ratelimit::exhausted(headers).map(|wait| Rest {
        scope: Scope::Target,
        wait,
        reason: CooldownReason::QuotaExhausted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn answers_classify() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // (status, headers, classification)
        let cases: Vec<(u16, HeaderMap, Option<UpstreamError>)> = vec![
            (
                429,
                headers(&[("retry-after", "7")]),
                Some(UpstreamError::RateLimited {
                    wait: Some(Duration::from_secs(7)),
                }),
            ),
            (
                429,
                headers(&[("retry-after-ms", "250")]),
                Some(UpstreamError::RateLimited {
                    wait: Some(Duration::from_millis(250)),
                }),
            ),
            (
                429,
                HeaderMap::new(),
                Some(UpstreamError::RateLimited { wait: None }),
            ),
            (
                401,
                HeaderMap::new(),
                Some(UpstreamError::Credential {
                    status: StatusCode::UNAUTHORIZED,
                }),
            ),
            (
                403,
                HeaderMap::new(),
                Some(UpstreamError::Credential {
                    status: StatusCode::FORBIDDEN,
                }),
            ),
            (
                404,
                HeaderMap::new(),
                Some(UpstreamError::Status {
                    status: StatusCode::NOT_FOUND,
                }),
            ),
            (
                529,
                HeaderMap::new(),
                Some(UpstreamError::Status {
                    status: StatusCode::from_u16(529).unwrap(),
                }),
            ),
            (400, HeaderMap::new(), None),
            (413, HeaderMap::new(), None),
            (422, HeaderMap::new(), None),
        ];
        for (status, h, want) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, &h, now), want, "{status}");
        }
    }

    #[test]
    fn failures_decide_what_rests() {
        let cooldown = Duration::from_secs(5);
        let rest = |scope, secs, reason| Rest {
            scope,
            wait: Duration::from_secs(secs),
            reason,
        };
        // (failure, decision)
        let cases = [
            (
                UpstreamError::RateLimited {
                    wait: Some(Duration::from_secs(30)),
                },
                Decision::Rest(rest(Scope::Target, 30, CooldownReason::RateLimited)),
            ),
            (UpstreamError::RateLimited { wait: None }, Decision::Backoff),
            (
                UpstreamError::Credential {
                    status: StatusCode::UNAUTHORIZED,
                },
                Decision::Rest(rest(Scope::Credential, 60, CooldownReason::Credential)),
            ),
            (
                UpstreamError::Connect,
                Decision::Count {
                    scope: Scope::Endpoint,
                    then: rest(Scope::Endpoint, 5, CooldownReason::Failures),
                },
            ),
            (
                UpstreamError::Timeout {
                    after: Duration::from_secs(1),
                },
                Decision::Count {
                    scope: Scope::Target,
                    then: rest(Scope::Target, 5, CooldownReason::Failures),
                },
            ),
            (
                UpstreamError::Status {
                    status: StatusCode::BAD_GATEWAY,
                },
                Decision::Count {
                    scope: Scope::Target,
                    then: rest(Scope::Target, 5, CooldownReason::Failures),
                },
            ),
            (
                UpstreamError::Protocol { what: "x" },
                Decision::Count {
                    scope: Scope::Target,
                    then: rest(Scope::Target, 5, CooldownReason::Failures),
                },
            ),
        ];
        for (error, want) in cases {
            assert_eq!(decide(&error, cooldown), want, "{error:?}");
        }
        // A table cooldown longer than the credential minimum wins.
        assert_eq!(
            decide(
                &UpstreamError::Credential {
                    status: StatusCode::FORBIDDEN
                },
                Duration::from_secs(90)
            ),
            Decision::Rest(rest(Scope::Credential, 90, CooldownReason::Credential))
        );
    }

    #[test]
    fn exhausted_budgets_rest_after_success() {
        assert_eq!(after_success(&HeaderMap::new()), None);
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "3s"),
        ]);
        assert_eq!(
            after_success(&h),
            Some(Rest {
                scope: Scope::Target,
                wait: Duration::from_secs(3),
                reason: CooldownReason::QuotaExhausted,
            })
        );
    }
}
