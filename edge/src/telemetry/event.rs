//! The one record of a finished request that every telemetry sink reads: LLMProxy's usage
//! event fields (what the webhook and the request log write) plus what a trace needs (the
//! upstream attempts, the W3C parent). Built once per request when a sink is configured; it
//! never holds a prompt, a completion, a client key or an upstream credential.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::metrics::AttemptOutcome;

/// A finished request, as the sinks see it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The client's `x-request-id` when it sent a short plain one, else `req_<16 hex>`.
    #[serde(serialize_with = "text")]
    pub request_id: Arc<str>,
    /// The client key's id (`-` without keys, `bootstrap` for the bootstrap key).
    #[serde(serialize_with = "text")]
    pub key_id: Arc<str>,
    /// The public model group asked for.
    #[serde(serialize_with = "text")]
    pub model: Arc<str>,
    /// `<endpoint>/<upstream model>` that served; empty when none did.
    #[serde(serialize_with = "text")]
    pub deployment: Arc<str>,
    /// Input tokens the upstream reported (0 when it reported none).
    pub prompt_tokens: u64,
    /// Output tokens the upstream reported.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Whether the client asked for a stream.
    pub is_stream: bool,
    /// The HTTP status the client got; 499 when it went away before the answer ended.
    pub status: u16,
    /// Milliseconds from admission to the end of the answer (the last byte of a stream).
    pub latency_ms: u64,
    /// What the request cost, US dollars.
    pub cost_usd: f64,
    /// When the request arrived, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// The operation (`chat`, `text_completion`, `embeddings`), in GenAI's words.
    pub operation: &'static str,
    /// Unix nanoseconds at arrival and at the end (for spans).
    #[serde(skip)]
    pub span: (u64, u64),
    /// The caller's W3C trace context, when it sent a valid `traceparent`.
    #[serde(skip)]
    pub parent: Option<TraceParent>,
    /// Every upstream try, in order.
    #[serde(skip)]
    pub attempts: Vec<AttemptRecord>,
}

/// Writes an `Arc<str>` as a string (serde's `rc` feature stays off).
fn text<S: serde::Serializer>(value: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

/// One upstream try within a request.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The endpoint id.
    pub endpoint: Arc<str>,
    /// The model id sent upstream.
    pub upstream_model: Arc<str>,
    /// GenAI's provider name for the endpoint's kind.
    pub provider: &'static str,
    /// Unix nanoseconds at the start and the end (0 until it ended).
    pub span: (u64, u64),
    /// How it failed; `None` for the try that answered.
    pub failure: Option<AttemptOutcome>,
}

/// A parsed W3C `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id, 16 bytes, never all zero.
    pub trace_id: u128,
    /// The caller's span id, never zero.
    pub span_id: u64,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; anything else (other versions with more fields
    /// included, per the spec's forward-compatibility rule only the first four are read) is
    /// `None`, and the request starts a trace of its own.
    pub fn parse(header: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(header).ok()?.trim();
        let mut parts = text.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some())
        {
            return None;
        }
        if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
            return None;
        }
        let parent = Self {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parent.trace_id != 0 && parent.span_id != 0).then_some(parent)
    }
}

/// The request id to report: the client's `x-request-id` when it is 1..=64 characters of
/// `[A-Za-z0-9._:-]` (anything else could smuggle text into logs), else a fresh `req_<hex>`.
pub fn request_id(header: Option<&[u8]>) -> Arc<str> {
    let plain = |b: &[u8]| {
        (1..=64).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
    };
    match header.filter(|h| plain(h)) {
        Some(h) => Arc::from(String::from_utf8_lossy(h).as_ref()),
        None => Arc::from(format!("req_{:016x}", fastrand::u64(..))),
    }
}

/// Unix nanoseconds now.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `unix_ns` as RFC 3339 UTC with milliseconds: `2026-01-30T10:30:00.123Z`.
pub fn rfc3339(unix_ns: u64) -> String {
    let ms = unix_ns / 1_000_000;
    let secs = ms / 1_000;
    let (year, month, day) = crate::limits::spend::civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        ms % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_strictly() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            TraceParent::parse(good),
            Some(TraceParent {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                span_id: 0x00f067aa0ba902b7,
                flags: 1,
            })
        );
        let bad: [&[u8]; 7] = [
            b"",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ];
        for header in bad {
            assert_eq!(TraceParent::parse(header), None, "{header:?}");
        }
        // A later version may carry more fields; the first four are read.
        assert!(
            TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab")
                .is_some()
        );
    }

    #[test]
    fn request_ids_are_taken_only_when_plain() {
        assert_eq!(&*request_id(Some(b"abc-123")), "abc-123");
        for odd in [&b"has space"[..], b"", b"quote\"", &[b'a'; 65]] {
            let id = request_id(Some(odd));
            assert!(id.starts_with("req_") && id.len() == 20, "{id}");
        }
        assert!(request_id(None).starts_with("req_"));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2026-01-30T10:30:00.123Z
        assert_eq!(
            rfc3339(1_769_769_000_123_000_000),
            "2026-01-30T10:30:00.123Z"
        );
    }
}
