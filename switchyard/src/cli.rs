//! Command-line arguments and what each subcommand starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use switchyard_node_agent::{Naming, ProbeTarget, ServerKind};
use tokio::net::TcpListener;

use crate::up::{Up, UpConfig};

/// One OpenAI-compatible endpoint in front of every LLM server and provider you use.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: control plane, node agent and edge.
    Up(UpArgs),
    /// Run a control-plane voter.
    ControlPlane(ControlPlaneArgs),
    /// Run a node agent that discovers model servers on this host.
    NodeAgent(NodeAgentArgs),
    /// Run an edge serving the OpenAI-compatible /v1 API.
    Edge(EdgeArgs),
}

/// `switchyard up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address the edge serves /v1 on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address the control plane serves gRPC on (agents and edges connect here).
    #[arg(long, env = "SWITCHYARD_GRPC_LISTEN", default_value = "127.0.0.1:7700")]
    pub grpc_listen: SocketAddr,
    /// Directory for the durable state.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "switchyard-data")]
    pub data_dir: PathBuf,
    /// Also serve a built-in `demo` model, so a fresh machine answers at once.
    #[arg(long)]
    pub demo: bool,
    /// Do not probe this host for model servers.
    #[arg(long)]
    pub no_agent: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// Where and how often the node agent probes.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Probe a server kind on another port: `KIND=PORT` or `KIND=HOST:PORT`
    /// (KIND: ollama, lmstudio, vllm, litellm). Replaces the default targets when given.
    #[arg(long = "probe", value_name = "KIND=[HOST:]PORT")]
    pub probes: Vec<String>,
    /// Milliseconds between scans.
    #[arg(long, env = "SWITCHYARD_SCAN_INTERVAL_MS", default_value_t = 2_000)]
    pub scan_interval_ms: u64,
    /// Consecutive failed scans before a backend is reported gone.
    #[arg(long, default_value_t = 2)]
    pub fail_threshold: u32,
    /// Name this host reports itself under (default: hostname).
    #[arg(long, env = "SWITCHYARD_NODE_NAME")]
    pub node_name: Option<String>,
}

/// `switchyard control-plane`.
#[derive(Debug, Args)]
pub struct ControlPlaneArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "SWITCHYARD_GRPC_LISTEN", default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Address other nodes reach this voter at (default: the listen address).
    #[arg(long, env = "SWITCHYARD_ADVERTISE")]
    pub advertise: Option<String>,
    /// Raft node id, unique in the cluster.
    #[arg(long, env = "SWITCHYARD_NODE_ID", default_value_t = 1)]
    pub node_id: u64,
    /// Directory for the durable state.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "switchyard-data")]
    pub data_dir: PathBuf,
    /// Secret node agents must present.
    #[arg(long, env = "SWITCHYARD_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
}

/// `switchyard node-agent`.
#[derive(Debug, Args)]
pub struct NodeAgentArgs {
    /// Control-plane gRPC URL.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROL_PLANE",
        default_value = "http://127.0.0.1:7700"
    )]
    pub control_plane: String,
    /// Secret the control plane expects.
    #[arg(
        long,
        env = "SWITCHYARD_JOIN_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub join_token: String,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// `switchyard edge`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// Address to serve /v1 on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Control-plane gRPC URL.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROL_PLANE",
        default_value = "http://127.0.0.1:7700"
    )]
    pub control_plane: String,
    /// File to keep the last routing table in, so a restart serves without the control plane.
    #[arg(long, env = "SWITCHYARD_TABLE_CACHE")]
    pub table_cache: Option<PathBuf>,
    /// This edge's name in the control plane's logs.
    #[arg(long, env = "SWITCHYARD_EDGE_NAME", default_value = "edge")]
    pub name: String,
}

impl ProbeArgs {
    fn targets(&self) -> anyhow::Result<Vec<ProbeTarget>> {
        if self.probes.is_empty() {
            return Ok(ProbeTarget::local_defaults());
        }
        self.probes.iter().map(|p| parse_probe(p)).collect()
    }

    fn node_name(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(switchyard_node_agent::config::local_hostname)
    }
}

/// Parses `KIND=PORT` or `KIND=HOST:PORT` (host defaults to 127.0.0.1).
pub fn parse_probe(text: &str) -> anyhow::Result<ProbeTarget> {
    let Some((kind, place)) = text.split_once('=') else {
        bail!("--probe {text:?}: expected KIND=PORT or KIND=HOST:PORT");
    };
    let Some(kind) = ServerKind::ALL.into_iter().find(|k| k.as_str() == kind) else {
        bail!("--probe {text:?}: unknown kind {kind:?} (ollama, lmstudio, vllm, litellm)");
    };
    let (host, port) = match place.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => ("127.0.0.1", place),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("--probe {text:?}: {port:?} is not a port"))?;
    Ok(ProbeTarget::new(kind, host, port))
}

/// Runs the chosen subcommand until `shutdown` resolves.
pub async fn run(
    cli: Cli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => {
            let cfg = UpConfig {
                data_dir: args.data_dir,
                demo: args.demo,
                agent: !args.no_agent,
                probes: args.probe.targets()?,
                scan_interval_ms: args.probe.scan_interval_ms,
                fail_threshold: args.probe.fail_threshold,
                node_name: args.probe.node_name(),
            };
            let edge = bind(args.listen, "--listen").await?;
            let grpc = bind(args.grpc_listen, "--grpc-listen").await?;
            let up = Up::start(cfg, edge, grpc).await?;
            tracing::info!(
                edge = %format!("http://{}/v1", up.edge_addr()),
                control_plane = %up.grpc_addr(),
                demo = args.demo,
                "switchyard is up"
            );
            tracing::warn!(
                "no client keys are configured: /v1 serves without authentication on loopback"
            );
            shutdown.await;
            up.stop().await
        }
        Command::ControlPlane(args) => {
            let cfg = switchyard_control_plane::Config {
                node_id: args.node_id,
                data_dir: args.data_dir,
                advertise_addr: args.advertise,
                join_token: args.join_token,
                ..Default::default()
            };
            cfg.validate()?;
            let listener = bind(args.listen, "--listen").await?;
            switchyard_control_plane::ControlPlane::run(cfg, listener, shutdown).await?;
            Ok(())
        }
        Command::NodeAgent(args) => {
            let cfg = switchyard_node_agent::Config {
                control_plane: args.control_plane,
                node_name: args.probe.node_name(),
                join_token: args.join_token,
                scan_interval_ms: args.probe.scan_interval_ms,
                targets: args.probe.targets()?,
                naming: Naming::NodeSuffix,
                fail_threshold: args.probe.fail_threshold,
                ..Default::default()
            };
            switchyard_node_agent::run(cfg, shutdown).await?;
            Ok(())
        }
        Command::Edge(args) => {
            let cfg = switchyard_edge::Config {
                control_plane: args.control_plane,
                edge_name: args.name,
                table_cache: args.table_cache,
                ..Default::default()
            };
            cfg.validate()?;
            let listener = bind(args.listen, "--listen").await?;
            switchyard_edge::run(cfg, listener, shutdown).await?;
            Ok(())
        }
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} ({flag}); is another Switchyard running?")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_flags_parse() {
        let cases = [
            ("ollama=11434", Some(("ollama", "127.0.0.1", 11434))),
            ("vllm=gpu01:8001", Some(("vllm", "gpu01", 8001))),
            (
                "lmstudio=[fd7a::1]:1234",
                Some(("lmstudio", "fd7a::1", 1234)),
            ),
            ("litellm=0", None),
            ("tgi=8080", None),
            ("ollama", None),
            ("ollama=x", None),
        ];
        for (text, want) in cases {
            let got = parse_probe(text).ok();
            let got = got
                .as_ref()
                .map(|t| (t.kind.as_str(), t.host.as_str(), t.port));
            assert_eq!(got, want, "{text}");
        }
    }
}
