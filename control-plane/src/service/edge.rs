//! `EdgeService`: streams the compiled routing table to edges.
//!
//! Any voter serves it from its own applied state, so edges can follow a follower and keep
//! working through a leader change.

use std::pin::Pin;

use futures::Stream;
use switchyard_proto::v1::edge_service_server::EdgeService;
use switchyard_proto::v1::{
    RoutingTable, UpstreamEvents, UpstreamEventsAck, WatchRoutingTableRequest,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::raft::Consensus;

/// Serves routing-table watches from this voter's applied state.
pub struct EdgeServer {
    consensus: Consensus,
    shutdown: watch::Receiver<bool>,
}

impl EdgeServer {
    /// Serves `consensus`'s table until `shutdown` turns true.
    pub fn new(consensus: Consensus, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            consensus,
            shutdown,
        }
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
        let mut tables = self.consensus.watch_table();
        let mut shutdown = self.shutdown.clone();
        tracing::info!(edge = %request.edge_name, since = request.since_version, "edge is watching the routing table");
        let stream = async_stream::stream! {
            // The full table at once, even when not newer: the edge decides what to keep.
            let mut sent = None;
            loop {
                let table = tables.borrow_and_update().clone();
                if sent != Some(table.version) {
                    sent = Some(table.version);
                    yield Ok(RoutingTable::clone(&table));
                }
                tokio::select! {
                    changed = tables.changed() => if changed.is_err() { break },
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_upstream_events(
        &self,
        _request: Request<UpstreamEvents>,
    ) -> Result<Response<UpstreamEventsAck>, Status> {
        Err(Status::unimplemented(
            "cooldown reports are not accepted yet",
        ))
    }
}
