//! Upstream deployment limits and token settlement, end to end over HTTP against a real control
//! plane: an upstream that enforces 30 requests a minute itself (announcing it Groq-style)
//! behind three edges, a declared `rpm` that overflows to another deployment before any client
//! sees a 429, and a key's `tpm` charged with the real usage rather than the estimate.
//!
//! Windows are real wall-clock minutes (the same ones the edges' leases use); the three-edge
//! run lasts one minute.

#![allow(
    clippy::unwrap_used,
    reason = "a poisoned lock or a panicked task is a failed test"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use switchyard_control_plane::state::Limits;
use switchyard_edge::limits::admission::go_duration;
use switchyard_edge::limits::now_ms;
use switchyard_tests::harness::init;
use switchyard_tests::served_cluster::{KeyedCluster, follow_voter};
use tokio::net::TcpListener;

const WINDOW_MS: u64 = 60_000;

/// What one fake upstream saw, per wall-clock minute.
#[derive(Debug, Default)]
struct Seen {
    /// Requests received (served or refused).
    received: BTreeMap<u64, u64>,
    /// Requests answered 429.
    refused: BTreeMap<u64, u64>,
}

/// A fake OpenAI-compatible upstream. With `rpm`, it enforces that many requests per
/// wall-clock minute itself and announces it the way Groq and OpenAI do. Every answer reports
/// `usage` of `tokens` in total.
#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl Fake {
    async fn start(rpm: Option<u64>, tokens: u64) -> anyhow::Result<Self> {
        Self::slow(rpm, tokens, Duration::ZERO).await
    }

    /// Like [`Fake::start`], answering after `delay`.
    async fn slow(rpm: Option<u64>, tokens: u64, delay: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let s = seen.clone();
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |body: axum::Json<Value>| {
                let seen = s.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    answer(&seen, rpm, tokens, &body)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, seen })
    }

    fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn received(&self) -> BTreeMap<u64, u64> {
        self.seen.lock().unwrap().received.clone()
    }

    fn refused(&self) -> u64 {
        self.seen.lock().unwrap().refused.values().sum()
    }

    fn total(&self) -> u64 {
        self.received().values().sum()
    }
}

fn answer(seen: &Mutex<Seen>, rpm: Option<u64>, tokens: u64, body: &Value) -> Response {
    let now = now_ms();
    let window = now / WINDOW_MS;
    let reset = Duration::from_millis((window + 1) * WINDOW_MS - now);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    };
    {
        let mut seen = seen.lock().unwrap();
        let received = seen.received.entry(window).or_default();
        *received += 1;
        let used = *received - seen.refused.get(&window).copied().unwrap_or(0);
        if let Some(rpm) = rpm {
            set("x-ratelimit-limit-requests", rpm.to_string());
            set("x-ratelimit-reset-requests", go_duration(reset));
            if used > rpm {
                *seen.refused.entry(window).or_default() += 1;
                set("x-ratelimit-remaining-requests", "0".into());
                set("retry-after", reset.as_secs().max(1).to_string());
                let error = json!({"error": {"message": "Rate limit reached for requests",
                    "type": "requests", "code": "rate_limit_exceeded"}});
                return (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(error)).into_response();
            }
            set("x-ratelimit-remaining-requests", (rpm - used).to_string());
        }
    }
    let usage = json!({"prompt_tokens": tokens / 2, "completion_tokens": tokens - tokens / 2,
        "total_tokens": tokens});
    if body["stream"].as_bool() == Some(true) {
        let mut sse = String::new();
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{"index": 0, "delta": {"content": "ok"}}]});
        sse.push_str(&format!("data: {chunk}\n\n"));
        if body["stream_options"]["include_usage"].as_bool() == Some(true) {
            let last = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
                "model": "m", "choices": [], "usage": usage});
            sse.push_str(&format!("data: {last}\n\n"));
        }
        sse.push_str("data: [DONE]\n\n");
        set("content-type", "text/event-stream".into());
        return (StatusCode::OK, headers, sse).into_response();
    }
    let completion = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
        "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "ok"}}], "usage": usage});
    (StatusCode::OK, headers, axum::Json(completion)).into_response()
}

/// `fake` as endpoint `id` serving `models`, with `limits` on its deployments.
fn endpoint(id: &str, fake: &Fake, models: &[&str], limits: Limits) -> NewEndpoint {
    NewEndpoint {
        id: id.into(),
        url: fake.url(),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        weight: 1,
        limits,
        ..Default::default()
    }
}

/// A client key called `caller` with `limits`.
fn caller(limits: Limits) -> NewKey {
    NewKey {
        name: "caller".into(),
        limits,
        ..Default::default()
    }
}

/// Starts an edge following the voter at `grpc`, and waits until it serves `model`.
async fn edge(grpc: SocketAddr, name: &str, secret: &str, model: &str) -> anyhow::Result<String> {
    let addr = follow_voter(grpc, name, secret, model, Duration::from_secs(15)).await?;
    Ok(format!("http://{addr}"))
}

/// One chat request: status, serving endpoint, headers, body.
async fn chat(
    client: &reqwest::Client,
    edge: &str,
    secret: &str,
    body: Value,
) -> anyhow::Result<(u16, String, reqwest::header::HeaderMap, String)> {
    let response = client
        .post(format!("{edge}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let endpoint = headers
        .get("x-switchyard-endpoint")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((status, endpoint, headers, response.text().await?))
}

fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// Waits out the end of the current minute when less than `margin` of it is left, so a short
/// test runs inside one window.
async fn fresh_window(margin: Duration) {
    let now = now_ms();
    let left = WINDOW_MS - now % WINDOW_MS;
    if u128::from(left) < margin.as_millis() {
        tokio::time::sleep(Duration::from_millis(left + 50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_upstream_limit_holds_across_three_edges_and_overflow_is_served()
-> anyhow::Result<()> {
    init();
    let limited = Fake::start(Some(30), 10).await?;
    let backup = Fake::start(None, 10).await?;
    // Nothing is declared: the edges learn the 30 from the upstream's own headers.
    let endpoints = [
        endpoint("limited", &limited, &["m"], Limits::default()),
        endpoint("backup", &backup, &["m"], Limits::default()),
    ];
    let KeyedCluster {
        cluster, secret, ..
    } = KeyedCluster::start(3, &endpoints, caller(Limits::default())).await?;
    let mut edges = Vec::new();
    for id in 1..=3 {
        let grpc = cluster.voter(id).grpc().unwrap();
        edges.push(edge(grpc, &format!("edge-{id}"), &secret, "m").await?);
    }

    // 3 edges x 2 callers x ~8/s: about 2,900 a minute against the upstream's 30.
    let until = now_ms() + WINDOW_MS;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let outcomes: Arc<Mutex<BTreeMap<(u16, String), u64>>> = Arc::default();
    let mut tasks = Vec::new();
    for edge in &edges {
        for _ in 0..2 {
            let (client, edge, secret, outcomes) = (
                client.clone(),
                edge.clone(),
                secret.clone(),
                outcomes.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while now_ms() < until {
                    let (status, endpoint, _, _) =
                        chat(&client, &edge, &secret, hi("m")).await.unwrap();
                    *outcomes
                        .lock()
                        .unwrap()
                        .entry((status, endpoint))
                        .or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(120)).await;
                }
            }));
        }
    }
    for task in tasks {
        task.await?;
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let received = limited.received();
    let refused = limited.refused();
    eprintln!(
        "upstream with 30 rpm behind 3 edges: received per minute {received:?}, answered 429 {refused} times; \
         clients saw {outcomes:?}; backup served {}",
        backup.total()
    );
    let handful = 6;
    assert!(
        refused <= handful,
        "the limited upstream refused {refused} requests"
    );
    for (window, n) in &received {
        assert!(
            *n <= 30 + handful,
            "window {window}: the limited upstream received {n}"
        );
    }
    assert!(
        limited.total() >= 25,
        "the limited upstream is still used up to its limit: {received:?}"
    );
    let served: u64 = outcomes
        .iter()
        .filter(|((status, _), _)| *status == 200)
        .map(|(_, n)| n)
        .sum();
    let total: u64 = outcomes.values().sum();
    assert_eq!(
        served, total,
        "every client request was served: {outcomes:?}"
    );
    assert!(
        backup.total() >= total - limited.total(),
        "the overflow went to the other deployment"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_limit_overflows_to_another_deployment_then_429s() -> anyhow::Result<()> {
    init();
    let small = Fake::start(None, 10).await?;
    // Slower, so the balancer prefers `small` while it has capacity.
    let big = Fake::slow(None, 10, Duration::from_millis(40)).await?;
    let rpm = Limits {
        rpm: 5,
        ..Default::default()
    };
    // `small` serves m (with `big`) and `solo` (alone), 5 requests a minute each.
    let endpoints = [
        endpoint("small", &small, &["m", "solo"], rpm),
        endpoint("big", &big, &["m"], Limits::default()),
    ];
    let KeyedCluster {
        cluster, secret, ..
    } = KeyedCluster::start(1, &endpoints, caller(Limits::default())).await?;
    let edge = edge(cluster.voter(1).grpc().unwrap(), "edge-1", &secret, "solo").await?;
    fresh_window(Duration::from_secs(20)).await;
    let client = reqwest::Client::new();

    let mut by_endpoint: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..16 {
        let (status, endpoint, _, body) = chat(&client, &edge, &secret, hi("m")).await?;
        assert_eq!(status, 200, "{body}");
        *by_endpoint.entry(endpoint).or_default() += 1;
    }
    eprintln!("m with small at 5 rpm: served by {by_endpoint:?}");
    assert_eq!(
        by_endpoint.get("small").copied(),
        Some(5),
        "the preferred deployment serves its 5, the rest overflows"
    );
    assert_eq!(small.total(), 5, "and it is sent no more than that");

    // `solo` has no other deployment: 5 pass, then the client is told when to come back.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (status, _, headers, body) = chat(&client, &edge, &secret, hi("solo")).await?;
        if status == 429 {
            let error: Value = serde_json::from_str(&body)?;
            assert_eq!(error["error"]["type"], "rate_limit_error", "{body}");
            let retry: u64 = headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap();
            assert!((1..=60).contains(&retry), "retry-after {retry}");
        }
        statuses.push(status);
    }
    eprintln!("solo at 5 rpm: {statuses:?}");
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_tokens_are_charged_real_usage_not_the_estimate() -> anyhow::Result<()> {
    init();
    // Each answer reports 10 tokens; each request reserves about 300 (max_tokens).
    let cheap = Fake::start(None, 10).await?;
    // Each answer reports 600 tokens; each request reserves about 11.
    let costly = Fake::start(None, 600).await?;
    let tpm = Limits {
        tpm: 1_000,
        ..Default::default()
    };
    let endpoints = [
        endpoint("cheap", &cheap, &["cheap"], Limits::default()),
        endpoint("costly", &costly, &["costly"], Limits::default()),
    ];
    let KeyedCluster {
        cluster,
        admin,
        secret: cheap_key,
        ..
    } = KeyedCluster::start(1, &endpoints, caller(tpm)).await?;
    let costly_key = admin.create_key(&caller(tpm)).await?.secret;
    let edge = edge(
        cluster.voter(1).grpc().unwrap(),
        "edge-1",
        &cheap_key,
        "costly",
    )
    .await?;
    fresh_window(Duration::from_secs(25)).await;
    let client = reqwest::Client::new();

    // Estimates alone would admit three (3 x 300 of 1,000); real usage (10 each) admits all,
    // streamed or not.
    for i in 0..24 {
        let mut body = hi("cheap");
        body["max_tokens"] = json!(300);
        if i % 2 == 1 {
            body["stream"] = json!(true);
        }
        let (status, _, _, text) = chat(&client, &edge, &cheap_key, body).await?;
        assert_eq!(status, 200, "request {i}: {text}");
    }

    // Real usage above the estimate is charged: two answers of 600 spend the 1,000.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let mut body = hi("costly");
        body["max_tokens"] = json!(1);
        statuses.push(chat(&client, &edge, &costly_key, body).await?.0);
    }
    eprintln!("tpm 1000, answers of 600 tokens: {statuses:?}");
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert_eq!(costly.total(), 2);
    Ok(())
}
