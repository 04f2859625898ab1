//! Canonical answers as Anthropic messages, and back; errors in Anthropic's shape.

use serde_json::{Value, json};

use super::request::encode_part;
use crate::dialect::canonical::{Answer, Part, StopReason, Usage};

/// The `stop_reason` of a canonical stop reason.
pub fn stop_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::ContentFilter => "refusal",
    }
}

/// The canonical stop reason of a `stop_reason`.
pub fn stop_of(reason: &str) -> StopReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// Anthropic's `usage` object: `input_tokens` excludes what was read from the cache.
pub fn usage_json(u: Usage) -> Value {
    json!({
        "input_tokens": u.input.saturating_sub(u.cached),
        "output_tokens": u.output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached,
    })
}

/// The canonical usage of an Anthropic `usage` object.
pub fn usage_of(u: &Value) -> Usage {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    Usage {
        input: n("input_tokens") + cached + n("cache_creation_input_tokens"),
        output: n("output_tokens"),
        cached,
    }
}

/// A message id: the upstream's when it looks like Anthropic's, else `msg_` and its own.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// The Messages answer of `answer`.
pub fn encode(answer: &Answer) -> Value {
    let content: Vec<Value> = answer
        .parts
        .iter()
        .filter(|p| !matches!(p, Part::Text(t) if t.is_empty()))
        .map(encode_part)
        .collect();
    json!({
        "id": message_id(&answer.id),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": stop_reason(answer.stop),
        "stop_sequence": null,
        "usage": usage_json(answer.usage),
    })
}

/// The canonical answer of a Messages answer body; `None` when it is not one.
pub fn decode(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v["type"] != "message" {
        return None;
    }
    let mut parts = Vec::new();
    for block in v["content"].as_array()? {
        let text = |field: &str| block[field].as_str().unwrap_or_default().to_owned();
        match block["type"].as_str() {
            Some("text") => parts.push(Part::Text(text("text"))),
            Some("tool_use") => parts.push(Part::ToolCall {
                id: text("id"),
                name: text("name"),
                arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            Some("thinking") => parts.push(Part::Thinking {
                text: text("thinking"),
                signature: text("signature"),
            }),
            _ => {}
        }
    }
    Some(Answer {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        model: v["model"].as_str().unwrap_or_default().to_owned(),
        parts,
        stop: stop_of(v["stop_reason"].as_str().unwrap_or_default()),
        usage: usage_of(&v["usage"]),
    })
}

/// Anthropic's error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 502 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

/// An Anthropic error body.
pub fn error_json(status: u16, message: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    })
}

/// The message of an Anthropic error body, when it is one.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["error"]["message"].as_str().map(str::to_owned)
}
