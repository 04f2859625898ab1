//! Test scaffolding shared by the edge's integration tests: tables, a fake upstream model server,
//! a running edge app, and waiting on conditions with a deadline.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use switchyard_edge::{Config, EdgeState, app};
use switchyard_proto::v1;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A wire routing table under construction.
#[derive(Default)]
pub struct TableBuilder {
    table: v1::RoutingTable,
}

impl TableBuilder {
    pub fn version(version: u64) -> Self {
        Self {
            table: v1::RoutingTable {
                version,
                ..Default::default()
            },
        }
    }

    pub fn endpoint(mut self, id: &str, base_url: &str, healthy: bool) -> Self {
        self.table.endpoints.push(v1::RouteEndpoint {
            id: id.into(),
            kind: "openai".into(),
            base_url: base_url.into(),
            source: "config".into(),
            node: String::new(),
            healthy,
            ..Default::default()
        });
        self
    }

    /// A model served by `(endpoint id, upstream model)` pairs in preference order.
    pub fn model(mut self, name: &str, deployments: &[(&str, &str)]) -> Self {
        self.table.models.push(v1::ModelRoute {
            name: name.into(),
            deployments: deployments
                .iter()
                .map(|(endpoint, upstream)| v1::Deployment {
                    endpoint_id: (*endpoint).into(),
                    upstream_model: (*upstream).into(),
                    weight: 1,
                    ..Default::default()
                })
                .collect(),
            created: 1_700_000_000,
            owned_by: "switchyard".into(),
        });
        self
    }

    pub fn build(self) -> v1::RoutingTable {
        self.table
    }
}

/// What the fake upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

/// Body the fake upstream answers non-streaming chat with; odd spacing makes byte-for-byte
/// comparison meaningful.
pub const CHAT_BODY: &str = r#"{"id":"chatcmpl-1",  "object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}"#;
/// First SSE event of a streamed chat.
pub const SSE_FIRST: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hel\"}}]}\n\n";
/// SSE events sent once the test releases the stream.
pub const SSE_REST: &str =
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";

/// A fake OpenAI-compatible server: records requests; streams when asked, holding the stream
/// open after the first event until the test calls `release`.
#[derive(Clone)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    gate: Arc<Notify>,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Self {
            addr,
            received: Arc::default(),
            gate: Arc::new(Notify::new()),
        };
        let router = Router::new()
            .route("/v1/chat/completions", post(fake_chat))
            .route("/v1/completions", post(fake_echo))
            .route("/v1/embeddings", post(fake_echo))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Lets a held stream send its remaining events.
    pub fn release(&self) {
        self.gate.notify_one();
    }

    fn record(&self, path: &str, headers: HeaderMap, body: &Bytes) -> serde_json::Value {
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        self.received.lock().unwrap().push(Received {
            path: path.into(),
            headers,
            body: body.clone(),
        });
        body
    }
}

async fn fake_chat(State(fake): State<FakeUpstream>, headers: HeaderMap, body: Bytes) -> Response {
    let body = fake.record("/v1/chat/completions", headers, &body);
    if body["model"] == "limited" {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("content-type", "application/json")],
            "{\"error\":\"slow down\"}",
        )
            .into_response();
    }
    if body["model"] == "hang" {
        // Never answers: exercises the edge's first-byte timeout.
        std::future::pending::<()>().await;
    }
    if body["stream"] != true {
        return ([("content-type", "application/json")], CHAT_BODY).into_response();
    }
    let gate = fake.gate.clone();
    let events = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from(SSE_FIRST)) })
        .chain(futures::stream::once(async move {
            gate.notified().await;
            Ok(Bytes::from(SSE_REST))
        }));
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(events),
    )
        .into_response()
}

async fn fake_echo(
    State(fake): State<FakeUpstream>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.record(uri.path(), headers, &body);
    ([("content-type", "application/json")], body).into_response()
}

/// A test HTTP client. reqwest is built with `rustls-no-provider`, so a crypto provider must be
/// installed before any client exists (the edge installs it too; the first one stays).
pub fn http() -> reqwest::Client {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// GETs `url` with a test client.
pub async fn get(url: String) -> reqwest::Response {
    http().get(url).send().await.unwrap()
}

/// An address nothing listens on.
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

/// Serves `app(state)` with the edge's own server loop on an ephemeral port; returns its base
/// URL (`http://127.0.0.1:N`).
pub async fn serve_app(state: EdgeState) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = switchyard_edge::ServeOptions::from(state.config());
    tokio::spawn(async move {
        switchyard_edge::serve(listener, app(state), options, std::future::pending())
            .await
            .unwrap()
    });
    format!("http://{addr}")
}

/// An edge serving `table` (if any) with no control plane.
pub async fn edge_with(cfg: Config, table: Option<v1::RoutingTable>) -> String {
    let state = EdgeState::new(cfg).unwrap();
    if let Some(table) = table {
        assert!(state.install_table(&table));
    }
    serve_app(state).await
}

/// Polls `check` until it yields `Some`, panicking with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the edge's readiness: the table version when ready.
pub async fn table_version(edge: &str) -> Option<u64> {
    let resp = http()
        .get(format!("{edge}/health/readiness"))
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    let body: serde_json::Value = resp.json().await.ok()?;
    body["table_version"].as_u64()
}
