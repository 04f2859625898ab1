//! Following the control plane's routing table: one long-lived gRPC watch on one voter at a
//! time. When that voter fails, stalls (HTTP/2 keepalive) or ends the stream because it lost
//! contact with the leader, the edge moves to the next configured voter at once; after a whole
//! round of voters failed it waits with capped exponential backoff. The last table keeps
//! serving while no voter answers.
//!
//! After the first table a voter sends deltas, which apply to the wire table held (a delta that
//! does not fit it, after a gap, makes the edge ask that voter for the whole table again).

use std::time::{Duration, Instant};

use prost::Message;
use switchyard_proto::delta;
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use switchyard_proto::v1::{self, WatchRoutingTableRequest};
use tracing::{debug, info, warn};

use crate::cache;
use crate::error::Error;
use crate::repeats::Repeats;
use crate::state::EdgeState;

/// First reconnect delay after the watch fails.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between two rounds over the voters: a control plane that comes back (after an
/// outage, or an election during which every voter refuses to serve) is noticed within this.
/// Kept well under the revocation bound, as an election takes most of it: a round that fails
/// costs each voter one refused call.
const BACKOFF_CAP: Duration = Duration::from_millis(250);
/// How often the watch connection is pinged, and how long a ping may go unanswered: a voter
/// that is paused or cut off without closing its connection is left within their sum.
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Routing tables grow with models and endpoints; tonic's 4 MiB default is too tight for big sites.
const MAX_TABLE_BYTES: usize = 64 * 1024 * 1024;
/// How often a control plane that stays unreachable is logged again (with a count of the rounds
/// left out): once per retry would be twice a second.
const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Capped exponential backoff: doubles from `start` up to `cap`, back to `start` on `reset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    start: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff whose first delay is `start` and whose delays never exceed `cap`.
    pub fn new(start: Duration, cap: Duration) -> Self {
        Self {
            start,
            cap,
            next: start.min(cap),
        }
    }

    /// The delay to wait now; the following one doubles, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.cap);
        delay
    }

    /// Starts over from the first delay (after a watch that worked).
    pub fn reset(&mut self) {
        self.next = self.start.min(self.cap);
    }
}

/// Watches the control plane forever, installing each newer table into `state` and persisting it
/// to the configured cache. Returns only when its task is aborted.
pub async fn watch(state: EdgeState) {
    let voters = state.config().control_plane_urls();
    if voters.is_empty() {
        warn!("no control-plane URL configured; serving the cached table only");
        return;
    }
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_CAP);
    let mut next = 0;
    let mut outage = Repeats::new(OUTAGE_LOG_INTERVAL);
    loop {
        let mut served = false;
        let mut last_error = None;
        for attempt in 0..voters.len() {
            let i = (next + attempt) % voters.len();
            let url = &voters[i];
            let (received, ended) = follow(&state, url, &mut outage).await;
            match ended {
                Ok(()) => info!(control_plane = %url, "routing-table watch ended"),
                Err(e) => {
                    debug!(control_plane = %url, error = %e, cause = ?std::error::Error::source(&e), "routing-table watch failed; trying the next voter");
                    last_error = Some((url.clone(), e));
                }
            }
            if received {
                // That voter worked until now: start the next round after it, without waiting.
                served = true;
                next = i + 1;
                backoff.reset();
                break;
            }
        }
        if !served
            && let Some((url, e)) = last_error
            && let Some(line) = outage.occurred(Instant::now())
        {
            warn!(
                voters = voters.len(),
                held_version = state.table().map_or(0, |t| t.version),
                last_control_plane = %url,
                error = %e,
                cause = ?std::error::Error::source(&e),
                rounds = line.times,
                for_s = line.lasted.as_secs(),
                "no control-plane voter serves the routing table; serving the last table meanwhile"
            );
        }
        if served {
            continue;
        }
        let delay = backoff.next_delay();
        debug!(
            delay_ms = delay.as_millis() as u64,
            voters = voters.len(),
            "no control-plane voter answered; waiting before the next round"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Runs one watch stream on the voter at `url` until it ends or fails. Says whether any table
/// arrived, and how the stream ended. The first table ends an `outage` under way.
async fn follow(state: &EdgeState, url: &str, outage: &mut Repeats) -> (bool, Result<(), Error>) {
    let mut received = false;
    let ended = follow_stream(state, url, &mut received, outage).await;
    (received, ended)
}

async fn follow_stream(
    state: &EdgeState,
    url: &str,
    received: &mut bool,
    outage: &mut Repeats,
) -> Result<(), Error> {
    let cfg = state.config();
    let connect_err = |source| Error::ControlPlaneConnect {
        url: url.to_owned(),
        source,
    };
    let channel = cfg
        .control_plane_endpoint(url)?
        .connect_timeout(cfg.connect_timeout())
        // Keepalives notice a voter that vanished or stopped without closing the connection.
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(connect_err)?;
    let mut client = EdgeServiceClient::new(channel).max_decoding_message_size(MAX_TABLE_BYTES);
    // Deltas apply to the wire table the edge holds; without one, the voter sends it in full.
    let held = state.wire_table();
    let mut since_version = held.as_ref().map_or(0, |t| t.version);
    let cluster_id = held.map(|t| t.cluster_id.clone()).unwrap_or_default();
    loop {
        let request = WatchRoutingTableRequest {
            since_version,
            edge_name: cfg.edge_name.clone(),
            deltas: true,
            cluster_id: cluster_id.clone(),
        };
        let stream = client
            .watch_routing_table(request)
            .await
            .map_err(|s| Error::ControlPlaneWatch(Box::new(s)))?
            .into_inner();
        info!(control_plane = %url, since_version, "watching routing table");
        match follow_messages(state, url, stream, received, outage).await? {
            Followed::Ended => return Ok(()),
            // A delta that does not fit the held table: ask this voter for the whole table.
            Followed::Gap => since_version = 0,
        }
    }
}

/// How a table stream stopped without an error.
enum Followed {
    /// The voter ended it.
    Ended,
    /// A delta did not apply to the held table.
    Gap,
}

/// Installs every table the stream from `url` brings, applying deltas to the held wire table.
/// The first table ends an `outage` under way.
async fn follow_messages(
    state: &EdgeState,
    url: &str,
    mut stream: tonic::Streaming<v1::RoutingTable>,
    received: &mut bool,
    outage: &mut Repeats,
) -> Result<Followed, Error> {
    let cfg = state.config();
    while let Some(message) = stream
        .message()
        .await
        .map_err(|s| Error::ControlPlaneWatch(Box::new(s)))?
    {
        if !*received && let Some(end) = outage.ended(Instant::now()) {
            info!(
                control_plane = %url,
                failed_rounds = end.times,
                for_s = end.lasted.as_secs(),
                "a control-plane voter serves the routing table again"
            );
        }
        *received = true;
        let delta_bytes = message.delta.is_some().then(|| message.encoded_len());
        let wire = if delta_bytes.is_some() {
            let applied = match state.wire_table() {
                Some(held) => delta::apply(&held, &message),
                None => Err(delta::DeltaError::Gap {
                    base: message.delta.as_ref().map_or(0, |d| d.base_version),
                    held: 0,
                }),
            };
            match applied {
                Ok(wire) => wire,
                Err(e) => {
                    info!(version = message.version, error = %e, "routing-table delta does not apply; resyncing");
                    return Ok(Followed::Gap);
                }
            }
        } else {
            message
        };
        if !state.install_table(&wire) {
            debug!(
                version = wire.version,
                "ignoring routing table that is not newer than the held one"
            );
            continue;
        }
        info!(
            version = wire.version,
            models = wire.models.len(),
            endpoints = wire.endpoints.len(),
            delta_bytes,
            "installed routing table"
        );
        if let Some(path) = &cfg.table_cache
            && let Err(e) = cache::store(path, &wire).await
        {
            warn!(
                version = wire.version,
                error = %e,
                "cannot persist routing table; serving it anyway"
            );
        }
    }
    Ok(Followed::Ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
