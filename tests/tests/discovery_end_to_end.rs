//! End to end through a real control plane (with a join token) and a real edge: a peer's server
//! appears → routable at the edge within two scan intervals; it dies → out of routing within the
//! thresholds; it returns → routable again; an agent with the wrong join token is rejected.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_node_agent::{PeerEntry, ServerKind};
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::{AgentMessage, Hello};
use switchyard_tests::discovery_cluster::{Cluster, RunningAgent, isolated_agent};
use switchyard_tests::discovery_fakes::FakeBackend;
use switchyard_tests::harness::{edge_models, wait_for};
use tokio::net::TcpListener;

const TOKEN: &str = "sy_join_discovery_test_token";
const SCAN_MS: u64 = 300;
/// Control plane commit + table push + edge swap: generous, measured values are printed.
const PROPAGATION: Duration = Duration::from_millis(700);

fn has(models: &Option<Vec<String>>, model: &str) -> bool {
    models
        .as_ref()
        .is_some_and(|m| m.iter().any(|x| x == model))
}

#[tokio::test]
async fn discovered_peer_is_routed_removed_and_readded() -> anyhow::Result<()> {
    let cluster = Cluster::start(Some(TOKEN), TcpListener::bind("127.0.0.1:0").await?).await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let edge = cluster.edge;
    let addr = "127.0.0.12:11434";

    let mut cfg = isolated_agent(&cluster.grpc_url(), "e2e-node", SCAN_MS);
    cfg.join_token = TOKEN.to_owned();
    cfg.fail_threshold = 2;
    cfg.success_threshold = 1;
    cfg.remove_after_ms = 1_200;
    cfg.discovery.peers = vec![PeerEntry::Address("127.0.0.12".into())];
    let agent = RunningAgent::spawn(cfg);

    // Let the agent connect with nothing found, so appearance is measured from a running agent.
    wait_for(Duration::from_secs(10), "the edge to serve", || async {
        edge_models(&client, edge).await.map(|_| ())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(SCAN_MS)).await;

    // Appears: routable within two scan intervals (plus propagation).
    let started = Instant::now();
    let ollama = FakeBackend::start(ServerKind::Ollama, addr, &["llama3.2:latest"]).await?;
    let within = Duration::from_millis(2 * SCAN_MS) + PROPAGATION;
    wait_for(within, "the peer's model at the edge", || async {
        has(&edge_models(&client, edge).await, "llama3.2:latest").then_some(())
    })
    .await?;
    eprintln!(
        "appeared at the edge after {:?} (scan interval {SCAN_MS} ms)",
        started.elapsed()
    );
    let state = cluster.control_plane.state().await;
    assert!(
        state.endpoints.contains_key("ollama-127-0-0-12"),
        "{:?}",
        state.endpoints.keys().collect::<Vec<_>>()
    );

    // Routable: a chat request reaches the fake through the edge.
    let answer: serde_json::Value = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&json!({"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "served by ollama"
    );
    assert!(
        ollama
            .requests()
            .iter()
            .any(|r| r == "POST /v1/chat/completions")
    );

    // Dies: out of routing within fail_threshold scans + remove_after (plus propagation).
    let started = Instant::now();
    ollama.stop().await;
    let within = Duration::from_millis(2 * SCAN_MS + 1_200 + SCAN_MS) + PROPAGATION;
    wait_for(
        within,
        "the dead peer's model to leave the edge",
        || async {
            let models = edge_models(&client, edge).await;
            (models.is_some() && !has(&models, "llama3.2:latest")).then_some(())
        },
    )
    .await?;
    eprintln!("removed from the edge after {:?}", started.elapsed());

    // Returns: routable again within two scan intervals.
    let started = Instant::now();
    let ollama = FakeBackend::start(ServerKind::Ollama, addr, &["llama3.2:latest"]).await?;
    let within = Duration::from_millis(2 * SCAN_MS) + PROPAGATION;
    wait_for(within, "the returned peer's model at the edge", || async {
        has(&edge_models(&client, edge).await, "llama3.2:latest").then_some(())
    })
    .await?;
    eprintln!("re-added at the edge after {:?}", started.elapsed());

    agent.stop().await?;
    ollama.stop().await;
    cluster.stop().await
}

#[tokio::test]
async fn a_wrong_join_token_is_rejected() -> anyhow::Result<()> {
    let cluster = Cluster::start(Some(TOKEN), TcpListener::bind("127.0.0.1:0").await?).await?;
    let client = reqwest::Client::builder().no_proxy().build()?;

    // On the wire: Hello with the wrong token gets Rejected.
    let mut grpc = AgentServiceClient::connect(cluster.grpc_url()).await?;
    let hello = AgentMessage {
        body: Some(AgentBody::Hello(Hello {
            node_name: "intruder".into(),
            version: "0".into(),
            join_token: "sy_join_wrong".into(),
            addresses: Vec::new(),
        })),
    };
    let outbound = tokio_stream_once(hello);
    let mut inbound = grpc.report(outbound).await?.into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), inbound.message()).await??;
    match first.and_then(|m| m.body) {
        Some(ControlBody::Rejected(r)) => assert!(!r.reason.is_empty()),
        other => anyhow::bail!("expected Rejected, got {other:?}"),
    }

    // Through real agents: the right token's backend appears, the wrong token's never does.
    let good_server =
        FakeBackend::start(ServerKind::Vllm, "127.0.0.13:8000", &["good-model"]).await?;
    let bad_server =
        FakeBackend::start(ServerKind::Vllm, "127.0.0.14:8000", &["intruder-model"]).await?;
    let mut good = isolated_agent(&cluster.grpc_url(), "good-node", 200);
    good.join_token = TOKEN.into();
    good.discovery.peers = vec![PeerEntry::Address("127.0.0.13".into())];
    let mut bad = isolated_agent(&cluster.grpc_url(), "bad-node", 200);
    bad.join_token = "sy_join_wrong".into();
    bad.discovery.peers = vec![PeerEntry::Address("127.0.0.14".into())];
    let bad = RunningAgent::spawn(bad);
    // The bad agent has had time to scan and try before the good one even starts.
    wait_for(
        Duration::from_secs(10),
        "the intruder's server to be probed",
        || async { (!bad_server.requests().is_empty()).then_some(()) },
    )
    .await?;
    let good = RunningAgent::spawn(good);
    wait_for(
        Duration::from_secs(10),
        "the good agent's model",
        || async { has(&edge_models(&client, cluster.edge).await, "good-model").then_some(()) },
    )
    .await?;
    // Several more report attempts by the bad agent (its backoff starts at 200 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let models = edge_models(&client, cluster.edge).await;
    assert!(!has(&models, "intruder-model"), "{models:?}");
    let state = cluster.control_plane.state().await;
    assert!(
        !state.endpoints.keys().any(|id| id.contains("127-0-0-14")),
        "{:?}",
        state.endpoints.keys().collect::<Vec<_>>()
    );

    good.stop().await?;
    bad.stop().await?;
    good_server.stop().await;
    bad_server.stop().await;
    cluster.stop().await
}

/// A request stream holding one message and then staying open (as a real agent's does).
fn tokio_stream_once(
    msg: AgentMessage,
) -> impl futures::Stream<Item = AgentMessage> + Send + 'static {
    futures::stream::once(async move { msg }).chain(futures::stream::pending())
}

use futures::StreamExt as _;
