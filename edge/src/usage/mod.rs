//! Usage accounting at the edge: who used which model through which deployment, and the cost.
//!
//! - [`ledger`]: the in-memory counters per (key, model, deployment, minute);
//! - [`flush`]: the background task that sends them to the control plane in batches.
//!
//! A request gets a [`Ticket`] once it is authenticated. The attempt engine tells the ticket which
//! deployment answered ([`Ticket::served_by`]) and settles it with the usage the answer reported
//! ([`Ticket::settle`]); a ticket dropped unsettled (a refused request, an upstream error, a
//! client gone before the answer) counts as one errored request. Settling is the one place usage
//! is recorded: a few atomic adds, no allocation, no IO. With a telemetry sink configured the
//! ticket also carries the request's [`Trace`] (see [`crate::telemetry`]), told of each attempt.

pub mod flush;
pub mod ledger;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ledger::{Counts, Ledger, Series};
use prometheus_client::metrics::counter::Counter;

use crate::auth::Principal;
use crate::limits::upstream::TokenCharge;
use crate::metrics::{AttemptOutcome, Operation};
use crate::routing::{Deployment, ModelGroup};
use crate::telemetry::{Done, Telemetry, Trace};
use crate::upstream::RequestBody;
use crate::upstream::sse::Usage as TokenUsage;

/// What a deployment costs, US dollars per 1M tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    /// Per 1M input (prompt) tokens.
    pub input_usd_per_mtok: f64,
    /// Per 1M output (completion) tokens.
    pub output_usd_per_mtok: f64,
}

impl Price {
    /// The cost of `input` and `output` tokens in billionths of a US dollar (rounded).
    pub fn cost_nanos(&self, input: u64, output: u64) -> u64 {
        // $/1M tokens × tokens × 1e9 nano$/$ / 1e6 = tokens × price × 1000.
        let nanos = (input as f64 * self.input_usd_per_mtok
            + output as f64 * self.output_usd_per_mtok)
            * 1_000.0;
        if nanos.is_finite() && nanos > 0.0 {
            nanos.round() as u64
        } else {
            0
        }
    }
}

/// The key id usage is counted under: the client key's id, `bootstrap`, or `-` without keys.
pub fn key_of(principal: &Principal) -> Arc<str> {
    static OPEN: OnceLock<Arc<str>> = OnceLock::new();
    static BOOTSTRAP: OnceLock<Arc<str>> = OnceLock::new();
    match principal {
        Principal::Key(key) => key.id.clone(),
        Principal::Open => OPEN.get_or_init(|| Arc::from("-")).clone(),
        Principal::Bootstrap => BOOTSTRAP.get_or_init(|| Arc::from("bootstrap")).clone(),
    }
}

/// The most a request to `group` can cost, in billionths of a US dollar: its token estimate
/// (plus [`DEFAULT_COMPLETION_TOKENS`] without `max_tokens`) at the dearest price of the
/// group's deployments. 0 when every deployment is free.
///
/// [`DEFAULT_COMPLETION_TOKENS`]: crate::limits::spend::DEFAULT_COMPLETION_TOKENS
pub fn estimate_nanos(group: &ModelGroup, request: &RequestBody<'_>) -> u64 {
    let dearest = group
        .deployments
        .iter()
        .map(|d| d.price.input_usd_per_mtok.max(d.price.output_usd_per_mtok))
        .fold(0.0, f64::max);
    if dearest <= 0.0 {
        return 0;
    }
    let completion = if request.max_tokens.is_none() {
        crate::limits::spend::DEFAULT_COMPLETION_TOKENS
    } else {
        0
    };
    Price {
        input_usd_per_mtok: dearest,
        output_usd_per_mtok: 0.0,
    }
    .cost_nanos(request.token_estimate() + completion, 0)
}

/// The edge's usage accounting; clones share the counters.
#[derive(Debug, Clone)]
pub struct Usage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    enabled: bool,
    ledger: Ledger,
    flusher: OnceLock<flush::Flusher>,
    settings: flush::Settings,
    /// The configured telemetry sinks, fed from the same tickets.
    telemetry: Option<Arc<Telemetry>>,
    /// Batches given up on because no control plane answered for too long.
    dropped_batches: Counter,
}

impl Usage {
    /// Accounting that flushes with `settings`; with `enabled` false nothing is counted (the
    /// bench's baseline).
    pub fn new(enabled: bool, settings: flush::Settings) -> Self {
        Self::with_telemetry(enabled, settings, None)
    }

    /// Accounting as [`Usage::new`] whose tickets also feed `telemetry` (even with counting
    /// off).
    pub fn with_telemetry(
        enabled: bool,
        settings: flush::Settings,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                enabled,
                ledger: Ledger::default(),
                flusher: OnceLock::new(),
                settings,
                telemetry,
                dropped_batches: Counter::default(),
            }),
        }
    }

    /// The count of usage batches dropped unsent (`switchyard_edge_usage_batches_dropped_total`).
    pub fn dropped_batches(&self) -> &Counter {
        &self.inner.dropped_batches
    }

    /// The telemetry sinks, when any is configured.
    pub fn telemetry(&self) -> Option<&Arc<Telemetry>> {
        self.inner.telemetry.as_ref()
    }

    /// A ticket for one authenticated request by `key` for `model`; `None` when accounting is
    /// off and no telemetry sink is configured. Starts the flusher on first use (inside the
    /// runtime).
    pub fn ticket(&self, key: &Arc<str>, model: &Arc<str>) -> Option<Ticket> {
        if !self.inner.enabled {
            self.inner.telemetry.as_ref()?;
        } else {
            self.inner
                .flusher
                .get_or_init(|| flush::Flusher::spawn(self, self.inner.settings.clone()));
        }
        Some(Ticket {
            usage: self.clone(),
            key: key.clone(),
            model: model.clone(),
            deployment: None,
            started: Instant::now(),
            done: false,
            budget: Vec::new(),
            trace: None,
        })
    }

    /// Sends everything counted so far now and waits for the answer (at shutdown).
    pub async fn flush_now(&self) {
        if let Some(f) = self.inner.flusher.get() {
            f.flush_now().await;
        }
    }

    fn record(&self, series: Series, counts: &Counts) {
        self.inner.ledger.record(series, counts);
    }

    pub(crate) fn drain(&self, now_ms: u64) -> Vec<(Series, Counts)> {
        self.inner.ledger.drain(now_ms)
    }
}

/// One request's usage until it is recorded.
#[derive(Debug)]
pub struct Ticket {
    usage: Usage,
    key: Arc<str>,
    model: Arc<str>,
    deployment: Option<(Arc<str>, Price)>,
    started: Instant,
    /// Recorded already (settled); the drop must not count it again.
    done: bool,
    /// Money reserved from the key's budgets, settled with the real cost.
    budget: Vec<TokenCharge>,
    /// What the telemetry sinks will be told; `None` without a sink.
    trace: Option<Box<Trace>>,
}

impl Ticket {
    /// Holds the key's budget reservations until the cost is known.
    pub fn reserve(&mut self, charges: Vec<TokenCharge>) {
        self.budget.extend(charges);
    }

    /// Starts the telemetry record of the request (when a sink is configured): its id, trace
    /// parent and stream flag from the client's request.
    pub fn describe(&mut self, headers: &http::HeaderMap, operation: Operation, stream: bool) {
        if let Some(telemetry) = &self.usage.inner.telemetry {
            self.trace = Some(Trace::start(telemetry.clone(), headers, operation, stream));
        }
    }

    /// Names the deployment that answered, and its price.
    pub fn served_by(&mut self, deployment: &Arc<str>, price: Price) {
        self.deployment = Some((deployment.clone(), price));
    }

    /// Notes an upstream attempt at `d` starting now (for traces).
    pub fn attempt(&mut self, d: &Deployment) {
        if let Some(trace) = &mut self.trace {
            trace.attempt(d);
        }
    }

    /// Notes that the current attempt failed with `outcome`.
    pub fn attempt_failed(&mut self, outcome: AttemptOutcome) {
        if let Some(trace) = &mut self.trace {
            trace.attempt_failed(outcome);
        }
    }

    /// Notes the HTTP status the client gets (a refusal or an error; a settled answer is 200).
    pub fn status(&mut self, status: u16) {
        if let Some(trace) = &mut self.trace {
            trace.status(status);
        }
    }

    /// Records a served request with the usage its answer reported (none: 0 tokens). Returns
    /// the cost charged, in billionths of a US dollar.
    pub fn settle(mut self, usage: Option<TokenUsage>) -> u64 {
        let (input, output) = usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        self.finish(false, input, output)
    }

    fn finish(&mut self, error: bool, input: u64, output: u64) -> u64 {
        self.done = true;
        let (deployment, price) = match self.deployment.take() {
            Some(served) => served,
            None => (no_deployment(), Price::default()),
        };
        let cost_nanos = price.cost_nanos(input, output);
        let latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(trace) = self.trace.take() {
            (*trace).finish(Done {
                key: self.key.clone(),
                model: self.model.clone(),
                deployment: deployment.clone(),
                tokens: (input, output),
                cost_nanos,
                latency_ms,
                error,
            });
        }
        if self.usage.inner.enabled {
            let now = crate::limits::now_ms();
            let counts = Counts {
                requests: 1,
                errors: u64::from(error),
                input_tokens: input,
                output_tokens: output,
                latency_ms,
                cost_nanos,
            };
            let series = Series {
                key: self.key.clone(),
                model: self.model.clone(),
                deployment,
                minute_ms: now - now % 60_000,
            };
            self.usage.record(series, &counts);
        }
        for charge in self.budget.drain(..) {
            charge.settle(cost_nanos);
        }
        cost_nanos
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.finish(true, 0, 0);
        }
    }
}

/// The empty deployment name, shared so an unserved request allocates nothing.
fn no_deployment() -> Arc<str> {
    static EMPTY: OnceLock<Arc<str>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::from("")).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_million_tokens() {
        let price = Price {
            input_usd_per_mtok: 0.15,
            output_usd_per_mtok: 0.6,
        };
        // 1M input tokens = $0.15 = 150_000_000 nano$.
        assert_eq!(price.cost_nanos(1_000_000, 0), 150_000_000);
        assert_eq!(price.cost_nanos(10, 20), 1_500 + 12_000);
        assert_eq!(Price::default().cost_nanos(1_000, 1_000), 0);
    }

    #[tokio::test]
    async fn settled_and_dropped_tickets_are_counted_once() {
        let usage = Usage::new(true, flush::Settings::default());
        let (key, model): (Arc<str>, Arc<str>) = (Arc::from("k"), Arc::from("m"));
        let mut t = usage.ticket(&key, &model).unwrap();
        t.served_by(
            &Arc::from("e/m"),
            Price {
                input_usd_per_mtok: 1.0,
                output_usd_per_mtok: 2.0,
            },
        );
        let cost = t.settle(Some(TokenUsage {
            prompt_tokens: 10,
            completion_tokens: 5,
        }));
        assert_eq!(cost, 20_000);
        drop(usage.ticket(&key, &model));
        let mut drained = usage.drain(crate::limits::now_ms());
        drained.sort_by(|a, b| a.0.deployment.cmp(&b.0.deployment));
        let got: Vec<_> = drained
            .iter()
            .map(|(s, c)| {
                (
                    &*s.deployment,
                    c.requests,
                    c.errors,
                    c.input_tokens,
                    c.cost_nanos,
                )
            })
            .collect();
        assert_eq!(got, vec![("", 1, 1, 0, 0), ("e/m", 1, 0, 10, 20_000)]);
        assert!(
            Usage::new(false, flush::Settings::default())
                .ticket(&key, &model)
                .is_none()
        );
    }
}
