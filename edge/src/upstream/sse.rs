//! Reading an OpenAI SSE stream as it passes: splitting it into whole events without copying
//! when a chunk holds whole events, spotting `[DONE]`, and reading the usage chunk.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

/// Token counts from a `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: u64,
}

/// What an SSE event is, as far as the edge cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `data: [DONE]`.
    Done,
    /// A chunk carrying usage; `only_usage` when its `choices` is empty (the extra chunk
    /// `include_usage` adds).
    Usage {
        /// The counts.
        usage: Usage,
        /// `choices` is empty.
        only_usage: bool,
    },
    /// Anything else (passed through untouched).
    Other,
}

/// Splits a byte stream into whole SSE events (each ending with its blank line).
#[derive(Debug, Default)]
pub struct Splitter {
    pending: BytesMut,
}

impl Splitter {
    /// Feeds `chunk`, pushing each event it completes onto `out`. When nothing is pending the
    /// events are slices of `chunk` (no copy).
    pub fn feed(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        if self.pending.is_empty() {
            let mut start = 0;
            while let Some(end) = boundary(&chunk, start) {
                out.push(chunk.slice(start..end));
                start = end;
            }
            if start < chunk.len() {
                self.pending.extend_from_slice(&chunk[start..]);
            }
            return;
        }
        // A boundary may straddle the old tail and the new chunk, so search from a bit before.
        let from = self.pending.len().saturating_sub(3);
        self.pending.extend_from_slice(&chunk);
        let mut start = 0;
        let mut search = from;
        let mut ends = Vec::new();
        while let Some(end) = boundary(&self.pending, search) {
            ends.push(end);
            search = end;
        }
        if let Some(&last) = ends.last() {
            let whole = self.pending.split_to(last).freeze();
            for end in ends {
                out.push(whole.slice(start..end));
                start = end;
            }
        }
    }

    /// Bytes of an event not yet complete.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes what is pending (an unterminated last event) at the end of the stream.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

/// End (exclusive) of the first event boundary at or after `from`: a line ending (`\n`,
/// `\r\n` or a bare `\r`, as SSE allows) followed by an empty line. A `\n\r` at the very end
/// waits for the next byte (`\n\r\n` is one boundary, `\n\r` then anything else another), so
/// the result never depends on where chunks were cut.
fn boundary(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', buf.get(at..)?) {
        let end = at + i;
        match (buf[end], buf.get(end + 1), buf.get(end + 2)) {
            (b'\n', Some(b'\n'), _) => return Some(end + 2),
            (b'\n', Some(b'\r'), Some(b'\n')) => return Some(end + 3),
            (b'\n', Some(b'\r'), Some(_)) => return Some(end + 2),
            (b'\n', Some(b'\r'), None) => return None,
            // A bare CR ending a line, then a CR ending an empty one.
            (b'\r', Some(b'\r'), _) => return Some(end + 2),
            _ => at = end + 1,
        }
    }
    None
}

/// Classifies a whole event. Only events whose text holds a `usage` object are parsed.
pub fn classify(event: &[u8]) -> EventKind {
    let Some(data) = data_of(event) else {
        return EventKind::Other;
    };
    if data == b"[DONE]" {
        return EventKind::Done;
    }
    let finder = memchr::memmem::find(data, b"\"usage\"");
    let Some(at) = finder else {
        return EventKind::Other;
    };
    // `"usage":null` on ordinary chunks is common once usage is asked for; skip those cheaply.
    let after = data[at + 7..]
        .iter()
        .find(|b| !matches!(b, b' ' | b':' | b'\t'));
    if after != Some(&b'{') {
        return EventKind::Other;
    }
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Option<Vec<serde::de::IgnoredAny>>,
        usage: Option<Usage>,
    }
    match serde_json::from_slice::<Chunk>(data) {
        Ok(Chunk {
            choices,
            usage: Some(usage),
        }) => EventKind::Usage {
            usage,
            only_usage: choices.is_none_or(|c| c.is_empty()),
        },
        _ => EventKind::Other,
    }
}

/// The payload of an event's single `data:` line, trimmed; `None` for comments, other fields
/// or multi-line data.
pub fn data_of(event: &[u8]) -> Option<&[u8]> {
    let mut data = None;
    for line in event.split(|&b| b == b'\n' || b == b'\r') {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"data:") {
            if data.is_some() {
                return None;
            }
            data = Some(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    data.map(|d| d.trim_ascii())
}

/// An OpenAI-shaped error event followed by `[DONE]`, for a stream that broke after its first
/// byte reached the client.
pub fn error_event(message: &str, code: &str) -> Bytes {
    let error = crate::error::error_json(message, "api_error", None, Some(code));
    Bytes::from(format!("data: {error}\n\ndata: [DONE]\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&str]) -> (Vec<String>, usize) {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(Bytes::copy_from_slice(c.as_bytes()), &mut out);
        }
        let events = out
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        (events, s.pending_len())
    }

    #[test]
    fn splits_across_any_chunking() {
        let stream = "data: a\n\ndata: b\r\n\r\n: comment\n\ndata: [DONE]\n\n";
        let want = vec![
            "data: a\n\n",
            "data: b\r\n\r\n",
            ": comment\n\n",
            "data: [DONE]\n\n",
        ];
        // every split point, in two chunks, and byte by byte
        for cut in 0..stream.len() {
            let (events, pending) = split(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(events, want, "cut at {cut}");
            assert_eq!(pending, 0);
        }
        let bytes: Vec<String> = stream.chars().map(String::from).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(split(&refs).0, want);
        assert_eq!(split(&["data: partial"]), (vec![], 13));
    }

    #[test]
    fn bare_cr_line_endings_split_too() {
        // SSE allows CR alone; such a stream must not be held until its end.
        let stream = "data: a\r\rdata: b\n\r: c\r\n\r\ndata: [DONE]\r\r";
        let want = vec![
            "data: a\r\r",
            "data: b\n\r",
            ": c\r\n\r\n",
            "data: [DONE]\r\r",
        ];
        for cut in 0..stream.len() {
            let (events, pending) = split(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(events, want, "cut at {cut}");
            assert_eq!(pending, 0);
        }
        assert_eq!(classify(b"data: [DONE]\r\r"), EventKind::Done);
        assert_eq!(classify(b"event: x\rdata: [DONE]\r\r"), EventKind::Done);
    }

    #[test]
    fn classifies_events() {
        let cases: Vec<(&str, EventKind)> = vec![
            ("data: [DONE]\n\n", EventKind::Done),
            ("data:[DONE]\r\n\r\n", EventKind::Done),
            (
                "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
                EventKind::Other,
            ),
            (
                "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\n\n",
                EventKind::Usage {
                    usage: Usage {
                        prompt_tokens: 9,
                        completion_tokens: 12,
                    },
                    only_usage: true,
                },
            ),
            (
                "data: {\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\": {\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n",
                EventKind::Usage {
                    usage: Usage {
                        prompt_tokens: 1,
                        completion_tokens: 2,
                    },
                    only_usage: false,
                },
            ),
            (": keep-alive\n\n", EventKind::Other),
            ("data: {\"usage\":{broken\n\n", EventKind::Other),
            (
                "data: {\"content\":\"the word \\\"usage\\\" in text\"}\n\n",
                EventKind::Other,
            ),
        ];
        for (event, want) in cases {
            assert_eq!(classify(event.as_bytes()), want, "{event:?}");
        }
    }

    #[test]
    fn error_event_is_openai_shaped_and_ends_the_stream() {
        let e = String::from_utf8(error_event("boom", "upstream_stream_error").to_vec()).unwrap();
        assert!(e.ends_with("\n\ndata: [DONE]\n\n"));
        let first = e
            .split("\n\n")
            .next()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(first).unwrap();
        assert_eq!(v["error"]["message"], "boom");
        assert_eq!(v["error"]["code"], "upstream_stream_error");
    }
}
