//! The outbound side of every dialect, as the attempt engine sees it: the upstream request for
//! an OpenAI-shaped one ([`Outbound::build`]), and the upstream's stream, whole answer or error
//! in OpenAI's shape ([`Outbound::stream`], [`Outbound::whole`], [`Outbound::error`]). Streams
//! are translated event by event as they arrive ([`to_openai_sse`]).

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, Uri};
use serde_json::Value;

use super::canonical::{Event, Request};
use super::ollama::{self, Ids, NativeOp, NativeStream};
use super::openai::stream::Encoder;
use super::{Outbound, anthropic, gemini, openai};
use crate::error::ApiError;
use crate::metrics::Operation;
use crate::routing::Endpoint;
use crate::upstream::RequestBody;
use crate::upstream::relay::ByteStream;
use crate::upstream::sse::{self, Splitter, Usage};

/// An upstream request, built in its dialect.
#[derive(Debug)]
pub struct Built {
    /// Where it goes.
    pub uri: Uri,
    /// The body.
    pub body: Vec<u8>,
    /// Embeddings on Ollama's native API: the client asked for base64 vectors.
    pub base64: bool,
    /// Client fields the dialect has no meaning for (dropped; for a debug log).
    pub dropped: Vec<String>,
}

/// Why a request could not be built.
#[derive(Debug)]
pub enum Unbuilt {
    /// The endpoint's base URL gives no usable URI.
    NoUri,
    /// The dialect cannot express the request: the client's error.
    Refused(ApiError),
}

impl Outbound {
    /// The upstream request for `request` on `endpoint`, naming `model` and without the
    /// `dropped` fields; `add_usage` asks an OpenAI-compatible stream for its usage chunk.
    pub fn build(
        self,
        endpoint: &Endpoint,
        operation: Operation,
        request: &RequestBody<'_>,
        (model, dropped): (&str, &[String]),
        add_usage: bool,
    ) -> Result<Built, Unbuilt> {
        let built = |uri: Option<Uri>, body: Vec<u8>| {
            Ok(Built {
                uri: uri.ok_or(Unbuilt::NoUri)?,
                body,
                base64: false,
                dropped: Vec::new(),
            })
        };
        match self {
            Self::OpenAi => built(
                endpoint.uris.as_ref().map(|u| u[operation.index()].clone()),
                request.upstream_body_without(model, add_usage, dropped),
            ),
            Self::Ollama(op) => {
                let openai = request.upstream_body_without(model, false, dropped);
                let native = match op {
                    NativeOp::Chat => ollama::chat_request(&openai),
                    NativeOp::Generate => ollama::completion_request(&openai),
                    NativeOp::Embed => ollama::embed_request(&openai),
                }
                .map_err(|refusal| {
                    Unbuilt::Refused(ApiError::InvalidParam {
                        param: refusal.param,
                        message: refusal.message,
                    })
                })?;
                Ok(Built {
                    uri: ollama::native_uri(&endpoint.base_url, op).ok_or(Unbuilt::NoUri)?,
                    body: native.body,
                    base64: native.base64,
                    dropped: native.dropped,
                })
            }
            Self::Anthropic | Self::Gemini => {
                if operation != Operation::Chat {
                    let api = if self == Self::Gemini {
                        "Gemini's generateContent API"
                    } else {
                        "Anthropic's Messages API"
                    };
                    return Err(Unbuilt::Refused(ApiError::InvalidRequest {
                        message: format!(
                            "this model is served by {api}, which has no {}",
                            operation.path()
                        ),
                    }));
                }
                let canonical = canonical_of(request, model, dropped)?;
                if self == Self::Gemini {
                    let body = gemini::request::encode(&canonical);
                    let uri = gemini::request::uri(&endpoint.base_url, model, canonical.stream);
                    return built(uri, serde_json::to_vec(&body).unwrap_or_default());
                }
                let body =
                    serde_json::to_vec(&anthropic::request::encode(&canonical)).unwrap_or_default();
                built(messages_uri(&endpoint.base_url), body)
            }
        }
    }

    /// Whether the upstream's answer is a stream to relay as it comes.
    pub fn streams(self, headers: &HeaderMap, request: &RequestBody<'_>) -> bool {
        match self {
            Self::OpenAi | Self::Anthropic | Self::Gemini => headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("text/event-stream")),
            Self::Ollama(op) => op != NativeOp::Embed && request.stream,
        }
    }

    /// The upstream's stream as OpenAI SSE, translated as it arrives. A translated stream
    /// always carries the usage chunk (the relay removes it unless the client asked).
    pub fn stream(
        self,
        raw: ByteStream,
        model: &str,
        created: i64,
        mut ids: Ids,
        max_line: usize,
    ) -> ByteStream {
        match self {
            Self::OpenAi => raw,
            Self::Ollama(op) => {
                let translator = if op == NativeOp::Chat {
                    NativeStream::chat(model, created, ids)
                } else {
                    NativeStream::completion(model, created, ids)
                };
                ollama::sse_from_ndjson(raw, translator, max_line)
            }
            Self::Anthropic => {
                let encoder = Encoder::new(ids.completion(), model.to_owned(), created);
                to_openai_sse(raw, anthropic::stream::Decoder::default(), encoder)
            }
            Self::Gemini => {
                let encoder = Encoder::new(ids.completion(), model.to_owned(), created);
                to_openai_sse(raw, gemini::stream::Decoder::default(), encoder)
            }
        }
    }

    /// A whole upstream answer in OpenAI's shape, with its usage; `Err` says what was wrong.
    pub fn whole(
        self,
        whole: Bytes,
        model: &str,
        created: i64,
        mut ids: Ids,
        base64: bool,
    ) -> Result<(Bytes, Option<Usage>), &'static str> {
        let translated = match self {
            Self::OpenAi => {
                return relay_usage(&whole)
                    .map(|usage| (whole, usage))
                    .ok_or("the upstream answered with malformed JSON");
            }
            Self::Ollama(op) => match op {
                NativeOp::Chat => ollama::chat_response(&whole, model, created, &mut ids),
                NativeOp::Generate => ollama::completion_response(&whole, model, created, &mut ids),
                NativeOp::Embed => ollama::embed_response(&whole, model, base64),
            }
            .map(|a| (a.body, Some(a.usage))),
            Self::Anthropic | Self::Gemini => {
                let answer = if self == Self::Gemini {
                    gemini::response::decode(&whole).map(|mut answer| {
                        answer.id = ids.completion();
                        answer
                    })
                } else {
                    anthropic::response::decode(&whole)
                };
                answer.map(|answer| {
                    let body = openai::response::encode(&answer, created).to_string();
                    (Bytes::from(body), Some(usage_of(answer.usage)))
                })
            }
        };
        translated.ok_or("the upstream's answer was malformed")
    }

    /// An upstream's error answer as OpenAI error JSON for the same status.
    pub fn error(self, status: u16, whole: Bytes) -> Bytes {
        match self {
            Self::OpenAi => whole,
            Self::Ollama(_) => ollama::error_body(status, &whole),
            Self::Anthropic | Self::Gemini => {
                let message = if self == Self::Gemini {
                    gemini::response::error_message(&whole)
                } else {
                    anthropic::response::error_message(&whole)
                };
                let message = message.unwrap_or_else(|| format!("the upstream answered {status}"));
                openai::response::error_body(status, &message)
            }
        }
    }

    /// What a non-2xx answer means for failover (`None`: the client's error, relayed). Gemini
    /// names its failures in the body; every other upstream is judged by the head alone.
    pub fn classify(
        self,
        status: http::StatusCode,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now: std::time::SystemTime,
    ) -> Option<crate::upstream::UpstreamError> {
        match (self, body) {
            (Self::Gemini, Some(body)) => gemini::response::classify(status, headers, body, now),
            _ => crate::routing::cooldown::classify(status, headers, now),
        }
    }

    /// Whether failures are classified from the error body too ([`Outbound::classify`]).
    pub fn reads_error_body(self) -> bool {
        self == Self::Gemini
    }

    /// Whether the answer body is translated (its content type is then set by the edge).
    pub fn translates(self) -> bool {
        self != Self::OpenAi
    }
}

/// The canonical form of the OpenAI body the engine holds.
fn canonical_of(
    request: &RequestBody<'_>,
    model: &str,
    dropped: &[String],
) -> Result<Request, Unbuilt> {
    let body = request.upstream_body_without(model, false, dropped);
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        Unbuilt::Refused(ApiError::InvalidJson {
            reason: e.to_string(),
        })
    })?;
    openai::request::decode(&value)
        .map_err(|message| Unbuilt::Refused(ApiError::InvalidRequest { message }))
}

/// `{base}/messages` for a base URL ending in `/v1`, else `{base}/v1/messages`.
fn messages_uri(base_url: &str) -> Option<Uri> {
    let base = base_url.trim_end_matches('/');
    let uri = if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    };
    uri.parse().ok()
}

/// The usage the edge meters, from canonical usage.
fn usage_of(u: super::canonical::Usage) -> Usage {
    Usage {
        prompt_tokens: u.input,
        completion_tokens: u.output,
    }
}

/// `usage` of a whole OpenAI answer; `None` when the body is not JSON at all.
fn relay_usage(whole: &[u8]) -> Option<Option<Usage>> {
    crate::upstream::relay::json_usage(whole)
}

/// Reads one upstream dialect's stream payloads as canonical events.
pub trait Decode: Send + 'static {
    /// The events of one SSE `data:` payload; true once the stream is complete.
    fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> bool;

    /// Whether the end of the upstream body completes the stream (Gemini sends no end event).
    fn ends_at_close(&self) -> bool {
        false
    }

    /// The events held back until a stream that [`Decode::ends_at_close`] closes.
    fn close(&mut self, _out: &mut Vec<Event>) {}
}

/// `upstream`'s SSE events as OpenAI chunks, each upstream chunk's whole events translated and
/// passed on at once; `data: [DONE]` once the stream is complete. An upstream that ends early
/// or breaks is passed on as such, for the relay to report.
pub fn to_openai_sse<D: Decode>(upstream: ByteStream, decoder: D, encoder: Encoder) -> ByteStream {
    struct Reframe<D> {
        upstream: ByteStream,
        splitter: Splitter,
        decoder: D,
        encoder: Encoder,
        frames: Vec<Bytes>,
        events: Vec<Event>,
        done: bool,
    }
    impl<D: Decode> Reframe<D> {
        fn take(&mut self, chunk: Bytes, out: &mut Vec<u8>) {
            self.splitter.feed(chunk, &mut self.frames);
            for frame in std::mem::take(&mut self.frames) {
                if self.done {
                    break;
                }
                let Some(data) = sse::data_of(&frame) else {
                    continue;
                };
                let complete = self.decoder.decode(data, &mut self.events);
                self.write(out);
                if complete {
                    self.finish(out);
                }
            }
        }
        fn write(&mut self, out: &mut Vec<u8>) {
            for event in self.events.drain(..) {
                self.encoder.encode(&event, out);
            }
        }
        fn finish(&mut self, out: &mut Vec<u8>) {
            self.done = true;
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }
    let reframe = Reframe {
        upstream,
        splitter: Splitter::default(),
        decoder,
        encoder,
        frames: Vec::new(),
        events: Vec::new(),
        done: false,
    };
    Box::pin(futures::stream::unfold(reframe, |mut r| async move {
        loop {
            if r.done {
                return None;
            }
            let mut out = Vec::new();
            match r.upstream.next().await {
                Some(Ok(chunk)) => r.take(chunk, &mut out),
                Some(Err(e)) => return Some((Err(e), r)),
                None => {
                    if let Some(rest) = r.splitter.finish() {
                        r.take(rest, &mut out);
                        r.take(Bytes::from_static(b"\n\n"), &mut out);
                    }
                    if r.decoder.ends_at_close() && !r.done {
                        r.decoder.close(&mut r.events);
                        r.write(&mut out);
                        r.finish(&mut out);
                    }
                    if out.is_empty() {
                        return None;
                    }
                    // What is written now ends the body (the relay sees no `[DONE]` when the
                    // stream was cut short).
                    r.done = true;
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), r));
            }
        }
    }))
}
