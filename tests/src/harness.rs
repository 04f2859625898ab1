//! Starting real roles in-process and waiting on what they do.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use switchyard::up::{Up, UpConfig};
use switchyard_node_agent::{ProbeTarget, ServerKind};
use tokio::net::TcpListener;

/// Installs the TLS provider reqwest needs, once per process.
pub fn init() {
    let _already = rustls::crypto::ring::default_provider().install_default();
    let _already = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Starts `up` on ephemeral ports with its state in `data_dir`, probing an Ollama on
/// `ollama_port` every 100 ms when given (no agent otherwise).
pub async fn start_up(data_dir: &Path, demo: bool, ollama_port: Option<u16>) -> anyhow::Result<Up> {
    init();
    let cfg = UpConfig {
        data_dir: data_dir.to_path_buf(),
        demo,
        agent: ollama_port.is_some(),
        probes: ollama_port
            .map(|port| vec![ProbeTarget::new(ServerKind::Ollama, "127.0.0.1", port)])
            .unwrap_or_default(),
        scan_interval_ms: 100,
        fail_threshold: 2,
        node_name: "test-node".into(),
    };
    let edge = TcpListener::bind("127.0.0.1:0").await?;
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    Up::start(cfg, edge, grpc).await
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The model ids an edge's `/v1/models` lists, or `None` when it does not answer 200.
pub async fn edge_models(
    client: &reqwest::Client,
    edge: std::net::SocketAddr,
) -> Option<Vec<String>> {
    let response = client
        .get(format!("http://{edge}/v1/models"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    Some(
        body.get("data")?
            .as_array()?
            .iter()
            .filter_map(|m| m.get("id")?.as_str().map(str::to_string))
            .collect(),
    )
}
