//! Fake model servers on ephemeral loopback ports, counting what they receive.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The exact body a fake returns for a non-streaming chat completion.
pub const CHAT_BODY: &str = r#"{"id":"chatcmpl-fake1","object":"chat.completion","created":1700000000,"model":"llama3.2:latest","system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there!","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#;

/// What a fake received, for assertions.
#[derive(Debug, Default)]
pub struct Seen {
    /// Parsed bodies of every chat request.
    pub chat_bodies: Vec<Value>,
}

/// A fake Ollama: `/api/tags`, `/api/version` and OpenAI-compatible `/v1/chat/completions`.
pub struct FakeOllama {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    models: Vec<String>,
    seen: Arc<Mutex<Seen>>,
}

impl FakeOllama {
    /// Starts a fake listing `models` on a fresh ephemeral port.
    pub async fn start(models: &[&str]) -> std::io::Result<Self> {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await?, models)
    }

    /// Starts a fake listing `models` on `listener`.
    pub fn start_on(listener: TcpListener, models: &[&str]) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Shared {
            models: models.iter().map(|m| m.to_string()).collect(),
            seen: seen.clone(),
        };
        let app = Router::new()
            .route("/api/tags", get(tags))
            .route(
                "/api/version",
                get(|| async { Json(json!({"version": "0.5.1"})) }),
            )
            .route("/v1/chat/completions", post(chat))
            .with_state(shared);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _stopped = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "fake ollama stopped with an error");
            }
        });
        Ok(Self {
            addr,
            seen,
            stop: Some(stop),
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bodies of the chat requests it received.
    pub fn chat_bodies(&self) -> Vec<Value> {
        self.seen
            .lock()
            .map(|s| s.chat_bodies.clone())
            .unwrap_or_default()
    }

    /// Stops serving and closes the port.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _sent = stop.send(());
        }
        self.task.abort();
        let _joined = (&mut self.task).await;
    }
}

async fn tags(State(shared): State<Shared>) -> Json<Value> {
    let models: Vec<Value> = shared
        .models
        .iter()
        .map(|m| {
            json!({"name": m, "model": m, "modified_at": "2025-05-04T17:37:44.706015396-07:00",
                   "size": 2019393189u64, "digest": "a80c4f17acd5",
                   "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                               "quantization_level": "Q4_K_M"}})
        })
        .collect();
    Json(json!({ "models": models }))
}

async fn chat(State(shared): State<Shared>, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = parsed.get("stream").and_then(Value::as_bool) == Some(true);
    if let Ok(mut seen) = shared.seen.lock() {
        seen.chat_bodies.push(parsed);
    }
    if !stream {
        return ([(header::CONTENT_TYPE, "application/json")], CHAT_BODY).into_response();
    }
    // Three content events 150 ms apart, so a buffering proxy is caught by timing.
    let frames = async_stream::stream! {
        let words = ["Hel", "lo", "!"];
        yield Ok::<_, Infallible>(Bytes::from(chunk(json!({"role": "assistant", "content": ""}), Value::Null)));
        for word in words {
            tokio::time::sleep(Duration::from_millis(150)).await;
            yield Ok(Bytes::from(chunk(json!({"content": word}), Value::Null)));
        }
        yield Ok(Bytes::from(chunk(json!({}), json!("stop"))));
        yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(frames))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn chunk(delta: Value, finish: Value) -> String {
    let event = json!({
        "id": "chatcmpl-fake2", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "llama3.2:latest",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {event}\n\n")
}
