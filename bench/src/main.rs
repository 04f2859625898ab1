#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
//! `switchyard-bench`: measures what Switchyard adds to a request, against the same upstream
//! in the same run (absolute numbers drift on shared machines; ratios do not).
//!
//! `overhead` (plan B1): sequential non-streaming chat requests, first directly to a fake
//! upstream, then through an edge of `switchyard up`, interleaved in rounds; prints p50/p90/p99
//! of each and the added latency.

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
