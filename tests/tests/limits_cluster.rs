//! Client-key limits that hold across three edges, end to end over HTTP: a real three-voter
//! control plane, three in-process edges following different voters, one fake upstream.
//!
//! Runs real one-minute windows (about three and a half minutes): requests-per-minute is what
//! users configure, so that is what is measured.

#![allow(
    clippy::unwrap_used,
    reason = "a poisoned lock or a panicked task is a failed test"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::json;
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use switchyard_control_plane::state::Limits;
use switchyard_edge::limits::now_ms;
use switchyard_tests::cluster::Cluster;
use switchyard_tests::harness::init;
use switchyard_tests::served_cluster::{KeyedCluster, follow_voter};
use tokio::net::TcpListener;

const WINDOW_MS: u64 = 60_000;

/// An upstream that answers after `delay` and records the most requests it saw at once.
struct Upstream {
    addr: SocketAddr,
    peak: Arc<AtomicU32>,
}

async fn upstream(delay: Duration) -> anyhow::Result<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let now = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(in_flight, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                n.fetch_sub(1, Ordering::SeqCst);
                axum::Json(
                    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                    "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"}}]}),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Upstream { addr, peak })
}

/// A cluster with the upstream registered as model `m` and a key with `limits`; returns the
/// cluster, its leader, the key's secret and the leader's admin client.
async fn setup(
    upstream: &Upstream,
    limits: Limits,
) -> anyhow::Result<(Cluster, u64, String, AdminClient)> {
    init();
    let endpoint = NewEndpoint {
        id: "up".into(),
        url: format!("http://{}/v1", upstream.addr),
        models: vec!["m".into()],
        weight: 1,
        ..Default::default()
    };
    let key = NewKey {
        name: "limited".into(),
        limits,
        ..Default::default()
    };
    let c = KeyedCluster::start(3, &[endpoint], key).await?;
    Ok((c.cluster, c.leader, c.secret, c.admin))
}

/// Three edges, following `voters`, once each serves `m`.
async fn edges(
    cluster: &Cluster,
    voters: [u64; 3],
    secret: &str,
) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for (i, voter) in voters.into_iter().enumerate() {
        let grpc = cluster.voter(voter).grpc().unwrap();
        let name = format!("edge-{i}");
        out.push(follow_voter(grpc, &name, secret, "m", Duration::from_secs(10)).await?);
    }
    Ok(out)
}

/// Sends chat requests with `secret` to `edge`, `workers` at a time, one every `gap` per worker,
/// until `until_ms`; records 200s by the window they were sent in, and every 429's headers.
async fn load(
    edge: SocketAddr,
    secret: String,
    workers: usize,
    gap: Duration,
    until_ms: u64,
    ok: Arc<Mutex<BTreeMap<u64, u64>>>,
    limited: Arc<AtomicU32>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, secret, ok, limited) =
            (client.clone(), secret.clone(), ok.clone(), limited.clone());
        tasks.push(tokio::spawn(async move {
            while now_ms() < until_ms {
                let sent = now_ms();
                let response = client
                    .post(format!("http://{edge}/v1/chat/completions"))
                    .bearer_auth(&secret)
                    .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
                match response.map(|r| (r.status().as_u16(), r.headers().clone())) {
                    Ok((200, headers)) => {
                        assert!(
                            headers.contains_key("x-ratelimit-remaining-requests")
                                || !headers.contains_key("x-ratelimit-limit-requests")
                        );
                        *ok.lock().unwrap().entry(sent / WINDOW_MS).or_default() += 1;
                    }
                    Ok((429, headers)) => {
                        assert!(
                            headers.contains_key("retry-after"),
                            "a 429 says when to retry"
                        );
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, _)) => panic!("unexpected status {status}"),
                    Err(e) => panic!("request failed: {e}"),
                }
                tokio::time::sleep(gap).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_holds_across_three_edges_and_a_leader_kill() -> anyhow::Result<()> {
    let upstream = upstream(Duration::ZERO).await?;
    let limit = 600;
    let (mut cluster, leader, secret, _admin) = setup(
        &upstream,
        Limits {
            rpm: limit,
            ..Default::default()
        },
    )
    .await?;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    // Edges reach the control plane through the followers (as through a Service whose
    // endpoints are the live voters), so killing the leader leaves them connected.
    let edges = edges(
        &cluster,
        [followers[0], followers[1], followers[0]],
        &secret,
    )
    .await?;

    // Demand: 3 edges x 2 workers x ~20/s, about 7,000 a minute against 600.
    let first_full = now_ms() / WINDOW_MS + 1;
    let until = (first_full + 3) * WINDOW_MS;
    let ok: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let limited = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for edge in edges {
        tasks.push(tokio::spawn(load(
            edge,
            secret.clone(),
            2,
            Duration::from_millis(50),
            until,
            ok.clone(),
            limited.clone(),
        )));
    }
    // Kill the leader in the middle of the third full window.
    let kill_at = (first_full + 2) * WINDOW_MS + WINDOW_MS / 2;
    tokio::time::sleep(Duration::from_millis(kill_at.saturating_sub(now_ms()))).await;
    cluster.kill(leader);
    for task in tasks {
        task.await?;
    }
    let ok = ok.lock().unwrap();
    let per_window: Vec<u64> = (first_full..first_full + 3)
        .map(|w| ok.get(&w).copied().unwrap_or(0))
        .collect();
    eprintln!(
        "rpm {limit} over 3 edges: admitted per minute {per_window:?} (third: leader killed mid-window), {} answered 429",
        limited.load(Ordering::Relaxed)
    );
    let limit = limit as f64;
    for (i, n) in per_window[..2].iter().enumerate() {
        let n = *n as f64;
        assert!(
            n <= limit * 1.02 && n >= limit * 0.95,
            "window {i}: {per_window:?}"
        );
    }
    assert!(
        per_window[2] as f64 <= limit * 1.10,
        "the leader-kill window: {per_window:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_holds_across_three_edges() -> anyhow::Result<()> {
    let upstream = upstream(Duration::from_millis(150)).await?;
    let (cluster, _leader, secret, _admin) = setup(
        &upstream,
        Limits {
            max_concurrent: 4,
            ..Default::default()
        },
    )
    .await?;
    let edges = edges(&cluster, [1, 2, 3], &secret).await?;
    let ok: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let limited = Arc::new(AtomicU32::new(0));
    let until = now_ms() + 10_000;
    let mut tasks = Vec::new();
    for edge in edges {
        // Six callers per edge, eighteen at once against a cap of four.
        tasks.push(tokio::spawn(load(
            edge,
            secret.clone(),
            6,
            Duration::from_millis(5),
            until,
            ok.clone(),
            limited.clone(),
        )));
    }
    for task in tasks {
        task.await?;
    }
    let served: u64 = ok.lock().unwrap().values().sum();
    let peak = upstream.peak.load(Ordering::SeqCst);
    eprintln!(
        "max_concurrent 4 over 3 edges: upstream peak in flight {peak}, {served} served, {} answered 429",
        limited.load(Ordering::Relaxed)
    );
    assert!(peak <= 4, "the upstream saw {peak} requests at once");
    assert!(served >= 40, "the cap admits work, not nothing: {served}");
    assert!(
        limited.load(Ordering::Relaxed) > 0,
        "demand above the cap is refused"
    );
    Ok(())
}
