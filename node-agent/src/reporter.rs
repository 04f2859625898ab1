//! The report stream: scans on a timer, and one long-lived gRPC stream to the control plane that
//! carries Hello, a full snapshot, then updates and heartbeats; re-opened with backoff when it fails.
//!
//! Scanning, GPU sampling and reporting run side by side in one task. The scan loop publishes the
//! reported set of backends on a `watch` channel; each stream session diffs what it last sent
//! against the latest set. So a reconnect needs no replay log: it just sends a fresh snapshot, and
//! changes made while disconnected are never lost. Heartbeats carry the latest GPU sample.
//!
//! With no control plane configured, the agent finds one over mDNS and browses again whenever the
//! addresses it found stop answering. Reconnect delays are jittered so a restarted control plane
//! is not hit by every agent at the same instant.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::{
    AgentMessage, Backend, BackendSnapshot, BackendUpdate, ControlMessage, Gpu, Heartbeat, Hello,
};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tracing::{debug, error, info, warn};

use crate::config::{Config, control_plane_url};
use crate::discovery::control_plane;
use crate::discovery::lifecycle::{Thresholds, Tracker, diff};
use crate::discovery::scan::Scanner;
use crate::error::Error;
use crate::gpu;

/// First reconnect delay; doubles per failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A session that lasted this long counts as healthy even without an Ack, and resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Time allowed for the TCP + HTTP/2 connect to the control plane.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for the control plane to accept the Report call once connected.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings detect a dead control plane even when no heartbeat is due.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long an HTTP/2 ping may go unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Outgoing messages buffered per stream; a scan produces at most one update.
const OUTBOX: usize = 32;

/// Runs the agent until `shutdown` resolves: scans the targets, reports to the control plane, and
/// reconnects (following leader redirects) whenever the stream fails.
///
/// Returns an error only when `cfg` is invalid or the probe client cannot be built.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    cfg.validate()?;
    let scanner = Scanner::new(&cfg)?;
    let mut tracker = Tracker::new(Thresholds {
        fail: cfg.fail_threshold,
        success: cfg.success_threshold,
        remove_after_ms: u64::try_from(cfg.remove_after().as_millis()).unwrap_or(u64::MAX),
    });
    let started = Instant::now();
    let mut shutdown = pin!(shutdown);

    // One scan before connecting, so the first snapshot is real.
    let first = tokio::select! {
        () = &mut shutdown => return Ok(()),
        scan = scanner.scan() => tracker.observe(scan, elapsed_ms(started)),
    };
    log_changes(&first.upserted, &first.removed);
    info!(node = %cfg.node_name, control_plane = %cfg.control_plane, backends = first.upserted.len(), "node agent started");

    // Announce this agent on the LAN (for `switchyard status`); withdrawn when `run` returns.
    let _announcement = if cfg.discovery.mdns {
        let port = tonic::transport::Endpoint::from_shared(control_plane_url(&cfg.control_plane))
            .ok()
            .and_then(|e| e.uri().port_u16())
            .unwrap_or(0);
        match switchyard_mdns::advertise_agent(&cfg.node_name, port) {
            Ok(ad) => Some(ad),
            Err(e) => {
                warn!(
                    error = &e as &dyn std::error::Error,
                    "cannot announce this agent over mDNS"
                );
                None
            }
        }
    } else {
        None
    };

    let (state_tx, state_rx) = watch::channel(tracker.snapshot());
    let (gpu_tx, gpu_rx) = watch::channel(Vec::new());
    tokio::select! {
        () = &mut shutdown => {}
        () = scan_loop(&cfg, &scanner, tracker, started, &state_tx) => {}
        () = gpu_loop(&cfg, &gpu_tx) => {}
        () = report_loop(&cfg, state_rx, gpu_rx) => {}
    }
    info!(node = %cfg.node_name, "node agent stopped");
    Ok(())
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Scans every `scan_interval` forever, publishing the reported set whenever it changes.
async fn scan_loop(
    cfg: &Config,
    scanner: &Scanner,
    mut tracker: Tracker,
    started: Instant,
    state: &watch::Sender<Vec<Backend>>,
) {
    let mut ticker = tokio::time::interval(cfg.scan_interval());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate, and `run` has just scanned.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let scan = scanner.scan().await;
        let changes = tracker.observe(scan, elapsed_ms(started));
        if changes.is_empty() {
            continue;
        }
        log_changes(&changes.upserted, &changes.removed);
        state.send_replace(tracker.snapshot());
    }
}

/// Samples the GPUs every `gpu_interval` and publishes them for heartbeats. Stops sampling (quietly)
/// when the command does not exist; warns once per distinct failure otherwise.
async fn gpu_loop(cfg: &Config, gpus: &watch::Sender<Vec<Gpu>>) {
    if cfg.nvidia_smi.trim().is_empty() {
        return std::future::pending().await;
    }
    // nvidia-smi may hang on a wedged driver; never let it hold a sample past the interval.
    let timeout = cfg.gpu_interval().min(Duration::from_secs(5));
    let mut ticker = tokio::time::interval(cfg.gpu_interval());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        ticker.tick().await;
        match gpu::query(&cfg.nvidia_smi, timeout).await {
            Ok(Some(sample)) => {
                last_error = None;
                gpus.send_if_modified(|current| {
                    let changed = *current != sample;
                    if changed {
                        current.clone_from(&sample);
                    }
                    changed
                });
            }
            Ok(None) => {
                debug!(command = %cfg.nvidia_smi, "no nvidia-smi on this host; reporting no GPUs");
                return std::future::pending().await;
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    warn!(error = %text, "cannot read GPU facts");
                    last_error = Some(text);
                }
            }
        }
    }
}

fn log_changes(upserted: &[Backend], removed: &[String]) {
    for b in upserted {
        let healthy = b.facts.as_ref().is_none_or(|f| f.healthy);
        info!(backend = %b.id, kind = %b.kind, base_url = %b.base_url, models = b.models.len(), healthy, "backend found or changed");
    }
    for id in removed {
        info!(backend = %id, "backend gone");
    }
}

/// Where the next session connects: the configured control plane, or addresses found over mDNS.
#[derive(Debug)]
struct Seeds {
    fixed: Option<String>,
    found: VecDeque<String>,
    warned: bool,
}

impl Seeds {
    fn new(cfg: &Config) -> Self {
        let fixed =
            (!cfg.control_plane.trim().is_empty()).then(|| control_plane_url(&cfg.control_plane));
        Self {
            fixed,
            found: VecDeque::new(),
            warned: false,
        }
    }

    /// The next address to try, browsing mDNS when the found ones are used up.
    async fn next(&mut self) -> Result<String, Error> {
        if let Some(fixed) = &self.fixed {
            return Ok(fixed.clone());
        }
        if self.found.is_empty() {
            match control_plane::find(control_plane::BROWSE_WAIT).await {
                Ok(urls) => {
                    self.warned = false;
                    self.found.extend(urls);
                }
                Err(e) => {
                    if !self.warned {
                        warn!(
                            error = &e as &dyn std::error::Error,
                            "no control plane configured or found; still browsing"
                        );
                        self.warned = true;
                    }
                    return Err(e);
                }
            }
        }
        self.found.pop_front().ok_or(Error::NoControlPlaneFound {
            after: control_plane::BROWSE_WAIT,
        })
    }
}

/// Keeps a report stream open forever: connect, run a session, back off, repeat.
async fn report_loop(
    cfg: &Config,
    mut state: watch::Receiver<Vec<Backend>>,
    gpus: watch::Receiver<Vec<Gpu>>,
) {
    let mut seeds = Seeds::new(cfg);
    let mut next: Option<String> = None;
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut jitter = Jitter::seeded();
    let mut redirected_last = false;
    loop {
        let addr = match next.take() {
            Some(addr) => addr,
            None => match seeds.next().await {
                Ok(addr) => addr,
                Err(_) => {
                    tokio::time::sleep(jitter.apply(backoff.next_delay())).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let mut acked = false;
        let end = session(cfg, &addr, &mut state, &gpus, &mut acked).await;
        // A rejection never counts as healthy, even after an Ack, so a refused agent keeps backing off.
        let healthy = acked || started.elapsed() >= HEALTHY_AFTER;
        if healthy && !matches!(end, End::Rejected(_)) {
            backoff.reset();
        }
        match end {
            End::Redirect(leader) => {
                let to = control_plane_url(&leader);
                info!(from = %addr, to = %to, "following leader redirect");
                next = Some(to);
                // Follow the first hop at once; a second redirect in a row may be stale voters
                // pointing at each other, so that one waits its backoff.
                if !redirected_last {
                    redirected_last = true;
                    continue;
                }
            }
            End::Rejected(reason) => {
                redirected_last = false;
                let delay = jitter.apply(backoff.next_delay());
                error!(control_plane = %addr, reason = %reason, retry_in_ms = delay.as_millis() as u64, "control plane rejected the agent");
                next = Some(addr);
                tokio::time::sleep(delay).await;
                continue;
            }
            End::Failed(err) => {
                redirected_last = false;
                let delay = jitter.apply(backoff.next_delay());
                warn!(control_plane = %addr, error = &err as &dyn std::error::Error, retry_in_ms = delay.as_millis() as u64, "report stream down");
                // A leader hint is only a hint: when it fails, start over from the configured (or
                // next discovered) address, which redirects to whoever leads now.
                tokio::time::sleep(delay).await;
                continue;
            }
        }
        let delay = jitter.apply(backoff.next_delay());
        debug!(control_plane = %addr, retry_in_ms = delay.as_millis() as u64, "pacing repeated redirects");
        tokio::time::sleep(delay).await;
    }
}

/// How a session ended.
#[derive(Debug)]
enum End {
    /// The control plane named the leader to report to instead.
    Redirect(String),
    /// The control plane refused the agent.
    Rejected(String),
    /// The connection or stream failed.
    Failed(Error),
}

/// One report stream: Hello and a snapshot, then updates, heartbeats and control messages until it
/// ends. Sets `acked` once the control plane acknowledges anything.
///
/// The steps: connect to `addr`, open the stream with Hello and the snapshot, then exchange
/// messages until the stream ends.
async fn session(
    cfg: &Config,
    addr: &str,
    state: &mut watch::Receiver<Vec<Backend>>,
    gpus: &watch::Receiver<Vec<Gpu>>,
    acked: &mut bool,
) -> End {
    let (channel, addresses) = match connect(cfg, addr).await {
        Ok(connected) => connected,
        Err(end) => return end,
    };
    let sent = state.borrow_and_update().clone();
    let (tx, inbound) = match open(cfg, addr, channel, addresses, &sent).await {
        Ok(open) => open,
        Err(end) => return end,
    };
    info!(control_plane = %addr, backends = sent.len(), "report stream open; sent hello and snapshot");
    exchange(cfg, addr, Stream { tx, inbound, sent }, state, gpus, acked).await
}

/// Step 1: a channel to the control plane at `addr` (over mutual TLS when configured), and the
/// local addresses Hello reports.
async fn connect(
    cfg: &Config,
    addr: &str,
) -> Result<(tonic::transport::Channel, Vec<String>), End> {
    let tls = cfg.tls_files().map_err(End::Failed)?;
    let endpoint = match switchyard_proto::tls::endpoint(addr, tls.as_ref()) {
        Ok(e) => e,
        Err(switchyard_proto::tls::TlsError::Url { source, .. }) => {
            return Err(End::Failed(Error::InvalidAddress {
                addr: addr.to_owned(),
                source,
            }));
        }
        Err(other) => return Err(End::Failed(crate::config::tls_invalid(other))),
    };
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let addresses = local_addresses(&endpoint).await;
    let channel = endpoint.connect().await.map_err(|source| {
        End::Failed(Error::Connect {
            addr: addr.to_owned(),
            source,
        })
    })?;
    Ok((channel, addresses))
}

/// Step 2: opens the Report call with Hello and the snapshot of `sent` as its first messages.
async fn open(
    cfg: &Config,
    addr: &str,
    channel: tonic::transport::Channel,
    addresses: Vec<String>,
    sent: &[Backend],
) -> Result<(mpsc::Sender<AgentMessage>, tonic::Streaming<ControlMessage>), End> {
    let mut client = AgentServiceClient::new(channel);
    // Hello and the snapshot are queued before the call opens, so they are the stream's first messages.
    let (tx, rx) = mpsc::channel(OUTBOX);
    let hello = AgentBody::Hello(Hello {
        node_name: cfg.node_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        join_token: cfg.join_token.clone(),
        addresses,
    });
    let snapshot = AgentBody::Snapshot(BackendSnapshot {
        backends: sent.to_vec(),
    });
    for body in [hello, snapshot] {
        if let Err(e) = tx.try_send(AgentMessage { body: Some(body) }) {
            // Unreachable with a fresh channel of OUTBOX slots, but never drop a message silently.
            error!(error = %e, "cannot queue opening message");
        }
    }
    let opened = tokio::time::timeout(OPEN_TIMEOUT, client.report(ReceiverStream::new(rx))).await;
    match opened {
        Ok(Ok(response)) => Ok((tx, response.into_inner())),
        Ok(Err(source)) => Err(End::Failed(Error::Stream {
            addr: addr.to_owned(),
            source,
        })),
        Err(_) => Err(End::Failed(Error::OpenTimeout {
            addr: addr.to_owned(),
            after: OPEN_TIMEOUT,
        })),
    }
}

/// An open report stream: what goes out, what comes in, and the backends last sent.
struct Stream {
    tx: mpsc::Sender<AgentMessage>,
    inbound: tonic::Streaming<ControlMessage>,
    sent: Vec<Backend>,
}

/// Step 3: heartbeats, updates and the control plane's answers until the stream ends.
async fn exchange(
    cfg: &Config,
    addr: &str,
    stream: Stream,
    state: &mut watch::Receiver<Vec<Backend>>,
    gpus: &watch::Receiver<Vec<Gpu>>,
    acked: &mut bool,
) -> End {
    let Stream {
        tx,
        mut inbound,
        mut sent,
    } = stream;
    let closed = || {
        End::Failed(Error::StreamClosed {
            addr: addr.to_owned(),
        })
    };
    let mut heartbeat = tokio::time::interval(cfg.heartbeat_interval());
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut seq = 0u64;
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(ControlMessage { body: Some(ControlBody::Ack(ack)) })) => {
                    *acked = true;
                    debug!(control_plane = %addr, applied_version = ack.applied_version, "report acknowledged");
                }
                Ok(Some(ControlMessage { body: Some(ControlBody::Redirect(r)) })) => {
                    if r.leader_addr.trim().is_empty() {
                        return End::Failed(Error::NoLeader { addr: addr.to_owned() });
                    }
                    return End::Redirect(r.leader_addr);
                }
                Ok(Some(ControlMessage { body: Some(ControlBody::Rejected(r)) })) => {
                    return End::Rejected(r.reason);
                }
                Ok(Some(ControlMessage { body: None })) => {
                    debug!(control_plane = %addr, "ignoring empty control message");
                }
                Ok(None) => return closed(),
                Err(source) => return End::Failed(Error::Stream { addr: addr.to_owned(), source }),
            },
            _ = heartbeat.tick() => {
                seq += 1;
                let gpus = gpus.borrow().clone();
                let msg = AgentMessage { body: Some(AgentBody::Heartbeat(Heartbeat { seq, gpus })) };
                if tx.send(msg).await.is_err() {
                    return closed();
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    // The scan loop owns the sender and never ends while `run` is running.
                    return End::Failed(Error::ScannerStopped);
                }
                let current = state.borrow_and_update().clone();
                let changes = diff(&sent, &current);
                if changes.is_empty() {
                    continue;
                }
                let update = AgentBody::Update(BackendUpdate {
                    upserted: changes.upserted,
                    removed: changes.removed,
                });
                if tx.send(AgentMessage { body: Some(update) }).await.is_err() {
                    return closed();
                }
                sent = current;
            }
        }
    }
}

/// The local address this host uses to reach the control plane, for Hello's `addresses`.
///
/// Connecting a UDP socket sends nothing; it only asks the kernel which source address it would use.
async fn local_addresses(endpoint: &Endpoint) -> Vec<String> {
    let uri = endpoint.uri();
    let Some(host) = uri.host() else {
        return Vec::new();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let target: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            debug!(host = %host, error = %e, "cannot resolve control plane for local address");
            return Vec::new();
        }
    };
    let Some(target) = target.first() else {
        return Vec::new();
    };
    let any = if target.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let local = async {
        let socket = tokio::net::UdpSocket::bind((any, 0)).await?;
        socket.connect(target).await?;
        socket.local_addr()
    };
    match local.await {
        Ok(local) => vec![local.ip().to_string()],
        Err(e) => {
            debug!(error = %e, "cannot determine local address");
            Vec::new()
        }
    }
}

/// Capped exponential backoff: `min`, doubling per failure up to `max`; `reset` after a healthy
/// connection.
#[derive(Debug, Clone)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Spreads reconnect delays over [delay/2, delay] (equal jitter) so agents that lost the same
/// control plane do not all return at the same instant. A xorshift64 seeded from the clock and pid.
#[derive(Debug, Clone)]
struct Jitter {
    state: u64,
}

impl Jitter {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    fn new(seed: u64) -> Self {
        // Xorshift must never hold zero.
        Self { state: seed | 1 }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn apply(&mut self, delay: Duration) -> Duration {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let half = ms / 2;
        let spread = ms - half;
        Duration::from_millis(half + self.next_u64() % (spread + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full_and_varies() {
        let mut jitter = Jitter::new(42);
        let ms = Duration::from_millis;
        let delays: Vec<Duration> = (0..200).map(|_| jitter.apply(ms(1000))).collect();
        assert!(
            delays.iter().all(|d| *d >= ms(500) && *d <= ms(1000)),
            "{delays:?}"
        );
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 50, "jitter barely varies: {distinct:?}");
        assert_eq!(Jitter::new(0).apply(ms(0)), ms(0));
        // Two agents seeded differently pick different delays.
        let a: Vec<_> = (0..5).map(|_| Jitter::new(1).apply(ms(1000))).collect();
        let mut b = Jitter::new(2);
        assert_ne!(a[0], b.apply(ms(1000)));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(200), ms(10_000));
        let got: Vec<u128> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(
            got,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        b.reset();
        assert_eq!(b.next_delay(), ms(200));
    }
}
