//! Fakes for discovery scenarios: model servers of every kind with the fact endpoints the agent
//! reads (on any address, so tests can use 127.0.0.2, 127.0.0.3, ...), a tailscaled LocalAPI on a
//! unix socket, and executable stand-ins for `nvidia-smi` and `tailscale`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_node_agent::ServerKind;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What a fake model server answers; change it while it runs with [`FakeBackend::set`].
#[derive(Debug, Clone)]
pub struct FakeState {
    /// Models listed.
    pub models: Vec<String>,
    /// Models reported loaded (Ollama `/api/ps`, LM Studio `loaded_instances` / `state`).
    pub loaded: Vec<String>,
    /// Context length reported for every model (Ollama ps, LM Studio, vLLM `max_model_len`).
    pub context_length: u32,
    /// vLLM `num_requests_running`.
    pub running: u32,
    /// vLLM `num_requests_waiting`.
    pub waiting: u32,
    /// vLLM `kv_cache_usage_perc`.
    pub kv_cache_usage: f64,
    /// LiteLLM readiness `status` is `healthy` (else `unhealthy`, HTTP 503).
    pub ready: bool,
    /// Bearer key required on `/v1/*` (LiteLLM master key); `None` needs none.
    pub api_key: Option<String>,
    /// LM Studio: serve only the legacy `/api/v0/models` (LM Studio before 0.4).
    pub legacy_only: bool,
}

impl FakeState {
    fn new(models: &[&str]) -> Self {
        Self {
            models: models.iter().map(|m| m.to_string()).collect(),
            loaded: Vec::new(),
            context_length: 8192,
            running: 0,
            waiting: 0,
            kv_cache_usage: 0.0,
            ready: true,
            api_key: None,
            legacy_only: false,
        }
    }
}

#[derive(Clone)]
struct Shared {
    kind: ServerKind,
    state: Arc<Mutex<FakeState>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Shared {
    fn state(&self) -> FakeState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// A fake model server of one kind, recording every request as `METHOD /path`.
pub struct FakeBackend {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeBackend {
    /// Starts a fake `kind` listing `models` on `addr` (port 0 picks one).
    pub async fn start(kind: ServerKind, addr: &str, models: &[&str]) -> std::io::Result<Self> {
        Self::start_with(kind, addr, FakeState::new(models)).await
    }

    /// Starts a fake `kind` answering from `state` on `addr`.
    pub async fn start_with(
        kind: ServerKind,
        addr: &str,
        state: FakeState,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            kind,
            state: Arc::new(Mutex::new(state)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let app = router(kind)
            .layer(middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _stopped = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "fake backend stopped with an error");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes what it answers.
    pub fn set(&self, edit: impl FnOnce(&mut FakeState)) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        edit(&mut state);
    }

    /// Every request received so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
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

async fn record(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(line);
    }
    next.run(request).await
}

fn router(kind: ServerKind) -> Router<Shared> {
    let common = Router::new().route("/v1/chat/completions", post(chat));
    match kind {
        ServerKind::Ollama => common
            .route("/api/tags", get(ollama_tags))
            .route("/api/ps", get(ollama_ps))
            .route(
                "/api/version",
                get(|| async { Json(json!({"version": "0.6.2"})) }),
            )
            // Ollama serves an OpenAI list too, so identification must try /api/tags first.
            .route("/v1/models", get(openai_models)),
        ServerKind::LmStudio => common
            .route("/v1/models", get(openai_models))
            .route("/api/v1/models", get(lmstudio_native))
            .route("/api/v0/models", get(lmstudio_legacy)),
        ServerKind::Vllm => common
            .route("/v1/models", get(openai_models))
            .route("/metrics", get(vllm_metrics))
            .route(
                "/version",
                get(|| async { Json(json!({"version": "0.10.1"})) }),
            )
            .route("/health", get(|| async { StatusCode::OK })),
        ServerKind::Litellm => common
            .route("/v1/models", get(openai_models))
            .route("/health/readiness", get(litellm_readiness))
            // Real LiteLLM calls every model here (and bills for it); tests assert nobody calls it.
            .route("/health", get(|| async { StatusCode::OK })),
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    match shared.state().api_key {
        None => true,
        Some(key) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {key}")),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(
            json!({"error": {"message": "Authentication Error, No api key passed in.",
                               "type": "auth_error", "code": "401"}}),
        ),
    )
        .into_response()
}

async fn ollama_tags(State(shared): State<Shared>) -> Json<Value> {
    let models: Vec<Value> = shared
        .state()
        .models
        .iter()
        .map(|m| json!({"name": m, "model": m, "size": 1, "details": {"format": "gguf"}}))
        .collect();
    Json(json!({ "models": models }))
}

async fn ollama_ps(State(shared): State<Shared>) -> Json<Value> {
    let state = shared.state();
    let models: Vec<Value> = state
        .loaded
        .iter()
        .map(|m| json!({"name": m, "model": m, "size": 5, "size_vram": 5,
                        "expires_at": "2026-01-01T00:00:00Z", "context_length": state.context_length}))
        .collect();
    Json(json!({ "models": models }))
}

async fn openai_models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let state = shared.state();
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| match shared.kind {
            ServerKind::Vllm => json!({"id": m, "object": "model", "owned_by": "vllm",
                                       "root": m, "parent": null, "max_model_len": state.context_length}),
            ServerKind::LmStudio => json!({"id": m, "object": "model", "owned_by": "organization_owner"}),
            ServerKind::Ollama => json!({"id": m, "object": "model", "owned_by": "library"}),
            ServerKind::Litellm => json!({"id": m, "object": "model", "owned_by": "openai"}),
        })
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn lmstudio_native(State(shared): State<Shared>) -> Response {
    let state = shared.state();
    if state.legacy_only {
        return (StatusCode::NOT_FOUND, "Unexpected endpoint or method.").into_response();
    }
    let models: Vec<Value> = state
        .models
        .iter()
        .map(|m| {
            let instances: Vec<Value> = if state.loaded.contains(m) {
                vec![json!({"id": m, "config": {"context_length": state.context_length}})]
            } else {
                Vec::new()
            };
            json!({"type": "llm", "key": m, "display_name": m, "loaded_instances": instances,
                   "max_context_length": 131072, "format": "gguf"})
        })
        .collect();
    Json(json!({ "models": models })).into_response()
}

async fn lmstudio_legacy(State(shared): State<Shared>) -> Json<Value> {
    let state = shared.state();
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| {
            let loaded = if state.loaded.contains(m) {
                "loaded"
            } else {
                "not-loaded"
            };
            json!({"id": m, "object": "model", "type": "llm", "state": loaded,
                   "max_context_length": state.context_length})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn vllm_metrics(State(shared): State<Shared>) -> String {
    let state = shared.state();
    let model = state.models.first().cloned().unwrap_or_default();
    format!(
        "# TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{engine=\"0\",model_name=\"{model}\"}} {}.0\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"{model}\"}} {}.0\n\
         # TYPE vllm:kv_cache_usage_perc gauge\n\
         vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"{model}\"}} {}\n",
        state.running, state.waiting, state.kv_cache_usage
    )
}

async fn litellm_readiness(State(shared): State<Shared>) -> Response {
    if shared.state().ready {
        Json(
            json!({"status": "healthy", "db": "Not connected", "cache": null,
                    "litellm_version": "1.74.3", "success_callbacks": []}),
        )
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy"})),
        )
            .into_response()
    }
}

async fn chat(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    Json(json!({
        "id": "chatcmpl-discovery", "object": "chat.completion", "created": 1700000000,
        "model": model, "system_fingerprint": shared.kind.as_str(),
        "choices": [{"index": 0, "message": {"role": "assistant",
                     "content": format!("served by {}", shared.kind)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    }))
    .into_response()
}

/// A fake tailscaled: `GET /localapi/v0/status` on a unix socket, refusing any Host but
/// `local-tailscaled.sock` (as the real LocalAPI does).
pub struct FakeTailscaled {
    path: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeTailscaled {
    /// Serves `status` (an `ipnstate.Status` JSON value) on a new socket at `path`.
    pub fn start(path: &Path, status: Value) -> std::io::Result<Self> {
        let listener = UnixListener::bind(path)?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let app = Router::new().route(
            "/localapi/v0/status",
            get(move |headers: HeaderMap| {
                let status = status.clone();
                let seen = seen.clone();
                async move {
                    let host = headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(host.clone());
                    }
                    if host != "local-tailscaled.sock" {
                        return (StatusCode::FORBIDDEN, "invalid host").into_response();
                    }
                    Json(status).into_response()
                }
            }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _stopped = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "fake tailscaled stopped with an error");
            }
        });
        Ok(Self {
            path: path.to_path_buf(),
            requests,
            stop: Some(stop),
            task,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Host header of every status request received.
    pub fn hosts_seen(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _sent = stop.send(());
        }
        self.task.abort();
        let _joined = (&mut self.task).await;
    }
}

/// A tailnet status with the given peers: (host name, Tailscale IPs, online).
pub fn tailnet_status(peers: &[(&str, &[&str], bool)]) -> Value {
    let peer_map: serde_json::Map<String, Value> = peers
        .iter()
        .enumerate()
        .map(|(i, (name, ips, online))| {
            (
                format!("nodekey:{i:04x}"),
                json!({"HostName": name, "DNSName": format!("{name}.tailnet-test.ts.net."),
                       "OS": "linux", "TailscaleIPs": ips, "Online": online, "Active": false}),
            )
        })
        .collect();
    json!({
        "Version": "1.90.1", "BackendState": "Running",
        "TailscaleIPs": ["100.101.102.103"],
        "Self": {"HostName": "this-box", "TailscaleIPs": ["100.101.102.103"], "Online": true},
        "MagicDNSSuffix": "tailnet-test.ts.net",
        "Peer": peer_map,
    })
}

/// Writes an executable shell script at `dir/name` and returns its path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let path = dir.join(name);
    // A child process writes the file: had this multi-threaded process held it open for
    // writing, a concurrent fork (another test spawning its script) could inherit that
    // descriptor, and running the script would then fail with "Text file busy".
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg("cat > \"$0\" && chmod 755 \"$0\"")
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()?;
    writer
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin for the script writer"))?
        .write_all(format!("#!/bin/sh\n{body}\n").as_bytes())?;
    let status = writer.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "writing {} failed: {status}",
            path.display()
        )));
    }
    Ok(path)
}
