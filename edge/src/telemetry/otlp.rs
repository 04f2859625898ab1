//! OTLP trace export over HTTP with the JSON encoding (`POST {endpoint}/v1/traces`): one
//! server span per request carrying OpenTelemetry's GenAI attributes, and one client span per
//! upstream attempt beneath it. A request that came with a W3C `traceparent` joins the caller's
//! trace. Written by hand on purpose: the encoding is a few nested objects, while the
//! OpenTelemetry SDK with its OTLP exporter would add dozens of crates (and protobuf or gRPC
//! stacks) to every edge build for the same few hundred bytes per request.

use std::sync::Arc;

use http::Uri;
use serde_json::{Value, json};

use super::event::{AttemptRecord, Event};
use super::outbox::Failure;
use super::webhook::Poster;
use crate::metrics::AttemptOutcome;

/// OTLP's span kinds and status codes.
const KIND_SERVER: u8 = 2;
const KIND_CLIENT: u8 = 3;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

/// `{endpoint}/v1/traces` for an OTLP/HTTP base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn traces_uri(endpoint: &str) -> Result<Uri, String> {
    crate::config::http_url(endpoint)?;
    crate::config::http_url(&format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

/// The OTLP sink.
#[derive(Debug)]
pub struct Otlp {
    poster: Poster,
    /// `service.instance.id`: this edge's name.
    instance: String,
}

impl Otlp {
    /// An exporter posting through `poster`, naming this edge `instance`.
    pub fn new(poster: Poster, instance: String) -> Self {
        Self { poster, instance }
    }

    /// Posts `batch` as one `ExportTraceServiceRequest`.
    pub async fn deliver(&mut self, batch: &[Arc<Event>]) -> Result<(), Failure> {
        let body = export(batch, &self.instance).to_string().into_bytes();
        self.poster.post(body).await
    }
}

/// The `ExportTraceServiceRequest` for `batch`: one resource (this edge), one scope.
pub fn export(batch: &[Arc<Event>], instance: &str) -> Value {
    let spans: Vec<Value> = batch.iter().flat_map(|e| spans(e)).collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            string("service.name", "switchyard-edge"),
            string("service.instance.id", instance),
        ]},
        "scopeSpans": [{
            "scope": {"name": "switchyard", "version": env!("CARGO_PKG_VERSION")},
            "spans": spans,
        }],
    }]})
}

/// The request's span followed by its attempts' spans.
fn spans(e: &Event) -> Vec<Value> {
    let (trace_id, parent) = match e.parent {
        Some(p) => (p.trace_id, Some(p.span_id)),
        None => (fastrand::u128(1..), None),
    };
    let trace_id = format!("{trace_id:032x}");
    let root_id = fastrand::u64(1..);
    // The try that answered names the response model and the provider.
    let served = e.attempts.iter().rev().find(|a| a.failure.is_none());
    let mut attributes = vec![
        string("gen_ai.operation.name", e.operation),
        string("gen_ai.request.model", &e.model),
        int("gen_ai.usage.input_tokens", e.prompt_tokens),
        int("gen_ai.usage.output_tokens", e.completion_tokens),
        int("http.response.status_code", u64::from(e.status)),
        string("switchyard.request_id", &e.request_id),
        string("switchyard.key_id", &e.key_id),
        string("switchyard.deployment", &e.deployment),
        json!({"key": "switchyard.cost_usd", "value": {"doubleValue": e.cost_usd}}),
        json!({"key": "gen_ai.request.stream", "value": {"boolValue": e.is_stream}}),
        int("switchyard.attempts", e.attempts.len() as u64),
    ];
    if let Some(a) = served {
        attributes.push(string("gen_ai.response.model", &a.upstream_model));
        attributes.push(string("gen_ai.provider.name", a.provider));
        attributes.push(string("gen_ai.system", a.provider));
    }
    let failed = e.status >= 400;
    if failed {
        attributes.push(string("error.type", &e.status.to_string()));
    }
    let mut root = json!({
        "traceId": trace_id,
        "spanId": format!("{root_id:016x}"),
        "name": format!("{} {}", e.operation, e.model),
        "kind": KIND_SERVER,
        "startTimeUnixNano": e.span.0.to_string(),
        "endTimeUnixNano": e.span.1.to_string(),
        "attributes": attributes,
        "status": {"code": if failed { STATUS_ERROR } else { STATUS_OK }},
    });
    if let Some(p) = parent {
        root["parentSpanId"] = json!(format!("{p:016x}"));
    }
    let mut out = vec![root];
    for (i, a) in e.attempts.iter().enumerate() {
        out.push(attempt(e, a, i + 1, &trace_id, root_id));
    }
    out
}

fn attempt(e: &Event, a: &AttemptRecord, n: usize, trace_id: &str, parent: u64) -> Value {
    let mut attributes = vec![
        string("gen_ai.operation.name", e.operation),
        string("gen_ai.request.model", &a.upstream_model),
        string("gen_ai.provider.name", a.provider),
        string("gen_ai.system", a.provider),
        string("switchyard.endpoint", &a.endpoint),
        int("switchyard.attempt", n as u64),
    ];
    let status = match a.failure {
        Some(outcome) => {
            let kind = failure_name(outcome);
            attributes.push(string("error.type", kind));
            json!({"code": STATUS_ERROR, "message": kind})
        }
        None => {
            attributes.push(string("gen_ai.response.model", &a.upstream_model));
            json!({"code": STATUS_OK})
        }
    };
    // An attempt still open when the request ended (a refusal relayed as is) ends with it.
    let end = if a.span.1 == 0 { e.span.1 } else { a.span.1 };
    json!({
        "traceId": trace_id,
        "spanId": format!("{:016x}", fastrand::u64(1..)),
        "parentSpanId": format!("{parent:016x}"),
        "name": format!("attempt {}", a.endpoint),
        "kind": KIND_CLIENT,
        "startTimeUnixNano": a.span.0.to_string(),
        "endTimeUnixNano": end.to_string(),
        "attributes": attributes,
        "status": status,
    })
}

/// `error.type` of a failed attempt.
fn failure_name(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Ok => "ok",
        AttemptOutcome::Connect => "connect",
        AttemptOutcome::Timeout => "timeout",
        AttemptOutcome::RateLimited => "rate_limited",
        AttemptOutcome::ServerError => "server_error",
        AttemptOutcome::Credential => "credential",
        AttemptOutcome::ClientError => "client_error",
        AttemptOutcome::ContextExceeded => "context_exceeded",
        AttemptOutcome::Protocol => "protocol",
    }
}

fn string(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// OTLP JSON writes 64-bit integers as strings.
fn int(key: &str, value: u64) -> Value {
    json!({"key": key, "value": {"intValue": value.to_string()}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::event::TraceParent;

    fn event() -> Event {
        Event {
            request_id: Arc::from("r1"),
            key_id: Arc::from("alice"),
            model: Arc::from("m"),
            deployment: Arc::from("b/up-m"),
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
            is_stream: false,
            status: 200,
            latency_ms: 5,
            cost_usd: 0.0,
            timestamp: String::new(),
            operation: "chat",
            span: (100, 900),
            parent: Some(TraceParent {
                trace_id: 0xabc,
                span_id: 0xdef,
                flags: 1,
            }),
            attempts: vec![
                AttemptRecord {
                    endpoint: Arc::from("a"),
                    upstream_model: Arc::from("up-a"),
                    provider: "openai",
                    span: (110, 200),
                    failure: Some(AttemptOutcome::ServerError),
                },
                AttemptRecord {
                    endpoint: Arc::from("b"),
                    upstream_model: Arc::from("up-m"),
                    provider: "ollama",
                    span: (210, 0),
                    failure: None,
                },
            ],
        }
    }

    fn attr<'v>(span: &'v Value, key: &str) -> &'v Value {
        span["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == key))
            .map_or(&Value::Null, |kv| &kv["value"])
    }

    #[test]
    fn a_request_is_a_server_span_with_attempt_children() {
        let body = export(&[Arc::new(event())], "edge-1");
        let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(spans.len(), 3);
        let (root, first, second) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(root["traceId"], format!("{:032x}", 0xabc));
        assert_eq!(root["parentSpanId"], format!("{:016x}", 0xdef));
        assert_eq!(root["name"], "chat m");
        assert_eq!(attr(root, "gen_ai.response.model")["stringValue"], "up-m");
        assert_eq!(attr(root, "gen_ai.provider.name")["stringValue"], "ollama");
        assert_eq!(attr(root, "gen_ai.usage.output_tokens")["intValue"], "4");
        for child in [first, second] {
            assert_eq!(child["parentSpanId"], root["spanId"]);
            assert_eq!(child["traceId"], root["traceId"]);
        }
        assert_eq!(first["status"]["code"], STATUS_ERROR);
        assert_eq!(attr(first, "error.type")["stringValue"], "server_error");
        assert_eq!(second["endTimeUnixNano"], "900");
    }

    #[test]
    fn endpoints_get_the_traces_path() {
        let uri = traces_uri("http://127.0.0.1:4318/").map(|u| u.to_string());
        assert_eq!(uri.as_deref(), Ok("http://127.0.0.1:4318/v1/traces"));
        assert!(traces_uri("ftp://x").is_err());
        assert!(traces_uri("not a url").is_err());
    }
}
