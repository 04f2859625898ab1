//! The web dashboard in a real headless browser against a live cluster: three voters, a node
//! agent with a GPU, two upstreams (one answering 429 so a cooldown shows), an edge and two
//! client keys with traffic. Each page is loaded in chromium and its rendered content checked.
//!
//! With `SWITCHYARD_SCREENSHOTS=<dir>` set, a PNG of every page is also written there (that is
//! how the pictures in docs/dashboard.md are made).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use switchyard_control_plane::admin::views::{NewEndpoint, NewKey};
use switchyard_tests::browser::Browser;
use switchyard_tests::cluster::{ADMIN_TOKEN, Cluster, READ_TOKEN};
use switchyard_tests::discovery_cluster::{RunningAgent, isolated_agent};
use switchyard_tests::discovery_fakes::write_script;
use switchyard_tests::harness::wait_for;
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);

/// Starts an edge following the voter at `grpc`.
async fn edge(grpc: SocketAddr) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cfg = switchyard_edge::Config {
        control_plane: format!("http://{grpc}"),
        edge_name: "edge-a".into(),
        ..Default::default()
    };
    tokio::spawn(switchyard_edge::run(cfg, listener, std::future::pending()));
    Ok(format!("http://{addr}"))
}

/// Sends `n` chat requests for `model` with `secret`; returns how many answered 200.
async fn chat(edge: &str, secret: &str, model: &str, n: usize) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let mut ok = 0;
    for _ in 0..n {
        let status = client
            .post(format!("{edge}/v1/chat/completions"))
            .bearer_auth(secret)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await?
            .status();
        ok += usize::from(status.is_success());
    }
    Ok(ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_the_live_cluster_in_chromium() -> anyhow::Result<()> {
    let browser = Browser::find()?;
    let cluster = Cluster::start(3, false).await?;
    let leader = cluster.wait_leader(WAIT).await?;
    let voter = cluster.voter(leader);
    let admin = voter.admin()?;
    let grpc = voter
        .grpc()
        .ok_or_else(|| anyhow::anyhow!("no grpc address"))?;

    // Two upstreams: a local server and a cloud one that is out of quota for ten minutes.
    let local = OpenAiFake::start().await?;
    let cloud = OpenAiFake::start().await?;
    cloud.script(
        "gpt-4o-mini",
        vec![Behavior::rate_limited(&[("retry-after", "600")])],
    );
    for (id, fake, model) in [
        ("dgx-vllm", &local, "llama3"),
        ("cloud", &cloud, "gpt-4o-mini"),
    ] {
        admin
            .add_endpoint(&NewEndpoint {
                id: id.into(),
                url: fake.base_url(),
                models: vec![model.into()],
                ..Default::default()
            })
            .await?;
    }
    let team_a = admin
        .create_key(&NewKey {
            name: "team-a".into(),
            ..Default::default()
        })
        .await?;
    let team_b = admin
        .create_key(&NewKey {
            name: "team-b".into(),
            allowed_models: vec!["llama3".into()],
            ..Default::default()
        })
        .await?;

    // A node agent on a host with one GPU.
    let dir = tempfile::tempdir()?;
    let smi = write_script(
        dir.path(),
        "nvidia-smi",
        "echo '0, NVIDIA H100 80GB HBM3, 81559, 20480, 42'",
    )?;
    let mut agent_cfg = isolated_agent(&format!("http://{grpc}"), "dgx-01", 300);
    agent_cfg.nvidia_smi = smi.display().to_string();
    agent_cfg.gpu_interval_ms = 200;
    let agent = RunningAgent::spawn(agent_cfg);

    // Traffic through the edge: both keys on the local model, team-a into the cooldown.
    let edge = edge(grpc).await?;
    wait_for(WAIT, "the edge to serve team-a", || async {
        (chat(&edge, &team_a.secret, "llama3", 1).await.ok()? == 1).then_some(())
    })
    .await?;
    assert_eq!(chat(&edge, &team_a.secret, "llama3", 11).await?, 11);
    assert_eq!(chat(&edge, &team_b.secret, "llama3", 5).await?, 5);
    assert_eq!(chat(&edge, &team_a.secret, "gpt-4o-mini", 2).await?, 0);
    wait_for(WAIT, "the cloud cooldown to be committed", || async {
        let cooldowns = admin.cooldowns().await.ok()?;
        cooldowns
            .iter()
            .any(|c| c.endpoint_id == "cloud")
            .then_some(())
    })
    .await?;
    wait_for(WAIT, "the leader to know the GPU", || async {
        let status = admin.status().await.ok()?;
        status
            .nodes
            .iter()
            .any(|n| n.gpus.iter().any(|g| g.name.contains("H100")))
            .then_some(())
    })
    .await?;

    let base = voter.admin_url()?;
    let usage_route = reqwest::Client::new()
        .get(format!("{base}/api/v1/usage?group_by=key"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .status();
    let recorded = usage_route != reqwest::StatusCode::NOT_FOUND;
    if recorded {
        // Edges flush usage in batches; wait until team-b's five requests (21 tokens each
        // from the fake) have reached the replicated state.
        let api = reqwest::Client::new();
        wait_for(WAIT, "team-b's usage to reach the API", || async {
            let usage: serde_json::Value = api
                .get(format!("{base}/api/v1/usage?group_by=key"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let rows = usage["rows"].as_array()?;
            let row = rows.iter().find(|r| r["group"] == team_b.key.id.as_str())?;
            (row["requests"] == 5).then_some(())
        })
        .await?;
    }
    let shots = std::env::var_os("SWITCHYARD_SCREENSHOTS").map(std::path::PathBuf::from);

    // Each page, signed in with a one-time `?token=` that the dashboard turns into a cookie
    // (the DOM is that of the page it redirects to).
    let pages: &[(&str, &[&str])] = &[
        (
            "/ui",
            &[
                "Members",
                "leader",
                &format!("voter {leader} at"),
                "Healthy endpoints",
            ],
        ),
        (
            "/ui/nodes",
            &[
                "dgx-01",
                "NVIDIA H100 80GB HBM3",
                "20480 / 81559 MiB",
                "42%",
            ],
        ),
        (
            "/ui/endpoints",
            &[
                "dgx-vllm",
                "cloud",
                "cooling (1)",
                "Cooldowns",
                "gpt-4o-mini",
            ],
        ),
        (
            "/ui/models",
            &["llama3", "dgx-vllm → llama3", "gpt-4o-mini"],
        ),
        ("/ui/keys", &["team-a", "team-b", &team_a.key.id, "active"]),
        ("/ui/usage", &["Usage", "24h", "7d", "30d"]),
    ];
    for (path, wants) in pages {
        let url = format!("{base}{path}?token={READ_TOKEN}");
        let dom = browser.dump_dom(&url).await?;
        assert!(
            !dom.contains("name=\"token\""),
            "{path} showed the sign-in form: {dom}"
        );
        assert!(dom.contains("Answered by voter"), "{path}: {dom}");
        for want in *wants {
            assert!(dom.contains(want), "{path} lacks `{want}`: {dom}");
        }
        match (recorded, *path) {
            (false, "/ui/keys" | "/ui/usage") => {
                assert!(dom.contains("no usage recorded"), "{path}: {dom}");
            }
            // team-b: 5 requests, 105 tokens, no price configured.
            (true, "/ui/keys") => {
                assert!(
                    dom.contains("<td>5</td><td>105</td><td>$0.00</td>"),
                    "{dom}"
                );
            }
            (true, "/ui/usage") => {
                assert_eq!(dom.matches("<svg").count(), 4, "{dom}");
                assert!(
                    dom.contains("By model") && dom.contains("<td>llama3</td>"),
                    "{dom}"
                );
                assert!(!dom.contains("no usage recorded"), "{dom}");
            }
            _ => {}
        }
        if let Some(dir) = &shots {
            let name = match path.trim_start_matches("/ui").trim_start_matches('/') {
                "" => "cluster",
                other => other,
            };
            browser
                .screenshot(&url, &dir.join(format!("dashboard-{name}.png")), 1280, 720)
                .await?;
        }
    }

    // A wrong token gets the sign-in form back, and no page.
    let dom = browser
        .dump_dom(&format!("{base}/ui/keys?token=not-a-token"))
        .await?;
    assert!(
        dom.contains("not accepted") && !dom.contains("team-a"),
        "{dom}"
    );
    if let Some(dir) = &shots {
        browser
            .screenshot(
                &format!("{base}/ui/login"),
                &dir.join("dashboard-login.png"),
                1280,
                600,
            )
            .await?;
    }

    agent.stop().await?;
    Ok(())
}
