//! Catalogs that stay true, end to end through `up`: an endpoint declared without a model list
//! serves what its listing holds, filtered free from paid; the served set follows the listing
//! within one refresh; chains naming what serves nothing show up in reload warnings, `doctor`,
//! `/metrics` and `switchyard catalog`.

use std::time::Duration;

use serde_json::Value;
use switchyard::cmd::admin::AdminArgs;
use switchyard::cmd::catalog::{self, CatalogCmd};
use switchyard::cmd::doctor::{self, DoctorArgs, Status, names};
use switchyard::up::{Up, UpConfig, UpExtras};
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_tests::catalog_fake::{CatalogFake, FakeModel};
use switchyard_tests::harness::{edge_models, init, wait_for};
use tokio::net::TcpListener;

const CONFIG: &str = r#"
endpoints:
  - id: router
    url: FAKE
    catalog:
      exclude: ["*-preview*"]
fallbacks:
  - {model: "llama:free", chain: ["gpt-paid", "typo-model"]}
"#;

struct Running {
    up: Up,
    admin: AdminClient,
    admin_url: String,
    data: tempfile::TempDir,
}

async fn start(fake: &CatalogFake) -> anyhow::Result<Running> {
    init();
    let data = tempfile::tempdir()?;
    let file = data.path().join("config.yaml");
    std::fs::write(&file, CONFIG.replace("FAKE", &fake.base_url()))?;
    let admin = TcpListener::bind("127.0.0.1:0").await?;
    let admin_url = format!("http://{}", admin.local_addr()?);
    let cfg = UpConfig {
        data_dir: data.path().join("data"),
        agent: false,
        probes: vec![],
        ..Default::default()
    };
    let extras = UpExtras {
        config_file: Some(file),
        admin: Some(admin),
        bootstrap_key: None,
    };
    let edge = TcpListener::bind("127.0.0.1:0").await?;
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let up = Up::start_with(cfg, edge, grpc, extras).await?;
    let token = std::fs::read_to_string(data.path().join("data/admin.token"))?;
    let admin = AdminClient::new(&admin_url, token.trim())?;
    Ok(Running {
        up,
        admin,
        admin_url,
        data,
    })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn wait_models(r: &Running, want: &[&str]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let edge = r.up.edge_addr();
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    let result = wait_for(
        Duration::from_secs(10),
        &format!("/v1/models = {want:?}"),
        || async {
            let models = sorted(edge_models(&client, edge).await?);
            (models == want).then_some(())
        },
    )
    .await;
    if result.is_err() {
        let last = edge_models(&client, edge).await;
        anyhow::bail!("/v1/models is {last:?}, not {want:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_set_follows_the_listing_within_one_refresh() -> anyhow::Result<()> {
    let fake = CatalogFake::start(vec![
        FakeModel::new("llama:free", true),
        FakeModel::new("gpt-paid", false),
        FakeModel::new("qwen-preview:free", true),
    ])
    .await?;
    let r = start(&fake).await?;
    let report = r.admin.refresh_catalog().await?;
    assert_eq!(report.endpoints.len(), 1, "{report:?}");
    // Free only by default; the preview is excluded although free.
    wait_models(&r, &["llama:free"]).await?;

    // An unchanged listing writes nothing.
    let again = r.admin.refresh_catalog().await?;
    assert!(!again.changed, "{again:?}");
    assert_eq!(again.revision, r.admin.status().await?.revision);

    // A model appears, one disappears, one turns paid: one refresh and the edge follows.
    fake.set_models(vec![
        FakeModel::new("llama:free", false),
        FakeModel::new("mistral:free", true),
        FakeModel {
            vision: true,
            context_length: 32768,
            ..FakeModel::new("pixtral:free", true)
        },
    ]);
    let report = r.admin.refresh_catalog().await?;
    assert!(report.changed);
    wait_models(&r, &["mistral:free", "pixtral:free"]).await?;

    // The listing's facts reach /v1/models.
    let client = reqwest::Client::new();
    let card: Value = client
        .get(format!(
            "http://{}/v1/models/pixtral:free",
            r.up.edge_addr()
        ))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(card["context_length"], 32768, "{card}");
    assert_eq!(
        card["capabilities"],
        serde_json::json!(["vision"]),
        "{card}"
    );
    assert_eq!(card["free"], true, "{card}");
    assert_eq!(card["status"], "healthy", "{card}");
    assert_eq!(card["owned_by"], "router", "{card}");

    // `switchyard catalog` shows served and filtered models, in text and JSON.
    let args = AdminArgs {
        server: r.admin_url.clone(),
        token: None,
        token_dir: r.data.path().join("data"),
        json: false,
    };
    let mut out = Vec::new();
    catalog::run(&args, CatalogCmd::List, &mut out).await?;
    let text = String::from_utf8(out)?;
    assert!(text.contains("router    3       2       1"), "{text}");
    assert!(text.contains("llama:free    filtered (paid)"), "{text}");
    let mut out = Vec::new();
    let json_args = AdminArgs { json: true, ..args };
    catalog::run(&json_args, CatalogCmd::List, &mut out).await?;
    let json: Value = serde_json::from_slice(&out)?;
    assert_eq!(
        json[0]["served"],
        serde_json::json!(["mistral:free", "pixtral:free"])
    );

    // An unreachable provider keeps its last listing and says why.
    fake.stop();
    let report = r.admin.refresh_catalog().await?;
    assert!(!report.changed);
    assert!(report.endpoints[0].error.is_some(), "{report:?}");
    let models = edge_models(&client, r.up.edge_addr()).await.map(sorted);
    assert_eq!(
        models,
        Some(vec!["mistral:free".into(), "pixtral:free".into()])
    );
    r.up.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_naming_a_filtered_or_unknown_group_is_reported_everywhere() -> anyhow::Result<()> {
    let fake = CatalogFake::start(vec![
        FakeModel::new("llama:free", true),
        FakeModel::new("gpt-paid", false),
    ])
    .await?;
    let r = start(&fake).await?;
    r.admin.refresh_catalog().await?;
    wait_models(&r, &["llama:free"]).await?;

    let chains = r.admin.chains().await?;
    let found: Vec<(&str, &str)> = chains
        .iter()
        .map(|c| (c.target.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![("gpt-paid", "filtered"), ("typo-model", "unknown")]
    );

    // Reload says so.
    let reload = r.admin.reload().await?;
    assert!(
        reload
            .warnings
            .iter()
            .any(|w| w == "fallback of llama:free names `typo-model`, which no endpoint serves"),
        "{reload:?}"
    );

    // The metric counts them by reason.
    let metrics = reqwest::get(format!("{}/metrics", r.admin_url))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("switchyard_broken_chain_links{reason=\"filtered\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_broken_chain_links{reason=\"unknown\"} 1"));

    // Doctor warns, naming both.
    let args = DoctorArgs {
        control_plane: r.up.grpc_addr().to_owned(),
        join_token: None,
        edge: format!("http://{}", r.up.edge_addr()),
        api_key: None,
        chat: false,
        no_edge: true,
        quick: false,
        node_name: Some("doctor-catalog".into()),
        timeout_ms: 3_000,
        config: None,
        tls: Default::default(),
    };
    let report = doctor::check(&args).await;
    let check = report.get(names::CHAINS).expect("a chains check");
    assert_eq!(check.status, Status::Warn, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("fallback of llama:free -> gpt-paid (filtered)"),
        "{text}"
    );
    assert!(
        text.contains("fallback of llama:free -> typo-model (unknown)"),
        "{text}"
    );

    // The request path skips the broken links and still answers from the chain's head.
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", r.up.edge_addr()))
        .json(&serde_json::json!({"model": "llama:free", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    r.up.stop().await
}
