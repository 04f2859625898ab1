//! Switchyard's edge: the stateless OpenAI-compatible `/v1` data plane. It follows the control
//! plane's routing table and forwards each request to an upstream that serves its model.
//!
//! - [`config`]: what an edge is told ([`Config`]).
//! - [`state`]: what handlers share ([`EdgeState`]), including the current table.
//! - [`watch`]: following the control plane's table; [`cache`]: persisting it.
//! - [`routing`]: the compiled table and the pure [`routing::pick`].
//! - [`upstream`]: the request body rewrite and the upstream HTTP client.
//! - [`routes`]: one file per HTTP endpoint, assembled by [`app`].
//! - [`error`]: [`Error`] for running, [`ApiError`] for clients.

pub mod cache;
pub mod config;
pub mod error;
pub mod routes;
pub mod routing;
pub mod state;
pub mod upstream;
pub mod watch;

use std::future::Future;

use tokio::net::TcpListener;
use tracing::info;

pub use config::Config;
pub use error::{ApiError, Error};
pub use routes::app;
pub use state::EdgeState;

/// Runs an edge on `listener` until `shutdown` completes: validates `cfg`, loads the cached
/// table, follows the control plane in the background and serves `/v1` with graceful shutdown.
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    cfg.validate()?;
    let state = EdgeState::new(cfg)?;
    let watcher = tokio::spawn(watch::watch(state.clone()));
    info!(
        addr = ?listener.local_addr().ok(),
        edge = %state.config().edge_name,
        control_plane = %state.config().control_plane,
        "edge serving"
    );
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve);
    watcher.abort();
    info!("edge stopped");
    served
}
