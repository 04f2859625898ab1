//! Ollama's API as a client dialect (Open WebUI's Ollama connection, the `ollama` client):
//! `/api/chat`, `/api/generate`, `/api/embed` and the legacy `/api/embeddings` become OpenAI
//! requests, and the engine's answers come back as Ollama's JSON or NDJSON stream (the
//! default, as in Ollama), with tool-call arguments as objects, `done_reason` and token counts.

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::dialect::Render;
use crate::dialect::canonical::{
    Answer, Event, Message, Part, Request, Role, StopReason, Tool, Usage, parse_arguments,
    push_tool_result,
};

/// Which Ollama operation a client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiOp {
    /// `/api/chat`.
    Chat,
    /// `/api/generate` (served as a one-turn chat).
    Generate,
    /// `/api/embed`.
    Embed,
    /// `/api/embeddings` (legacy: one `prompt`, one `embedding`).
    Embeddings,
}

/// An Ollama request as the engine's OpenAI body; `Err` says what is wrong.
pub fn request(op: ApiOp, body: &Value) -> Result<Value, String> {
    let object = body.as_object().ok_or("the body must be a JSON object")?;
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .ok_or("model is required")?;
    match op {
        ApiOp::Embed | ApiOp::Embeddings => {
            let input = match op {
                ApiOp::Embed => object.get("input").cloned(),
                _ => object.get("prompt").cloned(),
            }
            .ok_or(if op == ApiOp::Embed {
                "input is required"
            } else {
                "prompt is required"
            })?;
            Ok(json!({"model": model, "input": input}))
        }
        ApiOp::Chat | ApiOp::Generate => {
            let canonical = conversation(op, object, model)?;
            Ok(crate::dialect::openai::request::encode(&canonical))
        }
    }
}

fn conversation(op: ApiOp, object: &Map<String, Value>, model: &str) -> Result<Request, String> {
    let options = object.get("options").cloned().unwrap_or(Value::Null);
    let mut request = Request {
        model: model.to_owned(),
        // Streaming is Ollama's default.
        stream: object.get("stream").and_then(Value::as_bool) != Some(false),
        max_tokens: options["num_predict"].as_u64(),
        temperature: options["temperature"].as_f64(),
        top_p: options["top_p"].as_f64(),
        top_k: options["top_k"].as_u64(),
        ..Request::default()
    };
    match &options["stop"] {
        Value::String(s) => request.stop.push(s.clone()),
        Value::Array(list) => {
            request.stop = list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        _ => {}
    }
    request.json = match object.get("format") {
        Some(Value::String(f)) if f == "json" => Some(Value::Null),
        Some(schema @ Value::Object(_)) => Some(schema.clone()),
        _ => None,
    };
    request.tools = tools(object)?;
    if op == ApiOp::Generate {
        if let Some(system) = object.get("system").and_then(Value::as_str) {
            request.system.push(system.to_owned());
        }
        let mut parts = images(object.get("images"));
        let prompt = object.get("prompt").and_then(Value::as_str).unwrap_or("");
        parts.push(Part::Text(prompt.to_owned()));
        request.messages.push(Message {
            role: Role::User,
            parts,
        });
        return Ok(request);
    }
    let messages = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages is required")?;
    // Ollama's calls and results often carry no ids: calls get `call_<n>`, and a result
    // answers the oldest call not yet answered.
    let mut unanswered: Vec<String> = Vec::new();
    let mut calls: u32 = 0;
    for (i, m) in messages.iter().enumerate() {
        let content = m["content"].as_str().unwrap_or_default().to_owned();
        match m["role"].as_str() {
            Some("system") => request.system.push(content),
            Some("user") => {
                let mut parts = images(m.get("images"));
                if !content.is_empty() || parts.is_empty() {
                    parts.push(Part::Text(content));
                }
                request.messages.push(Message {
                    role: Role::User,
                    parts,
                });
            }
            Some("assistant") => {
                let parts = assistant_parts(m, content, &mut unanswered, &mut calls);
                request.messages.push(Message {
                    role: Role::Assistant,
                    parts,
                });
            }
            Some("tool") => {
                let call_id = match m["tool_call_id"].as_str() {
                    Some(id) => {
                        unanswered.retain(|u| u != id);
                        id.to_owned()
                    }
                    None if !unanswered.is_empty() => unanswered.remove(0),
                    None => format!("call_{i}"),
                };
                let result = Part::ToolResult {
                    call_id,
                    content,
                    is_error: false,
                };
                push_tool_result(&mut request.messages, result);
            }
            _ => {
                return Err(format!(
                    "messages[{i}].role must be system, user, assistant or tool"
                ));
            }
        }
    }
    Ok(request)
}

/// The request's `tools`, each with its required function name.
fn tools(object: &Map<String, Value>) -> Result<Vec<Tool>, String> {
    let mut tools = Vec::new();
    for (i, tool) in object
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = &tool["function"];
        tools.push(Tool {
            name: f["name"]
                .as_str()
                .ok_or_else(|| format!("tools[{i}].function.name is required"))?
                .to_owned(),
            description: f["description"].as_str().map(str::to_owned),
            parameters: f.get("parameters").cloned().unwrap_or_else(|| json!({})),
        });
    }
    Ok(tools)
}

/// An assistant message's parts: its thinking, its text and its tool calls (numbered
/// `call_<n>` when Ollama sent no id, and noted as `unanswered`).
fn assistant_parts(
    m: &Value,
    content: String,
    unanswered: &mut Vec<String>,
    calls: &mut u32,
) -> Vec<Part> {
    let mut parts = Vec::new();
    if let Some(t) = m["thinking"].as_str().filter(|t| !t.is_empty()) {
        parts.push(Part::Thinking {
            text: t.to_owned(),
            signature: String::new(),
        });
    }
    if !content.is_empty() {
        parts.push(Part::Text(content));
    }
    for call in m["tool_calls"].as_array().into_iter().flatten() {
        let f = &call["function"];
        let id = call["id"].as_str().map_or_else(
            || {
                *calls += 1;
                format!("call_{calls}")
            },
            str::to_owned,
        );
        unanswered.push(id.clone());
        let arguments = match &f["arguments"] {
            Value::String(s) => parse_arguments(s),
            other => other.clone(),
        };
        parts.push(Part::ToolCall {
            id,
            name: f["name"].as_str().unwrap_or_default().to_owned(),
            arguments,
        });
    }
    parts
}

/// Ollama's raw base64 images as image parts (the media type read from the data's start).
fn images(images: Option<&Value>) -> Vec<Part> {
    images
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|data| Part::Image {
            media_type: media_type(data).to_owned(),
            data: data.to_owned(),
        })
        .collect()
}

fn media_type(base64: &str) -> &'static str {
    if base64.starts_with("/9j/") {
        "image/jpeg"
    } else if base64.starts_with("R0lG") {
        "image/gif"
    } else if base64.starts_with("UklG") {
        "image/webp"
    } else {
        "image/png"
    }
}

/// Ollama's `done_reason` for a stop reason.
fn done_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens => "length",
        _ => "stop",
    }
}

/// The closing fields every final answer carries: reason, durations (ns) and counts.
fn closing(line: &mut Value, stop: StopReason, usage: Usage, took_ns: u64) {
    line["done"] = json!(true);
    line["done_reason"] = json!(done_reason(stop));
    line["total_duration"] = json!(took_ns);
    line["load_duration"] = json!(0);
    line["prompt_eval_count"] = json!(usage.input);
    line["prompt_eval_duration"] = json!(0);
    line["eval_count"] = json!(usage.output);
    line["eval_duration"] = json!(took_ns);
}

/// Tool calls as Ollama writes them: arguments as an object.
fn tool_calls(parts: &[Part]) -> Vec<Value> {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({"id": id, "function": {"name": name, "arguments": arguments}})),
            _ => None,
        })
        .collect()
}

/// `created_at` now, in RFC 3339.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::dialect::rfc3339(secs)
}

/// A whole answer in Ollama's shape for `op`.
pub fn answer(op: ApiOp, model: &str, answer: &Answer, took_ns: u64) -> Value {
    let text: String = answer
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let mut line = json!({"model": model, "created_at": now_rfc3339()});
    if op == ApiOp::Generate {
        line["response"] = json!(text);
    } else {
        let mut message = json!({"role": "assistant", "content": text});
        let calls = tool_calls(&answer.parts);
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        let thinking: String = answer
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Thinking { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        if !thinking.is_empty() {
            message["thinking"] = json!(thinking);
        }
        line["message"] = message;
    }
    closing(&mut line, answer.stop, answer.usage, took_ns);
    line
}

/// An OpenAI embeddings answer in Ollama's shape (`embeddings`, or one `embedding`).
pub fn embeddings(op: ApiOp, model: &str, openai: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(openai).ok()?;
    let vectors: Vec<Value> = v["data"]
        .as_array()?
        .iter()
        .map(|d| d["embedding"].clone())
        .collect();
    Some(if op == ApiOp::Embeddings {
        json!({"embedding": vectors.into_iter().next().unwrap_or(Value::Array(Vec::new()))})
    } else {
        json!({"model": model, "embeddings": vectors,
               "prompt_eval_count": v["usage"]["prompt_tokens"].as_u64().unwrap_or(0)})
    })
}

/// Writes canonical events as Ollama's NDJSON stream: a line per text or thinking delta, each
/// tool call whole once its arguments are complete (Ollama clients read arguments as an object),
/// and a final `done: true` line with the reason and counts.
#[derive(Debug)]
pub struct Ndjson {
    op: ApiOp,
    model: String,
    started: Instant,
    /// Calls being assembled: (id, name, argument text).
    calls: Vec<(String, String, String)>,
    stop: Option<StopReason>,
    usage: Usage,
    ended: bool,
}

impl Ndjson {
    /// A stream for `op` answering as `model`.
    pub fn new(op: ApiOp, model: String) -> Self {
        Self {
            op,
            model,
            started: Instant::now(),
            calls: Vec::new(),
            stop: None,
            usage: Usage::default(),
            ended: false,
        }
    }

    fn line(&self, mut fields: Value, out: &mut Vec<u8>) {
        fields["model"] = json!(self.model);
        fields["created_at"] = json!(now_rfc3339());
        if serde_json::to_writer(&mut *out, &fields).is_ok() {
            out.push(b'\n');
        }
    }

    fn text(&self, text: &str, thinking: bool, out: &mut Vec<u8>) {
        let line = match (self.op, thinking) {
            (ApiOp::Generate, false) => json!({"response": text, "done": false}),
            (ApiOp::Generate, true) => json!({"response": "", "thinking": text, "done": false}),
            (_, false) => json!({"message": {"role": "assistant", "content": text}, "done": false}),
            (_, true) => json!({"message": {"role": "assistant", "content": "", "thinking": text},
                                "done": false}),
        };
        self.line(line, out);
    }
}

impl Render for Ndjson {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            Event::Start { .. } => {}
            Event::Text(t) => self.text(&t, false, out),
            Event::Thinking(t) => self.text(&t, true, out),
            Event::ToolStart { index, id, name } => {
                if index >= self.calls.len() {
                    self.calls.resize(index + 1, Default::default());
                }
                self.calls[index] = (id, name, String::new());
            }
            Event::ToolArgs { index, fragment } => {
                if let Some(call) = self.calls.get_mut(index) {
                    call.2.push_str(&fragment);
                }
            }
            Event::Stop(stop) => self.stop = Some(stop),
            Event::Usage(usage) => self.usage = usage,
            Event::Error(message) => {
                self.ended = true;
                if serde_json::to_writer(&mut *out, &json!({"error": message})).is_ok() {
                    out.push(b'\n');
                }
            }
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        if !self.calls.is_empty() && self.op == ApiOp::Chat {
            let calls: Vec<Value> = self
                .calls
                .iter()
                .map(|(id, name, args)| {
                    json!({"id": id, "function": {"name": name, "arguments": parse_arguments(args)}})
                })
                .collect();
            let line = json!({"message": {"role": "assistant", "content": "", "tool_calls": calls},
                              "done": false});
            self.line(line, out);
        }
        let mut last = if self.op == ApiOp::Generate {
            json!({"response": ""})
        } else {
            json!({"message": {"role": "assistant", "content": ""}})
        };
        let took = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        closing(
            &mut last,
            self.stop.unwrap_or(StopReason::EndTurn),
            self.usage,
            took.max(1),
        );
        self.line(last, out);
    }
}
