//! `AgentService`: turns node agents' report streams into committed changes.
//!
//! A session is Hello (checked against the join token), then snapshots, updates and heartbeats.
//! Snapshots and updates become `ReportBackends` commands; the node coming up is committed,
//! heartbeats (and the GPUs they carry) are not: they stay in the leader's [`Liveness`], which
//! commits the node as down once it falls silent. Agents talking to a follower are redirected,
//! so heartbeats reach the leader.
//!
//! Writes grow with change, not with time: reports that arrive while one is being committed
//! are merged into one command, and a report (or a reconnect's `NodeUp`) that repeats what the
//! leader's applied state already holds is acknowledged without a raft write.

use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

use futures::{FutureExt, Stream, StreamExt};
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_server::AgentService;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::{Ack, AgentMessage, Backend, ControlMessage, Hello, Redirect, Rejected};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::liveness::{GpuView, Liveness};
use crate::raft::Consensus;
use crate::service::coalesce::Pending;
use crate::state::{Command, DiscoveredBackend, Facts, Outcome};

/// Accepts node agents' reports.
pub struct AgentServer {
    consensus: Consensus,
    join_token: Option<String>,
    liveness: Liveness,
    shutdown: watch::Receiver<bool>,
}

impl AgentServer {
    /// Accepts agents presenting `join_token` (any agent when `None`) until `shutdown` is true,
    /// recording their signs of life in `liveness`.
    pub fn new(
        consensus: Consensus,
        join_token: Option<String>,
        liveness: Liveness,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            consensus,
            join_token,
            liveness,
            shutdown,
        }
    }
}

type ControlStream = Pin<Box<dyn Stream<Item = Result<ControlMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentServer {
    type ReportStream = ControlStream;

    async fn report(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let session = Session {
            consensus: self.consensus.clone(),
            join_token: self.join_token.clone(),
            liveness: self.liveness.clone(),
            tx,
        };
        let shutdown = self.shutdown.clone();
        tokio::spawn(session.run(inbound, shutdown));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Session {
    consensus: Consensus,
    join_token: Option<String>,
    liveness: Liveness,
    tx: mpsc::Sender<Result<ControlMessage, Status>>,
}

/// What the session does after a message.
enum Flow {
    /// Keep reading.
    Next,
    /// The agent went away.
    Closed,
    /// We told the agent to stop.
    Answered,
}

/// Why a session must end.
enum End {
    /// The agent went away.
    Closed,
    /// We told the agent to go elsewhere or stop.
    Answered,
}

impl Session {
    async fn run(self, mut inbound: Streaming<AgentMessage>, mut shutdown: watch::Receiver<bool>) {
        let hello = match inbound.next().await {
            Some(Ok(AgentMessage {
                body: Some(AgentBody::Hello(hello)),
            })) => hello,
            Some(Ok(_)) => {
                self.reply(ControlBody::Rejected(Rejected {
                    reason: "the first message must be Hello".into(),
                }))
                .await;
                return;
            }
            Some(Err(_)) | None => return,
        };
        let node = hello.node_name.clone();
        if let Err(reason) = self.admit(&hello) {
            tracing::warn!(node = %node, reason = %reason, "agent rejected");
            self.reply(ControlBody::Rejected(Rejected { reason })).await;
            return;
        }
        let (up_changes, revision) = self
            .consensus
            .with_state(|s| {
                (
                    s.node_up_changes(&node, &hello.version, &hello.addresses),
                    s.revision,
                )
            })
            .await;
        // A reconnect that changes nothing costs no write, but is acknowledged all the same
        // (agents and `doctor` wait for the answer to Hello); on a follower the write is still
        // attempted, because its refusal is what redirects the agent to the leader.
        if up_changes || !self.consensus.is_leader() {
            let up = Command::NodeUp {
                name: node.clone(),
                version: hello.version.clone(),
                addresses: hello.addresses.clone(),
                at_ms: now_ms(),
            };
            if self.commit(up).await.is_err() {
                return;
            }
        } else if self.tx.send(Ok(ack(revision))).await.is_err() {
            return;
        }
        self.liveness.beat(&node, now_ms(), None);
        tracing::info!(node = %node, version = %hello.version, "agent connected");
        loop {
            let message = tokio::select! {
                message = inbound.next() => message,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let mut pending = None;
            let mut flow = self.take(&node, message, &mut pending).await;
            // Whatever else already arrived joins this commit: a burst is one write.
            while matches!(flow, Flow::Next) {
                match inbound.next().now_or_never() {
                    Some(message) => flow = self.take(&node, message, &mut pending).await,
                    None => break,
                }
            }
            if let Some(report) = pending
                && self.commit_report(&node, report).await.is_err()
            {
                return;
            }
            match flow {
                Flow::Next => {}
                Flow::Closed => break,
                Flow::Answered => return,
            }
        }
        // Not committed as down here: the leader does that once the node stays silent, so a
        // reconnecting agent (or a leader change) does not flap its endpoints.
        tracing::info!(node = %node, "agent disconnected");
    }

    /// Takes one message off the stream: a sign of life, and a report merged into `pending`.
    async fn take(
        &self,
        node: &str,
        message: Option<Result<AgentMessage, Status>>,
        pending: &mut Option<Pending>,
    ) -> Flow {
        let body = match message {
            Some(Ok(AgentMessage { body: Some(body) })) => body,
            Some(Ok(AgentMessage { body: None })) => return Flow::Next,
            Some(Err(status)) => {
                tracing::info!(node = %node, error = %status, "agent stream broke");
                return Flow::Closed;
            }
            None => return Flow::Closed,
        };
        self.liveness.beat(node, now_ms(), None);
        match body {
            AgentBody::Hello(_) => {
                self.reply(ControlBody::Rejected(Rejected {
                    reason: "Hello may only be sent once per stream".into(),
                }))
                .await;
                return Flow::Answered;
            }
            AgentBody::Heartbeat(beat) => {
                tracing::trace!(node = %node, seq = beat.seq, "heartbeat");
                let gpus = beat
                    .gpus
                    .into_iter()
                    .map(|g| GpuView {
                        index: g.index,
                        name: g.name,
                        memory_total_mib: g.memory_total_mib,
                        memory_used_mib: g.memory_used_mib,
                        utilization_pct: g.utilization_pct,
                    })
                    .collect();
                self.liveness.beat(node, now_ms(), Some(gpus));
            }
            AgentBody::Snapshot(snapshot) => pending
                .get_or_insert_with(Pending::default)
                .snapshot(backends(snapshot.backends)),
            AgentBody::Update(update) => pending
                .get_or_insert_with(Pending::default)
                .update(backends(update.upserted), update.removed),
        }
        Flow::Next
    }

    /// Commits what `node` reported, unless the leader's applied state already says it all.
    async fn commit_report(&self, node: &str, report: Pending) -> Result<(), End> {
        let command = report.command(node, now_ms());
        if self.consensus.is_leader()
            && let Command::ReportBackends {
                upserted,
                removed,
                full,
                ..
            } = &command
        {
            let (changes, revision) = self
                .consensus
                .with_state(|s| (s.report_changes(node, upserted, removed, *full), s.revision))
                .await;
            if !changes {
                tracing::trace!(node = %node, revision, "report repeats the committed state; not written");
                return match self.tx.send(Ok(ack(revision))).await {
                    Ok(()) => Ok(()),
                    Err(_) => Err(End::Closed),
                };
            }
        }
        self.commit(command).await
    }

    fn admit(&self, hello: &Hello) -> Result<(), String> {
        if hello.node_name.is_empty() {
            return Err("node_name is empty".into());
        }
        match &self.join_token {
            // Compared in constant time, so timing does not tell where a guess differs.
            Some(token) if !bool::from(token.as_bytes().ct_eq(hello.join_token.as_bytes())) => {
                Err("join token not accepted".into())
            }
            _ => Ok(()),
        }
    }

    /// Commits `command` and acknowledges it, or redirects the agent to the leader.
    async fn commit(&self, command: Command) -> Result<(), End> {
        // Local only: an agent on a follower is redirected, so its heartbeats reach the leader.
        match self.consensus.write_local(command).await {
            Ok(Outcome::Changed { revision } | Outcome::Unchanged { revision }) => {
                if self.tx.send(Ok(ack(revision))).await.is_err() {
                    return Err(End::Closed);
                }
                Ok(())
            }
            Ok(Outcome::Rejected { reason }) => {
                self.reply(ControlBody::Rejected(Rejected { reason })).await;
                Err(End::Answered)
            }
            Ok(lease @ (Outcome::WindowGranted { .. } | Outcome::SlotsHeld { .. })) => {
                tracing::error!(outcome = ?lease, "an agent report produced a lease outcome");
                Err(End::Answered)
            }
            Err(Error::NotLeader { leader }) => {
                self.reply(ControlBody::Redirect(Redirect {
                    leader_addr: leader.unwrap_or_default(),
                }))
                .await;
                Err(End::Answered)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not commit an agent report");
                if self.tx.send(Err(Status::from(e))).await.is_err() {
                    return Err(End::Closed);
                }
                Err(End::Answered)
            }
        }
    }

    async fn reply(&self, body: ControlBody) {
        // The agent may already be gone; nothing else to tell it then.
        if self
            .tx
            .send(Ok(ControlMessage { body: Some(body) }))
            .await
            .is_err()
        {
            tracing::debug!("agent left before our reply");
        }
    }
}

fn ack(revision: u64) -> ControlMessage {
    ControlMessage {
        body: Some(ControlBody::Ack(Ack {
            applied_version: revision,
        })),
    }
}

fn backends(reported: Vec<Backend>) -> Vec<DiscoveredBackend> {
    reported
        .into_iter()
        .map(|b| DiscoveredBackend {
            id: b.id,
            kind: b.kind,
            base_url: b.base_url,
            models: b.models,
            facts: b.facts.map(|f| Facts {
                healthy: f.healthy,
                loaded_models: f.loaded_models,
                loaded_known: f.loaded_known,
                running: f.running,
                waiting: f.waiting,
                kv_cache_usage: f.kv_cache_usage,
                server_version: f.server_version,
                context_lengths: f.context_lengths.into_iter().collect(),
                capabilities: f
                    .capabilities
                    .into_iter()
                    .map(|(model, c)| (model, c.names))
                    .collect(),
            }),
        })
        .collect()
}

/// Milliseconds since the Unix epoch; commands carry time so `apply` needs no clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
