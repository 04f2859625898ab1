//! Scans against fake model servers on ephemeral loopback ports.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness setup fails loudly"
)]

mod fake;

use std::time::Duration;

use fake::{FakeModelServer, closed_port};
use switchyard_node_agent::discovery::scan::Scanner;
use switchyard_node_agent::probe::facts::unknown_facts;
use switchyard_node_agent::{Config, Naming, ProbeTarget, ServerKind};
use switchyard_proto::v1::Backend;
use tokio::net::TcpListener;
use tokio::time::Instant;

fn config(targets: Vec<ProbeTarget>, probe_timeout_ms: u64) -> Config {
    Config {
        node_name: "testnode".to_owned(),
        naming: Naming::NodeSuffix,
        probe_timeout_ms,
        targets,
        control_plane: "http://127.0.0.1:7700".to_owned(),
        nvidia_smi: String::new(),
        discovery: switchyard_node_agent::DiscoveryConfig {
            docker_host: false,
            mdns: false,
            tailscale: switchyard_node_agent::TailscaleConfig {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Config::default()
    }
}

#[tokio::test]
async fn scan_finds_fake_ollama_and_vllm_but_not_closed_or_empty_servers() {
    let ollama = FakeModelServer::ollama(&["qwen3:8b", "llama3.2:latest"]).await;
    let vllm = FakeModelServer::openai(&["Qwen/Qwen2.5-7B-Instruct"]).await;
    let empty = FakeModelServer::openai(&[]).await;
    let closed = closed_port().await;
    let targets = vec![
        ProbeTarget::new(ServerKind::Ollama, "127.0.0.1", ollama.addr.port()),
        ProbeTarget::new(ServerKind::Vllm, "127.0.0.1", vllm.addr.port()),
        // 200 with zero models does not count.
        ProbeTarget::new(ServerKind::LmStudio, "127.0.0.1", empty.addr.port()),
        ProbeTarget::new(ServerKind::Litellm, "127.0.0.1", closed),
        // Ollama has no /v1/models route in the fake: a 404 does not count.
        ProbeTarget::new(ServerKind::Vllm, "127.0.0.1", ollama.addr.port()),
    ];
    let cfg = config(targets, 1000);
    cfg.validate().unwrap();
    let found = Scanner::new(&cfg).unwrap().scan().await;

    let vllm_port = vllm.addr.port();
    assert_eq!(
        found,
        vec![
            Backend {
                id: "ollama-testnode".to_owned(),
                kind: "ollama".to_owned(),
                base_url: format!("http://127.0.0.1:{}/v1", ollama.addr.port()),
                models: vec!["llama3.2:latest".to_owned(), "qwen3:8b".to_owned()],
                facts: Some(unknown_facts()),
                api_key: String::new(),
            },
            Backend {
                id: format!("vllm-testnode-{vllm_port}"),
                kind: "vllm".to_owned(),
                base_url: format!("http://127.0.0.1:{vllm_port}/v1"),
                models: vec!["Qwen/Qwen2.5-7B-Instruct".to_owned()],
                facts: Some(unknown_facts()),
                api_key: String::new(),
            },
        ]
    );
    ollama.stop().await;
    vllm.stop().await;
    empty.stop().await;
}

#[tokio::test]
async fn probes_time_out_and_run_concurrently() {
    // Listeners that never accept: connects succeed (backlog) but no response ever comes.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let targets = silent
        .iter()
        .zip(ServerKind::ALL)
        .map(|(l, kind)| ProbeTarget::new(kind, "127.0.0.1", l.local_addr().unwrap().port()))
        .collect();
    let timeout_ms = 500;
    let scanner = Scanner::new(&config(targets, timeout_ms)).unwrap();
    let started = Instant::now();
    let found = scanner.scan().await;
    let took = started.elapsed();
    assert!(found.is_empty());
    // Four sequential probes would take at least 4 × 500 ms.
    assert!(took < Duration::from_millis(1500), "scan took {took:?}");
}
