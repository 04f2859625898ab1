//! Reporting the cooldowns this edge decides to the control plane (`ReportUpstreamEvents`), in
//! small batches from a background task, so every edge learns them. The local cooldown is in
//! force before the report leaves; a failed report is logged and dropped.

use std::time::Duration;

use switchyard_proto::tls::{self, TlsFiles};
use switchyard_proto::v1;
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use tokio::sync::mpsc;
use tonic::Code;
use tracing::{debug, warn};

/// Reports waiting to be sent; beyond this, new ones are dropped (the local cooldown holds).
const QUEUE: usize = 1024;
/// Most cooldowns in one RPC.
const BATCH: usize = 128;
/// Deadline for one report RPC.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The sending side of the report queue.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::Sender<v1::Cooldown>,
}

impl Reporter {
    /// Starts the background task that reports to the first of `control_planes` that answers
    /// (a voter forwards to the leader), as `edge_name`. It ends when every `Reporter` clone is
    /// dropped. Must run inside a tokio runtime.
    pub fn spawn(
        control_planes: Vec<String>,
        edge_name: String,
        connect_timeout: Duration,
    ) -> Self {
        Self::spawn_with_tls(control_planes, edge_name, connect_timeout, None)
    }

    /// As [`Reporter::spawn`], over mutual TLS with `tls` when given.
    pub fn spawn_with_tls(
        control_planes: Vec<String>,
        edge_name: String,
        connect_timeout: Duration,
        tls: Option<TlsFiles>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(control_planes, edge_name, connect_timeout, tls, rx));
        Self { tx }
    }

    /// Queues a cooldown for reporting; never waits.
    pub fn report(&self, cooldown: v1::Cooldown) {
        if self.tx.try_send(cooldown).is_err() {
            debug!("cooldown report queue full; the local cooldown still holds");
        }
    }
}

async fn run(
    control_planes: Vec<String>,
    edge_name: String,
    connect_timeout: Duration,
    tls: Option<TlsFiles>,
    mut rx: mpsc::Receiver<v1::Cooldown>,
) {
    let mut clients = Vec::with_capacity(control_planes.len());
    for url in &control_planes {
        match tls::endpoint(url, tls.as_ref()) {
            Ok(e) => clients.push(EdgeServiceClient::new(
                e.connect_timeout(connect_timeout)
                    .timeout(RPC_TIMEOUT)
                    .connect_lazy(),
            )),
            Err(e) => {
                warn!(control_plane = %url, error = %e, "cannot report cooldowns there: bad control-plane URL");
            }
        }
    }
    if clients.is_empty() {
        return;
    }
    // The voter that answered last; a failed report is tried once on each of the others.
    let mut current = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let count = batch.len();
        let request = v1::UpstreamEvents {
            edge_name: edge_name.clone(),
            cooldowns: std::mem::take(&mut batch),
        };
        for attempt in 0..clients.len() {
            let i = (current + attempt) % clients.len();
            match clients[i].report_upstream_events(request.clone()).await {
                Ok(ack) => {
                    debug!(
                        count,
                        applied_version = ack.get_ref().applied_version,
                        "reported cooldowns"
                    );
                    current = i;
                    break;
                }
                Err(status) if status.code() == Code::Unimplemented => {
                    debug!(
                        count,
                        "control plane does not take cooldown reports yet; keeping them local"
                    );
                    break;
                }
                Err(status) => debug!(
                    count,
                    code = ?status.code(),
                    error = %status.message(),
                    "cooldown report failed; trying the next voter, the local cooldown holds"
                ),
            }
        }
    }
}
