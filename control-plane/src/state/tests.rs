//! Table tests of `ClusterState::apply`.

use super::*;

fn backend(id: &str, models: &[&str]) -> DiscoveredBackend {
    DiscoveredBackend {
        id: id.into(),
        kind: "ollama".into(),
        base_url: "http://127.0.0.1:11434/v1".into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        facts: None,
    }
}

fn report(node: &str, upserted: Vec<DiscoveredBackend>, removed: &[&str], full: bool) -> Command {
    Command::ReportBackends {
        node: node.into(),
        upserted,
        removed: removed.iter().map(|r| r.to_string()).collect(),
        full,
        at_ms: 1_000,
    }
}

fn declared(id: &str) -> Command {
    Command::PutEndpoint {
        spec: EndpointSpec {
            id: id.into(),
            kind: "openai".into(),
            base_url: "https://api.example.com/v1/".into(),
            models: vec!["b".into(), "a".into(), "a".into()],
            weight: 0,
            source: Source::Config,
            credentials: vec![],
            limits: Limits::default(),
            upstream: Default::default(),
        },
        at_ms: 5,
    }
}

#[test]
fn commands_change_state_and_revision() {
    // (commands applied in order, expected outcome of the last, expected endpoint ids)
    let cases: Vec<(Vec<Command>, Outcome, Vec<&str>)> = vec![
        (
            vec![declared("groq")],
            Outcome::Changed { revision: 1 },
            vec!["groq"],
        ),
        (
            vec![declared("groq"), declared("groq")],
            Outcome::Unchanged { revision: 1 },
            vec!["groq"],
        ),
        (
            vec![
                declared("groq"),
                Command::DeleteEndpoint { id: "groq".into() },
            ],
            Outcome::Changed { revision: 2 },
            vec![],
        ),
        (
            vec![Command::DeleteEndpoint { id: "nope".into() }],
            Outcome::Unchanged { revision: 0 },
            vec![],
        ),
        (
            vec![report(
                "n1",
                vec![backend("ollama", &["llama3"])],
                &[],
                true,
            )],
            Outcome::Changed { revision: 1 },
            vec!["ollama"],
        ),
        // The same report again changes nothing.
        (
            vec![
                report("n1", vec![backend("ollama", &["llama3"])], &[], true),
                report("n1", vec![backend("ollama", &["llama3"])], &[], true),
            ],
            Outcome::Unchanged { revision: 1 },
            vec!["ollama"],
        ),
        // Discovery never clobbers a declared endpoint.
        (
            vec![
                declared("ollama"),
                report("n1", vec![backend("ollama", &["x"])], &[], true),
            ],
            Outcome::Changed { revision: 2 },
            vec!["ollama", "ollama-auto"],
        ),
        // A second node proposing the same id gets -auto2 after -auto is taken.
        (
            vec![
                declared("ollama"),
                report("n1", vec![backend("ollama", &["x"])], &[], true),
                report("n2", vec![backend("ollama", &["y"])], &[], true),
            ],
            Outcome::Changed { revision: 3 },
            vec!["ollama", "ollama-auto", "ollama-auto2"],
        ),
        // A declared endpoint arriving later moves the discovered one aside.
        (
            vec![
                report("n1", vec![backend("ollama", &["x"])], &[], true),
                declared("ollama"),
            ],
            Outcome::Changed { revision: 2 },
            vec!["ollama", "ollama-auto"],
        ),
        // A removal names the proposed id, and only touches the reporting node.
        (
            vec![
                report("n1", vec![backend("vllm", &["q"])], &[], true),
                report("n2", vec![backend("vllm", &["q"])], &[], true),
                report("n1", vec![], &["vllm"], false),
            ],
            Outcome::Changed { revision: 3 },
            vec!["vllm-auto"],
        ),
        // A full snapshot drops what is missing from it.
        (
            vec![
                report(
                    "n1",
                    vec![backend("a", &["m"]), backend("b", &["m"])],
                    &[],
                    true,
                ),
                report("n1", vec![backend("b", &["m"])], &[], true),
            ],
            Outcome::Changed { revision: 2 },
            vec!["b"],
        ),
        // An update without `full` keeps the others.
        (
            vec![
                report("n1", vec![backend("a", &["m"])], &[], true),
                report("n1", vec![backend("b", &["m"])], &[], false),
            ],
            Outcome::Changed { revision: 2 },
            vec!["a", "b"],
        ),
    ];
    for (i, (commands, want, ids)) in cases.into_iter().enumerate() {
        let mut state = ClusterState::default();
        let mut last = None;
        for command in commands {
            last = Some(state.apply(command));
        }
        assert_eq!(last, Some(want), "case {i}");
        let got: Vec<&str> = state.endpoints.keys().map(String::as_str).collect();
        assert_eq!(got, ids, "case {i}");
    }
}

#[test]
fn declared_endpoint_is_normalised() {
    let mut state = ClusterState::default();
    state.apply(declared("groq"));
    let e = &state.endpoints["groq"];
    assert_eq!(e.base_url, "https://api.example.com/v1");
    assert_eq!(e.models, vec!["a", "b"]);
    assert_eq!(e.weight, 1);
    assert_eq!(e.created_ms, 5);
}

#[test]
fn bad_commands_are_rejected_without_change() {
    let bad = [
        Command::PutEndpoint {
            spec: EndpointSpec {
                id: "x".into(),
                kind: "openai".into(),
                base_url: "ftp://nope".into(),
                models: vec![],
                weight: 1,
                source: Source::Api,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        },
        Command::PutEndpoint {
            spec: EndpointSpec {
                id: "a/b".into(),
                kind: "openai".into(),
                base_url: "http://x/v1".into(),
                models: vec![],
                weight: 1,
                source: Source::Api,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        },
        Command::PutEndpoint {
            spec: EndpointSpec {
                id: "x".into(),
                kind: "openai".into(),
                base_url: "http://x/v1".into(),
                models: vec![],
                weight: 1,
                source: Source::Discovered,
                credentials: vec![],
                limits: Limits::default(),
                upstream: Default::default(),
            },
            at_ms: 0,
        },
        Command::PutModelGroup {
            group: ModelGroup {
                name: String::new(),
                deployments: vec![],
                source: Source::Api,
            },
        },
    ];
    for command in bad {
        let mut state = ClusterState::default();
        assert!(matches!(state.apply(command), Outcome::Rejected { .. }));
        assert_eq!(state, ClusterState::default());
    }
}

#[test]
fn node_transitions_are_changes_and_repeats_are_not() {
    let up = |at_ms| Command::NodeUp {
        name: "gpu01".into(),
        version: "0.1.0".into(),
        addresses: vec!["10.0.0.5".into()],
        at_ms,
    };
    let mut state = ClusterState::default();
    assert_eq!(state.apply(up(1)), Outcome::Changed { revision: 1 });
    assert_eq!(state.apply(up(2)), Outcome::Unchanged { revision: 1 });
    let down = Command::NodeDown {
        name: "gpu01".into(),
        at_ms: 3,
    };
    assert_eq!(state.apply(down.clone()), Outcome::Changed { revision: 2 });
    assert_eq!(state.apply(down), Outcome::Unchanged { revision: 2 });
    assert_eq!(state.nodes["gpu01"].status, NodeStatus::Down);
    assert_eq!(state.nodes["gpu01"].since_ms, 3);
    assert_eq!(state.apply(up(4)), Outcome::Changed { revision: 3 });
    assert_eq!(state.nodes["gpu01"].since_ms, 4);
}

#[test]
fn rediscovered_endpoint_keeps_its_auto_id_and_creation_time() {
    let mut state = ClusterState::default();
    state.apply(declared("ollama"));
    state.apply(report("n1", vec![backend("ollama", &["x"])], &[], true));
    let mut again = report("n1", vec![backend("ollama", &["x", "z"])], &[], true);
    if let Command::ReportBackends { at_ms, .. } = &mut again {
        *at_ms = 9_000;
    }
    state.apply(again);
    let e = &state.endpoints["ollama-auto"];
    assert_eq!(e.models, vec!["x", "z"]);
    assert_eq!(e.created_ms, 1_000);
    assert_eq!(state.endpoints.len(), 2);
}

fn cooldown(endpoint: &str, until_ms: i64, reason: &str) -> Cooldown {
    Cooldown {
        endpoint_id: endpoint.into(),
        credential_id: "key".into(),
        model: "m".into(),
        until_ms,
        reason: reason.into(),
    }
}

fn key(id: &str, source: Source) -> ClientKey {
    ClientKey {
        budget: Default::default(),
        id: id.into(),
        name: id.into(),
        sha256_hex: "ab".repeat(32),
        last4: "wxyz".into(),
        allowed_models: vec!["llama*".into()],
        expires_at_ms: 0,
        revoked: false,
        limits: Limits::default(),
        created_ms: 0,
        source,
    }
}

fn spec(id: &str, source: Source, url: &str) -> EndpointSpec {
    EndpointSpec {
        id: id.into(),
        kind: "openai".into(),
        base_url: url.into(),
        models: vec!["m".into()],
        weight: 1,
        source,
        credentials: vec![],
        limits: Limits::default(),
        upstream: Default::default(),
    }
}

#[test]
fn cooldowns_never_shorten_and_expire() {
    // (commands, expected (endpoint, until, reason) of the one target afterwards)
    let report = |cds: Vec<Cooldown>, at_ms| Command::ReportCooldowns {
        cooldowns: cds,
        at_ms,
    };
    type Case = (Vec<Command>, Option<(i64, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            vec![report(vec![cooldown("groq", 5_000, "rate_limited")], 1_000)],
            Some((5_000, "rate_limited")),
        ),
        // A later deadline extends it.
        (
            vec![
                report(vec![cooldown("groq", 5_000, "rate_limited")], 1_000),
                report(vec![cooldown("groq", 9_000, "quota_exhausted")], 2_000),
            ],
            Some((9_000, "quota_exhausted")),
        ),
        // An earlier deadline does not shorten it.
        (
            vec![
                report(vec![cooldown("groq", 9_000, "quota_exhausted")], 1_000),
                report(vec![cooldown("groq", 3_000, "rate_limited")], 2_000),
            ],
            Some((9_000, "quota_exhausted")),
        ),
        // Already expired when reported: ignored.
        (vec![report(vec![cooldown("groq", 500, "x")], 1_000)], None),
        // Expired ones are dropped by the next report.
        (
            vec![
                report(vec![cooldown("groq", 1_500, "x")], 1_000),
                report(vec![], 2_000),
            ],
            None,
        ),
        // Clearing one endpoint, or all.
        (
            vec![
                report(vec![cooldown("groq", 5_000, "x")], 1_000),
                Command::ClearCooldowns {
                    endpoint_id: Some("other".into()),
                },
            ],
            Some((5_000, "x")),
        ),
        (
            vec![
                report(vec![cooldown("groq", 5_000, "x")], 1_000),
                Command::ClearCooldowns {
                    endpoint_id: Some("groq".into()),
                },
            ],
            None,
        ),
        (
            vec![
                report(vec![cooldown("groq", 5_000, "x")], 1_000),
                Command::ClearCooldowns { endpoint_id: None },
            ],
            None,
        ),
    ];
    for (i, (commands, want)) in cases.into_iter().enumerate() {
        let mut state = ClusterState::default();
        for c in commands {
            state.apply(c);
        }
        let got = state
            .cooldowns
            .values()
            .next()
            .map(|c| (c.until_ms, c.reason.as_str()));
        assert_eq!(got, want, "case {i}");
        assert!(state.cooldowns.len() <= 1, "case {i}");
    }
}

#[test]
fn cooldown_without_endpoint_is_rejected() {
    let mut state = ClusterState::default();
    let out = state.apply(Command::ReportCooldowns {
        cooldowns: vec![cooldown("", 5_000, "x")],
        at_ms: 1,
    });
    assert!(matches!(out, Outcome::Rejected { .. }));
}

#[test]
fn keys_are_added_once_revoked_and_config_keys_protected() {
    let mut state = ClusterState::default();
    assert_eq!(
        state.apply(Command::PutKey {
            key: key("k1", Source::Api)
        }),
        Outcome::Changed { revision: 1 }
    );
    // The same id twice is refused: ids are how keys are revoked.
    assert!(matches!(
        state.apply(Command::PutKey {
            key: key("k1", Source::Api)
        }),
        Outcome::Rejected { .. }
    ));
    assert_eq!(
        state.apply(Command::RevokeKey { id: "k1".into() }),
        Outcome::Changed { revision: 2 }
    );
    assert_eq!(
        state.apply(Command::RevokeKey { id: "k1".into() }),
        Outcome::Unchanged { revision: 2 }
    );
    assert!(state.keys["k1"].revoked);
    assert!(matches!(
        state.apply(Command::RevokeKey { id: "nope".into() }),
        Outcome::Rejected { .. }
    ));
    let mut bad = key("k2", Source::Api);
    bad.sha256_hex = "not-hex".into();
    assert!(matches!(
        state.apply(Command::PutKey { key: bad }),
        Outcome::Rejected { .. }
    ));
    state.apply(Command::ReplaceSource {
        source: Source::Config,
        declared: Declared {
            keys: vec![key("team", Source::Api)],
            ..Default::default()
        },
        at_ms: 7,
    });
    assert_eq!(state.keys["team"].source, Source::Config);
    assert_eq!(state.keys["team"].created_ms, 7);
    assert!(matches!(
        state.apply(Command::RevokeKey { id: "team".into() }),
        Outcome::Rejected { .. }
    ));
}

#[test]
fn precedence_config_over_env_over_api_over_discovery() {
    // (commands, expected source and url of endpoint `x`, outcome of the last command is Rejected)
    let put = |source, url: &str| Command::PutEndpoint {
        spec: spec("x", source, url),
        at_ms: 1,
    };
    let replace = |source, url: &str| Command::ReplaceSource {
        source,
        declared: Declared {
            endpoints: vec![spec("x", source, url)],
            ..Default::default()
        },
        at_ms: 1,
    };
    let cases: Vec<(Vec<Command>, (Source, &str), bool)> = vec![
        // The API cannot overwrite a config endpoint.
        (
            vec![
                replace(Source::Config, "http://c/v1"),
                put(Source::Api, "http://a/v1"),
            ],
            (Source::Config, "http://c/v1"),
            true,
        ),
        // Config replaces an API endpoint of the same id.
        (
            vec![
                put(Source::Api, "http://a/v1"),
                replace(Source::Config, "http://c/v1"),
            ],
            (Source::Config, "http://c/v1"),
            false,
        ),
        // Env does not displace config.
        (
            vec![
                replace(Source::Config, "http://c/v1"),
                replace(Source::Env, "http://e/v1"),
            ],
            (Source::Config, "http://c/v1"),
            false,
        ),
        // Env replaces API.
        (
            vec![
                put(Source::Api, "http://a/v1"),
                replace(Source::Env, "http://e/v1"),
            ],
            (Source::Env, "http://e/v1"),
            false,
        ),
        // API may update its own.
        (
            vec![
                put(Source::Api, "http://a/v1"),
                put(Source::Api, "http://b/v1"),
            ],
            (Source::Api, "http://b/v1"),
            false,
        ),
    ];
    for (i, (commands, (source, url), rejected)) in cases.into_iter().enumerate() {
        let mut state = ClusterState::default();
        let mut last = None;
        for c in commands {
            last = Some(state.apply(c));
        }
        let e = &state.endpoints["x"];
        assert_eq!((e.source, e.base_url.as_str()), (source, url), "case {i}");
        assert_eq!(
            matches!(last, Some(Outcome::Rejected { .. })),
            rejected,
            "case {i}"
        );
    }
}

#[test]
fn replacing_a_source_applies_only_the_difference() {
    let mut state = ClusterState::default();
    let declared = |ids: &[&str], alias: Option<(&str, &str)>| Declared {
        endpoints: ids
            .iter()
            .map(|id| spec(id, Source::Config, "http://h/v1"))
            .collect(),
        aliases: alias
            .map(|(n, t)| Alias {
                name: n.into(),
                target: t.into(),
                source: Source::Config,
            })
            .into_iter()
            .collect(),
        fallbacks: vec![Fallback {
            model: "a".into(),
            chain: vec!["b".into()],
            context_window: true,
            source: Source::Config,
        }],
        settings: Some(RouterSettings {
            num_retries: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    let replace = |d| Command::ReplaceSource {
        source: Source::Config,
        declared: d,
        at_ms: 1,
    };
    state.apply(Command::PutEndpoint {
        spec: spec("api1", Source::Api, "http://h/v1"),
        at_ms: 1,
    });
    state.apply(report("n1", vec![backend("a", &["m"])], &[], true));
    assert_eq!(
        state.apply(replace(declared(&["a", "b"], Some(("fast", "m"))))),
        Outcome::Changed { revision: 3 }
    );
    let ids: Vec<&str> = state.endpoints.keys().map(String::as_str).collect();
    assert_eq!(ids, vec!["a", "a-auto", "api1", "b"]);
    assert_eq!(state.settings.num_retries, 2);
    // The same declaration again changes nothing.
    assert_eq!(
        state.apply(replace(declared(&["a", "b"], Some(("fast", "m"))))),
        Outcome::Unchanged { revision: 3 }
    );
    // Dropping `b` and the alias removes only them; API and discovered endpoints stay.
    assert_eq!(
        state.apply(replace(declared(&["a"], None))),
        Outcome::Changed { revision: 4 }
    );
    let ids: Vec<&str> = state.endpoints.keys().map(String::as_str).collect();
    assert_eq!(ids, vec!["a", "a-auto", "api1"]);
    assert!(state.aliases.is_empty());
    assert_eq!(state.fallbacks.len(), 1);
    // An invalid declaration is refused whole.
    let mut bad = declared(&["a"], None);
    bad.endpoints.push(spec("c", Source::Config, "ftp://nope"));
    assert!(matches!(
        state.apply(replace(bad)),
        Outcome::Rejected { .. }
    ));
    assert_eq!(state.revision, 4);
    // An empty declaration clears config's settings.
    state.apply(replace(Declared::default()));
    assert_eq!(state.settings, RouterSettings::default());
    assert!(state.fallbacks.is_empty());
}

#[test]
fn aliases_fallbacks_and_settings_are_validated() {
    let bad = [
        Command::PutAlias {
            alias: Alias {
                name: "x".into(),
                target: "x".into(),
                source: Source::Api,
            },
        },
        Command::PutAlias {
            alias: Alias {
                name: String::new(),
                target: "x".into(),
                source: Source::Api,
            },
        },
        Command::PutFallback {
            fallback: Fallback {
                model: "a".into(),
                chain: vec![],
                context_window: false,
                source: Source::Api,
            },
        },
        Command::PutFallback {
            fallback: Fallback {
                model: "a".into(),
                chain: vec!["a".into()],
                context_window: false,
                source: Source::Api,
            },
        },
        Command::PutSettings {
            settings: RouterSettings {
                routing_strategy: "random-ish".into(),
                ..Default::default()
            },
        },
        Command::SetClusterId { id: String::new() },
    ];
    for (i, command) in bad.into_iter().enumerate() {
        let mut state = ClusterState::default();
        assert!(
            matches!(state.apply(command), Outcome::Rejected { .. }),
            "case {i}"
        );
        assert_eq!(state, ClusterState::default(), "case {i}");
    }
    let mut state = ClusterState::default();
    let general = Fallback {
        model: "a".into(),
        chain: vec!["b".into()],
        context_window: false,
        source: Source::Api,
    };
    let context = Fallback {
        context_window: true,
        chain: vec!["c".into()],
        ..general.clone()
    };
    state.apply(Command::PutFallback { fallback: general });
    state.apply(Command::PutFallback { fallback: context });
    assert_eq!(
        state.fallbacks.len(),
        2,
        "general and context-window chains coexist"
    );
    assert_eq!(
        state.apply(Command::DeleteFallback {
            model: "a".into(),
            context_window: true
        }),
        Outcome::Changed { revision: 3 }
    );
    assert_eq!(state.fallbacks.len(), 1);
}

#[test]
fn cluster_id_is_set_once() {
    let mut state = ClusterState::default();
    assert_eq!(
        state.apply(Command::SetClusterId { id: "a".into() }),
        Outcome::Changed { revision: 1 }
    );
    assert_eq!(
        state.apply(Command::SetClusterId { id: "b".into() }),
        Outcome::Unchanged { revision: 1 }
    );
    assert_eq!(state.cluster_id, "a");
}

#[test]
fn old_snapshots_without_new_fields_still_load() {
    let json = r#"{"revision":3,"endpoints":{},"model_groups":{},"nodes":{}}"#;
    let state: ClusterState = serde_json::from_str(json).unwrap();
    assert_eq!(state.revision, 3);
    assert!(state.keys.is_empty() && state.cluster_id.is_empty());
}

#[test]
fn discovered_facts_are_kept() {
    let mut state = ClusterState::default();
    let mut b = backend("vllm", &["q"]);
    b.facts = Some(Facts {
        healthy: false,
        running: 3,
        ..Default::default()
    });
    state.apply(report("n1", vec![b.clone()], &[], true));
    assert_eq!(
        state.endpoints["vllm"].facts.as_ref().map(|f| f.running),
        Some(3)
    );
    // Facts changing is a change.
    b.facts = Some(Facts {
        healthy: true,
        running: 3,
        ..Default::default()
    });
    assert_eq!(
        state.apply(report("n1", vec![b], &[], true)),
        Outcome::Changed { revision: 2 }
    );
}
