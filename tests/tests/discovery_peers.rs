//! Discovery peers against fake servers of every kind on distinct loopback addresses
//! (127.0.0.2-127.0.0.7 on their real default ports, plus custom ports), scanned by the agent's
//! real scanner: naming, identification of `host:port` peers, facts, API keys, and the rules
//! for unresolvable hosts and local discovery being off.

use std::collections::HashMap;

use switchyard_node_agent::config::{LOCAL_DISCOVERY_ENV, PEERS_ENV};
use switchyard_node_agent::discovery::scan::Scanner;
use switchyard_node_agent::{PeerEntry, ProbeTarget, Secret, ServerKind};
use switchyard_proto::v1::Backend;
use switchyard_tests::discovery_cluster::isolated_agent;
use switchyard_tests::discovery_fakes::{FakeBackend, FakeState};
use switchyard_tests::harness::init;

fn by_id(found: Vec<Backend>) -> HashMap<String, Backend> {
    found.into_iter().map(|b| (b.id.clone(), b)).collect()
}

fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[tokio::test]
async fn peers_of_every_kind_are_found_named_identified_and_described() -> anyhow::Result<()> {
    init();
    let ollama = FakeBackend::start_with(
        ServerKind::Ollama,
        "127.0.0.2:11434",
        FakeState {
            loaded: vec!["llama3.2:latest".into()],
            context_length: 4096,
            ..fake_state(&["llama3.2:latest", "qwen3:8b"])
        },
    )
    .await?;
    let lmstudio = FakeBackend::start_with(
        ServerKind::LmStudio,
        "127.0.0.3:1234",
        FakeState {
            loaded: vec!["qwen2.5-7b-instruct".into()],
            ..fake_state(&["qwen2.5-7b-instruct", "phi-4"])
        },
    )
    .await?;
    let vllm = FakeBackend::start_with(
        ServerKind::Vllm,
        "127.0.0.4:8000",
        FakeState {
            running: 3,
            waiting: 7,
            kv_cache_usage: 0.42,
            context_length: 32768,
            ..fake_state(&["Qwen/Qwen2.5-7B-Instruct"])
        },
    )
    .await?;
    let litellm = FakeBackend::start_with(
        ServerKind::Litellm,
        "127.0.0.5:4000",
        FakeState {
            api_key: Some("sk-master-test-1234".into()),
            ..fake_state(&["gpt-4o", "claude-sonnet"])
        },
    )
    .await?;
    // Custom ports, given as host:port: kinds come from their signatures, not the port.
    let custom_ollama =
        FakeBackend::start(ServerKind::Ollama, "127.0.0.6:0", &["gemma3:4b"]).await?;
    let custom_lmstudio = FakeBackend::start_with(
        ServerKind::LmStudio,
        "127.0.0.6:0",
        FakeState {
            legacy_only: true,
            loaded: vec!["mistral-7b".into()],
            ..fake_state(&["mistral-7b"])
        },
    )
    .await?;
    let custom_vllm = FakeBackend::start(ServerKind::Vllm, "127.0.0.6:0", &["tiny-vllm"]).await?;

    let mut cfg = isolated_agent("http://127.0.0.1:1", "gpu01", 1000);
    // The key-secured LiteLLM comes from config; the rest from the environment variable, which
    // replaces config peers, so config is applied after it here.
    cfg.apply_env_from(env(vec![(
        PEERS_ENV,
        format!(
            "127.0.0.2, 127.0.0.3,127.0.0.4,127.0.0.6:{},127.0.0.6:{},127.0.0.6:{},no-such-host.invalid",
            custom_ollama.addr().port(),
            custom_lmstudio.addr().port(),
            custom_vllm.addr().port()
        ),
    )]))?;
    cfg.discovery.peers.push(PeerEntry::WithKey {
        address: "127.0.0.5".into(),
        api_key: Some(Secret::new("sk-master-test-1234")),
    });
    cfg.validate()?;
    let scanner = Scanner::new(&cfg)?;
    let found = by_id(scanner.scan().await);

    let mut ids: Vec<&str> = found.keys().map(String::as_str).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "litellm-127-0-0-5",
            "lmstudio-127-0-0-3",
            "lmstudio-127-0-0-6",
            "ollama-127-0-0-2",
            "ollama-127-0-0-6",
            "vllm-127-0-0-4",
            "vllm-127-0-0-6",
        ]
    );

    let o = &found["ollama-127-0-0-2"];
    assert_eq!(o.kind, "ollama");
    assert_eq!(o.base_url, "http://127.0.0.2:11434/v1");
    assert_eq!(o.models, ["llama3.2:latest", "qwen3:8b"]);
    let f = o.facts.as_ref().expect("facts");
    assert!(f.healthy && f.loaded_known);
    assert_eq!(f.loaded_models, ["llama3.2:latest"]);
    assert_eq!(f.server_version, "0.6.2");
    assert_eq!(f.context_lengths.get("llama3.2:latest"), Some(&4096));
    assert_eq!(f.kv_cache_usage, -1.0);

    let l = found["lmstudio-127-0-0-3"].facts.as_ref().expect("facts");
    assert!(l.loaded_known);
    assert_eq!(l.loaded_models, ["qwen2.5-7b-instruct"]);
    // Loaded: the loaded context; not loaded: the model's maximum.
    assert_eq!(l.context_lengths.get("qwen2.5-7b-instruct"), Some(&8192));
    assert_eq!(l.context_lengths.get("phi-4"), Some(&131072));

    let legacy = found["lmstudio-127-0-0-6"].facts.as_ref().expect("facts");
    assert_eq!(legacy.loaded_models, ["mistral-7b"]);

    let v = found["vllm-127-0-0-4"].facts.as_ref().expect("facts");
    assert_eq!((v.running, v.waiting), (3, 7));
    assert!(
        (v.kv_cache_usage - 0.42).abs() < 1e-9,
        "{}",
        v.kv_cache_usage
    );
    assert_eq!(v.server_version, "0.10.1");
    assert_eq!(
        v.context_lengths.get("Qwen/Qwen2.5-7B-Instruct"),
        Some(&32768)
    );
    assert!(!v.loaded_known);

    let lt = &found["litellm-127-0-0-5"];
    assert_eq!(lt.models, ["claude-sonnet", "gpt-4o"]);
    assert_eq!(lt.api_key, "sk-master-test-1234");
    assert_eq!(lt.facts.as_ref().expect("facts").server_version, "1.74.3");

    assert_eq!(
        found["ollama-127-0-0-6"].base_url,
        format!("http://127.0.0.6:{}/v1", custom_ollama.addr().port())
    );
    assert_eq!(found["vllm-127-0-0-6"].models, ["tiny-vllm"]);

    // Nothing ran inference, and LiteLLM's money-spending /health was never called.
    for fake in [
        &ollama,
        &lmstudio,
        &vllm,
        &litellm,
        &custom_ollama,
        &custom_lmstudio,
        &custom_vllm,
    ] {
        let requests = fake.requests();
        assert!(!requests.is_empty());
        assert!(
            requests.iter().all(|r| r.starts_with("GET ")),
            "{requests:?}"
        );
    }
    assert!(!litellm.requests().iter().any(|r| r == "GET /health"));
    // A second scan of an identified host:port sends one listing, not every signature again.
    let before = custom_vllm.requests().len();
    let again = by_id(scanner.scan().await);
    assert_eq!(again.len(), 7);
    let second: Vec<String> = custom_vllm.requests()[before..].to_vec();
    assert!(
        !second
            .iter()
            .any(|r| r == "GET /api/tags" || r == "GET /api/v1/models"),
        "{second:?}"
    );

    for fake in [
        ollama,
        lmstudio,
        vllm,
        litellm,
        custom_ollama,
        custom_lmstudio,
        custom_vllm,
    ] {
        fake.stop().await;
    }
    Ok(())
}

fn fake_state(models: &[&str]) -> FakeState {
    FakeState {
        models: models.iter().map(|m| m.to_string()).collect(),
        loaded: Vec::new(),
        context_length: 8192,
        running: 0,
        waiting: 0,
        kv_cache_usage: 0.0,
        ready: true,
        api_key: None,
        legacy_only: false,
    }
}

#[tokio::test]
async fn secured_litellm_needs_its_key_and_unready_litellm_is_skipped() -> anyhow::Result<()> {
    init();
    let litellm = FakeBackend::start_with(
        ServerKind::Litellm,
        "127.0.0.7:4000",
        FakeState {
            api_key: Some("sk-right".into()),
            ..fake_state(&["gpt-4o"])
        },
    )
    .await?;
    let scan = |key: Option<&str>| {
        let mut cfg = isolated_agent("http://127.0.0.1:1", "n", 1000);
        cfg.discovery.peers = vec![PeerEntry::WithKey {
            address: "127.0.0.7:4000".into(),
            api_key: key.map(Secret::new),
        }];
        async move { anyhow::Ok(Scanner::new(&cfg)?.scan().await) }
    };
    assert!(scan(None).await?.is_empty(), "no key: a 401 does not count");
    assert!(scan(Some("sk-wrong")).await?.is_empty());
    let found = scan(Some("sk-right")).await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "litellm-127-0-0-7");
    litellm.set(|s| s.ready = false);
    assert!(
        scan(Some("sk-right")).await?.is_empty(),
        "not ready: skipped"
    );
    litellm.stop().await;
    Ok(())
}

#[tokio::test]
async fn ipv6_peers_in_brackets_and_unresolvable_hosts() -> anyhow::Result<()> {
    init();
    let vllm = FakeBackend::start(ServerKind::Vllm, "[::1]:0", &["v6-model"])
        .await
        .map_err(|e| anyhow::anyhow!("this test needs IPv6 loopback (::1): {e}"))?;
    let mut cfg = isolated_agent("http://127.0.0.1:1", "n", 1000);
    cfg.apply_env_from(env(vec![(
        PEERS_ENV,
        format!("[::1]:{},unresolvable-peer.invalid", vllm.addr().port()),
    )]))?;
    let scanner = Scanner::new(&cfg)?;
    // The unresolvable host is skipped (one warning) on every scan without blocking the others.
    for _ in 0..2 {
        let found = scanner.scan().await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].id, "vllm---1");
        assert_eq!(
            found[0].base_url,
            format!("http://[::1]:{}/v1", vllm.addr().port())
        );
    }
    vllm.stop().await;
    Ok(())
}

#[tokio::test]
async fn local_targets_are_named_by_kind_and_can_be_switched_off() -> anyhow::Result<()> {
    init();
    let ollama = FakeBackend::start(ServerKind::Ollama, "127.0.0.1:0", &["local-model"]).await?;
    let mut cfg = isolated_agent("http://127.0.0.1:1", "gpu01", 1000);
    cfg.discovery.local_scan = true;
    cfg.naming = switchyard_node_agent::Naming::Bare;
    cfg.targets = vec![ProbeTarget::new(
        ServerKind::Ollama,
        "127.0.0.1",
        ollama.addr().port(),
    )];
    let found = Scanner::new(&cfg)?.scan().await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "ollama");

    cfg.naming = switchyard_node_agent::Naming::NodeSuffix;
    assert_eq!(Scanner::new(&cfg)?.scan().await[0].id, "ollama-gpu01");

    for off in ["0", "false", "off", "no", ""] {
        let mut cfg = cfg.clone();
        cfg.apply_env_from(env(vec![(LOCAL_DISCOVERY_ENV, off.to_owned())]))?;
        cfg.validate()?;
        assert!(
            Scanner::new(&cfg)?.scan().await.is_empty(),
            "LLM_PROXY_LOCAL_DISCOVERY={off:?} must stop local probing"
        );
    }
    ollama.stop().await;
    Ok(())
}
