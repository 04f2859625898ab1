//! The fault matrix: every way an upstream can fail, each ending in a fallback to a healthy
//! deployment or in a clean OpenAI-shaped error, and never in a hung client connection.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_edge::Config;
use switchyard_proto::v1;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};

/// No client call may take longer than this: a hang fails the test instead of blocking it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    switchyard_tests::harness::init();
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap()
}

fn faults() -> Vec<(&'static str, Behavior)> {
    vec![
        ("hang", Behavior::Hang),
        (
            "slow-first-byte",
            Behavior::SlowFirstByte {
                delay: Duration::from_secs(5),
            },
        ),
        ("status-500", Behavior::status(500, "internal")),
        ("status-502", Behavior::status(502, "bad gateway")),
        ("status-503", Behavior::status(503, "overloaded")),
        (
            "rate-limited",
            Behavior::rate_limited(&[("retry-after", "5")]),
        ),
        (
            "rate-limited-reset",
            Behavior::rate_limited(&[("x-ratelimit-reset-requests", "1m26.4s")]),
        ),
        ("malformed", Behavior::Malformed),
        ("oversized", Behavior::Oversized { bytes: 200_000 }),
        ("credential", Behavior::status(401, "invalid api key")),
    ]
}

struct Matrix {
    edge: TestEdge,
    _fake: OpenAiFake,
}

async fn matrix() -> Matrix {
    let fake = OpenAiFake::start().await.unwrap();
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        format!("http://{addr}/v1")
    };
    let mut table = Table::new(1)
        .endpoint("good", &fake.base_url())
        .endpoint("refused", &closed)
        .model(
            "with-backup-connect-refused",
            &[("refused", "x"), ("good", "ok")],
        )
        .model("solo-connect-refused", &[("refused", "x")]);
    for (name, behavior) in faults() {
        // One endpoint per fault so cooldowns of one case never touch another.
        let bad = format!("bad-{name}");
        fake.script(name, vec![behavior]);
        table = table
            .endpoint(&bad, &fake.base_url())
            .model(
                &format!("with-backup-{name}"),
                &[(&bad, name), ("good", "ok")],
            )
            .model(&format!("solo-{name}"), &[(&bad, name)]);
    }
    for (name, behavior) in [
        ("break-mid-stream", Behavior::BreakMidStream { events: 2 }),
        ("stall-mid-stream", Behavior::StallMidStream { events: 2 }),
    ] {
        fake.script(name, vec![behavior]);
        table = table.model(name, &[("good", name)]);
    }
    let table = table
        .settings(v1::RouterSettings {
            routing_strategy: "least-busy".into(),
            ..Default::default()
        })
        .build();
    let cfg = Config {
        first_byte_timeout_ms: 300,
        request_timeout_ms: 2_000,
        stream_idle_timeout_ms: 300,
        max_response_bytes: 64 * 1024,
        ..Config::default()
    };
    Matrix {
        edge: TestEdge::start(cfg, Some(table)).await.unwrap(),
        _fake: fake,
    }
}

async fn chat(edge: &TestEdge, model: &str, stream: bool) -> reqwest::Response {
    client()
        .post(edge.v1("chat/completions"))
        .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{model}: client call failed (hung?): {e}"))
}

#[tokio::test]
async fn every_fault_before_the_first_byte_falls_back() {
    let m = matrix().await;
    let names: Vec<&str> = std::iter::once("connect-refused")
        .chain(faults().into_iter().map(|(n, _)| n))
        .collect();
    for name in names {
        for stream in [false, true] {
            let resp = chat(&m.edge, &format!("with-backup-{name}"), stream).await;
            assert_eq!(resp.status(), 200, "{name} stream={stream}");
            assert_eq!(resp.headers()["x-switchyard-endpoint"], "good", "{name}");
            let text = resp.text().await.unwrap();
            if stream {
                assert!(text.ends_with("data: [DONE]\n\n"), "{name}: {text}");
            } else {
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["object"], "chat.completion", "{name}");
            }
        }
    }
}

#[tokio::test]
async fn every_fault_without_a_backup_is_a_clean_error() {
    let m = matrix().await;
    // (fault, status, error type)
    let cases = [
        ("connect-refused", 502, "api_error"),
        ("hang", 504, "timeout_error"),
        ("slow-first-byte", 504, "timeout_error"),
        ("status-500", 502, "api_error"),
        ("status-502", 502, "api_error"),
        ("status-503", 502, "api_error"),
        ("rate-limited", 429, "rate_limit_error"),
        ("rate-limited-reset", 429, "rate_limit_error"),
        ("malformed", 502, "api_error"),
        ("oversized", 502, "api_error"),
        ("credential", 502, "api_error"),
    ];
    for (name, status, kind) in cases {
        let resp = chat(&m.edge, &format!("solo-{name}"), false).await;
        assert_eq!(resp.status(), status, "{name}");
        if status == 429 {
            assert!(resp.headers().contains_key("retry-after"), "{name}");
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("127.0.0.1"),
            "{name} leaks an address: {message}"
        );
    }
}

#[tokio::test]
async fn failures_after_the_first_byte_end_the_stream_with_an_error_event() {
    let m = matrix().await;
    for (name, code) in [
        ("break-mid-stream", "upstream_stream_error"),
        ("stall-mid-stream", "upstream_stream_timeout"),
    ] {
        let resp = chat(&m.edge, name, true).await;
        assert_eq!(resp.status(), 200, "{name}");
        let text = tokio::time::timeout(CLIENT_TIMEOUT, resp.text())
            .await
            .unwrap_or_else(|_| panic!("{name}: stream hung"))
            .unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 4, "{name}: two chunks, error, DONE: {text}");
        assert!(events[1].contains("Hello"), "{name}");
        let error: Value = serde_json::from_str(events[2].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(error["error"]["code"], code, "{name}");
        assert_eq!(events[3], "data: [DONE]", "{name}");
    }
}
