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
        for (quota, unit) in [(self.requests, "requests"), (self.tokens, "tokens")] {
            let Some(quota) = quota else { continue };
            set(
                headers,
                &format!("x-ratelimit-limit-{unit}"),
                quota.limit.to_string(),
            );
            set(
                headers,
                &format!("x-ratelimit-remaining-{unit}"),
                quota.remaining.to_string(),
            );
            set(
                headers,
                &format!("x-ratelimit-reset-{unit}"),
                go_duration(quota.reset),
            );
        }
    }
}

fn set(headers: &mut HeaderMap, name: &str, value: String) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.insert(name, value);
    }
}

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
