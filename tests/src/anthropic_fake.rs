//! A fake Anthropic Messages API (`POST /v1/messages`) with the real wire shapes: `x-api-key`
//! and `anthropic-version` required, message and error objects, the stream's exact event
//! sequence (with a `ping`), tool_use answers with `input_json_delta` fragments when tools are
//! offered and no tool_result has come back, `anthropic-ratelimit-*` headers, and scripted
//! failures by upstream model: `limited-up` answers 429 with `retry-after`, `overloaded-up`
//! answers 529.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct AnthropicCall {
    /// `x-api-key`, when sent.
    pub api_key: Option<String>,
    /// `anthropic-version`, when sent.
    pub version: Option<String>,
    /// The parsed body.
    pub body: Value,
}

/// The fake server.
#[derive(Clone)]
pub struct AnthropicFake {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<AnthropicCall>>>,
    task: Arc<JoinHandle<()>>,
}

impl AnthropicFake {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/messages", post(handle))
            .with_state(calls.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake Anthropic upstream stopped");
            }
        });
        Ok(Self {
            addr,
            calls,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:N/v1`, as an endpoint's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<AnthropicCall> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type": "error", "error": {"type": kind, "message": message},
                      "request_id": "req_fake"});
    (status, axum::Json(body)).into_response()
}

/// Whether the request offers tools and has no tool_result yet.
fn wants_tool(body: &Value) -> bool {
    let offers = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let answered = body["messages"].as_array().is_some_and(|m| {
        m.iter().any(|m| {
            m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
        })
    });
    offers && !answered
}

async fn handle(
    State(calls): State<Arc<Mutex<Vec<AnthropicCall>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid_request_error", "body is not JSON");
    };
    let call = AnthropicCall {
        api_key: header("x-api-key"),
        version: header("anthropic-version"),
        body: body.clone(),
    };
    calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(call.clone());
    if call.api_key.is_none() || header("authorization").is_some() {
        return error(401, "authentication_error", "x-api-key header is required");
    }
    if call.version.is_none() {
        return error(
            400,
            "invalid_request_error",
            "anthropic-version header is required",
        );
    }
    if !body["max_tokens"].is_u64() {
        return error(400, "invalid_request_error", "max_tokens: Field required");
    }
    let model = body["model"].as_str().unwrap_or("claude-fake").to_owned();
    match model.as_str() {
        "limited-up" => {
            let mut r = error(
                429,
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("30"));
            return r;
        }
        "overloaded-up" => return error(529, "overloaded_error", "Overloaded"),
        _ => {}
    }
    let tool = wants_tool(&body);
    let limits = [
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("anthropic-ratelimit-tokens-limit", "40000"),
    ];
    if body["stream"] == true {
        let chunks: Vec<Result<Bytes, Infallible>> =
            stream_events(&model, tool).into_iter().map(Ok).collect();
        let mut r = (
            [("content-type", "text/event-stream")],
            Body::from_stream(futures::stream::iter(chunks)),
        )
            .into_response();
        for (k, v) in limits {
            r.headers_mut().insert(k, HeaderValue::from_static(v));
        }
        return r;
    }
    let (content, stop) = if tool {
        (
            json!([{"type": "text", "text": "Let me check."},
                   {"type": "tool_use", "id": "toolu_fake1", "name": "get_weather",
                    "input": {"city": "Paris"}}]),
            "tool_use",
        )
    } else {
        (
            json!([{"type": "text", "text": format!("Hello from {model}")}]),
            "end_turn",
        )
    };
    let mut r = axum::Json(json!({
        "id": "msg_fake1", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 9, "output_tokens": 12,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }))
    .into_response();
    for (k, v) in limits {
        r.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    r
}

/// A streamed answer in Anthropic's exact event sequence, one frame per chunk.
pub fn stream_events(model: &str, tool: bool) -> Vec<Bytes> {
    let frame = |data: Value| {
        let kind = data["type"].as_str().unwrap_or_default().to_owned();
        Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
    };
    let mut out = vec![
        frame(json!({"type": "message_start", "message": {
            "id": "msg_fake1", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 1}}})),
        frame(json!({"type": "content_block_start", "index": 0,
                     "content_block": {"type": "text", "text": ""}})),
        frame(json!({"type": "ping"})),
    ];
    if tool {
        out.extend([
            frame(json!({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": "Let me check."}})),
            frame(json!({"type": "content_block_stop", "index": 0})),
            frame(json!({"type": "content_block_start", "index": 1, "content_block":
                         {"type": "tool_use", "id": "toolu_fake1", "name": "get_weather", "input": {}}})),
            frame(json!({"type": "content_block_delta", "index": 1,
                         "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}})),
            frame(json!({"type": "content_block_delta", "index": 1,
                         "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
            frame(json!({"type": "content_block_stop", "index": 1})),
            frame(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                         "stop_sequence": null}, "usage": {"output_tokens": 12}})),
        ]);
    } else {
        out.extend([
            frame(json!({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": "Hello"}})),
            frame(json!({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": " world"}})),
            frame(json!({"type": "content_block_stop", "index": 0})),
            frame(
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                         "stop_sequence": null}, "usage": {"output_tokens": 12}}),
            ),
        ]);
    }
    out.push(frame(json!({"type": "message_stop"})));
    out
}
