//! `switchyard up`: every role in one process (the wiring is [`crate::up`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::flags::{HttpsArgs, ProbeArgs, TelemetryArgs, bind};
use super::{Run, Shutdown};
use crate::up::{Up, UpConfig, UpExtras};

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
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// HTTPS on the edge's /v1 and the admin API (one certificate for both).
    #[command(flatten)]
    pub https: HttpsArgs,
}

impl Run for UpArgs {
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let args = self;
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
            telemetry: args.telemetry,
            https_cert: args.https.https_cert.clone(),
            https_key: args.https.https_key.clone(),
        };
        let scheme = if args.https.https_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let up = Up::start_with(cfg, edge, grpc, extras).await?;
        tracing::info!(
            edge = %format!("{scheme}://{}/v1", up.edge_addr()),
            control_plane = %up.grpc_addr(),
            admin = %format!("{scheme}://{}", args.admin_listen),
            demo = args.demo,
            "switchyard is up"
        );
        shutdown.await;
        up.stop().await
    }
}
