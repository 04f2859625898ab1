//! The forwarding protocol: what a follower hands the leader over `RaftService.Forward`, the
//! leader's answer, and the leader's side that runs it (one hop; never forwarded again).

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::{Raft, TypeConfig};
use crate::error::Error;
use crate::state::{Command, Outcome};

/// What a follower hands to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "a message decoded once per forwarded write; boxing the command saves nothing that matters"
)]
pub enum Forwarded {
    /// A state change.
    Write {
        /// The command.
        command: Command,
    },
    /// Add a node as a learner (it replicates but does not vote).
    AddLearner {
        /// Raft node id.
        id: u64,
        /// Its gRPC address.
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Raft node id.
        id: u64,
    },
    /// Remove a voter or learner from the cluster.
    Remove {
        /// Raft node id.
        id: u64,
    },
}

/// The leader's answer to a [`Forwarded`] request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ForwardReply {
    /// The write was committed.
    Written {
        /// What applying it did.
        outcome: Outcome,
    },
    /// The membership change was committed.
    MembersChanged,
    /// The receiver is not the leader either.
    NotLeader {
        /// The leader's address, when known.
        leader: Option<String>,
    },
    /// The change failed.
    Failed {
        /// Why.
        message: String,
    },
}

pub(super) async fn write_on(raft: &Raft, command: Command) -> Result<Outcome, Error> {
    match raft.client_write(command).await {
        Ok(response) => Ok(response.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(Error::NotLeader {
            leader: f.leader_node.map(|n| n.addr),
        }),
        Err(e) => Err(Error::Raft(e.to_string())),
    }
}

/// Runs a forwarded request on this node (never forwards again).
pub(crate) async fn execute(raft: &Raft, request: Forwarded) -> ForwardReply {
    let not_leader = |f: openraft::errors::ForwardToLeader<TypeConfig>| ForwardReply::NotLeader {
        leader: f.leader_node.map(|n| n.addr),
    };
    let membership = |r: Result<_, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>| match r {
        Ok(_) => ForwardReply::MembersChanged,
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => not_leader(f),
        Err(e) => ForwardReply::Failed {
            message: e.to_string(),
        },
    };
    match request {
        Forwarded::Write { command } => match write_on(raft, command).await {
            Ok(outcome) => ForwardReply::Written { outcome },
            Err(Error::NotLeader { leader }) => ForwardReply::NotLeader { leader },
            Err(e) => ForwardReply::Failed {
                message: e.to_string(),
            },
        },
        Forwarded::AddLearner { id, addr } => {
            // Blocking until the learner caught up, but not forever: an unreachable learner
            // stays added and catches up when it appears.
            let add = raft.add_learner(id, BasicNode { addr }, true);
            match tokio::time::timeout(Duration::from_secs(10), add).await {
                Ok(r) => membership(r),
                Err(_) => ForwardReply::MembersChanged,
            }
        }
        Forwarded::Promote { id } => membership(
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await,
        ),
        Forwarded::Remove { id } => {
            let m = raft.metrics().borrow_watched().clone();
            let is_voter = m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id);
            let change = if is_voter {
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            };
            membership(raft.change_membership(change, false).await)
        }
    }
}
