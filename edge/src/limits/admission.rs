//! Admitting one request against its client key's cluster-wide limits, and the
//! `x-ratelimit-*` headers that tell the client where it stands.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::upstream::TokenCharge;
use super::{Limiter, Quota, SlotGuard, WindowLimit};
use crate::auth::ClientKey;
use crate::error::ApiError;

/// What admission holds for the life of one request.
#[derive(Debug, Default)]
pub struct Admission {
    /// The concurrency slot, released when the request ends.
    _slot: Option<SlotGuard>,
    requests: Option<Quota>,
    tokens: Option<Quota>,
    /// The key's token reservation, settled when the response ends.
    token_charge: Option<TokenCharge>,
}

/// Checks `key`'s limits for a request estimated at `tokens` tokens: concurrency first (it is
/// given back if a windowed limit refuses), then requests per day, per minute, then tokens.
pub async fn admit(limiter: &Limiter, key: &ClientKey, tokens: u64) -> Result<Admission, ApiError> {
    let mut admission = Admission::default();
    if key.max_concurrent > 0 {
        let slot = limiter
            .acquire_slot(&format!("key:{}:concurrency", key.id), key.max_concurrent)
            .await
            .map_err(|_| ApiError::KeyConcurrency {
                limit: key.max_concurrent,
            })?;
        admission._slot = Some(slot);
    }
    if key.rpd > 0 {
        let limit = WindowLimit::per_day(format!("key:{}:rpd", key.id), key.rpd);
        take(limiter, &limit, 1, "requests per day").await?;
    }
    if key.rpm > 0 {
        let limit = WindowLimit::per_minute(format!("key:{}:rpm", key.id), key.rpm);
        admission.requests = Some(take(limiter, &limit, 1, "requests per minute").await?);
    }
    if key.tpm > 0 {
        let limit = WindowLimit::per_minute(format!("key:{}:tpm", key.id), key.tpm);
        // A request larger than the whole window could never pass; charge it the window.
        let cost = tokens.clamp(1, key.tpm);
        admission.tokens = Some(take(limiter, &limit, cost, "tokens per minute").await?);
        admission.token_charge = Some(TokenCharge::new(limiter.clone(), limit, cost));
    }
    Ok(admission)
}

async fn take(
    limiter: &Limiter,
    limit: &WindowLimit,
    cost: u64,
    unit: &'static str,
) -> Result<Quota, ApiError> {
    limiter
        .admit(limit, cost)
        .await
        .map_err(|limited| ApiError::KeyRateLimited {
            limit: limit.limit,
            unit,
            retry_after_ms: u64::try_from(limited.retry_after.as_millis()).unwrap_or(u64::MAX),
        })
}

impl Admission {
    /// Takes the key's token reservation, to settle with the real usage.
    pub fn take_token_charge(&mut self) -> Option<TokenCharge> {
        self.token_charge.take()
    }

    /// Keeps the concurrency slot (if any) until `response`'s body is done or dropped.
    pub fn hold_until_sent(self, response: Response) -> Response {
        let Some(slot) = self._slot else {
            return response;
        };
        let (parts, body) = response.into_parts();
        let stream = body.into_data_stream().map(move |chunk| {
            // The closure owns the slot; it is released when the stream is dropped.
            let _held = &slot;
            chunk
        });
        Response::from_parts(parts, Body::from_stream(stream))
    }

    /// Sets OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the key's
    /// limits, replacing whatever the upstream said about its own.
    pub fn headers(&self, headers: &mut HeaderMap) {
        for (quota, [limit, remaining, reset]) in [
            (self.requests, REQUEST_HEADERS),
            (self.tokens, TOKEN_HEADERS),
        ] {
            let Some(quota) = quota else { continue };
            headers.insert(limit, HeaderValue::from(quota.limit));
            headers.insert(remaining, HeaderValue::from(quota.remaining));
            if let Ok(value) = HeaderValue::try_from(go_duration(quota.reset)) {
                headers.insert(reset, value);
            }
        }
    }
}

/// `x-ratelimit-{limit,remaining,reset}-requests`.
const REQUEST_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];
/// `x-ratelimit-{limit,remaining,reset}-tokens`.
const TOKEN_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

/// A duration as OpenAI writes resets: `1s`, `6m0s`, `120ms`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (m, s) = (secs / 60, secs % 60);
    let frac = d.subsec_millis();
    let s = if frac == 0 {
        format!("{s}s")
    } else {
        let digits = format!("{frac:03}");
        format!("{s}.{}s", digits.trim_end_matches('0'))
    };
    if m == 0 { s } else { format!("{m}m{s}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_keys_limits() {
        let quota = |limit, remaining, ms| Quota {
            limit,
            remaining,
            reset: Duration::from_millis(ms),
        };
        let admission = Admission {
            requests: Some(quota(600, 599, 86_400)),
            tokens: Some(quota(10_000, 9_000, 500)),
            ..Admission::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit-requests", HeaderValue::from_static("30"));
        admission.headers(&mut headers);
        let got = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap();
        assert_eq!(
            got("x-ratelimit-limit-requests"),
            "600",
            "the key's, not the upstream's"
        );
        assert_eq!(got("x-ratelimit-remaining-requests"), "599");
        assert_eq!(got("x-ratelimit-reset-requests"), "1m26.4s");
        assert_eq!(got("x-ratelimit-limit-tokens"), "10000");
        assert_eq!(got("x-ratelimit-remaining-tokens"), "9000");
        assert_eq!(got("x-ratelimit-reset-tokens"), "500ms");
    }

    #[test]
    fn resets_read_like_openais() {
        let cases = [
            (Duration::from_millis(120), "120ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_millis(86_400), "1m26.4s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }
}
