//! Upstream deployment limits: an (endpoint, credential, model)'s requests and tokens per
//! minute and requests per day, spent from the same cluster-wide leases as client-key limits.
//!
//! The limit is the one declared in config (LiteLLM's `rpm`/`tpm`, or ours) or, when none is,
//! the one the upstream announced in `x-ratelimit-limit-requests` / `-tokens`. Each edge that
//! has seen such a header leases under the same ledger key with that limit, so every edge that
//! sends to the upstream shares one window. A deployment whose window is spent is skipped, so
//! the request goes to the next candidate instead of to an upstream 429.

use http::HeaderMap;

use super::{Limited, Limiter, WindowLimit};
use crate::routing::Candidate;
use crate::upstream::ratelimit;
use crate::upstream::sse::Usage;
use crate::usage::Ticket;

/// The ledger key of one upstream limit: `dep:<endpoint>:<credential>:<model>:<unit>`.
pub fn ledger_key(endpoint: &str, credential: &str, model: &str, unit: &str) -> String {
    format!("dep:{endpoint}:{credential}:{model}:{unit}")
}

/// Remembers the limits an upstream announced in `headers` for `candidate`'s credential. They
/// count as per minute (OpenAI's meaning; Groq's `-requests` is per day, which read per minute
/// only ever limits less than the upstream does).
pub fn learn(candidate: &Candidate, headers: &HeaderMap) {
    let (rpm, tpm) = ratelimit::announced_limits(headers);
    if rpm.is_none() && tpm.is_none() {
        return;
    }
    if let Some(cred) = candidate.deployment.target.creds.get(candidate.slot) {
        cred.learn(rpm, tpm);
    }
}

/// Tokens reserved at admission, to be settled with the real usage once the response ends.
/// Dropped without settling, the reservation stands (the estimate is charged).
#[derive(Debug)]
pub struct TokenCharge {
    limiter: Limiter,
    limit: WindowLimit,
    reserved: u64,
}

impl TokenCharge {
    /// A reservation of `reserved` tokens of `limit`.
    pub fn new(limiter: Limiter, limit: WindowLimit, reserved: u64) -> Self {
        Self {
            limiter,
            limit,
            reserved,
        }
    }

    /// Replaces the reservation with `actual` tokens: refunds or charges the difference.
    pub fn settle(self, actual: u64) {
        self.limiter.settle(&self.limit, self.reserved, actual);
    }
}

/// Every token reservation one response carries (the key's and the deployment's), and the
/// request's usage ticket.
#[derive(Debug, Default)]
pub struct Settlement {
    charges: Vec<TokenCharge>,
    ticket: Option<Ticket>,
}

impl Settlement {
    /// Adds a reservation.
    pub fn push(&mut self, charge: Option<TokenCharge>) {
        self.charges.extend(charge);
    }

    /// Adds the request's usage ticket.
    pub fn record(&mut self, ticket: Option<Ticket>) {
        self.ticket = ticket;
    }

    /// Whether there is nothing to settle.
    pub fn is_empty(&self) -> bool {
        self.charges.is_empty() && self.ticket.is_none()
    }

    /// Settles every reservation with the response's real usage (with `None`, the upstream
    /// reported none, the estimates stand) and records the usage.
    pub fn settle(self, usage: Option<Usage>) {
        if let Some(u) = usage {
            let actual = u.prompt_tokens.saturating_add(u.completion_tokens);
            for charge in self.charges {
                charge.settle(actual);
            }
        }
        if let Some(ticket) = self.ticket {
            ticket.settle(usage);
        }
    }
}

impl Limiter {
    /// Admits one request of about `tokens` tokens to `candidate`'s upstream limits: requests
    /// per day, per minute, then tokens per minute. Nothing is taken when one of them refuses
    /// (what an earlier one took is given back). Returns the token reservation to settle.
    /// A deployment without limits costs nothing here.
    pub async fn admit_upstream(
        &self,
        candidate: &Candidate,
        tokens: u64,
    ) -> Result<Option<TokenCharge>, Limited> {
        let d = &candidate.deployment;
        let limits = d.limits(candidate.slot);
        if !limits.any() {
            return Ok(None);
        }
        let key = |unit| {
            ledger_key(
                &d.endpoint.id,
                candidate.credential_id(),
                &d.upstream_model,
                unit,
            )
        };
        let mut taken: Vec<WindowLimit> = Vec::new();
        let give_back = |taken: Vec<WindowLimit>| {
            for limit in taken {
                self.settle(&limit, 1, 0);
            }
        };
        for (limit, unit, per_day) in [(limits.rpd, "rpd", true), (limits.rpm, "rpm", false)] {
            if limit == 0 {
                continue;
            }
            let window = if per_day {
                WindowLimit::per_day(key(unit), limit)
            } else {
                WindowLimit::per_minute(key(unit), limit)
            };
            if let Err(refused) = self.admit(&window, 1).await {
                give_back(taken);
                return Err(refused);
            }
            taken.push(window);
        }
        if limits.tpm == 0 {
            return Ok(None);
        }
        let window = WindowLimit::per_minute(key("tpm"), limits.tpm);
        // A request larger than the whole window could never pass; charge it the window.
        let cost = tokens.clamp(1, limits.tpm);
        match self.admit(&window, cost).await {
            Ok(_) => Ok(Some(TokenCharge::new(self.clone(), window, cost))),
            Err(refused) => {
                give_back(taken);
                Err(refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::RoutingTable;
    use std::time::Duration;
    use switchyard_proto::v1;

    /// A group `m` on one credential-less endpoint whose deployment declares `limits`.
    fn table(limits: v1::Limits) -> RoutingTable {
        let wire = v1::RoutingTable {
            version: 1,
            endpoints: vec![v1::RouteEndpoint {
                id: "up".into(),
                base_url: "http://127.0.0.1:9/v1".into(),
                healthy: true,
                ..Default::default()
            }],
            models: vec![v1::ModelRoute {
                name: "m".into(),
                deployments: vec![v1::Deployment {
                    endpoint_id: "up".into(),
                    upstream_model: "u".into(),
                    weight: 1,
                    limits: Some(limits),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        RoutingTable::compile(&wire, None)
    }

    fn candidate(t: &RoutingTable) -> Candidate {
        Candidate {
            deployment: t.models["m"].deployments[0].clone(),
            slot: 0,
        }
    }

    /// No control plane answers (port 9 on loopback refuses), so the limiter spends this
    /// edge's whole share, which with one edge is the limit.
    fn limiter() -> Limiter {
        Limiter::new("http://127.0.0.1:9".into(), "edge-test".into())
    }

    #[tokio::test]
    async fn declared_rpm_refuses_past_the_limit_and_says_when() {
        let t = table(v1::Limits {
            rpm: 3,
            ..Default::default()
        });
        let (limiter, c) = (limiter(), candidate(&t));
        for i in 0..3 {
            assert!(limiter.admit_upstream(&c, 10).await.is_ok(), "request {i}");
        }
        let refused = limiter.admit_upstream(&c, 10).await.unwrap_err();
        assert_eq!(refused.key, "dep:up::u:rpm");
        assert!(refused.retry_after <= Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_refused_token_limit_gives_the_request_back() {
        let t = table(v1::Limits {
            rpm: 2,
            tpm: 100,
            ..Default::default()
        });
        let (limiter, c) = (limiter(), candidate(&t));
        let charge = limiter.admit_upstream(&c, 90).await.unwrap();
        assert!(charge.is_some());
        // 90 of 100 tokens reserved: a 20-token request does not fit, and its request unit
        // comes back, so the next small one still passes the rpm of 2.
        assert!(limiter.admit_upstream(&c, 20).await.is_err());
        // Settling with the real usage (5 tokens) frees the rest of the reservation.
        charge.unwrap().settle(5);
        assert!(limiter.admit_upstream(&c, 20).await.is_ok());
        assert!(
            limiter.admit_upstream(&c, 1).await.is_err(),
            "rpm 2 is spent"
        );
    }

    #[tokio::test]
    async fn learned_limits_apply_only_where_none_is_declared() {
        let t = table(v1::Limits::default());
        let (limiter, c) = (limiter(), candidate(&t));
        for _ in 0..5 {
            assert!(limiter.admit_upstream(&c, 1).await.unwrap().is_none());
        }
        c.deployment.target.creds[0].learn(Some(2), None);
        assert!(limiter.admit_upstream(&c, 1).await.is_ok());
        assert!(limiter.admit_upstream(&c, 1).await.is_ok());
        assert!(limiter.admit_upstream(&c, 1).await.is_err());
    }

    #[test]
    fn settlement_without_usage_keeps_the_estimate() {
        let limiter = limiter();
        let limit = WindowLimit::per_minute("key:k:tpm".into(), 1_000);
        let now = super::super::now_ms();
        let before = limiter.quota(&limit, now);
        let mut s = Settlement::default();
        assert!(s.is_empty());
        s.push(Some(TokenCharge::new(limiter.clone(), limit.clone(), 100)));
        s.settle(None);
        assert_eq!(limiter.quota(&limit, now), before);
    }
}
