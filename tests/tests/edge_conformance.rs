//! Client conformance with the real `openai` Python SDK (chat and Responses), LangChain's
//! `ChatOpenAI`, the `anthropic` SDK and the `ollama` client: runs the scripts in tests/conformance against an in-process edge and fake
//! upstreams. The venv is
//! created once under `target/py-conformance` (guarded by a file lock). Without Python or pip
//! this test fails; it never skips.

use std::path::Path;
use std::time::Duration;

use switchyard_edge::Config;
use switchyard_proto::v1;
use switchyard_tests::anthropic_fake::AnthropicFake;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::gemini_fake::GeminiFake;
use switchyard_tests::ollama_native_fake::OllamaNativeFake;
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};
use switchyard_tests::python::{venv_python, workspace};

const KEY: &str = "sy_live_conformanceconformance";
const NARROW: &str = "sy_test_narrownarrownarrownarrow";

#[tokio::test]
async fn openai_sdk_and_langchain_work_against_the_edge() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "limited-up",
        vec![Behavior::rate_limited(&[("retry-after", "30")])],
    );
    fake.script("broken-up", vec![Behavior::status(500, "boom")]);
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .endpoint_with("ollama", &fake.base_url(), |e| e.kind = "ollama".into())
        .model("gpt-test", &[("fake", "gpt-test-up")])
        .model("local", &[("ollama", "llama3:8b")])
        .model("limited", &[("fake", "limited-up")])
        .model("broken", &[("fake", "broken-up")])
        .key("k-all", KEY, |_| {})
        .key("k-narrow", NARROW, |k| {
            k.allowed_models = vec!["gpt-*".into()]
        })
        .build();
    let cfg = Config {
        max_body_bytes: 256 * 1024,
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table)).await.unwrap();
    let script = workspace().join("tests/conformance/openai_sdk.py");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&script)
        .env("SWITCHYARD_URL", format!("{}/v1", edge.url))
        .env("SWITCHYARD_KEY", KEY)
        .env("SWITCHYARD_NARROW_KEY", NARROW)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the conformance script did not finish in 180 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "conformance failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

/// Runs one conformance script with `env` and checks that every check passed.
async fn run_script(python: &Path, script: &str, env: &[(&str, String)]) {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(workspace().join("tests/conformance").join(script))
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Ok(out) = tokio::time::timeout(Duration::from_secs(180), cmd.output()).await else {
        panic!("{script} did not finish in 180 s");
    };
    let out = out.unwrap_or_else(|e| panic!("{script}: cannot run python: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
}

#[tokio::test]
async fn anthropic_sdk_works_against_an_openai_upstream() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let fake = OpenAiFake::start().await.unwrap();
    fake.script(
        "limited-up",
        vec![Behavior::rate_limited(&[("retry-after", "30")])],
    );
    let table = Table::new(1)
        .endpoint("fake", &fake.base_url())
        .model("gpt-test", &[("fake", "gpt-test-up")])
        .model("limited", &[("fake", "limited-up")])
        .key("k-all", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    run_script(
        &python,
        "anthropic_sdk.py",
        &[
            ("SWITCHYARD_ANTHROPIC_URL", edge.url.clone()),
            ("SWITCHYARD_KEY", KEY.into()),
            ("SWITCHYARD_MODEL", "gpt-test".into()),
            ("SWITCHYARD_LIMITED_MODEL", "limited".into()),
        ],
    )
    .await;
    // The upstream saw OpenAI chat bodies: system first, the tool result as a `tool` message
    // before the user's text, the tool call with its arguments as a JSON string.
    let calls = fake.calls();
    let round_trip = calls
        .iter()
        .find(|c| {
            c.body["messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"))
        })
        .expect("the tool_result round trip reached the upstream");
    let messages = round_trip.body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "user"], "{messages:?}");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(messages[2]["tool_call_id"], "toolu_1");
    assert_eq!(round_trip.path, "/v1/chat/completions");
    assert!(
        calls
            .iter()
            .any(|c| c.body["messages"][0]["role"] == "system"),
        "system prompt not sent as a system message"
    );
}

/// An endpoint of kind `anthropic` with key `sk-ant-fake`.
fn anthropic_endpoint(e: &mut v1::RouteEndpoint) {
    e.kind = "anthropic".into();
    e.credentials = vec![v1::Credential {
        id: "key".into(),
        value: "sk-ant-fake".into(),
        ..Default::default()
    }];
}

#[tokio::test]
async fn anthropic_sdk_works_against_an_anthropic_upstream() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let fake = AnthropicFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint_with("claude", &fake.base_url(), anthropic_endpoint)
        .model("claude-test", &[("claude", "claude-test-up")])
        .model("limited", &[("claude", "limited-up")])
        .key("k-all", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    run_script(
        &python,
        "anthropic_sdk.py",
        &[
            ("SWITCHYARD_ANTHROPIC_URL", edge.url.clone()),
            ("SWITCHYARD_KEY", KEY.into()),
            ("SWITCHYARD_MODEL", "claude-test".into()),
            ("SWITCHYARD_LIMITED_MODEL", "limited".into()),
        ],
    )
    .await;
    // Every call carried the endpoint's key in x-api-key (never the client's) and a version.
    let calls = fake.calls();
    assert!(!calls.is_empty());
    for call in &calls {
        assert_eq!(call.api_key.as_deref(), Some("sk-ant-fake"));
        assert_eq!(call.version.as_deref(), Some("2023-06-01"));
        assert!(call.body["max_tokens"].is_u64(), "{}", call.body);
    }
}

#[tokio::test]
async fn openai_clients_reach_an_anthropic_upstream() {
    let fake = AnthropicFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint_with("claude", &fake.base_url(), anthropic_endpoint)
        .model("claude-test", &[("claude", "claude-test-up")])
        .model("overloaded", &[("claude", "overloaded-up")])
        .key("k-all", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(edge.v1("/chat/completions"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    // A whole answer, with max_tokens defaulted for Anthropic and system moved to `system`.
    let r = post(serde_json::json!({"model": "claude-test", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from claude-test-up"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 9);
    assert_eq!(v["usage"]["completion_tokens"], 12);
    let sent = fake.calls().last().unwrap().body.clone();
    assert_eq!(sent["system"], "be brief");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
    // Tools: the call comes back as OpenAI tool_calls with its arguments as a JSON string.
    let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let r = post(
        serde_json::json!({"model": "claude-test", "tools": tools, "tool_choice": "required",
        "messages": [{"role": "user", "content": "weather?"}]}),
    )
    .await
    .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        fake.calls().last().unwrap().body["tool_choice"]["type"],
        "any"
    );
    // A stream: OpenAI chunks translated from Anthropic's events, usage only when asked, [DONE].
    let r = post(serde_json::json!({"model": "claude-test", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let data: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = data
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello world");
    assert!(
        data.iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(data.last().unwrap()["usage"]["completion_tokens"], 12);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // A streamed tool call arrives in fragments under one index.
    let r = post(
        serde_json::json!({"model": "claude-test", "stream": true, "tools": tools,
        "messages": [{"role": "user", "content": "weather?"}]}),
    )
    .await
    .unwrap();
    let text = r.text().await.unwrap();
    let args: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(args, "{\"city\": \"Paris\"}");
    assert!(!text.contains("\"usage\":{"), "usage not asked for: {text}");
    // Anthropic's 529 is a failure like a 5xx: the client gets an OpenAI 502.
    let r = post(serde_json::json!({"model": "overloaded",
        "messages": [{"role": "user", "content": "hi"}]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 502);
    // Completions have no Anthropic counterpart: a clear 400.
    let r = http
        .post(edge.v1("/completions"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "claude-test", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("Messages"),
        "{v}"
    );
}

#[tokio::test]
async fn ollama_client_works_against_the_edge() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let openai = OpenAiFake::start().await.unwrap();
    let claude = AnthropicFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint("fake", &openai.base_url())
        .endpoint_with("claude", &claude.base_url(), anthropic_endpoint)
        .model("gpt-test", &[("fake", "gpt-test-up")])
        .model("claude-test", &[("claude", "claude-test-up")])
        .model("embedder", &[("fake", "embed-up")])
        .key("k-all", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    // The same client checks against an OpenAI-compatible and an Anthropic upstream.
    for model in ["gpt-test", "claude-test"] {
        run_script(
            &python,
            "ollama_client.py",
            &[
                ("SWITCHYARD_OLLAMA_URL", edge.url.clone()),
                ("SWITCHYARD_KEY", KEY.into()),
                ("SWITCHYARD_MODEL", model.into()),
                ("SWITCHYARD_EMBED_MODEL", "embedder".into()),
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn openai_responses_work_against_every_upstream_dialect() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let openai = OpenAiFake::start().await.unwrap();
    let ollama = OllamaNativeFake::start().await.unwrap();
    let claude = AnthropicFake::start().await.unwrap();
    let gemini = GeminiFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint("fake", &openai.base_url())
        .endpoint_with("ollama", &format!("{}/v1", ollama.base_url()), |e| {
            e.kind = "ollama".into();
        })
        .endpoint_with("claude", &claude.base_url(), anthropic_endpoint)
        .endpoint_with("gemini", &gemini.base_url(), gemini_endpoint)
        .model("gpt-test", &[("fake", "gpt-test-up")])
        .model("llama-test", &[("ollama", "llama-up")])
        .model("claude-test", &[("claude", "claude-test-up")])
        .model("gemini-test", &[("gemini", "gemini-test-up")])
        .key("k-all", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    for model in ["gpt-test", "llama-test", "claude-test", "gemini-test"] {
        run_script(
            &python,
            "openai_responses.py",
            &[
                ("SWITCHYARD_URL", format!("{}/v1", edge.url)),
                ("SWITCHYARD_KEY", KEY.into()),
                ("SWITCHYARD_MODEL", model.into()),
            ],
        )
        .await;
    }
    // Every upstream saw its own dialect: the tool result reached each of them.
    assert!(
        openai
            .calls()
            .iter()
            .any(|c| c.body.to_string().contains("\"role\":\"tool\""))
    );
    assert!(
        ollama
            .calls()
            .iter()
            .any(|c| c.to_string().contains("\"role\":\"tool\""))
    );
    assert!(
        claude
            .calls()
            .iter()
            .any(|c| c.body.to_string().contains("tool_result"))
    );
    assert!(
        gemini
            .calls()
            .iter()
            .any(|c| c.body.to_string().contains("functionResponse"))
    );
}

/// An endpoint of kind `gemini` with key `AIza-fake`.
fn gemini_endpoint(e: &mut v1::RouteEndpoint) {
    e.kind = "gemini".into();
    e.credentials = vec![v1::Credential {
        id: "key".into(),
        value: "AIza-fake".into(),
        ..Default::default()
    }];
}

#[tokio::test]
async fn anthropic_and_ollama_clients_work_against_a_gemini_upstream() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let gemini = GeminiFake::start().await.unwrap();
    let openai = OpenAiFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint_with("gemini", &gemini.base_url(), gemini_endpoint)
        .endpoint("fake", &openai.base_url())
        .model("gemini-test", &[("gemini", "gemini-test-up")])
        .model("limited", &[("gemini", "limited-up")])
        .model("embedder", &[("fake", "embed-up")])
        .key("k-all", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    run_script(
        &python,
        "anthropic_sdk.py",
        &[
            ("SWITCHYARD_ANTHROPIC_URL", edge.url.clone()),
            ("SWITCHYARD_KEY", KEY.into()),
            ("SWITCHYARD_MODEL", "gemini-test".into()),
            ("SWITCHYARD_LIMITED_MODEL", "limited".into()),
        ],
    )
    .await;
    run_script(
        &python,
        "ollama_client.py",
        &[
            ("SWITCHYARD_OLLAMA_URL", edge.url.clone()),
            ("SWITCHYARD_KEY", KEY.into()),
            ("SWITCHYARD_MODEL", "gemini-test".into()),
            ("SWITCHYARD_EMBED_MODEL", "embedder".into()),
        ],
    )
    .await;
    // Gemini saw its own dialect: the key in x-goog-api-key, tool results as named
    // functionResponse parts.
    let calls = gemini.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.api_key.as_deref() == Some("AIza-fake"))
    );
    assert!(
        calls
            .iter()
            .any(|c| c.body.to_string().contains("functionResponse"))
    );
}
