//! The `Consensus` handle: the embedded raft voter or (with the `etcd` feature) an etcd follower,
//! behind one set of methods.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchyard_proto::v1::RoutingTable;
use switchyard_proto::v1::raft_service_server::RaftServiceServer;
use tokio::sync::watch;

use super::{Forwarded, RaftNode, RaftServer, RaftSettings, RaftStatus};
use crate::error::Error;
use crate::seal::ClusterKey;
use crate::state::{ClusterState, Command, Outcome};

/// The consensus a control-plane node runs on: the embedded raft voter, or (with the `etcd`
/// feature) a follower of the command log in an existing etcd cluster. The rest of the control
/// plane sees only this handle; clones share the node.
#[derive(Clone)]
pub struct Consensus {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Raft(RaftNode),
    #[cfg(feature = "etcd")]
    Etcd(crate::etcd::EtcdConsensus),
}

/// The error membership operations answer when etcd manages the cluster.
#[cfg(feature = "etcd")]
fn managed_by_etcd() -> Error {
    Error::BadRequest(
        "cluster membership is managed by etcd in this deployment: add or remove etcd members with etcdctl, and start or stop Switchyard control-plane nodes on the same etcd prefix".into(),
    )
}

impl Consensus {
    /// Opens (or creates) the voter's durable store in `data_dir` and starts its raft node.
    /// `addr` is the gRPC address peers reach this voter at.
    pub async fn open(
        node_id: u64,
        addr: String,
        data_dir: &Path,
        settings: RaftSettings,
        key: Option<Arc<ClusterKey>>,
    ) -> Result<Self, Error> {
        let node = RaftNode::open(node_id, addr, data_dir, settings, key).await?;
        Ok(Self {
            backend: Backend::Raft(node),
        })
    }

    /// Connects to etcd and follows the command log under `settings.prefix` instead of running
    /// raft. `addr` is the gRPC address agents and edges reach this node at.
    #[cfg(feature = "etcd")]
    pub async fn open_etcd(
        node_id: u64,
        addr: String,
        settings: crate::etcd::EtcdSettings,
        key: Option<Arc<ClusterKey>>,
    ) -> Result<Self, Error> {
        let node = crate::etcd::EtcdConsensus::open(node_id, addr, settings, key).await?;
        Ok(Self {
            backend: Backend::Etcd(node),
        })
    }

    /// `raft` or `etcd`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Raft(_) => "raft",
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => "etcd",
        }
    }

    /// Makes this voter the first member of a cluster of `members` (id → gRPC address; this
    /// voter alone when empty) unless it already belongs to one. With etcd: nothing to do.
    pub async fn bootstrap(&self, members: &BTreeMap<u64, String>) -> Result<bool, Error> {
        match &self.backend {
            Backend::Raft(r) => r.bootstrap(members).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => Ok(false),
        }
    }

    /// Proposes a command and waits until it is committed and applied here (raft: forwarded
    /// to the leader when needed; etcd: appended to the log from any node).
    pub async fn write(&self, command: Command) -> Result<Outcome, Error> {
        match &self.backend {
            Backend::Raft(r) => r.write(command).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.write(command).await,
        }
    }

    /// Before a consistent read: on the raft leader, confirms leadership with a quorum and
    /// waits until every committed write is applied here; `NotLeader` on any other voter. With
    /// etcd: refused (reads follow the local copy of the log).
    pub async fn read_barrier(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Raft(r) => r.read_barrier().await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => Err(Error::BadRequest(
                "consistent reads are not available with the etcd backend".into(),
            )),
        }
    }

    /// Proposes a command only if this node is the leader; `NotLeader` otherwise.
    pub async fn write_local(&self, command: Command) -> Result<Outcome, Error> {
        match &self.backend {
            Backend::Raft(r) => r.write_local(command).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.write_local(command).await,
        }
    }

    /// Runs a membership change on the leader (forwarding when needed). With etcd: an error
    /// saying etcd manages membership.
    pub async fn change_members(&self, change: Forwarded) -> Result<(), Error> {
        match &self.backend {
            Backend::Raft(r) => r.change_members(change).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => {
                let _ = change;
                Err(managed_by_etcd())
            }
        }
    }

    /// Asks the cluster that `seed` belongs to to add this voter as a learner and then promote
    /// it. With etcd: an error saying etcd manages membership.
    pub async fn join_via(&self, seed: &str) -> Result<(), Error> {
        match &self.backend {
            Backend::Raft(r) => r.join_via(seed).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => {
                let _ = seed;
                Err(managed_by_etcd())
            }
        }
    }

    /// Waits until some node is leader and this one knows it, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, Error> {
        match &self.backend {
            Backend::Raft(r) => r.wait_for_leader(timeout).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.wait_for_leader(timeout).await,
        }
    }

    /// Whether this node is the leader now (etcd: holds the leader key).
    pub fn is_leader(&self) -> bool {
        match &self.backend {
            Backend::Raft(r) => r.is_leader(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.is_leader(),
        }
    }

    /// Whether what this node serves is current: raft, see [`RaftNode::in_contact`]; etcd,
    /// always (the node follows etcd's log, and etcd decides what is committed).
    pub fn in_contact(&self) -> bool {
        match &self.backend {
            Backend::Raft(r) => r.in_contact(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => true,
        }
    }

    /// How often [`Consensus::in_contact`] is worth checking: a quarter of its bound.
    pub fn contact_check_interval(&self) -> Duration {
        match &self.backend {
            Backend::Raft(r) => r.contact_bound / 4,
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => Duration::from_secs(1),
        }
    }

    /// Follows whether this node is the leader.
    pub fn watch_leadership(&self) -> watch::Receiver<bool> {
        match &self.backend {
            Backend::Raft(r) => r.watch_leadership(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.watch_leadership(),
        }
    }

    /// The gRPC address of the current leader, if known.
    pub async fn leader_addr(&self) -> Option<String> {
        match &self.backend {
            Backend::Raft(r) => r.leader_addr().await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.leader_addr(),
        }
    }

    /// Term, roles, indexes and members as this node sees them (etcd: also etcd's status).
    pub fn status(&self) -> RaftStatus {
        match &self.backend {
            Backend::Raft(r) => r.status(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.status(),
        }
    }

    /// Milliseconds since the last snapshot was built or installed; `None` before the first.
    pub fn snapshot_age_ms(&self) -> Option<u64> {
        match &self.backend {
            Backend::Raft(r) => r.snapshot_age_ms(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.snapshot_age_ms(),
        }
    }

    /// Builds a snapshot now and compacts the log behind it.
    pub async fn snapshot_now(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Raft(r) => r.snapshot_now().await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.snapshot_now().await,
        }
    }

    /// Follows the compiled routing table of the applied state.
    pub fn watch_table(&self) -> watch::Receiver<Arc<RoutingTable>> {
        match &self.backend {
            Backend::Raft(r) => r.watch_table(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.watch_table(),
        }
    }

    /// A copy of the applied state.
    pub async fn state(&self) -> ClusterState {
        match &self.backend {
            Backend::Raft(r) => r.state().await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.state().await,
        }
    }

    /// Runs `read` on the applied state without copying it.
    pub async fn with_state<R>(&self, read: impl FnOnce(&ClusterState) -> R) -> R {
        match &self.backend {
            Backend::Raft(r) => r.with_state(read).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.with_state(read).await,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        match &self.backend {
            Backend::Raft(r) => r.node_id(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.node_id(),
        }
    }

    /// The gRPC service raft peers call; `None` with etcd (no peer traffic).
    pub fn raft_service(&self) -> Option<RaftServiceServer<RaftServer>> {
        match &self.backend {
            Backend::Raft(r) => Some(r.raft_service()),
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => None,
        }
    }

    /// Stops the node and waits, up to `timeout`, until it let go of its resources (raft: the
    /// database; etcd: the leader key).
    pub async fn shutdown(self, timeout: Duration) {
        match self.backend {
            Backend::Raft(r) => r.shutdown(timeout).await,
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.shutdown(timeout).await,
        }
    }
}
