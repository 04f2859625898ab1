//! The `LeaseService` client: asks the leader, following it when a follower names it.

use std::sync::Mutex;
use std::time::Duration;

use switchyard_proto::tls::{self, TlsFiles};
use switchyard_proto::v1::lease_request::Kind;
use switchyard_proto::v1::lease_service_client::LeaseServiceClient;
use switchyard_proto::v1::{LeaseReply, LeaseRequest, SlotLease, WindowLease};
use tonic::transport::Channel;

use super::budget::Grant;

/// How long one lease call may take before the edge falls back to its share.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// Metadata key in which a follower names the leader.
const LEADER_METADATA: &str = "x-switchyard-leader";

/// Why a lease call failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The configured address is not a URL.
    #[error("invalid control-plane address {0:?}")]
    Address(String),
    /// No answer, or an error answer.
    #[error("lease call failed: {0}")]
    Call(#[from] tonic::Status),
}

impl LeaseError {
    /// Whether the control plane could not be reached at all (nothing can have been granted).
    pub fn unreachable(&self) -> bool {
        match self {
            Self::Address(_) => true,
            Self::Call(status) => status.code() == tonic::Code::Unavailable,
        }
    }
}

/// Leases capacity from the control plane as one edge.
pub struct LeaseClient {
    configured: String,
    edge_name: String,
    tls: Option<TlsFiles>,
    /// The voter last known to be leader, and a channel to it.
    target: Mutex<Option<(String, LeaseServiceClient<Channel>)>>,
}

impl LeaseClient {
    /// A client that starts at `control_plane` (a gRPC URL).
    pub fn new(control_plane: String, edge_name: String) -> Self {
        Self::with_tls(control_plane, edge_name, None)
    }

    /// As [`LeaseClient::new`], over mutual TLS with `tls` when given.
    pub fn with_tls(control_plane: String, edge_name: String, tls: Option<TlsFiles>) -> Self {
        Self {
            configured: control_plane,
            edge_name,
            tls,
            target: Mutex::new(None),
        }
    }

    /// Asks for `want` units of a windowed limit.
    pub async fn window(
        &self,
        key: &str,
        want: u64,
        limit: u64,
        window_ms: u64,
    ) -> Result<Grant, LeaseError> {
        let kind = Kind::Window(WindowLease {
            want,
            limit,
            window_ms,
        });
        self.call(key, kind).await.map(Grant::from)
    }

    /// Asks to hold `want` slots of a `cap`-slot limit for `ttl`.
    pub async fn hold_slots(
        &self,
        key: &str,
        want: u32,
        cap: u32,
        ttl: Duration,
    ) -> Result<LeaseReply, LeaseError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call(key, Kind::Slots(SlotLease { want, cap, ttl_ms }))
            .await
    }

    async fn call(&self, key: &str, kind: Kind) -> Result<LeaseReply, LeaseError> {
        // One redirect is followed at once; a second means the cluster is mid-election.
        for _ in 0..2 {
            let (addr, mut client) = self.client()?;
            let mut request = tonic::Request::new(LeaseRequest {
                edge_name: self.edge_name.clone(),
                limit_key: key.to_string(),
                kind: Some(kind),
            });
            request.set_timeout(CALL_TIMEOUT);
            match tokio::time::timeout(CALL_TIMEOUT, client.acquire(request)).await {
                Ok(Ok(reply)) => return Ok(reply.into_inner()),
                Ok(Err(status)) => {
                    let leader = status
                        .metadata()
                        .get(LEADER_METADATA)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match leader {
                        Some(leader) if status.code() == tonic::Code::FailedPrecondition => {
                            self.point_at(&leader)?;
                        }
                        _ => {
                            self.forget(&addr);
                            return Err(LeaseError::Call(status));
                        }
                    }
                }
                Err(_elapsed) => {
                    self.forget(&addr);
                    return Err(LeaseError::Call(tonic::Status::deadline_exceeded(
                        "lease call timed out",
                    )));
                }
            }
        }
        Err(LeaseError::Call(tonic::Status::unavailable(
            "no leader answered",
        )))
    }

    fn client(&self) -> Result<(String, LeaseServiceClient<Channel>), LeaseError> {
        if let Some(current) = self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(current);
        }
        let configured = self.configured.clone();
        self.point_at(&configured)?;
        self.target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(LeaseError::Address(configured))
    }

    fn point_at(&self, addr: &str) -> Result<(), LeaseError> {
        let endpoint = tls::endpoint(addr, self.tls.as_ref())
            .map_err(|_| LeaseError::Address(addr.to_string()))?
            .connect_timeout(CALL_TIMEOUT);
        let client = LeaseServiceClient::new(endpoint.connect_lazy());
        *self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((addr.to_string(), client));
        Ok(())
    }

    /// Drops a target that failed, so the next call starts over from the configured address.
    fn forget(&self, addr: &str) {
        let mut target = self
            .target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if target.as_ref().is_some_and(|(a, _)| a == addr) {
            *target = None;
        }
    }
}
