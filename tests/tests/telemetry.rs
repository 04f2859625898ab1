//! Per-request telemetry end to end: the usage webhook through a receiver outage (events
//! delivered once it returns, up to the queue bound, drops counted, requests never waiting),
//! a slow receiver that delays no request, OTLP spans with OpenTelemetry's GenAI attributes and
//! a child span per upstream attempt, and the request log of a real `switchyard edge` process
//! on stdout (`--request-log -`), which holds the event fields and no prompt or secret.

#![allow(
    clippy::unwrap_used,
    reason = "a poisoned lock or a panicked task is a failed test"
)]

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_edge::Config;
use switchyard_edge::config::Secret;
use switchyard_proto::v1;
use switchyard_tests::deploy::switchyard_bin;
use switchyard_tests::edge_harness::{FakeControlPlane, Table, TestEdge};
use switchyard_tests::harness::wait_for;
use switchyard_tests::openai_fake::{Behavior, OpenAiFake};
use switchyard_tests::receiver::{Mode, Receiver};

const ALICE: &str = "sy_live_telemetryAlice0123456789abcdef";
const UPSTREAM_KEY: &str = "sk-upstream-TELEMETRY-0123456789abcdef";
const HOOK_TOKEN: &str = "hook-token-TELEMETRY-0123456789";
const PROMPT: &str = "PROMPT-CANARY-xyzzy-do-not-log";
/// The usage the fake upstream reports for a chat answer.
const PROMPT_TOKENS: u64 = 9;
const COMPLETION_TOKENS: u64 = 12;

/// One model `m` on the fake, with an upstream key, and the key `alice` allowed `m` only.
fn table(fake: &OpenAiFake) -> v1::RoutingTable {
    Table::new(1)
        .endpoint_with("up", &fake.base_url(), |e| {
            e.credentials = vec![v1::Credential {
                id: "key".into(),
                value: UPSTREAM_KEY.into(),
                ..Default::default()
            }];
        })
        .model("m", &[("up", "m")])
        .model("other", &[("up", "other")])
        .key("alice", ALICE, |k| k.allowed_models = vec!["m".into()])
        .build()
}

/// A chat for `model` with request id `id`; returns the status and how long it took.
async fn chat(
    http: &reqwest::Client,
    edge: &str,
    model: &str,
    id: &str,
    stream: bool,
) -> (u16, Duration) {
    let started = Instant::now();
    let r = http
        .post(format!("{edge}/v1/chat/completions"))
        .bearer_auth(ALICE)
        .header("x-request-id", id)
        .json(&json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    // The whole body: a stream's event is built when it ends.
    let _body = r.bytes().await.unwrap();
    (status, started.elapsed())
}

/// `switchyard_edge_telemetry_events_{what}_total{sink="webhook"}` from the edge's `/metrics`.
async fn counter(http: &reqwest::Client, edge: &str, what: &str, sink: &str) -> u64 {
    let text = http
        .get(format!("{edge}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("switchyard_edge_telemetry_events_{what}_total{{sink=\"{sink}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn webhook_outage_delivers_up_to_the_queue_bound_and_never_delays_requests() {
    let fake = OpenAiFake::start().await.unwrap();
    let receiver = Receiver::start(Mode::Down).await.unwrap();
    let (queue, batch, total) = (20u64, 5u64, 60u64);
    let cfg = Config {
        usage_webhook: Some(format!("{}/hook", receiver.url())),
        usage_webhook_token: Some(Secret::new(HOOK_TOKEN)),
        telemetry_queue: queue as usize,
        telemetry_batch: batch as usize,
        telemetry_flush_ms: 50,
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table(&fake))).await.unwrap();
    let http = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    for i in 0..total {
        let (status, took) = chat(
            &http,
            &edge.url,
            "m",
            &format!("r-{i}"),
            i.is_multiple_of(4),
        )
        .await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
    }
    // The fake answers at once: a request that waited on the dead receiver would show here.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest request took {slowest:?}"
    );
    // Everything beyond the queue and the batch being retried is dropped, and counted.
    wait_for(Duration::from_secs(10), "the queue to overflow", || {
        let (http, url, receiver) = (http.clone(), edge.url.clone(), receiver.clone());
        async move {
            let dropped = counter(&http, &url, "dropped", "webhook").await;
            (dropped >= total - queue - batch && receiver.refused() >= 2).then_some(())
        }
    })
    .await
    .unwrap();
    receiver.set(Mode::Up);
    let (delivered, dropped) =
        wait_for(Duration::from_secs(30), "delivery after the outage", || {
            let (http, url) = (http.clone(), edge.url.clone());
            async move {
                let delivered = counter(&http, &url, "delivered", "webhook").await;
                let dropped = counter(&http, &url, "dropped", "webhook").await;
                (delivered + dropped == total).then_some((delivered, dropped))
            }
        })
        .await
        .unwrap();
    assert!(
        (queue + 1..=queue + batch).contains(&delivered),
        "delivered {delivered}, dropped {dropped}"
    );
    let events = receiver.events();
    assert_eq!(events.len() as u64, delivered);
    let ids: HashSet<String> = events
        .iter()
        .map(|e| e["request_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), events.len(), "an event was delivered twice");
    // The queue drops its oldest: the last `queue` requests all arrived.
    for i in total - queue..total {
        assert!(ids.contains(&format!("r-{i}")), "r-{i} missing");
    }
    for post in receiver.posts() {
        assert_eq!(post.path, "/hook");
        assert_eq!(
            post.authorization.as_deref(),
            Some(&*format!("Bearer {HOOK_TOKEN}"))
        );
        assert!(
            post.body
                .as_array()
                .is_some_and(|a| a.len() as u64 <= batch)
        );
    }
    for e in &events {
        let i: u64 = e["request_id"].as_str().unwrap()[2..].parse().unwrap();
        assert_usage_event(e, i.is_multiple_of(4));
    }
    let text = serde_json::to_string(&events).unwrap();
    for secret in [PROMPT, ALICE, UPSTREAM_KEY, HOOK_TOKEN] {
        assert!(!text.contains(secret), "an event holds {secret}");
    }
}

/// The fields of a served chat's event (LLMProxy's, plus key, deployment, status and cost).
fn assert_usage_event(e: &Value, stream: bool) {
    assert_eq!(e["key_id"], "alice", "{e}");
    assert_eq!(e["model"], "m");
    assert_eq!(e["deployment"], "up/m");
    assert_eq!(e["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(e["completion_tokens"], COMPLETION_TOKENS);
    assert_eq!(e["total_tokens"], PROMPT_TOKENS + COMPLETION_TOKENS);
    assert_eq!(e["is_stream"], stream);
    assert_eq!(e["status"], 200);
    assert_eq!(e["operation"], "chat");
    assert!(e["latency_ms"].is_u64() && e["cost_usd"].is_f64());
    let ts = e["timestamp"].as_str().unwrap_or_default();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
}

#[tokio::test]
async fn a_slow_receiver_delays_no_request() {
    let fake = OpenAiFake::start().await.unwrap();
    let receiver = Receiver::start(Mode::Slow(Duration::from_secs(3)))
        .await
        .unwrap();
    let cfg = Config {
        usage_webhook: Some(format!("{}/hook", receiver.url())),
        telemetry_batch: 1,
        telemetry_flush_ms: 10,
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(table(&fake))).await.unwrap();
    let http = reqwest::Client::new();
    for i in 0..10u32 {
        let (status, took) = chat(
            &http,
            &edge.url,
            "m",
            &format!("s-{i}"),
            i.is_multiple_of(2),
        )
        .await;
        assert_eq!(status, 200);
        // Each webhook POST takes 3 s; a request that waited on one would take as long.
        assert!(took < Duration::from_secs(1), "request {i} took {took:?}");
    }
    let delivered = wait_for(
        Duration::from_secs(20),
        "the slow receiver's first batch",
        || {
            let receiver = receiver.clone();
            async move { (!receiver.events().is_empty()).then(|| receiver.events()) }
        },
    )
    .await
    .unwrap();
    assert_eq!(delivered[0]["request_id"], "s-0");
}

#[tokio::test]
async fn otlp_spans_carry_genai_attributes_and_a_child_per_attempt() {
    let broken = OpenAiFake::start().await.unwrap();
    broken.script("m", vec![Behavior::status(500, "upstream broke")]);
    let good = OpenAiFake::start().await.unwrap();
    let receiver = Receiver::start(Mode::Up).await.unwrap();
    // `m` lives on the broken server only; its fallback `m2` serves it as `good-model`.
    let wire = Table::new(1)
        .endpoint("broken", &broken.base_url())
        .endpoint("good", &good.base_url())
        .model("m", &[("broken", "m")])
        .model("m2", &[("good", "good-model")])
        .fallback("m", &["m2"], false)
        .key("alice", ALICE, |_| {})
        .build();
    let cfg = Config {
        otlp_endpoint: Some(receiver.url()),
        telemetry_flush_ms: 20,
        ..Config::default()
    };
    let edge = TestEdge::start(cfg, Some(wire)).await.unwrap();
    let http = reqwest::Client::new();
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = http
        .post(edge.v1("chat/completions"))
        .bearer_auth(ALICE)
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(chat(&http, &edge.url, "m", "second", false).await.0, 200);
    let spans = wait_for(Duration::from_secs(10), "two traces", || {
        let receiver = receiver.clone();
        async move {
            let spans = receiver.spans();
            (spans.iter().filter(|s| s["kind"] == 2).count() >= 2).then_some(spans)
        }
    })
    .await
    .unwrap();
    assert!(receiver.posts().iter().all(|p| p.path == "/v1/traces"));
    let roots: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 2).collect();
    let root = roots
        .iter()
        .find(|s| s["traceId"] == trace)
        .copied()
        .unwrap();
    assert_eq!(
        root["parentSpanId"], parent,
        "the caller's traceparent is the parent"
    );
    assert_eq!(root["name"], "chat m");
    assert_eq!(root["status"]["code"], 1);
    assert_eq!(
        attr(root, "gen_ai.operation.name"),
        json!({"stringValue": "chat"})
    );
    assert_eq!(
        attr(root, "gen_ai.request.model"),
        json!({"stringValue": "m"})
    );
    assert_eq!(
        attr(root, "gen_ai.response.model"),
        json!({"stringValue": "good-model"})
    );
    assert_eq!(
        attr(root, "gen_ai.provider.name"),
        json!({"stringValue": "openai"})
    );
    assert_eq!(
        attr(root, "gen_ai.system"),
        json!({"stringValue": "openai"})
    );
    assert_eq!(
        attr(root, "gen_ai.usage.input_tokens"),
        json!({"intValue": PROMPT_TOKENS.to_string()})
    );
    assert_eq!(
        attr(root, "gen_ai.usage.output_tokens"),
        json!({"intValue": COMPLETION_TOKENS.to_string()})
    );
    let mut children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parentSpanId"] == root["spanId"])
        .collect();
    children.sort_by_key(|s| {
        s["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    assert!(children.len() >= 2, "{children:?}");
    let (first, last) = (children[0], children[children.len() - 1]);
    assert!(
        children
            .iter()
            .all(|c| c["kind"] == 3 && c["traceId"] == trace)
    );
    assert_eq!(
        attr(first, "switchyard.endpoint"),
        json!({"stringValue": "broken"})
    );
    assert_eq!(first["status"]["code"], 2);
    assert_eq!(
        attr(first, "error.type"),
        json!({"stringValue": "server_error"})
    );
    assert_eq!(
        attr(last, "switchyard.endpoint"),
        json!({"stringValue": "good"})
    );
    assert_eq!(last["status"]["code"], 1);
    assert_eq!(
        attr(last, "gen_ai.request.model"),
        json!({"stringValue": "good-model"})
    );
    // Without a traceparent a request starts a trace of its own.
    let other = roots.iter().find(|s| s["traceId"] != trace).unwrap();
    assert!(other.get("parentSpanId").is_none_or(Value::is_null));
    assert_eq!(other["traceId"].as_str().map(str::len), Some(32));
    let text = serde_json::to_string(&spans).unwrap();
    assert!(!text.contains(PROMPT) && !text.contains(ALICE));
}

fn attr(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(Value::Null, |kv| kv["value"].clone())
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_request_log_of_an_edge_process_holds_fields_and_no_secrets() {
    switchyard_tests::harness::init();
    let fake = OpenAiFake::start().await.unwrap();
    let cp = FakeControlPlane::start(table(&fake), true).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, err, addr_file) = (
        dir.path().join("stdout"),
        dir.path().join("stderr"),
        dir.path().join("addr.json"),
    );
    let child = Command::new(switchyard_bin().unwrap())
        .args(["--log-format", "json", "edge", "--listen", "127.0.0.1:0"])
        .args(["--control-plane", &cp.url, "--request-log", "-"])
        .args(["--telemetry-flush-ms", "50", "--addr-file"])
        .arg(&addr_file)
        .env("RUST_LOG", "debug")
        .env_remove("SWITCHYARD_REQUEST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let _edge = Proc(child);
    let edge = wait_for(Duration::from_secs(30), "the edge's address file", || {
        let addr_file = addr_file.clone();
        async move {
            let text = std::fs::read_to_string(&addr_file).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            Some(format!("http://{}", v["http"].as_str()?))
        }
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    // Served once the table arrived (the first tries may race it).
    wait_for(Duration::from_secs(20), "the edge to serve", || {
        let (http, edge) = (http.clone(), edge.clone());
        async move { (chat(&http, &edge, "m", "first", false).await.0 == 200).then_some(()) }
    })
    .await
    .unwrap();
    for i in 0..4 {
        assert_eq!(
            chat(&http, &edge, "m", &format!("l-{i}"), i % 2 == 1)
                .await
                .0,
            200
        );
    }
    // A model the key may not use is logged with its status; a bad key is not a request.
    assert_eq!(chat(&http, &edge, "other", "refused", false).await.0, 403);
    let unknown = http
        .post(format!("{edge}/v1/chat/completions"))
        .bearer_auth("sy_live_unknownKey0123456789abcdefgh")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    let logged = wait_for(Duration::from_secs(10), "the request log's lines", || {
        let out = out.clone();
        async move {
            let lines = lines(&out);
            lines
                .iter()
                .any(|l| l.contains("\"refused\""))
                .then_some(lines)
        }
    })
    .await
    .unwrap();
    let events: Vec<Value> = logged
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let by_id = |id: &str| events.iter().find(|e| e["request_id"] == id).unwrap();
    for i in 0..4 {
        assert_usage_event(by_id(&format!("l-{i}")), i % 2 == 1);
    }
    let refused = by_id("refused");
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["total_tokens"], 0);
    assert_eq!(refused["deployment"], "");
    assert!(events.iter().all(|e| e["key_id"] == "alice"));
    let text = std::fs::read_to_string(&out).unwrap();
    for secret in [PROMPT, ALICE, UPSTREAM_KEY] {
        assert!(!text.contains(secret), "the request log holds {secret}");
    }
    // `--log-format json`: every log line on stderr is a JSON object.
    let logs = lines(&err);
    assert!(!logs.is_empty());
    for line in logs {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
}
