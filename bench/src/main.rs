#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
//! `switchyard-bench`: measures what Switchyard adds to a request, against the same upstream
//! in the same run (absolute numbers drift on shared machines; ratios do not).
//!
//! `overhead` (plan B1): sequential non-streaming chat requests, first directly to a fake
//! upstream, then through an edge of `switchyard up`, interleaved in rounds; prints p50/p90/p99
//! of each and the added latency.
//!
//! `load`: direct vs the bare floor proxy vs the edge (vs LiteLLM, given `--litellm-bin`) at 1
//! and 16 connections, streaming time to first byte, and the edge's RSS; each server runs as a
//! child process (`serve …`) so its memory is its own.
//!
//! `limits`: the edge with a key's cluster-wide limits on (leased from a real control plane)
//! vs off, at 16 connections: what admission adds.
//!
//! `usage`: the edge with usage accounting on (reporting to a real control plane) vs off, at 16
//! connections: what accounting costs in throughput.
//!
//! `scale`: a real three-voter control plane with simulated agents churning their backends and
//! simulated edges following the table: propagation, bytes per change per edge, leader CPU/RSS.
//! `conns`: the edge's memory per idle keep-alive connection, and its RSS holding many slow
//! streams at once.

mod conns;
mod limits;
mod scale;
mod usage;
/// The same allocator as the `switchyard` binary, so the edge measured here is the one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod load;
mod servers;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use switchyard_tests::fake::FakeOllama;
use switchyard_tests::harness::{edge_models, start_up, wait_for};

#[derive(Parser)]
#[command(name = "switchyard-bench")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Added latency of the edge over a direct request (sequential, non-streaming).
    Overhead {
        /// Measured requests per target per round.
        #[arg(long, default_value_t = 2_000)]
        requests: usize,
        /// Unmeasured requests per target before the first round.
        #[arg(long, default_value_t = 500)]
        warmup: usize,
        /// Rounds, alternating direct and through the edge.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Throughput, latency, TTFB and RSS: direct vs floor proxy vs edge (vs LiteLLM).
    Load {
        /// Seconds per (target, connections) cell in each round.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Rounds, interleaving the targets.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Sequential streaming requests per target for time to first byte.
        #[arg(long, default_value_t = 2_000)]
        ttfb_requests: usize,
        /// Path of a `litellm` executable to compare against (see bench/litellm.sh).
        #[arg(long)]
        litellm_bin: Option<std::path::PathBuf>,
        /// Seconds to wait for LiteLLM to start answering.
        #[arg(long, default_value_t = 120)]
        litellm_wait: u64,
        /// A `switchyard-bench` built from an earlier commit; its edge is measured beside this
        /// one as `edge-before`.
        #[arg(long)]
        before_bin: Option<std::path::PathBuf>,
    },
    /// Added latency of cluster-wide key limits: the edge with limits on vs off, 16 connections.
    Limits {
        /// Seconds per target in each round.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Rounds, interleaving the targets.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Connections.
        #[arg(long, default_value_t = 16)]
        conns: usize,
    },
    /// Throughput cost of usage accounting: the edge with accounting on vs off, 16 connections.
    Usage {
        /// Seconds per target in each round.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Rounds, interleaving the targets.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Connections.
        #[arg(long, default_value_t = 16)]
        conns: usize,
    },
    /// The control plane at size: agents churning endpoints, edges following the table.
    /// Run `cargo build -p switchyard` first (the voters are that binary).
    Scale {
        /// Simulated node agents.
        #[arg(long, default_value_t = 1_000)]
        agents: usize,
        /// Endpoints across all agents.
        #[arg(long, default_value_t = 10_000)]
        endpoints: usize,
        /// Simulated edges.
        #[arg(long, default_value_t = 100)]
        edges: usize,
        /// Seconds of churn.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Changes per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
    },
    /// Edge memory: KiB per idle keep-alive connection, and RSS under many slow streams.
    Conns {
        /// Idle keep-alive connections (each after one request).
        #[arg(long, default_value_t = 10_000)]
        idle: usize,
        /// Concurrent slow streams (on a fresh edge).
        #[arg(long, default_value_t = 9_000)]
        streams: usize,
        /// Milliseconds between a slow stream's chunks.
        #[arg(long, default_value_t = 2_000)]
        trickle_ms: u64,
        /// Seconds the connections are held before the memory is read.
        #[arg(long, default_value_t = 3)]
        hold: u64,
    },
    /// Closed-loop non-streaming load against one address (for profiling a single target).
    Hammer {
        /// `host:port` serving /v1/chat/completions.
        addr: std::net::SocketAddr,
        /// Connections.
        #[arg(long, default_value_t = 16)]
        conns: usize,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Internal: run one server of a load run and print its address.
    #[command(hide = true)]
    Serve {
        #[command(subcommand)]
        what: Serve,
    },
}

#[derive(Subcommand)]
enum Serve {
    /// The fast fake upstream.
    Upstream,
    /// An upstream whose every chat is a stream trickling a chunk every `every_ms`.
    SlowUpstream {
        /// Milliseconds between chunks.
        every_ms: u64,
    },
    /// The bare pass-through proxy to an upstream.
    Floor { upstream: std::net::SocketAddr },
    /// The edge routing to an upstream.
    Edge {
        upstream: std::net::SocketAddr,
        /// Lease the key's limits from this control plane (gRPC URL); without it, no limits.
        #[arg(long)]
        limits_from: Option<String>,
        /// Report usage to this control plane (gRPC URL).
        #[arg(long)]
        usage_to: Option<String>,
        /// Count no usage at all.
        #[arg(long)]
        no_usage: bool,
        /// Write the request log here (telemetry's cost).
        #[arg(long)]
        request_log: Option<std::path::PathBuf>,
        /// The edge's connection cap (default: the edge's own).
        #[arg(long)]
        max_connections: Option<usize>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _already = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Bench::Overhead {
            requests,
            warmup,
            rounds,
        } => overhead(requests, warmup, rounds).await,
        Bench::Load {
            seconds,
            rounds,
            ttfb_requests,
            litellm_bin,
            litellm_wait,
            before_bin,
        } => {
            load::run(load::LoadArgs {
                seconds,
                rounds,
                ttfb_requests,
                litellm_bin,
                litellm_wait,
                before_bin,
            })
            .await
        }
        Bench::Limits {
            seconds,
            rounds,
            conns,
        } => limits::run(seconds, rounds, conns).await,
        Bench::Usage {
            seconds,
            rounds,
            conns,
        } => usage::run(seconds, rounds, conns).await,
        Bench::Scale {
            agents,
            endpoints,
            edges,
            seconds,
            rate,
        } => {
            scale::run(scale::ScaleArgs {
                agents,
                endpoints,
                edges,
                seconds,
                rate,
            })
            .await
        }
        Bench::Conns {
            idle,
            streams,
            trickle_ms,
            hold,
        } => {
            conns::run(conns::ConnsArgs {
                idle,
                streams,
                trickle: Duration::from_millis(trickle_ms),
                hold: Duration::from_secs(hold),
            })
            .await
        }
        Bench::Hammer {
            addr,
            conns,
            seconds,
        } => load::hammer(addr, conns, seconds).await,
        Bench::Serve { what } => match what {
            Serve::Upstream => servers::upstream().await,
            Serve::SlowUpstream { every_ms } => {
                servers::slow_upstream(Duration::from_millis(every_ms)).await
            }
            Serve::Floor { upstream } => servers::floor(upstream).await,
            Serve::Edge {
                upstream,
                limits_from,
                usage_to,
                no_usage,
                request_log,
                max_connections,
            } => {
                let usage = servers::Accounting {
                    on: !no_usage,
                    to: usage_to,
                    request_log,
                };
                servers::edge(upstream, limits_from, usage, max_connections).await
            }
        },
    }
}

async fn overhead(requests: usize, warmup: usize, rounds: usize) -> anyhow::Result<()> {
    let upstream = FakeOllama::start(&["bench-model"]).await?;
    let data = tempfile::tempdir()?;
    let up = start_up(data.path(), false, Some(upstream.addr().port())).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .build()?;
    let edge = up.edge_addr();
    wait_for(
        Duration::from_secs(10),
        "the bench model at the edge",
        || async {
            edge_models(&client, edge)
                .await
                .filter(|m| m.iter().any(|id| id == "bench-model"))
        },
    )
    .await?;

    let body = serde_json::to_vec(
        &json!({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}),
    )?;
    let direct_url = format!("http://{}/v1/chat/completions", upstream.addr());
    let edge_url = format!("http://{edge}/v1/chat/completions");
    run(&client, &direct_url, &body, warmup).await?;
    run(&client, &edge_url, &body, warmup).await?;

    let mut direct = Vec::with_capacity(requests * rounds);
    let mut via_edge = Vec::with_capacity(requests * rounds);
    for _ in 0..rounds {
        direct.extend(run(&client, &direct_url, &body, requests).await?);
        via_edge.extend(run(&client, &edge_url, &body, requests).await?);
    }
    direct.sort();
    via_edge.sort();
    println!(
        "overhead: sequential non-streaming chat, {rounds} rounds x {requests} requests, {warmup} warm-up"
    );
    println!(
        "{:<10} {:>10} {:>10} {:>10}",
        "target", "p50 us", "p90 us", "p99 us"
    );
    for (name, samples) in [("direct", &direct), ("edge", &via_edge)] {
        println!(
            "{name:<10} {:>10} {:>10} {:>10}",
            micros(samples, 0.50),
            micros(samples, 0.90),
            micros(samples, 0.99)
        );
    }
    let added = |q| micros(&via_edge, q).saturating_sub(micros(&direct, q));
    println!(
        "added      {:>10} {:>10} {:>10}",
        added(0.50),
        added(0.90),
        added(0.99)
    );
    up.stop().await?;
    upstream.stop().await;
    Ok(())
}

async fn run(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .with_context(|| format!("request to {url}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url} answered {}",
            response.status()
        );
        response.bytes().await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

fn micros(sorted: &[Duration], q: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_micros()
}
