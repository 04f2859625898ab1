//! OpenAI chat chunks as canonical stream events, and back.

use serde_json::{Value, json};

use super::response::{finish_of, stop_of, usage_of};
use crate::dialect::canonical::{Event, StopReason};

/// Reads chunks in order. It remembers which OpenAI tool-call index maps to which canonical
/// call, so a repeated id or name on later fragments does not open the call again.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    /// OpenAI tool-call index of each canonical call, in order.
    calls: Vec<u64>,
    saw_calls: bool,
}

impl Decoder {
    /// The events of one SSE data payload (`[DONE]` gives none).
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) {
        if data == b"[DONE]" {
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if let Some(error) = chunk.get("error") {
            let message = error["message"]
                .as_str()
                .or_else(|| error.as_str())
                .unwrap_or("the upstream failed mid-stream");
            out.push(Event::Error(message.to_owned()));
            return;
        }
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: chunk["id"].as_str().unwrap_or_default().to_owned(),
                model: chunk["model"].as_str().unwrap_or_default().to_owned(),
            });
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(r) = delta["reasoning_content"]
                .as_str()
                .or_else(|| delta["reasoning"].as_str())
                .filter(|r| !r.is_empty())
            {
                out.push(Event::Thinking(r.to_owned()));
            }
            if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                out.push(Event::Text(t.to_owned()));
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let k = call["index"].as_u64().unwrap_or(0);
                let index = match self.calls.iter().position(|&c| c == k) {
                    Some(index) => index,
                    None => {
                        self.calls.push(k);
                        self.saw_calls = true;
                        let index = self.calls.len() - 1;
                        out.push(Event::ToolStart {
                            index,
                            id: call["id"].as_str().unwrap_or_default().to_owned(),
                            name: call["function"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        });
                        index
                    }
                };
                if let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    out.push(Event::ToolArgs {
                        index,
                        fragment: args.to_owned(),
                    });
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                let stop = if reason == "stop" && self.saw_calls {
                    StopReason::ToolUse
                } else {
                    stop_of(reason)
                };
                out.push(Event::Stop(stop));
            }
        }
        if chunk["usage"].is_object() {
            out.push(Event::Usage(usage_of(&chunk["usage"])));
        }
    }
}

/// Writes canonical events as OpenAI chat chunks (`data: …` frames, then `[DONE]`), for
/// upstreams of other dialects.
#[derive(Debug)]
pub struct Encoder {
    id: String,
    model: String,
    created: i64,
    role_sent: bool,
}

impl Encoder {
    /// A stream answering as `model` with chunk id `id`, created at `created` (Unix seconds).
    pub fn new(id: String, model: String, created: i64) -> Self {
        Self {
            id,
            model,
            created,
            role_sent: false,
        }
    }

    fn chunk(&mut self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        let mut delta = delta;
        if !self.role_sent {
            self.role_sent = true;
            delta["role"] = json!("assistant");
        }
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        frame(&chunk, out);
    }

    /// Appends the frames for `event`.
    pub fn encode(&mut self, event: &Event, out: &mut Vec<u8>) {
        match event {
            Event::Start { .. } => {}
            Event::Text(t) => self.chunk(json!({"content": t}), None, out),
            Event::Thinking(t) => self.chunk(json!({"reasoning_content": t}), None, out),
            Event::ToolStart { index, id, name } => self.chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                        "function": {"name": name, "arguments": ""}}]}),
                None,
                out,
            ),
            Event::ToolArgs { index, fragment } => self.chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                None,
                out,
            ),
            Event::Stop(stop) => self.chunk(json!({}), Some(finish_of(*stop)), out),
            Event::Usage(u) => {
                let chunk = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [],
                    "usage": {"prompt_tokens": u.input, "completion_tokens": u.output,
                              "total_tokens": u.input + u.output,
                              "prompt_tokens_details": {"cached_tokens": u.cached}},
                });
                frame(&chunk, out);
            }
            Event::Error(message) => {
                let error =
                    crate::error::error_json(message, "api_error", None, Some("upstream_error"));
                frame(&error, out);
            }
        }
    }
}

/// `data: <json>\n\n`.
fn frame(value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}
