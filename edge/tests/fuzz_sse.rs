//! Property tests of the SSE tap: however a valid event stream (`\n`, `\r\n` or bare `\r`
//! line endings) is cut into chunks, the same events, `[DONE]` and usage come out as from the
//! stream in one piece, and the relayed bytes are the same; arbitrary bytes never panic and are
//! never lost. 256 cases per property by default; `PROPTEST_CASES=100000` runs longer (see
//! docs/reliability.md).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use proptest::prelude::*;
use serde_json::json;
use switchyard_edge::upstream::relay::{ByteStream, Meter, SseRelay};
use switchyard_edge::upstream::sse::{EventKind, Splitter, Usage, classify};

/// One SSE event as an upstream may send it.
#[derive(Debug, Clone)]
enum Event {
    Content(String),
    Usage {
        prompt: u64,
        completion: u64,
        only: bool,
    },
    Comment(String),
    NullUsage(String),
}

fn event() -> impl Strategy<Value = Event> {
    let text = "[^\r\n]{0,40}";
    prop_oneof![
        4 => any::<String>().prop_map(Event::Content),
        1 => (any::<u64>(), any::<u64>(), any::<bool>())
            .prop_map(|(prompt, completion, only)| Event::Usage { prompt, completion, only }),
        1 => text.prop_map(Event::Comment),
        1 => any::<String>().prop_map(Event::NullUsage),
    ]
}

/// The three line endings SSE allows.
const ENDINGS: [&str; 3] = ["\n", "\r\n", "\r"];

fn render(e: &Event, nl: &str) -> String {
    match e {
        Event::Content(c) => {
            let chunk = json!({"id": "x", "choices": [{"index": 0, "delta": {"content": c}}]});
            format!("data: {chunk}{nl}{nl}")
        }
        Event::Usage {
            prompt,
            completion,
            only,
        } => {
            let choices = if *only {
                json!([])
            } else {
                json!([{"index": 0, "delta": {}}])
            };
            let chunk = json!({"id": "x", "choices": choices,
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": 0}});
            format!("data: {chunk}{nl}{nl}")
        }
        Event::Comment(c) => format!(": {c}{nl}{nl}"),
        Event::NullUsage(c) => {
            let chunk = json!({"choices": [{"delta": {"content": c}}], "usage": null});
            format!("data:{chunk}{nl}{nl}")
        }
    }
}

/// A whole stream: events with mixed line endings, then `[DONE]`.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Event>)> {
    prop::collection::vec((event(), 0..ENDINGS.len()), 0..12).prop_map(|events| {
        let mut text = String::new();
        for (e, ending) in &events {
            text.push_str(&render(e, ENDINGS[*ending]));
        }
        text.push_str("data: [DONE]\n\n");
        (
            text.into_bytes(),
            events.into_iter().map(|(e, _)| e).collect(),
        )
    })
}

/// Cuts `bytes` at the (sorted, deduplicated) positions in `cuts`, scaled to its length.
fn cut(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in at.into_iter().chain([bytes.len()]) {
        chunks.push(Bytes::copy_from_slice(&bytes[start..end]));
        start = end;
    }
    chunks
}

fn split(chunks: &[Bytes]) -> (Vec<Bytes>, Option<Bytes>) {
    let mut splitter = Splitter::default();
    let mut events = Vec::new();
    for c in chunks {
        splitter.feed(c.clone(), &mut events);
    }
    (events, splitter.finish())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    })
}

/// What the relay sends the client for `chunks` (the first one is already read).
fn relay(chunks: Vec<Bytes>, strip_usage: bool) -> Vec<u8> {
    runtime().block_on(async move {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let rest: ByteStream = Box::pin(futures::stream::iter(
            chunks.map(Ok::<_, hyper::Error>).collect::<Vec<_>>(),
        ));
        let meter = Meter {
            metrics: Arc::default(),
            endpoint: Arc::from("e"),
            model: Arc::from("m"),
            in_flight: None,
        };
        let relay = SseRelay::new(
            first,
            rest,
            strip_usage,
            Duration::from_secs(5),
            1 << 30,
            meter,
        );
        let mut out = Vec::new();
        let mut stream = std::pin::pin!(relay.into_stream());
        while let Some(Ok(chunk)) = stream.next().await {
            out.extend_from_slice(&chunk);
        }
        out
    })
}

proptest! {
    /// Any chunking of a valid stream yields the same events, kinds and usage as one piece.
    #[test]
    fn chunking_never_changes_events_or_usage(
        (bytes, events) in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let (whole, rest) = split(&[Bytes::from(bytes.clone())]);
        prop_assert!(rest.is_none());
        prop_assert_eq!(whole.len(), events.len() + 1);
        let (pieces, rest) = split(&cut(&bytes, &cuts));
        prop_assert!(rest.is_none());
        prop_assert_eq!(&pieces, &whole);
        let kinds: Vec<EventKind> = pieces.iter().map(|e| classify(e)).collect();
        for (kind, event) in kinds.iter().zip(&events) {
            let want = match event {
                Event::Usage { prompt, completion, only } => EventKind::Usage {
                    usage: Usage { prompt_tokens: *prompt, completion_tokens: *completion },
                    only_usage: *only,
                },
                _ => EventKind::Other,
            };
            prop_assert_eq!(kind, &want, "{:?}", event);
        }
        prop_assert_eq!(kinds.last(), Some(&EventKind::Done));
    }

    /// The relay sends the client the same bytes however the upstream chunked the stream.
    #[test]
    fn chunking_never_changes_what_the_client_gets(
        (bytes, events) in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        strip in any::<bool>(),
    ) {
        let whole = relay(vec![Bytes::from(bytes.clone())], strip);
        let pieces = relay(cut(&bytes, &cuts), strip);
        prop_assert_eq!(&pieces, &whole);
        let text = String::from_utf8(whole).unwrap();
        prop_assert!(text.ends_with("data: [DONE]\n\n"));
        let stripped = events.iter().filter(|e| matches!(e, Event::Usage { only: true, .. })).count();
        let expected = events.len() + 1 - if strip { stripped } else { 0 };
        let (sent, rest) = split(&[Bytes::from(text.clone())]);
        prop_assert!(rest.is_none());
        prop_assert_eq!(sent.len(), expected, "{}", text);
    }

    /// Arbitrary bytes, arbitrarily cut: no panic, nothing lost, every event ends in a blank line.
    #[test]
    fn arbitrary_bytes_are_split_losslessly(
        bytes in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let (events, rest) = split(&cut(&bytes, &cuts));
        let mut joined: Vec<u8> = events.iter().flat_map(|e| e.to_vec()).collect();
        for e in &events {
            let blank_line = [&b"\n\n"[..], b"\n\r\n", b"\n\r", b"\r\r"];
            prop_assert!(blank_line.iter().any(|end| e.ends_with(end)), "{:?}", e);
            let _kind = classify(e);
        }
        if let Some(rest) = rest {
            let _kind = classify(&rest);
            joined.extend_from_slice(&rest);
        }
        prop_assert_eq!(joined, bytes);
    }

    /// The relay never panics on arbitrary upstream bytes and always ends with `[DONE]`.
    #[test]
    fn relay_survives_arbitrary_bytes(
        bytes in prop::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        strip in any::<bool>(),
    ) {
        let out = relay(cut(&bytes, &cuts), strip);
        // Ends with the edge's own `[DONE]`, or (vanishingly rare) one the bytes held.
        prop_assert!(out.ends_with(b"[DONE]\n\n") || out.ends_with(b"[DONE]\r\n\r\n"));
    }
}
