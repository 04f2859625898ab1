//! A fake provider whose catalog changes under a test: `GET /v1/models` in OpenRouter's shape
//! (pricing marks free and paid, context lengths, modalities) and a chat endpoint whose answer
//! per model is scripted (200, or a status such as 404, 429 or 401).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One model in the fake's catalog.
#[derive(Debug, Clone)]
pub struct FakeModel {
    /// Model id.
    pub id: String,
    /// Listed with zero pricing.
    pub free: bool,
    /// Listed context length.
    pub context_length: u32,
    /// Listed as accepting images.
    pub vision: bool,
    /// Listed as an embedding model.
    pub embed: bool,
    /// Milliseconds a chat for it waits before answering (a slower server).
    pub delay_ms: u64,
}

impl FakeModel {
    /// A text model, free or paid, with an 8k window.
    pub fn new(id: &str, free: bool) -> Self {
        Self {
            id: id.into(),
            free,
            context_length: 8192,
            vision: false,
            embed: false,
            delay_ms: 0,
        }
    }
}

#[derive(Default)]
struct Inner {
    models: Vec<FakeModel>,
    /// Status per model for chat; 200 when absent.
    answers: HashMap<String, u16>,
    /// Status per bearer token, over the model's.
    key_answers: HashMap<String, u16>,
    /// (model, bearer) of every chat.
    chats: Vec<(String, String)>,
    listings: usize,
}

/// The fake provider.
#[derive(Clone)]
pub struct CatalogFake {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: Arc<JoinHandle<()>>,
}

impl CatalogFake {
    /// Starts on an ephemeral loopback port listing `models`.
    pub async fn start(models: Vec<FakeModel>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner {
            models,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v1/models", get(list))
            .route("/v1/chat/completions", post(chat))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "catalog fake stopped");
            }
        });
        Ok(Self {
            addr,
            inner,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:N/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the catalog.
    pub fn set_models(&self, models: Vec<FakeModel>) {
        self.lock().models = models;
    }

    /// Makes chats for `model` answer `status` (200 answers normally).
    pub fn answer(&self, model: &str, status: u16) {
        self.lock().answers.insert(model.into(), status);
    }

    /// Makes every chat carrying bearer `key` answer `status`.
    pub fn answer_key(&self, key: &str, status: u16) {
        self.lock().key_answers.insert(key.into(), status);
    }

    /// Chats received for `model`.
    pub fn chats_for(&self, model: &str) -> usize {
        self.lock().chats.iter().filter(|(m, _)| m == model).count()
    }

    /// Listings served so far.
    pub fn listings(&self) -> usize {
        self.lock().listings
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn list(State(inner): State<Arc<Mutex<Inner>>>) -> Json<Value> {
    let mut inner = inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    inner.listings += 1;
    let data: Vec<Value> = inner
        .models
        .iter()
        .map(|m| {
            let price = if m.free { "0" } else { "0.000001" };
            let inputs = if m.vision {
                json!(["text", "image"])
            } else {
                json!(["text"])
            };
            let outputs = if m.embed {
                json!(["embeddings"])
            } else {
                json!(["text"])
            };
            json!({"id": m.id, "object": "model", "context_length": m.context_length,
                   "pricing": {"prompt": price, "completion": price},
                   "architecture": {"input_modalities": inputs, "output_modalities": outputs}})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn chat(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let (status, delay_ms) = {
        let mut inner = inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let delay_ms = inner
            .models
            .iter()
            .find(|m| m.id == model)
            .map_or(0, |m| m.delay_ms);
        let status = inner
            .key_answers
            .get(&bearer)
            .or_else(|| inner.answers.get(&model))
            .copied()
            .unwrap_or(200);
        inner.chats.push((model.clone(), bearer));
        (status, delay_ms)
    };
    // A slower server: the whole answer waits, so its first byte does too.
    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    if status == 200 {
        return Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }))
        .into_response();
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": format!("fake: {status}"), "type": "fake_error",
                                "param": null, "code": null}});
    (code, Json(body)).into_response()
}
