//! Command-line arguments and what each subcommand starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use switchyard_node_agent::{Naming, ProbeTarget, ServerKind};
use tokio::net::TcpListener;

use crate::admin::{self, AdminArgs, CooldownsCmd, EndpointsCmd, KeysCmd, MembersCmd, Verb};
use crate::up::{Up, UpConfig, UpExtras};

/// One OpenAI-compatible endpoint in front of every LLM server and provider you use.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as `text` (for people) or `json` (one object per line, for log pipelines).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SWITCHYARD_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, fields included.
    Json,
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: control plane, node agent and edge.
    Up(UpArgs),
    /// Run a control-plane voter.
    ControlPlane(Box<ControlPlaneArgs>),
    /// Run a node agent that discovers model servers on this host.
    NodeAgent(NodeAgentArgs),
    /// Run an edge serving the OpenAI-compatible /v1 API.
    Edge(EdgeArgs),
    /// Show the cluster: members, leader, term, indexes, nodes and endpoints.
    Status(AdminArgs),
    /// List, add or remove endpoints.
    Endpoints {
        #[command(subcommand)]
        /// What to do.
        cmd: Option<EndpointsCmd>,
        #[command(flatten)]
        /// Admin API access.
        admin: AdminArgs,
    },
    /// Create, list or revoke client keys.
    Keys {
        #[command(subcommand)]
        /// What to do.
        cmd: KeysCmd,
        #[command(flatten)]
        /// Admin API access.
        admin: AdminArgs,
    },
    /// List or clear upstream cooldowns.
    Cooldowns {
        #[command(subcommand)]
        /// What to do.
        cmd: Option<CooldownsCmd>,
        #[command(flatten)]
        /// Admin API access.
        admin: AdminArgs,
    },
    /// List model groups with their deployments, aliases and fallbacks.
    Models(AdminArgs),
    /// List, add, promote or remove control-plane members.
    Members {
        #[command(subcommand)]
        /// What to do.
        cmd: Option<MembersCmd>,
        #[command(flatten)]
        /// Admin API access.
        admin: AdminArgs,
    },
    /// Re-read the config file and environment on a voter and apply the difference.
    Reload(AdminArgs),
    /// Show requests, tokens and spend per key, model, deployment, hour or day.
    Usage(crate::cmd::usage::UsageArgs),
    /// Check, step by step, that control plane, agents and edge work together.
    Doctor(crate::doctor::DoctorArgs),
    /// Make a CA and per-node certificates for mutual TLS between the roles.
    Certs {
        #[command(subcommand)]
        /// What to do.
        cmd: crate::certs::CertsCmd,
    },
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
    /// Address the admin API serves /api/v1 and /metrics on.
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_LISTEN",
        default_value = "127.0.0.1:7701"
    )]
    pub admin_listen: SocketAddr,
    /// config.yaml to load: Switchyard's format or LiteLLM's, as-is.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also serve a built-in `demo` model, so a fresh machine answers at once.
    #[arg(long)]
    pub demo: bool,
    /// Do not probe this host for model servers.
    #[arg(long)]
    pub no_agent: bool,
    /// A client key the edge accepts besides the cluster's keys; with it set, `/v1` requires a
    /// key even before any is created.
    #[arg(long, env = "SWITCHYARD_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,
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
    /// Address the admin API serves /api/v1 and /metrics on.
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_LISTEN",
        default_value = "127.0.0.1:7701"
    )]
    pub admin_listen: SocketAddr,
    /// config.yaml to load: Switchyard's format or LiteLLM's, as-is. Reloaded on SIGHUP.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Initialise a new cluster when the data directory is fresh (the default without --join).
    #[arg(long, conflicts_with = "join")]
    pub bootstrap: bool,
    /// Join the cluster of this voter (its gRPC URL): added as a learner, then promoted.
    #[arg(long, value_name = "URL", env = "SWITCHYARD_JOIN")]
    pub join: Option<String>,
    /// Neither bootstrap nor join: wait to be added with `switchyard members add`.
    #[arg(long, conflicts_with_all = ["join", "bootstrap"])]
    pub no_bootstrap: bool,
    /// Another voter to bootstrap with, `ID=HOST:PORT` (repeat; only on the first start).
    #[arg(long = "initial-member", value_name = "ID=HOST:PORT")]
    pub initial_members: Vec<String>,
    /// Admin tokens that may write (comma-separated; default: one generated in the data dir).
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub admin_tokens: Vec<String>,
    /// Admin tokens that may only read (comma-separated).
    #[arg(
        long,
        env = "SWITCHYARD_READ_ONLY_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub read_only_tokens: Vec<String>,
    /// Cluster key (base64url, 32 bytes) sealing stored credentials; default `<data-dir>/cluster.key`.
    #[arg(long, env = "SWITCHYARD_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,
    /// File holding the cluster key.
    #[arg(long, env = "SWITCHYARD_CLUSTER_KEY_FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// Build a raft snapshot after this many log entries.
    #[arg(long, default_value_t = 5_000)]
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub keep_logs: u64,
    /// Milliseconds of agent silence before a node is marked down.
    #[arg(long, default_value_t = 15_000)]
    pub node_down_after_ms: u64,
    /// Minutes of per-minute usage kept (0 = forever).
    #[arg(long, default_value_t = 120)]
    pub usage_minutes_kept: u64,
    /// Hours of hourly usage kept (0 = forever).
    #[arg(long, default_value_t = 168)]
    pub usage_hours_kept: u64,
    /// Days of daily usage kept (0 = forever).
    #[arg(long, default_value_t = 400)]
    pub usage_days_kept: u64,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 150)]
    pub heartbeat_ms: u64,
    /// Raft election timeout lower bound in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub election_min_ms: u64,
    /// Raft election timeout upper bound in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub election_max_ms: u64,
    /// Source IP for connections to other voters.
    #[arg(long)]
    pub peer_bind_ip: Option<std::net::IpAddr>,
    /// Write the bound addresses as JSON to this file once listening (for scripts and tests).
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Do not announce this voter on the LAN over mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Keep the state in this existing etcd cluster (client URLs, comma-separated) instead of
    /// the embedded raft. Needs a build with the `etcd` feature.
    #[arg(
        long,
        env = "SWITCHYARD_ETCD_ENDPOINTS",
        value_name = "URL[,URL]",
        value_delimiter = ',',
        conflicts_with_all = ["join", "initial_members"]
    )]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of Switchyard's keys in etcd.
    #[arg(long, env = "SWITCHYARD_ETCD_PREFIX", default_value = "/switchyard")]
    pub etcd_prefix: String,
    /// CA certificate (PEM) of etcd's https:// endpoints.
    #[arg(long, env = "SWITCHYARD_ETCD_CA_FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's mutual TLS.
    #[arg(long, env = "SWITCHYARD_ETCD_CERT_FILE", requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,
    /// Client private key (PEM) for --etcd-cert-file.
    #[arg(long, env = "SWITCHYARD_ETCD_KEY_FILE", requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,
    /// etcd user, when etcd has authentication enabled.
    #[arg(long, env = "SWITCHYARD_ETCD_USER", requires = "etcd_password_env")]
    pub etcd_user: Option<String>,
    /// Environment variable holding the etcd user's password.
    #[arg(long, value_name = "VAR", requires = "etcd_user")]
    pub etcd_password_env: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Mutual TLS on the gRPC links between edges, agents and voters (`switchyard certs init`
/// makes the files). All three or none.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// CA certificate (PEM) that signed every node's certificate; turns mutual TLS on.
    #[arg(long, env = "SWITCHYARD_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM).
    #[arg(long, env = "SWITCHYARD_TLS_CERT", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "SWITCHYARD_TLS_KEY", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
}

impl ControlPlaneArgs {
    /// The voter's settings.
    pub fn config(&self) -> anyhow::Result<switchyard_control_plane::Config> {
        let mut initial_members = std::collections::BTreeMap::new();
        for m in &self.initial_members {
            let (id, addr) = m
                .split_once('=')
                .with_context(|| format!("--initial-member {m:?}: expected ID=HOST:PORT"))?;
            let id: u64 = id
                .parse()
                .with_context(|| format!("--initial-member {m:?}: {id:?} is not a raft id"))?;
            initial_members.insert(id, addr.to_string());
        }
        let cfg = switchyard_control_plane::Config {
            node_id: self.node_id,
            data_dir: self.data_dir.clone(),
            advertise_addr: self.advertise.clone(),
            join_token: self.join_token.clone(),
            bootstrap: !self.no_bootstrap,
            join: self.join.clone(),
            initial_members,
            heartbeat_ms: self.heartbeat_ms,
            election_min_ms: self.election_min_ms,
            election_max_ms: self.election_max_ms,
            snapshot_every: self.snapshot_every,
            keep_logs: self.keep_logs,
            peer_bind_ip: self.peer_bind_ip,
            node_down_after_ms: self.node_down_after_ms,
            leader_grace_ms: self.node_down_after_ms,
            admin_tokens: self.admin_tokens.clone(),
            read_only_tokens: self.read_only_tokens.clone(),
            cluster_key: self.cluster_key.clone(),
            cluster_key_file: self.cluster_key_file.clone(),
            config_file: self.config.clone(),
            env: None,
            mdns: !self.no_mdns,
            backend: if self.etcd_endpoints.is_empty() {
                switchyard_control_plane::etcd::BackendKind::Raft
            } else {
                switchyard_control_plane::etcd::BackendKind::Etcd
            },
            etcd: (!self.etcd_endpoints.is_empty()).then(|| {
                switchyard_control_plane::etcd::EtcdSettings {
                    endpoints: self.etcd_endpoints.clone(),
                    prefix: self.etcd_prefix.clone(),
                    username: self.etcd_user.clone(),
                    password_env: self.etcd_password_env.clone(),
                    ca_file: self.etcd_ca_file.clone(),
                    cert_file: self.etcd_cert_file.clone(),
                    key_file: self.etcd_key_file.clone(),
                    snapshot_every: self.snapshot_every,
                    ..Default::default()
                }
            }),
            tls_ca: self.tls.tls_ca.clone(),
            tls_cert: self.tls.tls_cert.clone(),
            tls_key: self.tls.tls_key.clone(),
            usage_retention: switchyard_control_plane::state::Retention {
                minutes_ms: self.usage_minutes_kept.saturating_mul(60_000),
                hours_ms: self.usage_hours_kept.saturating_mul(3_600_000),
                days_ms: self.usage_days_kept.saturating_mul(86_400_000),
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

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
    /// A client key accepted before any key exists in the cluster (first use).
    #[arg(long, env = "SWITCHYARD_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,
    /// Serve without client keys on a non-loopback address (otherwise such an edge refuses
    /// to start while no key is configured).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Milliseconds a client has to send a request's headers; slower connections are closed.
    #[arg(
        long,
        env = "SWITCHYARD_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,
    /// Milliseconds a keep-alive connection may idle, or a response wait on a client reading nothing.
    #[arg(long, env = "SWITCHYARD_IDLE_TIMEOUT_MS", default_value_t = 90_000)]
    pub idle_timeout_ms: u64,
    /// Milliseconds a client has to send a request's body after its headers (then 408).
    #[arg(
        long,
        env = "SWITCHYARD_BODY_READ_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub body_read_timeout_ms: u64,
    /// Most client connections served at once; more wait in the listen backlog.
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Threads serving client connections, each with its own event loop and upstream
    /// connection pool; 0 = one per CPU.
    #[arg(long, env = "SWITCHYARD_EDGE_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Milliseconds between usage reports to the control plane (what a crashed edge can lose).
    #[arg(long, default_value_t = 10_000)]
    pub usage_flush_ms: u64,
    /// Do not count usage (per key, model and deployment) on this edge.
    #[arg(long)]
    pub no_usage_accounting: bool,
    /// Write the bound address as JSON to this file once listening (for scripts and tests).
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
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
            let admin = bind(args.admin_listen, "--admin-listen").await?;
            let extras = UpExtras {
                config_file: args.config,
                admin: Some(admin),
                bootstrap_key: args.bootstrap_key,
            };
            let up = Up::start_with(cfg, edge, grpc, extras).await?;
            tracing::info!(
                edge = %format!("http://{}/v1", up.edge_addr()),
                control_plane = %up.grpc_addr(),
                admin = %format!("http://{}", args.admin_listen),
                demo = args.demo,
                "switchyard is up"
            );
            shutdown.await;
            up.stop().await
        }
        Command::ControlPlane(args) => run_control_plane(*args, shutdown).await,
        Command::NodeAgent(args) => {
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
        Command::Edge(args) => {
            let cfg = switchyard_edge::Config {
                control_plane: args.control_plane,
                edge_name: args.name,
                table_cache: args.table_cache,
                bootstrap_key: args.bootstrap_key.map(switchyard_edge::config::Secret::new),
                insecure_no_auth: args.insecure_no_auth,
                header_read_timeout_ms: args.header_read_timeout_ms,
                idle_timeout_ms: args.idle_timeout_ms,
                body_read_timeout_ms: args.body_read_timeout_ms,
                max_connections: args.max_connections,
                workers: args.workers,
                usage_flush_ms: args.usage_flush_ms,
                usage_accounting: !args.no_usage_accounting,
                tls_ca: args.tls.tls_ca,
                tls_cert: args.tls.tls_cert,
                tls_key: args.tls.tls_key,
                ..Default::default()
            };
            cfg.validate()?;
            let listener = bind(args.listen, "--listen").await?;
            if let Some(path) = &args.addr_file {
                let addrs = serde_json::json!({ "http": listener.local_addr()?.to_string() });
                write_addr_file(path, &addrs)?;
            }
            switchyard_edge::run(cfg, listener, shutdown).await?;
            Ok(())
        }
        Command::Status(a) => verb(&a, Verb::Status).await,
        Command::Usage(a) => crate::cmd::usage::run(&a, &mut std::io::stdout().lock()).await,
        Command::Endpoints { cmd, admin: a } => {
            verb(&a, Verb::Endpoints(cmd.unwrap_or(EndpointsCmd::List))).await
        }
        Command::Keys { cmd, admin: a } => verb(&a, Verb::Keys(cmd)).await,
        Command::Cooldowns { cmd, admin: a } => {
            verb(&a, Verb::Cooldowns(cmd.unwrap_or(CooldownsCmd::List))).await
        }
        Command::Models(a) => verb(&a, Verb::Models).await,
        Command::Members { cmd, admin: a } => {
            verb(&a, Verb::Members(cmd.unwrap_or(MembersCmd::List))).await
        }
        Command::Reload(a) => verb(&a, Verb::Reload).await,
        Command::Certs {
            cmd: crate::certs::CertsCmd::Init(args),
        } => crate::certs::init(&args, &mut std::io::stdout().lock()),
        Command::Doctor(args) => {
            if crate::doctor::run(args).await? {
                Ok(())
            } else {
                bail!("doctor found problems (see the report above)")
            }
        }
    }
}

async fn verb(args: &AdminArgs, verb: Verb) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    admin::run(args, verb, &mut out).await
}

/// Runs a voter, reloading its declared configuration on SIGHUP, until `shutdown` resolves.
async fn run_control_plane(
    args: ControlPlaneArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let listener = bind(args.listen, "--listen").await?;
    let admin = bind(args.admin_listen, "--admin-listen").await?;
    let addrs = serde_json::json!({
        "grpc": listener.local_addr()?.to_string(),
        "admin": admin.local_addr()?.to_string(),
    });
    let cp = switchyard_control_plane::ControlPlane::start_with_admin(cfg, listener, Some(admin))
        .await?;
    if let Some(path) = &args.addr_file {
        write_addr_file(path, &addrs)?;
    }
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = hangup.recv() => match cp.reload().await {
                Ok(report) => tracing::info!(changed = report.changed, revision = report.revision, "reloaded on SIGHUP"),
                Err(e) => tracing::error!(error = %e, "reload on SIGHUP failed; the previous configuration stays"),
            },
        }
    }
    cp.stop().await?;
    Ok(())
}

/// Writes `addrs` to `path` whole, then renames it, so a reader never sees half a file.
fn write_addr_file(path: &std::path::Path, addrs: &serde_json::Value) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addrs.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing --addr-file {}", path.display()))
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
