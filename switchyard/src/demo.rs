//! The built-in `demo` model of `switchyard up --demo`: a tiny OpenAI-compatible server.
//!
//! It runs on its own loopback port and is registered as an ordinary endpoint, so requests for
//! `demo` take the same table lookup, forwarding and streaming path as any real backend.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The model name the demo serves.
pub const MODEL: &str = "demo";

#[derive(Default)]
struct Demo {
    served: AtomicU64,
}

/// The demo server's routes.
pub fn app() -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .with_state(Arc::new(Demo::default()))
}

/// Serves the demo model on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "switchyard"}],
    }))
}

async fn chat(State(demo): State<Arc<Demo>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("request body is not valid JSON: {e}"),
                None,
            );
        }
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "`messages` is required and must be an array",
            Some("messages"),
        );
    };
    let said = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let reply = reply_to(said);
    let prompt_tokens = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(|c| c.split_whitespace().count())
        .sum::<usize>()
        .max(1);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": reply.split_whitespace().count(),
        "total_tokens": prompt_tokens + reply.split_whitespace().count(),
    });
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(MODEL)
        .to_string();
    let id = format!(
        "chatcmpl-demo{}",
        demo.served.fetch_add(1, Ordering::Relaxed) + 1
    );
    let created = now_secs();
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        return stream(id, created, model, &reply, include_usage.then_some(usage));
    }
    Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage,
    }))
    .into_response()
}

/// The deterministic answer: the same question always gets the same reply.
fn reply_to(said: &str) -> String {
    let said: String = said.chars().take(200).collect();
    format!(
        "Hello from Switchyard's demo model! You said: \"{said}\". \
         Point Switchyard at Ollama, LM Studio, vLLM or LiteLLM to serve real models."
    )
}

fn stream(id: String, created: u64, model: String, reply: &str, usage: Option<Value>) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for (i, word) in reply.split(' ').enumerate() {
        let piece = if i == 0 {
            word.to_string()
        } else {
            format!(" {word}")
        };
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if let Some(usage) = usage {
        events.push(json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage,
        }));
    }
    let mut frames: Vec<Result<Bytes, Infallible>> = events
        .into_iter()
        .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
        .collect();
    frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(futures::stream::iter(frames)))
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot build the stream",
                None,
            )
        })
}

fn error(status: StatusCode, message: &str, param: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}});
    (status, Json(body)).into_response()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
