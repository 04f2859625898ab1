//! End to end through `switchyard up`: discovery, routing, streaming, removal and persistence.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_tests::fake::{CHAT_BODY, FakeOllama};
use switchyard_tests::harness::{edge_models, start_up, wait_for};

fn has(models: &Option<Vec<String>>, name: &str) -> bool {
    models
        .as_ref()
        .is_some_and(|m| m.iter().any(|id| id == name))
}

/// Parses an SSE body into its `data:` payloads.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_ollama_is_served_removed_and_persisted() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let ollama = FakeOllama::start(&["llama3.2:latest"]).await?;
    let ollama_port = ollama.addr().port();
    let started = Instant::now();
    let up = start_up(data.path(), false, Some(ollama_port)).await?;
    let edge = up.edge_addr();
    let client = reqwest::Client::new();

    // Discovered and listed well within 10 s.
    wait_for(
        Duration::from_secs(10),
        "the fake Ollama's model in /v1/models",
        || async { has(&edge_models(&client, edge).await, "llama3.2:latest").then_some(()) },
    )
    .await?;
    assert!(started.elapsed() < Duration::from_secs(10));

    // A chat request reaches it with the model rewritten and other fields intact, and the
    // body comes back unchanged.
    let request = json!({"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}],
                         "temperature": 0.2, "tools": [{"type": "function", "function": {"name": "get_weather"}}]});
    let response = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&request)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-endpoint"], "ollama");
    assert_eq!(response.text().await?, CHAT_BODY);
    let upstream = ollama.chat_bodies();
    assert_eq!(upstream.last(), Some(&request));

    // Streaming arrives chunk by chunk: the first event long before the last one is sent.
    let stream_request = json!({"model": "llama3.2:latest", "stream": true,
                                "messages": [{"role": "user", "content": "hi"}]});
    let sent = Instant::now();
    let response = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&stream_request)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let mut body = response.bytes_stream();
    let first = body.next().await.transpose()?.unwrap_or_default();
    let first_at = sent.elapsed();
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk?);
    }
    let total = sent.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    assert!(
        total - first_at >= Duration::from_millis(300),
        "first chunk at {first_at:?}, end at {total:?}: the stream was buffered"
    );
    let whole = format!(
        "{}{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(sse_data(&whole).last().map(String::as_str), Some("[DONE]"));

    // Stop the server: its model leaves /v1/models within 30 s.
    ollama.stop().await;
    wait_for(
        Duration::from_secs(30),
        "the model to leave /v1/models",
        || async {
            let models = edge_models(&client, edge).await;
            (models.is_some() && !has(&models, "llama3.2:latest")).then_some(())
        },
    )
    .await?;

    // Bring it back, let it be discovered, then restart `up` on the same data dir with no
    // agent and no edge cache: the model must come from the control plane's durable state.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ollama_port)).await?;
    let ollama = FakeOllama::start_on(listener, &["llama3.2:latest"])?;
    wait_for(Duration::from_secs(10), "rediscovery", || async {
        has(&edge_models(&client, edge).await, "llama3.2:latest").then_some(())
    })
    .await?;
    up.stop().await?;
    std::fs::remove_file(data.path().join("edge-table.pb"))?;

    let up = start_up(data.path(), false, None).await?;
    let edge = up.edge_addr();
    wait_for(
        Duration::from_secs(10),
        "the persisted model after restart",
        || async { has(&edge_models(&client, edge).await, "llama3.2:latest").then_some(()) },
    )
    .await?;
    let response = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&request)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, CHAT_BODY);
    up.stop().await?;
    ollama.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_model_answers_plain_and_streaming() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let up = start_up(data.path(), true, None).await?;
    let edge = up.edge_addr();
    let client = reqwest::Client::new();
    wait_for(Duration::from_secs(10), "the demo model", || async {
        has(&edge_models(&client, edge).await, "demo").then_some(())
    })
    .await?;

    let request = json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]});
    let response = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&request)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-switchyard-endpoint"], "demo");
    let body: Value = response.json().await?;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(content.contains("hi"), "{content}");

    // Deterministic: the same question, the same answer.
    let again: Value = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&request)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(again["choices"], body["choices"]);

    let mut stream_request = request.clone();
    stream_request["stream"] = json!(true);
    let text = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&stream_request)
        .send()
        .await?
        .text()
        .await?;
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d))
        .collect::<Result<_, _>>()?;
    assert!(chunks.len() >= 3);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks.iter().all(|c| c["id"] == chunks[0]["id"]),
        "one id for the whole stream"
    );
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, content, "streamed text equals the plain reply");

    // Errors are OpenAI-shaped.
    let missing = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&json!({"model": "nope", "messages": []}))
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    let error: Value = missing.json().await?;
    assert_eq!(error["error"]["code"], "model_not_found");
    let bad = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await?;
    assert_eq!(error["error"]["type"], "invalid_request_error");
    up.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_key_makes_up_require_a_key() -> anyhow::Result<()> {
    use switchyard::up::{Up, UpConfig, UpExtras};
    switchyard_tests::harness::init();
    let data = tempfile::tempdir()?;
    let cfg = UpConfig {
        data_dir: data.path().to_path_buf(),
        demo: true,
        agent: false,
        ..Default::default()
    };
    let edge = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let key = "sy_test_bootstrap0123456789abcdef";
    let extras = UpExtras {
        bootstrap_key: Some(key.into()),
        ..Default::default()
    };
    let up = Up::start_with(cfg, edge, grpc, extras).await?;
    let edge = up.edge_addr();
    let client = reqwest::Client::new();
    let request = json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]});
    let status = wait_for(
        Duration::from_secs(10),
        "the demo model behind the key",
        || {
            let client = client.clone();
            let request = request.clone();
            async move {
                let r = client
                    .post(format!("http://{edge}/v1/chat/completions"))
                    .bearer_auth(key)
                    .json(&request)
                    .send()
                    .await
                    .ok()?;
                (r.status() == 200).then_some(r.status())
            }
        },
    )
    .await?;
    assert_eq!(status, 200);
    let refused = client
        .post(format!("http://{edge}/v1/chat/completions"))
        .json(&request)
        .send()
        .await?;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await?;
    assert_eq!(body["error"]["type"], "authentication_error");
    up.stop().await?;
    Ok(())
}

/// The README's first step: `up --demo` and a request at once. The edge holds a request that
/// arrives before its first routing table (at most a few seconds) instead of answering 503, so
/// the very first request succeeds, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_right_after_up_demo_answers_200_every_time() -> anyhow::Result<()> {
    switchyard_tests::harness::init();
    let client = reqwest::Client::new();
    let request = json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]});
    for round in 0..5 {
        let data = tempfile::tempdir()?;
        let up = start_up(data.path(), true, None).await?;
        let edge = up.edge_addr();
        let response = client
            .post(format!("http://{edge}/v1/chat/completions"))
            .json(&request)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        assert_eq!(status, 200, "round {round}: {body}");
        up.stop().await?;
    }
    Ok(())
}
