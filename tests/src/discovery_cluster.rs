//! A control plane (with a join token) and an edge in-process, plus node agents started from any
//! agent config: the pieces `switchyard up` wires, with the knobs discovery tests need.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use switchyard_control_plane::ControlPlane;
use switchyard_node_agent::{Config, DiscoveryConfig, Naming, TailscaleConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::init;

/// An agent config that probes nothing of the test machine: no loopback targets, no Docker host,
/// no tailnet, no mDNS, no GPUs. Tests add exactly the sources they exercise.
pub fn isolated_agent(control_plane: &str, node_name: &str, scan_interval_ms: u64) -> Config {
    Config {
        control_plane: control_plane.to_owned(),
        node_name: node_name.to_owned(),
        scan_interval_ms,
        probe_timeout_ms: 1000,
        targets: Vec::new(),
        naming: Naming::NodeSuffix,
        heartbeat_interval_ms: 200,
        nvidia_smi: String::new(),
        discovery: DiscoveryConfig {
            local_scan: false,
            docker_host: false,
            peers: Vec::new(),
            tailscale: TailscaleConfig {
                enabled: false,
                ..TailscaleConfig::default()
            },
            mdns: false,
        },
        ..Config::default()
    }
}

/// A running node agent.
pub struct RunningAgent {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), switchyard_node_agent::Error>>,
}

impl RunningAgent {
    /// Starts `cfg` in a task.
    pub fn spawn(cfg: Config) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(switchyard_node_agent::run(cfg, async move {
            let _stopped = stopped.await;
        }));
        Self { stop, task }
    }

    /// Stops it and waits (bounded) for it to end.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _sent = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .context("agent did not stop within 10 s")??
            .context("agent failed")?;
        Ok(())
    }
}

/// One control-plane voter and one edge following it.
pub struct Cluster {
    /// The voter.
    pub control_plane: ControlPlane,
    /// The edge's `/v1` address.
    pub edge: SocketAddr,
    edge_stop: oneshot::Sender<()>,
    edge_task: JoinHandle<()>,
    _data: tempfile::TempDir,
}

impl Cluster {
    /// Starts a voter requiring `join_token` (none when `None`) on `grpc` and an edge on loopback.
    pub async fn start(join_token: Option<&str>, grpc: TcpListener) -> anyhow::Result<Self> {
        init();
        let data = tempfile::tempdir()?;
        let cfg = switchyard_control_plane::Config {
            data_dir: data.path().to_path_buf(),
            join_token: join_token.map(str::to_owned),
            ..Default::default()
        };
        let control_plane = ControlPlane::start(cfg, grpc)
            .await
            .context("starting the control plane")?;
        control_plane
            .wait_for_leader(Duration::from_secs(10))
            .await
            .context("waiting for a leader")?;
        let edge_listener = TcpListener::bind("127.0.0.1:0").await?;
        let edge = edge_listener.local_addr()?;
        let edge_cfg = switchyard_edge::Config {
            control_plane: format!("http://{}", control_plane.addr()),
            edge_name: "discovery-test".into(),
            ..Default::default()
        };
        let (edge_stop, stopped) = oneshot::channel::<()>();
        let edge_task = tokio::spawn(async move {
            let stop = async move {
                let _stopped = stopped.await;
            };
            if let Err(e) = switchyard_edge::run(edge_cfg, edge_listener, stop).await {
                tracing::error!(error = %e, "edge failed");
            }
        });
        Ok(Self {
            control_plane,
            edge,
            edge_stop,
            edge_task,
            _data: data,
        })
    }

    /// `http://<control plane>` for agents.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.control_plane.addr())
    }

    /// Stops the edge and the voter.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _sent = self.edge_stop.send(());
        let _joined = tokio::time::timeout(Duration::from_secs(10), self.edge_task).await;
        self.control_plane.stop().await?;
        Ok(())
    }
}
