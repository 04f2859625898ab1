//! The chart's control-plane start-up script, run for three voters on loopback.
//!
//! There is no Kubernetes here, so this takes `start-control-plane.sh` from the rendered chart,
//! replaces the one line that turns an ordinal into a DNS name with `127.0.0.<ordinal+1>`, and
//! runs it three times as the StatefulSet would (same env, real `switchyard` binary). Then: a
//! report sent to any voter is committed and reaches all three; with voter 0 killed the other
//! two still commit (so they are voters, not learners); voter 0 restarted by the same script
//! rejoins and catches up.
//!
//! Needs helm (`.ci/install-helm`) and `cargo build -p switchyard`.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::SinkExt;
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use switchyard_proto::v1::{
    AgentMessage, Backend, BackendSnapshot, ControlMessage, Hello, WatchRoutingTableRequest,
};
use switchyard_tests::deploy::{data_entry, find, flags_of, render, switchyard_bin};
use switchyard_tests::harness::wait_for;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "loopback-join-token-0123456789";
const ADMIN_TOKEN: &str = "loopback-admin-token-0123456789";
const STS: &str = "sy-switchyard-control-plane";
const HOST_LINE: &str = "voter_host() { echo \"${STATEFULSET_NAME}-$1.${PEERS_DOMAIN}\"; }";
const LOOPBACK_LINE: &str = "voter_host() { echo \"127.0.0.$(($1 + 1))\"; }";

/// A voter process started by the script; killed when dropped.
struct Voter {
    child: Child,
    log: PathBuf,
}

impl Drop for Voter {
    fn drop(&mut self) {
        let _gone = self.child.kill();
        let _reaped = self.child.wait();
    }
}

struct Loopback {
    script: PathBuf,
    bin: PathBuf,
    root: PathBuf,
    grpc_port: u16,
    admin_port: u16,
}

impl Loopback {
    fn ip(ordinal: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, ordinal + 1)
    }

    fn addr(&self, ordinal: u8) -> String {
        format!("{}:{}", Self::ip(ordinal), self.grpc_port)
    }

    /// The voter ids `ordinal` sees as voting members, from its admin API.
    async fn voters_seen_by(&self, client: &reqwest::Client, ordinal: u8) -> Option<Vec<u64>> {
        let url = format!(
            "http://{}:{}/api/v1/members",
            Self::ip(ordinal),
            self.admin_port
        );
        let response = client.get(url).bearer_auth(ADMIN_TOKEN).send().await.ok()?;
        let members: serde_json::Value = response.error_for_status().ok()?.json().await.ok()?;
        let mut voters: Vec<u64> = members
            .as_array()?
            .iter()
            .filter(|m| m.get("voter").and_then(serde_json::Value::as_bool) == Some(true))
            .filter_map(|m| m.get("id")?.as_u64())
            .collect();
        voters.sort_unstable();
        Some(voters)
    }

    /// Starts ordinal `ordinal` with the environment the StatefulSet gives its pods.
    fn start(&self, ordinal: u8) -> anyhow::Result<Voter> {
        let data = self.root.join(format!("data-{ordinal}"));
        std::fs::create_dir_all(&data)?;
        let log = self.root.join(format!("voter-{ordinal}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new("sh")
            .arg(&self.script)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("POD_NAME", format!("{STS}-{ordinal}"))
            .env("STATEFULSET_NAME", STS)
            .env("PEERS_DOMAIN", "unused-on-loopback")
            .env("LISTEN_HOST", Self::ip(ordinal).to_string())
            .env("GRPC_PORT", self.grpc_port.to_string())
            .env("ADMIN_PORT", self.admin_port.to_string())
            .env("DATA_DIR", &data)
            .env("SWITCHYARD_JOIN_TOKEN", TOKEN)
            .env("SWITCHYARD_ADMIN_TOKENS", ADMIN_TOKEN)
            // 32 zero bytes, base64url: the one cluster key the chart's Secret gives every voter.
            .env("SWITCHYARD_CLUSTER_KEY", "A".repeat(43))
            .env("SWITCHYARD_BIN", &self.bin)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot run sh")?;
        Ok(Voter { child, log })
    }
}

/// A port free on 127.0.0.1, .2 and .3 at once (checked by binding, then released).
fn port_free_on_all() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let first = TcpListener::bind(SocketAddrV4::new(Loopback::ip(0), 0))?;
        let port = first.local_addr()?.port();
        let others: Result<Vec<_>, _> = (1..3)
            .map(|o| TcpListener::bind(SocketAddrV4::new(Loopback::ip(o), port)))
            .collect();
        if others.is_ok() {
            return Ok(port);
        }
    }
    bail!("no port is free on 127.0.0.1-3")
}

async fn channel(addr: &str) -> Option<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()
}

async fn serving(addr: &str) -> bool {
    let Some(channel) = channel(addr).await else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.get_ref().status == ServingStatus::Serving as i32)
}

/// The model names in the first routing table `addr` streams.
async fn table_models(addr: &str) -> Option<Vec<String>> {
    let mut client = EdgeServiceClient::new(channel(addr).await?);
    let first = async {
        let mut tables = client
            .watch_routing_table(WatchRoutingTableRequest {
                since_version: 0,
                edge_name: "loopback-test".into(),
                deltas: false,
                cluster_id: String::new(),
            })
            .await
            .ok()?
            .into_inner();
        tables.message().await.ok()?
    };
    let table = tokio::time::timeout(Duration::from_secs(1), first)
        .await
        .ok()??;
    Some(table.models.into_iter().map(|m| m.name).collect())
}

/// An agent session kept open so its node stays up.
struct Session {
    _tx: futures::channel::mpsc::Sender<AgentMessage>,
    _rx: tonic::Streaming<ControlMessage>,
}

/// Reports one backend serving `model` as node `node`, following redirects to the leader.
async fn report(start: &str, node: &str, model: &str) -> anyhow::Result<Session> {
    let mut addr = start.to_owned();
    let mut last = String::new();
    for _ in 0..40 {
        match try_report(&addr, node, model).await {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err(leader)) if !leader.is_empty() => addr = leader,
            Ok(Err(_)) => last = "redirected without a leader yet".into(),
            Err(e) => {
                // A stale leader hint may name a voter that is gone: start over.
                last = format!("{addr}: {e:#}");
                addr = start.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("no voter committed the report from {start}: {last}")
}

/// `Ok(Ok(session))` when acknowledged, `Ok(Err(leader))` when redirected.
async fn try_report(
    addr: &str,
    node: &str,
    model: &str,
) -> anyhow::Result<Result<Session, String>> {
    let channel = channel(addr).await.context("cannot connect")?;
    let (mut tx, rx) = futures::channel::mpsc::channel(4);
    tx.send(AgentMessage {
        body: Some(AgentBody::Hello(Hello {
            node_name: node.into(),
            version: "test".into(),
            join_token: TOKEN.into(),
            addresses: Vec::new(),
        })),
    })
    .await?;
    tx.send(AgentMessage {
        body: Some(AgentBody::Snapshot(BackendSnapshot {
            backends: vec![Backend {
                id: format!("ollama-{node}"),
                kind: "ollama".into(),
                base_url: "http://127.0.0.1:9/v1".into(),
                models: vec![model.into()],
                ..Default::default()
            }],
        })),
    })
    .await?;
    let mut inbound = AgentServiceClient::new(channel)
        .report(rx)
        .await?
        .into_inner();
    // One answer for the Hello, one for the snapshot.
    for _ in 0..2 {
        let answer = tokio::time::timeout(Duration::from_secs(3), inbound.message())
            .await
            .context("no answer")??
            .context("stream closed")?;
        match answer.body {
            Some(ControlBody::Ack(_)) => {}
            Some(ControlBody::Redirect(r)) => return Ok(Err(r.leader_addr)),
            Some(ControlBody::Rejected(r)) => bail!("rejected: {}", r.reason),
            None => bail!("empty answer"),
        }
    }
    Ok(Ok(Session {
        _tx: tx,
        _rx: inbound,
    }))
}

fn logs(voters: &[&Voter]) -> String {
    voters
        .iter()
        .map(|v| {
            let text = std::fs::read_to_string(&v.log).unwrap_or_default();
            format!("--- {}\n{text}", v.log.display())
        })
        .collect()
}

async fn wait_models(addr: &str, model: &str, voters: &[&Voter]) -> anyhow::Result<()> {
    wait_for(
        Duration::from_secs(30),
        &format!("{model} on {addr}"),
        || async {
            table_models(addr)
                .await
                .filter(|m| m.iter().any(|n| n == model))
                .map(|_| ())
        },
    )
    .await
    .with_context(|| logs(voters))
}

fn loopback_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let docs = render(&[])?;
    let config = find(&docs, "ConfigMap", "sy-switchyard-config")?;
    let script = data_entry(config, "start-control-plane.sh")
        .context("the ConfigMap has no start-control-plane.sh")?;
    assert_eq!(
        script.matches(HOST_LINE).count(),
        1,
        "the start script's host line changed; update this test:\n{script}"
    );
    let path = dir.join("start-control-plane.sh");
    std::fs::write(&path, script.replace(HOST_LINE, LOOPBACK_LINE))?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_bootstrap_join_survive_a_loss_and_rejoin() -> anyhow::Result<()> {
    switchyard_tests::harness::init();
    let help = String::from_utf8_lossy(
        &std::process::Command::new(switchyard_bin()?)
            .args(["control-plane", "--help"])
            .output()?
            .stdout,
    )
    .into_owned();
    let flags = flags_of("control-plane")?;
    let mut missing: Vec<&str> = [
        "--bootstrap",
        "--join",
        "--admin-listen",
        "--data-dir",
        "--listen",
    ]
    .into_iter()
    .filter(|f| !flags.iter().any(|k| k == f))
    .collect();
    if flags.iter().any(|k| k == "--join") && !help.contains("--join <") {
        missing.push("--join <URL> (it exists, but takes no value)");
    }
    assert!(
        missing.is_empty(),
        "`switchyard control-plane` lacks {missing:?}, which the chart's start-up script passes"
    );

    let dir = tempfile::tempdir()?;
    let cluster = Loopback {
        script: loopback_script(dir.path())?,
        bin: switchyard_bin()?,
        root: dir.path().to_path_buf(),
        grpc_port: port_free_on_all()?,
        admin_port: port_free_on_all()?,
    };
    let mut v0 = cluster.start(0)?;
    let v1 = cluster.start(1)?;
    let v2 = cluster.start(2)?;

    for ordinal in 0..3 {
        let addr = cluster.addr(ordinal);
        wait_for(
            Duration::from_secs(30),
            &format!("voter {ordinal} serving"),
            || {
                let addr = addr.clone();
                async move { serving(&addr).await.then_some(()) }
            },
        )
        .await
        .with_context(|| logs(&[&v0, &v1, &v2]))?;
    }

    // Ordinals 1 and 2 join by themselves: every voter sees three voting members.
    let client = reqwest::Client::new();
    for ordinal in 0..3 {
        wait_for(
            Duration::from_secs(30),
            &format!("voter {ordinal} to see voters 1, 2 and 3"),
            || async {
                (cluster.voters_seen_by(&client, ordinal).await? == [1, 2, 3]).then_some(())
            },
        )
        .await
        .with_context(|| logs(&[&v0, &v1, &v2]))?;
    }

    // Sent to the last voter; committed by whichever is leader; applied by all three.
    let _alpha = report(&cluster.addr(2), "gpu-a", "alpha-model")
        .await
        .with_context(|| logs(&[&v0, &v1, &v2]))?;
    for ordinal in 0..3 {
        wait_models(&cluster.addr(ordinal), "alpha-model", &[&v0, &v1, &v2]).await?;
    }

    // Without voter 0 the two joined voters still form a majority of three.
    drop(v0);
    let _beta = report(&cluster.addr(1), "gpu-b", "beta-model")
        .await
        .with_context(|| logs(&[&v1, &v2]))?;
    for ordinal in 1..3 {
        wait_models(&cluster.addr(ordinal), "beta-model", &[&v1, &v2]).await?;
    }

    // The same command brings voter 0 back with its volume: no second bootstrap, and it
    // catches up on what it missed.
    v0 = cluster.start(0)?;
    wait_models(&cluster.addr(0), "beta-model", &[&v0, &v1, &v2]).await?;
    let log = std::fs::read_to_string(&v0.log)?;
    assert_eq!(
        log.matches("start-control-plane: node 1 advertising 127.0.0.1:")
            .count(),
        2,
        "{log}"
    );
    Ok(())
}
