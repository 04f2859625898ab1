//! Active health checks of declared endpoints, run by the control-plane leader only, so a
//! cluster checks each endpoint once per interval however many edges it has.
//!
//! Rules:
//! - only declared endpoints are checked (config, env, API, demo); node agents already probe
//!   what they discovered;
//! - the default check is `GET {base}/models` with the endpoint's first credential: it costs
//!   no tokens. `mode: completion` sends a one-token chat completion instead, which proves
//!   inference works and spends a token per check;
//! - a 2xx passes, and so does a 429 (the server is up, only busy); anything else, or no
//!   answer within [`CHECK_TIMEOUT`], fails;
//! - only a change of result is committed (`ReportHealth`), never a check that changes nothing:
//!   the log grows with change, not with time. Edges learn results from the routing table, and
//!   `GET /health` on an edge answers from it.
//!
//! [`due`] and [`judge`] are pure; [`watch_endpoints`] is the IO shell.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::raft::Consensus;
use crate::seal::ClusterKey;
use crate::service::agent::now_ms;
use crate::state::{CheckMode, ClusterState, Command, Endpoint, Secret, Source};

/// How often a voter that runs no checks looks whether it should (a leadership change or a
/// committed change wakes it at once).
const IDLE_TICK: Duration = Duration::from_secs(5);

/// How long one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Endpoint ids whose check is due at `now_ms`: declared endpoints not checked within
/// `interval_ms` (by this leader: `last` is its memory of when it last checked each).
pub fn due(
    state: &ClusterState,
    last: &BTreeMap<String, u64>,
    now_ms: u64,
    interval_ms: u64,
) -> Vec<String> {
    state
        .endpoints
        .values()
        .filter(|e| e.source != Source::Discovered)
        .filter(|e| {
            last.get(&e.id)
                .is_none_or(|at| now_ms.saturating_sub(*at) >= interval_ms)
        })
        .map(|e| e.id.clone())
        .collect()
}

/// What one check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// An HTTP answer with this status.
    Status(u16),
    /// No connection could be made.
    Connect,
    /// No answer in time.
    Timeout,
}

/// Whether a check passed; the failure reason otherwise (short, never a URL or a secret).
pub fn judge(seen: &Seen) -> Result<(), String> {
    match seen {
        Seen::Status(s) if (200..300).contains(s) || *s == 429 => Ok(()),
        Seen::Status(s) => Err(format!("status {s}")),
        Seen::Connect => Err("connect".into()),
        Seen::Timeout => Err("timeout".into()),
    }
}

/// Runs the checks while this voter leads, until `shutdown`.
pub async fn watch_endpoints(
    consensus: Consensus,
    key: Option<Arc<ClusterKey>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leadership = consensus.watch_leadership();
    let mut tables = consensus.watch_table();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    // Built at the first check, so a cluster without checks never needs one.
    let mut client: Option<reqwest::Client> = None;
    loop {
        let leading = *leadership.borrow_and_update();
        let state = consensus.state().await;
        let checks = state.settings.health_checks;
        let interval = checks.interval_ms();
        if !leading || !checks.enabled {
            last.clear();
        } else {
            let now = now_ms();
            if client.is_none() {
                client = check_client();
            }
            let Some(client) = &client else { return };
            for id in due(&state, &last, now, interval) {
                last.insert(id.clone(), now);
                let Some(endpoint) = state.endpoints.get(&id) else {
                    continue;
                };
                let Some(request) =
                    check_request(client, &state, endpoint, key.as_deref(), checks.mode)
                else {
                    continue;
                };
                let seen = match request.send().await {
                    Ok(r) => Seen::Status(r.status().as_u16()),
                    Err(e) if e.is_timeout() => Seen::Timeout,
                    Err(_) => Seen::Connect,
                };
                let verdict = judge(&seen);
                let previous = state.checked.get(&id);
                let unchanged = previous.is_some_and(|c| {
                    c.healthy == verdict.is_ok()
                        && verdict.as_ref().err().is_none_or(|e| *e == c.error)
                });
                if unchanged {
                    continue;
                }
                match &verdict {
                    Ok(()) => tracing::info!(endpoint = %id, "health check passes"),
                    Err(reason) => {
                        tracing::warn!(endpoint = %id, reason = %reason, "health check fails")
                    }
                }
                let command = Command::ReportHealth {
                    endpoint_id: id.clone(),
                    healthy: verdict.is_ok(),
                    error: verdict.err().unwrap_or_default(),
                    at_ms: now_ms(),
                };
                if let Err(e) = consensus.write_local(command).await {
                    tracing::warn!(endpoint = %id, error = %e, "could not commit the health result");
                }
            }
        }
        // Wake often enough to keep short intervals, rarely enough to cost nothing; a voter
        // with nothing to check looks again only now and then (reading the state copies it).
        let tick = if leading && checks.enabled {
            Duration::from_millis((interval / 4).clamp(100, 1_000))
        } else {
            IDLE_TICK
        };
        // While idle, a committed change (checks turned on) is looked at at once; while
        // checking, the tick is short anyway and commits do not each cost a state copy.
        let idle = !(leading && checks.enabled);
        tables.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            changed = leadership.changed() => if changed.is_err() { return },
            changed = tables.changed(), if idle => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// The HTTP client checks use; `None` (logged) when none can be built.
fn check_client() -> Option<reqwest::Client> {
    crate::crypto::install_provider();
    // No pooled connections: each check opens its own, so a server that went away fails its
    // next check instead of answering on a connection it accepted earlier.
    match reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .pool_max_idle_per_host(0)
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for health checks; they do not run");
            None
        }
    }
}

/// The check for `endpoint`, or `None` when its credential cannot be had here (a variable
/// set only on the edges): a check without it would fail for the wrong reason.
fn check_request(
    client: &reqwest::Client,
    state: &ClusterState,
    endpoint: &Endpoint,
    key: Option<&ClusterKey>,
    mode: CheckMode,
) -> Option<reqwest::RequestBuilder> {
    let style = &endpoint.upstream;
    let base = endpoint.base_url.trim_end_matches('/');
    let query = |url: String| {
        if style.query.is_empty() {
            url
        } else {
            format!("{url}?{}", style.query)
        }
    };
    let model = first_model(state, endpoint);
    let mut request = match (mode, model) {
        (CheckMode::Completion, Some(model))
            if endpoint.kind != "anthropic" && endpoint.kind != "gemini" =>
        {
            client
                .post(query(format!("{base}/chat/completions")))
                .json(&serde_json::json!({
                    "model": model,
                    "messages": [{"role": "user", "content": "ping"}],
                    "max_tokens": 1,
                }))
        }
        // Azure lists models on the resource, not on a deployment.
        _ => {
            let list_base = base.split("/deployments/").next().unwrap_or(base);
            client.get(query(format!("{list_base}/models")))
        }
    };
    for (name, value) in &style.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(credential) = endpoint.credentials.first() {
        let secret = match &credential.secret {
            Secret::Sealed { sealed } => key.and_then(|k| k.open(sealed))?,
            Secret::Env { name } => std::env::var(name).ok().filter(|v| !v.is_empty())?,
        };
        request = if style.auth_header.is_empty() {
            request.bearer_auth(secret)
        } else {
            request.header(style.auth_header.as_str(), secret)
        };
    }
    Some(request)
}

/// The upstream model a completion check asks for: a model group's, else the endpoint's own.
fn first_model<'a>(state: &'a ClusterState, endpoint: &'a Endpoint) -> Option<&'a str> {
    state
        .model_groups
        .values()
        .flat_map(|g| &g.deployments)
        .find(|d| d.endpoint_id == endpoint.id)
        .map(|d| d.upstream_model.as_str())
        .or(endpoint.models.first().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DiscoveredBackend, EndpointSpec, Limits};

    #[test]
    fn declared_endpoints_are_due_once_per_interval() {
        let mut state = ClusterState::default();
        for id in ["a", "b"] {
            state.apply(Command::PutEndpoint {
                spec: EndpointSpec {
                    id: id.into(),
                    kind: "openai".into(),
                    base_url: "http://x/v1".into(),
                    models: vec!["m".into()],
                    weight: 1,
                    source: Source::Config,
                    credentials: vec![],
                    limits: Limits::default(),
                    upstream: Default::default(),
                },
                at_ms: 0,
            });
        }
        state.apply(Command::ReportBackends {
            node: "n".into(),
            upserted: vec![DiscoveredBackend {
                id: "found".into(),
                kind: "ollama".into(),
                base_url: "http://y/v1".into(),
                models: vec!["m".into()],
                facts: None,
            }],
            removed: vec![],
            full: true,
            at_ms: 0,
        });
        // (last checks, now) → due
        type Case<'a> = (Vec<(&'a str, u64)>, u64, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (vec![], 0, vec!["a", "b"]),
            (vec![("a", 1_000)], 1_500, vec!["b"]),
            (vec![("a", 1_000), ("b", 0)], 2_000, vec!["a", "b"]),
            (vec![("a", 1_000), ("b", 1_900)], 2_000, vec!["a"]),
        ];
        for (last, now, want) in cases {
            let last = last.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(due(&state, &last, now, 1_000), want, "at {now}");
        }
    }

    #[test]
    fn judgements() {
        let cases = [
            (Seen::Status(200), Ok(())),
            (Seen::Status(204), Ok(())),
            (Seen::Status(429), Ok(())),
            (Seen::Status(401), Err("status 401".to_string())),
            (Seen::Status(503), Err("status 503".to_string())),
            (Seen::Connect, Err("connect".to_string())),
            (Seen::Timeout, Err("timeout".to_string())),
        ];
        for (seen, want) in cases {
            assert_eq!(judge(&seen), want, "{seen:?}");
        }
    }

    #[test]
    fn only_transitions_change_the_state() {
        let mut state = ClusterState::default();
        state.apply(Command::PutEndpoint {
            spec: EndpointSpec {
                id: "a".into(),
                kind: "openai".into(),
                base_url: "http://x/v1".into(),
                models: vec![],
                weight: 1,
                source: Source::Config,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        });
        let report = |healthy: bool, at_ms: u64| Command::ReportHealth {
            endpoint_id: "a".into(),
            healthy,
            error: if healthy {
                String::new()
            } else {
                "connect".into()
            },
            at_ms,
        };
        let steps = [
            (report(false, 1), true),
            (report(false, 2), false),
            (report(true, 3), true),
            (report(true, 4), false),
        ];
        for (i, (command, changed)) in steps.into_iter().enumerate() {
            let outcome = state.apply(command);
            assert_eq!(
                matches!(outcome, crate::state::Outcome::Changed { .. }),
                changed,
                "step {i}"
            );
        }
        assert_eq!(state.checked["a"].since_ms, 3);
        let unknown = Command::ReportHealth {
            endpoint_id: "gone".into(),
            healthy: false,
            error: "connect".into(),
            at_ms: 5,
        };
        assert!(matches!(
            state.apply(unknown),
            crate::state::Outcome::Unchanged { .. }
        ));
    }
}
