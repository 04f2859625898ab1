//! Per-request telemetry, each sink optional: a usage webhook, a request log and OTLP traces.
//!
//! - [`event`]: the one record of a finished request that every sink reads;
//! - [`outbox`]: the bounded queue per sink and its delivery task (batches, backoff, drops);
//! - [`webhook`]: batched `POST`s of events; [`request_log`]: JSON lines; [`otlp`]: spans.
//!
//! A request's usage ticket carries a [`Trace`] only when a sink is configured, so without
//! one the request path pays a branch. With one, the ticket notes each upstream attempt and
//! builds one [`Event`] when the request ends, which every sink's outbox is offered without
//! waiting: a slow or dead receiver never delays or fails a request.

pub mod event;
pub mod otlp;
pub mod outbox;
pub mod request_log;
pub mod webhook;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::config::Config;
use crate::error::Error;
use crate::metrics::{AttemptOutcome, Operation};
use crate::routing::{Deployment, EndpointKind};
use event::{AttemptRecord, Event, TraceParent};
use outbox::{Bounds, Outbox, Sink};

/// Which sink a counter is about (label `sink="webhook"`, `"request_log"`, `"otlp"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkName {
    /// The usage webhook.
    Webhook,
    /// The request log.
    RequestLog,
    /// OTLP traces.
    Otlp,
}

impl SinkName {
    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::RequestLog => "request_log",
            Self::Otlp => "otlp",
        }
    }
}

/// The labels of the telemetry counters.
impl EncodeLabelValue for SinkName {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SinkLabels {
    /// The sink.
    pub sink: SinkName,
}

/// The configured sinks and their counters.
#[derive(Debug)]
pub struct Telemetry {
    outboxes: Vec<Arc<Outbox>>,
    dropped: Family<SinkLabels, Counter>,
    delivered: Family<SinkLabels, Counter>,
}

impl Telemetry {
    /// The sinks `cfg` asks for; `None` when it asks for none. Fails on a request log that
    /// cannot be opened or a token that is not a header value.
    pub fn from_config(cfg: &Config) -> Result<Option<Arc<Self>>, Error> {
        let mut telemetry = Self {
            outboxes: Vec::new(),
            dropped: Family::default(),
            delivered: Family::default(),
        };
        let bounds = Bounds {
            capacity: cfg.telemetry_queue,
            batch: cfg.telemetry_batch,
            flush_every: Duration::from_millis(cfg.telemetry_flush_ms),
            policy: cfg.telemetry_drop,
        };
        let invalid = |field, reason| Error::InvalidConfig { field, reason };
        if let Some(url) = &cfg.usage_webhook {
            let uri = crate::config::http_url(url).map_err(|r| invalid("usage_webhook", r))?;
            let token = cfg.usage_webhook_token.as_ref();
            let poster =
                webhook::Poster::new(uri, token, cfg.connect_timeout(), "usage_webhook_token")?;
            let sink = Sink::Webhook(webhook::Webhook::new(poster));
            telemetry.add(SinkName::Webhook, sink, bounds);
        }
        if let Some(path) = &cfg.request_log {
            let sink = Sink::RequestLog(request_log::RequestLog::open(path)?);
            telemetry.add(SinkName::RequestLog, sink, bounds);
        }
        if let Some(endpoint) = &cfg.otlp_endpoint {
            let uri = otlp::traces_uri(endpoint).map_err(|r| invalid("otlp_endpoint", r))?;
            let poster = webhook::Poster::new(uri, None, cfg.connect_timeout(), "otlp_endpoint")?;
            let sink = Sink::Otlp(otlp::Otlp::new(poster, cfg.edge_name.clone()));
            telemetry.add(SinkName::Otlp, sink, bounds);
        }
        Ok((!telemetry.outboxes.is_empty()).then(|| Arc::new(telemetry)))
    }

    fn add(&mut self, name: SinkName, sink: Sink, bounds: Bounds) {
        let labels = SinkLabels { sink: name };
        let dropped = self.dropped.get_or_create(&labels).clone();
        let delivered = self.delivered.get_or_create(&labels).clone();
        self.outboxes
            .push(Outbox::new(name, sink, bounds, dropped, delivered));
    }

    /// Events dropped per sink (`switchyard_edge_telemetry_events_dropped_total`).
    pub fn dropped(&self) -> &Family<SinkLabels, Counter> {
        &self.dropped
    }

    /// Events delivered per sink (`switchyard_edge_telemetry_events_delivered_total`).
    pub fn delivered(&self) -> &Family<SinkLabels, Counter> {
        &self.delivered
    }

    /// Offers `event` to every sink; never waits.
    pub fn emit(&self, event: Event) {
        let event = Arc::new(event);
        for outbox in &self.outboxes {
            outbox.offer(event.clone());
        }
    }

    /// Sends what is queued now and waits until every sink took it, or `within` passed (at
    /// shutdown). Says whether everything went.
    pub async fn flush_now(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.outboxes.iter().all(|o| o.pending() == 0) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            for outbox in &self.outboxes {
                outbox.hurry();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What one request's telemetry knows until it ends.
#[derive(Debug)]
pub struct Trace {
    telemetry: Arc<Telemetry>,
    request_id: Arc<str>,
    operation: &'static str,
    stream: bool,
    /// The status the client got, when known before the ticket ends.
    status: Option<u16>,
    parent: Option<TraceParent>,
    started_ns: u64,
    attempts: Vec<AttemptRecord>,
}

/// What the usage ticket knows at the end of a request.
#[derive(Debug)]
pub struct Done {
    /// The key id.
    pub key: Arc<str>,
    /// The model group.
    pub model: Arc<str>,
    /// The deployment that served, or empty.
    pub deployment: Arc<str>,
    /// Input and output tokens.
    pub tokens: (u64, u64),
    /// Cost in billionths of a US dollar.
    pub cost_nanos: u64,
    /// Milliseconds since admission.
    pub latency_ms: u64,
    /// Whether the request ended without an answer being settled.
    pub error: bool,
}

impl Trace {
    /// Starts the record of a request of `operation` with these client headers.
    pub fn start(
        telemetry: Arc<Telemetry>,
        headers: &HeaderMap,
        operation: Operation,
        stream: bool,
    ) -> Box<Self> {
        Box::new(Self {
            telemetry,
            request_id: event::request_id(headers.get("x-request-id").map(|v| v.as_bytes())),
            operation: match operation {
                Operation::Chat => "chat",
                Operation::Completions => "text_completion",
                Operation::Embeddings => "embeddings",
            },
            stream,
            status: None,
            parent: headers
                .get("traceparent")
                .and_then(|v| TraceParent::parse(v.as_bytes())),
            started_ns: event::unix_nanos(),
            attempts: Vec::new(),
        })
    }

    /// Notes an attempt at `d` starting now.
    pub fn attempt(&mut self, d: &Deployment) {
        let now = event::unix_nanos();
        // Only a "context too long" refusal leaves an attempt open for the next to follow.
        self.close_open(now, AttemptOutcome::ContextExceeded);
        self.attempts.push(AttemptRecord {
            endpoint: d.endpoint.id.clone(),
            upstream_model: d.upstream_model.clone(),
            provider: provider(d.endpoint.kind),
            span: (now, 0),
            failure: None,
        });
    }

    /// Notes that the current attempt failed with `outcome`.
    pub fn attempt_failed(&mut self, outcome: AttemptOutcome) {
        self.close_open(event::unix_nanos(), outcome);
    }

    /// Ends the open attempt, if any, as failed with `outcome`.
    fn close_open(&mut self, now: u64, outcome: AttemptOutcome) {
        if let Some(last) = self.attempts.last_mut().filter(|a| a.span.1 == 0) {
            last.span.1 = now;
            last.failure = Some(outcome);
        }
    }

    /// Notes the status the client got.
    pub fn status(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Builds the request's event and offers it to every sink.
    pub fn finish(self, done: Done) {
        let end = event::unix_nanos();
        let mut attempts = self.attempts;
        if let Some(last) = attempts.last_mut().filter(|a| a.span.1 == 0) {
            last.span.1 = end;
        }
        // A settled answer went out 200 unless the engine said otherwise; a request that ended
        // unsettled and unexplained lost its client (499, nginx's "client closed request").
        let status = self.status.unwrap_or(if done.error { 499 } else { 200 });
        let (input, output) = done.tokens;
        self.telemetry.emit(Event {
            request_id: self.request_id,
            key_id: done.key,
            model: done.model,
            deployment: done.deployment,
            prompt_tokens: input,
            completion_tokens: output,
            total_tokens: input.saturating_add(output),
            is_stream: self.stream,
            status,
            latency_ms: done.latency_ms,
            cost_usd: done.cost_nanos as f64 / 1e9,
            timestamp: event::rfc3339(self.started_ns),
            operation: self.operation,
            span: (self.started_ns, end.max(self.started_ns)),
            parent: self.parent,
            attempts,
        });
    }
}

/// GenAI's `gen_ai.provider.name` for an endpoint kind.
fn provider(kind: EndpointKind) -> &'static str {
    match kind {
        EndpointKind::OpenAi => "openai",
        EndpointKind::Ollama => "ollama",
        EndpointKind::Anthropic => "anthropic",
        EndpointKind::Gemini => "gcp.gemini",
    }
}
