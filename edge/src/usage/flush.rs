//! Sending the ledger to the control plane: every flush interval, whatever was counted becomes a
//! numbered batch (`ReportUsage`), sent to the first voter that answers (it forwards to the
//! leader). A batch that could not be sent stays queued, oldest first, and is sent again with the
//! same number, so the control plane counts it once even if an earlier answer was lost. At most
//! [`MAX_PENDING`] batches wait; beyond that the oldest is dropped and counted in
//! `switchyard_usage_batches_dropped_total`.
//!
//! What a crashed edge loses is what it counted since its last flush: one interval (10 s by
//! default), plus any batches still queued because no control plane answered.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use switchyard_proto::tls::{self, TlsFiles};
use switchyard_proto::v1;
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tracing::{debug, warn};

use super::{Inner, Usage};

/// Batches kept while no control plane answers (an hour at the default interval).
pub const MAX_PENDING: usize = 360;
/// Most rows in one batch (the control plane refuses more).
const MAX_ROWS: usize = 5_000;
/// Deadline for one report RPC.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how often to flush.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Control-plane gRPC URLs, tried in order.
    pub control_planes: Vec<String>,
    /// This edge's name.
    pub edge_name: String,
    /// Time between flushes.
    pub interval: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Mutual TLS to the control plane, when configured.
    pub tls: Option<TlsFiles>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            control_planes: Vec::new(),
            edge_name: "edge".into(),
            interval: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            tls: None,
        }
    }
}

/// Handle to the running flush task.
#[derive(Debug)]
pub struct Flusher {
    now: mpsc::Sender<oneshot::Sender<()>>,
}

impl Flusher {
    /// Starts flushing `usage` on the current runtime. The task holds the counters weakly: it
    /// ends once the edge's state is gone.
    pub fn spawn(usage: &Usage, settings: Settings) -> Self {
        let (now, asked) = mpsc::channel(4);
        tokio::spawn(run(Arc::downgrade(&usage.inner), settings, asked));
        Self { now }
    }

    /// Flushes now and waits until the batch is sent or given up on.
    pub async fn flush_now(&self) {
        let (done, wait) = oneshot::channel();
        if self.now.send(done).await.is_ok() {
            let _answered = wait.await;
        }
    }
}

/// The reports waiting to be sent, oldest first.
#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<v1::UsageReport>,
    next_batch: u64,
    dropped: u64,
}

impl Queue {
    /// Turns `rows` into numbered batches at the back of the queue.
    fn push(&mut self, edge: &str, instance: &str, rows: Vec<v1::UsageRow>) {
        for chunk in rows.chunks(MAX_ROWS) {
            self.next_batch += 1;
            if self.pending.len() >= MAX_PENDING {
                self.pending.pop_front();
                self.dropped += 1;
            }
            self.pending.push_back(v1::UsageReport {
                edge_name: edge.to_string(),
                batch: self.next_batch,
                rows: chunk.to_vec(),
                instance: instance.to_string(),
            });
        }
    }
}

async fn run(
    usage: Weak<Inner>,
    settings: Settings,
    mut asked: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut clients: Vec<EdgeServiceClient<Channel>> = Vec::new();
    for url in &settings.control_planes {
        match tls::endpoint(url, settings.tls.as_ref()) {
            Ok(e) => clients.push(EdgeServiceClient::new(
                e.connect_timeout(settings.connect_timeout)
                    .timeout(RPC_TIMEOUT)
                    .connect_lazy(),
            )),
            Err(e) => {
                warn!(control_plane = %url, error = %e, "cannot report usage there: bad control-plane URL");
            }
        }
    }
    // Names this process, so batch numbers restart safely with the edge.
    let instance = format!("{:016x}", fastrand::u64(..));
    let mut queue = Queue::default();
    let mut current = 0;
    let mut tick = tokio::time::interval(settings.interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let done = tokio::select! {
            _ = tick.tick() => None,
            asked = asked.recv() => match asked {
                Some(done) => Some(done),
                None => return,
            },
        };
        let Some(inner) = usage.upgrade() else { return };
        let usage = Usage { inner };
        let rows = usage
            .drain(crate::limits::now_ms())
            .into_iter()
            .map(|(s, c)| v1::UsageRow {
                key_id: s.key.to_string(),
                model: s.model.to_string(),
                deployment: s.deployment.to_string(),
                minute_ms: i64::try_from(s.minute_ms).unwrap_or(i64::MAX),
                requests: c.requests,
                errors: c.errors,
                input_tokens: c.input_tokens,
                output_tokens: c.output_tokens,
                latency_ms_sum: c.latency_ms,
                cost_nanos: c.cost_nanos,
            })
            .collect();
        let dropped_before = queue.dropped;
        queue.push(&settings.edge_name, &instance, rows);
        if queue.dropped > dropped_before {
            usage
                .inner
                .dropped_batches
                .inc_by(queue.dropped - dropped_before);
            warn!(
                dropped = queue.dropped - dropped_before,
                "usage batches dropped: no control plane answered for too long"
            );
        }
        drop(usage);
        send_pending(&mut clients, &mut current, &mut queue).await;
        if let Some(done) = done {
            let _waiting = done.send(());
        }
    }
}

/// Sends queued batches in order until one fails on every voter.
async fn send_pending(
    clients: &mut [EdgeServiceClient<Channel>],
    current: &mut usize,
    queue: &mut Queue,
) {
    if clients.is_empty() {
        return;
    }
    'batches: while let Some(report) = queue.pending.front() {
        for attempt in 0..clients.len() {
            let i = (*current + attempt) % clients.len();
            match clients[i].report_usage(report.clone()).await {
                Ok(_) => {
                    debug!(
                        batch = report.batch,
                        rows = report.rows.len(),
                        "usage reported"
                    );
                    *current = i;
                    queue.pending.pop_front();
                    continue 'batches;
                }
                Err(status) => debug!(
                    batch = report.batch,
                    code = ?status.code(),
                    error = %status.message(),
                    "usage report failed; trying the next voter"
                ),
            }
        }
        // Nobody took it: keep it (and everything after it) for the next flush.
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_numbers_batches_and_drops_the_oldest_beyond_its_bound() {
        let mut q = Queue::default();
        let row = v1::UsageRow::default();
        q.push("e", "i", vec![row.clone(); MAX_ROWS + 1]);
        assert_eq!(
            q.pending
                .iter()
                .map(|r| (r.batch, r.rows.len()))
                .collect::<Vec<_>>(),
            vec![(1, MAX_ROWS), (2, 1)]
        );
        for _ in 0..MAX_PENDING {
            q.push("e", "i", vec![row.clone()]);
        }
        assert_eq!(q.pending.len(), MAX_PENDING);
        assert_eq!(q.dropped, 2);
        assert_eq!(q.pending.front().map(|r| r.batch), Some(3));
        // Nothing counted, nothing sent.
        q.push("e", "i", Vec::new());
        assert_eq!(q.pending.len(), MAX_PENDING);
    }
}
