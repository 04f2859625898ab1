//! Cluster-wide limits through capacity leases, against a real three-voter control plane.
//!
//! Three limiters stand for three edges. Windows are 6 s with a limit of 60 (the same
//! 10-per-second rate as 600 per minute), so a run covers several windows in bounded time;
//! the lease logic does not depend on the window's length.

#![allow(
    clippy::unwrap_used,
    reason = "a poisoned lock or a panicked task is a failed test"
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_edge::limits::{Limiter, WindowLimit, now_ms};
use switchyard_tests::cluster::Cluster;

const WINDOW: Duration = Duration::from_secs(6);
const LIMIT: u64 = 60;

/// Admissions per window index, across all limiters.
type Ledger = Arc<Mutex<BTreeMap<u64, u64>>>;

/// Offers ~100 requests per second to `limiter` until `until_ms`, recording admissions.
async fn demand(limiter: Limiter, ledger: Ledger, until_ms: u64) {
    let limit = WindowLimit {
        key: "key:test:rpm".into(),
        limit: LIMIT,
        window: WINDOW,
    };
    let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
    while now_ms() < until_ms {
        if limiter.admit(&limit, 1).await.is_ok() {
            let at = now_ms();
            *ledger.lock().unwrap().entry(at / window_ms).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs three limiters against the voters at `targets` for `windows` full windows (plus the
/// partial one they start in), driving `during` meanwhile; returns admissions per full window.
async fn run(targets: [String; 3], windows: u64, during: impl Future<Output = ()>) -> Vec<u64> {
    let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
    let first_full = now_ms() / window_ms + 1;
    let until = (first_full + windows) * window_ms;
    let ledger: Ledger = Arc::default();
    let mut tasks = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        let limiter = Limiter::new(target, format!("edge-{i}"));
        tasks.push(tokio::spawn(demand(limiter, ledger.clone(), until)));
    }
    during.await;
    for task in tasks {
        task.await.unwrap();
    }
    let ledger = ledger.lock().unwrap();
    (first_full..first_full + windows)
        .map(|w| ledger.get(&w).copied().unwrap_or(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_share_one_limit_and_survive_a_leader_kill() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3, false).await?;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let url = |id: u64| format!("http://{}", cluster.voter(id).grpc().unwrap());

    // Steady state: demand far above the limit, spread over three edges.
    let targets = [url(followers[0]), url(followers[1]), url(leader)];
    let admitted = run(targets, 2, async {}).await;
    eprintln!("steady state, admitted per {WINDOW:?} window (limit {LIMIT}): {admitted:?}");
    for (window, n) in admitted.iter().enumerate() {
        assert!(
            *n as f64 <= LIMIT as f64 * 1.02 && *n as f64 >= LIMIT as f64 * 0.95,
            "window {window}: admitted {n} of {LIMIT} ({admitted:?})"
        );
    }

    // Kill the leader in the middle of the first window; the edges talk to the followers.
    let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
    let targets = [url(followers[0]), url(followers[1]), url(followers[0])];
    let kill = async {
        let mid = (now_ms() / window_ms + 1) * window_ms + window_ms / 2;
        tokio::time::sleep(Duration::from_millis(mid.saturating_sub(now_ms()))).await;
        cluster.kill(leader);
    };
    let admitted = run(targets, 2, kill).await;
    eprintln!("leader killed mid-window, admitted per window (limit {LIMIT}): {admitted:?}");
    assert!(
        admitted.iter().all(|n| *n as f64 <= LIMIT as f64 * 1.10),
        "admitted per window around a leader kill: {admitted:?}"
    );
    assert!(
        admitted[1] as f64 >= LIMIT as f64 * 0.95,
        "the window after the kill is served in full by the new leader: {admitted:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_against_a_large_limit_is_never_refused() -> anyhow::Result<()> {
    // Many requests arriving at once each need a lease; a grant goes to the request that
    // asked for it, so none is refused while the window has room.
    let cluster = Cluster::start(1, false).await?;
    cluster.wait_leader(Duration::from_secs(10)).await?;
    let limiter = Limiter::new(
        format!("http://{}", cluster.voter(1).grpc().unwrap()),
        "edge-burst".into(),
    );
    let limit = WindowLimit {
        key: "key:burst:tpm".into(),
        limit: 1_000_000_000,
        window: Duration::from_secs(60),
    };
    let mut refused = 0;
    for round in 0..5 {
        let started = std::time::Instant::now();
        let burst: Vec<_> = (0..64)
            .map(|_| {
                let (limiter, limit) = (limiter.clone(), limit.clone());
                tokio::spawn(async move { limiter.admit(&limit, 15).await })
            })
            .collect();
        for admitted in burst {
            if admitted.await?.is_err() {
                refused += 1;
            }
        }
        eprintln!("burst {round}: 64 admitted in {:?}", started.elapsed());
    }
    assert_eq!(refused, 0, "refused {refused} of 320 under a limit of 10^9");
    Ok(())
}
