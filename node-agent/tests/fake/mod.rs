//! In-process fakes for node-agent tests: model servers (Ollama, OpenAI-style) and a control plane,
//! all on ephemeral loopback ports, plus a deadline-bounded wait.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::{Ack, AgentMessage, ControlMessage, Redirect, Rejected};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// Sends the agent's logs to the test output (shown for failing tests); idempotent.
pub fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "switchyard_node_agent=debug".into()),
        )
        .with_test_writer()
        .try_init()
        .ok();
}

/// Polls `check` every 20 ms until it yields a value, panicking with `what` after `within`.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A fake model server that answers one listing route with a settable model list.
pub struct FakeModelServer {
    pub addr: SocketAddr,
    models: Arc<Mutex<Vec<String>>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl FakeModelServer {
    /// Fake Ollama: `GET /api/tags`.
    pub async fn ollama(models: &[&str]) -> Self {
        Self::start("/api/tags", models, |models| {
            let entries: Vec<_> = models
                .iter()
                .map(|m| json!({"name": m, "model": m, "size": 1, "details": {"format": "gguf"}}))
                .collect();
            json!({ "models": entries })
        })
        .await
    }

    /// Fake OpenAI-compatible server (vLLM, LM Studio, LiteLLM): `GET /v1/models`.
    pub async fn openai(models: &[&str]) -> Self {
        Self::start("/v1/models", models, |models| {
            let entries: Vec<_> = models
                .iter()
                .map(|m| json!({"id": m, "object": "model", "owned_by": "vllm"}))
                .collect();
            json!({ "object": "list", "data": entries })
        })
        .await
    }

    async fn start(
        path: &str,
        models: &[&str],
        render: fn(&[String]) -> serde_json::Value,
    ) -> Self {
        let models = Arc::new(Mutex::new(models.iter().map(|m| m.to_string()).collect()));
        let shared = models.clone();
        let app = Router::new()
            .route(
                path,
                get(
                    move |State(models): State<Arc<Mutex<Vec<String>>>>| async move {
                        let list = models.lock().unwrap().clone();
                        Json(render(&list))
                    },
                ),
            )
            .with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    stopped.await.ok();
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            models,
            stop,
            task,
        }
    }

    /// Replaces the listed models.
    pub fn set_models(&self, models: &[&str]) {
        *self.models.lock().unwrap() = models.iter().map(|m| m.to_string()).collect();
    }

    /// Stops listening and waits until the server is gone.
    pub async fn stop(self) {
        self.stop.send(()).ok();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("fake model server did not stop")
            .unwrap();
    }
}

/// How the fake control plane answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Ack every Hello, snapshot and update.
    Ack,
    /// Answer Hello with a redirect to this address, then close the stream.
    Redirect(String),
    /// Answer Hello with a rejection, then close the stream.
    Reject(String),
}

/// One message the fake control plane received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which stream (1-based, in order of opening) it arrived on.
    pub stream: usize,
    pub at: Instant,
    pub body: AgentBody,
}

#[derive(Default)]
struct Log {
    streams: usize,
    received: Vec<Received>,
}

/// A fake control plane serving `AgentService` that records every message.
pub struct FakeControlPlane {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    kill: watch::Sender<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl FakeControlPlane {
    /// Starts on an ephemeral loopback port.
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, mode)
    }

    /// Starts on `addr` (a port a killed control plane just released).
    pub async fn start_on(addr: SocketAddr, mode: Mode) -> Self {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return Self::serve(listener, mode),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {addr}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind {addr}: {e}"),
            }
        }
    }

    fn serve(listener: TcpListener, mode: Mode) -> Self {
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let (kill, killed) = watch::channel(false);
        let svc = Service {
            mode,
            log: log.clone(),
            killed,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(AgentServiceServer::new(svc))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    stopped.await.ok();
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            log,
            kill,
            stop,
            task,
        }
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    /// Message bodies received on stream `n`.
    pub fn stream(&self, n: usize) -> Vec<AgentBody> {
        self.received()
            .into_iter()
            .filter(|r| r.stream == n)
            .map(|r| r.body)
            .collect()
    }

    /// How many report streams were opened.
    pub fn streams(&self) -> usize {
        self.log.lock().unwrap().streams
    }

    /// Fails every open stream, stops listening and waits until the port is free.
    pub async fn kill(self) {
        self.kill.send_replace(true);
        self.stop.send(()).ok();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("fake control plane did not stop")
            .unwrap();
    }
}

struct Service {
    mode: Mode,
    log: Arc<Mutex<Log>>,
    killed: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl AgentService for Service {
    type ReportStream = ReceiverStream<Result<ControlMessage, Status>>;

    async fn report(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        let mut inbound = request.into_inner();
        let stream = {
            let mut log = self.log.lock().unwrap();
            log.streams += 1;
            log.streams
        };
        let (tx, rx) = mpsc::channel(64);
        let (mode, log, mut killed) = (self.mode.clone(), self.log.clone(), self.killed.clone());
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = async { killed.wait_for(|k| *k).await.map(|_| ()) } => None,
                    msg = inbound.message() => Some(msg),
                };
                let Some(msg) = msg else {
                    tx.send(Err(Status::unavailable("control plane killed")))
                        .await
                        .ok();
                    return;
                };
                let Ok(Some(AgentMessage { body: Some(body) })) = msg else {
                    return;
                };
                let is_hello = matches!(body, AgentBody::Hello(_));
                let is_heartbeat = matches!(body, AgentBody::Heartbeat(_));
                log.lock().unwrap().received.push(Received {
                    stream,
                    at: Instant::now(),
                    body,
                });
                let reply = match &mode {
                    Mode::Ack if is_heartbeat => continue,
                    Mode::Ack => ControlBody::Ack(Ack { applied_version: 1 }),
                    Mode::Redirect(to) if is_hello => ControlBody::Redirect(Redirect {
                        leader_addr: to.clone(),
                    }),
                    Mode::Reject(reason) if is_hello => ControlBody::Rejected(Rejected {
                        reason: reason.clone(),
                    }),
                    Mode::Redirect(_) | Mode::Reject(_) => continue,
                };
                let closes = !matches!(mode, Mode::Ack);
                if tx
                    .send(Ok(ControlMessage { body: Some(reply) }))
                    .await
                    .is_err()
                    || closes
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
