//! Canonical answers as Responses `response` objects, and back. Text becomes one `message`
//! output item of `output_text` parts, each tool call a `function_call` item whose `call_id` is
//! the canonical id; a token budget or a content filter ending the answer makes it
//! `incomplete` with `incomplete_details.reason`.

use serde_json::{Value, json};

use crate::dialect::canonical::{Answer, Part, StopReason, Usage, parse_arguments};

/// A response id: the upstream's when it looks like one, else `resp_` and its own (or a
/// random one when it gave none).
pub fn response_id(id: &str) -> String {
    if id.starts_with("resp_") {
        id.to_owned()
    } else if id.is_empty() {
        format!("resp_{:016x}", fastrand::u64(..))
    } else {
        format!("resp_{id}")
    }
}

/// `status` and `incomplete_details` for how an answer ended.
pub fn status_of(stop: StopReason) -> (&'static str, Value) {
    match stop {
        StopReason::MaxTokens => ("incomplete", json!({"reason": "max_output_tokens"})),
        StopReason::ContentFilter => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The Responses `usage` object.
pub fn usage_json(u: Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "input_tokens_details": {"cached_tokens": u.cached},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.input + u.output,
    })
}

/// A `response` object. `status` is its state; `usage` is left out while it is unknown.
pub fn response_json(
    id: &str,
    model: &str,
    created: i64,
    (status, incomplete): (&str, Value),
    output: Vec<Value>,
    usage: Option<Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
    })
}

/// A finished `message` output item holding `text`.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content: Vec<Value> = if status == "in_progress" {
        Vec::new()
    } else {
        vec![output_text(text)]
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": content})
}

/// An `output_text` content part.
pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `function_call` output item.
pub fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": arguments, "status": status})
}

/// The `response` object of `answer`, created at `created` (Unix seconds).
pub fn encode(answer: &Answer, created: i64) -> Value {
    let id = response_id(&answer.id);
    let suffix = id.trim_start_matches("resp_");
    let text: String = answer
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let mut output = Vec::new();
    if !text.is_empty() {
        output.push(message_item(&format!("msg_{suffix}"), &text, "completed"));
    }
    for (i, part) in answer.parts.iter().enumerate() {
        if let Part::ToolCall {
            id: call_id,
            name,
            arguments,
        } = part
        {
            let item_id = format!("fc_{suffix}_{i}");
            let args = arguments.to_string();
            output.push(call_item(&item_id, call_id, name, &args, "completed"));
        }
    }
    response_json(
        &id,
        &answer.model,
        created,
        status_of(answer.stop),
        output,
        Some(answer.usage),
    )
}

/// The canonical answer of a `response` object; `None` when it is not one.
pub fn decode(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    decode_value(&v)
}

/// [`decode`] over parsed JSON (the stream's final event carries the same object).
pub fn decode_value(v: &Value) -> Option<Answer> {
    if v["object"] != "response" {
        return None;
    }
    let mut parts = Vec::new();
    for item in v["output"].as_array()? {
        let s = |k: &str| item[k].as_str().unwrap_or_default().to_owned();
        match item["type"].as_str() {
            Some("message") => {
                let text: String = item["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["type"] == "output_text")
                    .filter_map(|c| c["text"].as_str())
                    .collect();
                if !text.is_empty() {
                    parts.push(Part::Text(text));
                }
            }
            Some("function_call") => parts.push(Part::ToolCall {
                id: s("call_id"),
                name: s("name"),
                arguments: parse_arguments(&s("arguments")),
            }),
            _ => {}
        }
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let stop = match v["incomplete_details"]["reason"].as_str() {
        Some("max_output_tokens") => StopReason::MaxTokens,
        Some("content_filter") => StopReason::ContentFilter,
        _ if has_calls => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    };
    let u = &v["usage"];
    Some(Answer {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        model: v["model"].as_str().unwrap_or_default().to_owned(),
        parts,
        stop,
        usage: Usage {
            input: u["input_tokens"].as_u64().unwrap_or(0),
            output: u["output_tokens"].as_u64().unwrap_or(0),
            cached: u["input_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
        },
    })
}
