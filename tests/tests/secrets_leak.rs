//! Secrets never leak: a control plane, an edge and node agents run as processes of the real
//! binary at `RUST_LOG=trace` with known secrets (client keys, an upstream key, the join token,
//! admin and read-only tokens, the cluster key, the bootstrap key). Every error path is
//! provoked: an upstream refusing our key, upstreams whose 400/401/500 bodies echo the request
//! headers back, expired, revoked and unknown client keys, a wrong admin token, config files
//! holding a secret where it does not belong, and an agent with a wrong join token. Then every
//! response body and header a client saw, every log line, both `/metrics` pages, the admin
//! API's JSON and the CLI's `status` / `keys list` / `endpoints` output are searched for the
//! full secrets; only the last four characters may show.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::{AgentMessage, Hello};
use switchyard_tests::deploy::switchyard_bin;
use switchyard_tests::harness::wait_for;

const CLIENT_KEY: &str = "sy_live_leakcheckClientKey0123456789abcd";
const EXPIRED_KEY: &str = "sy_live_leakcheckExpiredKey0123456789ab";
const BOOTSTRAP_KEY: &str = "sy_live_leakcheckBootstrap0123456789abc";
/// A well-formed key the cluster never issued.
const UNKNOWN_KEY: &str = "sy_live_leakcheckUnknownKey0123456789ab";
const UPSTREAM_KEY: &str = "sk-upstream-LEAKCHECK-0123456789abcdef";
const WRONG_UPSTREAM_KEY: &str = "sk-staleupstream-LEAKCHECK-fedcba98765";
const JOIN_TOKEN: &str = "join-LEAKCHECK-0123456789abcdef";
const ROGUE_JOIN_TOKEN: &str = "join-LEAKCHECK-rogue-0123456789ab";
const ADMIN_TOKEN: &str = "admin-LEAKCHECK-0123456789abcdef";
const READ_TOKEN: &str = "read-LEAKCHECK-0123456789abcdef";
const WRONG_ADMIN_TOKEN: &str = "admin-LEAKCHECK-wrong-0123456789";
/// 32 bytes, base64url.
const CLUSTER_KEY: &str = "TEVBS0NIRUNLTEVBS0NIRUNLTEVBS0NIRUNLTEVBS0M";
/// An upstream key declared in the control plane's environment (`LLM_PROXY_ENDPOINT_*`).
const ENV_UPSTREAM_KEY: &str = "sk-envupstream-LEAKCHECK-0123456789ab";
/// An upstream key given to `switchyard endpoints add --api-key`.
const CLI_UPSTREAM_KEY: &str = "sk-cliupstream-LEAKCHECK-0123456789ab";
/// A secret pasted into the wrong place of a config file.
const MISPLACED_SECRET: &str = "sk-misplaced-LEAKCHECK-0123456789abcd";

/// A child process killed when dropped.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _gone = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// Starts `bin args` at `RUST_LOG=trace` with `env` set, its stdout and stderr going to `log`.
fn spawn(bin: &Path, args: &[&str], log: PathBuf, env: &[(&str, String)]) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "trace")
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .with_context(|| format!("starting switchyard {args:?}"))?;
    Ok(Proc { child })
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

/// What the fake upstream answers: echoing every request header back in its body (and in a
/// header), the way some servers and debugging proxies do.
async fn upstream(uri: Uri, headers: HeaderMap, _body: Bytes) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let echoed: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                serde_json::Value::from(v.to_str().unwrap_or_default()),
            )
        })
        .collect();
    let echo = |status: StatusCode| {
        let body = serde_json::json!({
            "error": {
                "message": format!("request with {auth} refused"),
                "type": "invalid_request_error",
                "request_headers": echoed,
            }
        });
        (
            status,
            [
                ("x-request-id", auth.clone()),
                ("x-echo-auth", auth.clone()),
            ],
            axum::Json(body),
        )
            .into_response()
    };
    let path = uri.path();
    if path.starts_with("/echo400/") {
        return echo(StatusCode::BAD_REQUEST);
    }
    if path.starts_with("/echo401/") {
        return echo(StatusCode::UNAUTHORIZED);
    }
    if path.starts_with("/echo500/") {
        return echo(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if auth != format!("Bearer {UPSTREAM_KEY}") {
        return echo(StatusCode::UNAUTHORIZED);
    }
    axum::Json(serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}

fn config_yaml(upstream: SocketAddr) -> String {
    let endpoint = |id: &str, path: &str, key: &str| {
        format!(
            "  - id: {id}\n    url: http://{upstream}/{path}/v1\n    models: [{id}-model]\n    api_key: {key}\n"
        )
    };
    let mut text = String::from("endpoints:\n");
    text += &endpoint("good", "ok", UPSTREAM_KEY);
    text += &endpoint("stale", "ok", WRONG_UPSTREAM_KEY);
    text += &endpoint("echo400", "echo400", UPSTREAM_KEY);
    text += &endpoint("echo401", "echo401", UPSTREAM_KEY);
    text += &endpoint("echo500", "echo500", UPSTREAM_KEY);
    text += &format!(
        "keys:\n  - id: live\n    key: {CLIENT_KEY}\n  - id: expired\n    key: {EXPIRED_KEY}\n    expires_at_ms: 1000\n"
    );
    text
}

/// A config file with a secret where a list belongs: the parse error must not quote it.
fn misplaced_yaml() -> String {
    format!(
        "endpoints:\n  - id: oops\n    url: http://127.0.0.1:9/v1\n    models: {MISPLACED_SECRET}\n"
    )
}

/// Everything a client or operator saw, labelled by where it came from.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    async fn response(&mut self, what: &str, response: reqwest::Response) -> (u16, String) {
        let status = response.status().as_u16();
        let headers: String = response
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let body = response.text().await.unwrap_or_default();
        self.add(format!("{what} (headers)"), headers);
        self.add(format!("{what} (body)"), body.clone());
        (status, body)
    }
}

fn cli(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "trace")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .output()?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

async fn chat(
    http: &reqwest::Client,
    edge: SocketAddr,
    key: &str,
    model: &str,
    stream: bool,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("http://{edge}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await
}

/// A Hello with `token`: returns what the control plane answered first.
async fn hello(grpc: SocketAddr, token: &str) -> anyhow::Result<String> {
    let mut client = AgentServiceClient::connect(format!("http://{grpc}")).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(AgentMessage {
        body: Some(AgentBody::Hello(Hello {
            node_name: "rogue".into(),
            version: "0".into(),
            join_token: token.into(),
            addresses: Vec::new(),
        })),
    })
    .await?;
    let mut inbound = client
        .report(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), inbound.message()).await??;
    drop(tx);
    Ok(match first.and_then(|m| m.body) {
        Some(ControlBody::Rejected(r)) => format!("rejected: {}", r.reason),
        Some(other) => format!("accepted: {other:?}"),
        None => "closed".into(),
    })
}

/// The fake upstream, a control plane, an edge and two agents as processes, and the clients
/// the steps use.
struct Rig {
    bin: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    fake_addr: SocketAddr,
    fake_task: tokio::task::JoinHandle<std::io::Result<()>>,
    grpc: SocketAddr,
    admin_url: String,
    edge_addr: SocketAddr,
    /// Stopped last to first: the rogue agent, the agent, the edge, the control plane.
    procs: Vec<Proc>,
    http: reqwest::Client,
    reader: AdminClient,
    writer: AdminClient,
}

impl Rig {
    /// Starts the fake upstream, the control plane with every secret it can hold, an edge with
    /// a bootstrap key, and agents: one with the join token, one without.
    async fn start() -> anyhow::Result<Self> {
        let bin = switchyard_bin()?;
        let dir = tempfile::tempdir()?;
        let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let fake_addr = fake.local_addr()?;
        let fake_task =
            tokio::spawn(async move { axum::serve(fake, Router::new().fallback(upstream)).await });
        let (config, cp, grpc, admin_url) =
            start_control_plane(&bin, dir.path(), fake_addr).await?;
        let (edge, edge_addr) = start_edge(&bin, dir.path(), grpc).await?;
        let (agent, rogue) = start_agents(&bin, dir.path(), grpc)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        let reader = AdminClient::new(&admin_url, READ_TOKEN)?;
        let writer = AdminClient::new(&admin_url, ADMIN_TOKEN)?;
        Ok(Self {
            bin,
            dir,
            config,
            fake_addr,
            fake_task,
            grpc,
            admin_url,
            edge_addr,
            procs: vec![cp, edge, agent, rogue],
            http,
            reader,
            writer,
        })
    }

    /// Stops everything, then reads every log into `seen`.
    fn stop_and_read_logs(mut self, seen: &mut Seen) -> anyhow::Result<()> {
        while let Some(proc) = self.procs.pop() {
            drop(proc);
        }
        self.fake_task.abort();
        let dir = &self.dir;
        for log in [
            "control-plane.log",
            "edge.log",
            "agent.log",
            "rogue-agent.log",
        ] {
            let text = std::fs::read_to_string(dir.path().join(log))?;
            assert!(
                text.lines().count() > 20,
                "{log} is nearly empty; is RUST_LOG=trace honoured?"
            );
            seen.add(format!("log {log}"), text);
        }

        Ok(())
    }
}

/// The control plane, with every secret it can hold: returns its config file, its process,
/// its gRPC address and its admin URL.
async fn start_control_plane(
    bin: &Path,
    dir: &Path,
    fake_addr: SocketAddr,
) -> anyhow::Result<(PathBuf, Proc, SocketAddr, String)> {
    let config = dir.join("config.yaml");
    std::fs::write(&config, config_yaml(fake_addr))?;
    let cp_addrs = dir.join("cp.json");
    let cp_data = dir.join("cp");
    let cp = spawn(
        bin,
        &[
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            &cp_data.display().to_string(),
            "--addr-file",
            &cp_addrs.display().to_string(),
            "--join-token",
            JOIN_TOKEN,
            "--admin-tokens",
            ADMIN_TOKEN,
            "--read-only-tokens",
            READ_TOKEN,
            "--cluster-key",
            CLUSTER_KEY,
            "--config",
            &config.display().to_string(),
            "--no-mdns",
        ],
        dir.join("control-plane.log"),
        &[
            (
                "LLM_PROXY_ENDPOINT_ENVEP_URL",
                format!("http://{fake_addr}/ok/v1"),
            ),
            ("LLM_PROXY_ENDPOINT_ENVEP_KEY", ENV_UPSTREAM_KEY.to_owned()),
            ("LLM_PROXY_ENDPOINT_ENVEP_MODELS", "envep-model".to_owned()),
        ],
    )?;
    let grpc = read_addr(&cp_addrs, "grpc").await?;
    let admin = read_addr(&cp_addrs, "admin").await?;
    let admin_url = format!("http://{admin}");

    Ok((config, cp, grpc, admin_url))
}

/// An edge with a bootstrap key, following the control plane at `grpc`.
async fn start_edge(
    bin: &Path,
    dir: &Path,
    grpc: SocketAddr,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let edge_addrs = dir.join("edge.json");
    let edge = spawn(
        bin,
        &[
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--control-plane",
            &format!("http://{grpc}"),
            "--bootstrap-key",
            BOOTSTRAP_KEY,
            "--addr-file",
            &edge_addrs.display().to_string(),
        ],
        dir.join("edge.log"),
        &[],
    )?;
    let edge_addr = read_addr(&edge_addrs, "http").await?;
    Ok((edge, edge_addr))
}

/// Two agents: one with the join token, one with a wrong one.
fn start_agents(bin: &Path, dir: &Path, grpc: SocketAddr) -> anyhow::Result<(Proc, Proc)> {
    let agent_args = |token: &'static str, name: &'static str| {
        vec![
            "node-agent".to_string(),
            "--control-plane".into(),
            format!("http://{grpc}"),
            "--join-token".into(),
            token.into(),
            "--node-name".into(),
            name.into(),
            "--no-local-scan".into(),
            "--no-mdns".into(),
            "--no-tailscale".into(),
            "--nvidia-smi".into(),
            String::new(),
            "--scan-interval-ms".into(),
            "200".into(),
        ]
    };
    let args: Vec<String> = agent_args(JOIN_TOKEN, "honest");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = spawn(bin, &args, dir.join("agent.log"), &[])?;
    let args: Vec<String> = agent_args(ROGUE_JOIN_TOKEN, "rogue-proc");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rogue = spawn(bin, &args, dir.join("rogue-agent.log"), &[])?;

    Ok((agent, rogue))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_response_log_metric_or_cli_output() -> anyhow::Result<()> {
    switchyard_tests::harness::init();
    let mut seen = Seen::default();
    let rig = Rig::start().await?;
    agents_are_admitted_by_token(&rig, &mut seen).await?;
    edge_serves_and_relays_refusals(&rig, &mut seen).await?;
    let revoked_secret = bad_client_keys_are_refused(&rig, &mut seen).await?;
    admin_api_refuses_and_lists(&rig, &mut seen).await?;
    config_errors_are_reported(&rig, &mut seen).await?;
    metrics_pages(&rig, &mut seen).await?;
    cli_output(&rig, &mut seen)?;
    rig.stop_and_read_logs(&mut seen)?;
    assert_no_leaks(&seen, &revoked_secret);
    Ok(())
}

/// The honest agent registers; a Hello with the wrong token is refused.
async fn agents_are_admitted_by_token(rig: &Rig, seen: &mut Seen) -> anyhow::Result<()> {
    wait_for(
        Duration::from_secs(20),
        "the honest agent to register",
        || {
            let reader = &rig.reader;
            async move {
                let status = reader.status().await.ok()?;
                serde_json::to_string(&status)
                    .ok()?
                    .contains("honest")
                    .then_some(())
            }
        },
    )
    .await?;
    let rogue_answer = hello(rig.grpc, ROGUE_JOIN_TOKEN).await?;
    assert!(rogue_answer.starts_with("rejected"), "{rogue_answer}");
    seen.add("rogue hello answer", rogue_answer);
    Ok(())
}

/// The edge serves the good model with the configured client key; upstream refusals and
/// echoes are relayed.
async fn edge_serves_and_relays_refusals(rig: &Rig, seen: &mut Seen) -> anyhow::Result<()> {
    wait_for(
        Duration::from_secs(20),
        "the edge to serve good-model",
        || {
            let http = &rig.http;
            async move {
                let r = chat(http, rig.edge_addr, CLIENT_KEY, "good-model", false)
                    .await
                    .ok()?;
                (r.status() == 200).then_some(())
            }
        },
    )
    .await?;
    let r = chat(&rig.http, rig.edge_addr, CLIENT_KEY, "good-model", false).await?;
    assert_eq!(seen.response("good request", r).await.0, 200);
    let r = chat(&rig.http, rig.edge_addr, CLIENT_KEY, "good-model", true).await?;
    seen.response("good stream", r).await;
    let r = chat(&rig.http, rig.edge_addr, BOOTSTRAP_KEY, "good-model", false).await?;
    seen.response("bootstrap-key request", r).await;

    // Upstream refusals and echoes.
    for model in [
        "stale-model",
        "envep-model",
        "echo400-model",
        "echo401-model",
        "echo500-model",
    ] {
        for stream in [false, true] {
            let r = chat(&rig.http, rig.edge_addr, CLIENT_KEY, model, stream).await?;
            let (status, body) = seen.response(&format!("{model} stream={stream}"), r).await;
            assert!(status >= 400, "{model}: {status} {body}");
            if model == "echo400-model" && !stream {
                // Relayed as the upstream said it, with our key masked to its last four.
                assert!(body.contains("Bearer ****cdef"), "{body}");
            }
        }
    }

    Ok(())
}

/// Client keys that must not work: expired, unknown, revoked, malformed. Returns the revoked
/// key's secret.
async fn bad_client_keys_are_refused(rig: &Rig, seen: &mut Seen) -> anyhow::Result<String> {
    let r = chat(&rig.http, rig.edge_addr, EXPIRED_KEY, "good-model", false).await?;
    assert_eq!(seen.response("expired key", r).await.0, 401);
    let r = chat(&rig.http, rig.edge_addr, UNKNOWN_KEY, "good-model", false).await?;
    assert_eq!(seen.response("unknown key", r).await.0, 401);
    let r = chat(&rig.http, rig.edge_addr, UPSTREAM_KEY, "good-model", false).await?;
    assert_eq!(seen.response("upstream key as client key", r).await.0, 401);
    let created = rig
        .writer
        .create_key(&switchyard_control_plane::admin::views::NewKey {
            name: "to-revoke".into(),
            allowed_models: Vec::new(),
            ..Default::default()
        })
        .await?;
    let revoked_secret = created.secret.clone();
    wait_for(Duration::from_secs(20), "the new key to work", || {
        let (http, secret) = (&rig.http, &revoked_secret);
        async move {
            let r = chat(http, rig.edge_addr, secret, "good-model", false)
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await?;
    rig.writer.revoke_key(&created.key.id).await?;
    wait_for(
        Duration::from_secs(20),
        "the revoked key to be refused",
        || {
            let (http, secret) = (&rig.http, &revoked_secret);
            async move {
                let r = chat(http, rig.edge_addr, secret, "good-model", false)
                    .await
                    .ok()?;
                (r.status() == 401).then_some(())
            }
        },
    )
    .await?;
    let r = chat(
        &rig.http,
        rig.edge_addr,
        &revoked_secret,
        "good-model",
        false,
    )
    .await?;
    seen.response("revoked key", r).await;

    Ok(revoked_secret)
}

/// The admin API: a wrong token, then every listing with the read-only token.
async fn admin_api_refuses_and_lists(rig: &Rig, seen: &mut Seen) -> anyhow::Result<()> {
    let admin_url = &rig.admin_url;
    for token in [WRONG_ADMIN_TOKEN, CLIENT_KEY, JOIN_TOKEN] {
        let r = rig
            .http
            .get(format!("{admin_url}/api/v1/status"))
            .bearer_auth(token)
            .send()
            .await?;
        let (status, _) = seen.response("admin API with a wrong token", r).await;
        assert_eq!(status, 401);
    }
    let r = rig
        .http
        .post(format!("{admin_url}/api/v1/keys"))
        .bearer_auth(READ_TOKEN)
        .json(&serde_json::json!({"name": "nope"}))
        .send()
        .await?;
    let (status, _) = seen
        .response("admin write with the read-only token", r)
        .await;
    assert_eq!(status, 403);
    for path in [
        "status",
        "endpoints",
        "keys",
        "models",
        "cooldowns",
        "members",
    ] {
        let r = rig
            .http
            .get(format!("{admin_url}/api/v1/{path}"))
            .bearer_auth(READ_TOKEN)
            .send()
            .await?;
        let (status, body) = seen.response(&format!("admin GET {path}"), r).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // Key listings show the last four characters, which is what lets an operator tell keys apart.
    let keys = rig.reader.keys().await?;
    assert!(
        keys.iter()
            .any(|k| k.last4 == CLIENT_KEY[CLIENT_KEY.len() - 4..]),
        "no key shows the configured key's last four characters"
    );

    Ok(())
}

/// Config errors: a reload of a file with a secret in the wrong place, and a voter started
/// on it.
async fn config_errors_are_reported(rig: &Rig, seen: &mut Seen) -> anyhow::Result<()> {
    let admin_url = &rig.admin_url;
    std::fs::write(&rig.config, misplaced_yaml())?;
    let r = rig
        .http
        .post(format!("{admin_url}/api/v1/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    let (status, body) = seen.response("reload of a bad config file", r).await;
    assert!(status >= 400, "the bad file was accepted: {body}");
    std::fs::write(&rig.config, config_yaml(rig.fake_addr))?;
    let bad_config = rig.dir.path().join("bad.yaml");
    std::fs::write(&bad_config, misplaced_yaml())?;
    seen.add(
        "control-plane started on a bad config file",
        cli(
            &rig.bin,
            &[
                "control-plane",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data-dir",
                &rig.dir.path().join("bad-cp").display().to_string(),
                "--cluster-key",
                CLUSTER_KEY,
                "--admin-tokens",
                ADMIN_TOKEN,
                "--config",
                &bad_config.display().to_string(),
                "--no-mdns",
            ],
        )?,
    );
    seen.add(
        "edge with a malformed bootstrap key",
        cli(
            &rig.bin,
            &[
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--bootstrap-key",
                MISPLACED_SECRET,
            ],
        )?,
    );

    Ok(())
}

/// Both /metrics pages.
async fn metrics_pages(rig: &Rig, seen: &mut Seen) -> anyhow::Result<()> {
    let admin_url = &rig.admin_url;
    let edge_addr = &rig.edge_addr;
    let r = rig
        .http
        .get(format!("http://{edge_addr}/metrics"))
        .send()
        .await?;
    seen.response("edge /metrics", r).await;
    let r = rig
        .http
        .get(format!("{admin_url}/metrics"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await?;
    seen.response("control-plane /metrics", r).await;

    Ok(())
}

/// The CLI: an endpoint added with a key, then the listings.
fn cli_output(rig: &Rig, seen: &mut Seen) -> anyhow::Result<()> {
    let server = ["--server", rig.admin_url.as_str()];
    let mut add = vec![
        "endpoints",
        "add",
        "cli-ep",
        "http://127.0.0.1:9/v1",
        "--models",
        "cli-model",
        "--api-key",
        CLI_UPSTREAM_KEY,
        "--token",
        ADMIN_TOKEN,
    ];
    add.extend(server);
    seen.add("switchyard endpoints add", cli(&rig.bin, &add)?);
    for (what, args) in [
        ("status", vec!["status"]),
        ("status --json", vec!["status", "--json"]),
        ("keys list", vec!["keys", "list"]),
        ("keys list --json", vec!["keys", "list", "--json"]),
        ("endpoints", vec!["endpoints"]),
        ("endpoints --json", vec!["endpoints", "--json"]),
        ("models", vec!["models"]),
        ("cooldowns", vec!["cooldowns"]),
    ] {
        let mut all: Vec<&str> = args.clone();
        all.extend(server);
        all.extend(["--token", READ_TOKEN]);
        seen.add(format!("switchyard {what}"), cli(&rig.bin, &all)?);
    }
    assert!(
        seen.0
            .iter()
            .any(|(what, text)| what == "switchyard endpoints" && text.contains("cli-ep")),
        "the endpoint added with a key is not listed"
    );
    let mut wrong = vec!["status", "--token", WRONG_ADMIN_TOKEN];
    wrong.extend(server);
    seen.add(
        "switchyard status with a wrong token",
        cli(&rig.bin, &wrong)?,
    );

    Ok(())
}

/// No secret in anything seen, and enough was seen for that to mean something.
fn assert_no_leaks(seen: &Seen, revoked_secret: &str) {
    let secrets = [
        ("client key", CLIENT_KEY.to_owned()),
        ("expired client key", EXPIRED_KEY.to_owned()),
        ("revoked client key", revoked_secret.to_owned()),
        ("unknown client key", UNKNOWN_KEY.to_owned()),
        ("bootstrap key", BOOTSTRAP_KEY.to_owned()),
        ("upstream key", UPSTREAM_KEY.to_owned()),
        ("environment upstream key", ENV_UPSTREAM_KEY.to_owned()),
        ("CLI upstream key", CLI_UPSTREAM_KEY.to_owned()),
        ("stale upstream key", WRONG_UPSTREAM_KEY.to_owned()),
        ("join token", JOIN_TOKEN.to_owned()),
        ("rogue join token", ROGUE_JOIN_TOKEN.to_owned()),
        ("admin token", ADMIN_TOKEN.to_owned()),
        ("read-only token", READ_TOKEN.to_owned()),
        ("wrong admin token", WRONG_ADMIN_TOKEN.to_owned()),
        ("cluster key", CLUSTER_KEY.to_owned()),
        ("misplaced secret", MISPLACED_SECRET.to_owned()),
    ];
    let mut leaks = Vec::new();
    for (what, text) in &seen.0 {
        for (name, secret) in &secrets {
            for (n, line) in text.lines().enumerate() {
                if line.contains(secret.as_str()) {
                    let shown: String = line.chars().take(300).collect();
                    leaks.push(format!("{name} in {what}, line {}: {shown}", n + 1));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // The scan itself can fail: the sources really were read.
    assert!(
        seen.0.len() > 60,
        "only {} sources were searched",
        seen.0.len()
    );
}
