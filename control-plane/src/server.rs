//! Starts a control-plane voter: its raft node and its gRPC services on one listener.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use switchyard_proto::v1::agent_service_server::AgentServiceServer;
use switchyard_proto::v1::edge_service_server::EdgeServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::error::Error;
use crate::raft::{Consensus, Timing};
use crate::service::agent::AgentServer;
use crate::service::edge::EdgeServer;
use crate::state::{ClusterState, Command, Outcome};

/// How a voter runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Raft node id, unique in the cluster. Default 1.
    pub node_id: u64,
    /// Directory holding the durable log and state (`raft.redb`). Default `./switchyard-data`.
    pub data_dir: PathBuf,
    /// Address peers, agents and edges reach this voter at (`host:port`). Default: the bound
    /// listener's address.
    pub advertise_addr: Option<String>,
    /// Secret agents must present; `None` accepts any agent. Default `None`.
    pub join_token: Option<String>,
    /// Initialise a one-voter cluster when the data directory is fresh. Default true.
    pub bootstrap: bool,
    /// Leader heartbeat interval in ms. Default 150.
    pub heartbeat_ms: u64,
    /// Election timeout lower bound in ms. Default 500.
    pub election_min_ms: u64,
    /// Election timeout upper bound in ms. Default 1000.
    pub election_max_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        let timing = Timing::default();
        Self {
            node_id: 1,
            data_dir: PathBuf::from("switchyard-data"),
            advertise_addr: None,
            join_token: None,
            bootstrap: true,
            heartbeat_ms: timing.heartbeat_ms,
            election_min_ms: timing.election_min_ms,
            election_max_ms: timing.election_max_ms,
        }
    }
}

impl Config {
    /// Checks the fields before anything binds or opens.
    pub fn validate(&self) -> Result<(), Error> {
        if self.node_id == 0 {
            return Err(Error::Config {
                field: "node_id",
                reason: "must be at least 1".into(),
            });
        }
        if self.heartbeat_ms == 0 {
            return Err(Error::Config {
                field: "heartbeat_ms",
                reason: "must be at least 1".into(),
            });
        }
        if self.election_min_ms <= self.heartbeat_ms || self.election_max_ms <= self.election_min_ms
        {
            return Err(Error::Config {
                field: "election_min_ms",
                reason: "need heartbeat_ms < election_min_ms < election_max_ms".into(),
            });
        }
        if self.join_token.as_deref() == Some("") {
            return Err(Error::Config {
                field: "join_token",
                reason: "is empty; omit it to accept any agent".into(),
            });
        }
        Ok(())
    }
}

/// A running voter.
pub struct ControlPlane {
    consensus: Consensus,
    addr: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ControlPlane {
    /// Opens the store, starts raft and serves the gRPC services on `listener`.
    pub async fn start(cfg: Config, listener: TcpListener) -> Result<Self, Error> {
        cfg.validate()?;
        let local = listener.local_addr()?;
        let addr = cfg
            .advertise_addr
            .clone()
            .unwrap_or_else(|| local.to_string());
        let timing = Timing {
            heartbeat_ms: cfg.heartbeat_ms,
            election_min_ms: cfg.election_min_ms,
            election_max_ms: cfg.election_max_ms,
        };
        let consensus = Consensus::open(cfg.node_id, addr.clone(), &cfg.data_dir, timing).await?;
        let (stop, stopped) = watch::channel(false);

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<AgentServiceServer<AgentServer>>()
            .await;
        health.set_serving::<EdgeServiceServer<EdgeServer>>().await;
        let router = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(consensus.raft_service())
            .add_service(AgentServiceServer::new(AgentServer::new(
                consensus.clone(),
                cfg.join_token.clone(),
                stopped.clone(),
            )))
            .add_service(EdgeServiceServer::new(EdgeServer::new(
                consensus.clone(),
                stopped.clone(),
            )));
        let mut until_stop = stopped.clone();
        let server = tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async move {
                // An error means the sender is gone, which also means stop.
                let _stopped = until_stop.wait_for(|stop| *stop).await;
            },
        ));

        if cfg.bootstrap {
            consensus.bootstrap_single().await?;
        }
        tracing::info!(node_id = cfg.node_id, addr = %addr, data_dir = %cfg.data_dir.display(), "control plane started");
        Ok(Self {
            consensus,
            addr,
            stop,
            server,
        })
    }

    /// Runs a voter until `shutdown` resolves.
    pub async fn run(
        cfg: Config,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let control_plane = Self::start(cfg, listener).await?;
        shutdown.await;
        control_plane.stop().await
    }

    /// The gRPC address agents and edges use.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Waits until a leader is known, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(), Error> {
        self.consensus.wait_for_leader(timeout).await.map(|_| ())
    }

    /// Proposes a command through raft and waits for it to be applied.
    pub async fn write(&self, command: Command) -> Result<Outcome, Error> {
        self.consensus.write(command).await
    }

    /// A copy of the applied state.
    pub async fn state(&self) -> ClusterState {
        self.consensus.state().await
    }

    /// Stops serving, ends open streams and stops the raft node.
    pub async fn stop(self) -> Result<(), Error> {
        self.stop.send_replace(true);
        let served = self.server.await;
        self.consensus.shutdown(Duration::from_secs(5)).await;
        match served {
            Ok(result) => result.map_err(Error::from),
            Err(join) => Err(Error::Raft(format!("grpc server task failed: {join}"))),
        }
    }
}
