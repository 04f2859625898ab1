//! A scriptable fake OpenAI-compatible upstream for edge tests: realistic chat, streaming,
//! tool calls, embeddings and `n`, plus every failure an upstream can show (statuses with
//! rate-limit headers, hangs, slow first bytes, broken streams, malformed and oversized bodies).
//! What it does is chosen per upstream model id, optionally as a sequence per call.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the fake does for one call.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answers like a real server: chat (tool calls when tools are offered and no tool result
    /// came back yet), SSE when streaming (usage when asked), embeddings, completions, `n`.
    Real,
    /// Answers `status` with `headers` and `body`.
    Status {
        /// HTTP status.
        status: u16,
        /// Extra headers.
        headers: Vec<(&'static str, String)>,
        /// Body text.
        body: String,
    },
    /// Never sends a response head.
    Hang,
    /// Sends the head at once, then no body byte for `delay`, then answers normally.
    SlowFirstByte {
        /// The stall.
        delay: Duration,
    },
    /// Streams `events` SSE chunks then breaks the connection.
    BreakMidStream {
        /// Chunks sent before the break.
        events: usize,
    },
    /// Streams `events` SSE chunks then stalls forever.
    StallMidStream {
        /// Chunks sent before the stall.
        events: usize,
    },
    /// Answers 200 with a body that is not JSON.
    Malformed,
    /// Answers 200 with a JSON body of about `bytes` bytes.
    Oversized {
        /// Approximate size.
        bytes: usize,
    },
}

impl Behavior {
    /// A 429 with the given headers.
    pub fn rate_limited(headers: &[(&'static str, &str)]) -> Self {
        Self::Status {
            status: 429,
            headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            body: json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}).to_string(),
        }
    }

    /// A bare status with an OpenAI-shaped error body.
    pub fn status(status: u16, message: &str) -> Self {
        Self::Status {
            status,
            headers: Vec::new(),
            body: json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}).to_string(),
        }
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Query string without `?`, empty when none.
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Parsed body.
    pub body: Value,
}

impl Call {
    /// A header's value as text, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The bearer token sent, if any.
    pub fn bearer(&self) -> Option<String> {
        self.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    }
}

#[derive(Default)]
struct Script {
    /// Per upstream model: behaviours used in order, the last one repeating.
    by_model: HashMap<String, Vec<Behavior>>,
    /// Per bearer token: behaviour overriding the model's (credential tests).
    by_key: HashMap<String, Behavior>,
    calls: Vec<Call>,
    served: HashMap<String, usize>,
}

/// The fake server.
#[derive(Clone)]
pub struct OpenAiFake {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: Arc<JoinHandle<()>>,
}

impl OpenAiFake {
    /// Starts on an ephemeral loopback port; every model behaves `Real` until scripted.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_at("127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    /// Starts on `addr` (a stopped fake's address, to bring it back).
    pub async fn start_at(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/completions", post(handle))
            .route("/v1/embeddings", post(handle))
            .route("/v1/models", axum::routing::get(list_models))
            // Azure OpenAI's and Cloudflare Workers AI's URL shapes.
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(handle),
            )
            .route(
                "/client/v4/accounts/{account}/ai/v1/chat/completions",
                post(handle),
            )
            .with_state(script.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake upstream stopped");
            }
        });
        Ok(Self {
            addr,
            script,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:N/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scripts `model`: one behaviour per call in order, the last repeating.
    pub fn script(&self, model: &str, behaviors: Vec<Behavior>) {
        self.lock().by_model.insert(model.to_owned(), behaviors);
    }

    /// Scripts calls that carry bearer `key` (whatever the model).
    pub fn script_key(&self, key: &str, behavior: Behavior) {
        self.lock().by_key.insert(key.to_owned(), behavior);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Calls that asked for `model`.
    pub fn calls_for(&self, model: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.body["model"] == model)
            .count()
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn handle(
    State(script): State<Arc<Mutex<Script>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "fake: body is not JSON").into_response();
    };
    let call = Call {
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body,
    };
    let behavior = {
        let mut s = script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.calls.push(call.clone());
        let model = call.body["model"].as_str().unwrap_or_default().to_owned();
        let by_key = call.bearer().and_then(|k| s.by_key.get(&k).cloned());
        let n = *s.served.entry(model.clone()).or_default();
        s.served.insert(model.clone(), n + 1);
        by_key.unwrap_or_else(|| {
            s.by_model
                .get(&model)
                .map(|list| list[n.min(list.len().saturating_sub(1))].clone())
                .unwrap_or(Behavior::Real)
        })
    };
    respond(behavior, &call).await
}

/// `GET /v1/models`: the scripted models (a health check's target); recorded as a call.
async fn list_models(
    State(script): State<Arc<Mutex<Script>>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = script
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    s.calls.push(Call {
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: Value::Null,
    });
    let data: Vec<Value> = s
        .by_model
        .keys()
        .map(|id| json!({"id": id, "object": "model", "owned_by": "fake"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn respond(behavior: Behavior, call: &Call) -> Response {
    match behavior {
        Behavior::Real => real(call),
        Behavior::Status {
            status,
            headers,
            body,
        } => {
            let mut r = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [("content-type", "application/json")],
                body,
            )
                .into_response();
            for (k, v) in headers {
                if let Ok(v) = v.parse() {
                    r.headers_mut().insert(k, v);
                }
            }
            r
        }
        Behavior::Hang => {
            std::future::pending::<()>().await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Behavior::SlowFirstByte { delay } => {
            let answer = real(call);
            let (parts, body) = answer.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let stream = futures::stream::once(async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(bytes)
            });
            Response::from_parts(parts, Body::from_stream(stream))
        }
        Behavior::BreakMidStream { events } => {
            let chunks = sse_chunks(call, false);
            let head: Vec<Result<Bytes, std::io::Error>> =
                chunks.into_iter().take(events).map(Ok).collect();
            // A pause first, so the sent chunks leave before the connection breaks.
            let stream = futures::stream::iter(head).chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(std::io::Error::other("fake: connection broken"))
            }));
            sse_response(Body::from_stream(stream))
        }
        Behavior::StallMidStream { events } => {
            let chunks = sse_chunks(call, false);
            let head: Vec<Result<Bytes, Infallible>> =
                chunks.into_iter().take(events).map(Ok).collect();
            let stream = futures::stream::iter(head).chain(futures::stream::once(async {
                std::future::pending::<()>().await;
                Ok(Bytes::new())
            }));
            sse_response(Body::from_stream(stream))
        }
        Behavior::Malformed => (
            [("content-type", "application/json")],
            "{\"id\":\"chatcmpl-bad\",\"choices\":[",
        )
            .into_response(),
        Behavior::Oversized { bytes } => {
            let pad = "x".repeat(bytes);
            (
                [("content-type", "application/json")],
                format!("{{\"id\":\"big\",\"pad\":\"{pad}\"}}"),
            )
                .into_response()
        }
    }
}

fn sse_response(body: Body) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

fn model_of(call: &Call) -> String {
    call.body["model"].as_str().unwrap_or("fake").to_owned()
}

/// Whether the chat offers tools and has no tool result yet (so the answer is a tool call).
fn wants_tool_call(call: &Call) -> bool {
    let offers = call.body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let answered = call.body["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
    offers && !answered
}

fn usage() -> Value {
    json!({"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21})
}

fn real(call: &Call) -> Response {
    let model = model_of(call);
    if call.path.ends_with("/embeddings") {
        let inputs = match &call.body["input"] {
            Value::Array(items) => items.len(),
            _ => 1,
        };
        let data: Vec<Value> = (0..inputs)
            .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, i as f64]}))
            .collect();
        return axum::Json(json!({
            "object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        }))
        .into_response();
    }
    if call.body["stream"] == true {
        let include_usage = call.body["stream_options"]["include_usage"] == true;
        let chunks: Vec<Result<Bytes, Infallible>> = sse_chunks(call, include_usage)
            .into_iter()
            .map(Ok)
            .collect();
        return sse_response(Body::from_stream(futures::stream::iter(chunks)));
    }
    let n = call.body["n"].as_u64().unwrap_or(1).max(1);
    if call.path.ends_with("/completions") && !call.path.ends_with("/chat/completions") {
        let choices: Vec<Value> = (0..n)
            .map(|i| json!({"index": i, "text": " world", "logprobs": null, "finish_reason": "stop"}))
            .collect();
        return axum::Json(json!({
            "id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000,
            "model": model, "choices": choices, "usage": usage()
        }))
        .into_response();
    }
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            if wants_tool_call(call) {
                json!({"index": i, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
                ]}, "logprobs": null, "finish_reason": "tool_calls"})
            } else {
                json!({"index": i, "message": {"role": "assistant", "content": format!("Hello from {model} #{i}")}, "logprobs": null, "finish_reason": "stop"})
            }
        })
        .collect();
    axum::Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
        "model": model, "system_fingerprint": "fp_fake", "choices": choices, "usage": usage()
    }))
    .into_response()
}

/// A streamed chat answer as SSE frames: role, two content deltas (or a tool call in fragments
/// when tools are offered and none has answered yet), finish, optional usage, DONE.
pub fn sse_chunks(call: &Call, include_usage: bool) -> Vec<Bytes> {
    let model = model_of(call);
    let null_usage = if include_usage { ",\"usage\":null" } else { "" };
    let frame = |choices: Value| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"{model}\",\"choices\":{choices}{null_usage}}}\n\n"
        ))
    };
    let mut out = vec![frame(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    )];
    if wants_tool_call(call) {
        // The call opens with its id and name, then its arguments arrive in fragments.
        out.extend([
            frame(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_abc123",
                "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
                "finish_reason": null}]),
            ),
            frame(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": "{\"city\": "}}]}, "finish_reason": null}])),
            frame(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": "\"Paris\"}"}}]}, "finish_reason": null}])),
            frame(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
        ]);
    } else {
        out.extend([
            frame(json!([{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}])),
            frame(json!([{"index": 0, "delta": {"content": " world"}, "finish_reason": null}])),
            frame(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
        ]);
    }
    if include_usage {
        out.push(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"{model}\",\"choices\":[],\"usage\":{}}}\n\n",
            usage()
        )));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}
