//! OpenAI Responses in (`POST /v1/responses`) against every outbound dialect (OpenAI-compatible,
//! Ollama-native, Anthropic, Gemini): whole answers, the numbered event stream, function calls
//! and their round trip, the stateless 400s; and Gemini outbound from the failover side: its
//! key header, its quota wall cooling the target, an invalid key failing over, and a paused
//! Gemini stream reaching the client before it ends, and a cut-short one reported as such.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_edge::Config;
use switchyard_proto::v1;
use switchyard_tests::anthropic_fake::AnthropicFake;
use switchyard_tests::edge_harness::{Table, TestEdge};
use switchyard_tests::gemini_fake::GeminiFake;
use switchyard_tests::ollama_native_fake::OllamaNativeFake;
use switchyard_tests::openai_fake::OpenAiFake;

const KEY: &str = "sy_live_responsesresponsesrespons";
const MODELS: [&str; 4] = ["gpt-test", "llama-test", "claude-test", "gemini-test"];

fn keyed(kind: &'static str, secret: &'static str) -> impl FnOnce(&mut v1::RouteEndpoint) {
    move |e| {
        e.kind = kind.into();
        e.credentials = vec![v1::Credential {
            id: "key".into(),
            value: secret.into(),
            ..Default::default()
        }];
    }
}

struct Upstreams {
    openai: OpenAiFake,
    ollama: OllamaNativeFake,
    claude: AnthropicFake,
    gemini: GeminiFake,
    edge: TestEdge,
}

async fn start() -> Upstreams {
    let openai = OpenAiFake::start().await.unwrap();
    let ollama = OllamaNativeFake::start().await.unwrap();
    let claude = AnthropicFake::start().await.unwrap();
    let gemini = GeminiFake::start().await.unwrap();
    let table = Table::new(1)
        .endpoint("fake", &openai.base_url())
        .endpoint_with("ollama", &format!("{}/v1", ollama.base_url()), |e| {
            e.kind = "ollama".into();
        })
        .endpoint_with(
            "claude",
            &claude.base_url(),
            keyed("anthropic", "sk-ant-fake"),
        )
        .endpoint_with("gemini", &gemini.base_url(), keyed("gemini", "AIza-fake"))
        // Its own endpoint: a refused key rests every model of its endpoint.
        .endpoint_with(
            "gemini-bad",
            &gemini.base_url(),
            keyed("gemini", "AIza-bad"),
        )
        .model("gpt-test", &[("fake", "gpt-test-up")])
        .model("llama-test", &[("ollama", "llama-up")])
        .model("claude-test", &[("claude", "claude-test-up")])
        .model("gemini-test", &[("gemini", "gemini-test-up")])
        .model("gemini-limited", &[("gemini", "limited-up")])
        .model("gemini-paused", &[("gemini", "paused-up")])
        .model("gemini-cut", &[("gemini", "cut-up")])
        // An invalid Gemini key is a credential failure: the next deployment serves.
        .model(
            "badkey-then-openai",
            &[("gemini-bad", "badkey-up"), ("fake", "gpt-test-up")],
        )
        .key("k", KEY, |_| {})
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    Upstreams {
        openai,
        ollama,
        claude,
        gemini,
        edge,
    }
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}})
}

async fn post(edge: &TestEdge, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(edge.v1("/responses"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `data:` objects of a Responses stream, checked frame by frame: each names its event
/// and carries the next sequence number.
fn events(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut lines = frame.lines();
        let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
        let data: Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], event, "{frame}");
        assert_eq!(data["sequence_number"], out.len(), "{frame}");
        out.push(data);
    }
    out
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn responses_answer_whole_and_streamed_from_every_upstream_dialect() {
    let u = start().await;
    for model in MODELS {
        let r = post(
            &u.edge,
            json!({"model": model, "instructions": "be brief", "input": "hi",
                   "max_output_tokens": 50, "temperature": 0.2}),
        )
        .await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "response", "{model}: {v}");
        assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
        assert_eq!(v["status"], "completed", "{model}: {v}");
        assert_eq!(v["output"][0]["type"], "message", "{model}: {v}");
        assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
        assert!(
            !v["output"][0]["content"][0]["text"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        let usage = &v["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{model}: {v}");
        assert!(usage["output_tokens"].as_u64().unwrap() > 0, "{model}: {v}");
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
        );

        let r = post(
            &u.edge,
            json!({"model": model, "stream": true,
                   "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}),
        )
        .await;
        assert_eq!(r.status(), 200, "{model}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let events = events(&r.text().await.unwrap());
        let kinds = kinds(&events);
        assert_eq!(
            kinds[..4],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added"
            ],
            "{model}"
        );
        assert!(
            kinds.contains(&"response.output_text.delta"),
            "{model}: {kinds:?}"
        );
        assert_eq!(
            kinds[kinds.len() - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ],
            "{model}"
        );
        let deltas: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        let done = &events[kinds.len() - 4]["text"];
        assert_eq!(done, &json!(deltas), "{model}");
        let completed = &events.last().unwrap()["response"];
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["output"][0]["content"][0]["text"], json!(deltas));
        assert!(
            completed["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{model}: {completed}"
        );
    }
    // Each upstream was spoken to in its own dialect.
    assert!(
        u.openai
            .calls()
            .iter()
            .any(|c| c.path == "/v1/chat/completions")
    );
    assert!(!u.ollama.calls().is_empty());
    assert!(
        u.claude
            .calls()
            .iter()
            .all(|c| c.body["system"] == "be brief" || c.body.get("system").is_none())
    );
    let gemini = u.gemini.calls();
    assert!(
        gemini
            .iter()
            .all(|c| c.api_key.as_deref() == Some("AIza-fake") && !c.authorization)
    );
    assert!(
        gemini
            .iter()
            .any(|c| c.method == "streamGenerateContent" && c.query.as_deref() == Some("alt=sse"))
    );
    let first = &gemini[0].body;
    assert_eq!(first["systemInstruction"]["parts"][0]["text"], "be brief");
    assert_eq!(first["generationConfig"]["maxOutputTokens"], 50);
    assert_eq!(first["contents"][0]["role"], "user");
}

#[tokio::test]
async fn function_calls_and_their_results_round_trip_through_every_upstream_dialect() {
    let u = start().await;
    for model in MODELS {
        let r = post(
            &u.edge,
            json!({"model": model, "input": "weather in Paris?", "tools": [weather_tool()],
                   "tool_choice": "auto"}),
        )
        .await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        let call = v["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap_or_else(|| panic!("{model}: no function_call in {v}"))
            .clone();
        assert_eq!(call["name"], "get_weather");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["city"], "Paris", "{model}");
        let call_id = call["call_id"].as_str().unwrap().to_owned();
        assert!(!call_id.is_empty());

        // The same call streamed: a function_call item with argument deltas adding up.
        let r = post(
            &u.edge,
            json!({"model": model, "input": "weather in Paris?", "tools": [weather_tool()],
                   "stream": true}),
        )
        .await;
        let events = events(&r.text().await.unwrap());
        let added = events
            .iter()
            .find(|e| {
                e["type"] == "response.output_item.added" && e["item"]["type"] == "function_call"
            })
            .unwrap_or_else(|| panic!("{model}: no function_call item in {events:?}"));
        assert_eq!(added["item"]["name"], "get_weather");
        let deltas: String = events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        let done = events
            .iter()
            .find(|e| e["type"] == "response.function_call_arguments.done")
            .unwrap();
        assert_eq!(done["arguments"], json!(deltas), "{model}");
        assert_eq!(events.last().unwrap()["type"], "response.completed");

        // The result goes back as function_call_output; the model then answers in text.
        let r = post(
            &u.edge,
            json!({"model": model, "tools": [weather_tool()], "input": [
                {"role": "user", "content": "weather in Paris?"},
                {"type": "function_call", "call_id": call_id, "name": "get_weather",
                 "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": call_id, "output": "sunny, 21 C"},
            ]}),
        )
        .await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["output"][0]["type"], "message", "{model}: {v}");
    }
    // The result reached each upstream in its own shape.
    let openai = u.openai.calls();
    assert!(
        openai
            .iter()
            .any(|c| c.body["messages"].as_array().is_some_and(|m| m
                .iter()
                .any(|m| m["role"] == "tool" && m["content"] == "sunny, 21 C")))
    );
    let tools = &openai[0].body["tools"][0];
    assert_eq!(
        tools["function"]["name"], "get_weather",
        "re-nested under function"
    );
    assert!(
        u.claude
            .calls()
            .iter()
            .any(|c| c.body.to_string().contains("\"tool_result\""))
    );
    let gemini = u.gemini.calls();
    let round_trip = gemini
        .iter()
        .find(|c| c.body.to_string().contains("functionResponse"))
        .unwrap();
    let parts = &round_trip.body["contents"][2]["parts"][0]["functionResponse"];
    assert_eq!(parts["name"], "get_weather", "{}", round_trip.body);
    assert_eq!(parts["response"]["output"], "sunny, 21 C");
    assert_eq!(round_trip.body["contents"][1]["role"], "model");
    assert!(u.ollama.calls().iter().any(|c| {
        c["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"))
    }));
}

#[tokio::test]
async fn stateful_requests_get_a_clear_400_in_openai_shape() {
    let u = start().await;
    let cases = [
        (
            json!({"previous_response_id": "resp_123"}),
            "previous_response_id",
        ),
        (json!({"store": true}), "store"),
        (json!({"conversation": "conv_1"}), "conversation"),
    ];
    for (extra, param) in cases {
        let mut body = json!({"model": "gpt-test", "input": "hi"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post(&u.edge, body).await;
        assert_eq!(r.status(), 400, "{param}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no conversation state"),
            "{v}"
        );
    }
    // `store: false` and no `store` at all are fine.
    for body in [
        json!({"model": "gpt-test", "input": "hi", "store": false}),
        json!({"model": "gpt-test", "input": "hi"}),
    ] {
        assert_eq!(post(&u.edge, body).await.status(), 200);
    }
    // Bad input is the client's error, in OpenAI's shape.
    for body in [
        json!({"model": "gpt-test"}),
        json!({"model": "gpt-test", "input": 7}),
        json!({"model": "gpt-test", "input": "hi", "tools": [{"type": "web_search"}]}),
        json!({"model": "gpt-test", "input": [{"type": "mystery"}]}),
        json!({"input": "hi"}),
    ] {
        let r = post(&u.edge, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}: {v}");
    }
    let r = reqwest::Client::new()
        .post(u.edge.v1("/responses"))
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Unknown models and missing keys: OpenAI's errors, as on every `/v1` path.
    let r = post(&u.edge, json!({"model": "nope", "input": "hi"})).await;
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .post(u.edge.v1("/responses"))
        .json(&json!({"model": "gpt-test", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn gemini_quota_walls_cool_the_target_and_bad_keys_fail_over() {
    let u = start().await;
    let http = reqwest::Client::new();
    let chat = |model: &str| {
        http.post(u.edge.v1("/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    // RESOURCE_EXHAUSTED: a rate limit for the RetryInfo's 30 s.
    let r = chat("gemini-limited").await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((25..=30).contains(&retry), "retry-after {retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    // The target rests: the next request is refused at the edge without reaching Gemini.
    let before = u.gemini.calls().len();
    assert_eq!(chat("gemini-limited").await.unwrap().status(), 429);
    assert_eq!(u.gemini.calls().len(), before, "a cooling target was tried");
    // API_KEY_INVALID (a 400) is a refused credential, not the client's error: failover.
    let r = chat("badkey-then-openai").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-endpoint"], "fake");
    // Gemini's errors reach OpenAI clients in OpenAI's shape, with Gemini's message.
    let r = http
        .post(u.edge.v1("/embeddings"))
        .bearer_auth(KEY)
        .json(&json!({"model": "gemini-test", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("Gemini"),
        "{v}"
    );
}

/// Reads `response` until `want` appears, or fails after five seconds.
async fn read_until(mut response: reqwest::Response, want: &str) -> String {
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !got.contains(want) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within 5 s while the upstream paused: {got:?}"))
            .unwrap();
        let Some(chunk) = chunk else {
            panic!("the stream ended before {want:?}: {got:?}");
        };
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    got
}

#[tokio::test]
async fn a_paused_gemini_stream_reaches_openai_and_responses_clients_as_it_comes() {
    let u = start().await;
    let r = reqwest::Client::new()
        .post(u.edge.v1("/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "gemini-paused", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = read_until(r, "\"content\":\" world\"").await;
    assert!(
        !got.contains("[DONE]"),
        "the stream cannot have ended: {got}"
    );

    // Gemini sends no end event: a stream closed before its finishReason was cut short, and
    // the client is told so rather than handed a complete-looking answer.
    let r = reqwest::Client::new()
        .post(u.edge.v1("/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "gemini-cut", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("\"content\":\"Hello\""), "{text}");
    assert!(text.contains("upstream_stream_error"), "{text}");
    assert!(!text.contains("finish_reason\":\"stop"), "{text}");
    let r = post(
        &u.edge,
        json!({"model": "gemini-paused", "stream": true, "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let got = read_until(r, "\"delta\":\" world\"").await;
    assert!(got.starts_with("event: response.created\n"), "{got}");
    assert!(
        !got.contains("response.completed"),
        "the stream cannot have ended: {got}"
    );
}
