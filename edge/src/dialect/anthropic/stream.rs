//! The Messages stream: canonical events as Anthropic's event sequence (`message_start`, then
//! per block `content_block_start`, deltas and `content_block_stop`, then `message_delta` with
//! the stop reason and usage and `message_stop`), and that sequence back as canonical events.

use serde_json::{Value, json};

use super::response::{message_id, stop_of, stop_reason, usage_json, usage_of};
use crate::dialect::Render;
use crate::dialect::canonical::{Event, StopReason, Usage};
use crate::dialect::upstream::Decode;

/// What kind of block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool,
}

/// Writes canonical events as Anthropic SSE frames; see the module doc.
#[derive(Debug)]
pub struct Encoder {
    /// The model named in `message_start` when the upstream named none.
    model: String,
    started: bool,
    /// Blocks opened so far (the next block's index).
    blocks: usize,
    open: Option<Open>,
    /// The block index of each canonical tool call.
    tools: Vec<usize>,
    stop: Option<StopReason>,
    usage: Usage,
    ended: bool,
}

impl Encoder {
    /// An encoder answering as `model` unless the upstream names its own.
    pub fn new(model: String) -> Self {
        Self {
            model,
            started: false,
            blocks: 0,
            open: None,
            tools: Vec::new(),
            stop: None,
            usage: Usage::default(),
            ended: false,
        }
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = if id.is_empty() {
            format!("msg_{:016x}", fastrand::u64(..))
        } else {
            message_id(id)
        };
        let model = if model.is_empty() { &self.model } else { model };
        frame(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
            out,
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            let index = self.blocks - 1;
            frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    /// Opens a block of `kind` unless one is open already; returns its index.
    fn open(&mut self, kind: Open, block: Value, out: &mut Vec<u8>) -> usize {
        if self.open == Some(kind) && kind != Open::Tool {
            return self.blocks - 1;
        }
        self.close(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some(kind);
        frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
        index
    }

    fn delta(index: usize, delta: Value, out: &mut Vec<u8>) {
        frame(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            out,
        );
    }
}

impl Render for Encoder {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if let Event::Start { id, model } = &event {
            self.start(id, model, out);
            return;
        }
        self.start("", "", out);
        match event {
            Event::Start { .. } => {}
            Event::Text(text) => {
                let index = self.open(Open::Text, json!({"type": "text", "text": ""}), out);
                Self::delta(index, json!({"type": "text_delta", "text": text}), out);
            }
            Event::Thinking(text) => {
                let block = json!({"type": "thinking", "thinking": "", "signature": ""});
                let index = self.open(Open::Thinking, block, out);
                Self::delta(
                    index,
                    json!({"type": "thinking_delta", "thinking": text}),
                    out,
                );
            }
            Event::ToolStart { index, id, name } => {
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                let at = self.open(Open::Tool, block, out);
                if index >= self.tools.len() {
                    self.tools.resize(index + 1, usize::MAX);
                }
                self.tools[index] = at;
            }
            Event::ToolArgs { index, fragment } => {
                if let Some(&at) = self.tools.get(index).filter(|&&at| at != usize::MAX) {
                    let delta = json!({"type": "input_json_delta", "partial_json": fragment});
                    Self::delta(at, delta, out);
                }
            }
            Event::Stop(stop) => self.stop = Some(stop),
            Event::Usage(usage) => self.usage = usage,
            Event::Error(message) => {
                self.ended = true;
                frame(
                    "error",
                    &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
                    out,
                );
            }
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.start("", "", out);
        self.close(out);
        let stop = self.stop.unwrap_or(if self.tools.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        });
        frame(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(stop), "stop_sequence": null},
                    "usage": usage_json(self.usage)}),
            out,
        );
        frame("message_stop", &json!({"type": "message_stop"}), out);
    }
}

/// `event: <name>\ndata: <json>\n\n`: the SDK dispatches on the `event:` line.
fn frame(name: &str, data: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut *out, data).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

/// Reads an Anthropic stream's `data:` payloads as canonical events (for Anthropic upstreams).
#[derive(Debug, Default)]
pub struct Decoder {
    /// The canonical tool index of each block index that is a tool call.
    tools: Vec<(u64, usize)>,
    usage: Usage,
}

impl Decode for Decoder {
    fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> bool {
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return false;
        };
        match v["type"].as_str() {
            Some("message_start") => {
                let m = &v["message"];
                self.usage = usage_of(&m["usage"]);
                out.push(Event::Start {
                    id: m["id"].as_str().unwrap_or_default().to_owned(),
                    model: m["model"].as_str().unwrap_or_default().to_owned(),
                });
            }
            Some("content_block_start") => {
                let block = &v["content_block"];
                if block["type"] == "tool_use" {
                    let index = self.tools.len();
                    self.tools.push((v["index"].as_u64().unwrap_or(0), index));
                    out.push(Event::ToolStart {
                        index,
                        id: block["id"].as_str().unwrap_or_default().to_owned(),
                        name: block["name"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
            Some("content_block_delta") => {
                let d = &v["delta"];
                let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                match d["type"].as_str() {
                    Some("text_delta") => out.push(Event::Text(s("text"))),
                    Some("thinking_delta") => out.push(Event::Thinking(s("thinking"))),
                    Some("input_json_delta") => {
                        let block = v["index"].as_u64().unwrap_or(0);
                        if let Some(&(_, index)) = self.tools.iter().find(|(b, _)| *b == block) {
                            out.push(Event::ToolArgs {
                                index,
                                fragment: s("partial_json"),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(reason) = v["delta"]["stop_reason"].as_str() {
                    out.push(Event::Stop(stop_of(reason)));
                }
                // `message_delta` counts are cumulative; input counts may come only at start.
                let u = &v["usage"];
                if let Some(o) = u["output_tokens"].as_u64() {
                    self.usage.output = o;
                }
                if u["input_tokens"].is_u64() {
                    let later = usage_of(u);
                    self.usage.input = later.input;
                    self.usage.cached = later.cached;
                }
                out.push(Event::Usage(self.usage));
            }
            Some("message_stop") => return true,
            Some("error") => {
                let message = v["error"]["message"]
                    .as_str()
                    .unwrap_or("the upstream failed mid-stream");
                out.push(Event::Error(message.to_owned()));
                // The error event ends the stream: no `[DONE]` follows an upstream failure.
            }
            _ => {}
        }
        false
    }
}
