//! A telemetry receiver for the edge's usage webhook and OTLP/HTTP exporter: it records every
//! `POST` (path, `authorization`, JSON body) and can be up, down (every `POST` answers 503)
//! or slow (each answer waits), switched while the edge runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 and the body is recorded.
    Up,
    /// 503 and nothing is recorded.
    Down,
    /// Waits this long, then as `Up`.
    Slow(Duration),
}

/// One `POST` the receiver took.
#[derive(Debug, Clone)]
pub struct Post {
    /// The request path (`/hook`, `/v1/traces`).
    pub path: String,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
}

#[derive(Debug)]
struct Shared {
    mode: Mode,
    posts: Vec<Post>,
    /// `POST`s answered 503.
    refused: usize,
}

/// A receiver on an ephemeral loopback port.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: Arc<JoinHandle<()>>,
}

impl Receiver {
    /// Starts answering as `mode`.
    pub async fn start(mode: Mode) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared {
            mode,
            posts: Vec::new(),
            refused: 0,
        }));
        let app = Router::new()
            .fallback(axum::routing::post(take))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "telemetry receiver stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:N`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches how it answers from now on.
    pub fn set(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// Every `POST` recorded so far.
    pub fn posts(&self) -> Vec<Post> {
        self.lock().posts.clone()
    }

    /// How many `POST`s were answered 503.
    pub fn refused(&self) -> usize {
        self.lock().refused
    }

    /// The elements of every recorded JSON-array body (webhook events), in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.posts()
            .into_iter()
            .flat_map(|p| p.body.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Every span in every recorded OTLP export.
    pub fn spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        for post in self.posts() {
            for rs in post.body["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(ss["spans"].as_array().cloned().unwrap_or_default());
                }
            }
        }
        spans
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

async fn take(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mode = shared.lock().unwrap_or_else(PoisonError::into_inner).mode;
    match mode {
        Mode::Down => {
            shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .refused += 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        Mode::Slow(wait) => tokio::time::sleep(wait).await,
        Mode::Up => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let post = Post {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .posts
        .push(post);
    StatusCode::OK
}
