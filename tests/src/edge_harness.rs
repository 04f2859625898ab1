//! Running an edge in-process against tables built in the test, plus a fake control plane that
//! serves a table and records the cooldowns edges report.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use sha2::{Digest, Sha256};
use switchyard_edge::{Config, EdgeState, app};
use switchyard_proto::v1;
use switchyard_proto::v1::edge_service_server::{EdgeService, EdgeServiceServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// A wire routing table under construction.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The table being built.
    pub wire: v1::RoutingTable,
}

impl Table {
    /// An empty table at `version`.
    pub fn new(version: u64) -> Self {
        Self {
            wire: v1::RoutingTable {
                version,
                cluster_id: "test-cluster".into(),
                ..Default::default()
            },
        }
    }

    /// A healthy OpenAI-compatible endpoint.
    pub fn endpoint(self, id: &str, base_url: &str) -> Self {
        self.endpoint_with(id, base_url, |_| {})
    }

    /// An endpoint adjusted by `f` (kind, health, credentials, facts).
    pub fn endpoint_with(
        mut self,
        id: &str,
        base_url: &str,
        f: impl FnOnce(&mut v1::RouteEndpoint),
    ) -> Self {
        let mut e = v1::RouteEndpoint {
            id: id.into(),
            kind: "openai".into(),
            base_url: base_url.into(),
            source: "config".into(),
            healthy: true,
            ..Default::default()
        };
        f(&mut e);
        self.wire.endpoints.push(e);
        self
    }

    /// A model group served by `(endpoint id, upstream model)` pairs.
    pub fn model(self, name: &str, deployments: &[(&str, &str)]) -> Self {
        self.model_with(name, deployments, |_| {})
    }

    /// A model group whose deployments `f` adjusts (weights, context lengths).
    pub fn model_with(
        mut self,
        name: &str,
        deployments: &[(&str, &str)],
        f: impl FnOnce(&mut Vec<v1::Deployment>),
    ) -> Self {
        let mut ds: Vec<v1::Deployment> = deployments
            .iter()
            .map(|(endpoint, upstream)| v1::Deployment {
                endpoint_id: (*endpoint).into(),
                upstream_model: (*upstream).into(),
                weight: 1,
                ..Default::default()
            })
            .collect();
        f(&mut ds);
        self.wire.models.push(v1::ModelRoute {
            name: name.into(),
            deployments: ds,
            created: 1_700_000_000,
            owned_by: "switchyard".into(),
        });
        self
    }

    /// An alias.
    pub fn alias(mut self, name: &str, target: &str) -> Self {
        self.wire.aliases.push(v1::Alias {
            name: name.into(),
            target: target.into(),
            ..Default::default()
        });
        self
    }

    /// A fallback chain (`context_window` for context-window fallbacks).
    pub fn fallback(mut self, model: &str, chain: &[&str], context_window: bool) -> Self {
        self.wire.fallbacks.push(v1::Fallback {
            model: model.into(),
            chain: chain.iter().map(|s| (*s).to_owned()).collect(),
            context_window,
        });
        self
    }

    /// A client key with `secret`, adjusted by `f`.
    pub fn key(mut self, id: &str, secret: &str, f: impl FnOnce(&mut v1::ClientKey)) -> Self {
        let mut k = v1::ClientKey {
            id: id.into(),
            sha256: key_hash(secret),
            name: id.into(),
            ..Default::default()
        };
        f(&mut k);
        self.wire.keys.push(k);
        self
    }

    /// Router settings.
    pub fn settings(mut self, settings: v1::RouterSettings) -> Self {
        self.wire.settings = Some(settings);
        self
    }

    /// The wire table.
    pub fn build(self) -> v1::RoutingTable {
        self.wire
    }
}

/// SHA-256 of a client key, as the control plane stores it.
pub fn key_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A chat request body: one user message ("hi") to `model`.
pub fn chat_body(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// An edge serving on an ephemeral port.
pub struct TestEdge {
    /// `http://127.0.0.1:N`, or `https://` when the config has `https_*` files.
    pub url: String,
    /// Its state (install newer tables, read metrics).
    pub state: EdgeState,
    client: reqwest::Client,
    task: JoinHandle<()>,
}

impl TestEdge {
    /// Serves `cfg` with `table` installed (no control plane needed).
    pub async fn start(cfg: Config, table: Option<v1::RoutingTable>) -> anyhow::Result<Self> {
        crate::harness::init();
        let state = EdgeState::new(cfg)?;
        if let Some(table) = table {
            anyhow::ensure!(state.install_table(&table), "table not installed");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = app(state.clone());
        let options = switchyard_edge::ServeOptions::from(state.config());
        let tls = state.config().https_acceptor()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            let stopped = std::future::pending();
            let served = switchyard_edge::serve_with_tls(listener, router, options, tls, stopped);
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "test edge stopped");
            }
        });
        Ok(Self {
            url: format!("{scheme}://{addr}"),
            state,
            client: reqwest::Client::new(),
            task,
        })
    }

    /// `{url}/v1/chat/completions` and friends.
    pub fn v1(&self, path: &str) -> String {
        format!("{}/v1/{}", self.url, path.trim_start_matches('/'))
    }

    /// An HTTP client for this edge (one per edge, so its connections are reused).
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// POSTs `body` as JSON to `/v1/{path}`, with `key` as the bearer token when given. Panics
    /// when the request cannot be sent at all (a test edge that does not answer is a failure).
    pub async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.v1(path)).json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /v1/{path} to the test edge failed: {e}"))
    }

    /// POSTs one chat message ("hi") to `model` at `/v1/chat/completions`, without a key.
    pub async fn chat(&self, model: &str) -> reqwest::Response {
        self.post("chat/completions", None, &chat_body(model)).await
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A control plane that serves one table (replaceable) and records reported cooldowns.
#[derive(Clone)]
pub struct FakeControlPlane {
    /// gRPC URL.
    pub url: String,
    table: watch::Sender<v1::RoutingTable>,
    full: Arc<Mutex<Option<v1::RoutingTable>>>,
    reports: Arc<Mutex<Vec<v1::UpstreamEvents>>>,
    usage: Arc<Mutex<Vec<v1::UsageReport>>>,
    task: Arc<JoinHandle<()>>,
}

#[derive(Clone)]
struct Service {
    table: watch::Sender<v1::RoutingTable>,
    /// Served instead to an edge asking from scratch, when set.
    full: Arc<Mutex<Option<v1::RoutingTable>>>,
    reports: Arc<Mutex<Vec<v1::UpstreamEvents>>>,
    usage: Arc<Mutex<Vec<v1::UsageReport>>>,
    implemented: bool,
}

#[tonic::async_trait]
impl EdgeService for Service {
    type WatchRoutingTableStream =
        Pin<Box<dyn Stream<Item = Result<v1::RoutingTable, Status>> + Send + 'static>>;

    async fn watch_routing_table(
        &self,
        request: Request<v1::WatchRoutingTableRequest>,
    ) -> Result<Response<Self::WatchRoutingTableStream>, Status> {
        let mut rx = self.table.subscribe();
        // An edge asking from scratch gets a full table, never a delta it cannot apply.
        let resync = (request.get_ref().since_version == 0)
            .then(|| {
                self.full
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .flatten();
        let stream = async_stream::stream! {
            if let Some(full) = resync {
                rx.borrow_and_update();
                yield Ok(full);
                if rx.changed().await.is_err() {
                    return;
                }
            }
            loop {
                let table = rx.borrow_and_update().clone();
                yield Ok(table);
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_upstream_events(
        &self,
        request: Request<v1::UpstreamEvents>,
    ) -> Result<Response<v1::UpstreamEventsAck>, Status> {
        if !self.implemented {
            return Err(Status::unimplemented("not yet"));
        }
        self.reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request.into_inner());
        Ok(Response::new(v1::UpstreamEventsAck { applied_version: 0 }))
    }

    async fn report_usage(
        &self,
        request: Request<v1::UsageReport>,
    ) -> Result<Response<v1::UsageAck>, Status> {
        if !self.implemented {
            return Err(Status::unimplemented("not yet"));
        }
        self.usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request.into_inner());
        Ok(Response::new(v1::UsageAck {}))
    }
}

impl FakeControlPlane {
    /// Starts serving `table`; `implemented` false answers reports with Unimplemented.
    pub async fn start(table: v1::RoutingTable, implemented: bool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let (tx, _rx) = watch::channel(table);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let usage = Arc::new(Mutex::new(Vec::new()));
        let full = Arc::new(Mutex::new(None));
        let service = Service {
            table: tx.clone(),
            full: full.clone(),
            reports: reports.clone(),
            usage: usage.clone(),
            implemented,
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(EdgeServiceServer::new(service))
                .serve_with_incoming(incoming)
                .await
            {
                tracing::warn!(error = %e, "fake control plane stopped");
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            table: tx,
            full,
            reports,
            usage,
            task: Arc::new(task),
        })
    }

    /// Sets the table a watcher asking from scratch (`since_version` 0) gets first, without
    /// sending it to current watchers: what a voter answers an edge that resyncs.
    pub fn set_full(&self, table: v1::RoutingTable) {
        *self
            .full
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(table);
    }

    /// Replaces the served table; watchers get it at once.
    pub fn publish(&self, table: v1::RoutingTable) {
        self.table.send_replace(table);
    }

    /// Every cooldown reported so far.
    pub fn reported(&self) -> Vec<v1::Cooldown> {
        self.reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .flat_map(|r| r.cooldowns.clone())
            .collect()
    }

    /// Every usage batch reported so far.
    pub fn usage_reports(&self) -> Vec<v1::UsageReport> {
        self.usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }
}
