//! End-to-end: the agent's report stream against fake control planes and fake model servers.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness setup fails loudly"
)]

mod fake;

use std::net::SocketAddr;
use std::time::Duration;

use fake::{FakeControlPlane, FakeModelServer, Mode, eventually};
use switchyard_node_agent::{Config, Naming, ProbeTarget, ServerKind, run};
use switchyard_proto::v1::agent_message::Body;
use switchyard_proto::v1::{Backend, BackendUpdate};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

fn agent_config(control_plane: String, targets: Vec<ProbeTarget>) -> Config {
    Config {
        control_plane,
        node_name: "testnode".to_owned(),
        join_token: "sy_join_test".to_owned(),
        scan_interval_ms: 100,
        probe_timeout_ms: 500,
        targets,
        naming: Naming::Bare,
        fail_threshold: 2,
        heartbeat_interval_ms: 100,
        // Only the given targets: no Docker host, tailnet, mDNS or GPUs from the test machine.
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

struct Agent {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), switchyard_node_agent::Error>>,
}

impl Agent {
    fn spawn(cfg: Config) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(cfg, async move {
            stopped.await.ok();
        }));
        Self { stop, task }
    }

    async fn shutdown(self) {
        self.stop.send(()).ok();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent did not stop")
            .unwrap()
            .unwrap();
    }
}

fn backend_ids(backends: &[Backend]) -> Vec<&str> {
    backends.iter().map(|b| b.id.as_str()).collect()
}

/// The snapshot sent on `stream`, once Hello and the snapshot both arrived.
fn opening(cp: &FakeControlPlane, stream: usize) -> Option<Vec<Backend>> {
    let msgs = cp.stream(stream);
    match msgs.as_slice() {
        [Body::Hello(hello), Body::Snapshot(snap), ..] => {
            assert_eq!(hello.node_name, "testnode");
            assert_eq!(hello.version, env!("CARGO_PKG_VERSION"));
            assert_eq!(hello.join_token, "sy_join_test");
            // The source address this host uses towards the control plane (loopback here).
            assert_eq!(hello.addresses, ["127.0.0.1"]);
            Some(snap.backends.clone())
        }
        [] | [Body::Hello(_)] => None,
        other => panic!("stream {stream} did not open with Hello + snapshot: {other:?}"),
    }
}

fn updates(cp: &FakeControlPlane, stream: usize) -> Vec<BackendUpdate> {
    cp.stream(stream)
        .into_iter()
        .filter_map(|b| match b {
            Body::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn max_heartbeat(cp: &FakeControlPlane, stream: usize) -> Option<u64> {
    cp.stream(stream)
        .into_iter()
        .filter_map(|b| match b {
            Body::Heartbeat(h) => Some(h.seq),
            _ => None,
        })
        .max()
}

#[tokio::test]
async fn reports_snapshot_updates_and_reconnects_to_a_restarted_control_plane() {
    fake::init_logs();
    let ollama = FakeModelServer::ollama(&["llama3.2:latest"]).await;
    let vllm = FakeModelServer::openai(&["Qwen/Qwen2.5-7B-Instruct"]).await;
    let ollama_port = ollama.addr.port();
    let cp = FakeControlPlane::start(Mode::Ack).await;
    let cp_addr: SocketAddr = cp.addr;
    let agent = Agent::spawn(agent_config(
        format!("http://{cp_addr}"),
        vec![
            ProbeTarget::new(ServerKind::Ollama, "127.0.0.1", ollama_port),
            ProbeTarget::new(ServerKind::Vllm, "127.0.0.1", vllm.addr.port()),
        ],
    ));

    // Hello, then a snapshot of what the first scan found.
    let snapshot = eventually("hello + snapshot", WAIT, || opening(&cp, 1)).await;
    assert_eq!(backend_ids(&snapshot), ["ollama", "vllm"]);
    assert_eq!(snapshot[0].kind, "ollama");
    assert_eq!(
        snapshot[0].base_url,
        format!("http://127.0.0.1:{ollama_port}/v1")
    );
    assert_eq!(snapshot[0].models, ["llama3.2:latest"]);

    // Heartbeats count up on the stream.
    eventually("heartbeat seq 2", WAIT, || {
        max_heartbeat(&cp, 1).filter(|s| *s >= 2)
    })
    .await;
    let seqs: Vec<u64> = cp
        .stream(1)
        .into_iter()
        .filter_map(|b| match b {
            Body::Heartbeat(h) => Some(h.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // A model-list change is upserted.
    ollama.set_models(&["llama3.2:latest", "qwen3:8b"]);
    let upsert = eventually("upsert of ollama", WAIT, || {
        updates(&cp, 1).into_iter().find(|u| !u.upserted.is_empty())
    })
    .await;
    assert_eq!(backend_ids(&upsert.upserted), ["ollama"]);
    assert_eq!(upsert.upserted[0].models, ["llama3.2:latest", "qwen3:8b"]);
    assert!(upsert.removed.is_empty());

    // A stopped server is reported unhealthy (after fail_threshold missed scans), then removed
    // (after remove_after: ten scans here).
    ollama.stop().await;
    let unhealthy = eventually("ollama reported unhealthy", WAIT, || {
        updates(&cp, 1).into_iter().find(|u| {
            u.upserted
                .iter()
                .any(|b| b.id == "ollama" && b.facts.as_ref().is_some_and(|f| !f.healthy))
        })
    })
    .await;
    assert!(unhealthy.removed.is_empty());
    let removal = eventually("removal of ollama", WAIT, || {
        updates(&cp, 1).into_iter().find(|u| !u.removed.is_empty())
    })
    .await;
    assert_eq!(removal.removed, ["ollama"]);
    assert!(removal.upserted.is_empty());

    // The control plane dies and comes back on the same port: Hello + a fresh snapshot again.
    cp.kill().await;
    let cp = FakeControlPlane::start_on(cp_addr, Mode::Ack).await;
    let snapshot = eventually("hello + snapshot after restart", WAIT, || opening(&cp, 1)).await;
    assert_eq!(backend_ids(&snapshot), ["vllm"]);

    agent.shutdown().await;
    vllm.stop().await;
    cp.kill().await;
}

#[tokio::test]
async fn follows_a_redirect_to_the_leader() {
    let ollama = FakeModelServer::ollama(&["llama3.2:latest"]).await;
    let leader = FakeControlPlane::start(Mode::Ack).await;
    // The hint is a bare host:port, as voters advertise it.
    let follower = FakeControlPlane::start(Mode::Redirect(leader.addr.to_string())).await;
    let agent = Agent::spawn(agent_config(
        format!("http://{}", follower.addr),
        vec![ProbeTarget::new(
            ServerKind::Ollama,
            "127.0.0.1",
            ollama.addr.port(),
        )],
    ));

    let snapshot = eventually("hello + snapshot at the leader", WAIT, || {
        opening(&leader, 1)
    })
    .await;
    assert_eq!(backend_ids(&snapshot), ["ollama"]);
    assert!(matches!(follower.stream(1).first(), Some(Body::Hello(_))));

    // The agent stays with the leader.
    eventually("heartbeats at the leader", WAIT, || {
        max_heartbeat(&leader, 1).filter(|s| *s >= 3)
    })
    .await;
    assert_eq!(follower.streams(), 1);
    assert_eq!(leader.streams(), 1);

    agent.shutdown().await;
    ollama.stop().await;
    leader.kill().await;
    follower.kill().await;
}

#[tokio::test]
async fn a_rejected_agent_retries_with_growing_backoff() {
    let ollama = FakeModelServer::ollama(&["llama3.2:latest"]).await;
    let cp = FakeControlPlane::start(Mode::Reject("bad join token".to_owned())).await;
    let agent = Agent::spawn(agent_config(
        format!("http://{}", cp.addr),
        vec![ProbeTarget::new(
            ServerKind::Ollama,
            "127.0.0.1",
            ollama.addr.port(),
        )],
    ));

    eventually("three attempts", WAIT, || (cp.streams() >= 3).then_some(())).await;
    let hellos: Vec<_> = cp
        .received()
        .into_iter()
        .filter(|r| matches!(r.body, Body::Hello(_)))
        .map(|r| r.at)
        .collect();
    assert!(hellos.len() >= 3, "{} hellos", hellos.len());
    // Backoff starts at 200 ms and doubles, jittered into [half, full]: the gaps have lower bounds
    // of 100 ms then 200 ms, so this cannot flake.
    let first_gap = hellos[1] - hellos[0];
    let second_gap = hellos[2] - hellos[1];
    assert!(first_gap >= Duration::from_millis(95), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(195), "{second_gap:?}");

    agent.shutdown().await;
    ollama.stop().await;
    cp.kill().await;
}

#[tokio::test]
async fn run_refuses_an_invalid_config() {
    let mut cfg = agent_config(
        "http://127.0.0.1:1".to_owned(),
        ProbeTarget::local_defaults(),
    );
    cfg.fail_threshold = 0;
    let err = run(cfg, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("fail_threshold"), "{err}");
}

#[tokio::test]
async fn keeps_retrying_until_the_control_plane_comes_up() {
    let ollama = FakeModelServer::ollama(&["llama3.2:latest"]).await;
    let port = fake::closed_port().await;
    let agent = Agent::spawn(agent_config(
        // No scheme: `http://` is assumed.
        format!("127.0.0.1:{port}"),
        vec![ProbeTarget::new(
            ServerKind::Ollama,
            "127.0.0.1",
            ollama.addr.port(),
        )],
    ));
    let cp = FakeControlPlane::start_on(SocketAddr::from(([127, 0, 0, 1], port)), Mode::Ack).await;
    let snapshot = eventually("hello + snapshot once up", WAIT, || opening(&cp, 1)).await;
    assert_eq!(backend_ids(&snapshot), ["ollama"]);

    agent.shutdown().await;
    ollama.stop().await;
    cp.kill().await;
}

#[tokio::test]
async fn heartbeats_carry_gpus_from_nvidia_smi() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in nvidia-smi, given by path: no PATH or environment changes in this process.
    let smi = dir.path().join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\necho '0, NVIDIA GB10, [N/A], [N/A], 35'\necho '1, NVIDIA L40S, 46068, 20480, 88'\n",
    )
    .unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ollama = FakeModelServer::ollama(&["llama3.2:latest"]).await;
    let cp = FakeControlPlane::start(Mode::Ack).await;
    let mut cfg = agent_config(
        format!("http://{}", cp.addr),
        vec![ProbeTarget::new(
            ServerKind::Ollama,
            "127.0.0.1",
            ollama.addr.port(),
        )],
    );
    cfg.nvidia_smi = smi.display().to_string();
    cfg.gpu_interval_ms = 100;
    let agent = Agent::spawn(cfg);
    let gpus = eventually("a heartbeat with GPUs", WAIT, || {
        cp.stream(1).into_iter().find_map(|b| match b {
            Body::Heartbeat(h) if !h.gpus.is_empty() => Some(h.gpus),
            _ => None,
        })
    })
    .await;
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0].name, "NVIDIA GB10");
    assert_eq!(gpus[0].memory_total_mib, 0);
    assert_eq!(gpus[0].utilization_pct, 35);
    assert_eq!(
        (
            gpus[1].index,
            gpus[1].memory_total_mib,
            gpus[1].memory_used_mib
        ),
        (1, 46068, 20480)
    );
    agent.shutdown().await;
    ollama.stop().await;
    cp.kill().await;
}
