//! `switchyard node-agent`: discovers model servers on this host and its peers and reports
//! them to the control plane.

use std::path::PathBuf;

use clap::Args;
use switchyard_node_agent::Naming;

use super::flags::{ProbeArgs, TlsArgs};
use super::{Run, Shutdown};

/// `switchyard node-agent`.
#[derive(Debug, Args)]
pub struct NodeAgentArgs {
    /// Control-plane gRPC URL; without it the agent finds one on the LAN over mDNS.
    #[arg(long, env = "SWITCHYARD_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// Secret the control plane expects.
    #[arg(
        long,
        env = "SWITCHYARD_JOIN_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub join_token: String,
    /// Also probe this host (`HOST` on all four ports, `HOST:PORT` on that port, `[IPv6]:PORT`);
    /// repeatable. `LLM_PROXY_DISCOVERY_PEERS` (comma-separated) replaces these.
    #[arg(long = "peer", value_name = "HOST[:PORT]")]
    pub peers: Vec<String>,
    /// Do not probe this host's own ports (also `LLM_PROXY_LOCAL_DISCOVERY=0`).
    #[arg(long)]
    pub no_local_scan: bool,
    /// Neither announce this agent nor look for the control plane over mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Do not probe Tailscale peers.
    #[arg(long)]
    pub no_tailscale: bool,
    /// tailscaled's LocalAPI socket (default: the platform's usual path).
    #[arg(long, env = "SWITCHYARD_TAILSCALE_SOCKET")]
    pub tailscale_socket: Option<PathBuf>,
    /// nvidia-smi to read GPUs with; empty turns GPU facts off.
    #[arg(long, default_value = "nvidia-smi")]
    pub nvidia_smi: String,
    /// Consecutive good scans before a failing backend counts as healthy again.
    #[arg(long, default_value_t = 2)]
    pub success_threshold: u32,
    /// Milliseconds a backend may stay unreachable before it is reported gone (0: ten scans).
    #[arg(long, default_value_t = 0)]
    pub remove_after_ms: u64,
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl Run for NodeAgentArgs {
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let args = self;
        let mut cfg = switchyard_node_agent::Config {
            control_plane: args.control_plane.unwrap_or_default(),
            node_name: args.probe.node_name(),
            join_token: args.join_token,
            scan_interval_ms: args.probe.scan_interval_ms,
            targets: args.probe.targets()?,
            naming: Naming::NodeSuffix,
            fail_threshold: args.probe.fail_threshold,
            success_threshold: args.success_threshold,
            remove_after_ms: args.remove_after_ms,
            nvidia_smi: args.nvidia_smi,
            tls_ca: args.tls.tls_ca,
            tls_cert: args.tls.tls_cert,
            tls_key: args.tls.tls_key,
            ..Default::default()
        };
        let discovery = &mut cfg.discovery;
        discovery.peers = args
            .peers
            .into_iter()
            .map(switchyard_node_agent::config::PeerEntry::Address)
            .collect();
        discovery.local_scan = !args.no_local_scan;
        discovery.mdns = !args.no_mdns;
        discovery.tailscale.enabled = !args.no_tailscale;
        if let Some(socket) = args.tailscale_socket {
            discovery.tailscale.socket = Some(socket);
        }
        cfg.apply_env()?;
        cfg.validate()?;
        switchyard_node_agent::run(cfg, shutdown).await?;
        Ok(())
    }
}
