//! Gemini answers as canonical answers (and back, for fakes and tests), `usageMetadata` as
//! canonical usage, and what a Gemini error means for failover. Gemini names its failures in
//! `error.status` (google.rpc codes), not only in the HTTP status: an invalid key is a 400
//! `INVALID_ARGUMENT` with reason `API_KEY_INVALID`, and a quota wall is `RESOURCE_EXHAUSTED`
//! with the wait in a `RetryInfo` detail.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::dialect::canonical::{Answer, Part, StopReason, Usage};
use crate::routing::cooldown;
use crate::upstream::UpstreamError;

/// The stop reason of a `finishReason`; an answer with a `functionCall` part still says
/// `STOP`, which then means it waits for tool results.
pub fn stop_of(finish_reason: &str, has_calls: bool) -> StopReason {
    match finish_reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" | "RECITATION" => {
            StopReason::ContentFilter
        }
        _ if has_calls => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// The `finishReason` of a stop reason.
pub fn finish_of(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter => "SAFETY",
        StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse => "STOP",
    }
}

/// The canonical usage of `usageMetadata` (thoughts count as output, as Gemini bills them).
pub fn usage_of(u: &Value) -> Usage {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    Usage {
        input: n("promptTokenCount"),
        output: n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cached: n("cachedContentTokenCount"),
    }
}

/// A call id for a `functionCall` that brought none (Gemini's often do not).
pub fn call_id(id: &Value, salt: u64, n: usize) -> String {
    match id.as_str().filter(|s| !s.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("call_{salt:012x}_{n}"),
    }
}

/// The parts of one candidate's content.
pub fn parts_of(content: &Value, salt: u64, calls: &mut usize) -> Vec<Part> {
    let mut parts = Vec::new();
    for part in content["parts"].as_array().into_iter().flatten() {
        if let Some(call) = part.get("functionCall") {
            parts.push(Part::ToolCall {
                id: call_id(&call["id"], salt, *calls),
                name: call["name"].as_str().unwrap_or_default().to_owned(),
                arguments: call.get("args").cloned().unwrap_or_else(|| json!({})),
            });
            *calls += 1;
        } else if let Some(text) = part["text"].as_str() {
            if part["thought"] == true {
                parts.push(Part::Thinking {
                    text: text.to_owned(),
                    signature: String::new(),
                });
            } else {
                parts.push(Part::Text(text.to_owned()));
            }
        }
    }
    parts
}

/// The canonical answer of a `generateContent` answer; `None` when it is not one. A prompt
/// Gemini blocked has no candidates: an empty answer stopped by the content filter.
pub fn decode(body: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let candidate = match v["candidates"].get(0) {
        Some(c) => c,
        None if v["promptFeedback"]["blockReason"].is_string() => &Value::Null,
        None => return None,
    };
    let mut calls = 0;
    let parts = parts_of(&candidate["content"], fastrand::u64(..), &mut calls);
    let stop = match candidate["finishReason"].as_str() {
        Some(reason) => stop_of(reason, calls > 0),
        None if candidate.is_null() => StopReason::ContentFilter,
        None => stop_of("STOP", calls > 0),
    };
    Some(Answer {
        id: v["responseId"].as_str().unwrap_or_default().to_owned(),
        model: v["modelVersion"].as_str().unwrap_or_default().to_owned(),
        parts,
        stop,
        usage: usage_of(&v["usageMetadata"]),
    })
}

/// The `generateContent` answer of `answer` (what a Gemini upstream sends).
pub fn encode(answer: &Answer) -> Value {
    let parts: Vec<Value> = answer
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"text": t})),
            Part::Thinking { text, .. } => Some(json!({"text": text, "thought": true})),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({"functionCall": {"id": id, "name": name, "args": arguments}})),
            Part::Image { .. } | Part::ToolResult { .. } => None,
        })
        .collect();
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": finish_of(answer.stop), "index": 0}],
        "usageMetadata": usage_json(answer.usage),
        "modelVersion": answer.model,
        "responseId": answer.id,
    })
}

/// `usageMetadata` of canonical usage.
pub fn usage_json(u: Usage) -> Value {
    json!({"promptTokenCount": u.input, "candidatesTokenCount": u.output,
           "totalTokenCount": u.input + u.output, "cachedContentTokenCount": u.cached})
}

/// The message of a Gemini error body, when it is one.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = error_of(&v)?;
    e["message"].as_str().map(str::to_owned)
}

/// The `error` object of a Gemini error body (some proxies wrap it in a one-element array).
fn error_of(v: &Value) -> Option<&Value> {
    let e = v.get("error").or_else(|| v.get(0)?.get("error"))?;
    e.is_object().then_some(e)
}

/// What a non-2xx Gemini answer means for failover, from its head and body: the google.rpc
/// status decides where it names one, the HTTP status (as for every upstream) otherwise.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Option<UpstreamError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(error) = error_of(&v) else {
        return cooldown::classify(status, headers, now);
    };
    let details = error["details"].as_array().map_or(&[][..], Vec::as_slice);
    let reason = |want: &str| details.iter().any(|d| d["reason"] == want);
    match error["status"].as_str().unwrap_or_default() {
        "RESOURCE_EXHAUSTED" => Some(UpstreamError::RateLimited {
            wait: retry_delay(details)
                .or_else(|| crate::upstream::ratelimit::retry_after(headers, now)),
        }),
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => Some(UpstreamError::Credential { status }),
        _ if reason("API_KEY_INVALID") || reason("API_KEY_EXPIRED") => {
            Some(UpstreamError::Credential { status })
        }
        "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" => Some(UpstreamError::Status { status }),
        _ => cooldown::classify(status, headers, now),
    }
}

/// The wait of a `google.rpc.RetryInfo` detail (`"retryDelay": "37s"`, `"1.5s"`).
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details.iter().find_map(|d| {
        let secs: f64 = d["retryDelay"].as_str()?.strip_suffix('s')?.parse().ok()?;
        (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(status: u16, body: Value) -> Option<UpstreamError> {
        let status = StatusCode::from_u16(status).unwrap();
        classify(
            status,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            SystemTime::now(),
        )
    }

    #[test]
    fn gemini_errors_classify_by_their_rpc_status() {
        let exhausted = json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}});
        let bad_key = json!({"error": {"code": 400, "message": "API key not valid.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}});
        let bad_request =
            json!({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}});
        let table: [(u16, Value, Option<UpstreamError>); 7] = [
            (
                429,
                exhausted.clone(),
                Some(UpstreamError::RateLimited {
                    wait: Some(Duration::from_secs(37)),
                }),
            ),
            // A quota wall some proxies pass on as another status is still a rate limit.
            (
                400,
                exhausted,
                Some(UpstreamError::RateLimited {
                    wait: Some(Duration::from_secs(37)),
                }),
            ),
            (
                400,
                bad_key,
                Some(UpstreamError::Credential {
                    status: StatusCode::BAD_REQUEST,
                }),
            ),
            (400, bad_request, None),
            (
                403,
                json!({"error": {"status": "PERMISSION_DENIED", "message": "no"}}),
                Some(UpstreamError::Credential {
                    status: StatusCode::FORBIDDEN,
                }),
            ),
            (
                503,
                json!({"error": {"status": "UNAVAILABLE", "message": "overloaded"}}),
                Some(UpstreamError::Status {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                }),
            ),
            // Not Gemini's shape: the HTTP status decides, as for every upstream.
            (
                429,
                json!("busy"),
                Some(UpstreamError::RateLimited { wait: None }),
            ),
        ];
        for (status, body, want) in table {
            let got = classified(status, body.clone());
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{status} {body}");
        }
    }

    #[test]
    fn a_blocked_prompt_is_an_empty_filtered_answer() {
        let body = json!({"promptFeedback": {"blockReason": "SAFETY"},
                          "usageMetadata": {"promptTokenCount": 4}});
        let answer = decode(body.to_string().as_bytes()).unwrap();
        assert!(answer.parts.is_empty());
        assert_eq!(answer.stop, StopReason::ContentFilter);
        assert_eq!(answer.usage.input, 4);
    }
}
