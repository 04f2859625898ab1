//! Consensus: openraft over a redb log and state machine, behind `Consensus`.
//!
//! This module is the only place that imports openraft, so an openraft upgrade changes nothing
//! outside it. Writes and membership changes made on a follower are forwarded to the leader over
//! `RaftService.Forward` (one hop; the leader never forwards again).

mod consensus;
mod contact;
mod forward;
mod log_store;
mod network;
mod state_machine;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::RaftError;
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use switchyard_proto::v1::RoutingTable;
use switchyard_proto::v1::raft_service_server::RaftServiceServer;
use tokio::sync::watch;

pub use consensus::Consensus;
pub use contact::LeaderContact;
pub(crate) use forward::execute;
use forward::write_on;
pub use forward::{ForwardReply, Forwarded};
pub use log_store::LogStore;
pub use network::{Network, RaftServer};
pub use state_machine::StateMachine;

use crate::error::Error;
use crate::etcd::EtcdStatus;
use crate::seal::ClusterKey;
use crate::state::{ClusterState, Command, Outcome};

openraft::declare_raft_types!(
    /// Switchyard's raft types: commands in, outcomes out, voters addressed by gRPC address.
    pub TypeConfig:
        D = Command,
        R = Outcome,
);

/// The openraft node type.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Raft timing and log-compaction settings.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// Leader heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Lower bound of the randomised election timeout (ms).
    pub election_min_ms: u64,
    /// Upper bound of the randomised election timeout (ms).
    pub election_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot, for followers that lag a little.
    pub keep_logs: u64,
    /// Source address for connections to peers (`None`: chosen by the OS).
    pub peer_bind_ip: Option<IpAddr>,
    /// Mutual TLS to peers (`None`: plaintext).
    pub peer_tls: Option<switchyard_proto::tls::TlsFiles>,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 150,
            election_min_ms: 500,
            election_max_ms: 1000,
            snapshot_every: 5_000,
            keep_logs: 1_000,
            peer_bind_ip: None,
            peer_tls: None,
        }
    }
}

/// One member of the raft cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft node id.
    pub id: u64,
    /// gRPC address.
    pub addr: String,
    /// Votes (else a learner).
    pub voter: bool,
}

/// What this voter knows about the cluster and its own progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftStatus {
    /// This voter's id.
    pub node_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Leader's id, when known.
    pub leader_id: Option<u64>,
    /// Leader's gRPC address, when known.
    pub leader_addr: Option<String>,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// Index of the last committed entry.
    pub commit_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Index the last snapshot covers.
    pub snapshot_index: u64,
    /// Members and learners (with the etcd backend: etcd's members).
    pub members: Vec<Member>,
    /// With the etcd backend: etcd's endpoints, revision and this node's log progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdStatus>,
}

/// How long a voter waits for a database file that this process still holds open.
const DATABASE_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Opens (or creates) the redb file at `path`. A voter stopped and started again in the same
/// process (`switchyard up` restarted on its data directory) may find the file still held for
/// a moment by the last tasks of the stopped one; redb refuses a second open in one process,
/// so that case is retried for a few seconds before it is an error.
async fn open_database(path: &Path) -> Result<redb::Database, Error> {
    let deadline = tokio::time::Instant::now() + DATABASE_RELEASE_WAIT;
    loop {
        match redb::Database::create(path) {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(Error::DataDir {
                    path: path.display().to_string(),
                    source: std::io::Error::other(e),
                });
            }
        }
    }
}

/// One voter: its raft node, state machine and identity.
#[derive(Clone)]
struct RaftNode {
    raft: Raft,
    db: Arc<redb::Database>,
    state_machine: StateMachine,
    node_id: u64,
    addr: String,
    network: Network,
    contact: LeaderContact,
    /// Longer than this without leader contact, and this voter may be serving stale state.
    contact_bound: Duration,
}

impl RaftNode {
    /// Opens (or creates) the voter's durable store in `data_dir` and starts its raft node.
    /// `addr` is the gRPC address peers reach this voter at.
    pub async fn open(
        node_id: u64,
        addr: String,
        data_dir: &Path,
        settings: RaftSettings,
        key: Option<Arc<ClusterKey>>,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("raft.redb");
        let db = Arc::new(open_database(&path).await?);
        let log_store = LogStore::open(db.clone())?;
        let state_machine = StateMachine::open(db.clone(), key)?;
        let config = openraft::Config {
            cluster_name: "switchyard".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_min_ms,
            election_timeout_max: settings.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.keep_logs,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Raft(e.to_string()))?;
        let network = Network::new(settings.peer_bind_ip).with_tls(settings.peer_tls.clone());
        let raft = Raft::new(
            node_id,
            Arc::new(config),
            network.clone(),
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
            network,
            contact: LeaderContact::new(),
            contact_bound: Duration::from_millis(settings.election_max_ms),
        })
    }

    /// Makes this voter the first member of a cluster of `members` (id → gRPC address; this
    /// voter alone when empty) unless it already belongs to one.
    pub async fn bootstrap(&self, members: &BTreeMap<u64, String>) -> Result<bool, Error> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        if initialized {
            return Ok(false);
        }
        let mut nodes: BTreeMap<u64, BasicNode> = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        nodes.insert(
            self.node_id,
            BasicNode {
                addr: self.addr.clone(),
            },
        );
        self.raft
            .initialize(nodes)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        Ok(true)
    }

    /// Proposes a command and waits until it is committed and applied, forwarding it to the
    /// leader when this voter is not the leader.
    pub async fn write(&self, command: Command) -> Result<Outcome, Error> {
        match self.write_local(command.clone()).await {
            Err(Error::NotLeader {
                leader: Some(leader),
            }) => match self
                .network
                .forward(&leader, &Forwarded::Write { command })
                .await?
            {
                ForwardReply::Written { outcome } => {
                    // Read-your-writes on this voter: wait (briefly) until it applied the change.
                    if let Outcome::Changed { revision } | Outcome::Unchanged { revision } =
                        &outcome
                    {
                        self.wait_revision(*revision, Duration::from_secs(5)).await;
                    }
                    Ok(outcome)
                }
                ForwardReply::NotLeader { leader } => Err(Error::NotLeader { leader }),
                ForwardReply::MembersChanged => {
                    Err(Error::Raft("the leader answered a write oddly".into()))
                }
                ForwardReply::Failed { message } => Err(Error::Raft(message)),
            },
            other => other,
        }
    }

    /// Waits until this voter's applied state reaches `revision`, at most `timeout`.
    async fn wait_revision(&self, revision: u64, timeout: Duration) {
        let mut tables = self.state_machine.watch_table();
        let reached = tokio::time::timeout(timeout, tables.wait_for(|t| t.version >= revision));
        if reached.await.is_err() {
            tracing::debug!(revision, "a forwarded write is not applied here yet");
        }
    }

    /// Confirms with a quorum that this voter still leads (raft's ReadIndex) and waits until its
    /// state machine has applied every write committed before the call, so a read that follows
    /// sees every acknowledged write. `NotLeader` on a follower (or a deposed leader), a raft
    /// error when no quorum answers within 3 s.
    pub async fn read_barrier(&self) -> Result<(), Error> {
        let confirmed = tokio::time::timeout(
            Duration::from_secs(3),
            self.raft
                .ensure_linearizable(openraft::ReadPolicy::ReadIndex),
        )
        .await;
        match confirmed {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(
                openraft::errors::LinearizableReadError::ForwardToLeader(f),
            ))) => Err(Error::NotLeader {
                leader: f.leader_node.map(|n| n.addr),
            }),
            Ok(Err(e)) => Err(Error::Raft(e.to_string())),
            Err(_) => Err(Error::Raft(
                "no quorum confirmed the leader for a consistent read within 3 s".into(),
            )),
        }
    }

    /// Proposes a command on this voter only; `NotLeader` when it is not the leader.
    pub async fn write_local(&self, command: Command) -> Result<Outcome, Error> {
        write_on(&self.raft, command).await
    }

    /// Runs a membership change on the leader (forwarding when needed).
    pub async fn change_members(&self, change: Forwarded) -> Result<(), Error> {
        let reply = execute(&self.raft, change.clone()).await;
        let reply = match reply {
            ForwardReply::NotLeader {
                leader: Some(leader),
            } => self.network.forward(&leader, &change).await?,
            other => other,
        };
        match reply {
            ForwardReply::MembersChanged | ForwardReply::Written { .. } => Ok(()),
            ForwardReply::NotLeader { leader } => Err(Error::NotLeader { leader }),
            ForwardReply::Failed { message } => Err(Error::Raft(message)),
        }
    }

    /// Asks the cluster that `seed` (a voter's gRPC address, `http://` optional) belongs to to
    /// add this voter as a learner and then promote it. Does nothing when this voter already
    /// votes (a restart).
    pub async fn join_via(&self, seed: &str) -> Result<(), Error> {
        let me = self.node_id;
        if self.status().members.iter().any(|m| m.id == me && m.voter) {
            return Ok(());
        }
        let seed = seed
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        for request in [
            Forwarded::AddLearner {
                id: me,
                addr: self.addr.clone(),
            },
            Forwarded::Promote { id: me },
        ] {
            let mut target = seed.to_string();
            // At most one redirect: the seed names the leader when it is not the leader.
            for _ in 0..2 {
                match self.network.forward(&target, &request).await? {
                    ForwardReply::MembersChanged | ForwardReply::Written { .. } => break,
                    ForwardReply::NotLeader {
                        leader: Some(leader),
                    } if leader != target => target = leader,
                    ForwardReply::NotLeader { leader } => {
                        return Err(Error::NotLeader { leader });
                    }
                    ForwardReply::Failed { message } => return Err(Error::Raft(message)),
                }
            }
        }
        Ok(())
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

    /// Whether this voter is the leader now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Whether this voter has heard from the cluster recently enough that what it serves is
    /// current: a leader acknowledged by a quorum, or a follower that accepted an append from
    /// the leader, within the longest election timeout, and applied what it was told was
    /// committed (see [`LeaderContact`]). A voter cut off by a partition turns
    /// false within that bound, while the others elect a new leader and move on without it.
    pub fn in_contact(&self) -> bool {
        let m = self.raft.metrics().borrow_watched().clone();
        match m.state {
            ServerState::Leader => {
                m.membership_config.membership().voter_ids().count() <= 1
                    || m.last_quorum_acked
                        .is_some_and(|at| openraft::Instant::elapsed(&*at) <= self.contact_bound)
            }
            // Half the bound for applying what the leader said was committed: a follower
            // whose replication stalls while heartbeats still arrive stops vouching for its
            // table well inside the revocation bound.
            ServerState::Follower | ServerState::Learner => {
                self.contact
                    .age()
                    .is_some_and(|age| age <= self.contact_bound)
                    && self.contact.caught_up(
                        m.last_applied.as_ref().map_or(0, |l| l.index()),
                        self.contact_bound / 2,
                    )
            }
            ServerState::Candidate | ServerState::Shutdown => false,
        }
    }

    /// Follows whether this voter is the leader.
    pub fn watch_leadership(&self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(self.is_leader());
        let mut metrics = self.raft.metrics();
        tokio::spawn(async move {
            loop {
                let leader = metrics.borrow_watched().state == ServerState::Leader;
                tx.send_if_modified(|old| std::mem::replace(old, leader) != leader);
                tokio::select! {
                    changed = metrics.changed() => if changed.is_err() { break },
                    () = tx.closed() => break,
                }
            }
        });
        rx
    }

    /// The gRPC address of the current leader, if known.
    pub async fn leader_addr(&self) -> Option<String> {
        self.status().leader_addr
    }

    /// Term, roles, indexes and members as this voter sees them.
    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let leader_addr = m
            .current_leader
            .and_then(|id| membership.get_node(&id).map(|n| n.addr.clone()));
        let index = |id: Option<&openraft::alias::LogIdOf<TypeConfig>>| id.map_or(0, |l| l.index());
        RaftStatus {
            node_id: self.node_id,
            role: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .into(),
            term: m.current_term,
            leader_id: m.current_leader,
            leader_addr,
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: index(m.cluster_committed.as_ref().or(m.local_committed.as_ref())),
            applied_index: index(m.last_applied.as_ref()),
            snapshot_index: index(m.snapshot.as_ref()),
            members,
            etcd: None,
        }
    }

    /// Milliseconds since the last snapshot was built or installed; `None` before the first.
    pub fn snapshot_age_ms(&self) -> Option<u64> {
        self.state_machine.snapshot_age_ms()
    }

    /// Builds a snapshot now and compacts the log behind it.
    pub async fn snapshot_now(&self) -> Result<(), Error> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| Error::Raft(e.to_string()))
    }

    /// Follows the compiled routing table of the applied state.
    pub fn watch_table(&self) -> watch::Receiver<Arc<RoutingTable>> {
        self.state_machine.watch_table()
    }

    /// A copy of the applied state.
    pub async fn state(&self) -> ClusterState {
        self.state_machine.state().await
    }

    /// Runs `read` on the applied state without copying it.
    pub async fn with_state<R>(&self, read: impl FnOnce(&ClusterState) -> R) -> R {
        self.state_machine.with_state(read).await
    }

    /// This voter's raft id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The gRPC service peers call.
    pub fn raft_service(&self) -> RaftServiceServer<RaftServer> {
        RaftServiceServer::new(RaftServer::new(self.raft.clone(), self.contact.clone()))
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
