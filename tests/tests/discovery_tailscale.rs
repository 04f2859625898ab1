//! Tailnet peers: a fake tailscaled LocalAPI on a unix socket in a temp dir, the `tailscale status
//! --json` fallback through a stand-in CLI, and Tailscale being absent.

use std::time::Duration;

use switchyard_node_agent::ServerKind;
use switchyard_node_agent::discovery::scan::Scanner;
use switchyard_node_agent::discovery::tailscale;
use switchyard_tests::discovery_cluster::isolated_agent;
use switchyard_tests::discovery_fakes::{
    FakeBackend, FakeTailscaled, tailnet_status, write_script,
};
use switchyard_tests::harness::init;

#[tokio::test]
async fn online_tailnet_peers_from_the_localapi_are_probed_like_peers() -> anyhow::Result<()> {
    init();
    let dir = tempfile::tempdir()?;
    // One node on two addresses (reported once), one offline node (never probed).
    let on_first_ip =
        FakeBackend::start(ServerKind::Ollama, "127.0.0.8:11434", &["llama3.2:latest"]).await?;
    let on_second_ip =
        FakeBackend::start(ServerKind::Ollama, "127.0.0.9:11434", &["llama3.2:latest"]).await?;
    let vllm = FakeBackend::start(ServerKind::Vllm, "127.0.0.9:8000", &["Qwen/Qwen3-8B"]).await?;
    let offline = FakeBackend::start(ServerKind::Ollama, "127.0.0.10:11434", &["hidden"]).await?;
    let status = tailnet_status(&[
        ("mac-studio", &["127.0.0.9", "127.0.0.8"], true),
        ("old-laptop", &["127.0.0.10"], false),
    ]);
    let socket = dir.path().join("tailscaled.sock");
    let tailscaled = FakeTailscaled::start(&socket, status)?;

    let mut cfg = isolated_agent("http://127.0.0.1:1", "n", 1000);
    cfg.discovery.tailscale.enabled = true;
    cfg.discovery.tailscale.socket = Some(socket.clone());
    cfg.discovery.tailscale.cli = dir.path().join("no-such-tailscale").display().to_string();
    let found = Scanner::new(&cfg)?.scan().await;
    let got: Vec<(&str, &str)> = found
        .iter()
        .map(|b| (b.id.as_str(), b.base_url.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            // IPs are tried in address order; the node's Ollama is reported once.
            ("ollama-127-0-0-8", "http://127.0.0.8:11434/v1"),
            ("vllm-127-0-0-9", "http://127.0.0.9:8000/v1"),
        ]
    );
    assert!(offline.requests().is_empty(), "an offline peer was probed");
    assert!(
        !on_second_ip.requests().is_empty(),
        "every Tailscale IP is probed"
    );
    assert!(
        tailscaled
            .hosts_seen()
            .iter()
            .all(|h| h == tailscale::LOCALAPI_HOST),
        "{:?}",
        tailscaled.hosts_seen()
    );
    assert!(!tailscaled.hosts_seen().is_empty());

    tailscaled.stop().await;
    for fake in [on_first_ip, on_second_ip, vllm, offline] {
        fake.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn the_cli_is_the_fallback_and_absence_is_quiet() -> anyhow::Result<()> {
    init();
    let dir = tempfile::tempdir()?;
    let lmstudio =
        FakeBackend::start(ServerKind::LmStudio, "127.0.0.11:1234", &["qwen3-4b"]).await?;
    let status = tailnet_status(&[("desk", &["127.0.0.11"], true)]);
    let json_path = dir.path().join("status.json");
    std::fs::write(&json_path, serde_json::to_vec(&status)?)?;
    let cli = write_script(
        dir.path(),
        "tailscale",
        &format!(
            r#"[ "$1 $2" = "status --json" ] || exit 2
cat '{}'"#,
            json_path.display()
        ),
    )?;
    let mut cfg = isolated_agent("http://127.0.0.1:1", "n", 1000);
    cfg.discovery.tailscale.enabled = true;
    cfg.discovery.tailscale.socket = Some(dir.path().join("missing.sock"));
    cfg.discovery.tailscale.cli = cli.display().to_string();
    let found = Scanner::new(&cfg)?.scan().await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, "lmstudio-127-0-0-11");

    // A CLI that cannot reach tailscaled (exit 1) and a missing CLI both mean: no tailnet.
    let broken = write_script(
        dir.path(),
        "tailscale-down",
        "echo 'failed to connect' >&2; exit 1",
    )?;
    for cli in [
        broken.display().to_string(),
        dir.path().join("absent").display().to_string(),
    ] {
        let mut ts = cfg.discovery.tailscale.clone();
        ts.cli = cli;
        assert_eq!(
            tailscale::online_peers(&ts, Duration::from_secs(2)).await?,
            None
        );
    }
    // A socket that answers something unusable is an error (logged once by the scanner).
    let bad_socket = dir.path().join("bad.sock");
    let bad = FakeTailscaled::start(&bad_socket, serde_json::json!("not a status"))?;
    let mut ts = cfg.discovery.tailscale.clone();
    ts.socket = Some(bad_socket);
    assert!(
        tailscale::online_peers(&ts, Duration::from_secs(2))
            .await
            .is_err()
    );
    bad.stop().await;
    lmstudio.stop().await;
    Ok(())
}
