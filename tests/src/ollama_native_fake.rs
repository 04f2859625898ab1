//! A fake Ollama that serves only its native API (`POST /api/chat`, `GET /api/tags`), with the
//! real wire shapes: NDJSON streams (the default), tool-call arguments as objects arriving
//! whole, `done_reason` and the token counts on the last line. Its `/v1/*` answers 404 in plain
//! text, as a server without the OpenAI surface does, so the edge uses the native API. A
//! `tool_calls` answer comes when tools are offered and no `tool` message is in the history.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The fake server.
#[derive(Clone)]
pub struct OllamaNativeFake {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Value>>>,
    task: Arc<JoinHandle<()>>,
}

impl OllamaNativeFake {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/chat", post(chat))
            .route(
                "/api/tags",
                get(|| async { axum::Json(json!({"models": [{"name": "llama-up:latest"}]})) }),
            )
            .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
            .with_state(calls.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake Ollama upstream stopped");
            }
        });
        Ok(Self {
            addr,
            calls,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:N`, as an Ollama endpoint's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `/api/chat` body so far.
    pub fn calls(&self) -> Vec<Value> {
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

async fn chat(State(calls): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid JSON"})),
        )
            .into_response();
    };
    calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(body.clone());
    let model = body["model"].as_str().unwrap_or("llama").to_owned();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let offers = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let answered = messages.iter().any(|m| m["role"] == "tool");
    let line = |message: Value, done: bool| {
        let mut v = json!({"model": model, "created_at": "2026-01-01T00:00:00Z",
                           "message": message, "done": done});
        if done {
            v["done_reason"] = json!("stop");
            v["prompt_eval_count"] = json!(8);
            v["eval_count"] = json!(5);
            v["total_duration"] = json!(1_000_000);
        }
        v
    };
    let lines = if offers && !answered {
        vec![
            line(
                json!({"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}),
                false,
            ),
            line(json!({"role": "assistant", "content": ""}), true),
        ]
    } else {
        vec![
            line(json!({"role": "assistant", "content": "Hello"}), false),
            line(json!({"role": "assistant", "content": " world"}), false),
            line(json!({"role": "assistant", "content": ""}), true),
        ]
    };
    // Streaming is Ollama's default.
    if body["stream"] != false {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        return ([("content-type", "application/x-ndjson")], text).into_response();
    }
    let mut content = String::new();
    let mut calls_made = Vec::new();
    for l in &lines {
        content.push_str(l["message"]["content"].as_str().unwrap_or_default());
        if let Some(c) = l["message"]["tool_calls"].as_array() {
            calls_made.extend(c.iter().cloned());
        }
    }
    let mut message = json!({"role": "assistant", "content": content});
    if !calls_made.is_empty() {
        message["tool_calls"] = Value::Array(calls_made);
    }
    axum::Json(line(message, true)).into_response()
}
