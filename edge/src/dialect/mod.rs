//! Wire dialects: each owns one protocol's shapes and nothing of failover.
//!
//! The attempt engine ([`crate::engine`]) speaks OpenAI chat, completions and embeddings. An
//! inbound dialect turns a client's request into that form and the engine's answer, stream
//! events and errors back into its own shapes; an outbound dialect ([`Outbound`]) turns the
//! engine's request into an upstream's and the upstream's answer or stream back. OpenAI in and
//! OpenAI-compatible out is the fast path: the bytes pass through with only `model` rewritten.

pub mod anthropic;
pub mod canonical;
pub mod gemini;
mod inbound;
pub mod ollama;
pub mod openai;
pub mod responses;
pub mod upstream;

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt as _;

use crate::upstream::sse::{self, Splitter};
use canonical::Event;
use ollama::NativeOp;

pub use inbound::Inbound;

/// The wire one attempt speaks to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// An OpenAI-compatible `/v1`: the client's bytes with `model` rewritten.
    OpenAi,
    /// Ollama's native `/api/*`.
    Ollama(NativeOp),
    /// Anthropic Messages (`{base}/messages`).
    Anthropic,
    /// Gemini `generateContent` (`{base}/models/{model}:generateContent`).
    Gemini,
}

impl Outbound {
    /// A Gemini endpoint's wire: native `generateContent`, unless its base URL is Gemini's
    /// OpenAI-compatible surface (`…/v1beta/openai`), which takes OpenAI bodies as they are.
    pub fn gemini(base_url: &str) -> Self {
        if base_url.trim_end_matches('/').ends_with("/openai") {
            Self::OpenAi
        } else {
            Self::Gemini
        }
    }
}

/// Writes canonical stream events in one dialect's wire format.
pub trait Render: Send + 'static {
    /// Appends what `event` becomes.
    fn event(&mut self, event: Event, out: &mut Vec<u8>);
    /// Appends the stream's closing frames (once, at the end).
    fn end(&mut self, out: &mut Vec<u8>);
}

/// Translates an OpenAI SSE body into `render`'s dialect as it arrives: each chunk's whole
/// events are decoded and written at once, so nothing waits for the end of the stream.
pub fn translate_sse<R: Render>(body: Body, render: R) -> Body {
    struct Translation<R> {
        upstream: axum::body::BodyDataStream,
        splitter: Splitter,
        decoder: openai::stream::Decoder,
        render: R,
        frames: Vec<Bytes>,
        events: Vec<Event>,
        done: bool,
    }
    impl<R: Render> Translation<R> {
        fn take(&mut self, chunk: Bytes, out: &mut Vec<u8>) {
            self.splitter.feed(chunk, &mut self.frames);
            for frame in std::mem::take(&mut self.frames) {
                let Some(data) = sse::data_of(&frame) else {
                    continue;
                };
                if data == b"[DONE]" {
                    self.finish(out);
                    return;
                }
                self.decoder.decode(data, &mut self.events);
                for event in self.events.drain(..) {
                    self.render.event(event, out);
                }
            }
        }
        fn finish(&mut self, out: &mut Vec<u8>) {
            if !self.done {
                self.done = true;
                self.render.end(out);
            }
        }
    }
    let translation = Translation {
        upstream: body.into_data_stream(),
        splitter: Splitter::default(),
        decoder: openai::stream::Decoder::default(),
        render,
        frames: Vec::new(),
        events: Vec::new(),
        done: false,
    };
    let stream = futures::stream::unfold(translation, |mut t| async move {
        while !t.done {
            let mut out = Vec::new();
            match t.upstream.next().await {
                Some(Ok(chunk)) => t.take(chunk, &mut out),
                Some(Err(_)) => {
                    let broken = "the upstream stream broke".to_owned();
                    t.render.event(Event::Error(broken), &mut out);
                    t.finish(&mut out);
                }
                None => t.finish(&mut out),
            }
            if !out.is_empty() {
                return Some((Ok::<_, Infallible>(Bytes::from(out)), t));
            }
        }
        None
    });
    Body::from_stream(stream)
}

/// Unix seconds as RFC 3339 UTC (`2026-01-02T03:04:05Z`).
pub fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
