//! Raft RPCs between voters over our gRPC `RaftService`.
//!
//! openraft's request and response types travel as JSON inside `RaftPayload`, so the proto
//! file does not have to mirror openraft's internals and an openraft upgrade stays local here.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2, Snapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_proto::tls::{self, TlsError, TlsFiles};
use switchyard_proto::v1::RaftPayload;
use switchyard_proto::v1::raft_service_client::RaftServiceClient;
use switchyard_proto::v1::raft_service_server::RaftService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::contact::LeaderContact;
use super::state_machine::SnapshotData;
use super::{ForwardReply, Forwarded, Raft, TypeConfig};
use crate::error::Error;

/// Creates one gRPC client per peer voter.
#[derive(Clone, Default)]
pub struct Network {
    bind_ip: Option<IpAddr>,
    // Behind an Arc: every peer client clones the network, and `RaftNode` stays small.
    tls: Option<Arc<TlsFiles>>,
}

impl Network {
    /// Peers are dialled from `bind_ip` when given.
    pub fn new(bind_ip: Option<IpAddr>) -> Self {
        Self { bind_ip, tls: None }
    }

    /// Peers are dialled over mutual TLS with these files (plaintext with `None`).
    pub fn with_tls(mut self, tls: Option<TlsFiles>) -> Self {
        self.tls = tls.map(Arc::new);
        self
    }

    fn endpoint(&self, addr: &str) -> Result<tonic::transport::Endpoint, TlsError> {
        Ok(tls::endpoint(addr, self.tls.as_deref())?
            .connect_timeout(Duration::from_secs(1))
            .local_address(self.bind_ip))
    }

    /// Hands `request` to the leader at `addr` and returns its answer.
    pub async fn forward(&self, addr: &str, request: &Forwarded) -> Result<ForwardReply, Error> {
        let json = serde_json::to_vec(request)
            .map_err(|e| Error::Raft(format!("cannot encode a forwarded request: {e}")))?;
        let endpoint = self
            .endpoint(addr)
            .map_err(|e| Error::Raft(format!("cannot dial the leader at {addr}: {e}")))?;
        let mut client = RaftServiceClient::new(endpoint.connect_lazy());
        let mut req = Request::new(RaftPayload { json });
        req.set_timeout(Duration::from_secs(15));
        let reply = client.forward(req).await.map_err(|status| {
            Error::Raft(format!(
                "forwarding to the leader at {addr} failed: {}",
                status.message()
            ))
        })?;
        serde_json::from_slice(&reply.into_inner().json)
            .map_err(|e| Error::Raft(format!("the leader's answer is malformed: {e}")))
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: u64, node: &BasicNode) -> Self::Network {
        Peer {
            addr: node.addr.clone(),
            network: self.clone(),
            client: None,
        }
    }
}

/// A connection to one peer voter, dialled on first use.
pub struct Peer {
    addr: String,
    network: Network,
    client: Option<RaftServiceClient<Channel>>,
}

impl Peer {
    fn client(&mut self) -> Result<RaftServiceClient<Channel>, RPCError<TypeConfig>> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let endpoint = self
            .network
            .endpoint(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let client = RaftServiceClient::new(endpoint.connect_lazy());
        self.client = Some(client.clone());
        Ok(client)
    }

    async fn call<Req, Resp>(
        &mut self,
        kind: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let json = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self.client()?;
        let mut request = Request::new(RaftPayload { json });
        request.set_timeout(option.hard_ttl());
        let reply = match kind {
            Rpc::Append => client.append(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.snapshot(request).await,
        };
        let reply = match reply {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                // A broken channel is rebuilt on the next call.
                self.client = None;
                return Err(RPCError::Unreachable(Unreachable::new(&status)));
            }
        };
        let result: Result<Resp, RaftError<TypeConfig>> = serde_json::from_slice(&reply.json)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = (vote, snapshot.meta, snapshot.snapshot);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.call(Rpc::Snapshot, &req, &option) => res.map_err(|e| match e {
                RPCError::Timeout(t) => StreamingError::Timeout(t),
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                other => StreamingError::Unreachable(Unreachable::new(&other)),
            }),
        }
    }
}

/// The receiving side: hands peers' RPCs to the local raft node.
pub struct RaftServer {
    raft: Raft,
    contact: LeaderContact,
}

impl RaftServer {
    /// Serves RPCs for `raft`, noting in `contact` each append a current leader made here.
    pub fn new(raft: Raft, contact: LeaderContact) -> Self {
        Self { raft, contact }
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&req.into_inner().json)
        .map_err(|e| Status::invalid_argument(format!("malformed raft payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    serde_json::to_vec(value)
        .map(|json| Response::new(RaftPayload { json }))
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req)?;
        let leader_commit = rpc.leader_commit.as_ref().map(|l| l.index());
        let reply = self.raft.append_entries(rpc).await;
        if matches!(&reply, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.contact.touch(leader_commit);
        }
        encode(&reply)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode(req)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn snapshot(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (vote, meta, data): (VoteOf<TypeConfig>, _, SnapshotData) = decode(req)?;
        let snapshot = Snapshot {
            meta,
            snapshot: data,
        };
        let result: Result<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>> = self
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(RaftError::Fatal);
        encode(&result)
    }

    async fn forward(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let request: Forwarded = decode(req)?;
        encode(&super::execute(&self.raft, request).await)
    }
}
