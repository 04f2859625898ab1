//! `conns`: what the edge's connections cost in memory. An edge (a child process, so its RSS is
//! its own) is warmed up and measured, then holds `idle` keep-alive connections (each after one
//! request) and is measured again: the difference per connection is the idle cost. A fresh
//! edge then holds `streams` concurrent streams from an upstream that trickles a chunk every
//! `trickle`, and its RSS is read while they all run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::load::Server;
use crate::servers::{KEY, MODEL};

/// Settings of a `conns` run.
pub struct ConnsArgs {
    /// Idle keep-alive connections.
    pub idle: usize,
    /// Concurrent slow streams.
    pub streams: usize,
    /// Time between a slow stream's chunks.
    pub trickle: Duration,
    /// How long the connections are held before the memory is read.
    pub hold: Duration,
}

/// Connections opened at once.
const OPENING: usize = 256;
/// Loopback source addresses the client connections rotate over (127.0.0.2 …), so ephemeral
/// ports do not run short.
const SOURCES: u8 = 4;
/// Longest any one connection may take to open and answer.
const PER_CONN: Duration = Duration::from_secs(30);

/// Runs the measurement and prints the report; the last line is machine-readable.
pub async fn run(args: ConnsArgs) -> anyhow::Result<()> {
    let files = raise_fd_limit()?;
    // The edge holds the client's and the upstream's side of every stream.
    ensure!(
        files as usize > args.idle + 100 && files as usize > 2 * args.streams + 100,
        "the open-file limit {files} is too low for {} idle connections or {} streams",
        args.idle,
        args.streams
    );
    let cap = (args.idle.max(args.streams) + 100).to_string();
    let upstream =
        Server::spawn(&["slow-upstream".into(), args.trickle.as_millis().to_string()]).await?;
    let edge_args = [
        "edge".into(),
        upstream.addr.to_string(),
        "--max-connections".into(),
        cap,
    ];

    let (base_kib, idle_kib) = {
        let edge = Server::spawn(&edge_args).await?;
        warm_up(edge.addr).await?;
        let base = settled_rss(&edge, args.hold).await?;
        let started = Instant::now();
        let held = open_idle(edge.addr, args.idle).await?;
        let opened = started.elapsed();
        let idle = settled_rss(&edge, args.hold).await?;
        // Still usable after.
        let mut held = held;
        for conn in held.iter_mut().step_by((args.idle / 20).max(1)) {
            liveliness(conn).await?;
        }
        println!(
            "idle: {} keep-alive connections opened in {opened:.1?}; edge RSS {} -> {} KiB",
            args.idle, base, idle
        );
        drop(held);
        (base, idle)
    };
    let per_conn = idle_kib.saturating_sub(base_kib) as f64 / args.idle.max(1) as f64;

    let (stream_base_kib, streams_kib) = {
        let edge = Server::spawn(&edge_args).await?;
        warm_up(edge.addr).await?;
        let base = settled_rss(&edge, args.hold).await?;
        let started = Instant::now();
        let held = open_streams(edge.addr, args.streams).await?;
        let opened = started.elapsed();
        let rss = settled_rss(&edge, args.hold.max(args.trickle * 2)).await?;
        let alive = held.iter().filter(|t| !t.is_finished()).count();
        ensure!(
            alive == args.streams,
            "only {alive} of {} streams still running",
            args.streams
        );
        println!(
            "streams: {} concurrent slow streams (a chunk every {:?}) started in {opened:.1?}; edge RSS {} -> {} KiB",
            args.streams, args.trickle, base, rss
        );
        for task in &held {
            task.abort();
        }
        (base, rss)
    };
    println!(
        "conns: idle={} base_rss_mb={:.1} kib_per_idle_conn={per_conn:.2} streams={} streams_base_rss_mb={:.1} streams_rss_mb={:.1}",
        args.idle,
        mib(base_kib),
        args.streams,
        mib(stream_base_kib),
        mib(streams_kib)
    );
    drop(upstream);
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Raises this process's open-file limit to its hard limit (its children inherit it) and
/// returns it.
fn raise_fd_limit() -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-file limit in /proc/self/limits")?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (soft, hard) = match nums[..] {
        [soft, hard, ..] => (soft, hard),
        // "unlimited"
        _ => return Ok(u64::MAX),
    };
    if soft < hard {
        let status = Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={hard}:{hard}"),
            ])
            .status();
        ensure!(
            status.is_ok_and(|s| s.success()),
            "cannot raise the open-file limit from {soft} to {hard}"
        );
    }
    Ok(hard)
}

/// The edge's RSS once it has stopped changing (read every 250 ms, at least for `hold`).
async fn settled_rss(edge: &Server, hold: Duration) -> anyhow::Result<u64> {
    tokio::time::sleep(hold).await;
    let mut last = edge.rss_kib().context("edge RSS")?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = edge.rss_kib().context("edge RSS")?;
        if now.abs_diff(last) * 200 < last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// A few requests and streams, so what the edge sets up once is in the base figure.
async fn warm_up(addr: SocketAddr) -> anyhow::Result<()> {
    let conns = open_idle(addr, 64).await?;
    drop(conns);
    let streams = open_streams(addr, 64).await?;
    for task in streams {
        task.abort();
    }
    Ok(())
}

/// A client socket from the `i`th loopback source address.
async fn dial(addr: SocketAddr, i: usize) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let source = Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(SOURCES)) as u8);
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `n` keep-alive connections, each having had one request answered.
async fn open_idle(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            tokio::time::timeout(PER_CONN, async {
                let mut conn = dial(addr, i).await?;
                liveliness(&mut conn).await?;
                Ok(conn)
            })
            .await
            .context("an idle connection took too long")?
        })
        .buffer_unordered(OPENING)
        .try_collect()
        .await
}

/// One `GET /health/liveliness` on `conn`, its whole answer read.
async fn liveliness(conn: &mut TcpStream) -> anyhow::Result<()> {
    conn.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: edge\r\n\r\n")
        .await?;
    let mut buf = Vec::with_capacity(512);
    loop {
        let mut chunk = [0u8; 512];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the edge closed a connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        ensure!(
            head.starts_with("http/1.1 200"),
            "liveliness answered {head}"
        );
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .context("liveliness answer without content-length")?;
        if buf.len() >= end + 4 + length {
            return Ok(());
        }
    }
}

/// `n` streams, each running in its own task once its first chunk arrived; a task reads its
/// stream to the end (or until aborted).
async fn open_streams(
    addr: SocketAddr,
    n: usize,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let body = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"Tell me a long story."}}],"stream":true}}"#
    );
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let request = request.as_bytes();
    futures::stream::iter(0..n)
        .map(|i| async move {
            tokio::time::timeout(PER_CONN, async {
                let mut conn = dial(addr, i).await?;
                conn.write_all(request).await?;
                let mut buf = Vec::with_capacity(1024);
                while memchr::memmem::find(&buf, b"data: ").is_none() {
                    let mut chunk = [0u8; 1024];
                    let n = conn.read(&mut chunk).await?;
                    if n == 0 {
                        bail!("the edge closed a stream before its first chunk");
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                ensure!(
                    buf.starts_with(b"HTTP/1.1 200"),
                    "a stream answered {}",
                    String::from_utf8_lossy(&buf[..buf.len().min(200)])
                );
                Ok(tokio::spawn(async move {
                    let mut sink = [0u8; 1024];
                    while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                }))
            })
            .await
            .context("a stream took too long to start")?
        })
        .buffer_unordered(OPENING)
        .try_collect()
        .await
}
