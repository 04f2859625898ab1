//! A fake Gemini API (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`) with the real wire shapes: `x-goog-api-key` required,
//! `contents` of `user`/`model` turns checked part by part (a `functionResponse` must name its
//! function, and a `functionCall` its `thoughtSignature`, as Gemini 3 requires),
//! `functionCall` answers without ids when tools are offered and no result has come
//! back, SSE chunks that hold only new parts with `usageMetadata` on each and no end event,
//! google.rpc error bodies, and scripted behaviour by model: `limited-up` answers 429
//! `RESOURCE_EXHAUSTED` with a `RetryInfo` of 30 s, `badkey-up` answers 400 `API_KEY_INVALID`,
//! `paused-up` streams two chunks and then never finishes, `cut-up` closes the stream after its
//! first chunk (no `finishReason`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct GeminiCall {
    /// The model named in the path.
    pub model: String,
    /// `generateContent` or `streamGenerateContent`.
    pub method: String,
    /// The query string (`alt=sse` for streams).
    pub query: Option<String>,
    /// `x-goog-api-key`, when sent.
    pub api_key: Option<String>,
    /// Whether an `authorization` header came too (it must not).
    pub authorization: bool,
    /// The parsed body.
    pub body: Value,
}

/// The fake server.
#[derive(Clone)]
pub struct GeminiFake {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<GeminiCall>>>,
    task: Arc<JoinHandle<()>>,
}

impl GeminiFake {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1beta/models/{target}", post(handle))
            .with_state(calls.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake Gemini upstream stopped");
            }
        });
        Ok(Self {
            addr,
            calls,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:N/v1beta`, as an endpoint's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<GeminiCall> {
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

/// A google.rpc error body.
pub fn error(code: u16, status: &str, message: &str, details: Value) -> Response {
    let http = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"code": code, "message": message, "status": status,
                                "details": details}});
    (http, axum::Json(body)).into_response()
}

/// What is wrong with a request's `contents`, as Gemini would say it.
fn invalid(body: &Value) -> Option<String> {
    let contents = body["contents"].as_array()?;
    if contents.is_empty() {
        return Some("* GenerateContentRequest.contents: contents is not specified".into());
    }
    for (i, content) in contents.iter().enumerate() {
        if !matches!(content["role"].as_str(), Some("user" | "model")) {
            return Some(format!(
                "Please use a valid role: user, model (contents[{i}])."
            ));
        }
        for part in content["parts"].as_array().into_iter().flatten() {
            let known = [
                "text",
                "inlineData",
                "fileData",
                "functionCall",
                "functionResponse",
            ];
            if !known.iter().any(|k| part.get(*k).is_some()) {
                return Some(format!("contents[{i}]: unknown part {part}"));
            }
            // Gemini 3: a call in the history must carry the signature of its thoughts.
            if part.get("functionCall").is_some() && !part["thoughtSignature"].is_string() {
                return Some(
                    "Function call is missing a thought_signature in functionCall parts.".into(),
                );
            }
            if let Some(r) = part.get("functionResponse")
                && r["name"].as_str().is_none_or(str::is_empty)
            {
                return Some(format!("contents[{i}]: functionResponse.name is required"));
            }
        }
    }
    None
}

/// Whether the request offers tools and has no function response yet.
fn wants_tool(body: &Value) -> bool {
    let offers = body["tools"][0]["functionDeclarations"]
        .as_array()
        .is_some_and(|t| !t.is_empty());
    let answered = body["contents"].as_array().is_some_and(|c| {
        c.iter().any(|c| {
            c["parts"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()))
        })
    });
    offers && !answered && body["toolConfig"]["functionCallingConfig"]["mode"] != "NONE"
}

async fn handle(
    State(calls): State<Arc<Mutex<Vec<GeminiCall>>>>,
    Path(target): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, method)) = target.split_once(':') else {
        return error(404, "NOT_FOUND", "no such method", json!([]));
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            json!([]),
        );
    };
    let call = GeminiCall {
        model: model.to_owned(),
        method: method.to_owned(),
        query: query.clone(),
        api_key: headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        authorization: headers.contains_key("authorization"),
        body: body.clone(),
    };
    calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(call.clone());
    if call.api_key.is_none() {
        return error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            json!([]),
        );
    }
    match model {
        "limited-up" => {
            return error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
                json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]),
            );
        }
        "badkey-up" => {
            return error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]),
            );
        }
        _ => {}
    }
    if let Some(message) = invalid(&body) {
        return error(400, "INVALID_ARGUMENT", &message, json!([]));
    }
    let tool = wants_tool(&body);
    match method {
        "generateContent" => axum::Json(whole(model, tool)).into_response(),
        "streamGenerateContent" if query.as_deref() == Some("alt=sse") => {
            let mut chunks = stream_chunks(model, tool);
            if model == "cut-up" {
                chunks.truncate(1);
            }
            let paused = model == "paused-up";
            let frames = futures::stream::unfold((chunks, 0usize), move |(chunks, n)| async move {
                if paused && n == 2 {
                    // Never finishes: the client must have what came so far already.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let chunk = chunks.get(n)?.clone();
                Some((Ok::<_, Infallible>(chunk), (chunks, n + 1)))
            });
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(frames),
            )
                .into_response()
        }
        _ => error(
            400,
            "INVALID_ARGUMENT",
            "streams need alt=sse here",
            json!([]),
        ),
    }
}

fn usage(output: u64) -> Value {
    json!({"promptTokenCount": 7, "candidatesTokenCount": output,
           "totalTokenCount": 7 + output})
}

/// A whole `generateContent` answer.
pub fn whole(model: &str, tool: bool) -> Value {
    let parts = if tool {
        json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "c2lnbmVkLXRob3VnaHRz"}])
    } else {
        json!([{"text": format!("Hello from {model}")}])
    };
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage(11),
        "modelVersion": model,
        "responseId": "gemini-fake-1",
    })
}

/// A streamed answer, one SSE frame per chunk: new parts only, usage on each, no end event.
pub fn stream_chunks(model: &str, tool: bool) -> Vec<Bytes> {
    let chunk = |parts: Value, finish: Option<&str>, output: u64| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        let data = json!({"candidates": [candidate], "usageMetadata": usage(output),
                          "modelVersion": model, "responseId": "gemini-fake-1"});
        Bytes::from(format!("data: {data}\r\n\r\n"))
    };
    if tool {
        vec![
            chunk(json!([{"text": "Let me check."}]), None, 3),
            chunk(
                json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnbmVkLXRob3VnaHRz"}]),
                Some("STOP"),
                11,
            ),
        ]
    } else {
        vec![
            chunk(json!([{"text": "Hello"}]), None, 1),
            chunk(json!([{"text": " world"}]), None, 2),
            chunk(json!([{"text": "!"}]), Some("STOP"), 11),
        ]
    }
}
