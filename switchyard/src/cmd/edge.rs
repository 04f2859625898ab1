//! `switchyard edge`: serves the OpenAI-compatible `/v1` API from the control plane's routing
//! table.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::flags::{HttpsArgs, TelemetryArgs, TlsArgs, bind, write_addr_file};
use super::{Run, Shutdown};

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
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub https: HttpsArgs,
}

impl Run for EdgeArgs {
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let args = self;
        let mut cfg = switchyard_edge::Config {
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
            https_cert: args.https.https_cert,
            https_key: args.https.https_key,
            ..Default::default()
        };
        args.telemetry.apply(&mut cfg);
        cfg.validate()?;
        let listener = bind(args.listen, "--listen").await?;
        if let Some(path) = &args.addr_file {
            let addrs = serde_json::json!({ "http": listener.local_addr()?.to_string() });
            write_addr_file(path, &addrs)?;
        }
        switchyard_edge::run(cfg, listener, shutdown).await?;
        Ok(())
    }
}
