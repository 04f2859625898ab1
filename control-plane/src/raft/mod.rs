//! Consensus: openraft over a redb log and state machine, behind `Consensus`.
//!
//! This module is the only place that imports openraft, so an openraft upgrade changes nothing
//! outside it.

mod log_store;
mod network;
mod state_machine;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use switchyard_proto::v1::RoutingTable;
use switchyard_proto::v1::raft_service_server::RaftServiceServer;
use tokio::sync::watch;

pub use log_store::LogStore;
pub use network::{Network, RaftServer};
pub use state_machine::StateMachine;

use crate::error::Error;
use crate::state::{ClusterState, Command, Outcome};

openraft::declare_raft_types!(
    /// Switchyard's raft types: commands in, outcomes out, voters addressed by gRPC address.
    pub TypeConfig:
        D = Command,
        R = Outcome,
);

/// The openraft node type.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::PutEndpoint { spec, .. } => write!(f, "put_endpoint({})", spec.id),
            Command::DeleteEndpoint { id } => write!(f, "delete_endpoint({id})"),
            Command::PutModelGroup { group } => write!(f, "put_model_group({})", group.name),
            Command::DeleteModelGroup { name } => write!(f, "delete_model_group({name})"),
            Command::NodeUp { name, .. } => write!(f, "node_up({name})"),
            Command::NodeDown { name, .. } => write!(f, "node_down({name})"),
            Command::ReportBackends { node, .. } => write!(f, "report_backends({node})"),
        }
    }
}

/// Raft timing, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Leader heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Lower bound of the randomised election timeout (ms).
    pub election_min_ms: u64,
    /// Upper bound of the randomised election timeout (ms).
    pub election_max_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_ms: 150,
            election_min_ms: 500,
            election_max_ms: 1000,
        }
    }
}

/// One voter: its raft node, state machine and identity.
#[derive(Clone)]
pub struct Consensus {
    raft: Raft,
    db: Arc<redb::Database>,
    state_machine: StateMachine,
    node_id: u64,
    addr: String,
}

impl Consensus {
    /// Opens (or creates) the voter's durable store in `data_dir` and starts its raft node.
    /// `addr` is the gRPC address peers reach this voter at.
    pub async fn open(
        node_id: u64,
        addr: String,
        data_dir: &Path,
        timing: Timing,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("raft.redb");
        let db = redb::Database::create(&path).map_err(|e| Error::DataDir {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        let db = Arc::new(db);
        let log_store = LogStore::open(db.clone())?;
        let state_machine = StateMachine::open(db.clone())?;
        let config = openraft::Config {
            cluster_name: "switchyard".into(),
            heartbeat_interval: timing.heartbeat_ms,
            election_timeout_min: timing.election_min_ms,
            election_timeout_max: timing.election_max_ms,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Raft(e.to_string()))?;
        let raft = Raft::new(
            node_id,
            Arc::new(config),
            Network,
            log_store,
            state_machine.clone(),
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        Ok(Self {
            raft,
            db,
            state_machine,
            node_id,
            addr,
        })
    }

    /// Makes this voter a one-voter cluster unless it already belongs to one.
    pub async fn bootstrap_single(&self) -> Result<(), Error> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        if !initialized {
            let members = BTreeMap::from([(
                self.node_id,
                BasicNode {
                    addr: self.addr.clone(),
                },
            )]);
            self.raft
                .initialize(members)
                .await
                .map_err(|e| Error::Raft(e.to_string()))?;
        }
        Ok(())
    }

    /// Proposes a command and waits until it is committed and applied.
    pub async fn write(&self, command: Command) -> Result<Outcome, Error> {
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Error::NotLeader {
                    leader: f.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    /// Waits until some voter is leader and this one knows it, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, Error> {
        let metrics = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        metrics
            .current_leader
            .ok_or_else(|| Error::Raft("no leader after waiting for one".into()))
    }

    /// The gRPC address of the current leader, if known.
    pub async fn leader_addr(&self) -> Option<String> {
        let leader = self.raft.current_leader().await?;
        let metrics = self.raft.metrics().borrow_watched().clone();
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Follows the compiled routing table of the applied state.
    pub fn watch_table(&self) -> watch::Receiver<Arc<RoutingTable>> {
        self.state_machine.watch_table()
    }

    /// A copy of the applied state.
    pub async fn state(&self) -> ClusterState {
        self.state_machine.state().await
    }

    /// The gRPC service peers call.
    pub fn raft_service(&self) -> RaftServiceServer<RaftServer> {
        RaftServiceServer::new(RaftServer::new(self.raft.clone()))
    }

    /// Stops the raft node and waits, up to `timeout`, until every other holder of the
    /// database (agent sessions finishing their last write) has let go, so the data directory
    /// can be opened again at once.
    pub async fn shutdown(self, timeout: Duration) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft node did not stop cleanly");
        }
        let db = Arc::downgrade(&self.db);
        drop(self);
        let deadline = tokio::time::Instant::now() + timeout;
        while db.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("the database is still in use after shutdown");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests;
