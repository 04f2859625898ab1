//! Mutual TLS end to end: `switchyard certs init` makes a CA and certificates for a control
//! plane, an edge and an agent; run as processes with `--tls-*`, the agent's Ollama becomes
//! routable through the edge. Then rogue clients try the control plane's gRPC port: plaintext,
//! TLS without a client certificate, a certificate from another CA (all refused before any RPC
//! runs), and a valid certificate with the wrong join token (refused by the join check). None
//! of them registers a node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_proto::tls::TlsFiles;
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::{AgentMessage, Hello};
use switchyard_tests::deploy::switchyard_bin;
use switchyard_tests::fake::FakeOllama;
use switchyard_tests::harness::wait_for;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const JOIN_TOKEN: &str = "tls-test-join-token-0123456789";
const ADMIN_TOKEN: &str = "tls-test-admin-token-0123456789";
const CLIENT_KEY: &str = "sy_live_tlstestbootstrap0123456789";
const CLUSTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";
const MODEL: &str = "llama3.2:latest";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn spawn(bin: &Path, args: &[String], log: PathBuf) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(&log)?;
    let child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("LLM_PROXY_LOCAL_DISCOVERY")
        .env_remove("LLM_PROXY_DISCOVERY_PEERS")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting switchyard {args:?}"))?;
    Ok(Proc(child))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

async fn read_addr(path: &Path, field: &'static str) -> anyhow::Result<SocketAddr> {
    wait_for(Duration::from_secs(30), "an address file", || {
        let path = path.to_path_buf();
        async move {
            let text = std::fs::read_to_string(path).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json.get(field)?.as_str()?.parse().ok()
        }
    })
    .await
}

/// `--tls-ca`, `--tls-cert`, `--tls-key` for `node` from `dir`.
fn tls_flags(dir: &Path, node: &str) -> Vec<String> {
    vec![
        "--tls-ca".into(),
        dir.join("ca.pem").display().to_string(),
        "--tls-cert".into(),
        dir.join(format!("{node}.pem")).display().to_string(),
        "--tls-key".into(),
        dir.join(format!("{node}.key")).display().to_string(),
    ]
}

fn files(dir: &Path, ca_dir: &Path, node: &str) -> TlsFiles {
    TlsFiles {
        ca: ca_dir.join("ca.pem"),
        cert: dir.join(format!("{node}.pem")),
        key: dir.join(format!("{node}.key")),
    }
}

fn certs_init(bin: &Path, dir: &Path, nodes: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["certs".to_string(), "init".into(), "--dir".into()];
    args.push(dir.display().to_string());
    for node in nodes {
        args.extend(["--node".to_string(), node.to_string()]);
    }
    let out = Command::new(bin).args(&args).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "certs init failed: {text}");
    Ok(text)
}

/// Opens a report stream on `endpoint` with a Hello from `node` carrying `token`; the first
/// answer, or the error that stopped it. Bounded by a deadline either way.
async fn hello(endpoint: Endpoint, token: &str, node: &str) -> Result<String, String> {
    let attempt = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        let mut client = AgentServiceClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(AgentMessage {
            body: Some(AgentBody::Hello(Hello {
                node_name: node.into(),
                version: "0".into(),
                join_token: token.into(),
                addresses: Vec::new(),
            })),
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut inbound = client
            .report(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| format!("report: {s}"))?
            .into_inner();
        let first = inbound
            .message()
            .await
            .map_err(|s| format!("stream: {s}"))?;
        drop(tx);
        Ok(match first.and_then(|m| m.body) {
            Some(ControlBody::Rejected(r)) => format!("rejected: {}", r.reason),
            Some(other) => format!("answered: {other:?}"),
            None => "closed".into(),
        })
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(result) => result,
        Err(_) => Err("no answer within 10 s".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_cluster_routes_and_refuses_rogue_agents() -> anyhow::Result<()> {
    switchyard_tests::harness::init();
    let bin = switchyard_bin()?;
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    let other_ca = dir.path().join("other-ca");
    let out = certs_init(&bin, &certs, &["cp", "edge", "agent"])?;
    assert!(out.contains("ca.pem"), "{out}");
    certs_init(&bin, &other_ca, &["rogue"])?;
    // Without --force the same node is refused, and nothing changes.
    let again = Command::new(&bin)
        .args(["certs", "init", "--node", "cp", "--dir"])
        .arg(&certs)
        .output()?;
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stdout).into_owned()
        + &String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("--force"), "{said}");

    let ollama = FakeOllama::start(&[MODEL]).await?;

    let cp_addrs = dir.path().join("cp.json");
    let mut cp_args = strings(&[
        "control-plane",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--join-token",
        JOIN_TOKEN,
        "--admin-tokens",
        ADMIN_TOKEN,
        "--cluster-key",
        CLUSTER_KEY,
        "--no-mdns",
        "--node-down-after-ms",
        "60000",
    ]);
    cp_args.extend([
        "--data-dir".into(),
        dir.path().join("cp").display().to_string(),
        "--addr-file".into(),
        cp_addrs.display().to_string(),
    ]);
    cp_args.extend(tls_flags(&certs, "cp"));
    let _cp = spawn(&bin, &cp_args, dir.path().join("cp.log"))?;
    let grpc = read_addr(&cp_addrs, "grpc").await?;
    let admin = read_addr(&cp_addrs, "admin").await?;
    let admin_client = AdminClient::new(&format!("http://{admin}"), ADMIN_TOKEN)?;

    let edge_addrs = dir.path().join("edge.json");
    let mut edge_args = strings(&[
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--bootstrap-key",
        CLIENT_KEY,
    ]);
    // A plain http:// URL: with TLS configured the edge dials it as https.
    edge_args.extend([
        "--control-plane".into(),
        format!("http://{grpc}"),
        "--addr-file".into(),
        edge_addrs.display().to_string(),
    ]);
    edge_args.extend(tls_flags(&certs, "edge"));
    let _edge = spawn(&bin, &edge_args, dir.path().join("edge.log"))?;
    let edge = read_addr(&edge_addrs, "http").await?;

    let mut agent_args = strings(&[
        "node-agent",
        "--join-token",
        JOIN_TOKEN,
        "--node-name",
        "gpu01",
        "--no-mdns",
        "--no-tailscale",
        "--nvidia-smi",
        "",
        "--scan-interval-ms",
        "200",
    ]);
    agent_args.extend([
        "--control-plane".into(),
        grpc.to_string(),
        "--probe".into(),
        format!("ollama={}", ollama.addr()),
    ]);
    agent_args.extend(tls_flags(&certs, "agent"));
    let _agent = spawn(&bin, &agent_args, dir.path().join("agent.log"))?;

    // The agent registers over mTLS and its model is served through the edge.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let request =
        serde_json::json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let served = wait_for(
        Duration::from_secs(40),
        "the agent's model through the edge",
        || {
            let (http, request) = (&http, &request);
            async move {
                let r = http
                    .post(format!("http://{edge}/v1/chat/completions"))
                    .bearer_auth(CLIENT_KEY)
                    .json(request)
                    .send()
                    .await
                    .ok()?;
                (r.status() == 200).then(|| r.headers().clone())
            }
        },
    )
    .await;
    if served.is_err() {
        for log in ["cp.log", "edge.log", "agent.log"] {
            let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
            eprintln!("--- {log}\n{text}");
        }
    }
    let headers = served?;
    assert!(
        headers
            .get("x-switchyard-endpoint")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|e| e.contains("gpu01")),
        "{headers:?}"
    );

    // Rogue clients on the gRPC port.
    let plain =
        Endpoint::from_shared(format!("http://{grpc}"))?.connect_timeout(Duration::from_secs(3));
    let plaintext = hello(plain, JOIN_TOKEN, "rogue").await;
    assert!(
        plaintext.is_err(),
        "a plaintext client got in: {plaintext:?}"
    );

    let ca_only = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(certs.join("ca.pem"))?));
    let no_cert = Endpoint::from_shared(format!("https://{grpc}"))?
        .connect_timeout(Duration::from_secs(3))
        .tls_config(ca_only)?;
    let no_cert = hello(no_cert, JOIN_TOKEN, "rogue").await;
    assert!(
        no_cert.is_err(),
        "a client without a certificate got in: {no_cert:?}"
    );

    // Trusts our CA for the server, but presents a certificate from another CA.
    let foreign = files(&other_ca, &certs, "rogue");
    let foreign = switchyard_proto::tls::endpoint(&grpc.to_string(), Some(&foreign))?
        .connect_timeout(Duration::from_secs(3));
    let foreign = hello(foreign, JOIN_TOKEN, "rogue").await;
    assert!(
        foreign.is_err(),
        "a certificate from another CA got in: {foreign:?}"
    );

    // A valid certificate is not enough: the join token is still checked.
    let stolen = files(&certs, &certs, "agent");
    let stolen = switchyard_proto::tls::endpoint(&grpc.to_string(), Some(&stolen))?;
    let wrong_token = hello(stolen.clone(), "not-the-join-token", "rogue").await;
    assert!(
        wrong_token
            .as_deref()
            .is_ok_and(|a| a.starts_with("rejected")),
        "{wrong_token:?}"
    );
    // And the same certificate with the right token is admitted, so the refusals above are
    // about the certificate or the token, not the client.
    let right_token = hello(stolen, JOIN_TOKEN, "checker").await;
    assert!(
        right_token
            .as_deref()
            .is_ok_and(|a| !a.starts_with("rejected")),
        "{right_token:?}"
    );

    // No refused client registered a node or an endpoint.
    let status = serde_json::to_value(admin_client.status().await?)?;
    let text = status.to_string();
    assert!(text.contains("gpu01"), "{text}");
    assert!(!text.contains("rogue"), "{text}");
    let endpoints = admin_client.endpoints().await?;
    assert!(
        endpoints.iter().all(|e| e.id.contains("gpu01")),
        "{:?}",
        endpoints.iter().map(|e| &e.id).collect::<Vec<_>>()
    );

    // `doctor` checks the cluster over mutual TLS with a node's files; without them it fails
    // at the control plane and says to give them.
    let doctor = |tls: bool| {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args([
            "doctor",
            "--join-token",
            JOIN_TOKEN,
            "--api-key",
            CLIENT_KEY,
        ])
        .args(["--node-name", "doctor-check", "--timeout-ms", "5000"])
        .arg("--control-plane")
        .arg(format!("http://{grpc}"))
        .arg("--edge")
        .arg(format!("http://{edge}"));
        if tls {
            cmd.args(tls_flags(&certs, "agent"));
        }
        cmd.output()
    };
    let with_tls = doctor(true).await?;
    let said = String::from_utf8_lossy(&with_tls.stdout).into_owned()
        + &String::from_utf8_lossy(&with_tls.stderr);
    assert!(
        with_tls.status.success(),
        "doctor over mTLS failed:\n{said}"
    );
    let without = doctor(false).await?;
    let said = String::from_utf8_lossy(&without.stdout).into_owned()
        + &String::from_utf8_lossy(&without.stderr);
    assert!(
        !without.status.success(),
        "doctor without TLS passed:\n{said}"
    );
    assert!(said.contains("--tls-ca"), "{said}");

    // The chart's exec probe for a voter under TLS: doctor's quick check on localhost with the
    // voter's own files (the Helm chart test pins the same command line).
    let probe = tokio::process::Command::new(&bin)
        .args(["doctor", "--quick", "--no-edge", "--timeout-ms", "3000"])
        .arg("--control-plane")
        .arg(format!("https://localhost:{}", grpc.port()))
        .args(tls_flags(&certs, "cp"))
        .env_remove("SWITCHYARD_JOIN_TOKEN")
        .output()
        .await?;
    let said = String::from_utf8_lossy(&probe.stdout).into_owned()
        + &String::from_utf8_lossy(&probe.stderr);
    assert!(probe.status.success(), "the voter probe failed:\n{said}");
    Ok(())
}

/// A voter refuses to start on TLS files that do not exist, naming the flag's field.
#[test]
fn missing_tls_files_fail_the_start_with_the_field_name() -> anyhow::Result<()> {
    let bin = switchyard_bin()?;
    let dir = tempfile::tempdir()?;
    let out = Command::new(&bin)
        .args([
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--no-mdns",
            "--tls-ca",
            "/nonexistent/ca.pem",
            "--tls-cert",
            "/nonexistent/cp.pem",
            "--tls-key",
            "/nonexistent/cp.key",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .output()?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("tls_ca"), "{text}");
    // Only two of the three flags: clap refuses before anything starts.
    let out = Command::new(&bin)
        .args(["edge", "--tls-ca", "/x/ca.pem", "--tls-cert", "/x/e.pem"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
    Ok(())
}

/// Starts a TLS voter `id` with `extra` flags; returns its process and (gRPC, admin) addresses.
async fn tls_voter(
    bin: &Path,
    dir: &Path,
    certs: &Path,
    id: u64,
    extra: &[String],
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr)> {
    let addrs = dir.join(format!("cp{id}.json"));
    let mut args = strings(&[
        "control-plane",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-tokens",
        ADMIN_TOKEN,
        "--cluster-key",
        CLUSTER_KEY,
        "--no-mdns",
        "--heartbeat-ms",
        "100",
        "--election-min-ms",
        "400",
        "--election-max-ms",
        "800",
    ]);
    args.extend([
        "--node-id".into(),
        id.to_string(),
        "--data-dir".into(),
        dir.join(format!("cp{id}")).display().to_string(),
        "--addr-file".into(),
        addrs.display().to_string(),
    ]);
    args.extend(extra.iter().cloned());
    args.extend(tls_flags(certs, &format!("cp{id}")));
    let proc = spawn(bin, &args, dir.join(format!("cp{id}.log")))?;
    let grpc = read_addr(&addrs, "grpc").await?;
    let admin = read_addr(&addrs, "admin").await?;
    Ok((proc, grpc, admin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_join_and_forward_writes_over_mutual_tls() -> anyhow::Result<()> {
    switchyard_tests::harness::init();
    let bin = switchyard_bin()?;
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    certs_init(&bin, &certs, &["cp1", "cp2"])?;
    let (_cp1, grpc1, admin1) = tls_voter(&bin, dir.path(), &certs, 1, &[]).await?;
    // The seed is given as http://; with TLS configured it is dialled over https.
    let join = vec!["--join".to_string(), format!("http://{grpc1}")];
    let (_cp2, _grpc2, admin2) = tls_voter(&bin, dir.path(), &certs, 2, &join).await?;
    let first = AdminClient::new(&format!("http://{admin1}"), ADMIN_TOKEN)?;
    let second = AdminClient::new(&format!("http://{admin2}"), ADMIN_TOKEN)?;
    let joined = wait_for(Duration::from_secs(40), "two voters over TLS", || {
        let first = &first;
        async move {
            let status = first.status().await.ok()?;
            (status.members.iter().filter(|m| m.voter).count() == 2).then_some(())
        }
    })
    .await;
    if joined.is_err() {
        for log in ["cp1.log", "cp2.log"] {
            let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
            eprintln!("--- {log}\n{text}");
        }
    }
    joined?;
    // A write on whichever voter follows is forwarded to the leader over the same TLS links,
    // and replicated back.
    let created = wait_for(
        Duration::from_secs(20),
        "a key created through both voters",
        || {
            let (first, second) = (&first, &second);
            async move {
                let body = switchyard_control_plane::admin::views::NewKey {
                    name: "over-tls".into(),
                    allowed_models: Vec::new(),
                    expires_at_ms: 0,
                    limits: Default::default(),
                    secret: None,
                    ..Default::default()
                };
                let a = first.create_key(&body).await.ok()?;
                let b = second.create_key(&body).await.ok()?;
                Some((a.key.id, b.key.id))
            }
        },
    )
    .await?;
    wait_for(Duration::from_secs(20), "both keys on both voters", || {
        let (first, second, created) = (&first, &second, &created);
        async move {
            for client in [first, second] {
                let keys = client.keys().await.ok()?;
                for id in [&created.0, &created.1] {
                    keys.iter().find(|k| &k.id == id)?;
                }
            }
            Some(())
        }
    })
    .await?;
    Ok(())
}
