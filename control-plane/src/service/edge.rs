//! `EdgeService`: streams the compiled routing table to edges.
//!
//! Any voter serves it from its own applied state, so edges can follow a follower and keep
//! working through a leader change. A voter that loses contact with the leader (a partition,
//! an election it is not part of) ends its streams with `UNAVAILABLE`, so its edges move to a
//! voter that still hears the leader instead of serving a table that may lack a revocation. Cooldown reports are committed through the leader (a
//! follower forwards them), so every edge learns them with the next table version.
//!
//! An edge that asks for deltas gets the full table once, then only what changed (see
//! [`DeltaRing`]); an edge that does not gets every version in full.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::Stream;
use switchyard_proto::v1::edge_service_server::EdgeService;
use switchyard_proto::v1::{
    RoutingTable, UpstreamEvents, UpstreamEventsAck, UsageAck, UsageReport,
    WatchRoutingTableRequest,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::raft::Consensus;
use crate::service::agent::now_ms;
use crate::service::table_ring::DeltaRing;
use crate::state::{Command, Cooldown, Outcome, Retention};

/// Serves routing-table watches from this voter's applied state.
pub struct EdgeServer {
    consensus: Consensus,
    ring: Arc<Mutex<DeltaRing>>,
    shutdown: watch::Receiver<bool>,
    usage_retention: Retention,
}

impl EdgeServer {
    /// Serves `consensus`'s table until `shutdown` turns true.
    pub fn new(consensus: Consensus, shutdown: watch::Receiver<bool>) -> Self {
        let ring: Arc<Mutex<DeltaRing>> = Arc::default();
        // Fed from this voter's own table, not only by its streams: an edge that fails over to
        // this voter finds the deltas since the version it holds.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(feed(
                consensus.watch_table(),
                ring.clone(),
                shutdown.clone(),
            ));
        }
        Self {
            consensus,
            ring,
            shutdown,
            usage_retention: Retention::default(),
        }
    }

    /// Keeps at most `deltas` recent table deltas of `bytes` encoded bytes together (defaults:
    /// [`crate::service::table_ring::DEFAULT_DELTAS`] and
    /// [`crate::service::table_ring::DEFAULT_BYTES`]).
    pub fn with_delta_ring(self, deltas: usize, bytes: usize) -> Self {
        *self.ring.lock().unwrap_or_else(PoisonError::into_inner) = DeltaRing::new(deltas, bytes);
        self
    }

    /// Keeps usage buckets for `keep` (see [`Retention`]).
    pub fn with_usage_retention(mut self, keep: Retention) -> Self {
        self.usage_retention = keep;
        self
    }
}

type TableStream = Pin<Box<dyn Stream<Item = Result<RoutingTable, Status>> + Send>>;

#[tonic::async_trait]
impl EdgeService for EdgeServer {
    type WatchRoutingTableStream = TableStream;

    async fn watch_routing_table(
        &self,
        request: Request<WatchRoutingTableRequest>,
    ) -> Result<Response<Self::WatchRoutingTableStream>, Status> {
        let request = request.into_inner();
        let consensus = self.consensus.clone();
        if !consensus.in_contact() {
            return Err(out_of_contact());
        }
        let mut tables = consensus.watch_table();
        let mut shutdown = self.shutdown.clone();
        let mut contact_check = tokio::time::interval(consensus.contact_check_interval());
        contact_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(edge = %request.edge_name, since = request.since_version, deltas = request.deltas, "edge is watching the routing table");
        let ring = Arc::clone(&self.ring);
        let stream = async_stream::stream! {
            let mut feed = Feed::new(&request, ring);
            loop {
                let table = tables.borrow_and_update().clone();
                for message in feed.next(&table) {
                    yield Ok(message);
                }
                let lost_contact = tokio::select! {
                    changed = tables.changed() => if changed.is_err() { break } else { false },
                    _ = contact_check.tick() => !consensus.in_contact(),
                    _ = shutdown.wait_for(|stop| *stop) => break,
                };
                if lost_contact {
                    tracing::warn!(edge = %request.edge_name, "lost contact with the leader; ending the edge's table stream");
                    yield Err(out_of_contact());
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_upstream_events(
        &self,
        request: Request<UpstreamEvents>,
    ) -> Result<Response<UpstreamEventsAck>, Status> {
        let events = request.into_inner();
        let cooldowns: Vec<Cooldown> = events
            .cooldowns
            .into_iter()
            .map(|c| Cooldown {
                endpoint_id: c.endpoint_id,
                credential_id: c.credential_id,
                model: c.model,
                until_ms: c.until_ms,
                reason: c.reason,
            })
            .collect();
        let count = cooldowns.len();
        let command = Command::ReportCooldowns {
            cooldowns,
            at_ms: now_ms(),
        };
        match self.consensus.write(command).await {
            Ok(Outcome::Changed { revision } | Outcome::Unchanged { revision }) => {
                tracing::debug!(edge = %events.edge_name, cooldowns = count, revision, "cooldowns reported");
                Ok(Response::new(UpstreamEventsAck {
                    applied_version: revision,
                }))
            }
            Ok(Outcome::Rejected { reason }) => Err(Status::invalid_argument(reason)),
            Ok(lease @ (Outcome::WindowGranted { .. } | Outcome::SlotsHeld { .. })) => {
                Err(Status::internal(format!(
                    "cooldown report produced a lease outcome {lease:?}"
                )))
            }
            // A NotLeader error names the leader's address when forwarding was not possible.
            Err(e) => Err(Status::from(e)),
        }
    }

    async fn report_usage(
        &self,
        request: Request<UsageReport>,
    ) -> Result<Response<UsageAck>, Status> {
        let report = request.into_inner();
        crate::service::usage::report_usage(&self.consensus, self.usage_retention, report)
            .await
            .map(Response::new)
    }
}

/// Records every table version this voter applies in `ring`, until `shutdown`.
async fn feed(
    mut tables: watch::Receiver<Arc<RoutingTable>>,
    ring: Arc<Mutex<DeltaRing>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let table = tables.borrow_and_update().clone();
        ring.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .advance(&table);
        tokio::select! {
            changed = tables.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// What one edge's stream sends as tables arrive.
struct Feed {
    /// The version the edge holds after what was sent; `None` before the first message.
    held: Option<u64>,
    /// Whether the edge applies deltas (else it gets every version in full).
    deltas: bool,
    /// Whether anything was sent yet.
    started: bool,
    /// The cluster of the version the edge held when it connected.
    cluster_id: String,
    ring: Arc<Mutex<DeltaRing>>,
}

impl Feed {
    fn new(request: &WatchRoutingTableRequest, ring: Arc<Mutex<DeltaRing>>) -> Self {
        Self {
            // The version the edge says it holds is only a starting point for deltas.
            held: (request.deltas && request.since_version > 0).then_some(request.since_version),
            deltas: request.deltas,
            started: false,
            cluster_id: request.cluster_id.clone(),
            ring,
        }
    }

    /// The messages that bring the edge to `table` (or newer): the full table at once on a
    /// stream's start, even when not newer (the edge decides what to keep); after that, the
    /// deltas it lacks, or the full table when they are no longer kept.
    fn next(&mut self, table: &Arc<RoutingTable>) -> Vec<RoutingTable> {
        if !self.deltas {
            if self.held == Some(table.version) {
                return Vec::new();
            }
            self.held = Some(table.version);
            return vec![RoutingTable::clone(table)];
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.advance(table);
        let (messages, version) = ring.catch_up(self.held, &self.cluster_id);
        let mut out: Vec<RoutingTable> = messages.iter().map(|m| RoutingTable::clone(m)).collect();
        // An edge already current hears at once that the stream works.
        if out.is_empty() && !self.started {
            out.extend(ring.current(version));
        }
        self.started = true;
        self.held = Some(version);
        out
    }
}

/// What an edge is told by a voter that cannot vouch for its table being current.
fn out_of_contact() -> Status {
    Status::unavailable(
        "this control-plane voter has lost contact with the leader; follow another voter",
    )
}
