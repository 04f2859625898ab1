//! Catalogs that stay true, end to end through `up`: an endpoint declared without a model list
//! serves what its listing holds, filtered free from paid; the served set follows the listing
//! within one refresh; chains naming what serves nothing show up in reload warnings, `doctor`,
//! `/metrics` and `switchyard catalog`; capability aliases follow listing facts, `switchyard
//! bench` measurements and cooldowns, shown by `switchyard models`.

use std::time::Duration;

use serde_json::Value;
use switchyard::cmd::admin::AdminArgs;
use switchyard::cmd::bench::{self, BenchArgs};
use switchyard::cmd::catalog::{self, CatalogCmd};
use switchyard::cmd::doctor::{self, DoctorArgs, Status, names};
use switchyard::cmd::models;
use switchyard::cmd::ping::{self, PingArgs};
use switchyard::up::{Up, UpConfig, UpExtras};
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::catalog::probe::{AuditRequest, ProbeOutcome};
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
    start_with(fake, CONFIG).await
}

async fn start_with(fake: &CatalogFake, config: &str) -> anyhow::Result<Running> {
    init();
    let data = tempfile::tempdir()?;
    let file = data.path().join("config.yaml");
    std::fs::write(&file, config.replace("FAKE", &fake.base_url()))?;
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
        ..Default::default()
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
    let anthropic: Value = client
        .get(format!("http://{}/anthropic/v1/models", r.up.edge_addr()))
        .send()
        .await?
        .json()
        .await?;
    let pixtral = &anthropic["data"][1];
    assert_eq!(pixtral["id"], "pixtral:free", "{anthropic}");
    assert_eq!(pixtral["context_length"], 32768, "{anthropic}");
    assert_eq!(pixtral["capabilities"], serde_json::json!(["vision"]));
    assert_eq!(pixtral["status"], "healthy");

    // `switchyard catalog` shows served and filtered models, in text and JSON.
    let args = AdminArgs {
        https_ca: None,
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
        https_ca: None,
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

const TWO_KEYS: &str = r#"
endpoints:
  - id: router
    url: FAKE
    api_keys: ["k-good", "k-bad"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_prunes_the_dead_and_its_failure_cache_stops_re_probes() -> anyhow::Result<()> {
    let fake = CatalogFake::start(vec![
        FakeModel::new("ok:free", true),
        FakeModel::new("gone:free", true),
        FakeModel::new("busy:free", true),
    ])
    .await?;
    fake.answer("gone:free", 404);
    fake.answer("busy:free", 429);
    fake.answer_key("k-bad", 401);
    let r = start_with(&fake, TWO_KEYS).await?;
    r.admin.refresh_catalog().await?;
    wait_models(&r, &["busy:free", "gone:free", "ok:free"]).await?;

    // A dry run reports and changes nothing.
    let dry = r
        .admin
        .audit_catalog(&AuditRequest {
            dry_run: true,
            ..Default::default()
        })
        .await?;
    assert!(!dry.applied);
    assert_eq!(dry.pruned.len(), 1, "{dry:?}");
    wait_models(&r, &["busy:free", "gone:free", "ok:free"]).await?;

    // Dry-run failures are cached too, so the real audit answers from the cache for them.
    let report = r.admin.audit_catalog(&AuditRequest::default()).await?;
    let table: Vec<(&str, &str, ProbeOutcome)> = report
        .rows
        .iter()
        .map(|r| (r.key.model.as_str(), r.key.credential.as_str(), r.outcome))
        .collect();
    assert_eq!(
        table,
        vec![
            ("busy:free", "key", ProbeOutcome::RateLimited),
            ("busy:free", "key_2", ProbeOutcome::AuthFailed),
            ("gone:free", "key", ProbeOutcome::NotFound),
            ("gone:free", "key_2", ProbeOutcome::AuthFailed),
            ("ok:free", "key", ProbeOutcome::Ok),
            ("ok:free", "key_2", ProbeOutcome::AuthFailed),
        ]
    );
    let pruned: Vec<(&str, &str)> = report
        .pruned
        .iter()
        .map(|p| (p.model.as_str(), p.reason.as_str()))
        .collect();
    assert_eq!(pruned, vec![("gone:free", "not_found")]);
    // Verified dead leaves the served set; rate-limited and half-working models stay.
    wait_models(&r, &["busy:free", "ok:free"]).await?;

    // Within the failure TTL, failures are not probed again: only the one success is.
    let probes_before = fake.chats_for("gone:free") + fake.chats_for("busy:free");
    let again = r.admin.audit_catalog(&AuditRequest::default()).await?;
    assert_eq!(
        fake.chats_for("gone:free") + fake.chats_for("busy:free"),
        probes_before
    );
    let fresh: Vec<(&str, &str)> = again
        .rows
        .iter()
        .filter(|r| !r.cached)
        .map(|r| (r.key.model.as_str(), r.key.credential.as_str()))
        .collect();
    assert_eq!(fresh, vec![("ok:free", "key")]);
    assert!(
        again.pruned.is_empty() && again.restored.is_empty(),
        "{again:?}"
    );
    let catalog = r.admin.catalog().await?;
    assert_eq!(catalog[0].dead[0].model, "gone:free");

    // The text table and the JSON form.
    let args = AdminArgs {
        https_ca: None,
        server: r.admin_url.clone(),
        token: None,
        token_dir: r.data.path().join("data"),
        json: false,
    };
    let mut out = Vec::new();
    let audit = CatalogCmd::Audit {
        endpoint: None,
        dry_run: true,
    };
    catalog::run(&args, audit.clone(), &mut out).await?;
    let text = String::from_utf8(out)?;
    assert!(
        text.contains("router    gone:free  key_2       auth_failed   cached  0"),
        "{text}"
    );
    assert!(text.contains("would prune: none"), "{text}");
    let mut out = Vec::new();
    catalog::run(&AdminArgs { json: true, ..args }, audit, &mut out).await?;
    let json: Value = serde_json::from_slice(&out)?;
    assert_eq!(json["rows"][2]["outcome"], "not_found", "{json}");
    r.up.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_lists_providers_and_probes_one_model_each_without_pruning() -> anyhow::Result<()> {
    let fake = CatalogFake::start(vec![
        FakeModel::new("a:free", true),
        FakeModel::new("b:free", true),
    ])
    .await?;
    fake.answer("a:free", 404);
    let r = start_with(&fake, TWO_KEYS).await?;
    r.admin.refresh_catalog().await?;
    wait_models(&r, &["a:free", "b:free"]).await?;
    let admin = AdminArgs {
        https_ca: None,
        server: r.admin_url.clone(),
        token: None,
        token_dir: r.data.path().join("data"),
        json: false,
    };
    let mut out = Vec::new();
    let args = PingArgs {
        provider: None,
        no_probe: false,
        admin,
    };
    let rows = ping::ping(&args, &mut out).await?;
    let text = String::from_utf8(out)?;
    assert_eq!(
        text.lines().next(),
        Some("ENDPOINT  KIND    SOURCE  ON  KEYS  PROBE      MODEL   MS"),
        "{text}"
    );
    assert!(
        text.contains("router    openai  config  on  2     not_found  a:free"),
        "{text}"
    );
    // One chat, with the first key only; nothing pruned by a ping.
    assert_eq!(fake.chats_for("a:free") + fake.chats_for("b:free"), 1);
    assert_eq!(
        rows[0].probe.as_ref().map(|p| p.key.credential.as_str()),
        Some("key")
    );
    wait_models(&r, &["a:free", "b:free"]).await?;

    let mut out = Vec::new();
    let quiet = PingArgs {
        provider: Some("router".into()),
        no_probe: true,
        admin: AdminArgs {
            json: true,
            ..args.admin
        },
    };
    ping::ping(&quiet, &mut out).await?;
    let json: Value = serde_json::from_slice(&out)?;
    assert_eq!(json[0]["endpoint"], "router");
    assert!(json[0].get("probe").is_none(), "{json}");
    let missing = PingArgs {
        provider: Some("nope".into()),
        ..quiet
    };
    let err = ping::ping(&missing, &mut Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("no endpoint `nope`"), "{err}");
    r.up.stop().await
}

const ALIASES: &str = r#"
endpoints:
  - id: router
    url: FAKE
aliases:
  coding: "slow:free"
"#;

/// Sends one chat for `model` through the edge: (status, upstream model that served, attempts).
async fn chat(r: &Running, model: &str) -> anyhow::Result<(u16, String, String)> {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", r.up.edge_addr()))
        .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let served = header("x-switchyard-model");
    let attempts = header("x-switchyard-attempts");
    Ok((response.status().as_u16(), served, attempts))
}

fn admin_args(r: &Running, json: bool) -> AdminArgs {
    AdminArgs {
        https_ca: None,
        server: r.admin_url.clone(),
        token: None,
        token_dir: r.data.path().join("data"),
        json,
    }
}

fn members(json: &Value, alias: &str) -> Vec<String> {
    json["aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == alias)
        .map(|a| {
            a["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["model"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_aliases_follow_facts_measurements_and_cooldowns() -> anyhow::Result<()> {
    let model = |id: &str, delay_ms: u64| FakeModel {
        delay_ms,
        ..FakeModel::new(id, true)
    };
    let fake = CatalogFake::start(vec![
        model("quick:free", 0),
        model("middle:free", 150),
        FakeModel {
            vision: true,
            context_length: 32768,
            ..model("pixtral:free", 300)
        },
        model("slow:free", 450),
        FakeModel {
            embed: true,
            ..model("nomic-embed:free", 0)
        },
    ])
    .await?;
    let r = start_with(&fake, ALIASES).await?;
    r.admin.refresh_catalog().await?;
    // The built-in aliases are not listed; the user's alias is.
    wait_models(
        &r,
        &[
            "coding",
            "middle:free",
            "nomic-embed:free",
            "pixtral:free",
            "quick:free",
            "slow:free",
        ],
    )
    .await?;
    let admin = admin_args(&r, true);
    let mut out = Vec::new();
    models::list(&admin, &mut out).await?;
    let listed: Value = serde_json::from_slice(&out)?;
    assert!(
        listed["models"].as_array().is_some_and(|m| m.len() == 5),
        "{listed}"
    );
    // Nothing measured yet: no `fast`. Facts decide the rest; the user's `coding` wins.
    assert_eq!(members(&listed, "fast"), Vec::<String>::new(), "{listed}");
    assert_eq!(members(&listed, "vision"), vec!["pixtral:free"]);
    assert_eq!(members(&listed, "embed"), vec!["nomic-embed:free"]);
    assert_eq!(members(&listed, "coding"), vec!["slow:free"]);
    let coding = listed["aliases"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "coding"))
        .cloned();
    assert_eq!(coding.map(|c| c["rule"].clone()), Some(Value::from("")));
    assert_eq!(members(&listed, "free").len(), 4, "{listed}");

    // `switchyard bench` measures every chat deployment and reports the medians.
    let args = BenchArgs {
        edge: format!("http://{}", r.up.edge_addr()),
        api_key: None,
        requests: 3,
        model: None,
        timeout_ms: 10_000,
        no_report: false,
        admin: admin_args(&r, true),
    };
    let mut out = Vec::new();
    let report = bench::bench(&args, &mut out).await?;
    let json: Value = serde_json::from_slice(&out)?;
    assert_eq!(
        json["deployments"].as_array().map(Vec::len),
        Some(4),
        "{json}"
    );
    assert!(report.revision.is_some(), "{json}");
    for row in &report.deployments {
        assert_eq!((row.ok, row.requests), (3, 3), "{row:?}");
    }
    let slow = report.deployments.iter().find(|d| d.model == "slow:free");
    assert!(
        slow.and_then(|s| s.ttfb_p50_ms).is_some_and(|ms| ms >= 450),
        "{json}"
    );

    // One model, printed only: the table, and nothing reported.
    let one = BenchArgs {
        model: Some("quick:free".into()),
        no_report: true,
        requests: 2,
        admin: admin_args(&r, false),
        ..args
    };
    let mut out = Vec::new();
    let report = bench::bench(&one, &mut out).await?;
    let text = String::from_utf8(out)?;
    assert!(report.revision.is_none());
    assert!(
        text.starts_with("DEPLOYMENT         OK   TTFB P50  TTFB P95  TOTAL P50  TOTAL P95"),
        "{text}"
    );
    assert!(text.contains("router/quick:free  2/2  "), "{text}");
    assert!(text.ends_with("not reported\n"), "{text}");
    let missing = BenchArgs {
        model: Some("nope".into()),
        ..one
    };
    let err = bench::bench(&missing, &mut Vec::new()).await.unwrap_err();
    assert!(
        err.to_string().contains("no deployment serves `nope`"),
        "{err}"
    );

    // `fast` now exists, lowest time to first byte first.
    let mut out = Vec::new();
    models::list(&admin, &mut out).await?;
    let listed: Value = serde_json::from_slice(&out)?;
    assert_eq!(
        members(&listed, "fast"),
        vec!["quick:free", "middle:free", "pixtral:free", "slow:free"],
        "{listed}"
    );
    let text_args = admin_args(&r, false);
    let mut out = Vec::new();
    models::list(&text_args, &mut out).await?;
    let text = String::from_utf8(out)?;
    assert!(text.contains("ALIAS    RULE     MEMBERS"), "{text}");
    assert!(
        text.contains("fast     fast     quick:free (healthy, "),
        "{text}"
    );
    assert!(
        text.contains("coding   -        slow:free (healthy"),
        "{text}"
    );

    // The edge serves `fast` from its first member once the table arrives.
    wait_for(
        Duration::from_secs(10),
        "fast served by quick:free",
        || async {
            let (status, served, _) = chat(&r, "fast").await.ok()?;
            (status == 200 && served == "quick:free").then_some(())
        },
    )
    .await?;
    // Its card answers by name, with the facts of the member serving now.
    let card: Value = reqwest::get(format!("http://{}/v1/models/fast", r.up.edge_addr()))
        .await?
        .json()
        .await?;
    assert_eq!(
        (card["id"].as_str(), card["status"].as_str()),
        (Some("fast"), Some("healthy"))
    );

    // The first member starts answering 429: the same request falls through to the next
    // member, and the next request goes there at once (the first one is cooling down).
    fake.answer("quick:free", 429);
    let (status, served, attempts) = chat(&r, "fast").await?;
    assert_eq!(
        (status, served.as_str(), attempts.as_str()),
        (200, "middle:free", "2")
    );
    let quick_chats = fake.chats_for("quick:free");
    let (status, served, attempts) = chat(&r, "fast").await?;
    assert_eq!(
        (status, served.as_str(), attempts.as_str()),
        (200, "middle:free", "1")
    );
    assert_eq!(fake.chats_for("quick:free"), quick_chats);

    // The Ollama listing carries the same facts as /v1/models.
    let tags: Value = reqwest::get(format!("http://{}/api/tags", r.up.edge_addr()))
        .await?
        .json()
        .await?;
    let pixtral = tags["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "pixtral:free"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(pixtral["context_length"], 32768, "{tags}");
    assert_eq!(
        pixtral["capabilities"],
        serde_json::json!(["completion", "vision"])
    );
    assert_eq!(pixtral["status"], "healthy");
    r.up.stop().await
}
