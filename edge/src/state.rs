//! What every request handler shares: config, the current routing table, the upstream client,
//! metrics, the cooldown reporter, the limiter and usage accounting.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use switchyard_proto::v1;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::auth::{self, KeyHash};
use crate::cache;
use crate::config::Config;
use crate::dialect::ollama::Surfaces;
use crate::error::Error;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::report::Reporter;
use crate::routing::RoutingTable;
use crate::upstream::UpstreamClient;
use crate::usage::{self, Usage};

/// How long a request waits for the edge's first routing table before it is refused with
/// `no_routing_table`.
pub const FIRST_TABLE_WAIT: Duration = Duration::from_secs(3);

/// Shared edge state; cloning is cheap and every clone sees the same table.
#[derive(Debug, Clone)]
pub struct EdgeState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: Config,
    table: ArcSwapOption<RoutingTable>,
    /// The wire form of the installed table: the base the control plane's deltas apply to.
    wire: ArcSwapOption<v1::RoutingTable>,
    /// Wakes requests held until the first table arrives.
    first_table: Notify,
    upstream: UpstreamClient,
    bootstrap: Option<KeyHash>,
    metrics: Arc<Metrics>,
    reporter: OnceLock<Reporter>,
    limiter: Limiter,
    ollama: Surfaces,
    usage: Usage,
}

impl EdgeState {
    /// Builds the state with no table, then installs the table from `cfg.table_cache` when that
    /// file exists and decodes (a bad cache is logged and skipped: the control plane will resend).
    pub fn new(cfg: Config) -> Result<Self, Error> {
        let upstream = UpstreamClient::new(cfg.connect_timeout(), cfg.workers)?;
        let tls = cfg.tls_files()?;
        let telemetry = crate::telemetry::Telemetry::from_config(&cfg)?;
        let mut metrics = Metrics::default();
        if let Some(t) = &telemetry {
            metrics.register_telemetry(t);
        }
        let usage = Usage::with_telemetry(
            cfg.usage_accounting,
            usage::flush::Settings {
                control_planes: cfg.control_plane_urls(),
                edge_name: cfg.edge_name.clone(),
                interval: std::time::Duration::from_millis(cfg.usage_flush_ms),
                connect_timeout: cfg.connect_timeout(),
                tls: tls.clone(),
            },
            telemetry,
        );
        metrics.register_usage(&usage);
        let state = Self {
            inner: Arc::new(Inner {
                table: ArcSwapOption::empty(),
                wire: ArcSwapOption::empty(),
                first_table: Notify::new(),
                upstream,
                bootstrap: cfg.bootstrap_key.as_ref().map(|k| auth::hash(k.expose())),
                metrics: Arc::new(metrics),
                usage,
                reporter: OnceLock::new(),
                ollama: Surfaces::default(),
                limiter: Limiter::with_tls(cfg.primary_control_plane(), cfg.edge_name.clone(), tls),
                cfg,
            }),
        };
        if let Some(path) = &state.inner.cfg.table_cache {
            match cache::load(path) {
                Ok(Some(wire)) => {
                    state.install_table(&wire);
                    info!(
                        path = %path.display(),
                        version = wire.version,
                        "loaded cached routing table"
                    );
                }
                Ok(None) => info!(path = %path.display(), "no cached routing table yet"),
                Err(e) => warn!(error = %e, "ignoring unreadable routing-table cache"),
            }
        }
        Ok(state)
    }

    /// Compiles and installs `wire` if it is newer than the held table; returns whether it was.
    /// A table from a different cluster (`cluster_id` changed) replaces the held one whatever
    /// its version.
    pub fn install_table(&self, wire: &v1::RoutingTable) -> bool {
        let mut installed = false;
        self.inner.table.rcu(|current| match current {
            Some(held)
                if held.version >= wire.version
                    && (held.cluster_id == wire.cluster_id || wire.cluster_id.is_empty()) =>
            {
                installed = false;
                Some(Arc::clone(held))
            }
            _ => {
                installed = true;
                Some(Arc::new(RoutingTable::compile(wire, current.as_deref())))
            }
        });
        if installed {
            self.inner.wire.store(Some(Arc::new(wire.clone())));
            self.inner.metrics.set_table_version(wire.version);
            self.inner.first_table.notify_waiters();
        }
        installed
    }

    /// The wire form of the installed table, which deltas apply to.
    pub fn wire_table(&self) -> Option<Arc<v1::RoutingTable>> {
        self.inner.wire.load_full()
    }

    /// The current routing table; before the first one arrives, waits for it at most
    /// [`FIRST_TABLE_WAIT`]. A request sent the moment the edge starts (`switchyard up` and at
    /// once a request) is served instead of refused; once a table is held this never waits.
    pub async fn table_or_wait(&self) -> Option<Arc<RoutingTable>> {
        if let Some(table) = self.table() {
            return Some(table);
        }
        let deadline = tokio::time::Instant::now() + FIRST_TABLE_WAIT;
        loop {
            // Registered before the check, so an install between the two is not missed.
            let notified = self.inner.first_table.notified();
            if let Some(table) = self.table() {
                return Some(table);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.table();
            }
        }
    }

    /// The current routing table, if one was ever installed; never blocks.
    pub fn table(&self) -> Option<Arc<RoutingTable>> {
        self.inner.table.load_full()
    }

    /// The configuration this state was built from.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// The shared upstream client.
    pub(crate) fn upstream(&self) -> &UpstreamClient {
        &self.inner.upstream
    }

    /// The bootstrap key's hash, when one is configured.
    pub fn bootstrap(&self) -> Option<&KeyHash> {
        self.inner.bootstrap.as_ref()
    }

    /// The edge's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Queues a cooldown report to the control plane (starting the reporter on first use).
    pub fn report(&self, cooldown: v1::Cooldown) {
        let cfg = &self.inner.cfg;
        self.inner
            .reporter
            .get_or_init(|| {
                Reporter::spawn_with_tls(
                    cfg.control_plane_urls(),
                    cfg.edge_name.clone(),
                    cfg.connect_timeout(),
                    // Checked when the state was built.
                    cfg.tls_files().ok().flatten(),
                )
            })
            .report(cooldown);
    }

    /// The cluster-wide limiter for client-key limits.
    pub fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// Usage accounting.
    pub fn usage(&self) -> &Usage {
        &self.inner.usage
    }

    /// Which Ollama servers were found without the OpenAI surface (native API fallback).
    pub fn ollama_surfaces(&self) -> &Surfaces {
        &self.inner.ollama
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(version: u64) -> v1::RoutingTable {
        v1::RoutingTable {
            version,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_request_before_the_first_table_waits_for_it() {
        let state = EdgeState::new(Config::default()).unwrap();
        let waiting = tokio::spawn({
            let state = state.clone();
            async move { state.table_or_wait().await.map(|t| t.version) }
        });
        tokio::task::yield_now().await;
        state.install_table(&wire(3));
        assert_eq!(waiting.await.unwrap(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_for_a_first_table_is_bounded() {
        let state = EdgeState::new(Config::default()).unwrap();
        let started = tokio::time::Instant::now();
        assert!(state.table_or_wait().await.is_none());
        assert_eq!(started.elapsed(), FIRST_TABLE_WAIT);
    }

    #[test]
    fn installs_only_newer_tables() {
        let state = EdgeState::new(Config::default()).unwrap();
        assert!(state.table().is_none());
        // (offered version, installed?, held version after)
        let steps = [(2, true, 2), (1, false, 2), (2, false, 2), (5, true, 5)];
        for (offered, installed, held) in steps {
            assert_eq!(
                state.install_table(&wire(offered)),
                installed,
                "offered {offered}"
            );
            assert_eq!(state.table().map(|t| t.version), Some(held));
        }
        let mut other = wire(1);
        other.cluster_id = "another-cluster".into();
        assert!(
            state.install_table(&other),
            "a new cluster resets the version"
        );
        assert_eq!(state.table().map(|t| t.version), Some(1));
    }
}
