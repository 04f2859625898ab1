//! The edge's HTTP surface through `app()`, with an installed table and a fake upstream.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    CHAT_BODY, FakeUpstream, SSE_FIRST, SSE_REST, TableBuilder, closed_port_url, edge_with,
};
use switchyard_edge::Config;

/// An edge whose table routes `gpt-test` to the fake upstream as `upstream-model`.
async fn edge_for(upstream: &FakeUpstream) -> String {
    let table = TableBuilder::version(1)
        .endpoint("fake", &upstream.base_url(), true)
        .model("gpt-test", &[("fake", "upstream-model")])
        .model("limited-model", &[("fake", "limited")])
        .build();
    edge_with(Config::default(), Some(table)).await
}

async fn post_json(url: String, body: &str) -> reqwest::Response {
    support::http()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn error_of(resp: reqwest::Response) -> Value {
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "error lacks `{field}`: {body}");
    }
    error
}

#[tokio::test]
async fn chat_returns_upstream_body_verbatim_and_rewrites_only_model() {
    let upstream = FakeUpstream::start().await;
    let edge = edge_for(&upstream).await;
    let request = json!({
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 7,
        "user": "u-1",
    });
    let resp = support::http()
        .post(format!("{edge}/v1/chat/completions"))
        .header("authorization", "Bearer sy_live_client_secret")
        .header("accept", "application/json")
        .json(&request)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-switchyard-endpoint"], "fake");
    assert_eq!(resp.headers()["x-switchyard-model"], "upstream-model");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "1");
    assert_eq!(resp.text().await.unwrap(), CHAT_BODY);

    let received = upstream.received();
    assert_eq!(received.len(), 1);
    let mut expected = request.clone();
    expected["model"] = json!("upstream-model");
    assert_eq!(received[0].body, expected);
    assert_eq!(received[0].headers["accept"], "application/json");
    assert!(
        received[0].headers.get("authorization").is_none(),
        "client credentials leaked upstream"
    );
}

#[tokio::test]
async fn streaming_chunks_reach_the_client_before_upstream_finishes() {
    let upstream = FakeUpstream::start().await;
    let edge = edge_for(&upstream).await;
    let mut resp = post_json(
        format!("{edge}/v1/chat/completions"),
        r#"{"model":"gpt-test","stream":true,"messages":[]}"#,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");

    // The upstream holds its stream open after the first event until released, so this chunk
    // can only arrive if the edge forwards without buffering.
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("first SSE chunk did not arrive while the upstream was still streaming")
        .unwrap()
        .unwrap();
    assert_eq!(first, SSE_FIRST.as_bytes());

    upstream.release();
    let mut rest = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, SSE_REST.as_bytes());
}

#[tokio::test]
async fn completions_and_embeddings_forward_to_their_own_paths() {
    let upstream = FakeUpstream::start().await;
    let edge = edge_for(&upstream).await;
    for (path, upstream_path) in [
        ("/v1/completions", "/v1/completions"),
        ("/v1/embeddings", "/v1/embeddings"),
    ] {
        let resp = post_json(
            format!("{edge}{path}"),
            r#"{"model":"gpt-test","input":"x","prompt":"y"}"#,
        )
        .await;
        assert_eq!(resp.status(), 200, "{path}");
        let echoed: Value = resp.json().await.unwrap();
        assert_eq!(
            echoed,
            json!({"model": "upstream-model", "input": "x", "prompt": "y"}),
            "{path}"
        );
        assert_eq!(upstream.received().last().unwrap().path, upstream_path);
    }
}

#[tokio::test]
async fn client_errors_are_openai_shaped() {
    let upstream = FakeUpstream::start().await;
    let edge = edge_for(&upstream).await;
    let chat = || format!("{edge}/v1/chat/completions");

    let resp = post_json(chat(), r#"{"model":"nope","messages":[]}"#).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        error_of(resp).await,
        json!({
            "message": "The model `nope` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        })
    );

    let resp = post_json(chat(), "{not json").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_of(resp).await["type"], "invalid_request_error");

    for body in [r#"{"messages":[]}"#, r#"{"model":42}"#] {
        let resp = post_json(chat(), body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let error = error_of(resp).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], "model");
    }

    let resp = support::get(format!("{edge}/v1/nothing-here")).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_of(resp).await["type"], "invalid_request_error");

    let resp = support::get(chat()).await;
    assert_eq!(resp.status(), 405);
    error_of(resp).await;

    assert!(
        upstream.received().is_empty(),
        "no bad request may reach the upstream"
    );
}

#[tokio::test]
async fn oversized_body_is_413() {
    let upstream = FakeUpstream::start().await;
    let table = TableBuilder::version(1)
        .endpoint("fake", &upstream.base_url(), true)
        .model("gpt-test", &[("fake", "m")])
        .build();
    let cfg = Config {
        max_body_bytes: 64,
        ..Config::default()
    };
    let edge = edge_with(cfg, Some(table)).await;
    let big = format!(r#"{{"model":"gpt-test","pad":"{}"}}"#, "x".repeat(200));
    let resp = post_json(format!("{edge}/v1/chat/completions"), &big).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(error_of(resp).await["type"], "invalid_request_error");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn upstream_down_is_502_without_secrets() {
    let down = closed_port_url().await;
    let table = TableBuilder::version(1)
        .endpoint("down", &down, true)
        .model("gpt-test", &[("down", "m")])
        .build();
    let edge = edge_with(Config::default(), Some(table)).await;
    let resp = post_json(
        format!("{edge}/v1/chat/completions"),
        r#"{"model":"gpt-test","messages":[]}"#,
    )
    .await;
    assert_eq!(resp.status(), 502);
    let error = error_of(resp).await;
    assert_eq!(error["type"], "api_error");
    assert_eq!(error["code"], "upstream_unavailable");
    let message = error["message"].as_str().unwrap();
    assert!(
        !message.contains("127.0.0.1"),
        "message leaks the upstream address: {message}"
    );
}

#[tokio::test]
async fn connect_failure_fails_over_to_the_next_candidate() {
    let upstream = FakeUpstream::start().await;
    let down = closed_port_url().await;
    // `down` is healthy so it is tried first; `fake` is marked unhealthy, the last resort.
    let table = TableBuilder::version(1)
        .endpoint("down", &down, true)
        .endpoint("fake", &upstream.base_url(), false)
        .model("gpt-test", &[("down", "m-down"), ("fake", "m-fake")])
        .build();
    let edge = edge_with(Config::default(), Some(table)).await;
    let resp = post_json(
        format!("{edge}/v1/chat/completions"),
        r#"{"model":"gpt-test","messages":[]}"#,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-endpoint"], "fake");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    assert_eq!(upstream.received()[0].body["model"], "m-fake");
}

#[tokio::test]
async fn first_byte_timeout_fails_over_to_the_next_candidate() {
    let upstream = FakeUpstream::start().await;
    // Same server twice: as `slow` it is asked for the model it never answers.
    let table = TableBuilder::version(1)
        .endpoint("slow", &upstream.base_url(), true)
        .endpoint("fake", &upstream.base_url(), false)
        .model("gpt-test", &[("slow", "hang"), ("fake", "m-fake")])
        .build();
    let cfg = Config {
        first_byte_timeout_ms: 200,
        ..Config::default()
    };
    let edge = edge_with(cfg, Some(table)).await;
    let resp = post_json(
        format!("{edge}/v1/chat/completions"),
        r#"{"model":"gpt-test","messages":[]}"#,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-endpoint"], "fake");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
}

#[tokio::test]
async fn upstream_429_cools_down_fails_over_and_ends_in_a_rate_limit_error() {
    let upstream = FakeUpstream::start().await;
    let table = TableBuilder::version(1)
        .endpoint("a", &upstream.base_url(), true)
        .endpoint("b", &upstream.base_url(), true)
        .model("limited-model", &[("a", "limited"), ("b", "limited")])
        .build();
    let edge = edge_with(Config::default(), Some(table)).await;
    let resp = post_json(
        format!("{edge}/v1/chat/completions"),
        r#"{"model":"limited-model","messages":[]}"#,
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(error_of(resp).await["type"], "rate_limit_error");
    assert_eq!(upstream.received().len(), 2, "both deployments were tried");
    // Both targets now rest: the next request does not reach the upstream at all.
    let resp = post_json(
        format!("{edge}/v1/chat/completions"),
        r#"{"model":"limited-model","messages":[]}"#,
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn readiness_follows_the_table() {
    let edge = edge_with(Config::default(), None).await;
    let resp = support::get(format!("{edge}/health/readiness")).await;
    assert_eq!(resp.status(), 503);
    let resp = support::get(format!("{edge}/health/liveliness")).await;
    assert_eq!(resp.status(), 200);
    let resp = post_json(
        format!("{edge}/v1/chat/completions"),
        r#"{"model":"x","messages":[]}"#,
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(error_of(resp).await["code"], "no_routing_table");

    let edge = edge_with(Config::default(), Some(TableBuilder::version(4).build())).await;
    let resp = support::get(format!("{edge}/health/readiness")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"status": "ready", "table_version": 4}));
}

#[tokio::test]
async fn models_lists_the_table_sorted() {
    let table = TableBuilder::version(1)
        .endpoint("e", "http://127.0.0.1:1/v1", true)
        .model("zeta", &[("e", "z")])
        .model("alpha", &[("e", "a")])
        .build();
    let edge = edge_with(Config::default(), Some(table)).await;
    let resp = support::get(format!("{edge}/v1/models")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let card = |id: &str| {
        json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "switchyard",
               "free": false, "status": "healthy"})
    };
    assert_eq!(
        body,
        json!({"object": "list", "data": [card("alpha"), card("zeta")]})
    );
}
