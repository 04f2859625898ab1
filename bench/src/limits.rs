//! `limits`: what cluster-wide key limits cost a request. The same fast upstream is measured
//! directly, through an edge whose key has no limits, and through an edge whose key has `rpm`
//! and `tpm` leased from a real one-voter control plane (set so high nothing is refused, so only
//! admission is measured), interleaved in rounds at the same connection count.

use std::time::Duration;

use switchyard_tests::cluster::Cluster;

use crate::load::{Sample, Server, closed_loop};

/// A one-voter control plane run from `SWITCHYARD_BIN`, and its gRPC address; the benches
/// that lease limits or report usage share it.
pub(crate) async fn control_plane() -> anyhow::Result<(Cluster, String)> {
    anyhow::ensure!(
        std::env::var_os("SWITCHYARD_BIN").is_some(),
        "set SWITCHYARD_BIN to the switchyard binary that runs the control plane \
         (e.g. SWITCHYARD_BIN=target/release/switchyard)"
    );
    let cluster = Cluster::start(1, false).await?;
    cluster.wait_leader(Duration::from_secs(20)).await?;
    let grpc = cluster
        .voter(1)
        .grpc()
        .ok_or_else(|| anyhow::anyhow!("the control plane has no gRPC address"))?
        .to_string();
    Ok((cluster, grpc))
}

/// Runs the comparison and prints the report.
pub async fn run(seconds: f64, rounds: usize, conns: usize) -> anyhow::Result<()> {
    let (cluster, grpc) = crate::limits::control_plane().await?;
    let upstream = Server::spawn(&["upstream".into()]).await?;
    let off = Server::spawn(&["edge".into(), upstream.addr.to_string()]).await?;
    let on = Server::spawn(&[
        "edge".into(),
        upstream.addr.to_string(),
        "--limits-from".into(),
        format!("http://{grpc}"),
    ])
    .await?;
    let targets = [
        ("direct", upstream.addr),
        ("limits off", off.addr),
        ("limits on", on.addr),
    ];
    // Warm connections, pools and the first leases before measuring.
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
    report(
        &targets.map(|(name, _)| name),
        &mut samples,
        conns,
        rounds,
        seconds,
    );
    drop((upstream, off, on, cluster));
    Ok(())
}

#[expect(clippy::print_stdout, reason = "the report goes to stdout")]
fn report(names: &[&str], samples: &mut [Sample], conns: usize, rounds: usize, seconds: f64) {
    println!(
        "limits: non-streaming chat, {conns} connections, {rounds} rounds x {seconds} s per target"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "target", "req/s", "p50 us", "p99 us", "added p50", "added p99"
    );
    let (direct50, direct99) = (samples[0].quantile(0.50), samples[0].quantile(0.99));
    let mut lat = Vec::new();
    for (name, s) in names.iter().zip(samples.iter_mut()) {
        let (p50, p99) = (s.quantile(0.50), s.quantile(0.99));
        println!(
            "{name:<12} {:>10.0} {p50:>10} {p99:>10} {:>12} {:>12}",
            s.rps(),
            p50.saturating_sub(direct50),
            p99.saturating_sub(direct99)
        );
        lat.push((p50, p99));
    }
    let ratio = |on: u64, off: u64| on as f64 / off.max(1) as f64;
    let ((off50, off99), (on50, on99)) = (lat[1], lat[2]);
    println!(
        "limits on / off: latency p50 {:.3}x, p99 {:.3}x; added latency p50 {:.3}x, p99 {:.3}x (target <= 1.2x)",
        ratio(on50, off50),
        ratio(on99, off99),
        ratio(
            on50.saturating_sub(direct50),
            off50.saturating_sub(direct50)
        ),
        ratio(
            on99.saturating_sub(direct99),
            off99.saturating_sub(direct99)
        ),
    );
}
