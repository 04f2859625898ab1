//! The edge's HTTP server: accepts connections (capped), serves HTTP/1.1 and HTTP/2 with
//! hyper, and closes connections that dawdle: headers slower than the header timeout, idle
//! keep-alive connections, request bodies slower than the body timeout, and clients that read
//! nothing of a response for the idle timeout. A request in progress whose client keeps reading
//! (a long stream) is never cut. Shutdown stops accepting and lets in-flight responses finish.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a keep-alive connection
//! waits for its next request (so idle and header time could not differ), and hyper-util's
//! protocol detection reads with no timer at all. The [`verdict`] below decides instead, from
//! what the connection did and when.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Version};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower::Service as _;
use tracing::{debug, warn};

use crate::config::Config;
use crate::error::Error;
use crate::routes::App;

/// How the server treats its connections; [`ServeOptions::from`] a [`Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Time to send a request's headers, from the connection's start or a later request's first byte.
    pub header_read_timeout: Duration,
    /// Time a connection may idle between requests, or stall a response write.
    pub idle_timeout: Duration,
    /// Time to send a request's body after its headers.
    pub body_read_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Threads serving connections, each with its own event loop; 0 means one per CPU.
    pub workers: usize,
}

impl From<&Config> for ServeOptions {
    fn from(cfg: &Config) -> Self {
        Self {
            header_read_timeout: cfg.header_read_timeout(),
            idle_timeout: cfg.idle_timeout(),
            body_read_timeout: cfg.body_read_timeout(),
            max_connections: cfg.max_connections,
            workers: cfg.workers,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for in-flight
/// responses (streams included) to finish. Every accepted connection has `TCP_NODELAY`.
///
/// The caller's runtime only accepts. Each connection is handed to one of `workers` threads,
/// each running its own single-threaded event loop (and, through [`crate::worker::index`], its own
/// upstream connection pool), as Envoy's and nginx's workers do: a request is then served on
/// one thread from client read to client write. On tokio's shared work-stealing pool, reading
/// a request body wakes the connection's own task, which hands it to the other idle worker on
/// every request; at one connection that ping-pong cost as much CPU as the request itself.
pub async fn serve(
    listener: TcpListener,
    app: App,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_with_tls(listener, app, options, None, shutdown).await
}

/// [`serve`], over HTTPS when `tls` is given: each connection's handshake runs on its worker,
/// within the header timeout, before hyper sees a byte.
pub async fn serve_with_tls(
    listener: TcpListener,
    app: App,
    options: ServeOptions,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    // Each connection holds a receiver; `closed()` on the sender resolves when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = start_workers(options, &app, tls, &stop_rx)?;
    let mut next = 0;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    warn!(error = %e, "cannot accept a client connection; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY on a client connection");
        }
        // Off this runtime's reactor, onto the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                debug!(error = %e, "cannot hand a client connection to a worker");
                continue;
            }
        };
        next = (next + 1) % workers.len();
        if workers[next]
            .connections
            .send((stream, peer, slot))
            .is_err()
        {
            warn!(
                worker = next,
                "an edge worker has stopped; closing the connection"
            );
        }
    }
    drop(listener);
    drop(stop_rx);
    // Workers stop taking connections and let theirs finish.
    let threads: Vec<_> = workers.into_iter().map(|w| w.thread).collect();
    let _receivers_remain = stop_tx.send(true);
    stop_tx.closed().await;
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            if thread.join().is_err() {
                warn!("an edge worker panicked");
            }
        }
    });
    if joined.await.is_err() {
        warn!("could not wait for the edge workers");
    }
    Ok(())
}

/// A connection handed to a worker, with its place under the connection cap.
type Handoff = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// The connection builders: one per protocol, and one that reads the protocol itself (see
/// [`protocol`]).
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    detect: auto::Builder<TokioExecutor>,
}

/// A worker thread and the way to hand it connections.
struct Worker {
    connections: mpsc::UnboundedSender<Handoff>,
    thread: std::thread::JoinHandle<()>,
}

fn start_workers(
    options: ServeOptions,
    app: &App,
    tls: Option<TlsAcceptor>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<Worker>, Error> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(Builders {
        h1: builder.clone().http1_only(),
        h2: builder.clone().http2_only(),
        detect: builder,
    });
    (0..crate::worker::count(options.workers))
        .map(|index| {
            let (connections, inbox) = mpsc::unbounded_channel();
            let (builder, app, stop) = (builder.clone(), app.clone(), stop.clone());
            let tls = tls.clone();
            let thread = std::thread::Builder::new()
                .name(format!("edge-worker-{index}"))
                .spawn(move || worker(index, inbox, &builder, &app, options, tls, stop))
                .map_err(Error::Serve)?;
            Ok(Worker {
                connections,
                thread,
            })
        })
        .collect()
}

/// One worker: a single-threaded runtime serving the connections it is handed until the
/// acceptor stops, then until they have all finished.
fn worker(
    index: usize,
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    builder: &Arc<Builders>,
    app: &App,
    options: ServeOptions,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    crate::worker::enter(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            warn!(worker = index, error = %e, "cannot start an edge worker");
            return;
        }
    };
    runtime.block_on(async move {
        let mut running = tokio::task::JoinSet::new();
        while let Some((stream, peer, slot)) = inbox.recv().await {
            while running.try_join_next().is_some() {}
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    debug!(error = %e, "cannot serve a client connection");
                    continue;
                }
            };
            let (builder, app, stop) = (builder.clone(), app.clone(), stop.clone());
            let tls = tls.clone();
            running.spawn(async move {
                let reason = connection(stream, tls, &builder, app, options, stop).await;
                debug!(peer = %peer, reason = reason.as_str(), "client connection closed");
                drop(slot);
            });
        }
        drop(stop);
        while running.join_next().await.is_some() {}
    });
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The client or hyper ended it (including errors).
    Ended,
    /// The request headers took longer than the header timeout.
    HeaderTimeout,
    /// No request for the idle timeout.
    IdleTimeout,
    /// A response write waited on the client for the idle timeout.
    WriteStalled,
    /// The TLS handshake failed.
    Handshake,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ended => "ended",
            Self::HeaderTimeout => "header timeout",
            Self::IdleTimeout => "idle timeout",
            Self::WriteStalled => "write stalled",
            Self::Handshake => "TLS handshake failed",
        }
    }
}

async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    builders: &Builders,
    app: App,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) -> Closed {
    let clock = Arc::new(ConnClock::new());
    let Some(tls) = tls else {
        let builder = {
            let watchdog = clock.watch(options);
            let mut watchdog = std::pin::pin!(watchdog);
            if *stop.borrow() {
                // Draining: a connection that has sent nothing yet is closed at once.
                return Closed::Ended;
            }
            tokio::select! {
                biased;
                protocol = protocol(&stream) => match protocol {
                    Some(Protocol::H1) => &builders.h1,
                    Some(Protocol::H2) => &builders.h2,
                    Some(Protocol::Undecided) => &builders.detect,
                    None => return Closed::Ended,
                },
                reason = &mut watchdog => return reason,
                _ = stop.changed() => return Closed::Ended,
            }
        };
        let io = TokioIo::new(WatchedIo {
            inner: Some(stream),
            clock: clock.clone(),
        });
        return serve_io(io, clock, builder, app, options, stop).await;
    };
    let io = WatchedIo {
        inner: Some(stream),
        clock: clock.clone(),
    };
    // The watchdog starts with hyper, so the handshake has its own bound: the header timeout.
    match tokio::time::timeout(options.header_read_timeout, tls.accept(io)).await {
        // Encrypted bytes cannot be peeked at: ALPN and hyper-util's detection tell HTTP/1
        // from HTTP/2.
        Ok(Ok(io)) => {
            serve_io(
                TokioIo::new(io),
                clock,
                &builders.detect,
                app,
                options,
                stop,
            )
            .await
        }
        Ok(Err(e)) => {
            debug!(error = %e, "TLS handshake with a client failed");
            Closed::Handshake
        }
        Err(_) => Closed::HeaderTimeout,
    }
}

/// Serves one connection's requests until it ends, the watchdog closes it, or shutdown.
async fn serve_io<I>(
    io: TokioIo<I>,
    clock: Arc<ConnClock>,
    builder: &auto::Builder<TokioExecutor>,
    app: App,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) -> Closed
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_clock = clock.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut app = app.clone();
        let guard = service_clock.start_request(request.version() == Version::HTTP_2);
        let timed_out = Arc::new(AtomicBool::new(false));
        let request = request.map(|body| {
            Body::new(TimedBody::new(
                body,
                options.body_read_timeout,
                timed_out.clone(),
                service_clock.clone(),
            ))
        });
        async move {
            let response = match app.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let response = if timed_out.load(Ordering::Acquire) {
                body_timeout_response(options.body_read_timeout)
            } else {
                response
            };
            Ok::<_, Infallible>(response.map(|body| TrackedBody {
                inner: body,
                _guard: guard,
            }))
        }
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let watchdog = clock.watch(options);
    let mut watchdog = std::pin::pin!(watchdog);
    let mut draining = *stop.borrow_and_update();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            // In order: the connection is polled at every wake-up, the rest rarely matter.
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "client connection failed");
                }
                return Closed::Ended;
            }
            reason = &mut watchdog => return reason,
            changed = stop.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    H1,
    H2,
    /// A part of the HTTP/2 preface only: hyper-util reads the rest.
    Undecided,
}

/// The client preface every HTTP/2 connection starts with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells HTTP/1 from HTTP/2 by peeking at the first bytes, once per connection; `None` when
/// the client closed or failed first. hyper-util's own detection reads those bytes instead
/// and hands them to hyper's HTTP/1 reader as a 24-byte first read, after which the reader's
/// next 8 KiB reservation doubles its buffer to 16 KiB for the connection's whole life: the
/// largest part of an idle keep-alive connection's memory. A peek leaves them in the socket.
async fn protocol(stream: &TcpStream) -> Option<Protocol> {
    let mut first = [0u8; H2_PREFACE.len()];
    let n = stream.peek(&mut first).await.ok()?;
    Some(match n {
        0 => return None,
        _ if first[..n] != H2_PREFACE[..n] => Protocol::H1,
        _ if n == H2_PREFACE.len() => Protocol::H2,
        // Peeking again would return the same bytes at once until more come: let hyper-util
        // read (a rare client splitting the preface costs only the larger buffer).
        _ => Protocol::Undecided,
    })
}

/// The OpenAI-shaped 408 for a body that did not arrive in time; the connection is closed.
fn body_timeout_response(limit: Duration) -> Response {
    let message = format!(
        "the request body did not arrive within {} ms",
        limit.as_millis()
    );
    let body = crate::error::error_json(
        &message,
        "invalid_request_error",
        None,
        Some("request_timeout"),
    );
    let mut response = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What a connection has done, as the watchdog sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Requests whose response has not been sent completely.
    pub busy: usize,
    /// When the headers now being read started (ms), while no request is in progress.
    pub head_since: Option<u64>,
    /// When the connection last became idle (ms).
    pub idle_since: u64,
    /// Since when a response write has waited on the client (ms).
    pub write_blocked_since: Option<u64>,
}

/// What the watchdog does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Close the connection.
    Close(Closed),
    /// Look again at this time (ms), or sooner when woken.
    CheckAt(u64),
}

/// Decides, at `now` (ms), whether a connection has overstayed; pure.
pub fn verdict(a: &Activity, now: u64, options: &ServeOptions) -> Verdict {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (idle, header) = (ms(options.idle_timeout), ms(options.header_read_timeout));
    let due = |since: u64, limit: u64, why: Closed| {
        let at = since.saturating_add(limit);
        if now >= at {
            Verdict::Close(why)
        } else {
            Verdict::CheckAt(at)
        }
    };
    if a.busy > 0 {
        // A write stall is not announced (that would cost a wake-up per blocked write), so a
        // busy connection is looked at every half idle timeout: a stall is always seen before
        // it is due, and closed once no write went through for the idle timeout.
        return match a.write_blocked_since {
            Some(since) => match due(since, idle, Closed::WriteStalled) {
                Verdict::CheckAt(at) => Verdict::CheckAt(at.min(now.saturating_add(idle / 2))),
                close => close,
            },
            None => Verdict::CheckAt(now.saturating_add((idle / 2).max(1))),
        };
    }
    match a.head_since {
        Some(since) => due(since, header, Closed::HeaderTimeout),
        // A head that starts now is not announced (that would cost a wake-up per request), so
        // an idle connection is looked at at least every header timeout: a head is seen within
        // that time of its start, and closed exactly when due.
        None => match due(a.idle_since, idle, Closed::IdleTimeout) {
            Verdict::CheckAt(at) => Verdict::CheckAt(at.min(now.saturating_add(header.max(1)))),
            close => close,
        },
    }
}

/// One connection's activity, updated by its IO and its requests, read by its watchdog.
struct ConnClock {
    start: Instant,
    busy: AtomicUsize,
    /// 0: not reading a head; otherwise its start in ms + 1.
    head_since: AtomicU64,
    idle_since: AtomicU64,
    /// 0: no write waiting; otherwise since when in ms + 1.
    write_blocked_since: AtomicU64,
    /// The client spoke HTTP/2: its frames between requests (pings, settings) are not heads.
    h2: AtomicBool,
    /// A request body was left unread (refused as too large, or timed out): the socket is
    /// drained a little before it closes, so the client can read the error instead of a reset.
    unread_body: AtomicBool,
}

impl ConnClock {
    /// A new connection is reading its first request's headers.
    fn new() -> Self {
        Self {
            start: Instant::now(),
            busy: AtomicUsize::new(0),
            head_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            unread_body: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn activity(&self) -> Activity {
        let stamp = |v: u64| v.checked_sub(1);
        Activity {
            busy: self.busy.load(Ordering::Acquire),
            head_since: stamp(self.head_since.load(Ordering::Acquire)),
            idle_since: self.idle_since.load(Ordering::Acquire),
            write_blocked_since: stamp(self.write_blocked_since.load(Ordering::Acquire)),
        }
    }

    /// Bytes arrived: on an idle HTTP/1 connection they start the next request's head.
    fn on_read(&self) {
        if self.busy.load(Ordering::Acquire) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since
                .store(self.now_ms().saturating_add(1), Ordering::Release);
        }
    }

    fn on_write(&self, blocked: bool) {
        let current = self.write_blocked_since.load(Ordering::Relaxed);
        if blocked && current == 0 {
            self.write_blocked_since
                .store(self.now_ms().saturating_add(1), Ordering::Relaxed);
        } else if !blocked && current != 0 {
            self.write_blocked_since.store(0, Ordering::Relaxed);
        }
    }

    /// A request's headers arrived; the returned guard ends it when dropped.
    fn start_request(self: &Arc<Self>, h2: bool) -> BusyGuard {
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        BusyGuard(self.clone())
    }

    /// Resolves when the connection has overstayed, with the reason. Nothing wakes it but
    /// its one timer, which is reset only when the next look is due at another time: a busy
    /// keep-alive connection costs no timer work per request.
    async fn watch(&self, options: ServeOptions) -> Closed {
        let timer = tokio::time::sleep_until(self.start);
        let mut timer = std::pin::pin!(timer);
        loop {
            let at = match verdict(&self.activity(), self.now_ms(), &options) {
                Verdict::Close(reason) => return reason,
                Verdict::CheckAt(at) => at,
            };
            let wake_at = self.start + Duration::from_millis(at);
            if timer.deadline() != wake_at {
                timer.as_mut().reset(wake_at);
            }
            timer.as_mut().await;
        }
    }
}

/// Ends a request (its response fully sent or dropped) when dropped.
struct BusyGuard(Arc<ConnClock>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let clock = &self.0;
        clock.idle_since.store(clock.now_ms(), Ordering::Release);
        clock.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Longest a closing connection is drained after a request body was left unread.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes drained then.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// A client socket that tells its [`ConnClock`] about reads and stalled writes. `inner` is
/// taken only when it is dropped.
struct WatchedIo {
    inner: Option<TcpStream>,
    clock: Arc<ConnClock>,
}

impl WatchedIo {
    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.inner
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl Drop for WatchedIo {
    /// Closing a socket whose receive buffer holds unread bytes sends a reset, which can
    /// destroy the error answer (a 413) before the client reads it; so such a socket sends
    /// its FIN and reads what is left for a moment first (a bounded lingering close).
    fn drop(&mut self) {
        if !self.clock.unread_body.load(Ordering::Acquire) || self.clock.h2.load(Ordering::Relaxed)
        {
            return;
        }
        let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(linger(stream));
    }
}

async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let drain = async {
        if stream.shutdown().await.is_err() {
            return;
        }
        let mut sink = vec![0u8; 64 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    };
    let _drained_or_timed_out = tokio::time::timeout(LINGER, drain).await;
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = self.stream()?.poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_read();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = self.stream()?.poll_write(cx, buf);
        self.clock.on_write(result.is_pending());
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = self.stream()?.poll_write_vectored(cx, bufs);
        self.clock.on_write(result.is_pending());
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_shutdown(cx)
    }
}

/// A request body that fails with `TimedOut` when it is not complete by its deadline, and
/// says so through `timed_out` so the answer can be a 408.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
    clock: Arc<ConnClock>,
    finished: bool,
}

impl TimedBody {
    fn new(
        inner: Incoming,
        limit: Duration,
        timed_out: Arc<AtomicBool>,
        clock: Arc<ConnClock>,
    ) -> Self {
        Self {
            inner,
            limit,
            deadline: None,
            timed_out,
            clock,
            finished: false,
        }
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        if !self.finished && !hyper::body::Body::is_end_stream(&self.inner) {
            self.clock.unread_body.store(true, Ordering::Release);
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.finished |= frame.is_none();
            return Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)));
        }
        // The clock starts when the body is first waited on, i.e. right after the headers.
        let limit = this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(deadline.as_mut().poll(cx));
        this.timed_out.store(true, Ordering::Release);
        Poll::Ready(Some(Err(Box::new(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body did not arrive in time",
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in progress until it is dropped.
struct TrackedBody {
    inner: Body,
    _guard: BusyGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
