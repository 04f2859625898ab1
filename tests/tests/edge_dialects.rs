//! Translated streams are incremental: with an upstream that sends a few events and then
//! pauses (here: never finishes), an Anthropic, Ollama or Responses client gets its first translated
//! events while the upstream is still open. Nothing waits for the end of the stream.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::time::Duration;

use serde_json::json;
use switchyard_edge::Config;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};

const KEY: &str = "sy_live_dialectsdialectsdialects";

/// Reads `response` until `want` appears in what came, or fails after five seconds.
async fn read_until(mut response: reqwest::Response, want: &str) -> String {
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !got.contains(want) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!("no {want:?} within 5 s while the upstream paused; got {got:?}")
            })
            .unwrap();
        let Some(chunk) = chunk else {
            panic!("the stream ended before {want:?}: {got:?}");
        };
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    got
}

#[tokio::test]
async fn translated_streams_arrive_before_the_upstream_finishes() {
    let fake = OpenAiFake::start().await.unwrap();
    // Role, "Hello", " world", then silence: the upstream never finishes.
    fake.script("paused-up", vec![Behavior::StallMidStream { events: 3 }]);
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .model("paused", &[("fake", "paused-up")])
        .key("k", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let anthropic = http
        .post(format!("{}/v1/messages", edge.url))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "paused", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 200);
    let got = read_until(anthropic, "\"text\":\" world\"").await;
    assert!(got.starts_with("event: message_start\n"), "{got}");
    assert!(got.contains("event: content_block_delta"), "{got}");
    assert!(
        !got.contains("message_stop"),
        "the stream cannot have ended: {got}"
    );

    let ollama = http
        .post(format!("{}/api/chat", edge.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "paused", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ollama.status(), 200);
    assert_eq!(
        ollama.headers()["content-type"],
        "application/x-ndjson",
        "Ollama streams NDJSON by default"
    );
    let got = read_until(ollama, "\"content\":\" world\"").await;
    assert!(
        !got.contains("\"done\":true"),
        "the stream cannot have ended: {got}"
    );

    let responses = http
        .post(edge.v1("/responses"))
        .bearer_auth(KEY)
        .json(&json!({"model": "paused", "stream": true, "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(responses.status(), 200);
    let got = read_until(responses, "\"delta\":\" world\"").await;
    assert!(got.starts_with("event: response.created\n"), "{got}");
    assert!(
        !got.contains("response.completed"),
        "the stream cannot have ended: {got}"
    );
}
