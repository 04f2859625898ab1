//! OpenAI chat answers as canonical answers, and back.

use serde_json::{Value, json};

use crate::dialect::canonical::{Answer, Part, StopReason, Usage, parse_arguments};

/// The stop reason of an OpenAI `finish_reason`.
pub fn stop_of(finish_reason: &str) -> StopReason {
    match finish_reason {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// The OpenAI `finish_reason` of a stop reason.
pub fn finish_of(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

/// The usage of an OpenAI `usage` object (missing counts are 0).
pub fn usage_of(u: &Value) -> Usage {
    Usage {
        input: u["prompt_tokens"].as_u64().unwrap_or(0),
        output: u["completion_tokens"].as_u64().unwrap_or(0),
        cached: u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
    }
}

/// The canonical answer of an OpenAI chat completion body; `None` when it is not one.
pub fn decode(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let choice = v["choices"].get(0)?;
    let message = &choice["message"];
    let mut parts = Vec::new();
    if let Some(r) = message["reasoning_content"]
        .as_str()
        .filter(|r| !r.is_empty())
    {
        parts.push(Part::Thinking {
            text: r.to_owned(),
            signature: String::new(),
        });
    }
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        parts.push(Part::Text(text.to_owned()));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let f = &call["function"];
        parts.push(Part::ToolCall {
            id: call["id"].as_str().unwrap_or_default().to_owned(),
            name: f["name"].as_str().unwrap_or_default().to_owned(),
            arguments: parse_arguments(f["arguments"].as_str().unwrap_or_default()),
        });
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let stop = match choice["finish_reason"].as_str() {
        // Some servers say `stop` after tool calls.
        Some("stop") if has_calls => StopReason::ToolUse,
        Some(reason) => stop_of(reason),
        None => StopReason::EndTurn,
    };
    Some(Answer {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        model: v["model"].as_str().unwrap_or_default().to_owned(),
        parts,
        stop,
        usage: usage_of(&v["usage"]),
    })
}

/// The OpenAI chat completion body of `answer`, created at `created` (Unix seconds).
pub fn encode(answer: &Answer, created: i64) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in &answer.parts {
        match part {
            Part::Text(t) => text.push_str(t),
            Part::Thinking { text, .. } => reasoning.push_str(text),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            })),
            Part::Image { .. } | Part::ToolResult { .. } => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    json!({
        "id": answer.id,
        "object": "chat.completion",
        "created": created,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_of(answer.stop)}],
        "usage": {
            "prompt_tokens": answer.usage.input,
            "completion_tokens": answer.usage.output,
            "total_tokens": answer.usage.input + answer.usage.output,
            "prompt_tokens_details": {"cached_tokens": answer.usage.cached},
        },
    })
}

/// The message of an OpenAI error body (`{"error":{"message":…}}`, or a bare string error);
/// `None` when the body says nothing readable.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match &v["error"] {
        Value::String(s) => Some(s.clone()),
        e => e["message"].as_str().map(str::to_owned),
    }
}

/// OpenAI error JSON for an upstream error of another dialect, with the type and code its
/// status means there.
pub fn error_body(status: u16, message: &str) -> bytes::Bytes {
    let (kind, param, code) = match status {
        401 => ("authentication_error", None, None),
        403 => ("permission_error", None, None),
        404 => (
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        ),
        413 => ("invalid_request_error", None, Some("request_too_large")),
        429 => ("rate_limit_error", None, Some("rate_limit_exceeded")),
        500..=599 => ("api_error", None, None),
        _ => ("invalid_request_error", None, None),
    };
    let body = crate::error::error_json(message, kind, param, code);
    bytes::Bytes::from(body.to_string())
}
