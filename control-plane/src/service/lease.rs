//! `LeaseService`: the leader hands out slices of cluster-wide limits to edges.
//!
//! Every grant is a raft command, so the ledger survives a leader change and the slices granted
//! in a window never add up to more than the limit, whichever voter granted them.

use switchyard_proto::v1::lease_request::Kind;
use switchyard_proto::v1::lease_service_server::LeaseService;
use switchyard_proto::v1::{LeaseReply, LeaseRequest};
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::lease::{SlotRequest, WindowRequest};
use crate::raft::Consensus;
use crate::service::agent::now_ms;
use crate::state::{Command, Outcome};

/// Metadata key naming the leader when a follower is asked for a lease.
pub const LEADER_METADATA: &str = "x-switchyard-leader";

/// Grants leases through raft.
pub struct LeaseServer {
    consensus: Consensus,
}

impl LeaseServer {
    /// Grants leases from `consensus`'s replicated ledger.
    pub fn new(consensus: Consensus) -> Self {
        Self { consensus }
    }
}

#[tonic::async_trait]
impl LeaseService for LeaseServer {
    async fn acquire(
        &self,
        request: Request<LeaseRequest>,
    ) -> Result<Response<LeaseReply>, Status> {
        let request = request.into_inner();
        if request.edge_name.is_empty() || request.limit_key.is_empty() {
            return Err(Status::invalid_argument(
                "edge_name and limit_key are required",
            ));
        }
        let at_ms = now_ms();
        let command = match request.kind {
            Some(Kind::Window(w)) => {
                if w.window_ms == 0 {
                    return Err(Status::invalid_argument("window_ms must be positive"));
                }
                Command::GrantWindow {
                    request: WindowRequest {
                        limit_key: request.limit_key,
                        edge: request.edge_name,
                        want: w.want,
                        limit: w.limit,
                        window_ms: w.window_ms,
                        at_ms,
                    },
                }
            }
            Some(Kind::Slots(s)) => Command::HoldSlots {
                request: SlotRequest {
                    limit_key: request.limit_key,
                    edge: request.edge_name,
                    want: s.want,
                    cap: s.cap,
                    ttl_ms: s.ttl_ms.max(1),
                    at_ms,
                },
            },
            None => {
                return Err(Status::invalid_argument(
                    "a window or slots lease is required",
                ));
            }
        };
        match self.consensus.write(command).await {
            Ok(Outcome::WindowGranted { grant }) => Ok(Response::new(LeaseReply {
                amount: grant.amount,
                window_start_ms: to_i64(grant.window_start_ms),
                window_end_ms: to_i64(grant.window_end_ms),
                remaining: grant.remaining,
                edges: grant.edges,
                ..Default::default()
            })),
            Ok(Outcome::SlotsHeld { grant }) => Ok(Response::new(LeaseReply {
                held: grant.held,
                in_use: grant.in_use,
                expires_ms: to_i64(grant.expires_ms),
                ..Default::default()
            })),
            Ok(other) => Err(Status::internal(format!(
                "unexpected lease outcome {other:?}"
            ))),
            Err(Error::NotLeader { leader }) => {
                let mut status = Status::failed_precondition("this node is not the leader");
                if let Some(Ok(value)) = leader.map(|l| l.parse()) {
                    status.metadata_mut().insert(LEADER_METADATA, value);
                }
                Err(status)
            }
            Err(e) => Err(Status::from(e)),
        }
    }
}

fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
