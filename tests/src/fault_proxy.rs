//! A fault-injecting TCP proxy in front of one control-plane voter.
//!
//! Voters dial their peers from distinct loopback addresses (`--peer-bind-ip 127.0.0.N`), so the
//! proxy knows which voter a connection comes from. Blocking a source refuses its new
//! connections and cuts its open ones: with one proxy per voter, blocking the leader's address
//! on every other proxy and every other address on the leader's proxy isolates the leader.
//! Connections from other addresses (edges, admin clients) always pass.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    blocked: watch::Sender<HashSet<IpAddr>>,
    task: JoinHandle<()>,
    target: Arc<Mutex<SocketAddr>>,
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
        let task = tokio::spawn({
            let target = target.clone();
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
                    tokio::spawn(pipe(inbound, peer.ip(), to, watching.clone()));
                }
            }
        });
        Ok(Self {
            addr,
            blocked,
            task,
            target,
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
    mut inbound: TcpStream,
    source: IpAddr,
    target: SocketAddr,
    mut blocked: watch::Receiver<HashSet<IpAddr>>,
) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _copied = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _cut = blocked.wait_for(|b| b.contains(&source)) => {}
    }
}
