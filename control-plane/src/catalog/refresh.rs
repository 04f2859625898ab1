//! Listing every catalogued endpoint and committing what changed: on a schedule by the leader
//! (one lister per cluster), and on demand from the admin API on any voter.
//!
//! A listing equal to the stored one is not written, so an idle cluster's log does not grow.
//! An endpoint that cannot be listed keeps its last listing (a provider's outage is not a
//! catalog change); the error is kept in memory and shown by `switchyard catalog`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::filter::{self, Verdict, catalogued};
use super::listing;
use crate::error::Error;
use crate::raft::Consensus;
use crate::seal::ClusterKey;
use crate::state::{ClusterState, Command, DeadModel, Outcome};

/// The catalog of one endpoint, as `switchyard catalog` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointCatalog {
    /// Endpoint id.
    pub endpoint: String,
    /// Models its listing holds.
    pub listed: usize,
    /// Models it serves (declared, or listed and passing the filter, and not dead).
    pub served: Vec<String>,
    /// Listed models the filter keeps out, and why.
    pub filtered: Vec<Filtered>,
    /// Models an audit verified dead.
    pub dead: Vec<DeadModel>,
    /// The last listing error, when the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A listed model the filter keeps out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filtered {
    /// Upstream model id.
    pub model: String,
    /// Why.
    pub verdict: Verdict,
}

/// What a refresh found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshReport {
    /// Whether any listing changed (and was committed).
    pub changed: bool,
    /// Routing-table revision after the refresh.
    pub revision: u64,
    /// Every catalogued endpoint.
    pub endpoints: Vec<EndpointCatalog>,
}

/// Lists endpoints and commits changes. Cheap to clone.
#[derive(Clone)]
pub struct Catalogue {
    consensus: Consensus,
    key: Option<Arc<ClusterKey>>,
    client: reqwest::Client,
    errors: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Catalogue {
    /// A catalogue writing through `consensus`, opening sealed credentials with `key`.
    pub fn new(consensus: Consensus, key: Option<Arc<ClusterKey>>) -> Self {
        crate::crypto::install_provider();
        Self {
            consensus,
            key,
            client: reqwest::Client::new(),
            errors: Arc::default(),
        }
    }

    /// Lists every catalogued endpoint now and commits the listings that changed.
    pub async fn refresh(&self) -> Result<RefreshReport, Error> {
        let state = self.consensus.state().await;
        let mut commands = Vec::new();
        for endpoint in state.endpoints.values().filter(|e| catalogued(&state, e)) {
            let secret = listing::first_secret(endpoint, self.key.as_deref());
            match listing::list(&self.client, endpoint, secret.as_deref()).await {
                Ok(mut models) => {
                    self.lock().remove(&endpoint.id);
                    models.sort();
                    models.dedup_by(|a, b| a.id == b.id);
                    let stored = state.catalogs.get(&endpoint.id);
                    if stored != Some(&models) && !(stored.is_none() && models.is_empty()) {
                        tracing::info!(endpoint = %endpoint.id, listed = models.len(), "catalog changed");
                        commands.push(Command::PutListing {
                            endpoint_id: endpoint.id.clone(),
                            models,
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.id, error = %e, "cannot list the endpoint's models; keeping its last listing");
                    self.lock().insert(endpoint.id.clone(), e.to_string());
                }
            }
        }
        // Listings of endpoints that went away, or are no longer catalogued.
        for id in state.catalogs.keys() {
            if !state
                .endpoints
                .get(id)
                .is_some_and(|e| catalogued(&state, e))
            {
                commands.push(Command::PutListing {
                    endpoint_id: id.clone(),
                    models: Vec::new(),
                });
            }
        }
        let mut changed = false;
        let mut revision = state.revision;
        for command in commands {
            match self.consensus.write(command).await? {
                Outcome::Changed { revision: r } => {
                    changed = true;
                    revision = r;
                }
                Outcome::Unchanged { revision: r } => revision = r,
                Outcome::Rejected { reason } => return Err(Error::BadRequest(reason)),
                Outcome::WindowGranted { .. } | Outcome::SlotsHeld { .. } => {}
            }
        }
        let state = self.consensus.state().await;
        Ok(RefreshReport {
            changed,
            revision,
            endpoints: self.view(&state),
        })
    }

    /// Every catalogued endpoint's catalog as the state holds it, with the last listing errors.
    pub fn view(&self, state: &ClusterState) -> Vec<EndpointCatalog> {
        let errors = self.lock().clone();
        view(state, &errors)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The catalogs of `state`'s catalogued endpoints. Pure.
pub fn view(state: &ClusterState, errors: &BTreeMap<String, String>) -> Vec<EndpointCatalog> {
    let default_filter = Default::default();
    state
        .endpoints
        .values()
        .filter(|e| catalogued(state, e))
        .map(|e| {
            let listing = state
                .catalogs
                .get(&e.id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let f = state
                .catalog_filters
                .get(&e.id)
                .map_or(&default_filter, |s| &s.filter);
            EndpointCatalog {
                endpoint: e.id.clone(),
                listed: listing.len(),
                served: filter::served(state, e)
                    .iter()
                    .map(|m| m.id.to_string())
                    .collect(),
                filtered: listing
                    .iter()
                    .filter_map(|m| match filter::verdict(f, m) {
                        Verdict::Served => None,
                        verdict => Some(Filtered {
                            model: m.id.clone(),
                            verdict,
                        }),
                    })
                    .collect(),
                dead: state.dead_models.get(&e.id).cloned().unwrap_or_default(),
                error: errors.get(&e.id).cloned(),
            }
        })
        .collect()
}

/// Runs on every voter; while it is the leader, calls `task` every `every` (first at once), so
/// the cluster does it once, wherever the leader is.
pub async fn while_leader<F, Fut>(
    consensus: Consensus,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut task: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut leadership = consensus.watch_leadership();
    loop {
        let is_leader = *leadership.borrow_and_update();
        if is_leader {
            task().await;
        }
        tokio::select! {
            () = tokio::time::sleep(every), if is_leader => {}
            changed = leadership.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Refreshes every `every` while this voter leads.
pub async fn run(catalogue: Catalogue, every: Duration, shutdown: watch::Receiver<bool>) {
    let consensus = catalogue.consensus.clone();
    while_leader(consensus, every, shutdown, || async {
        if let Err(e) = catalogue.refresh().await {
            tracing::warn!(error = %e, "catalog refresh failed");
        }
    })
    .await;
}
