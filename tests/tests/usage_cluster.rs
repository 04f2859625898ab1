//! Usage accounting end to end: two edges, two keys, a priced model, a three-voter control plane.
//! One edge is killed without a chance to flush and every voter is restarted; the usage API then
//! shows each key's tokens and cost, short by at most what the killed edge counted after its
//! last flush. `switchyard usage --json` and `switchyard keys list --json` read the same.

#![allow(
    clippy::unwrap_used,
    reason = "a poisoned lock or a panicked task is a failed test"
)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::usage::UsageView;
use switchyard_tests::cluster::{ADMIN_TOKEN, Cluster};
use switchyard_tests::deploy::switchyard_bin;
use switchyard_tests::harness::wait_for;
use switchyard_tests::openai_fake::OpenAiFake;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ALICE: &str = "sy_live_alice_0123456789abcdef";
const BOB: &str = "sy_live_bob_0123456789abcdefgh";
/// What the fake upstream reports for every answer.
const PROMPT: u64 = 9;
const COMPLETION: u64 = 12;
/// US dollars per 1M tokens of model `m`.
const IN_PRICE: f64 = 2.0;
const OUT_PRICE: f64 = 10.0;

fn config(upstream: &str) -> String {
    format!(
        "endpoints:\n  - id: up\n    url: {upstream}\n    models: [m]\n\
         models:\n  - name: m\n    deployments:\n      - endpoint: up\n        model: m\n\
         \x20       price: {{input_usd_per_mtok: {IN_PRICE}, output_usd_per_mtok: {OUT_PRICE}}}\n\
         keys:\n  - id: alice\n    key: {ALICE}\n  - id: bob\n    key: {BOB}\n"
    )
}

/// An edge following `grpc` that flushes usage every `flush_ms`; the handle aborts it (a crash:
/// nothing is flushed on the way out).
async fn edge(grpc: SocketAddr, name: &str, flush_ms: u64) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = switchyard_edge::Config {
        control_plane: format!("http://{grpc}"),
        edge_name: name.into(),
        usage_flush_ms: flush_ms,
        ..Default::default()
    };
    let task = tokio::spawn(async move {
        let _ended = switchyard_edge::run(cfg, listener, std::future::pending()).await;
    });
    (addr, task)
}

async fn chat(http: &reqwest::Client, edge: SocketAddr, key: &str, stream: bool) -> u16 {
    let r = http
        .post(format!("http://{edge}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    // Read the whole body: a stream is metered when it ends.
    let _body = r.bytes().await.unwrap();
    status
}

/// Sends `n` requests for `key` through `edge` (every third streams); all must succeed.
async fn send(http: &reqwest::Client, edge: SocketAddr, key: &str, n: u64) {
    for i in 0..n {
        assert_eq!(chat(http, edge, key, i % 3 == 0).await, 200);
    }
}

async fn by_key(admin: &AdminClient) -> Option<(UsageView, u64, u64)> {
    let view = admin
        .usage(&[("group_by", "key".into()), ("from", "0".into())])
        .await
        .ok()?;
    let requests = |k: &str| {
        view.rows
            .iter()
            .find(|r| r.group == k)
            .map_or(0, |r| r.totals.requests)
    };
    let (a, b) = (requests("alice"), requests("bob"));
    Some((view, a, b))
}

fn cost(requests: u64) -> f64 {
    requests as f64 * (PROMPT as f64 * IN_PRICE + COMPLETION as f64 * OUT_PRICE) / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_a_killed_edge_and_restarted_voters() -> anyhow::Result<()> {
    let fake = OpenAiFake::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config(&fake.base_url()))?;
    let file = file.to_string_lossy().to_string();
    let mut cluster = Cluster::start_with_args(3, false, &["--config", &file]).await?;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
    let admin = cluster.voter(leader).admin()?;
    let http = reqwest::Client::new();
    // Edge a flushes often; edge b follows another voter.
    let other = (1..=3).find(|id| *id != leader).unwrap();
    let (a, a_task) = edge(cluster.voter(leader).grpc().unwrap(), "edge-a", 200).await;
    let (b, _b_task) = edge(cluster.voter(other).grpc().unwrap(), "edge-b", 200).await;
    for addr in [a, b] {
        wait_for(Duration::from_secs(15), "the edge to serve m", || async {
            (chat(&http, addr, ALICE, false).await == 200).then_some(())
        })
        .await?;
    }
    // Two warm-up requests by alice, then the traffic.
    send(&http, a, ALICE, 10).await;
    send(&http, a, BOB, 4).await;
    send(&http, b, ALICE, 6).await;
    send(&http, b, BOB, 5).await;
    let (mut alice, mut bob) = (2 + 10 + 6, 4 + 5);
    wait_for(
        Duration::from_secs(15),
        "every request in usage",
        || async {
            let (_, a_n, b_n) = by_key(&admin).await?;
            (a_n == alice && b_n == bob).then_some(())
        },
    )
    .await?;

    // Edge a counts three more requests and dies before its next flush can send them.
    let unflushed = 3;
    send(&http, a, ALICE, unflushed).await;
    a_task.abort();
    alice += unflushed;

    // Every voter restarts; edge b keeps serving and reports again once a leader is back.
    for id in 1..=3 {
        cluster.stop(id).await?;
    }
    for id in 1..=3 {
        cluster.restart(id).await?;
    }
    let leader = cluster.wait_leader(Duration::from_secs(20)).await?;
    let admin = cluster.voter(leader).admin()?;
    send(&http, b, BOB, 2).await;
    bob += 2;

    let (view, a_n, b_n) = wait_for(
        Duration::from_secs(30),
        "usage after the restart",
        || async {
            let (view, a_n, b_n) = by_key(&admin).await?;
            (b_n == bob && a_n + unflushed >= alice).then_some((view, a_n, b_n))
        },
    )
    .await?;
    assert_eq!(b_n, bob, "bob's requests all went through a live edge");
    assert!(
        (alice - unflushed..=alice).contains(&a_n),
        "alice: {a_n} of {alice}, at most the {unflushed} unflushed ones of the killed edge lost"
    );
    for (key, n) in [("alice", a_n), ("bob", b_n)] {
        let row = view.rows.iter().find(|r| r.group == key).unwrap();
        assert_eq!(row.totals.input_tokens, n * PROMPT, "{key}");
        assert_eq!(row.totals.output_tokens, n * COMPLETION, "{key}");
        assert!(
            (row.totals.cost_usd - cost(n)).abs() < 1e-9,
            "{key}: {row:?}"
        );
        assert_eq!(row.totals.errors, 0);
    }

    // The same through the CLI.
    let server = cluster.voter(leader).admin_url()?;
    let cli = |args: &[&str]| -> anyhow::Result<Value> {
        let out = std::process::Command::new(switchyard_bin()?)
            .args(args)
            .args(["--server", &server, "--token", ADMIN_TOKEN, "--json"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let usage = cli(&["usage", "--since", "1h", "--group-by", "model"])?;
    assert_eq!(usage["group_by"], "model");
    assert_eq!(usage["rows"][0]["group"], "m");
    // The totals include the warm-up requests an edge refused before it had the keys.
    assert_eq!(usage["totals"]["requests"], view.totals.requests, "{usage}");
    let keys = cli(&["keys", "list"])?;
    let spent = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == "bob")
        .unwrap()["spend_today_usd"]
        .as_f64()
        .unwrap();
    assert!((spent - cost(b_n)).abs() < 1e-9, "bob spent {spent}");
    Ok(())
}
