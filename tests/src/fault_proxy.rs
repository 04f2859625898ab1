//! A fault-injecting TCP proxy in front of one control-plane voter.
//!
//! Voters dial their peers from distinct loopback addresses (`--peer-bind-ip 127.0.0.N`), so the
//! proxy knows which voter a connection comes from. Blocking a source refuses its new
//! connections and cuts its open ones: with one proxy per voter, blocking the leader's address
//! on every other proxy and every other address on the leader's proxy isolates the leader.
//! Connections from other addresses (edges, admin clients) always pass.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    blocked: watch::Sender<HashSet<IpAddr>>,
    task: JoinHandle<()>,
    target: Arc<Mutex<SocketAddr>>,
    delay_ms: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, target)
    }

    /// Forwards connections accepted on `listener` to `target`.
    pub fn start_on(listener: TcpListener, target: SocketAddr) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let (blocked, watching) = watch::channel(HashSet::new());
        let target = Arc::new(Mutex::new(target));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let target = target.clone();
            let delay_ms = delay_ms.clone();
            async move {
                loop {
                    let Ok((inbound, peer)) = listener.accept().await else {
                        return;
                    };
                    if watching.borrow().contains(&peer.ip()) {
                        drop(inbound);
                        continue;
                    }
                    let to = *target.lock().unwrap_or_else(|p| p.into_inner());
                    tokio::spawn(pipe(
                        inbound,
                        peer.ip(),
                        to,
                        watching.clone(),
                        delay_ms.clone(),
                    ));
                }
            }
        });
        Ok(Self {
            addr,
            blocked,
            task,
            target,
            delay_ms,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points new connections at `target` (a restarted voter on a new port).
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = target;
    }

    /// Refuses and cuts connections from `ips`.
    pub fn block(&self, ips: &[IpAddr]) {
        self.blocked.send_modify(|b| b.extend(ips.iter().copied()));
    }

    /// Holds every chunk passing through (both ways, open and new connections) for `delay`;
    /// zero turns the delay off.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Lets everyone through again.
    pub fn heal(&self) {
        self.blocked.send_modify(HashSet::clear);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    inbound: TcpStream,
    source: IpAddr,
    target: SocketAddr,
    mut blocked: watch::Receiver<HashSet<IpAddr>>,
    delay_ms: Arc<AtomicU64>,
) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::select! {
        _up = relay(in_read, out_write, delay_ms.clone()) => {}
        _down = relay(out_read, in_write, delay_ms) => {}
        _cut = blocked.wait_for(|b| b.contains(&source)) => {}
    }
}

/// Copies `from` to `to`, holding each chunk for the current delay; ends at EOF or an error.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay_ms: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _closed = to.shutdown().await;
}
