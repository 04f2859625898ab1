//! An Ollama endpoint without the OpenAI surface (only `/api/*`): the edge finds `/v1` missing,
//! falls back to `/api/chat` and `/api/embed`, and answers exactly as an OpenAI endpoint would —
//! chat, streams (chunk order, usage only when asked, `[DONE]`, no buffering), a tool-call round
//! trip, errors, embeddings — and remembers the missing surface so `/v1` is not probed again.
#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding outside #[test] fns panics on failure"
)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use switchyard_edge::Config;
use switchyard_tests::edge_harness::{Table, TestEdge};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What the fake saw: (path, parsed body) per request, in order.
type Hits = Arc<Mutex<Vec<(String, Value)>>>;

#[derive(Clone)]
struct Fake {
    hits: Hits,
    /// Serve Ollama's OpenAI surface (`/v1/chat/completions`) as well, answering every model
    /// as missing there.
    openai_surface: bool,
    /// Holds the `gated` model's stream after its first line until notified.
    gate: Arc<Notify>,
}

/// A fake Ollama serving only its native API on an ephemeral port.
struct FakeOllama {
    url: String,
    fake: Fake,
}

impl FakeOllama {
    async fn start(openai_surface: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake {
            hits: Arc::default(),
            openai_surface,
            gate: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/api/chat", post(chat))
            .route("/api/embed", post(embed))
            .route("/api/generate", post(generate))
            .route(
                "/api/tags",
                get(|| async { axum::Json(json!({"models": [{"name": "llama3.2:latest"}]})) }),
            )
            .fallback(other)
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, fake }
    }

    /// Paths requested so far, in order.
    fn paths(&self) -> Vec<String> {
        self.fake
            .hits
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The body of the last request to `path`.
    fn last_body(&self, path: &str) -> Value {
        let hits = self.fake.hits.lock().unwrap();
        hits.iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .unwrap()
    }

    fn count(&self, path: &str) -> usize {
        self.paths().iter().filter(|p| *p == path).count()
    }
}

fn record(fake: &Fake, path: &str, body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    fake.hits
        .lock()
        .unwrap()
        .push((path.to_owned(), parsed.clone()));
    parsed
}

/// Everything but the native API: a plain-text 404, as Ollama's router answers unknown paths;
/// or, with `openai_surface`, an OpenAI-shaped "model not found" on `/v1/chat/completions`.
async fn other(State(fake): State<Fake>, uri: Uri, body: Bytes) -> Response {
    record(&fake, uri.path(), &body);
    if fake.openai_surface && uri.path() == "/v1/chat/completions" {
        let error = json!({"error": {"message": "model \"x\" not found, try pulling it first",
                                     "type": "api_error", "param": null, "code": null}});
        return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
    }
    (StatusCode::NOT_FOUND, "404 page not found").into_response()
}

fn line(model: &str, message: Value, done: bool) -> String {
    let mut l = json!({"model": model, "created_at": "2026-11-22T00:00:00Z",
                       "message": message, "done": done});
    if done {
        l["done_reason"] = json!("stop");
        l["total_duration"] = json!(123_456);
        l["prompt_eval_count"] = json!(12);
        l["eval_count"] = json!(3);
    }
    format!("{l}\n")
}

async fn chat(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let req = record(&fake, "/api/chat", &body);
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    match model.as_str() {
        "echo" => {
            let auth = headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let error = json!({"error": format!("bad request; you sent {auth}")});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
        "missing" => {
            let error = json!({"error": "model 'missing' not found, try pulling it first"});
            return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
        }
        "picky" => {
            let error = json!({"error": "invalid options: num_predict must be positive"});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
        _ => {}
    }
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    // Tools offered and no tool result yet: call the tool; after the result, answer with it.
    let message = if req.get("tools").is_some() && last["role"] != "tool" {
        json!({"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}}]})
    } else if last["role"] == "tool" {
        json!({"role": "assistant", "content": format!("The weather: {}", last["content"].as_str().unwrap_or_default())})
    } else {
        json!({"role": "assistant", "content": "Hello!"})
    };
    if req["stream"] == json!(false) {
        let answer: Value = serde_json::from_str(line(&model, message, true).trim()).unwrap();
        return axum::Json(answer).into_response();
    }
    let gate = fake.gate.clone();
    let frames = async_stream::stream! {
        if message.get("tool_calls").is_some() {
            yield Ok::<_, Infallible>(Bytes::from(line(&model, message, false)));
            yield Ok(Bytes::from(line(&model, json!({"role": "assistant", "content": ""}), true)));
            return;
        }
        yield Ok(Bytes::from(line(&model, json!({"role": "assistant", "content": "Hel"}), false)));
        if model == "gated" {
            gate.notified().await;
        }
        if model == "breaks" {
            yield Ok(Bytes::from("{\"error\":\"an error was encountered while running the model\"}\n"));
            return;
        }
        // Two lines in one write, the second split across writes.
        let two = format!("{}{}", line(&model, json!({"role": "assistant", "content": "lo"}), false),
                          line(&model, json!({"role": "assistant", "content": "!"}), false));
        yield Ok(Bytes::from(two));
        let last = line(&model, json!({"role": "assistant", "content": ""}), true);
        let (a, b) = last.split_at(20);
        yield Ok(Bytes::from(a.to_owned()));
        yield Ok(Bytes::from(b.to_owned()));
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(frames))
        .unwrap()
}

async fn generate(State(fake): State<Fake>, body: Bytes) -> Response {
    let req = record(&fake, "/api/generate", &body);
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    let piece = |text: &str, done: bool| {
        let mut l = json!({"model": model, "created_at": "2026-11-22T00:00:00Z",
                           "response": text, "done": done});
        if done {
            l["done_reason"] = json!("length");
            l["context"] = json!([1, 2, 3]);
            l["prompt_eval_count"] = json!(4);
            l["eval_count"] = json!(3);
        }
        format!("{l}\n")
    };
    if req["stream"] == json!(false) {
        let mut answer: Value = serde_json::from_str(piece("", true).trim()).unwrap();
        answer["response"] = json!(" upon a time");
        return axum::Json(answer).into_response();
    }
    let body = [
        piece(" upon", false),
        piece(" a time", false),
        piece("", true),
    ]
    .concat();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(body))
        .unwrap()
}

async fn embed(State(fake): State<Fake>, body: Bytes) -> Response {
    let req = record(&fake, "/api/embed", &body);
    let inputs = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        _ => Vec::new(),
    };
    let embeddings: Vec<Vec<f32>> = inputs
        .iter()
        .map(|s| vec![s.len() as f32, 0.5, -1.0])
        .collect();
    axum::Json(json!({"model": req["model"], "embeddings": embeddings,
                      "total_duration": 1, "load_duration": 1, "prompt_eval_count": 7}))
    .into_response()
}

async fn edge_for(fake: &FakeOllama) -> TestEdge {
    let table = Table::new(1)
        .endpoint_with("ollama", &format!("{}/v1", fake.url), |e| {
            e.kind = "ollama".into()
        })
        .model("llama3", &[("ollama", "llama3.2:latest")])
        .model("gated", &[("ollama", "gated")])
        .model("breaks", &[("ollama", "breaks")])
        .model("missing", &[("ollama", "missing")])
        .model("picky", &[("ollama", "picky")])
        .model("embed", &[("ollama", "nomic-embed-text")])
        .build();
    TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    switchyard_tests::harness::init();
    reqwest::Client::new()
}

async fn send(edge: &TestEdge, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(edge.v1(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// The data payloads of an SSE body, checking its framing.
fn events(text: &str) -> Vec<Value> {
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

#[tokio::test]
async fn chat_falls_back_to_api_chat_and_remembers_the_missing_surface() {
    let fake = FakeOllama::start(false).await;
    let edge = edge_for(&fake).await;
    let mut body = chat_body("llama3");
    body["max_tokens"] = json!(64);
    body["temperature"] = json!(0.2);
    body["user"] = json!("someone");
    let resp = send(&edge, "chat/completions", body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-switchyard-endpoint"], "ollama");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "1");
    let answer: Value = resp.json().await.unwrap();
    let id = answer["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"), "{answer}");
    assert!(answer["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        answer,
        json!({"id": id, "object": "chat.completion", "created": answer["created"],
               "model": "llama3.2:latest", "system_fingerprint": "fp_ollama",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                            "logprobs": null, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})
    );
    assert_eq!(fake.paths(), vec!["/v1/chat/completions", "/api/chat"]);
    assert_eq!(
        fake.last_body("/api/chat"),
        json!({"model": "llama3.2:latest", "stream": false,
               "messages": [{"role": "user", "content": "hi"}],
               "options": {"num_predict": 64, "temperature": 0.2}})
    );

    // Later requests go straight to the native API; every id is fresh.
    for _ in 0..3 {
        let resp = send(&edge, "chat/completions", body.clone()).await;
        assert_eq!(resp.status(), 200);
        let again: Value = resp.json().await.unwrap();
        assert_ne!(again["id"], answer["id"]);
    }
    assert_eq!(fake.count("/v1/chat/completions"), 1, "{:?}", fake.paths());
    assert_eq!(fake.count("/api/chat"), 4);

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
            "switchyard_edge_tokens_total{endpoint=\"ollama\",model=\"llama3\",kind=\"Prompt\"} 48"
        ),
        "native answers are metered: {metrics}"
    );
    assert!(
        metrics.contains(
            "switchyard_edge_upstream_attempts_total{endpoint=\"ollama\",outcome=\"Ok\"} 4"
        ),
        "the probe's 404 is no failed attempt: {metrics}"
    );
}

#[tokio::test]
async fn streams_translate_chunk_by_chunk_with_usage_only_when_asked() {
    let fake = FakeOllama::start(false).await;
    let edge = edge_for(&fake).await;
    let mut body = chat_body("llama3");
    body["stream"] = json!(true);
    let resp = send(&edge, "chat/completions", body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let got = events(&resp.text().await.unwrap());
    let deltas: Vec<Value> = got
        .iter()
        .map(|e| e["choices"][0]["delta"].clone())
        .collect();
    assert_eq!(
        deltas,
        vec![
            json!({"role": "assistant", "content": "Hel"}),
            json!({"content": "lo"}),
            json!({"content": "!"}),
            json!({}),
            Value::Null,
        ]
    );
    let finishes: Vec<Value> = got[..4]
        .iter()
        .map(|e| e["choices"][0]["finish_reason"].clone())
        .collect();
    assert_eq!(
        finishes,
        vec![Value::Null, Value::Null, Value::Null, json!("stop")]
    );
    for e in &got[..4] {
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["id"], got[0]["id"]);
        assert!(e.get("usage").is_none(), "unasked usage: {e}");
    }
    assert_eq!(fake.last_body("/api/chat")["stream"], true);

    // Asked for: one usage-only chunk before [DONE].
    body["stream_options"] = json!({"include_usage": true});
    let resp = send(&edge, "chat/completions", body).await;
    let got = events(&resp.text().await.unwrap());
    assert_eq!(got.len(), 6);
    assert_eq!(got[4]["choices"], json!([]));
    assert_eq!(
        got[4]["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
    );
    assert!(
        fake.last_body("/api/chat").get("stream_options").is_none(),
        "OpenAI-only fields stay at the edge"
    );
    assert_eq!(fake.count("/v1/chat/completions"), 1);

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
            "switchyard_edge_tokens_total{endpoint=\"ollama\",model=\"llama3\",kind=\"Completion\"} 6"
        ),
        "both streams metered: {metrics}"
    );
}

#[tokio::test]
async fn a_stream_is_relayed_as_it_arrives() {
    let fake = FakeOllama::start(false).await;
    let edge = edge_for(&fake).await;
    let mut body = chat_body("gated");
    body["stream"] = json!(true);
    let mut resp = send(&edge, "chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    // The upstream holds everything after its first line until we have seen that line.
    let mut seen = String::new();
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("Hel") {
            let chunk = resp.chunk().await.unwrap().unwrap();
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await;
    assert!(first.is_ok(), "the first line was held back: {seen:?}");
    assert!(!seen.contains("[DONE]"));
    fake.fake.gate.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .unwrap()
        .unwrap();
    let got = events(&(seen + &rest));
    assert_eq!(got.len(), 5);
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let fake = FakeOllama::start(false).await;
    let edge = edge_for(&fake).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut body = json!({"model": "llama3", "tools": tools,
                          "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let answer: Value = send(&edge, "chat/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = choice["message"]["tool_calls"][0].clone();
    assert!(call["id"].as_str().unwrap().starts_with("call_"), "{call}");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments = call["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"city": "Paris", "unit": "C"}),
        "arguments are a JSON string"
    );
    assert_eq!(fake.last_body("/api/chat")["tools"], tools);

    // Send the call and its result back, as the OpenAI SDK does.
    let history = body["messages"].as_array_mut().unwrap();
    history.push(json!({"role": "assistant", "content": null, "tool_calls": [call.clone()]}));
    history.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "22 C, sunny"}));
    let answer: Value = send(&edge, "chat/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "The weather: 22 C, sunny"
    );
    let sent = fake.last_body("/api/chat");
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}}]}),
        "arguments go to Ollama as an object"
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "content": "22 C, sunny", "tool_name": "get_weather",
               "tool_call_id": call["id"]})
    );

    // Streamed, the call arrives as one delta with an index, then finish_reason tool_calls.
    body["messages"].as_array_mut().unwrap().truncate(1);
    body["stream"] = json!(true);
    let text = send(&edge, "chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let got = events(&text);
    let delta = &got[0]["choices"][0]["delta"];
    assert_eq!(delta["role"], "assistant");
    assert_eq!(delta["tool_calls"][0]["index"], 0);
    assert_eq!(delta["tool_calls"][0]["function"]["name"], "get_weather");
    assert!(delta["tool_calls"][0]["function"]["arguments"].is_string());
    assert_eq!(got[1]["choices"][0]["finish_reason"], "tool_calls");
}

async fn error_of(resp: reqwest::Response) -> Value {
    let body: Value = resp.json().await.unwrap();
    for f in ["message", "type", "param", "code"] {
        assert!(body["error"].get(f).is_some(), "error lacks {f}: {body}");
    }
    body["error"].clone()
}

#[tokio::test]
async fn native_errors_are_openai_errors() {
    let fake = FakeOllama::start(false).await;
    let edge = edge_for(&fake).await;
    // A request error: the upstream's status and message, OpenAI-shaped, not retried.
    let resp = send(&edge, "chat/completions", chat_body("picky")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let e = error_of(resp).await;
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(
        e["message"],
        "invalid options: num_predict must be positive"
    );
    assert_eq!(fake.count("/api/chat"), 1);

    // A model the server lacks fails over like a 404 on the OpenAI path; with nothing else
    // to try, the client gets 502.
    let resp = send(&edge, "chat/completions", chat_body("missing")).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(error_of(resp).await["code"], "upstream_unavailable");

    // What the native API cannot express is the client's error, before anything is sent.
    let before = fake.paths().len();
    let body = json!({"model": "llama3", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let resp = send(&edge, "chat/completions", body).await;
    assert_eq!(resp.status(), 400);
    let e = error_of(resp).await;
    assert_eq!(e["param"], "messages");
    assert_eq!(fake.paths().len(), before);

    // Images as data URLs go as base64 `images`.
    let body = json!({"model": "llama3", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]});
    assert_eq!(send(&edge, "chat/completions", body).await.status(), 200);
    assert_eq!(
        fake.last_body("/api/chat")["messages"][0],
        json!({"role": "user", "content": "what is this?", "images": ["iVBORw0KGgo="]})
    );

    // A failure mid-stream ends with an error event and [DONE].
    let mut body = chat_body("breaks");
    body["stream"] = json!(true);
    let resp = send(&edge, "chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let got = events(&resp.text().await.unwrap());
    assert_eq!(got[0]["choices"][0]["delta"]["content"], "Hel");
    let error = &got[got.len() - 2]["error"];
    assert_eq!(
        error["message"],
        "an error was encountered while running the model"
    );
    assert_eq!(error["code"], "upstream_error");
    assert_eq!(fake.count("/v1/chat/completions"), 1);
}

#[tokio::test]
async fn a_proxy_with_a_key_gets_it_and_never_echoes_it_to_clients() {
    const SECRET: &str = "sk-ollama-proxy-0123456789";
    let fake = FakeOllama::start(false).await;
    let table = Table::new(1)
        .endpoint_with("ollama", &format!("{}/v1", fake.url), |e| {
            e.kind = "ollama".into();
            e.credentials = vec![switchyard_proto::v1::Credential {
                id: "key".into(),
                value: SECRET.into(),
                ..Default::default()
            }];
        })
        .model("llama3", &[("ollama", "llama3.2:latest")])
        .model("echo", &[("ollama", "echo")])
        .build();
    let edge = TestEdge::start(Config::default(), Some(table))
        .await
        .unwrap();
    let resp = send(&edge, "chat/completions", chat_body("llama3")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-credential"], "key");
    let resp = send(&edge, "chat/completions", chat_body("echo")).await;
    assert_eq!(resp.status(), 400);
    let e = error_of(resp).await;
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("bad request; you sent Bearer "),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
}

#[tokio::test]
async fn embeddings_fall_back_to_api_embed() {
    let fake = FakeOllama::start(false).await;
    let edge = edge_for(&fake).await;
    let body = json!({"model": "embed", "input": ["hello", "hi"]});
    let resp = send(&edge, "embeddings", body.clone()).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"object": "list", "model": "nomic-embed-text",
               "data": [{"object": "embedding", "index": 0, "embedding": [5.0, 0.5, -1.0]},
                        {"object": "embedding", "index": 1, "embedding": [2.0, 0.5, -1.0]}],
               "usage": {"prompt_tokens": 7, "total_tokens": 7}})
    );
    assert_eq!(fake.paths(), vec!["/v1/embeddings", "/api/embed"]);
    assert_eq!(
        fake.last_body("/api/embed"),
        json!({"model": "nomic-embed-text", "input": ["hello", "hi"]})
    );
    // The OpenAI SDK asks for base64 by default: little-endian f32s.
    let mut body = json!({"model": "embed", "input": "hello", "encoding_format": "base64"});
    let answer: Value = send(&edge, "embeddings", body.clone())
        .await
        .json()
        .await
        .unwrap();
    // 5.0f32 = 00 00 a0 40, 0.5f32 = 00 00 00 3f, -1.0f32 = 00 00 80 bf
    assert_eq!(answer["data"][0]["embedding"], "AACgQAAAAD8AAIC/");
    assert_eq!(fake.count("/v1/embeddings"), 1, "remembered per operation");
    // Token arrays have no native meaning: the client's error.
    body["input"] = json!([[1, 2, 3]]);
    let resp = send(&edge, "embeddings", body).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_of(resp).await["param"], "input");
}

#[tokio::test]
async fn text_completions_fall_back_to_api_generate() {
    let fake = FakeOllama::start(false).await;
    let edge = edge_for(&fake).await;
    let body = json!({"model": "llama3", "prompt": "Once", "max_tokens": 3, "echo": false});
    let resp = send(&edge, "completions", body.clone()).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let id = answer["id"].as_str().unwrap();
    assert!(id.starts_with("cmpl-"), "{answer}");
    assert_eq!(
        answer,
        json!({"id": id, "object": "text_completion", "created": answer["created"],
               "model": "llama3.2:latest", "system_fingerprint": "fp_ollama",
               "choices": [{"text": " upon a time", "index": 0, "logprobs": null, "finish_reason": "length"}],
               "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}})
    );
    assert_eq!(fake.paths(), vec!["/v1/completions", "/api/generate"]);
    assert_eq!(
        fake.last_body("/api/generate"),
        json!({"model": "llama3.2:latest", "prompt": "Once", "stream": false,
               "options": {"num_predict": 3}})
    );

    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = send(&edge, "completions", body).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let got = events(&resp.text().await.unwrap());
    let texts: Vec<Value> = got
        .iter()
        .map(|e| e["choices"][0]["text"].clone())
        .collect();
    assert_eq!(
        texts,
        vec![
            json!(" upon"),
            json!(" a time"),
            json!(""),
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(got[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(got[3]["usage"]["total_tokens"], 7);
    assert_eq!(fake.count("/v1/completions"), 1);
}

#[tokio::test]
async fn a_missing_model_on_the_openai_surface_is_no_missing_surface() {
    let fake = FakeOllama::start(true).await;
    let edge = edge_for(&fake).await;
    for _ in 0..2 {
        let resp = send(&edge, "chat/completions", chat_body("llama3")).await;
        assert_eq!(resp.status(), 502);
    }
    assert_eq!(fake.count("/api/chat"), 0, "{:?}", fake.paths());
    assert_eq!(fake.count("/v1/chat/completions"), 2);
}
