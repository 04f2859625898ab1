//! The edge's Prometheus metrics. Labels come only from enums and from ids in the routing
//! table (endpoint ids, public model names), never from what a client sent.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which `/v1` operation a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Operation {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
}

impl Operation {
    /// Every operation, in [`Operation::index`] order.
    pub const ALL: [Self; 3] = [Self::Chat, Self::Completions, Self::Embeddings];

    /// Its place in [`Operation::ALL`] (and in per-operation arrays such as an endpoint's URIs).
    pub fn index(self) -> usize {
        match self {
            Self::Chat => 0,
            Self::Completions => 1,
            Self::Embeddings => 2,
        }
    }

    /// The path clients POST it to.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
        }
    }
}

/// How one upstream attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum AttemptOutcome {
    /// Answered 2xx and the first byte arrived.
    Ok,
    /// No connection.
    Connect,
    /// No answer within the per-try timeout or the deadline.
    Timeout,
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// Refused our credential (401/403).
    Credential,
    /// A request error the client gets back as the upstream said it.
    ClientError,
    /// The prompt did not fit.
    ContextExceeded,
    /// Malformed or oversized answer, or a broken connection.
    Protocol,
}

/// How a relayed stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum StreamEnd {
    /// `[DONE]` or a clean end of a JSON body.
    Complete,
    /// The upstream broke, stalled or overflowed; the client got an error event.
    UpstreamError,
    /// The client went away first.
    ClientGone,
}

/// Token direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum TokenKind {
    /// Prompt tokens.
    Prompt,
    /// Completion tokens.
    Completion,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: Operation,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttemptLabels {
    endpoint: Arc<str>,
    outcome: AttemptOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenLabels {
    endpoint: Arc<str>,
    model: Arc<str>,
    kind: TokenKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CooldownLabels {
    endpoint: Arc<str>,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StreamLabels {
    end: StreamEnd,
}

/// Every metric the edge keeps, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram>,
    attempts: Family<AttemptLabels, Counter>,
    first_byte: Family<EndpointLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
    cooldowns: Family<CooldownLabels, Counter>,
    streams: Family<StreamLabels, Counter>,
    in_flight: Gauge,
    table_version: Gauge<u64, AtomicU64>,
    /// The series of each route's 200s by [`Operation::index`], looked up once (most requests end
    /// there).
    ok_requests: [OnceLock<(Counter, Histogram)>; 3],
}

/// One deployment's per-request series, looked up once: a request then counts without
/// hashing labels or taking the families' locks. Token counts are cached for one public
/// model name, the first the deployment answered under; a request naming it otherwise (an
/// alias, or the group when an alias came first) counts through [`Metrics::tokens`].
#[derive(Debug, Clone)]
pub struct DeploymentSeries {
    ok: Counter,
    first_byte: Histogram,
    model: Arc<str>,
    prompt: Counter,
    completion: Counter,
}

impl DeploymentSeries {
    /// Counts a successful attempt and its time to first byte.
    pub fn succeeded(&self, first_byte_seconds: f64) {
        self.ok.inc();
        self.first_byte.observe(first_byte_seconds);
    }

    /// Adds metered tokens when `model` is the cached name; says whether it was.
    pub fn tokens(&self, model: &str, prompt: u64, completion: u64) -> bool {
        if *self.model != *model {
            return false;
        }
        self.prompt.inc_by(prompt);
        self.completion.inc_by(completion);
        true
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~105 s
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Metrics {
    /// Registers the usage accounting's counters.
    pub fn register_usage(&mut self, usage: &crate::usage::Usage) {
        self.registry.register(
            "usage_batches_dropped",
            "Usage batches dropped unsent because no control plane answered for too long",
            usage.dropped_batches().clone(),
        );
    }

    /// Registers the telemetry sinks' counters, per sink.
    pub fn register_telemetry(&mut self, telemetry: &crate::telemetry::Telemetry) {
        self.registry.register(
            "telemetry_events_dropped",
            "Telemetry events dropped because a sink's queue was full or its receiver refused them",
            telemetry.dropped().clone(),
        );
        self.registry.register(
            "telemetry_events_delivered",
            "Telemetry events a sink's receiver took",
            telemetry.delivered().clone(),
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard_edge");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        let first_byte = Family::<EndpointLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        let cooldowns = Family::<CooldownLabels, Counter>::default();
        let streams = Family::<StreamLabels, Counter>::default();
        let in_flight = Gauge::default();
        let table_version = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "requests",
            "Client requests by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time until the response head went to the client",
            duration.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Upstream attempts by outcome",
            attempts.clone(),
        );
        registry.register(
            "upstream_first_byte_seconds",
            "Time from sending upstream to its first body byte",
            first_byte.clone(),
        );
        registry.register(
            "tokens",
            "Tokens metered from upstream usage",
            tokens.clone(),
        );
        registry.register(
            "cooldowns",
            "Cooldowns this edge started",
            cooldowns.clone(),
        );
        registry.register(
            "streams",
            "Relayed response bodies by how they ended",
            streams.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being served",
            in_flight.clone(),
        );
        registry.register(
            "table_version",
            "Version of the routing table held",
            table_version.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            attempts,
            first_byte,
            tokens,
            cooldowns,
            streams,
            in_flight,
            table_version,
            ok_requests: Default::default(),
        }
    }
}

impl Metrics {
    /// Counts a finished request head and its latency.
    pub fn request(&self, route: Operation, status: u16, seconds: f64) {
        let labels = RequestLabels { route, status };
        if status == 200 {
            let (count, duration) = self.ok_requests[route.index()].get_or_init(|| {
                (
                    self.requests.get_or_create_owned(&labels),
                    self.duration.get_or_create_owned(&labels),
                )
            });
            count.inc();
            duration.observe(seconds);
            return;
        }
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
    }

    /// The per-request series of a deployment on `endpoint`, with tokens for `model`.
    pub fn deployment_series(&self, endpoint: &Arc<str>, model: &Arc<str>) -> DeploymentSeries {
        let token = |kind| {
            self.tokens.get_or_create_owned(&TokenLabels {
                endpoint: endpoint.clone(),
                model: model.clone(),
                kind,
            })
        };
        DeploymentSeries {
            ok: self.attempts.get_or_create_owned(&AttemptLabels {
                endpoint: endpoint.clone(),
                outcome: AttemptOutcome::Ok,
            }),
            first_byte: self.first_byte.get_or_create_owned(&EndpointLabels {
                endpoint: endpoint.clone(),
            }),
            model: model.clone(),
            prompt: token(TokenKind::Prompt),
            completion: token(TokenKind::Completion),
        }
    }

    /// Counts one upstream attempt.
    pub fn attempt(&self, endpoint: &Arc<str>, outcome: AttemptOutcome) {
        self.attempts
            .get_or_create(&AttemptLabels {
                endpoint: endpoint.clone(),
                outcome,
            })
            .inc();
    }

    /// Adds metered tokens.
    pub fn tokens(&self, endpoint: &Arc<str>, model: &Arc<str>, prompt: u64, completion: u64) {
        for (kind, n) in [
            (TokenKind::Prompt, prompt),
            (TokenKind::Completion, completion),
        ] {
            self.tokens
                .get_or_create(&TokenLabels {
                    endpoint: endpoint.clone(),
                    model: model.clone(),
                    kind,
                })
                .inc_by(n);
        }
    }

    /// Counts a cooldown this edge started.
    pub fn cooldown(&self, endpoint: &Arc<str>, reason: &'static str) {
        self.cooldowns
            .get_or_create(&CooldownLabels {
                endpoint: endpoint.clone(),
                reason,
            })
            .inc();
    }

    /// Counts how a relayed body ended.
    pub fn stream_end(&self, end: StreamEnd) {
        self.streams.get_or_create(&StreamLabels { end }).inc();
    }

    /// The in-flight gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// Sets the table version gauge.
    pub fn set_table_version(&self, version: u64) {
        self.table_version.set(version);
    }

    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_table_labels() {
        let m = Metrics::default();
        let e: Arc<str> = Arc::from("groq");
        m.request(Operation::Chat, 200, 0.001);
        m.attempt(&e, AttemptOutcome::RateLimited);
        m.tokens(&e, &Arc::from("llama3"), 9, 12);
        m.cooldown(&e, "rate_limited");
        m.set_table_version(7);
        let text = m.render();
        for needle in [
            "switchyard_edge_requests_total{route=\"Chat\",status=\"200\"} 1",
            "switchyard_edge_upstream_attempts_total{endpoint=\"groq\",outcome=\"RateLimited\"} 1",
            "switchyard_edge_tokens_total{endpoint=\"groq\",model=\"llama3\",kind=\"Completion\"} 12",
            "switchyard_edge_cooldowns_total{endpoint=\"groq\",reason=\"rate_limited\"} 1",
            "switchyard_edge_table_version 7",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn cached_series_count_into_the_same_families() {
        let m = Metrics::default();
        let e: Arc<str> = Arc::from("vllm");
        let series = m.deployment_series(&e, &Arc::from("llama3"));
        series.succeeded(0.002);
        series.succeeded(0.003);
        assert!(series.tokens("llama3", 5, 7));
        // Another public name (an alias) is not cached: the caller counts it by label.
        assert!(!series.tokens("fast", 1, 1));
        m.tokens(&e, &Arc::from("fast"), 1, 1);
        m.request(Operation::Chat, 200, 0.004);
        m.request(Operation::Chat, 200, 0.005);
        m.request(Operation::Chat, 429, 0.001);
        let text = m.render();
        for needle in [
            "switchyard_edge_upstream_attempts_total{endpoint=\"vllm\",outcome=\"Ok\"} 2",
            "switchyard_edge_upstream_first_byte_seconds_count{endpoint=\"vllm\"} 2",
            "switchyard_edge_tokens_total{endpoint=\"vllm\",model=\"llama3\",kind=\"Prompt\"} 5",
            "switchyard_edge_tokens_total{endpoint=\"vllm\",model=\"fast\",kind=\"Prompt\"} 1",
            "switchyard_edge_requests_total{route=\"Chat\",status=\"200\"} 2",
            "switchyard_edge_requests_total{route=\"Chat\",status=\"429\"} 1",
            "switchyard_edge_request_duration_seconds_count{route=\"Chat\",status=\"200\"} 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
