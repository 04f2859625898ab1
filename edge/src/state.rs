//! What every request handler shares: config, the current routing table and the upstream client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwapOption;
use switchyard_proto::v1;
use tracing::{info, warn};

use crate::cache;
use crate::config::Config;
use crate::error::Error;
use crate::routing::RoutingTable;
use crate::upstream::UpstreamClient;

/// Shared edge state; cloning is cheap and every clone sees the same table.
#[derive(Debug, Clone)]
pub struct EdgeState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: Config,
    table: ArcSwapOption<RoutingTable>,
    upstream: UpstreamClient,
    turn: AtomicUsize,
}

impl EdgeState {
    /// Builds the state with no table, then installs the table from `cfg.table_cache` when that
    /// file exists and decodes (a bad cache is logged and skipped: the control plane will resend).
    pub fn new(cfg: Config) -> Result<Self, Error> {
        let upstream = UpstreamClient::new(cfg.connect_timeout(), cfg.first_byte_timeout())?;
        let state = Self {
            inner: Arc::new(Inner {
                table: ArcSwapOption::empty(),
                upstream,
                turn: AtomicUsize::new(0),
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
    pub fn install_table(&self, wire: &v1::RoutingTable) -> bool {
        let compiled = Arc::new(RoutingTable::compile(wire));
        let mut installed = false;
        self.inner.table.rcu(|current| match current {
            Some(held) if held.version >= compiled.version => {
                installed = false;
                Some(Arc::clone(held))
            }
            _ => {
                installed = true;
                Some(Arc::clone(&compiled))
            }
        });
        installed
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

    /// A counter that advances per request, so `pick` rotates among equal upstreams.
    pub(crate) fn next_turn(&self) -> usize {
        self.inner.turn.fetch_add(1, Ordering::Relaxed)
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
    }
}
