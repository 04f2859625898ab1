//! Relaying an upstream body to the client. SSE streams go event by event as they arrive (the
//! usage chunk the edge asked for is metered and removed); after the first byte a failure
//! ends the stream with an error event and `[DONE]`. Other bodies are read whole (bounded),
//! checked to be JSON, and sent at once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt as _, Stream, StreamExt as _};
use tokio::time::error::Elapsed;
use tokio::time::{Instant, timeout_at};

use super::sse::{self, EventKind, Splitter, Usage};
use crate::metrics::{Metrics, StreamEnd};
use crate::routing::InFlight;

/// An upstream body as hyper yields it.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send>>;

/// The data frames of an upstream body as a stream.
pub fn byte_stream(body: hyper::body::Incoming) -> ByteStream {
    Box::pin(http_body_util::BodyDataStream::new(body))
}

/// Why a body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// No chunk within the allowed time.
    Timeout,
    /// Larger than the limit.
    TooLarge,
    /// The connection broke.
    Broken,
}

/// Reads a whole body: the first chunk must arrive by `first_by`, each later one within
/// `idle`, and the total must stay within `max` bytes.
pub async fn read_all(
    mut body: ByteStream,
    first_by: Instant,
    idle: Duration,
    max: usize,
) -> Result<Bytes, BodyError> {
    // A body in one chunk (the common case) is returned as is, without a copy.
    let mut single: Option<Bytes> = None;
    let mut out = BytesMut::new();
    let mut first = true;
    loop {
        let next = next_by(&mut body, || {
            if first {
                first_by
            } else {
                Instant::now() + idle
            }
        })
        .await;
        first = false;
        match next {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok(single.take().unwrap_or_else(|| out.freeze())),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(chunk))) => {
                let held = single.as_ref().map_or(0, Bytes::len);
                if held + out.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                if let Some(prev) = single.take() {
                    out.extend_from_slice(&prev);
                    out.extend_from_slice(&chunk);
                } else if out.is_empty() {
                    single = Some(chunk);
                } else {
                    out.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// The next item of `body`, or `Elapsed` when none came by the deadline `by` gives. An item
/// already buffered (the common case: the head and a small body arrive together, and the end
/// follows at once) is taken without reading the clock or arming a timer.
async fn next_by(
    body: &mut ByteStream,
    by: impl FnOnce() -> Instant,
) -> Result<Option<Result<Bytes, hyper::Error>>, Elapsed> {
    if let Some(next) = body.next().now_or_never() {
        return Ok(next);
    }
    timeout_at(by(), body.next()).await
}

/// Waits for an SSE stream's first chunk until `by`.
pub async fn first_chunk(body: &mut ByteStream, by: Instant) -> Result<Bytes, BodyError> {
    match next_by(body, || by).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(None) => Err(BodyError::Broken),
        Ok(Some(Err(_))) => Err(BodyError::Broken),
        Ok(Some(Ok(chunk))) => Ok(chunk),
    }
}

/// What the relay meters and reports when it ends.
#[derive(Debug)]
pub struct Meter {
    /// The edge's metrics.
    pub metrics: Arc<Metrics>,
    /// Endpoint id label.
    pub endpoint: Arc<str>,
    /// Public model label.
    pub model: Arc<str>,
    /// Keeps the target's in-flight count until the body ends.
    pub in_flight: Option<InFlight>,
}

/// Called once when a relayed stream ends, with the usage it reported (if any).
pub type OnEnd = Box<dyn FnOnce(Option<Usage>) + Send>;

/// A relayed SSE stream.
pub struct SseRelay {
    upstream: ByteStream,
    splitter: Splitter,
    ready: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    strip_usage: bool,
    idle: Duration,
    max_bytes: usize,
    seen_bytes: usize,
    saw_done: bool,
    finished: Option<StreamEnd>,
    usage: Option<Usage>,
    meter: Meter,
    on_end: Option<OnEnd>,
}

impl SseRelay {
    /// Relays `upstream` after `first` (already read); removes the usage-only chunk when
    /// `strip_usage` (the client did not ask for usage).
    pub fn new(
        first: Bytes,
        upstream: ByteStream,
        strip_usage: bool,
        idle: Duration,
        max_bytes: usize,
        meter: Meter,
    ) -> Self {
        let mut relay = Self {
            upstream,
            splitter: Splitter::default(),
            ready: VecDeque::new(),
            scratch: Vec::new(),
            strip_usage,
            idle,
            max_bytes,
            seen_bytes: 0,
            saw_done: false,
            finished: None,
            usage: None,
            meter,
            on_end: None,
        };
        relay.take(first);
        relay
    }

    /// Calls `f` with the stream's usage when it ends (for token settlement).
    #[must_use]
    pub fn on_end(mut self, f: OnEnd) -> Self {
        self.on_end = Some(f);
        self
    }

    /// Turns the relay into a stream of client chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures::stream::unfold(self, |mut relay| async move {
            relay.next_chunk().await.map(|chunk| (Ok(chunk), relay))
        })
    }

    /// Splits a chunk into events and queues what the client should see: a lone event as is
    /// (no copy, the common case), several joined into one write.
    fn take(&mut self, chunk: Bytes) {
        self.seen_bytes += chunk.len();
        self.splitter.feed(chunk, &mut self.scratch);
        let mut events = std::mem::take(&mut self.scratch);
        events.retain(|event| match sse::classify(event) {
            EventKind::Done => {
                self.saw_done = true;
                true
            }
            EventKind::Usage { usage, only_usage } => {
                self.usage = Some(usage);
                !(self.strip_usage && only_usage)
            }
            EventKind::Other => true,
        });
        match events.len() {
            0 => {}
            1 => self.ready.extend(events.drain(..)),
            _ => {
                let mut joined = BytesMut::with_capacity(events.iter().map(Bytes::len).sum());
                for event in events.drain(..) {
                    joined.extend_from_slice(&event);
                }
                self.ready.push_back(joined.freeze());
            }
        }
        self.scratch = events;
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(chunk);
            }
            if self.finished.is_some() {
                return None;
            }
            if self.saw_done {
                self.finished = Some(StreamEnd::Complete);
                return None;
            }
            let idle = self.idle;
            match next_by(&mut self.upstream, || Instant::now() + idle).await {
                Ok(Some(Ok(chunk))) => {
                    if self.seen_bytes + chunk.len() > self.max_bytes {
                        return Some(self.fail(
                            "the upstream response exceeded the gateway's size limit",
                            "upstream_response_too_large",
                        ));
                    }
                    self.take(chunk);
                }
                Ok(Some(Err(_))) => {
                    return Some(self.fail(
                        "the upstream connection broke mid-stream",
                        "upstream_stream_error",
                    ));
                }
                Ok(None) => {
                    if let Some(rest) = self.splitter.finish() {
                        // An unterminated last event: pass it on, then end it properly.
                        self.ready.push_back(rest);
                        self.ready.push_back(Bytes::from_static(b"\n\n"));
                    }
                    if self.saw_done {
                        continue;
                    }
                    let chunk = self.fail(
                        "the upstream closed the stream before it finished",
                        "upstream_stream_error",
                    );
                    self.ready.push_back(chunk);
                }
                Err(_) => {
                    return Some(
                        self.fail("the upstream stalled mid-stream", "upstream_stream_timeout"),
                    );
                }
            }
        }
    }

    fn fail(&mut self, message: &str, code: &str) -> Bytes {
        self.finished = Some(StreamEnd::UpstreamError);
        tracing::warn!(
            endpoint = %self.meter.endpoint,
            model = %self.meter.model,
            code,
            "stream ended with an error event after its first byte"
        );
        sse::error_event(message, code)
    }
}

impl Drop for SseRelay {
    fn drop(&mut self) {
        let end = self.finished.unwrap_or(if self.saw_done {
            StreamEnd::Complete
        } else {
            StreamEnd::ClientGone
        });
        let metrics = &self.meter.metrics;
        metrics.stream_end(end);
        if let Some(u) = self.usage {
            metrics.tokens(
                &self.meter.endpoint,
                &self.meter.model,
                u.prompt_tokens,
                u.completion_tokens,
            );
        }
        if let Some(on_end) = self.on_end.take() {
            on_end(self.usage);
        }
    }
}

/// Reads `usage` from a whole JSON answer; `None` when the body is not JSON at all.
pub fn json_usage(body: &[u8]) -> Option<Option<Usage>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        usage: Option<Usage>,
    }
    serde_json::from_slice::<Answer>(body).ok().map(|a| a.usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(chunks: Vec<Result<Bytes, hyper::Error>>, strip: bool, max: usize) -> SseRelay {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap().unwrap();
        let rest: ByteStream = Box::pin(futures::stream::iter(chunks.collect::<Vec<_>>()));
        SseRelay::new(
            first,
            rest,
            strip,
            Duration::from_secs(5),
            max,
            Meter {
                metrics: Arc::default(),
                endpoint: Arc::from("e"),
                model: Arc::from("m"),
                in_flight: None,
            },
        )
    }

    async fn collect(r: SseRelay) -> String {
        let chunks: Vec<_> = r.into_stream().collect().await;
        chunks
            .into_iter()
            .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
            .collect()
    }

    const CHUNK: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
    const USAGE: &str =
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn ok(s: &str) -> Result<Bytes, hyper::Error> {
        Ok(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[tokio::test]
    async fn usage_chunk_is_removed_only_when_the_edge_asked_for_it() {
        let all = format!("{CHUNK}{USAGE}{DONE}");
        let got = collect(relay(vec![ok(&all)], true, 1 << 20)).await;
        assert_eq!(got, format!("{CHUNK}{DONE}"));
        let got = collect(relay(vec![ok(&all)], false, 1 << 20)).await;
        assert_eq!(got, all);
        // split mid-event
        let (a, b) = all.split_at(CHUNK.len() + 10);
        let got = collect(relay(vec![ok(a), ok(b)], true, 1 << 20)).await;
        assert_eq!(got, format!("{CHUNK}{DONE}"));
    }

    #[tokio::test]
    async fn early_end_gets_an_error_event_and_done() {
        let got = collect(relay(vec![ok(CHUNK)], true, 1 << 20)).await;
        assert!(got.starts_with(CHUNK));
        assert!(got.contains("upstream_stream_error"), "{got}");
        assert!(got.ends_with(DONE));
    }

    #[tokio::test]
    async fn oversized_stream_is_cut_with_an_error_event() {
        let got = collect(relay(
            vec![ok(CHUNK), ok(CHUNK), ok(CHUNK)],
            true,
            CHUNK.len() + 5,
        ))
        .await;
        assert!(got.starts_with(CHUNK));
        assert_eq!(got.matches("hi").count(), 1);
        assert!(got.contains("upstream_response_too_large"));
        assert!(got.ends_with(DONE));
    }

    #[tokio::test]
    async fn read_all_bounds_size() {
        let body: ByteStream = Box::pin(futures::stream::iter(vec![ok("abc"), ok("def")]));
        let far = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            read_all(body, far, Duration::from_secs(5), 6).await,
            Ok(Bytes::from_static(b"abcdef"))
        );
        let body: ByteStream = Box::pin(futures::stream::iter(vec![ok("abc"), ok("def")]));
        assert_eq!(
            read_all(body, far, Duration::from_secs(5), 5).await,
            Err(BodyError::TooLarge)
        );
    }

    #[tokio::test]
    async fn on_end_sees_the_usage() {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let got = seen.clone();
        let all = format!("{CHUNK}{USAGE}{DONE}");
        let r = relay(vec![ok(&all)], true, 1 << 20).on_end(Box::new(move |u| {
            *got.lock().unwrap() = Some(u);
        }));
        collect(r).await;
        assert_eq!(
            *seen.lock().unwrap(),
            Some(Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            }))
        );
    }

    #[test]
    fn json_usage_reads_or_rejects() {
        assert_eq!(
            json_usage(br#"{"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2}}"#),
            Some(Some(Usage {
                prompt_tokens: 1,
                completion_tokens: 2
            }))
        );
        assert_eq!(json_usage(br#"{"id":"x"}"#), Some(None));
        assert!(json_usage(b"{\"id\":").is_none());
    }
}
