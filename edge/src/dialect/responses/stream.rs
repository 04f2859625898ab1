//! The Responses stream: canonical events as the numbered event sequence the OpenAI SDK reads.
//! `response.created` and `response.in_progress` open it; text is a `message` item
//! (`output_item.added`, `content_part.added`, `output_text.delta`…, then the `.done` events
//! with the whole text), each tool call a `function_call` item
//! (`function_call_arguments.delta`…/`.done`); every item is closed before the final
//! `response.completed` (or `response.incomplete`), which carries the whole output and usage.
//! Every event has a `sequence_number`, counted from 0.

use serde_json::{Value, json};

use super::response::{
    call_item, message_item, output_text, response_id, response_json, status_of,
};
use crate::dialect::Render;
use crate::dialect::canonical::{Event, StopReason, Usage};

/// One output item so far.
#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Writes canonical events as Responses SSE frames; see the module doc.
#[derive(Debug)]
pub struct Encoder {
    model: String,
    id: String,
    created: i64,
    sequence: u64,
    started: bool,
    items: Vec<Item>,
    /// The output index of the item still open (its `.done` events not sent yet).
    open: Option<usize>,
    /// The output index of each canonical tool call.
    calls: Vec<usize>,
    stop: Option<StopReason>,
    usage: Usage,
    ended: bool,
}

impl Encoder {
    /// An encoder answering as `model` (the name the client asked for), created at `created`.
    pub fn new(model: String, created: i64) -> Self {
        Self {
            model,
            id: String::new(),
            created,
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: None,
            calls: Vec::new(),
            stop: None,
            usage: Usage::default(),
            ended: false,
        }
    }

    /// `event: <type>\ndata: {type, sequence_number, …}\n\n`.
    fn frame(&mut self, kind: &str, mut data: Value, out: &mut Vec<u8>) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        if serde_json::to_writer(&mut *out, &data).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\n\n");
    }

    fn response(&self, status: (&str, Value), usage: Option<Usage>) -> Value {
        let output = self
            .items
            .iter()
            .map(|i| item_json(i, "completed"))
            .collect();
        let output = if status.0 == "in_progress" {
            Vec::new()
        } else {
            output
        };
        response_json(&self.id, &self.model, self.created, status, output, usage)
    }

    fn start(&mut self, id: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = response_id(id);
        let response = self.response(("in_progress", Value::Null), None);
        self.frame("response.created", json!({"response": response}), out);
        self.frame("response.in_progress", json!({"response": response}), out);
    }

    /// Opens `item` as the next output item, closing the one open.
    fn open(&mut self, item: Item, out: &mut Vec<u8>) -> usize {
        self.close(out);
        let index = self.items.len();
        let added = item_json(&item, "in_progress");
        let message_id = match &item {
            Item::Message { id, .. } => Some(id.clone()),
            Item::Call { .. } => None,
        };
        self.items.push(item);
        self.open = Some(index);
        self.frame(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
            out,
        );
        if let Some(item_id) = message_id {
            self.frame(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": index, "content_index": 0,
                       "part": output_text("")}),
                out,
            );
        }
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(index) = self.open.take() else {
            return;
        };
        let done = item_json(&self.items[index], "completed");
        match &self.items[index] {
            Item::Message { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                self.frame(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "text": text, "logprobs": []}),
                    out,
                );
                self.frame(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": output_text(&text)}),
                    out,
                );
            }
            Item::Call {
                id,
                name,
                arguments,
                ..
            } => {
                let data = json!({"item_id": id, "output_index": index, "name": name,
                                  "arguments": arguments});
                self.frame("response.function_call_arguments.done", data, out);
            }
        }
        self.frame(
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
            out,
        );
    }

    fn text(&mut self, delta: String, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(i) if matches!(self.items[i], Item::Message { .. }) => i,
            _ => {
                let id = format!(
                    "msg_{}_{}",
                    self.id.trim_start_matches("resp_"),
                    self.items.len()
                );
                self.open(
                    Item::Message {
                        id,
                        text: String::new(),
                    },
                    out,
                )
            }
        };
        let Item::Message { id, text } = &mut self.items[index] else {
            return;
        };
        text.push_str(&delta);
        let id = id.clone();
        self.frame(
            "response.output_text.delta",
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta,
                   "logprobs": []}),
            out,
        );
    }

    fn arguments(&mut self, call: usize, fragment: String, out: &mut Vec<u8>) {
        let Some(&index) = self.calls.get(call).filter(|&&i| i != usize::MAX) else {
            return;
        };
        let Some(Item::Call { id, arguments, .. }) = self.items.get_mut(index) else {
            return;
        };
        arguments.push_str(&fragment);
        let id = id.clone();
        self.frame(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": fragment}),
            out,
        );
    }
}

fn item_json(item: &Item, status: &str) -> Value {
    match item {
        Item::Message { id, text } => message_item(id, text, status),
        Item::Call {
            id,
            call_id,
            name,
            arguments,
        } => {
            let arguments = if status == "in_progress" {
                ""
            } else {
                arguments
            };
            call_item(id, call_id, name, arguments, status)
        }
    }
}

impl Render for Encoder {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if let Event::Start { id, .. } = &event {
            self.start(id, out);
            return;
        }
        self.start("", out);
        match event {
            Event::Start { .. } | Event::Thinking(_) => {}
            Event::Text(text) => self.text(text, out),
            Event::ToolStart { index, id, name } => {
                let item_id = format!("fc_{}_{}", self.id.trim_start_matches("resp_"), index);
                let at = self.open(
                    Item::Call {
                        id: item_id,
                        call_id: id,
                        name,
                        arguments: String::new(),
                    },
                    out,
                );
                if index >= self.calls.len() {
                    self.calls.resize(index + 1, usize::MAX);
                }
                self.calls[index] = at;
            }
            Event::ToolArgs { index, fragment } => self.arguments(index, fragment, out),
            Event::Stop(stop) => self.stop = Some(stop),
            Event::Usage(usage) => self.usage = usage,
            Event::Error(message) => {
                self.ended = true;
                self.close(out);
                let mut response = self.response(("failed", Value::Null), Some(self.usage));
                response["error"] = json!({"code": "server_error", "message": message});
                self.frame("response.failed", json!({"response": response}), out);
            }
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.start("", out);
        self.close(out);
        let stop = self.stop.unwrap_or(StopReason::EndTurn);
        let status = status_of(stop);
        let kind = if status.0 == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let response = self.response(status, Some(self.usage));
        self.frame(kind, json!({"response": response}), out);
    }
}
