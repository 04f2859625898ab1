//! `usage`: what usage accounting costs the edge. The same fast upstream is measured directly,
//! through an edge with accounting off and through one with accounting on (reporting to a real
//! one-voter control plane every second), and through one that also writes the request log (to
//! `/dev/null`: the cost of building and queueing each request's telemetry event), interleaved
//! in rounds at the same connection count.

use std::time::Duration;

use crate::load::{Sample, Server, closed_loop};

/// Runs the comparison and prints the report.
pub async fn run(seconds: f64, rounds: usize, conns: usize) -> anyhow::Result<()> {
    let (cluster, grpc) = crate::limits::control_plane().await?;
    let upstream = Server::spawn(&["upstream".into()]).await?;
    let edge = |usage: Vec<String>| {
        let mut args = vec!["edge".into(), upstream.addr.to_string()];
        args.extend(usage);
        args
    };
    let off = Server::spawn(&edge(vec!["--no-usage".into()])).await?;
    let on = Server::spawn(&edge(vec!["--usage-to".into(), format!("http://{grpc}")])).await?;
    let logged = Server::spawn(&edge(vec![
        "--usage-to".into(),
        format!("http://{grpc}"),
        "--request-log".into(),
        "/dev/null".into(),
    ]))
    .await?;
    let targets = [
        ("direct", upstream.addr),
        ("usage off", off.addr),
        ("usage on", on.addr),
        ("usage+log", logged.addr),
    ];
    for (_, addr) in &targets {
        closed_loop(*addr, conns, Duration::from_secs(1)).await?;
    }
    let duration = Duration::from_secs_f64(seconds);
    let mut samples = vec![Sample::default(); targets.len()];
    for _ in 0..rounds {
        for (i, (_, addr)) in targets.iter().enumerate() {
            samples[i].extend(closed_loop(*addr, conns, duration).await?);
        }
    }
    println!(
        "usage: non-streaming chat, {conns} connections, {rounds} rounds x {seconds} s per target"
    );
    println!(
        "{:<10} {:>10} {:>10} {:>10}",
        "target", "req/s", "p50 us", "p99 us"
    );
    for ((name, _), s) in targets.iter().zip(samples.iter_mut()) {
        println!(
            "{name:<10} {:>10.0} {:>10} {:>10}",
            s.rps(),
            s.quantile(0.50),
            s.quantile(0.99)
        );
    }
    println!(
        "usage on / off: throughput {:.3}x (target >= 0.95x)",
        samples[2].rps() / samples[1].rps().max(1e-9)
    );
    println!(
        "request log on / off: throughput {:.3}x",
        samples[3].rps() / samples[2].rps().max(1e-9)
    );
    drop((upstream, off, on, logged, cluster));
    Ok(())
}
