//! `switchyard up`: a control plane, a node agent and an edge in one process, talking gRPC over
//! loopback exactly as they do when run apart.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use switchyard_control_plane::state::{Command, EndpointSpec, Source};
use switchyard_control_plane::{ControlPlane, service::agent::now_ms};
use switchyard_node_agent::{Naming, ProbeTarget};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::demo;

/// What `up` runs and where.
#[derive(Debug, Clone)]
pub struct UpConfig {
    /// Directory of the single voter's durable state.
    pub data_dir: PathBuf,
    /// Serve the built-in `demo` model.
    pub demo: bool,
    /// Run the node agent (probing `probes`).
    pub agent: bool,
    /// Servers the agent probes.
    pub probes: Vec<ProbeTarget>,
    /// Milliseconds between agent scans.
    pub scan_interval_ms: u64,
    /// Consecutive failed scans before a backend is reported gone.
    pub fail_threshold: u32,
    /// Name the agent reports this host under.
    pub node_name: String,
}

impl Default for UpConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("switchyard-data"),
            demo: false,
            agent: true,
            probes: ProbeTarget::local_defaults(),
            scan_interval_ms: 2_000,
            fail_threshold: 2,
            node_name: switchyard_node_agent::config::local_hostname(),
        }
    }
}

/// What `up` may add beyond [`UpConfig`]: a config file and the admin API.
#[derive(Debug, Default)]
pub struct UpExtras {
    /// `config.yaml` in Switchyard's or LiteLLM's format, loaded at start and on reload.
    pub config_file: Option<PathBuf>,
    /// Where the admin API serves, when it should.
    pub admin: Option<TcpListener>,
    /// A client key the edge accepts besides the cluster's keys (first use, scripts).
    pub bootstrap_key: Option<String>,
    /// The edge's telemetry sinks (webhook, request log, OTLP).
    pub telemetry: crate::cmd::flags::TelemetryArgs,
    /// Certificate chain (PEM) for HTTPS on the edge's `/v1` and the admin API; with `https_key`.
    pub https_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub https_key: Option<PathBuf>,
}

/// A running `up`: every role, and the addresses they serve.
pub struct Up {
    control_plane: ControlPlane,
    edge_addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Up {
    /// Starts all roles: the control plane on `grpc`, the edge on `edge`.
    pub async fn start(
        cfg: UpConfig,
        edge: TcpListener,
        grpc: TcpListener,
    ) -> anyhow::Result<Self> {
        Self::start_with(cfg, edge, grpc, UpExtras::default()).await
    }

    /// Starts all roles, loading `extras.config_file` and serving the admin API when given.
    pub async fn start_with(
        cfg: UpConfig,
        edge: TcpListener,
        grpc: TcpListener,
        extras: UpExtras,
    ) -> anyhow::Result<Self> {
        let bootstrap_key = extras.bootstrap_key;
        let cp_config = switchyard_control_plane::Config {
            data_dir: cfg.data_dir.clone(),
            config_file: extras.config_file,
            https_cert: extras.https_cert.clone(),
            https_key: extras.https_key.clone(),
            ..Default::default()
        };
        let control_plane = ControlPlane::start_with_admin(cp_config, grpc, extras.admin)
            .await
            .context("starting the control plane")?;
        control_plane
            .wait_for_leader(Duration::from_secs(10))
            .await
            .context("waiting for the control plane to elect itself")?;
        let grpc_url = format!("http://{}", control_plane.addr());
        let (stop, stopped) = watch::channel(false);
        let until_stop = move || {
            let mut stopped = stopped.clone();
            async move {
                // A dropped sender also means stop.
                let _stopped = stopped.wait_for(|s| *s).await;
            }
        };
        let mut tasks = Vec::new();

        if cfg.demo {
            tasks.push(start_demo(&control_plane, until_stop()).await?);
        }

        if cfg.agent {
            let agent = agent_config(&cfg, &grpc_url)?;
            tasks.push(tokio::spawn({
                let stop = until_stop();
                async move {
                    switchyard_node_agent::run(agent, stop)
                        .await
                        .context("node agent")
                }
            }));
        }

        let edge_addr = edge.local_addr()?;
        let mut edge_config = switchyard_edge::Config {
            control_plane: grpc_url,
            edge_name: "up".into(),
            table_cache: Some(cfg.data_dir.join("edge-table.pb")),
            bootstrap_key: bootstrap_key.map(switchyard_edge::config::Secret::new),
            https_cert: extras.https_cert,
            https_key: extras.https_key,
            ..Default::default()
        };
        extras.telemetry.apply(&mut edge_config);
        tasks.push(tokio::spawn({
            let stop = until_stop();
            async move {
                switchyard_edge::run(edge_config, edge, stop)
                    .await
                    .context("edge")
            }
        }));
        Ok(Self {
            control_plane,
            edge_addr,
            stop,
            tasks,
        })
    }

    /// Where the edge serves `/v1`.
    pub fn edge_addr(&self) -> std::net::SocketAddr {
        self.edge_addr
    }

    /// Where the control plane serves gRPC.
    pub fn grpc_addr(&self) -> &str {
        self.control_plane.addr()
    }

    /// Stops every role: edge, agent and demo first, the control plane last.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        let mut first_error = None;
        for task in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = format!("{e:#}"), "a role stopped with an error");
                    first_error.get_or_insert(e);
                }
                Err(join) => {
                    first_error.get_or_insert(anyhow::anyhow!("a role panicked: {join}"));
                }
            }
        }
        self.control_plane
            .stop()
            .await
            .context("stopping the control plane")?;
        first_error.map_or(Ok(()), Err)
    }
}

/// Serves the built-in demo model until `stop`, and registers it with `control_plane`.
async fn start_demo(
    control_plane: &ControlPlane,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo model")?;
    let addr = listener.local_addr()?;
    let task =
        tokio::spawn(async move { demo::run(listener, stop).await.context("demo model server") });
    let spec = EndpointSpec {
        id: "demo".into(),
        kind: "switchyard".into(),
        base_url: format!("http://{addr}/v1"),
        models: vec![demo::MODEL.into()],
        weight: 1,
        source: Source::Demo,
        credentials: Vec::new(),
        limits: Default::default(),
        upstream: Default::default(),
    };
    control_plane
        .write(Command::PutEndpoint {
            spec,
            at_ms: now_ms(),
        })
        .await
        .context("registering the demo model")?;
    Ok(task)
}

/// The in-process node agent's settings: this host only, no mDNS, `LLM_PROXY_*` applied.
fn agent_config(cfg: &UpConfig, grpc_url: &str) -> anyhow::Result<switchyard_node_agent::Config> {
    let mut agent = switchyard_node_agent::Config {
        control_plane: grpc_url.to_owned(),
        node_name: cfg.node_name.clone(),
        scan_interval_ms: cfg.scan_interval_ms,
        targets: cfg.probes.clone(),
        naming: Naming::Bare,
        fail_threshold: cfg.fail_threshold,
        ..Default::default()
    };
    // One host: nothing on the LAN needs to find this agent.
    agent.discovery.mdns = false;
    // LLM_PROXY_DISCOVERY_PEERS and LLM_PROXY_LOCAL_DISCOVERY work as in LLMProxy.
    agent
        .apply_env()
        .context("LLM_PROXY_* discovery settings")?;
    agent.validate().context("node agent settings")?;
    Ok(agent)
}
