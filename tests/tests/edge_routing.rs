//! Routing through the edge: explicit endpoints, weights, peak-EWMA, fallback chains,
//! context-window fallback, retries and deadlines, credential rotation, cooldowns from 429
//! headers and failures, and cooldown reports to the control plane.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_edge::Config;
use switchyard_proto::v1;
use switchyard_tests::edge_harness::{FakeControlPlane, Table, TestEdge, chat_body};
use switchyard_tests::harness::wait_for;
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};

fn client() -> reqwest::Client {
    switchyard_tests::harness::init();
    reqwest::Client::new()
}

async fn post(edge: &TestEdge, body: &Value) -> reqwest::Response {
    edge.post("chat/completions", None, body).await
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn explicit_endpoint_and_model() {
    let fake = OpenAiFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint("gpu01", &fake.base_url())
        .model("llama3", &[("gpu01", "llama3:8b")])
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let resp = edge.chat("gpu01/qwen2.5:7b").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "qwen2.5:7b");
    assert_eq!(fake.calls()[0].body["model"], "qwen2.5:7b");
    assert_eq!(edge.chat("nobody/qwen").await.status(), 404);
}

#[tokio::test]
async fn weights_shape_the_split() {
    let fake = OpenAiFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .endpoint("b", &fake.base_url())
        .model_with("m", &[("a", "ua"), ("b", "ub")], |d| d[1].weight = 9)
        .settings(v1::RouterSettings {
            routing_strategy: "simple-shuffle".into(),
            ..Default::default()
        })
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    for _ in 0..200 {
        assert_eq!(edge.chat("m").await.status(), 200);
    }
    let b = fake.calls_for("ub");
    assert!((150..=199).contains(&b), "weight 9 of 10 got {b} of 200");
}

#[tokio::test]
async fn peak_ewma_moves_traffic_off_a_slow_deployment() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "slow",
        vec![Behavior::SlowFirstByte {
            delay: Duration::from_millis(60),
        }],
    );
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .endpoint("b", &fake.base_url())
        .model("m", &[("a", "slow"), ("b", "fast")])
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    for _ in 0..40 {
        assert_eq!(edge.chat("m").await.status(), 200);
    }
    let slow = fake.calls_for("slow");
    assert!(slow <= 3, "the slow deployment kept {slow} of 40 requests");
}

#[tokio::test]
async fn fallback_chain_after_the_group_fails() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script("broken", vec![Behavior::status(500, "boom")]);
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .model("primary", &[("a", "broken")])
        .model("backup", &[("a", "backup-up")])
        .fallback("primary", &["missing-group", "backup"], false)
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let resp = edge.chat("primary").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "backup-up");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
}

#[tokio::test]
async fn context_window_fallback_by_estimate_and_by_upstream_answer() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "says-too-long",
        vec![Behavior::Status {
            status: 400,
            headers: vec![],
            body: json!({"error": {"message": "This model's maximum context length is 4096 tokens", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}).to_string(),
        }],
    );
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .model_with("small", &[("a", "small-up")], |d| d[0].context_length = 100)
        .model_with("large", &[("a", "large-up")], |d| {
            d[0].context_length = 100_000
        })
        .model("liar", &[("a", "says-too-long")])
        .model("plain", &[("a", "says-too-long")])
        .fallback("small", &["large"], true)
        .fallback("liar", &["large"], true)
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    // a short prompt fits the small model
    let resp = edge.chat("small").await;
    assert_eq!(header(&resp, "x-switchyard-model"), "small-up");
    // a long one goes to the larger model without trying the small one
    let long =
        json!({"model": "small", "messages": [{"role": "user", "content": "word ".repeat(400)}]});
    let resp = post(&edge, &long).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "large-up");
    assert_eq!(fake.calls_for("small-up"), 1);
    // the upstream says it does not fit: next larger group
    let resp = edge.chat("liar").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-model"), "large-up");
    // no fallback: the upstream's own 400 comes back untouched, not retried
    let resp = edge.chat("plain").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(fake.calls_for("says-too-long"), 2);
}

#[tokio::test]
async fn request_errors_from_upstream_are_returned_and_not_retried() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "picky",
        vec![Behavior::Status {
            status: 422,
            headers: vec![("x-ratelimit-remaining-requests", "41".into())],
            body: "{\"error\":{\"message\":\"temperature must be <= 2\",\"type\":\"invalid_request_error\",\"param\":\"temperature\",\"code\":null}}".into(),
        }],
    );
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .endpoint("b", &fake.base_url())
        .model("m", &[("a", "picky"), ("b", "picky")])
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let resp = edge.chat("m").await;
    assert_eq!(resp.status(), 422);
    assert_eq!(header(&resp, "x-ratelimit-remaining-requests"), "41");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "temperature");
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn per_try_timeout_retries_and_the_deadline_ends_it() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script("hang", vec![Behavior::Hang]);
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .endpoint("b", &fake.base_url())
        .endpoint("c", &fake.base_url())
        .model("m", &[("a", "hang"), ("b", "hang"), ("c", "ok")])
        .model("all-hang", &[("a", "hang"), ("b", "hang"), ("c", "hang")])
        .settings(v1::RouterSettings {
            routing_strategy: "least-busy".into(),
            timeout_ms: 700,
            ..Default::default()
        })
        .build();
    let cfg = Config {
        first_byte_timeout_ms: 150,
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await.unwrap();
    let resp = edge.chat("m").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-endpoint"), "c");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "3");

    let started = Instant::now();
    let resp = edge.chat("all-hang").await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(took < Duration::from_millis(1_500), "took {took:?}");
}

#[tokio::test]
async fn credentials_rotate_on_429_and_cooldowns_are_reported() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script_key("gsk-one", Behavior::rate_limited(&[("retry-after", "30")]));
    let table = Table::new(1)
        .endpoint_with("groq", &fake.base_url(), |e| {
            e.credentials = vec![
                v1::Credential {
                    id: "key".into(),
                    value: "gsk-one".into(),
                    ..Default::default()
                },
                v1::Credential {
                    id: "key_2".into(),
                    // Read from the edge's environment; PATH is set everywhere (tests cannot
                    // set variables: unsafe code is forbidden).
                    env: "PATH".into(),
                    ..Default::default()
                },
            ]
        })
        .model("llama", &[("groq", "llama-3.1-8b")])
        .build();
    let key_2 = std::env::var("PATH").unwrap();
    let cp = FakeControlPlane::start(table.clone(), true).await.unwrap();
    let cfg = Config {
        control_plane: cp.url.clone(),
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await.unwrap();
    let resp = edge.chat("llama").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-credential"), "key_2");
    assert_eq!(header(&resp, "x-switchyard-attempts"), "2");
    let keys: Vec<String> = fake.calls().iter().filter_map(|c| c.bearer()).collect();
    assert_eq!(keys, vec!["gsk-one".to_owned(), key_2.clone()]);
    // `key` rests: the next request goes straight to key_2
    let resp = edge.chat("llama").await;
    assert_eq!(header(&resp, "x-switchyard-attempts"), "1");
    assert_eq!(fake.calls().last().unwrap().bearer(), Some(key_2));

    let reported = wait_for(Duration::from_secs(5), "the cooldown report", || async {
        let r = cp.reported();
        (!r.is_empty()).then_some(r)
    })
    .await
    .unwrap();
    let c = &reported[0];
    assert_eq!(
        (
            c.endpoint_id.as_str(),
            c.credential_id.as_str(),
            c.model.as_str(),
            c.reason.as_str()
        ),
        ("groq", "key", "llama-3.1-8b", "rate_limited")
    );
    let wait = c.until_ms - switchyard_edge::routing::target::now_ms();
    assert!(
        (25_000..=30_500).contains(&wait),
        "retry-after 30 s, got {wait} ms"
    );
}

/// One 429 per header form; the cooldown it starts (in ms, ±tolerance) is read back from the
/// report a fake control plane receives.
#[tokio::test]
async fn each_429_header_form_sets_its_cooldown() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
    type Case = (&'static str, Vec<(&'static str, String)>, i64);
    let cases: Vec<Case> = vec![
        ("seconds", vec![("retry-after", "12".into())], 12_000),
        ("date", vec![("retry-after", date)], 20_000),
        ("ms", vec![("retry-after-ms", "2500".into())], 2_500),
        (
            "reset",
            vec![
                ("x-ratelimit-remaining-requests", "0".into()),
                ("x-ratelimit-reset-requests", "1m26.4s".into()),
            ],
            86_400,
        ),
        (
            "reset-ms",
            vec![("x-ratelimit-reset-tokens", "185ms".into())],
            185,
        ),
        ("none", vec![], 5_000),
    ];
    let fake = OpenAiFake::start().await.unwrap();
    let mut table = Table::new(1).endpoint("up", &fake.base_url());
    for (name, headers, _) in &cases {
        fake.script(
            name,
            vec![Behavior::Status {
                status: 429,
                headers: headers.clone(),
                body: "{}".into(),
            }],
        );
        table = table.model(name, &[("up", name)]);
    }
    let table = table.build();
    let cp = FakeControlPlane::start(table.clone(), true).await.unwrap();
    let cfg = Config {
        control_plane: cp.url.clone(),
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await.unwrap();
    for (name, _, _) in &cases {
        let resp = edge.chat(name).await;
        assert_eq!(resp.status(), 429, "{name}");
        let retry: u64 = header(&resp, "retry-after").parse().unwrap();
        assert!(retry >= 1, "{name}");
    }
    let reported: HashMap<String, i64> =
        wait_for(Duration::from_secs(5), "all reports", || async {
            let r = cp.reported();
            (r.len() >= cases.len()).then(|| r.into_iter().map(|c| (c.model, c.until_ms)).collect())
        })
        .await
        .unwrap();
    let now = switchyard_edge::routing::target::now_ms();
    for (name, _, want) in &cases {
        let got = reported[*name] - now;
        assert!(
            got <= *want && got >= want - 3_000,
            "{name}: cooldown {got} ms, want about {want} ms"
        );
    }
}

#[tokio::test]
async fn remaining_zero_cools_down_before_any_429() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "last-one",
        vec![Behavior::Status {
            status: 200,
            headers: vec![
                ("x-ratelimit-remaining-requests", "0".into()),
                ("x-ratelimit-reset-requests", "20s".into()),
            ],
            body: json!({"id": "x", "choices": []}).to_string(),
        }],
    );
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .endpoint("b", &fake.base_url())
        .model("m", &[("a", "last-one"), ("b", "other")])
        .settings(v1::RouterSettings {
            routing_strategy: "least-busy".into(),
            ..Default::default()
        })
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let resp = edge.chat("m").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-switchyard-endpoint"), "a");
    assert_eq!(
        header(&resp, "x-ratelimit-remaining-requests"),
        "0",
        "passed to the client"
    );
    for _ in 0..3 {
        let resp = edge.chat("m").await;
        assert_eq!(header(&resp, "x-switchyard-endpoint"), "b");
    }
    assert_eq!(fake.calls_for("last-one"), 1);
}

#[tokio::test]
async fn repeated_failures_cool_a_target_and_unimplemented_reports_keep_it_local() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script("flaky", vec![Behavior::status(503, "overloaded")]);
    let table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .model("m", &[("a", "flaky")])
        .settings(v1::RouterSettings {
            allowed_fails: 2,
            cooldown_ms: 60_000,
            num_retries: 1,
            ..Default::default()
        })
        .build();
    let cp = FakeControlPlane::start(table.clone(), false).await.unwrap();
    let cfg = Config {
        control_plane: cp.url.clone(),
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await.unwrap();
    let resp = edge.chat("m").await;
    assert_eq!(resp.status(), 502);
    let resp = edge.chat("m").await;
    assert_eq!(resp.status(), 502);
    assert_eq!(fake.calls_for("flaky"), 2);
    // cooled now: no upstream call, and a 429 with Retry-After
    let resp = edge.chat("m").await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after").parse().unwrap();
    assert!((50..=60).contains(&retry), "{retry}");
    assert_eq!(fake.calls_for("flaky"), 2);
    assert!(cp.reported().is_empty());
}

#[tokio::test]
async fn table_cooldowns_from_the_control_plane_are_honoured() {
    let fake = OpenAiFake::start().await.unwrap();
    let mut table = Table::new(1)
        .endpoint("a", &fake.base_url())
        .endpoint("b", &fake.base_url())
        .model("m", &[("a", "ua"), ("b", "ub")])
        .build();
    table.cooldowns.push(v1::Cooldown {
        endpoint_id: "a".into(),
        model: "ua".into(),
        until_ms: switchyard_edge::routing::target::now_ms() + 60_000,
        reason: "rate_limited".into(),
        ..Default::default()
    });
    let cp = FakeControlPlane::start(table, true).await.unwrap();
    let cfg = Config {
        control_plane: cp.url.clone(),
        ..Config::default()
    };
    let state = switchyard_edge::EdgeState::new(cfg).unwrap();
    tokio::spawn(switchyard_edge::watch::watch(state.clone()));
    wait_for(Duration::from_secs(5), "the table", || async {
        state.table().map(|_| ())
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let options = switchyard_edge::ServeOptions::from(state.config());
    let app = switchyard_edge::app(state);
    tokio::spawn(switchyard_edge::serve(
        listener,
        app,
        options,
        std::future::pending(),
    ));
    for _ in 0..5 {
        let resp = client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&chat_body("m"))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&resp, "x-switchyard-endpoint"), "b");
    }
}

#[tokio::test]
async fn an_edge_applies_table_deltas_and_resyncs_after_a_gap() {
    let base = "http://127.0.0.1:9/v1";
    let t1 = Table::new(1)
        .endpoint("a", base)
        .model("m1", &[("a", "u1")])
        .build();
    let cp = FakeControlPlane::start(t1.clone(), true).await.unwrap();
    let cfg = Config {
        control_plane: cp.url.clone(),
        ..Config::default()
    };
    let state = switchyard_edge::EdgeState::new(cfg).unwrap();
    tokio::spawn(switchyard_edge::watch::watch(state.clone()));
    let holds = |version: u64, model: &'static str| {
        let state = state.clone();
        move || {
            let state = state.clone();
            async move {
                state
                    .table()
                    .filter(|t| t.version == version && t.models.contains_key(model))
                    .map(|_| ())
            }
        }
    };
    wait_for(Duration::from_secs(5), "the first table", holds(1, "m1"))
        .await
        .unwrap();

    // A delta from the held version: applied, and the edge's wire table is the full one.
    let t2 = Table::new(2)
        .endpoint("a", base)
        .model("m1", &[("a", "u1")])
        .model("m2", &[("a", "u2")])
        .build();
    let delta = switchyard_proto::delta::diff(&t1, &t2).unwrap();
    assert!(delta.models.is_empty() && delta.endpoints.is_empty());
    cp.publish(delta);
    wait_for(Duration::from_secs(5), "the delta", holds(2, "m2"))
        .await
        .unwrap();
    assert_eq!(
        state.wire_table().as_deref(),
        Some(&switchyard_proto::delta::canonical(&t2))
    );

    // A delta from a version the edge never held (it missed one): it asks for the whole table.
    let t4 = Table::new(4)
        .endpoint("a", base)
        .model("m4", &[("a", "u4")])
        .build();
    cp.set_full(t4.clone());
    let mut t3 = t2.clone();
    t3.version = 3;
    let mut t5 = t4.clone();
    t5.version = 5;
    cp.publish(switchyard_proto::delta::diff(&t3, &t5).unwrap());
    wait_for(Duration::from_secs(5), "the resync", holds(4, "m4"))
        .await
        .unwrap();
    assert!(!state.table().unwrap().models.contains_key("m2"));
}
