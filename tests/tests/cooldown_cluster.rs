//! Cooldowns across edges, against a real three-voter control plane: an upstream's 429 at
//! edge A reaches edge B through the routing table fast (p99 over repeats), and a cooldown
//! survives killing and restarting every control-plane node.
//!
//! Two upstreams serve model `m`: `x` answers at once, `y` after 150 ms, so an edge sends to
//! `x` whenever it may (a latency spike at `x` on a busy machine stays below `y`'s). `x` answers 429 to requests marked `"user": "trigger"` (only edge A
//! sends those), so edge B can only learn of the cooldown from the control plane.

#![allow(
    clippy::unwrap_used,
    reason = "a poisoned lock or a panicked task is a failed test"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use switchyard_edge::limits::now_ms;
use switchyard_tests::harness::{init, wait_for};
use switchyard_tests::served_cluster::{KeyedCluster, follow_voter, serves};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// An upstream answering after `delay`; with `trigger_wait_ms` set, requests marked
/// `"user": "trigger"` get a 429 asking for that wait, and the time of the last one is kept.
struct Upstream {
    addr: SocketAddr,
    trigger_wait_ms: Arc<AtomicU64>,
    last_429: Arc<Mutex<Option<Instant>>>,
}

async fn upstream(delay: Duration) -> anyhow::Result<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let trigger_wait_ms = Arc::new(AtomicU64::new(0));
    let last_429: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (wait, last) = (trigger_wait_ms.clone(), last_429.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| {
            let (wait, last) = (wait.clone(), last.clone());
            async move {
                tokio::time::sleep(delay).await;
                let wait_ms = wait.load(Ordering::SeqCst);
                if wait_ms > 0 && body["user"] == "trigger" {
                    *last.lock().unwrap() = Some(Instant::now());
                    let mut headers = HeaderMap::new();
                    headers.insert("retry-after-ms", HeaderValue::from(wait_ms));
                    let error = json!({"error": {"message": "slow down",
                        "type": "requests", "code": "rate_limit_exceeded"}});
                    return (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(error))
                        .into_response();
                }
                let completion = json!({"id": "chatcmpl-1", "object": "chat.completion",
                    "created": 1, "model": "m", "choices": [{"index": 0,
                    "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]});
                axum::Json(completion).into_response()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Upstream {
        addr,
        trigger_wait_ms,
        last_429,
    })
}

/// Starts an edge following the voter at `grpc`; waits until it serves `model`.
async fn edge(grpc: SocketAddr, name: &str, secret: &str, model: &str) -> anyhow::Result<String> {
    let addr = follow_voter(grpc, name, secret, model, Duration::from_secs(20)).await?;
    Ok(format!("http://{addr}"))
}

/// Sends one chat request for `m` (marked `user` when given); returns the serving endpoint.
async fn chat(
    client: &reqwest::Client,
    edge: &str,
    secret: &str,
    user: Option<&str>,
) -> anyhow::Result<String> {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    let response = client
        .post(format!("{edge}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "status {}: {}",
        response.status(),
        response.text().await?
    );
    Ok(response
        .headers()
        .get("x-switchyard-endpoint")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned())
}

/// Polls edge B back to back until it serves from `y`; returns when that request was sent.
async fn until_b_avoids_x(
    client: &reqwest::Client,
    b: &str,
    secret: &str,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let sent = Instant::now();
        if chat(client, b, secret, None).await? == "y" {
            return Ok(sent);
        }
    }
    anyhow::bail!("edge B still sends to x after {timeout:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_reaches_other_edges_fast_and_survives_a_control_plane_restart()
-> anyhow::Result<()> {
    init();
    let x = upstream(Duration::ZERO).await?;
    let y = upstream(Duration::from_millis(150)).await?;
    let endpoints = [("x", &x), ("y", &y)].map(|(id, up)| NewEndpoint {
        id: id.into(),
        url: format!("http://{}/v1", up.addr),
        models: vec!["m".into()],
        weight: 1,
        ..Default::default()
    });
    let key = NewKey {
        name: "caller".into(),
        ..Default::default()
    };
    let KeyedCluster {
        mut cluster,
        secret,
        ..
    } = KeyedCluster::start(3, &endpoints, key).await?;
    let a = edge(cluster.voter(1).grpc().unwrap(), "edge-a", &secret, "m").await?;
    let b = edge(cluster.voter(2).grpc().unwrap(), "edge-b", &secret, "m").await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // Both edges learn y's latency, so x is their first choice.
    for _ in 0..10 {
        chat(&client, &a, &secret, None).await?;
        chat(&client, &b, &secret, None).await?;
    }

    // Repeats: a 429 at A cools x for 0.6 s; how long until B stops sending there? A hundred
    // rounds, so the 99th percentile is a percentile and not the slowest round.
    x.trigger_wait_ms.store(600, Ordering::SeqCst);
    let mut delays = Vec::new();
    for round in 0..100 {
        wait_for(Duration::from_secs(10), "edge B to use x again", || async {
            (chat(&client, &b, &secret, None).await.ok()? == "x").then_some(())
        })
        .await?;
        // B is polled back to back from before the 429 until it avoids x.
        let poll = {
            let (client, b, secret) = (client.clone(), b.clone(), secret.clone());
            tokio::spawn(async move {
                until_b_avoids_x(&client, &b, &secret, Duration::from_secs(2)).await
            })
        };
        // A's request is refused by x and served by y; A has cooled x and queued the report.
        let served = chat(&client, &a, &secret, Some("trigger")).await?;
        anyhow::ensure!(served == "y", "round {round}: A was served by {served}");
        let refused_at = x.last_429.lock().unwrap().unwrap();
        let avoided_at = poll.await??;
        delays.push(avoided_at.saturating_duration_since(refused_at));
    }
    let mut sorted = delays.clone();
    sorted.sort();
    let p99 = sorted[(sorted.len() * 99).div_ceil(100) - 1];
    let p50 = sorted[sorted.len() / 2];
    eprintln!(
        "429 at edge A -> edge B avoids the target, over {} rounds: p50 {p50:?}, p99 {p99:?}, all {sorted:?}",
        sorted.len()
    );
    assert!(
        p99 <= Duration::from_millis(200),
        "p99 {p99:?} over {sorted:?}"
    );

    // A long cooldown, then every control-plane node is killed and started again.
    let wait = Duration::from_secs(30);
    x.trigger_wait_ms.store(
        u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        Ordering::SeqCst,
    );
    wait_for(Duration::from_secs(10), "edge B to use x again", || async {
        (chat(&client, &b, &secret, None).await.ok()? == "x").then_some(())
    })
    .await?;
    let before = now_ms();
    anyhow::ensure!(chat(&client, &a, &secret, Some("trigger")).await? == "y");
    let deadline_ms = before + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    until_b_avoids_x(&client, &b, &secret, Duration::from_secs(1)).await?;
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    let leader = cluster.wait_leader(Duration::from_secs(20)).await?;
    let admin = cluster.voter(leader).admin()?;
    let cooldowns = admin.cooldowns().await?;
    eprintln!(
        "after restarting every voter ({} ms after the 429): cooldowns {cooldowns:?}",
        now_ms() - before
    );
    let held = cooldowns
        .iter()
        .find(|c| c.endpoint_id == "x")
        .map(|c| c.until_ms);
    anyhow::ensure!(
        held.is_some_and(|until| u64::try_from(until).unwrap_or(0) + 1_000 >= deadline_ms),
        "the restarted control plane holds x's cooldown: {cooldowns:?}"
    );

    // A new table version after the restart (one more endpoint) reaches B; a fresh edge C
    // starts from the restarted control plane alone.
    admin
        .add_endpoint(&NewEndpoint {
            id: "z".into(),
            url: format!("http://{}/v1", y.addr),
            models: vec!["after-restart".into()],
            weight: 1,
            ..Default::default()
        })
        .await?;
    serves(&b, &secret, "after-restart", Duration::from_secs(20)).await?;
    let c = edge(
        cluster.voter(3).grpc().unwrap(),
        "edge-c",
        &secret,
        "after-restart",
    )
    .await?;
    let mut rounds = 0;
    while now_ms() + 2_000 < deadline_ms && rounds < 200 {
        for (name, edge) in [("B", &b), ("C", &c)] {
            let served = chat(&client, edge, &secret, None).await?;
            anyhow::ensure!(
                served == "y",
                "edge {name} sent to x {} ms before its cooldown ends",
                deadline_ms.saturating_sub(now_ms())
            );
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("edges B and C avoided x in {rounds} rounds until its deadline");
    assert!(rounds > 0, "the check ran before the deadline");
    // And the cooldown ends when it should.
    wait_for(
        Duration::from_millis(deadline_ms.saturating_sub(now_ms()) + 10_000),
        "edge C to use x after the deadline",
        || async { (chat(&client, &c, &secret, None).await.ok()? == "x").then_some(()) },
    )
    .await?;
    Ok(())
}
