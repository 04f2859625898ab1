//! A key's money budget holds across two edges: both send until the key is refused with the
//! budget code; the cost of what was served stays within the budget plus the documented
//! overshoot (none here: every request sets `max_tokens`, so no reservation is short).

#![allow(
    clippy::unwrap_used,
    reason = "a poisoned lock or a panicked task is a failed test"
)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::cluster::Cluster;
use switchyard_tests::harness::wait_for;
use switchyard_tests::openai_fake::OpenAiFake;
use tokio::net::TcpListener;

const KEY: &str = "sy_live_budget_0123456789abcdef";
const FREE_KEY: &str = "sy_live_nobudget_0123456789abcd";
/// What the fake upstream reports for every answer.
const PROMPT: u64 = 9;
const COMPLETION: u64 = 12;
/// US dollars per 1M tokens.
const IN_PRICE: f64 = 1_000.0;
const OUT_PRICE: f64 = 2_000.0;
/// Room for about 40 requests: 9 × 1000 + 12 × 2000 = 33 000 $/1M → $0.033 each.
const BUDGET_USD: f64 = 1.35;

fn config(upstream: &str) -> String {
    format!(
        "endpoints:\n  - id: up\n    url: {upstream}\n    models: [m, free]\n\
         models:\n  - name: m\n    deployments:\n      - endpoint: up\n        model: m\n\
         \x20       price: {{input_usd_per_mtok: {IN_PRICE}, output_usd_per_mtok: {OUT_PRICE}}}\n\
         keys:\n  - id: spender\n    key: {KEY}\n    budget: {{usd_per_day: {BUDGET_USD}}}\n\
         \x20 - id: other\n    key: {FREE_KEY}\n"
    )
}

async fn edge(grpc: SocketAddr, name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = switchyard_edge::Config {
        control_plane: format!("http://{grpc}"),
        edge_name: name.into(),
        usage_flush_ms: 200,
        ..Default::default()
    };
    tokio::spawn(switchyard_edge::run(cfg, listener, std::future::pending()));
    addr
}

async fn chat(http: &reqwest::Client, edge: SocketAddr, key: &str, model: &str) -> (u16, Value) {
    let r = http
        .post(format!("http://{edge}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().contains_key("retry-after");
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status == 429 {
        assert!(retry_after, "a spent budget says when to come back");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_stop_a_key_at_its_budget() -> anyhow::Result<()> {
    let fake = OpenAiFake::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config(&fake.base_url()))?;
    let file = file.to_string_lossy().to_string();
    let cluster = Cluster::start_with_args(1, false, &["--config", &file]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
    let grpc = cluster.voter(leader).grpc().unwrap();
    let edges = [edge(grpc, "edge-a").await, edge(grpc, "edge-b").await];
    let http = reqwest::Client::new();
    for addr in edges {
        wait_for(Duration::from_secs(15), "the edge to serve m", || async {
            (chat(&http, addr, FREE_KEY, "m").await.0 == 200).then_some(())
        })
        .await?;
    }
    // Both edges send for the key at once until each is refused for its budget.
    let mut tasks = Vec::new();
    for addr in edges {
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let mut served = 0u64;
            for _ in 0..200 {
                let (status, body) = chat(&http, addr, KEY, "m").await;
                match status {
                    200 => served += 1,
                    429 => {
                        assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
                        assert_eq!(body["error"]["type"], "insufficient_quota");
                        return served;
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            panic!("the budget never stopped the key");
        }));
    }
    let mut served = 0;
    for t in tasks {
        served += t.await?;
    }
    let each = (PROMPT as f64 * IN_PRICE + COMPLETION as f64 * OUT_PRICE) / 1e6;
    let spent = served as f64 * each;
    // Overshoot bound: 0 (every request set max_tokens). Lease slices strand a little of the
    // budget, so the key stops a few requests short of it, never past it.
    assert!(
        spent <= BUDGET_USD + 1e-9,
        "served {served} requests costing {spent} > budget {BUDGET_USD}"
    );
    assert!(
        spent >= BUDGET_USD * 0.5,
        "served only {served} requests ({spent} of {BUDGET_USD})"
    );
    // Still refused on both edges; free models and other keys still pass.
    for addr in edges {
        assert_eq!(chat(&http, addr, KEY, "m").await.0, 429);
        assert_eq!(chat(&http, addr, KEY, "free").await.0, 200);
        assert_eq!(chat(&http, addr, FREE_KEY, "m").await.0, 200);
    }
    // The usage API agrees with what the clients saw.
    let admin = cluster.voter(leader).admin()?;
    wait_for(
        Duration::from_secs(15),
        "the spend in keys list",
        || async {
            let keys = admin.keys().await.ok()?;
            let k = keys.iter().find(|k| k.id == "spender")?;
            ((k.spend_today_usd - spent).abs() < 1e-6).then_some(())
        },
    )
    .await?;
    Ok(())
}
