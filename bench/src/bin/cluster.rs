//! Control-plane benchmarks on three real voter processes on loopback: failover time (SIGKILL
//! of the leader → first acknowledged write) and committed writes per second through the
//! admin API (each write durable on a majority before it is acknowledged).
//!
//! `cargo build -p switchyard && cargo run -p switchyard-bench --bin cluster -- --rounds 5`

use std::time::{Duration, Instant};

use clap::Parser;
use switchyard_tests::cluster::{Cluster, put_endpoint_via};

/// Failover and commit-rate benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Leader kills to time.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Seconds of writes for each commit-rate measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent writers of each commit-rate measurement, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64])]
    writers: Vec<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _provider = rustls::crypto::ring::default_provider().install_default();
    let mut cluster = Cluster::start(3, false).await?;
    let mut out = std::io::stdout().lock();
    use std::io::Write;

    // Commit rate, one writer then more.
    for &writers in &args.writers {
        let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            // One client per writer: connections are reused, as a real client would.
            let client = cluster.voter(leader).admin()?;
            tasks.push(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let id = format!("rate-{writers}-{w}-{n}");
                    if put_endpoint_via(&client, &id, Duration::from_secs(5)).await {
                        n += 1;
                    }
                }
                n
            });
        }
        let total: u64 = futures::future::join_all(tasks).await.into_iter().sum();
        let rate = total as f64 / started.elapsed().as_secs_f64();
        writeln!(
            out,
            "commit rate, {writers} writer(s): {rate:.0} writes/s ({total} writes)"
        )?;
    }

    // Failover: kill the leader, time the first acknowledged write through a survivor.
    let mut times = Vec::new();
    for round in 0..args.rounds {
        let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
        cluster.wait_converged(Duration::from_secs(10)).await?;
        let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
        cluster.kill(leader);
        let killed = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(30),
                "no write after 30 s"
            );
            let via = survivors[(attempt as usize) % survivors.len()];
            if cluster
                .put_endpoint(via, &format!("failover-{round}"), Duration::from_secs(2))
                .await
            {
                break;
            }
        }
        let took = killed.elapsed();
        writeln!(out, "failover round {round}: {} ms", took.as_millis())?;
        times.push(took);
        cluster.restart(leader).await?;
    }
    times.sort();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        let median = times[times.len() / 2];
        writeln!(
            out,
            "failover (leader SIGKILL -> first acknowledged write), {} rounds: median {} ms, min {} ms, max {} ms",
            times.len(),
            median.as_millis(),
            min.as_millis(),
            max.as_millis()
        )?;
    }
    Ok(())
}
