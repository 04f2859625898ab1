//! Ollama's native API as an outbound dialect, for Ollama servers without the OpenAI surface
//! (older releases, or a proxy exposing only `/api/*`): an OpenAI chat, text completion or
//! embeddings request becomes `/api/chat`, `/api/generate` or `/api/embed` ([`request`]), and
//! the answer ([`response`]) or NDJSON stream ([`stream`]) becomes exactly what an OpenAI
//! endpoint sends. This file owns which servers lack the OpenAI surface. Everything here is
//! pure: the clock and ids come in as arguments.

pub mod inbound;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::metrics::Operation;

pub use request::{NativeRequest, chat_request, completion_request, embed_request};
pub use response::{
    Ids, Translated, chat_response, completion_response, embed_response, error_body,
};
pub use stream::{NativeStream, sse_from_ndjson};

/// How long an endpoint is remembered to lack the OpenAI surface before `/v1` is tried again.
pub const REPROBE_AFTER_MS: i64 = 5 * 60 * 1000;

/// `system_fingerprint` on translated answers (what Ollama's own OpenAI surface sends).
const FINGERPRINT: &str = "fp_ollama";

/// A native operation the edge can fall back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeOp {
    /// `/v1/chat/completions` → `/api/chat`.
    Chat,
    /// `/v1/completions` → `/api/generate`.
    Generate,
    /// `/v1/embeddings` → `/api/embed`.
    Embed,
}

impl NativeOp {
    /// The native operation for a `/v1` route, when there is one.
    pub fn of(route: Operation) -> Option<Self> {
        match route {
            Operation::Chat => Some(Self::Chat),
            Operation::Completions => Some(Self::Generate),
            Operation::Embeddings => Some(Self::Embed),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Chat => "/api/chat",
            Self::Generate => "/api/generate",
            Self::Embed => "/api/embed",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Chat => 0,
            Self::Generate => 1,
            Self::Embed => 2,
        }
    }
}

/// The native URI for `op` on the server whose OpenAI base URL is `base_url` (`…/v1`, or the
/// bare server root); `None` when it does not parse.
pub fn native_uri(base_url: &str, op: NativeOp) -> Option<http::Uri> {
    let base = base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    format!("{root}{}", op.path()).parse().ok()
}

/// Whether a 404 from `/v1/…` means the OpenAI surface is absent rather than the model: Ollama's
/// surface reports a missing model as an OpenAI error object, while a server or proxy without
/// the route answers plain text, HTML, or a non-OpenAI body.
pub fn surface_absent(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct OpenAiError {
        error: Map<String, Value>,
    }
    serde_json::from_slice::<OpenAiError>(body).map_or(true, |e| e.error.is_empty())
}

/// Per server (keyed by base URL) and operation: until when its OpenAI surface is known to be
/// absent, so later requests go straight to the native API until the next probe.
#[derive(Debug, Default)]
pub struct Surfaces {
    absent_until: RwLock<HashMap<Arc<str>, [i64; 3]>>,
}

impl Surfaces {
    /// Whether requests for `op` on `base_url` should go to the native API at `now_ms`.
    pub fn go_native(&self, base_url: &str, op: NativeOp, now_ms: i64) -> bool {
        let map = self
            .absent_until
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(base_url).is_some_and(|u| u[op.index()] > now_ms)
    }

    /// Remembers that `base_url` lacks the OpenAI surface for `op`, until a re-probe is due.
    pub fn mark_absent(&self, base_url: &Arc<str>, op: NativeOp, now_ms: i64) {
        let mut map = self
            .absent_until
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(base_url.clone()).or_default()[op.index()] = now_ms + REPROBE_AFTER_MS;
    }
}

/// Why a request cannot be expressed in the native API: the client's error (400), naming the
/// parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The offending parameter.
    pub param: &'static str,
    /// What is wrong.
    pub message: &'static str,
}

const fn refuse(param: &'static str, message: &'static str) -> Refusal {
    Refusal { param, message }
}
