//! The bounded queue between the request path and one telemetry sink, and the task that empties
//! it. The request path only offers: a short lock, a push, never a wait and never an error.
//! The task wakes every flush interval, or at once when a batch is full, takes up to one batch
//! and hands it to its sink. A batch the receiver did not take is sent again with exponential
//! backoff (100 ms doubling to 10 s) for as long as the receiver is down, while new events wait
//! in the queue; once the queue holds `capacity` events, each further one drops the oldest or
//! the newest (the [`DropPolicy`]) and counts in `switchyard_edge_telemetry_events_dropped_total`.
//! So at most `capacity + batch` events are held, and what a long outage loses is counted.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::event::Event;
use super::{SinkName, otlp, request_log, webhook};

/// First pause after a failed delivery; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two deliveries of a batch the receiver refused.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Which event a full queue gives up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropPolicy {
    /// The oldest queued event makes room for the new one (recent events survive an outage).
    #[default]
    Oldest,
    /// The new event is dropped (the start of an outage survives).
    Newest,
}

impl FromStr for DropPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oldest" => Ok(Self::Oldest),
            "newest" => Ok(Self::Newest),
            other => Err(format!("{other:?} is neither `oldest` nor `newest`")),
        }
    }
}

/// How much an outbox holds and how often it sends.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most events queued.
    pub capacity: usize,
    /// Most events in one delivery.
    pub batch: usize,
    /// Longest wait before queued events are sent.
    pub flush_every: Duration,
    /// Which event a full queue gives up.
    pub policy: DropPolicy,
}

/// Why a delivery failed, and whether sending the same batch again may work.
#[derive(Debug)]
pub struct Failure {
    /// Worth sending again (connection, timeout, 5xx, 429); otherwise the batch is dropped.
    pub retry: bool,
    /// For the log line; never holds a URL's credentials or a token.
    pub why: String,
}

/// Where a sink's batches go.
#[derive(Debug)]
pub enum Sink {
    /// `POST` of a JSON array of events.
    Webhook(webhook::Webhook),
    /// JSON lines to a file or stdout.
    RequestLog(request_log::RequestLog),
    /// OTLP/HTTP JSON spans.
    Otlp(otlp::Otlp),
}

impl Sink {
    async fn deliver(&mut self, batch: &[Arc<Event>]) -> Result<(), Failure> {
        match self {
            Self::Webhook(w) => w.deliver(batch).await,
            Self::RequestLog(l) => l.deliver(batch),
            Self::Otlp(o) => o.deliver(batch).await,
        }
    }
}

/// One sink's queue and its counters; the delivery task starts with the first event.
#[derive(Debug)]
pub struct Outbox {
    name: SinkName,
    bounds: Bounds,
    queue: Mutex<VecDeque<Arc<Event>>>,
    /// Events taken for delivery and not yet delivered or dropped.
    sending: AtomicUsize,
    wake: Notify,
    /// The sink until the task takes it.
    sink: Mutex<Option<Sink>>,
    /// The runtime the outbox was made in (the edge's main one), so that delivery never runs
    /// on a worker's event loop; `None` outside a runtime.
    home: Option<tokio::runtime::Handle>,
    started: AtomicBool,
    dropped: Counter,
    delivered: Counter,
}

impl Outbox {
    /// An outbox for `sink` counting into `dropped` and `delivered`.
    pub fn new(
        name: SinkName,
        sink: Sink,
        bounds: Bounds,
        dropped: Counter,
        delivered: Counter,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            bounds,
            queue: Mutex::new(VecDeque::with_capacity(bounds.capacity.min(4_096))),
            sending: AtomicUsize::new(0),
            wake: Notify::new(),
            sink: Mutex::new(Some(sink)),
            home: tokio::runtime::Handle::try_current().ok(),
            started: AtomicBool::new(false),
            dropped,
            delivered,
        })
    }

    /// Queues `event` without waiting; a full queue drops one event (see [`DropPolicy`]).
    pub fn offer(self: &Arc<Self>, event: Arc<Event>) {
        self.start();
        let len = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= self.bounds.capacity {
                self.dropped.inc();
                if self.bounds.policy == DropPolicy::Newest {
                    return;
                }
                queue.pop_front();
            }
            queue.push_back(event);
            queue.len()
        };
        if len >= self.bounds.batch {
            self.wake.notify_one();
        }
    }

    /// Events queued or being delivered.
    pub fn pending(&self) -> usize {
        let queued = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        queued + self.sending.load(Ordering::Acquire)
    }

    /// Asks the task to send what is queued now, without waiting for the interval.
    pub fn hurry(&self) {
        self.wake.notify_one();
    }

    /// Starts the delivery task once, on the home runtime or else the current one (outside
    /// any, events wait queued).
    fn start(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Some(runtime) = self
            .home
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let sink = self
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sink) = sink {
            runtime.spawn(run(Arc::downgrade(self), sink));
        }
    }

    fn take(&self) -> Vec<Arc<Event>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len().min(self.bounds.batch);
        self.sending.store(n, Ordering::Release);
        queue.drain(..n).collect()
    }

    /// Delivers `batch`, again and again with backoff while the receiver may take it later.
    async fn deliver(&self, sink: &mut Sink, batch: Vec<Arc<Event>>) {
        let n = batch.len() as u64;
        let mut backoff = FIRST_BACKOFF;
        let mut failures = 0u32;
        loop {
            match sink.deliver(&batch).await {
                Ok(()) => {
                    self.delivered.inc_by(n);
                    if failures > 0 {
                        info!(
                            sink = self.name.as_str(),
                            failures, "telemetry receiver is back"
                        );
                    }
                    break;
                }
                Err(f) if !f.retry => {
                    self.dropped.inc_by(n);
                    warn!(sink = self.name.as_str(), error = %f.why, events = n,
                        "telemetry receiver refused a batch; dropped");
                    break;
                }
                Err(f) => {
                    if failures == 0 {
                        warn!(sink = self.name.as_str(), error = %f.why,
                            "telemetry receiver unreachable; retrying with backoff");
                    }
                    failures += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.sending.store(0, Ordering::Release);
    }
}

/// The delivery loop of one outbox; ends once the edge dropped its last handle.
async fn run(outbox: Weak<Outbox>, mut sink: Sink) {
    loop {
        let Some(o) = outbox.upgrade() else {
            return;
        };
        tokio::select! {
            () = o.wake.notified() => {}
            () = tokio::time::sleep(o.bounds.flush_every) => {}
        }
        loop {
            let batch = o.take();
            if batch.is_empty() {
                break;
            }
            o.deliver(&mut sink, batch).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Arc<Event> {
        Arc::new(Event {
            request_id: Arc::from(id),
            key_id: Arc::from("k"),
            model: Arc::from("m"),
            deployment: Arc::from(""),
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            is_stream: false,
            status: 200,
            latency_ms: 0,
            cost_usd: 0.0,
            timestamp: String::new(),
            operation: "chat",
            span: (0, 0),
            parent: None,
            attempts: Vec::new(),
        })
    }

    /// Outside a runtime no task runs, so the queue shows exactly what offering keeps.
    fn kept(policy: DropPolicy) -> (Vec<String>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let log = request_log::RequestLog::open(&dir.path().join("r.log")).unwrap();
        let bounds = Bounds {
            capacity: 3,
            batch: 2,
            flush_every: Duration::from_secs(1),
            policy,
        };
        let dropped = Counter::default();
        let outbox = Outbox::new(
            SinkName::RequestLog,
            Sink::RequestLog(log),
            bounds,
            dropped.clone(),
            Counter::default(),
        );
        for i in 0..5 {
            outbox.offer(event(&i.to_string()));
        }
        assert_eq!(outbox.pending(), 3);
        let ids = outbox
            .take()
            .iter()
            .chain(outbox.take().iter())
            .map(|e| e.request_id.to_string())
            .collect();
        (ids, dropped.get())
    }

    #[test]
    fn a_full_queue_drops_by_policy_and_counts() {
        assert_eq!(
            kept(DropPolicy::Oldest),
            (vec!["2".into(), "3".into(), "4".into()], 2)
        );
        assert_eq!(
            kept(DropPolicy::Newest),
            (vec!["0".into(), "1".into(), "2".into()], 2)
        );
        assert_eq!("newest".parse(), Ok(DropPolicy::Newest));
        assert!("latest".parse::<DropPolicy>().is_err());
    }
}
