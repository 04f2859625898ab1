//! Switchyard's edge: the stateless OpenAI-compatible `/v1` data plane. It follows the control
//! plane's routing table and forwards each request to an upstream that serves its model.
//!
//! - [`config`]: what an edge is told ([`Config`]); [`auth`]: client keys.
//! - [`state`]: what handlers share ([`EdgeState`]), including the current table.
//! - [`watch`]: following the control plane's table; [`cache`]: persisting it.
//! - [`repeats`]: logging a condition that repeats once, then once a minute, then its end.
//! - [`routing`]: the compiled table and the pure [`routing::pick`].
//! - [`upstream`]: the request body rewrite and the upstream HTTP client.
//! - [`routes`]: the HTTP endpoints, assembled by [`app`] (the `/v1` POSTs go to [`routes::forward`]).
//! - [`metrics`]: Prometheus metrics; [`report`]: cooldown reports to the control plane.
//! - [`usage`]: usage accounting, flushed to the control plane in batches.
//! - [`telemetry`]: the optional usage webhook, request log and OTLP traces.
//! - [`server`]: the HTTP server loop with its connection cap and header, idle and body timeouts.
//! - [`error`]: [`Error`] for running, [`ApiError`] for clients.

pub mod auth;
pub mod cache;
pub mod config;
pub mod dialect;
pub mod engine;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod repeats;
pub mod report;
pub mod routes;
pub mod routing;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod upstream;
pub mod usage;
pub mod watch;
pub mod worker;

use std::future::Future;

use tokio::net::TcpListener;
use tracing::{info, warn};

pub use config::Config;
pub use error::{ApiError, Error};
pub use routes::app;
pub use server::{ServeOptions, serve, serve_with_tls};
pub use state::EdgeState;

/// Runs an edge on `listener` until `shutdown` completes: validates `cfg`, loads the cached
/// table, follows the control plane in the background and serves `/v1` with graceful shutdown
/// (in-flight responses, streams included, finish first) and the configured connection timeouts.
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    cfg.validate()?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    cfg.validate_listen(addr)?;
    let state = EdgeState::new(cfg)?;
    if state.bootstrap().is_none() && state.table().is_none_or(|t| t.keys.is_empty()) {
        warn!(
            addr = %addr,
            "NO CLIENT KEYS ARE CONFIGURED: /v1 serves WITHOUT AUTHENTICATION until the cluster \
             has a key; create one or set SWITCHYARD_BOOTSTRAP_KEY"
        );
    }
    let watcher = tokio::spawn(watch::watch(state.clone()));
    info!(
        addr = ?listener.local_addr().ok(),
        edge = %state.config().edge_name,
        control_plane = %state.config().control_plane,
        https = state.config().https_cert.is_some(),
        "edge serving"
    );
    let options = ServeOptions::from(state.config());
    let tls = state.config().https_acceptor()?;
    let served = serve_with_tls(listener, app(state.clone()), options, tls, shutdown).await;
    watcher.abort();
    // What was counted since the last flush goes now, not with the process.
    if tokio::time::timeout(std::time::Duration::from_secs(5), state.usage().flush_now())
        .await
        .is_err()
    {
        warn!("usage not reported at shutdown: no control plane answered in time");
    }
    if let Some(telemetry) = state.usage().telemetry()
        && !telemetry.flush_now(std::time::Duration::from_secs(5)).await
    {
        warn!("telemetry events not delivered at shutdown: a receiver did not take them in time");
    }
    info!("edge stopped");
    served
}
