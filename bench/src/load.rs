//! `load`: one run measuring direct-to-upstream, the bare floor proxy, the edge, the edge
//! translating (Anthropic Messages in, OpenAI-compatible out; target `translated`) and LiteLLM
//! when given, at 1 and 16 connections: requests/s, p50/p99 latency and what each
//! hop adds; streaming time to first byte; the edge's RSS idle and under load.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::servers::{KEY, MODEL};

/// The target name of the edge spoken to in Anthropic Messages.
const TRANSLATED: &str = "translated";
/// The edge of an earlier build (`--before-bin`), measured in the same rounds.
const BEFORE: &str = "edge-before";

/// Settings of a load run.
pub struct LoadArgs {
    /// Seconds per (target, connections) measurement in each round.
    pub seconds: f64,
    /// Rounds, interleaving targets so drift hits all alike.
    pub rounds: usize,
    /// Sequential streaming requests per target for time to first byte.
    pub ttfb_requests: usize,
    /// The `litellm` executable (from a venv with `litellm[proxy]`); when given, its proxy is
    /// started against this run's upstream and measured too.
    pub litellm_bin: Option<std::path::PathBuf>,
    /// Seconds to wait for LiteLLM to answer.
    pub litellm_wait: u64,
    /// A `switchyard-bench` built from an earlier commit: its edge is measured in the same
    /// rounds as `edge-before`, so a change's cost is read within one run.
    pub before_bin: Option<std::path::PathBuf>,
}

/// A child server process.
pub(crate) struct Server {
    child: Child,
    /// Where it serves.
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Runs `serve <args>` of this binary and reads the address it prints.
    pub(crate) async fn spawn(args: &[String]) -> anyhow::Result<Self> {
        Self::spawn_from(&std::env::current_exe()?, args).await
    }

    /// Runs `serve <args>` of the bench binary `exe` and reads the address it prints.
    pub(crate) async fn spawn_from(exe: &std::path::Path, args: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .context("server did not start in 10 s")??;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .context("server did not print its address")?
            .parse()?;
        Ok(Self { child, addr })
    }

    pub(crate) fn rss_kib(&self) -> Option<u64> {
        rss_of(self.child.id()?)
    }
}

/// Resident set size of process `pid` in KiB (Linux `/proc`).
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Latencies (µs) and how long the run took.
#[derive(Default, Clone)]
pub(crate) struct Sample {
    micros: Vec<u64>,
    wall: Duration,
}

impl Sample {
    pub(crate) fn extend(&mut self, other: Sample) {
        self.micros.extend(other.micros);
        self.wall += other.wall;
    }

    pub(crate) fn rps(&self) -> f64 {
        self.micros.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub(crate) fn quantile(&mut self, q: f64) -> u64 {
        if self.micros.is_empty() {
            return 0;
        }
        self.micros.sort_unstable();
        let rank = ((self.micros.len() - 1) as f64 * q).round() as usize;
        self.micros[rank.min(self.micros.len() - 1)]
    }
}

/// The protocol a load client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// OpenAI chat at `/v1/chat/completions` (the edge passes it through).
    OpenAi,
    /// Anthropic Messages at `/v1/messages` (the edge translates it to OpenAI and back).
    Anthropic,
}

fn chat_body(stream: bool, wire: Wire) -> Bytes {
    let max_tokens = match wire {
        Wire::OpenAi => "",
        Wire::Anthropic => r#","max_tokens":64"#,
    };
    Bytes::from(format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"Hello, how are you?"}}],"stream":{stream}{max_tokens}}}"#
    ))
}

async fn connect(addr: SocketAddr) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "load connection ended");
        }
    });
    Ok(sender)
}

fn request(addr: SocketAddr, body: &Bytes, wire: Wire) -> anyhow::Result<Request<Full<Bytes>>> {
    let path = match wire {
        Wire::OpenAi => "/v1/chat/completions",
        Wire::Anthropic => "/v1/messages",
    };
    Ok(Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Full::new(body.clone()))?)
}

/// Closed-loop load: `conns` connections, each sending the next request when the last answer
/// is complete, for `duration`.
pub(crate) async fn closed_loop(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    closed_loop_as(addr, conns, duration, Wire::OpenAi).await
}

/// [`closed_loop`] speaking `wire`.
async fn closed_loop_as(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
    wire: Wire,
) -> anyhow::Result<Sample> {
    let body = chat_body(false, wire);
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut micros = Vec::with_capacity(100_000);
            while Instant::now() < until {
                sender.ready().await?;
                let t = Instant::now();
                let resp = sender.send_request(request(addr, &body, wire)?).await?;
                let status = resp.status();
                resp.into_body().collect().await?;
                if !status.is_success() {
                    bail!("{addr} answered {status}");
                }
                micros.push(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(micros)
        }));
    }
    let mut sample = Sample::default();
    for t in tasks {
        sample.micros.extend(t.await??);
    }
    sample.wall = started.elapsed();
    Ok(sample)
}

/// Runs closed-loop load against one address and prints requests/s and p50/p99.
pub async fn hammer(addr: SocketAddr, conns: usize, seconds: f64) -> anyhow::Result<()> {
    let mut s = closed_loop(addr, conns, Duration::from_secs_f64(seconds)).await?;
    #[expect(clippy::print_stdout, reason = "the report goes to stdout")]
    {
        println!(
            "{addr}: {conns} conns, {:.0} req/s, p50 {} µs, p99 {} µs",
            s.rps(),
            s.quantile(0.5),
            s.quantile(0.99)
        );
    }
    Ok(())
}

/// Sequential streaming requests on one connection: time to the first body byte.
async fn ttfb(addr: SocketAddr, n: usize, wire: Wire) -> anyhow::Result<Sample> {
    let body = chat_body(true, wire);
    let mut sender = connect(addr).await?;
    let mut sample = Sample::default();
    let started = Instant::now();
    for _ in 0..n {
        sender.ready().await?;
        let t = Instant::now();
        let resp = sender.send_request(request(addr, &body, wire)?).await?;
        let mut body = resp.into_body();
        let first = body.frame().await.context("no first frame")??;
        sample.micros.push(t.elapsed().as_micros() as u64);
        drop(first);
        while body.frame().await.transpose()?.is_some() {}
    }
    sample.wall = started.elapsed();
    Ok(sample)
}

/// Starts LiteLLM's proxy for [`MODEL`] against `upstream` and waits until it answers.
async fn start_litellm(
    bin: &std::path::Path,
    upstream: SocketAddr,
    dir: &std::path::Path,
    wait: u64,
) -> anyhow::Result<(Child, SocketAddr)> {
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n      api_base: http://{upstream}/v1\n      api_key: bench\n"
        ),
    )?;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--num_workers",
            "1",
        ])
        // Offline: the bundled model-cost map instead of a download; quiet logs.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let give_up = Instant::now() + Duration::from_secs(wait);
    loop {
        if closed_loop(addr, 1, Duration::from_millis(50))
            .await
            .is_ok()
        {
            return Ok((child, addr));
        }
        if Instant::now() > give_up {
            bail!("LiteLLM on port {port} did not answer within {wait}s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the whole comparison and prints a Markdown report.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let upstream = Server::spawn(&["upstream".into()]).await?;
    let floor = Server::spawn(&["floor".into(), upstream.addr.to_string()]).await?;
    let edge = Server::spawn(&["edge".into(), upstream.addr.to_string()]).await?;
    let mut targets: Vec<(&str, SocketAddr)> = vec![
        ("direct", upstream.addr),
        ("floor", floor.addr),
        ("edge", edge.addr),
    ];
    let wire_of = |name: &str| {
        if name == TRANSLATED {
            Wire::Anthropic
        } else {
            Wire::OpenAi
        }
    };
    let litellm_dir = tempfile::tempdir()?;
    let _litellm = match &args.litellm_bin {
        Some(bin) => {
            let (child, addr) =
                start_litellm(bin, upstream.addr, litellm_dir.path(), args.litellm_wait).await?;
            targets.push(("litellm", addr));
            Some(child)
        }
        None => None,
    };
    // The same edge, spoken to in Anthropic Messages (translated to OpenAI and back).
    targets.push((TRANSLATED, edge.addr));
    let before = match &args.before_bin {
        Some(bin) => {
            let server =
                Server::spawn_from(bin, &["edge".into(), upstream.addr.to_string()]).await?;
            targets.push((BEFORE, server.addr));
            Some(server)
        }
        None => None,
    };
    // Warm every path (connections, pools, caches) before measuring.
    for (name, addr) in &targets {
        closed_loop_as(*addr, 4, Duration::from_millis(500), wire_of(name)).await?;
    }
    let rss_idle = edge.rss_kib();

    let duration = Duration::from_secs_f64(args.seconds);
    let conns_set = [1usize, 16];
    let mut results: Vec<Vec<Sample>> =
        vec![vec![Sample::default(); conns_set.len()]; targets.len()];
    let mut rss_load = 0u64;
    for _ in 0..args.rounds {
        for (ti, (name, addr)) in targets.iter().enumerate() {
            for (ci, &conns) in conns_set.iter().enumerate() {
                // LiteLLM is orders of magnitude slower; one short pass is enough for a ratio.
                let d = if *name == "litellm" {
                    duration.min(Duration::from_secs(3))
                } else {
                    duration
                };
                let sampling = (*name == "edge" || *name == TRANSLATED).then(|| {
                    let pid = edge.child.id();
                    tokio::spawn(async move {
                        let mut peak = 0;
                        // Bounded: the measurement it watches lasts `d`.
                        for _ in 0..(d.as_millis() / 100 + 1) {
                            peak = peak.max(pid.and_then(rss_of).unwrap_or(0));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        peak
                    })
                });
                let sample = closed_loop_as(*addr, conns, d, wire_of(name)).await?;
                if let Some(task) = sampling {
                    rss_load = rss_load.max(task.await.unwrap_or(0));
                }
                results[ti][ci].extend(sample);
            }
        }
    }
    let mut ttfbs = Vec::new();
    for (name, addr) in &targets {
        let n = if *name == "litellm" {
            args.ttfb_requests.min(100)
        } else {
            args.ttfb_requests
        };
        ttfbs.push(ttfb(*addr, n, wire_of(name)).await?);
    }

    print_report(
        &targets,
        &conns_set,
        &mut results,
        &mut ttfbs,
        rss_idle,
        rss_load,
        &args,
    );
    drop((upstream, floor, edge, before));
    Ok(())
}

#[expect(clippy::print_stdout, reason = "the report goes to stdout")]
fn print_report(
    targets: &[(&str, SocketAddr)],
    conns_set: &[usize],
    results: &mut [Vec<Sample>],
    ttfbs: &mut [Sample],
    rss_idle: Option<u64>,
    rss_load: u64,
    args: &LoadArgs,
) {
    println!(
        "load: non-streaming chat, closed loop, {} round(s) x {}s per cell; {} streaming requests for TTFB\n",
        args.rounds, args.seconds, args.ttfb_requests
    );
    println!("| target | conns | req/s | p50 µs | p99 µs | added p50 µs | added p99 µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let base: Vec<(u64, u64)> = results[0]
        .iter_mut()
        .map(|d| (d.quantile(0.5), d.quantile(0.99)))
        .collect();
    for (ti, (name, _)) in targets.iter().enumerate() {
        for (ci, conns) in conns_set.iter().enumerate() {
            let s = &mut results[ti][ci];
            let (p50, p99) = (s.quantile(0.5), s.quantile(0.99));
            println!(
                "| {name} | {conns} | {:.0} | {p50} | {p99} | {} | {} |",
                s.rps(),
                p50 as i64 - base[ci].0 as i64,
                p99 as i64 - base[ci].1 as i64
            );
        }
    }
    let added = |ti: usize, ci: usize, q: f64, results: &mut [Vec<Sample>]| {
        let t = results[ti][ci].quantile(q) as f64;
        let d = results[0][ci].quantile(q) as f64;
        (t - d).max(1.0)
    };
    println!("\n| ratio | conns | value |");
    println!("|---|---:|---:|");
    for (ci, conns) in conns_set.iter().enumerate() {
        let rps_ratio = results[2][ci].rps() / results[1][ci].rps();
        println!("| edge / floor throughput | {conns} | {:.2} |", rps_ratio);
        println!(
            "| edge / floor added latency p50 | {conns} | {:.2} |",
            added(2, ci, 0.5, results) / added(1, ci, 0.5, results)
        );
        println!(
            "| edge / floor added latency p99 | {conns} | {:.2} |",
            added(2, ci, 0.99, results) / added(1, ci, 0.99, results)
        );
        let index = |target: &str| targets.iter().position(|(name, _)| *name == target);
        let translated = index(TRANSLATED).unwrap_or(2);
        println!(
            "| translated / edge throughput | {conns} | {:.2} |",
            results[translated][ci].rps() / results[2][ci].rps()
        );
        println!(
            "| translated - edge latency p50 µs | {conns} | {} |",
            results[translated][ci].quantile(0.5) as i64 - results[2][ci].quantile(0.5) as i64
        );
        if let Some(before) = index(BEFORE) {
            println!(
                "| edge / edge-before throughput | {conns} | {:.2} |",
                results[2][ci].rps() / results[before][ci].rps()
            );
            println!(
                "| edge / edge-before added latency p50 | {conns} | {:.2} |",
                added(2, ci, 0.5, results) / added(before, ci, 0.5, results)
            );
        }
        if args.litellm_bin.is_some() {
            println!(
                "| edge / litellm throughput | {conns} | {:.1} |",
                results[2][ci].rps() / results[3][ci].rps()
            );
        }
    }
    println!("\n| streaming TTFB | p50 µs | p99 µs | added p50 µs |");
    println!("|---|---:|---:|---:|");
    let direct50 = ttfbs[0].quantile(0.5) as i64;
    for (ti, (name, _)) in targets.iter().enumerate() {
        let s = &mut ttfbs[ti];
        let p50 = s.quantile(0.5) as i64;
        println!(
            "| {name} | {p50} | {} | {} |",
            s.quantile(0.99),
            p50 - direct50
        );
    }
    println!(
        "\nedge RSS: idle (after warm-up) {} KiB, under load (max sampled) {rss_load} KiB",
        rss_idle.unwrap_or(0)
    );
}
