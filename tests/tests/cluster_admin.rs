//! The admin API and config sources on one in-process voter: tokens, LiteLLM import, the
//! environment, reload applying the difference, keys, cooldowns from edges, metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use switchyard_control_plane::{Config, ControlPlane, Error};
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use switchyard_proto::v1::{Cooldown, UpstreamEvents, WatchRoutingTableRequest};
use switchyard_tests::cluster::{ADMIN_TOKEN, CLUSTER_KEY, READ_TOKEN};
use tokio::net::TcpListener;

const LITELLM: &str = r#"
model_list:
  - model_name: llama-8b
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct
      api_base: http://gpu01:8000/v1
    model_info: {max_input_tokens: 8192}
  - model_name: llama-8b
    litellm_params:
      model: groq/llama-3.1-8b-instant
      api_key: os.environ/GROQ_API_KEY
      rpm: 30
  - model_name: llama-70b
    litellm_params:
      model: nvidia_nim/meta/llama-3.1-70b-instruct
      api_key: os.environ/NVIDIA_NIM_API_KEY
  - model_name: big
    litellm_params:
      model: openrouter/meta-llama/llama-3.1-405b-instruct
      api_key: sk-or-v1-literal
router_settings:
  num_retries: 2
  cooldown_time: 30
  fallbacks: [{"llama-8b": ["llama-70b", "big"]}]
  context_window_fallbacks: [{"llama-8b": ["big"]}]
"#;

async fn start(
    dir: &std::path::Path,
    config: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<ControlPlane> {
    switchyard_tests::harness::init();
    let file = dir.join("config.yaml");
    std::fs::write(&file, config)?;
    let cfg = Config {
        data_dir: dir.join("data"),
        admin_tokens: vec![ADMIN_TOKEN.into()],
        read_only_tokens: vec![READ_TOKEN.into()],
        cluster_key: Some(CLUSTER_KEY.into()),
        config_file: Some(file),
        env: Some(
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let admin = TcpListener::bind("127.0.0.1:0").await?;
    Ok(ControlPlane::start_with_admin(cfg, grpc, Some(admin)).await?)
}

fn client(cp: &ControlPlane, token: &str) -> anyhow::Result<AdminClient> {
    let addr = cp
        .admin_addr()
        .ok_or_else(|| anyhow::anyhow!("no admin address"))?;
    Ok(AdminClient::new(&format!("http://{addr}"), token)?)
}

fn status_of(e: Result<impl std::fmt::Debug, Error>) -> u16 {
    match e {
        Err(Error::Admin { status, .. }) => status,
        other => panic!("expected an admin error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_are_enforced() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = start(dir.path(), "endpoints: []", &[]).await?;
    let body = NewEndpoint {
        id: "x".into(),
        url: "http://10.0.0.1/v1".into(),
        ..Default::default()
    };
    // (token, read status, write status)
    let cases = [
        ("", 401, 401),
        ("wrong-token-0123456789", 401, 401),
        (READ_TOKEN, 200, 403),
        (ADMIN_TOKEN, 200, 201),
    ];
    for (token, read, write) in cases {
        let c = client(&cp, token)?;
        let got_read = match c.endpoints().await {
            Ok(_) => 200,
            e => status_of(e),
        };
        let got_write = match c.add_endpoint(&body).await {
            Ok(_) => 201,
            e => status_of(e),
        };
        assert_eq!((got_read, got_write), (read, write), "token {token:?}");
    }
    // Metrics and health need no token.
    let addr = cp.admin_addr().unwrap_or_else(|| unreachable!());
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .text()
        .await?;
    for name in [
        "switchyard_raft_term",
        "switchyard_raft_commit_index",
        "switchyard_raft_applied_index",
        "switchyard_raft_apply_lag",
        "switchyard_raft_snapshot_age_seconds",
        "switchyard_raft_is_leader 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    cp.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litellm_config_env_and_reload() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env = [
        (
            "LLM_PROXY_ENDPOINT_LAB_BOX_URL",
            "http://192.168.1.50:1234/v1",
        ),
        ("LLM_PROXY_ENDPOINT_LAB_BOX_MODELS", "qwen-coder"),
        ("LLM_PROXY_ENDPOINT_GROQ_URL", "http://shadowed/v1"),
    ];
    let cp = start(dir.path(), LITELLM, &env).await?;
    let admin = client(&cp, ADMIN_TOKEN)?;
    let endpoints = admin.endpoints().await?;
    let listed: Vec<(&str, &str, usize)> = endpoints
        .iter()
        .map(|e| (e.id.as_str(), e.source.as_str(), e.credentials.len()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("groq", "config", 1),
            ("hosted_vllm", "config", 0),
            ("lab_box", "env", 0),
            ("nvidia_nim", "config", 1),
            ("openrouter", "config", 1),
        ]
    );
    let models = admin.models().await?;
    let llama8 = models
        .iter()
        .find(|m| m.name == "llama-8b")
        .ok_or_else(|| anyhow::anyhow!("llama-8b missing"))?;
    let deployments: Vec<&str> = llama8
        .deployments
        .iter()
        .map(|d| d.endpoint_id.as_str())
        .collect();
    assert_eq!(deployments, vec!["hosted_vllm", "groq"]);
    assert_eq!(llama8.fallbacks, vec!["llama-70b", "big"]);
    assert_eq!(llama8.context_window_fallbacks, vec!["big"]);
    assert_eq!(llama8.deployments[0].context_length, 8192);

    // The routing table edges get: the literal key decrypted, env references by name.
    let mut edge = EdgeServiceClient::connect(format!("http://{}", cp.addr())).await?;
    let mut tables = edge
        .watch_routing_table(WatchRoutingTableRequest {
            since_version: 0,
            edge_name: "t".into(),
            deltas: false,
            cluster_id: String::new(),
        })
        .await?
        .into_inner();
    let table = tables
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no table"))?;
    assert!(!table.cluster_id.is_empty());
    let or = table
        .endpoints
        .iter()
        .find(|e| e.id == "openrouter")
        .ok_or_else(|| anyhow::anyhow!("no openrouter"))?;
    assert_eq!(or.credentials[0].value, "sk-or-v1-literal");
    let groq = table
        .endpoints
        .iter()
        .find(|e| e.id == "groq")
        .ok_or_else(|| anyhow::anyhow!("no groq"))?;
    assert_eq!(groq.credentials[0].env, "GROQ_API_KEY");
    assert_eq!(
        table
            .settings
            .as_ref()
            .map(|s| (s.num_retries, s.cooldown_ms)),
        Some((2, 30_000))
    );
    // The stored state holds only ciphertext.
    let raw = serde_json::to_string(&cp.state().await)?;
    assert!(!raw.contains("sk-or-v1-literal"));

    // Reload with nothing changed changes nothing.
    let before = cp.state().await.revision;
    let report = admin.reload().await?;
    assert!(
        !report.changed,
        "reloading an unchanged file changed the state"
    );
    assert_eq!(report.revision, before);

    // Edit the file: drop NIM, keep the rest; an API endpoint and the env one stay.
    admin
        .add_endpoint(&NewEndpoint {
            id: "mine".into(),
            url: "http://10.0.0.7/v1".into(),
            ..Default::default()
        })
        .await?;
    let edited = LITELLM.replace(
        "  - model_name: llama-70b\n    litellm_params:\n      model: nvidia_nim/meta/llama-3.1-70b-instruct\n      api_key: os.environ/NVIDIA_NIM_API_KEY\n",
        "",
    );
    std::fs::write(dir.path().join("config.yaml"), edited)?;
    let report = admin.reload().await?;
    assert!(report.changed);
    let ids: Vec<String> = admin.endpoints().await?.into_iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        vec!["groq", "hosted_vllm", "lab_box", "mine", "openrouter"]
    );
    // Config-declared endpoints cannot be removed through the API; API ones can.
    assert_eq!(status_of(admin.remove_endpoint("groq").await), 409);
    admin.remove_endpoint("mine").await?;

    // A dangerous file is refused whole, naming the setting, and the state stays.
    std::fs::write(
        dir.path().join("config.yaml"),
        "model_list: [{model_name: a, litellm_params: {model: groq/x, max_budget: 10}}]",
    )?;
    let revision = cp.state().await.revision;
    let err = admin
        .reload()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("model_list[0].litellm_params.max_budget"),
        "{err}"
    );
    assert_eq!(cp.state().await.revision, revision);
    cp.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_cooldowns_reach_edges() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = start(
        dir.path(),
        "endpoints: [{id: groq, url: 'https://api.groq.com/openai/v1', models: [m]}]",
        &[],
    )
    .await?;
    let admin = client(&cp, ADMIN_TOKEN)?;
    let created = admin
        .create_key(&NewKey {
            name: "team".into(),
            allowed_models: vec!["m*".into()],
            ..Default::default()
        })
        .await?;
    assert!(created.secret.starts_with("sy_live_"));
    assert_eq!(
        created.key.last4,
        created.secret[created.secret.len() - 4..]
    );
    let listed = serde_json::to_string(&admin.keys().await?)?;
    assert!(
        !listed.contains(&created.secret),
        "a listing shows the secret"
    );

    let mut edge = EdgeServiceClient::connect(format!("http://{}", cp.addr())).await?;
    let now = switchyard_control_plane::service::agent::now_ms() as i64;
    let report = |until_ms| UpstreamEvents {
        edge_name: "e1".into(),
        cooldowns: vec![Cooldown {
            endpoint_id: "groq".into(),
            credential_id: "key".into(),
            model: "m".into(),
            until_ms,
            reason: "rate_limited".into(),
        }],
    };
    edge.report_upstream_events(report(now + 60_000)).await?;
    // A shorter cooldown never shortens the first.
    edge.report_upstream_events(report(now + 5_000)).await?;
    let cooldowns = admin.cooldowns().await?;
    assert_eq!(cooldowns.len(), 1);
    assert_eq!(cooldowns[0].until_ms, now + 60_000);

    let mut tables = edge
        .watch_routing_table(WatchRoutingTableRequest {
            since_version: 0,
            edge_name: "t".into(),
            deltas: false,
            cluster_id: String::new(),
        })
        .await?
        .into_inner();
    let table = tables
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no table"))?;
    assert_eq!(table.cooldowns.len(), 1);
    assert_eq!(table.keys.len(), 1);
    assert_eq!(table.keys[0].sha256.len(), 32);

    admin.revoke_key(&created.key.id).await?;
    admin.clear_cooldowns(Some("groq")).await?;
    assert!(admin.cooldowns().await?.is_empty());
    let table = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tables.message().await {
                Ok(Some(t))
                    if t.keys.first().is_some_and(|k| k.revoked) && t.cooldowns.is_empty() =>
                {
                    return Ok(t);
                }
                Ok(Some(_)) => continue,
                Ok(None) => anyhow::bail!("the watch ended"),
                Err(e) => return Err(e.into()),
            }
        }
    })
    .await??;
    assert!(table.keys[0].revoked);
    cp.stop().await?;
    Ok(())
}
