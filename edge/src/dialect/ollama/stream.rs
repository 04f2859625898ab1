//! Ollama's NDJSON stream as OpenAI SSE chunks, line by line as it arrives.

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use serde::Serialize;

use super::request::to_vec;
use super::response::{NativeChat, ToolCallOut, UsageOut, finish_reason, tool_calls_out};
use super::*;
use crate::upstream::relay::ByteStream;
use crate::upstream::sse::{self, Usage};

/// Translates a streamed `/api/chat` (or `/api/generate`) answer, line by line, into OpenAI SSE
/// chunks: chat deltas (the first with the assistant role, then content and tool calls) or
/// text completion pieces, the final one with `finish_reason`, then a usage-only chunk and
/// `[DONE]`. The usage chunk is always written; the relay removes it when the client did not
/// ask for usage, after metering it.
#[derive(Debug)]
pub struct NativeStream {
    id: String,
    created: i64,
    model: String,
    ids: Ids,
    /// Text completions (`/api/generate`) rather than chat.
    text: bool,
    /// The first event is out (for chat, the one with the role).
    started: bool,
    tool_calls: usize,
    finished: bool,
}

#[derive(Serialize)]
pub(super) struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

/// A text completion choice, whole or streamed.
#[derive(Serialize)]
pub(super) struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
pub(super) struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
pub(super) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut>,
}

impl NativeStream {
    /// A chat stream translator; `model` is used until the upstream names its own.
    pub fn chat(model: &str, created: i64, mut ids: Ids) -> Self {
        Self {
            id: ids.completion(),
            created,
            model: model.to_owned(),
            ids,
            text: false,
            started: false,
            tool_calls: 0,
            finished: false,
        }
    }

    /// A text completion stream translator.
    pub fn completion(model: &str, created: i64, mut ids: Ids) -> Self {
        Self {
            id: ids.text_completion(),
            text: true,
            ..Self::chat(model, created, ids)
        }
    }

    /// Whether the stream is over (`[DONE]` or an error event written).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Translates one NDJSON line, appending SSE events to `out`. Lines after the end are
    /// ignored; an upstream error line or a malformed line ends the stream with an error event.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.trim_ascii();
        if self.finished || line.is_empty() {
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<NativeChat>(line) else {
            self.fail(
                "the upstream sent a malformed stream line",
                "upstream_malformed_stream",
                out,
            );
            return;
        };
        if let Some(message) = chunk.error_message() {
            self.fail(&message, "upstream_error", out);
            return;
        }
        if let Some(model) = &chunk.model
            && !self.started
        {
            self.model.clone_from(model);
        }
        if self.text {
            self.text_line(chunk, out);
            return;
        }
        let usage = chunk.usage();
        let message = chunk.message.unwrap_or_default();
        let content = message.content.unwrap_or_default();
        let thinking = message.thinking.unwrap_or_default();
        let calls = tool_calls_out(
            message.tool_calls.unwrap_or_default(),
            &mut self.ids,
            Some(&mut self.tool_calls),
        );
        if !self.started || !content.is_empty() || !thinking.is_empty() || !calls.is_empty() {
            let first = !self.started;
            self.started = true;
            let delta = Delta {
                role: first.then_some("assistant"),
                content: (!content.is_empty() || (first && calls.is_empty()))
                    .then_some(content.as_str()),
                reasoning: (!thinking.is_empty()).then_some(thinking.as_str()),
                tool_calls: calls,
            };
            self.event(vec![choice(delta, None)], None, out);
        }
        if chunk.done {
            let reason = finish_reason(self.tool_calls > 0, chunk.done_reason.as_deref());
            self.event(vec![choice(Delta::default(), Some(reason))], None, out);
            self.end(usage, out);
        }
    }

    /// One `/api/generate` line: its text as a completion piece; at the end the finish reason.
    fn text_line(&mut self, chunk: NativeChat, out: &mut Vec<u8>) {
        let text = chunk.response.as_deref().unwrap_or_default();
        if !text.is_empty() {
            self.started = true;
            self.event(vec![text_choice(text, None)], None, out);
        }
        if chunk.done {
            let reason = finish_reason(false, chunk.done_reason.as_deref());
            self.event(vec![text_choice("", Some(reason))], None, out);
            self.end(chunk.usage(), out);
        }
    }

    /// The usage-only chunk and `[DONE]`.
    fn end(&mut self, usage: Usage, out: &mut Vec<u8>) {
        self.event(Vec::<TextChoice<'_>>::new(), Some(usage.into()), out);
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.finished = true;
    }

    fn event<C: Serialize>(&self, choices: Vec<C>, usage: Option<UsageOut>, out: &mut Vec<u8>) {
        let chunk = Chunk {
            id: &self.id,
            object: if self.text {
                "text_completion"
            } else {
                "chat.completion.chunk"
            },
            created: self.created,
            model: &self.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&to_vec(&chunk));
        out.extend_from_slice(b"\n\n");
    }

    /// Ends the stream with an OpenAI error event and `[DONE]`.
    pub fn fail(&mut self, message: &str, code: &str, out: &mut Vec<u8>) {
        if !self.finished {
            out.extend_from_slice(&sse::error_event(message, code));
            self.finished = true;
        }
    }
}

pub(super) fn choice<'a>(delta: Delta<'a>, finish_reason: Option<&'static str>) -> ChunkChoice<'a> {
    ChunkChoice {
        index: 0,
        delta,
        logprobs: None,
        finish_reason,
    }
}

pub(super) fn text_choice<'a>(
    text: &'a str,
    finish_reason: Option<&'static str>,
) -> TextChoice<'a> {
    TextChoice {
        text,
        index: 0,
        logprobs: None,
        finish_reason,
    }
}

/// Turns an NDJSON `/api/chat` or `/api/generate` body into an SSE body as it arrives: each upstream chunk's whole
/// lines are translated and passed on at once (nothing waits for the end). A line longer than
/// `max_line` ends the stream with an error event; upstream read errors pass through for the
/// relay to report.
pub fn sse_from_ndjson(
    upstream: ByteStream,
    translator: NativeStream,
    max_line: usize,
) -> ByteStream {
    struct Lines {
        upstream: ByteStream,
        translator: NativeStream,
        pending: BytesMut,
        max_line: usize,
        ended: bool,
    }
    let lines = Lines {
        upstream,
        translator,
        pending: BytesMut::new(),
        max_line,
        ended: false,
    };
    Box::pin(futures::stream::unfold(lines, |mut s| async move {
        loop {
            if s.ended || s.translator.finished() {
                return None;
            }
            let mut out = Vec::new();
            match s.upstream.next().await {
                None => {
                    // A last line without its newline still counts.
                    s.ended = true;
                    let rest = s.pending.split();
                    s.translator.line(&rest, &mut out);
                }
                Some(Err(e)) => {
                    s.ended = true;
                    return Some((Err(e), s));
                }
                Some(Ok(chunk)) => {
                    let mut start = 0;
                    while let Some(i) = memchr::memchr(b'\n', &chunk[start..]) {
                        let end = start + i;
                        if s.pending.is_empty() {
                            s.translator.line(&chunk[start..end], &mut out);
                        } else {
                            s.pending.extend_from_slice(&chunk[start..end]);
                            let line = s.pending.split();
                            s.translator.line(&line, &mut out);
                        }
                        start = end + 1;
                    }
                    s.pending.extend_from_slice(&chunk[start..]);
                    if s.pending.len() > s.max_line {
                        s.translator.fail(
                            "the upstream stream line exceeded the gateway's size limit",
                            "upstream_response_too_large",
                            &mut out,
                        );
                    }
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), s));
            }
        }
    }))
}
