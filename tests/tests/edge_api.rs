//! The edge's API surface against a fake upstream: auth, OpenAI error shapes, exact body
//! pass-through, the usage chunk, `/v1/models/{id}`, `n`, and `/metrics`.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_edge::Config;
use switchyard_edge::config::Secret;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::openai_fake::OpenAiFake;

const KEY: &str = "sy_live_aaaaaaaaaaaaaaaaaaaaaaaa";
const TEST_KEY: &str = "sy_test_bbbbbbbbbbbbbbbbbbbbbbbb";
const REVOKED: &str = "sy_live_revokedrevokedrevoked1";
const EXPIRED: &str = "sy_live_expiredexpiredexpired1";
const BOOT: &str = "sy_live_bootstrapbootstrapboot";

fn client() -> reqwest::Client {
    switchyard_tests::harness::init();
    reqwest::Client::new()
}

async fn post(url: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut r = client().post(url).json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

async fn error_of(resp: reqwest::Response) -> Value {
    let body: Value = resp.json().await.unwrap();
    let e = body["error"].clone();
    for f in ["message", "type", "param", "code"] {
        assert!(e.get(f).is_some(), "error lacks {f}: {body}");
    }
    e
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn keyed_edge(fake: &OpenAiFake, cfg: Config) -> TestEdge {
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .model("llama3", &[("fake", "llama3:8b")])
        .model("gpt-x", &[("fake", "gpt-x-up")])
        .alias("fast", "llama3")
        .key("k-all", KEY, |_| {})
        .key("k-llama", TEST_KEY, |k| {
            k.allowed_models = vec!["llama*".into()]
        })
        .key("k-rev", REVOKED, |k| k.revoked = true)
        .key("k-exp", EXPIRED, |k| k.expires_at_ms = 1_000)
        .build();
    TestEdge::start(cfg, Some(table)).await.unwrap()
}

#[tokio::test]
async fn auth_errors_are_distinct_and_openai_shaped() {
    let fake = OpenAiFake::start().await.unwrap();
    let edge = keyed_edge(&fake, Config::default()).await;
    let url = edge.v1("chat/completions");
    // (key, status, code)
    let cases: Vec<(Option<&str>, u16, &str)> = vec![
        (None, 401, "missing_api_key"),
        (Some("sk-not-ours"), 401, "malformed_api_key"),
        (
            Some("sy_live_unknownunknownunknown1"),
            401,
            "invalid_api_key",
        ),
        (Some(REVOKED), 401, "revoked_api_key"),
        (Some(EXPIRED), 401, "expired_api_key"),
    ];
    let mut messages = Vec::new();
    for (key, status, code) in cases {
        let resp = post(&url, key, chat("llama3")).await;
        assert_eq!(resp.status(), status, "{key:?}");
        let e = error_of(resp).await;
        assert_eq!(e["type"], "authentication_error");
        assert_eq!(e["code"], code);
        messages.push(e["message"].as_str().unwrap().to_owned());
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        5,
        "each failure reads differently: {messages:?}"
    );
    for m in &messages {
        assert!(
            !m.contains("unknownunknown"),
            "a key leaked into a message: {m}"
        );
    }
    // allowed-model globs: 403 permission_error; aliases resolve for the check
    let resp = post(&url, Some(TEST_KEY), chat("gpt-x")).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_of(resp).await["type"], "permission_error");
    assert_eq!(
        post(&url, Some(TEST_KEY), chat("llama3")).await.status(),
        200
    );
    assert_eq!(post(&url, Some(TEST_KEY), chat("fast")).await.status(), 200);
    assert_eq!(post(&url, Some(KEY), chat("gpt-x")).await.status(), 200);
    assert!(
        fake.calls().iter().all(|c| c.bearer().is_none()),
        "the client's key must never reach the upstream"
    );
    // /v1/models lists only what the key may use
    let list: Value = client()
        .get(edge.v1("models"))
        .bearer_auth(TEST_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["fast", "llama3"]);
    let resp = client().get(edge.v1("models")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn bootstrap_key_works_before_any_key_exists() {
    let fake = OpenAiFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .model("llama3", &[("fake", "llama3:8b")])
        .build();
    let cfg = Config {
        bootstrap_key: Some(Secret::new(BOOT)),
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await.unwrap();
    let url = edge.v1("chat/completions");
    assert_eq!(post(&url, None, chat("llama3")).await.status(), 401);
    assert_eq!(post(&url, Some(KEY), chat("llama3")).await.status(), 401);
    assert_eq!(post(&url, Some(BOOT), chat("llama3")).await.status(), 200);
}

#[tokio::test]
async fn non_loopback_edge_without_keys_refuses_to_start() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = switchyard_edge::run(Config::default(), listener, async {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bootstrap_key"), "{text}");
    // told --insecure-no-auth, it starts (and stops at once with the shutdown future)
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let cfg = Config {
        insecure_no_auth: true,
        ..Config::default()
    };
    switchyard_edge::run(cfg, listener, async {}).await.unwrap();
}

#[tokio::test]
async fn bodies_pass_through_exactly_and_unknown_fields_are_forwarded() {
    let fake = OpenAiFake::start().await.unwrap();
    let edge = keyed_edge(&fake, Config::default()).await;
    let request = json!({
        "model": "fast",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "some_vendor_field": {"nested": [1, 2.50, "x"]},
        "temperature": 0.1,
    });
    let resp = post(&edge.v1("chat/completions"), Some(KEY), request.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-endpoint"], "fake");
    assert_eq!(resp.headers()["x-switchyard-model"], "llama3:8b");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "1");
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        call["function"]["arguments"], "{\"city\": \"Paris\"}",
        "arguments stay a JSON string"
    );
    assert_eq!(body["usage"]["total_tokens"], 21);
    let sent = &fake.calls()[0].body;
    let mut expected = request;
    expected["model"] = json!("llama3:8b");
    assert_eq!(sent, &expected, "only `model` changes on the way up");
}

async fn stream_text(edge: &TestEdge, body: Value) -> String {
    let resp = post(&edge.v1("chat/completions"), Some(KEY), body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn usage_chunk_is_metered_and_shown_only_when_asked() {
    let fake = OpenAiFake::start().await.unwrap();
    let edge = keyed_edge(&fake, Config::default()).await;
    let mut body = chat("llama3");
    body["stream"] = json!(true);
    let text = stream_text(&edge, body.clone()).await;
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(
        !text.contains("\"prompt_tokens\""),
        "unasked usage leaked: {text}"
    );
    assert!(text.contains("Hello") && text.contains("\"finish_reason\":\"stop\""));
    let sent = &fake.calls()[0].body;
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));

    body["stream_options"] = json!({"include_usage": true});
    let text = stream_text(&edge, body).await;
    assert!(text.contains("\"choices\":[],\"usage\":{"), "{text}");
    assert!(text.contains("\"prompt_tokens\":9"), "{text}");

    let metrics = client()
        .get(format!("{}/metrics", edge.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "switchyard_edge_tokens_total{endpoint=\"fake\",model=\"llama3\",kind=\"Completion\"} 24"
        ),
        "both streams metered: {metrics}"
    );
    assert!(metrics.contains("switchyard_edge_requests_total{route=\"Chat\",status=\"200\"} 2"));
}

#[tokio::test]
async fn request_errors_name_the_parameter() {
    let fake = OpenAiFake::start().await.unwrap();
    let edge = keyed_edge(&fake, Config::default()).await;
    // (path, body, status, param)
    let cases: Vec<(&str, String, u16, Value)> = vec![
        ("chat/completions", "{nope".into(), 400, Value::Null),
        ("chat/completions", "[1]".into(), 400, Value::Null),
        (
            "chat/completions",
            r#"{"messages":[]}"#.into(),
            400,
            json!("model"),
        ),
        (
            "chat/completions",
            r#"{"model":"llama3"}"#.into(),
            400,
            json!("messages"),
        ),
        (
            "completions",
            r#"{"model":"llama3"}"#.into(),
            400,
            json!("prompt"),
        ),
        (
            "embeddings",
            r#"{"model":"llama3"}"#.into(),
            400,
            json!("input"),
        ),
        (
            "chat/completions",
            r#"{"model":"nope","messages":[]}"#.into(),
            404,
            json!("model"),
        ),
    ];
    for (path, body, status, param) in cases {
        let resp = client()
            .post(edge.v1(path))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path} {body}");
        let e = error_of(resp).await;
        assert_eq!(e["type"], "invalid_request_error", "{body}");
        assert_eq!(e["param"], param, "{body}");
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn models_by_id() {
    let fake = OpenAiFake::start().await.unwrap();
    let edge = keyed_edge(&fake, Config::default()).await;
    let get = |id: &str| {
        client()
            .get(edge.v1(&format!("models/{id}")))
            .bearer_auth(KEY)
            .send()
    };
    let card: Value = get("llama3").await.unwrap().json().await.unwrap();
    assert_eq!(
        card,
        json!({"id": "llama3", "object": "model", "created": 1_700_000_000, "owned_by": "switchyard",
               "free": false, "status": "healthy"})
    );
    let card: Value = get("fast").await.unwrap().json().await.unwrap();
    assert_eq!(card["id"], "fast");
    let card: Value = get("fake/some-model").await.unwrap().json().await.unwrap();
    assert_eq!(card["id"], "fake/some-model", "ids with a slash work");
    let resp = get("missing").await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_of(resp).await["code"], "model_not_found");
}

#[tokio::test]
async fn n_is_forwarded_where_supported_and_refused_for_ollama() {
    let fake = OpenAiFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint("vllm", &fake.base_url())
        .endpoint_with("ollama", &fake.base_url(), |e| e.kind = "ollama".into())
        .model("multi", &[("vllm", "m")])
        .model("local", &[("ollama", "llama3:8b")])
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let mut body = chat("multi");
    body["n"] = json!(3);
    let resp = post(&edge.v1("chat/completions"), None, body.clone()).await;
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["choices"].as_array().unwrap().len(), 3);
    body["model"] = json!("local");
    let resp = post(&edge.v1("chat/completions"), None, body).await;
    assert_eq!(resp.status(), 400);
    let e = error_of(resp).await;
    assert_eq!(e["param"], "n");
    assert_eq!(
        e["message"],
        "n > 1 is not supported; call the endpoint multiple times"
    );
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn concurrency_limit_per_key_is_a_rate_limit_error() {
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "slow",
        vec![switchyard_tests::openai_fake::Behavior::SlowFirstByte {
            delay: Duration::from_millis(500),
        }],
    );
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .model("slow", &[("fake", "slow")])
        .key("k1", KEY, |k| {
            k.limits = Some(switchyard_proto::v1::Limits {
                max_concurrent: 1,
                ..Default::default()
            })
        })
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let url = edge.v1("chat/completions");
    let first = tokio::spawn({
        let url = url.clone();
        async move { post(&url, Some(KEY), chat("slow")).await.status() }
    });
    switchyard_tests::harness::wait_for(
        Duration::from_secs(5),
        "the first call upstream",
        || async { (fake.calls_for("slow") == 1).then_some(()) },
    )
    .await
    .unwrap();
    let resp = post(&url, Some(KEY), chat("slow")).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(error_of(resp).await["type"], "rate_limit_error");
    assert_eq!(first.await.unwrap(), 200);
}
