//! `switchyard control-plane`: one voter, reloading its declared configuration on SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::flags::{HttpsArgs, TlsArgs, bind, write_addr_file};
use super::{Run, Shutdown};

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
    /// Recent routing-table deltas each voter keeps for edges that fall behind or fail over (an
    /// edge whose version is older gets the full table).
    #[arg(long, env = "SWITCHYARD_TABLE_DELTAS_KEPT", default_value_t = 256)]
    pub table_deltas_kept: usize,
    /// Seconds between listings of catalogued endpoints' models (0: only on demand).
    #[arg(long, env = "SWITCHYARD_CATALOG_REFRESH_SECS", default_value_t = 300)]
    pub catalog_refresh_secs: u64,
    /// Seconds between scheduled audits of every model × credential (0: only on demand).
    #[arg(long, env = "SWITCHYARD_CATALOG_AUDIT_SECS", default_value_t = 0)]
    pub catalog_audit_secs: u64,
    /// Seconds a failed probe is not repeated.
    #[arg(
        long,
        env = "SWITCHYARD_CATALOG_FAILURE_TTL_SECS",
        default_value_t = 3_600
    )]
    pub catalog_failure_ttl_secs: u64,
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
    /// HTTPS on the admin API.
    #[command(flatten)]
    pub https: HttpsArgs,
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
            catalog_refresh_secs: self.catalog_refresh_secs,
            table_deltas_kept: self.table_deltas_kept,
            catalog_audit_secs: self.catalog_audit_secs,
            catalog_failure_ttl_secs: self.catalog_failure_ttl_secs,
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
            https_cert: self.https.https_cert.clone(),
            https_key: self.https.https_key.clone(),
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

impl Run for ControlPlaneArgs {
    /// Runs a voter, reloading its declared configuration on SIGHUP, until `shutdown` resolves.
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let args = self;
        let cfg = args.config()?;
        let listener = bind(args.listen, "--listen").await?;
        let admin = bind(args.admin_listen, "--admin-listen").await?;
        let addrs = serde_json::json!({
            "grpc": listener.local_addr()?.to_string(),
            "admin": admin.local_addr()?.to_string(),
        });
        let cp =
            switchyard_control_plane::ControlPlane::start_with_admin(cfg, listener, Some(admin))
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
}
