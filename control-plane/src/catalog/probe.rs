//! Probing: a 1-token chat to every model of every declared endpoint with each of its
//! credentials, the answer classified, failures cached with a TTL so a dead model is not asked
//! again every cycle, and models that are dead with every credential taken out of the served set
//! (never out of the user's file). `switchyard catalog audit` runs it on demand; with
//! `catalog_audit_secs` the leader runs it on a schedule.
//!
//! Rate limits: endpoints are probed concurrently (at most `concurrency` at once), the models of
//! one endpoint one after another, spaced by its declared `rpm` when it has one.
//!
//! A model is dead on an endpoint when every credential got `not_found` or `auth_failed`
//! (either answer means this key will never be served it). `rate_limited`, `timeout` and other
//! errors say nothing about the model and change nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::filter::servable;
use super::listing::secret_of;
use crate::error::Error;
use crate::raft::Consensus;
use crate::seal::ClusterKey;
use crate::service::agent::now_ms;
use crate::state::{ClusterState, Command, DeadModel, Endpoint, Source};

/// How long one probe may take before it counts as a timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// Answered 2xx.
    Ok,
    /// 429.
    RateLimited,
    /// 401 or 403.
    AuthFailed,
    /// 404, or a 400 naming an unknown model.
    NotFound,
    /// No answer within the probe timeout.
    Timeout,
    /// Anything else (5xx, connection refused, ...).
    Error,
}

impl ProbeOutcome {
    /// The outcome of an answer with `status`, or of no answer (`None`). Pure.
    pub fn classify(status: Option<u16>, timed_out: bool, body: &str) -> Self {
        match status {
            None if timed_out => Self::Timeout,
            None => Self::Error,
            Some(200..=299) => Self::Ok,
            Some(429) => Self::RateLimited,
            Some(401 | 403) => Self::AuthFailed,
            Some(404) => Self::NotFound,
            // Several providers answer an unknown model with 400 and say so.
            Some(400) if mentions_missing_model(body) => Self::NotFound,
            Some(_) => Self::Error,
        }
    }

    /// The reason a dead model is recorded with.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RateLimited => "rate_limited",
            Self::AuthFailed => "auth_failed",
            Self::NotFound => "not_found",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }

    fn is_fatal(self) -> bool {
        matches!(self, Self::NotFound | Self::AuthFailed)
    }
}

fn mentions_missing_model(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("model")
        && (b.contains("not found")
            || b.contains("does not exist")
            || b.contains("not exist")
            || b.contains("invalid model"))
}

/// One (endpoint, credential, model) probed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProbeKey {
    /// Endpoint id.
    pub endpoint: String,
    /// Upstream model id.
    pub model: String,
    /// Credential id (`key`, `key_2`, ...); empty for an endpoint without credentials.
    pub credential: String,
}

/// Failures remembered until a deadline, so they are not probed again before it. Pure: time
/// arrives as an argument.
#[derive(Debug, Clone, Default)]
pub struct FailureCache {
    entries: HashMap<ProbeKey, (ProbeOutcome, u64)>,
}

impl FailureCache {
    /// The cached outcome for `key` at `now_ms`, when a failure is still fresh.
    pub fn get(&self, key: &ProbeKey, now_ms: u64) -> Option<ProbeOutcome> {
        self.entries
            .get(key)
            .filter(|(_, until)| now_ms < *until)
            .map(|(outcome, _)| *outcome)
    }

    /// Records what a probe found: a failure is kept for `ttl_ms`, a success forgets the key.
    pub fn record(&mut self, key: ProbeKey, outcome: ProbeOutcome, now_ms: u64, ttl_ms: u64) {
        if outcome == ProbeOutcome::Ok {
            self.entries.remove(&key);
        } else {
            self.entries
                .insert(key, (outcome, now_ms.saturating_add(ttl_ms)));
        }
    }
}

/// One row of the audit table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRow {
    /// What was probed.
    #[serde(flatten)]
    pub key: ProbeKey,
    /// What it found.
    pub outcome: ProbeOutcome,
    /// Taken from the failure cache instead of probed again.
    pub cached: bool,
    /// Time to the answer, ms; 0 when cached.
    pub latency_ms: u64,
}

/// A model that left (or came back to) the served set, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Endpoint id.
    pub endpoint: String,
    /// Upstream model id.
    pub model: String,
    /// `not_found` or `auth_failed` for a pruned model; `ok` for one restored.
    pub reason: String,
}

/// What an audit found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Model × credential, sorted.
    pub rows: Vec<ProbeRow>,
    /// Models taken out of the served set by this audit.
    pub pruned: Vec<Pruned>,
    /// Dead models that answered again and are served once more.
    pub restored: Vec<Pruned>,
    /// Whether the verdicts were committed (false for a dry run).
    pub applied: bool,
}

/// What to audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditRequest {
    /// Only this endpoint's models. Default all declared endpoints.
    pub endpoint: Option<String>,
    /// Report only; change nothing. Default false.
    pub dry_run: bool,
    /// A ping: only each endpoint's first model with its first credential, reported, never
    /// pruned. Default false.
    pub first_only: bool,
}

/// The declared endpoints an audit probes, each with the models it serves (only the first
/// model and credential for a ping).
fn audit_work(state: &ClusterState, request: &AuditRequest) -> Vec<(Endpoint, Vec<String>)> {
    let endpoints: Vec<Endpoint> = state
        .endpoints
        .values()
        .filter(|e| matches!(e.source, Source::Config | Source::Env | Source::Api))
        .filter(|e| request.endpoint.as_ref().is_none_or(|id| id == &e.id))
        .cloned()
        .collect();
    endpoints
        .into_iter()
        .map(|mut e| {
            let mut models: Vec<String> = servable(state, &e)
                .iter()
                .map(|m| m.id.to_string())
                .collect();
            if request.first_only {
                models.truncate(1);
                e.credentials.truncate(1);
            }
            (e, models)
        })
        .collect()
}

/// What an audit's verdicts change: models newly dead, models answering again, and the
/// commands that record it.
struct DeadChanges {
    pruned: Vec<Pruned>,
    restored: Vec<Pruned>,
    commands: Vec<Command>,
}

/// Compares the audit's verdicts with the dead models `state` records.
fn dead_changes(state: &ClusterState, found: BTreeMap<String, Vec<DeadModel>>) -> DeadChanges {
    let mut pruned = Vec::new();
    let mut restored = Vec::new();
    let mut commands = Vec::new();
    for (endpoint, dead) in found {
        let before = state
            .dead_models
            .get(&endpoint)
            .cloned()
            .unwrap_or_default();
        for d in &dead {
            if !before.iter().any(|b| b.model == d.model) {
                pruned.push(Pruned {
                    endpoint: endpoint.clone(),
                    model: d.model.clone(),
                    reason: d.reason.clone(),
                });
            }
        }
        for b in &before {
            if !dead.iter().any(|d| d.model == b.model) {
                restored.push(Pruned {
                    endpoint: endpoint.clone(),
                    model: b.model.clone(),
                    reason: "ok".into(),
                });
            }
        }
        let mut sorted = dead.clone();
        sorted.sort();
        if sorted != before {
            commands.push(Command::PutDeadModels {
                endpoint_id: endpoint,
                dead,
            });
        }
    }
    DeadChanges {
        pruned,
        restored,
        commands,
    }
}

/// The dead models of each endpoint that `rows` prove, keeping the time of verdicts already in
/// `state`. Pure.
pub fn verdicts(
    state: &ClusterState,
    rows: &[ProbeRow],
    at_ms: u64,
) -> BTreeMap<String, Vec<DeadModel>> {
    let mut by_model: BTreeMap<(&str, &str), Vec<ProbeOutcome>> = BTreeMap::new();
    for r in rows {
        by_model
            .entry((&r.key.endpoint, &r.key.model))
            .or_default()
            .push(r.outcome);
    }
    let mut out: BTreeMap<String, Vec<DeadModel>> = BTreeMap::new();
    for ((endpoint, model), outcomes) in by_model {
        let entry = out.entry(endpoint.to_string()).or_default();
        if !outcomes.iter().all(|o| o.is_fatal()) {
            continue;
        }
        let reason = if outcomes.contains(&ProbeOutcome::NotFound) {
            ProbeOutcome::NotFound
        } else {
            ProbeOutcome::AuthFailed
        };
        let previous = state.dead_models.get(endpoint).and_then(|d| {
            d.iter()
                .find(|m| m.model == model && m.reason == reason.as_str())
        });
        entry.push(DeadModel {
            model: model.to_string(),
            reason: reason.as_str().to_string(),
            at_ms: previous.map_or(at_ms, |p| p.at_ms),
        });
    }
    out
}

/// Probes endpoints and commits verdicts. Cheap to clone; the failure cache is shared.
#[derive(Clone)]
pub struct Auditor {
    consensus: Consensus,
    key: Option<Arc<ClusterKey>>,
    client: reqwest::Client,
    cache: Arc<Mutex<FailureCache>>,
    /// How long a failure is not probed again, ms.
    pub failure_ttl_ms: u64,
    /// Endpoints probed at once.
    pub concurrency: usize,
}

impl Auditor {
    /// An auditor writing through `consensus`; failures are cached for `failure_ttl_ms`.
    pub fn new(consensus: Consensus, key: Option<Arc<ClusterKey>>, failure_ttl_ms: u64) -> Self {
        crate::crypto::install_provider();
        Self {
            consensus,
            key,
            client: reqwest::Client::new(),
            cache: Arc::default(),
            failure_ttl_ms,
            concurrency: 4,
        }
    }

    /// Probes every model × credential of the declared endpoints `request` names, and (unless a
    /// dry run) commits the dead models that changed.
    pub async fn audit(&self, request: &AuditRequest) -> Result<AuditReport, Error> {
        let state = self.consensus.state().await;
        if let Some(id) = &request.endpoint
            && !state.endpoints.contains_key(id)
        {
            return Err(Error::NotFound {
                what: format!("endpoint `{id}`"),
            });
        }
        let work = audit_work(&state, request);
        let mut rows: Vec<ProbeRow> = futures::stream::iter(work)
            .map(|(endpoint, models)| self.probe_endpoint(endpoint, models))
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));

        let now = now_ms();
        let found = verdicts(&state, &rows, now);
        let DeadChanges {
            mut pruned,
            mut restored,
            commands,
        } = dead_changes(&state, found);
        // One credential's answer proves nothing about the others: a ping never prunes.
        if request.first_only {
            pruned.clear();
            restored.clear();
        }
        let dry_run = request.dry_run || request.first_only;
        if !dry_run {
            for command in commands {
                self.consensus.write(command).await?;
            }
            for p in &pruned {
                tracing::warn!(endpoint = %p.endpoint, model = %p.model, reason = %p.reason, "audit: model is dead with every credential; no longer served");
            }
            for r in &restored {
                tracing::info!(endpoint = %r.endpoint, model = %r.model, "audit: model answers again; served once more");
            }
        }
        Ok(AuditReport {
            rows,
            pruned,
            restored,
            applied: !dry_run,
        })
    }

    async fn probe_endpoint(&self, endpoint: Endpoint, models: Vec<String>) -> Vec<ProbeRow> {
        let spacing = match endpoint.limits.rpm {
            0 => Duration::ZERO,
            rpm => Duration::from_millis(60_000 / rpm),
        };
        let credentials: Vec<(String, Option<String>)> = if endpoint.credentials.is_empty() {
            vec![(String::new(), None)]
        } else {
            endpoint
                .credentials
                .iter()
                .map(|c| (c.id.clone(), secret_of(&c.secret, self.key.as_deref())))
                .collect()
        };
        let mut rows = Vec::new();
        let mut first = true;
        for model in &models {
            for (credential, secret) in &credentials {
                let key = ProbeKey {
                    endpoint: endpoint.id.clone(),
                    credential: credential.clone(),
                    model: model.clone(),
                };
                let cached = self.lock().get(&key, now_ms());
                if let Some(outcome) = cached {
                    rows.push(ProbeRow {
                        key,
                        outcome,
                        cached: true,
                        latency_ms: 0,
                    });
                    continue;
                }
                if !first {
                    tokio::time::sleep(spacing).await;
                }
                first = false;
                let started = Instant::now();
                let outcome = self.probe(&endpoint, model, secret.as_deref()).await;
                let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.lock()
                    .record(key.clone(), outcome, now_ms(), self.failure_ttl_ms);
                rows.push(ProbeRow {
                    key,
                    outcome,
                    cached: false,
                    latency_ms,
                });
            }
        }
        rows
    }

    async fn probe(&self, endpoint: &Endpoint, model: &str, secret: Option<&str>) -> ProbeOutcome {
        let base = endpoint.base_url.trim_end_matches('/');
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
        });
        let mut request = self
            .client
            .post(format!("{base}/chat/completions"))
            .timeout(PROBE_TIMEOUT)
            .json(&body);
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = if status == 400 {
                    response.text().await.unwrap_or_default()
                } else {
                    String::new()
                };
                ProbeOutcome::classify(Some(status), false, &text)
            }
            Err(e) => ProbeOutcome::classify(None, e.is_timeout(), ""),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FailureCache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Audits every `every` while this voter leads (the opt-in scheduled mode).
pub async fn run(auditor: Auditor, every: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
    let consensus = auditor.consensus.clone();
    super::refresh::while_leader(consensus, every, shutdown, || async {
        match auditor.audit(&AuditRequest::default()).await {
            Ok(report) => tracing::info!(
                probed = report.rows.iter().filter(|r| !r.cached).count(),
                pruned = report.pruned.len(),
                restored = report.restored.len(),
                "scheduled catalog audit done"
            ),
            Err(e) => tracing::warn!(error = %e, "scheduled catalog audit failed"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        use ProbeOutcome::*;
        let cases = [
            (Some(200), false, "", Ok),
            (Some(429), false, "", RateLimited),
            (Some(401), false, "", AuthFailed),
            (Some(403), false, "", AuthFailed),
            (Some(404), false, "", NotFound),
            (
                Some(400),
                false,
                r#"{"error":{"message":"The model `x` does not exist"}}"#,
                NotFound,
            ),
            (
                Some(400),
                false,
                r#"{"error":{"message":"max_tokens too large"}}"#,
                Error,
            ),
            (Some(503), false, "", Error),
            (None, true, "", Timeout),
            (None, false, "", Error),
        ];
        for (i, (status, timed_out, body, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                ProbeOutcome::classify(status, timed_out, body),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn failures_are_cached_until_their_ttl_and_a_success_forgets() {
        let mut cache = FailureCache::default();
        let key = ProbeKey {
            endpoint: "or".into(),
            credential: "key".into(),
            model: "m".into(),
        };
        cache.record(key.clone(), ProbeOutcome::NotFound, 1_000, 500);
        assert_eq!(cache.get(&key, 1_000), Some(ProbeOutcome::NotFound));
        assert_eq!(cache.get(&key, 1_499), Some(ProbeOutcome::NotFound));
        assert_eq!(cache.get(&key, 1_500), None);
        cache.record(key.clone(), ProbeOutcome::RateLimited, 2_000, 500);
        cache.record(key.clone(), ProbeOutcome::Ok, 2_100, 500);
        assert_eq!(cache.get(&key, 2_200), None);
    }

    fn row(endpoint: &str, credential: &str, model: &str, outcome: ProbeOutcome) -> ProbeRow {
        ProbeRow {
            key: ProbeKey {
                endpoint: endpoint.into(),
                credential: credential.into(),
                model: model.into(),
            },
            outcome,
            cached: false,
            latency_ms: 1,
        }
    }

    #[test]
    fn a_model_is_dead_only_when_every_credential_says_so() {
        use ProbeOutcome::*;
        let rows = vec![
            row("or", "key", "gone", NotFound),
            row("or", "key_2", "gone", AuthFailed),
            row("or", "key", "half", NotFound),
            row("or", "key_2", "half", Ok),
            row("or", "key", "busy", RateLimited),
            row("or", "key_2", "busy", NotFound),
            row("or", "key", "locked", AuthFailed),
            row("or", "key_2", "locked", AuthFailed),
            row("groq", "key", "fine", Ok),
        ];
        let found = verdicts(&ClusterState::default(), &rows, 7);
        let dead: Vec<(&str, &str)> = found["or"]
            .iter()
            .map(|d| (d.model.as_str(), d.reason.as_str()))
            .collect();
        assert_eq!(dead, vec![("gone", "not_found"), ("locked", "auth_failed")]);
        assert!(
            found["groq"].is_empty(),
            "an endpoint with none dead clears its verdicts"
        );
    }
}
