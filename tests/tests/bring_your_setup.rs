//! A team moving from LiteLLM, LLMProxy or lmrelay points Switchyard at what it has: the
//! LiteLLM guide's config.yaml unchanged (only the DGX_IP placeholder it says to replace),
//! its master key from the `openai` SDK, provider keys from the environment, fallback chains
//! over fakes standing in for each provider, active health checks, `/health`, same-deployment
//! retries and `drop_params`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_control_plane::{Config, ControlPlane};
use switchyard_tests::harness::{init, wait_for};
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};
use tokio::net::TcpListener;

const CLUSTER_KEY: &str = "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMtbG9uZy1rZXk";
const GUIDE: &str = include_str!("../fixtures/litellm-guide-config.yaml");
const MASTER_KEY: &str = "sk-litellm-local";
const ADMIN_TOKEN: &str = "admin-token-for-migration-tests";

/// A control plane loading `config` with `env`, and an edge watching it.
struct Gateway {
    control_plane: ControlPlane,
    edge: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(config: &str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        init();
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, config)?;
        let cfg = Config {
            data_dir: dir.path().join("data"),
            cluster_key: Some(CLUSTER_KEY.into()),
            config_file: Some(file),
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        };
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let cfg = Config {
            admin_tokens: vec![ADMIN_TOKEN.into()],
            ..cfg
        };
        let control_plane = ControlPlane::start_with_admin(cfg, grpc, Some(admin)).await?;
        control_plane
            .wait_for_leader(Duration::from_secs(10))
            .await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let edge_cfg = switchyard_edge::Config {
            control_plane: format!("http://{}", control_plane.addr()),
            edge_name: "migrate".into(),
            ..Default::default()
        };
        tokio::spawn(switchyard_edge::run(
            edge_cfg,
            listener,
            std::future::pending(),
        ));
        Ok(Self {
            control_plane,
            edge: format!("http://{addr}"),
            client: reqwest::Client::new(),
            dir,
        })
    }

    async fn chat(&self, key: &str, model: &str) -> anyhow::Result<(u16, Value, String)> {
        let response = self
            .client
            .post(format!("{}/v1/chat/completions", self.edge))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let endpoint = response
            .headers()
            .get("x-switchyard-endpoint")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((status, response.json().await?, endpoint))
    }

    async fn get(&self, key: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .client
            .get(format!("{}{path}", self.edge))
            .bearer_auth(key)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await?))
    }
}

fn model_ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_config_serves_its_groups_master_key_and_fallback_chains() -> anyhow::Result<()> {
    let vllm = OpenAiFake::start().await?;
    let groq = OpenAiFake::start().await?;
    let nvidia = OpenAiFake::start().await?;
    let openrouter = OpenAiFake::start().await?;
    // The guide says to replace DGX_IP; nothing else in the file changes.
    let config = GUIDE.replace("DGX_IP:8000", &vllm.addr().to_string());
    let env = [
        ("GROQ_API_KEY", "gsk_fixture_key_0001".to_owned()),
        ("NVIDIA_NIM_API_KEY", "nvapi-fixture-key-0002".to_owned()),
        ("OPENROUTER_API_KEY", "sk-or-v1-fixture-0003".to_owned()),
        // Where the presets' hosts are, for this test: the fakes.
        ("GROQ_API_BASE", groq.base_url()),
        ("NVIDIA_NIM_API_BASE", nvidia.base_url()),
        ("OPENROUTER_API_BASE", openrouter.base_url()),
    ];
    let gw = Gateway::start(&config, &env).await?;

    // Every model group of the file is listed to the master key.
    let listed = wait_for(Duration::from_secs(10), "the guide's 27 groups", || async {
        let (status, body) = gw.get(MASTER_KEY, "/v1/models").await.ok()?;
        let ids = model_ids(&body);
        (status == 200 && ids.len() >= 27).then_some(ids)
    })
    .await?;
    for name in [
        "local/qwen",
        "groq/llama-3.1-8b",
        "nvidia/llama-3.3-70b",
        "openrouter/hermes-3-405b",
        "openrouter/llama-3.2-3b",
    ] {
        assert!(listed.contains(&name.to_owned()), "{name} in {listed:?}");
    }
    let (status, body) = gw.get("sk-not-the-master", "/v1/models").await?;
    assert_eq!(status, 401, "{body}");

    // local/qwen: the DGX box is off, Groq's two models are out of quota, NVIDIA answers.
    vllm.stop();
    let exhausted = Behavior::rate_limited(&[("retry-after", "3600")]);
    groq.script("llama-3.1-8b-instant", vec![exhausted.clone()]);
    groq.script("llama-3.3-70b-versatile", vec![exhausted.clone()]);
    let (status, body, endpoint) = gw.chat(MASTER_KEY, "local/qwen").await?;
    assert_eq!((status, endpoint.as_str()), (200, "nvidia_nim"), "{body}");
    assert_eq!(groq.calls_for("llama-3.1-8b-instant"), 1);
    assert_eq!(groq.calls_for("llama-3.3-70b-versatile"), 1);
    // Each provider got its own key, as Bearer, with a User-Agent.
    for (fake, key) in [
        (&groq, "gsk_fixture_key_0001"),
        (&nvidia, "nvapi-fixture-key-0002"),
    ] {
        let calls: Vec<_> = fake
            .calls()
            .into_iter()
            .filter(|c| c.path == "/v1/chat/completions")
            .collect();
        assert!(!calls.is_empty());
        for call in calls {
            assert_eq!(call.bearer().as_deref(), Some(key));
            let agent = call.headers.get("user-agent").and_then(|v| v.to_str().ok());
            assert!(
                agent.is_some_and(|a| a.starts_with("switchyard/")),
                "{agent:?}"
            );
        }
    }

    // OpenRouter: the first free model is out of its daily quota; the chain goes on, and the
    // `:free` model ids are sent as written.
    openrouter.script("nousresearch/hermes-3-llama-3.1-405b:free", vec![exhausted]);
    let (status, body, _) = gw.chat(MASTER_KEY, "openrouter/hermes-3-405b").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        openrouter.calls_for("nvidia/nemotron-3-super-120b-a12b:free"),
        1
    );

    // The real `openai` SDK with the master key, as every app of the team holds it.
    let python = tokio::task::spawn_blocking(switchyard_tests::python::venv_python).await?;
    let script = format!(
        "from openai import OpenAI\n\
         c = OpenAI(base_url='{}/v1', api_key='{MASTER_KEY}')\n\
         r = c.chat.completions.create(model='nvidia/llama-3.1-70b', \
         messages=[{{'role': 'user', 'content': 'hi'}}])\n\
         print(r.choices[0].message.content)\n\
         print(len(c.models.list().data))\n",
        gw.edge
    );
    let out =
        tokio::task::spawn_blocking(move || Command::new(python).args(["-c", &script]).output())
            .await??;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().nth(1).is_some_and(|n| n.trim() == "27"),
        "{stdout}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_keys_in_the_environment_rotate_with_no_config_file() -> anyhow::Result<()> {
    let groq = OpenAiFake::start().await?;
    let openrouter = OpenAiFake::start().await?;
    let env = [
        ("GROQ_API_KEY", "gsk_first_key_00001".to_owned()),
        ("GROQ_API_KEY_2", "gsk_second_key_0002".to_owned()),
        ("GROQ_MODELS", "llama-3.1-8b-instant".to_owned()),
        ("GROQ_API_BASE", groq.base_url()),
        ("OPENROUTER_API_KEY", "sk-or-v1-only-key-03".to_owned()),
        ("OPENROUTER_MODELS", "qwen/qwen3-coder:free".to_owned()),
        ("OPENROUTER_API_BASE", openrouter.base_url()),
        ("LMRELAY_TOKEN", "relay-token-from-lmrelay".to_owned()),
    ];
    // An empty file: everything comes from the environment.
    let gw = Gateway::start("", &env).await?;
    let key = "relay-token-from-lmrelay";
    wait_for(
        Duration::from_secs(10),
        "both providers' models",
        || async {
            let (status, body) = gw.get(key, "/v1/models").await.ok()?;
            let ids = model_ids(&body);
            (status == 200
                && ids.contains(&"llama-3.1-8b-instant".to_owned())
                && ids.contains(&"qwen/qwen3-coder:free".to_owned()))
            .then_some(())
        },
    )
    .await?;
    // The first Groq key hits its limit: the second one carries on.
    groq.script_key(
        "gsk_first_key_00001",
        Behavior::rate_limited(&[("retry-after", "600")]),
    );
    for _ in 0..3 {
        let (status, body, endpoint) = gw.chat(key, "llama-3.1-8b-instant").await?;
        assert_eq!((status, endpoint.as_str()), (200, "groq"), "{body}");
    }
    let keys: Vec<Option<String>> = groq.calls().iter().map(|c| c.bearer()).collect();
    assert!(
        keys.contains(&Some("gsk_second_key_0002".into())),
        "{keys:?}"
    );
    let (status, body, endpoint) = gw.chat(key, "qwen/qwen3-coder:free").await?;
    assert_eq!((status, endpoint.as_str()), (200, "openrouter"), "{body}");
    assert_eq!(
        openrouter.calls()[0].bearer().as_deref(),
        Some("sk-or-v1-only-key-03")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn num_retries_retries_the_same_deployment_after_retry_after() -> anyhow::Result<()> {
    let vllm = OpenAiFake::start().await?;
    let backup = OpenAiFake::start().await?;
    vllm.script(
        "qwen",
        vec![Behavior::status(503, "warming up"), Behavior::Real],
    );
    let config = format!(
        r#"
model_list:
  - model_name: local
    litellm_params: {{model: hosted_vllm/qwen, api_base: "{}"}}
  - model_name: backup
    litellm_params: {{model: hosted_vllm/spare, api_base: "{}"}}
router_settings:
  num_retries: 2
  retry_after: 0.3
  fallbacks: [{{"local": ["backup"]}}]
"#,
        vllm.base_url(),
        backup.base_url()
    );
    let gw = Gateway::start(&config, &[]).await?;
    wait_for(Duration::from_secs(10), "the table", || async {
        let (status, _) = gw.get("", "/v1/models").await.ok()?;
        (status == 200).then_some(())
    })
    .await?;
    let started = std::time::Instant::now();
    let (status, body, endpoint) = gw.chat("", "local").await?;
    assert_eq!((status, endpoint.as_str()), (200, "hosted_vllm"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the retry waited retry_after"
    );
    assert_eq!(vllm.calls_for("qwen"), 2);
    assert_eq!(backup.calls_for("spare"), 0, "no fallback was needed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_params_leaves_out_what_the_provider_refuses() -> anyhow::Result<()> {
    let groq = OpenAiFake::start().await?;
    let config = |drop: bool| {
        format!(
            "model_list:\n  - model_name: fast\n    litellm_params: {{model: groq/llama-3.1-8b-instant, api_base: \"{}\"}}\nlitellm_settings: {{drop_params: {drop}}}\n",
            groq.base_url()
        )
    };
    for drop in [true, false] {
        let gw = Gateway::start(&config(drop), &[]).await?;
        wait_for(Duration::from_secs(10), "the table", || async {
            let (status, _) = gw.get("", "/v1/models").await.ok()?;
            (status == 200).then_some(())
        })
        .await?;
        let response = gw
            .client
            .post(format!("{}/v1/chat/completions", gw.edge))
            .json(&json!({
                "model": "fast",
                "messages": [{"role": "user", "content": "hi"}],
                "logit_bias": {"50256": -100},
                "temperature": 0.2,
            }))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200);
        let sent = groq
            .calls()
            .last()
            .map(|c| c.body.clone())
            .unwrap_or_default();
        assert_eq!(sent.get("logit_bias").is_none(), drop, "{sent}");
        assert_eq!(sent["temperature"], 0.2);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_deployment_leaves_the_pool_after_one_check_and_comes_back() -> anyhow::Result<()> {
    let vllm = OpenAiFake::start().await?;
    let spare = OpenAiFake::start().await?;
    let config = format!(
        r#"
model_list:
  - model_name: chat
    litellm_params: {{model: hosted_vllm/qwen, api_base: "{}"}}
  - model_name: chat
    litellm_params: {{model: openai/qwen, api_base: "{}"}}
general_settings:
  background_health_checks: true
  health_check_interval: 0.3
  enable_health_check_routing: true
"#,
        vllm.base_url(),
        spare.base_url()
    );
    let gw = Gateway::start(&config, &[]).await?;
    let health = |want_unhealthy: usize| {
        let gw = &gw;
        async move {
            let (status, body) = gw.get("", "/health").await.ok()?;
            (status == 200
                && body["unhealthy_count"] == want_unhealthy
                && body["healthy_count"] == 2 - want_unhealthy)
                .then_some(body)
        }
    };
    wait_for(Duration::from_secs(10), "both healthy", || health(0)).await?;

    let addr = vllm.addr();
    vllm.stop();
    let body = wait_for(Duration::from_secs(10), "the dead one unhealthy", || {
        health(1)
    })
    .await?;
    assert_eq!(body["unhealthy_endpoints"][0]["endpoint"], "hosted_vllm");
    assert_eq!(body["unhealthy_endpoints"][0]["error"], "connect");
    // No client request is sent to it any more: every one answers 200 from the spare.
    for _ in 0..10 {
        let (status, body, endpoint) = gw.chat("", "chat").await?;
        assert_eq!((status, endpoint.as_str()), (200, "openai"), "{body}");
    }

    let back = OpenAiFake::start_at(addr).await?;
    wait_for(Duration::from_secs(10), "healthy again", || health(0)).await?;
    back.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_and_cloudflare_get_their_url_shape_auth_and_user_agent() -> anyhow::Result<()> {
    let azure = OpenAiFake::start().await?;
    let cloudflare = OpenAiFake::start().await?;
    let config = r#"
model_list:
  - model_name: gpt4o
    litellm_params:
      model: azure/gpt4o-prod
      api_key: os.environ/AZURE_API_KEY
      api_version: "2025-01-01-preview"
  - model_name: llama
    litellm_params:
      model: cloudflare/@cf/meta/llama-3.1-8b-instruct
      api_key: os.environ/CLOUDFLARE_API_TOKEN
"#;
    let env = [
        ("AZURE_API_KEY", "azure-key-000000000001".to_owned()),
        ("AZURE_OPENAI_ENDPOINT", format!("http://{}", azure.addr())),
        ("CLOUDFLARE_API_TOKEN", "cf-token-00000000002".to_owned()),
        ("CLOUDFLARE_ACCOUNT_ID", "acct42".to_owned()),
        (
            "CLOUDFLARE_API_BASE",
            format!(
                "http://{}/client/v4/accounts/{{account_id}}/ai/v1",
                cloudflare.addr()
            ),
        ),
    ];
    let gw = Gateway::start(config, &env).await?;
    wait_for(Duration::from_secs(10), "the table", || async {
        let (status, body) = gw.get("", "/v1/models").await.ok()?;
        (status == 200 && model_ids(&body).len() == 2).then_some(())
    })
    .await?;

    let (status, body, _) = gw.chat("", "gpt4o").await?;
    assert_eq!(status, 200, "{body}");
    let call = azure
        .calls()
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no azure call"))?;
    assert_eq!(call.path, "/openai/deployments/gpt4o-prod/chat/completions");
    assert_eq!(call.query, "api-version=2025-01-01-preview");
    assert_eq!(call.header("api-key"), Some("azure-key-000000000001"));
    assert_eq!(
        call.header("authorization"),
        None,
        "Bearer means an Entra token to Azure"
    );

    let (status, body, _) = gw.chat("", "llama").await?;
    assert_eq!(status, 200, "{body}");
    let call = cloudflare
        .calls()
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no cloudflare call"))?;
    assert_eq!(
        call.path,
        "/client/v4/accounts/acct42/ai/v1/chat/completions"
    );
    assert_eq!(call.body["model"], "@cf/meta/llama-3.1-8b-instruct");
    assert_eq!(call.bearer().as_deref(), Some("cf-token-00000000002"));
    assert!(
        call.header("user-agent")
            .is_some_and(|a| a.starts_with("switchyard/"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_keys_work_as_presented_in_every_key_header() -> anyhow::Result<()> {
    let upstream = OpenAiFake::start().await?;
    let config = format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: hosted_vllm/m, api_base: \"{}\"}}\n",
        upstream.base_url()
    );
    let env = [(
        "LLM_PROXY_API_KEYS",
        "proxy-app-one,proxy-app-two".to_owned(),
    )];
    let gw = Gateway::start(&config, &env).await?;
    // `switchyard keys import`, as a team brings an app's existing token.
    let admin = switchyard::cmd::admin::AdminArgs {
        https_ca: None,
        server: format!(
            "http://{}",
            gw.control_plane
                .admin_addr()
                .ok_or_else(|| anyhow::anyhow!("no admin address"))?
        ),
        token: Some(ADMIN_TOKEN.into()),
        token_dir: gw.dir.path().to_path_buf(),
        json: false,
    };
    let mut out = Vec::new();
    switchyard::cmd::keys::KeysArgs {
        cmd: switchyard::cmd::keys::KeysCmd::Import {
            name: "billing-app".into(),
            secret: "old-gateway-token-7f3a".into(),
            models: vec![],
        },
        admin,
    }
    .run_to(&mut out)
    .await?;
    let printed = String::from_utf8(out)?;
    assert!(printed.contains("…7f3a"), "{printed}");
    assert!(
        !printed.contains("old-gateway-token"),
        "the secret is not echoed: {printed}"
    );

    let send = |header: &'static str, value: String| {
        let gw = &gw;
        async move {
            gw.client
                .post(format!("{}/v1/chat/completions", gw.edge))
                .header(header, value)
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        }
    };
    // The import reaches the edge with the next table: wait for it to be accepted.
    wait_for(Duration::from_secs(10), "the imported key", || async {
        send("authorization", "Bearer old-gateway-token-7f3a".into())
            .await
            .filter(|&status| status == 200)
    })
    .await?;
    // (header, value) → status
    let cases = [
        ("authorization", "Bearer old-gateway-token-7f3a", 200),
        ("x-api-key", "old-gateway-token-7f3a", 200),
        ("api-key", "proxy-app-two", 200),
        ("authorization", "Bearer proxy-app-one", 200),
        ("authorization", "Bearer not-imported-anywhere", 401),
    ];
    for (header, value, want) in cases {
        let got = wait_for(Duration::from_secs(10), "an answer", || {
            send(header, value.to_owned())
        })
        .await?;
        assert_eq!(got, want, "{header}: {value}");
    }
    let response = gw
        .client
        .post(format!("{}/v1/chat/completions", gw.edge))
        .bearer_auth("not-imported-anywhere")
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await?;
    let body: Value = response.json().await?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("keys import"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_checks_send_a_one_token_chat_with_the_credential() -> anyhow::Result<()> {
    let vllm = OpenAiFake::start().await?;
    let config = format!(
        r#"
model_list:
  - model_name: chat
    litellm_params: {{model: hosted_vllm/qwen, api_base: "{}", api_key: os.environ/VLLM_KEY}}
general_settings:
  background_health_checks: true
  health_check_interval: 0.2
  health_check_mode: completion
"#,
        vllm.base_url()
    );
    let _gw = Gateway::start(&config, &[("VLLM_KEY", "vllm-key-0000000001".to_owned())]).await?;
    let checks = wait_for(Duration::from_secs(10), "two completion checks", || async {
        let checks: Vec<_> = vllm
            .calls()
            .into_iter()
            .filter(|c| c.path == "/v1/chat/completions")
            .collect();
        (checks.len() >= 2).then_some(checks)
    })
    .await?;
    for call in &checks {
        assert_eq!(call.body["model"], "qwen");
        assert_eq!(call.body["max_tokens"], 1);
        assert_eq!(call.bearer().as_deref(), Some("vllm-key-0000000001"));
    }
    assert!(
        vllm.calls().iter().all(|c| c.path != "/v1/models"),
        "completion mode does not list models"
    );
    Ok(())
}
