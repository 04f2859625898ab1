//! Table tests of the Ollama translation.

use serde_json::json;

use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::Value;

use super::*;
use crate::upstream::relay::ByteStream;
use crate::upstream::sse::{self, Usage};

fn chat(body: Value) -> Result<Value, Refusal> {
    chat_request(body.to_string().as_bytes()).map(|r| serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn chat_requests_translate() {
    // (OpenAI request, expected native request)
    let cases: Vec<(Value, Value)> = vec![
        (
            json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": false}),
        ),
        (
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                   "max_completion_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 7,
                   "stop": "END", "frequency_penalty": 0.5, "presence_penalty": 0.25, "n": 1,
                   "messages": [{"role": "developer", "content": "be brief"}]}),
            json!({"model": "m", "stream": true,
                   "messages": [{"role": "system", "content": "be brief"}],
                   "options": {"num_predict": 50, "temperature": 0.2, "top_p": 0.9, "seed": 7,
                               "stop": ["END"], "frequency_penalty": 0.5, "presence_penalty": 0.25}}),
        ),
        (
            json!({"model": "m", "max_tokens": 9, "stop": ["a", "b"], "options": {"num_ctx": 8192, "num_predict": 1},
                   "keep_alive": "5m", "response_format": {"type": "json_object"},
                   "messages": [{"role": "user", "content": [
                       {"type": "text", "text": "what is"},
                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                       {"type": "text", "text": "this?"}]}]}),
            json!({"model": "m", "stream": false, "keep_alive": "5m", "format": "json",
                   "messages": [{"role": "user", "content": "what is\nthis?", "images": ["iVBORw0K"]}],
                   "options": {"num_ctx": 8192, "num_predict": 9, "stop": ["a", "b"]}}),
        ),
        (
            json!({"model": "m", "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
                   "messages": []}),
            json!({"model": "m", "stream": false, "messages": [], "format": {"type": "object"}}),
        ),
        // a tool-call round trip: tools, the assistant's call, the tool's result
        (
            json!({"model": "m", "tool_choice": "auto", "parallel_tool_calls": true,
                   "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                              "parameters": {"type": "object"}, "strict": true}}],
                   "messages": [
                       {"role": "user", "content": "weather?"},
                       {"role": "assistant", "content": null, "tool_calls": [
                           {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                       {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}]}),
            json!({"model": "m", "stream": false,
                   "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}}}],
                   "messages": [
                       {"role": "user", "content": "weather?"},
                       {"role": "assistant", "content": "", "tool_calls": [
                           {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                       {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_a"}]}),
        ),
        // tool_choice none: no tools offered
        (
            json!({"model": "m", "tool_choice": "none", "messages": [],
                   "tools": [{"type": "function", "function": {"name": "f"}}]}),
            json!({"model": "m", "stream": false, "messages": []}),
        ),
    ];
    for (openai, native) in cases {
        assert_eq!(chat(openai.clone()).unwrap(), native, "{openai}");
    }
}

#[test]
fn unknown_fields_are_dropped_and_named() {
    let body = json!({"model": "m", "messages": [], "user": "u1", "logprobs": true,
                      "tool_choice": "required",
                      "tools": [{"type": "code_interpreter"}]});
    let r = chat_request(body.to_string().as_bytes()).unwrap();
    let mut dropped = r.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        vec![
            "logprobs",
            "tool_choice",
            "tools[type=code_interpreter]",
            "user"
        ]
    );
    let native: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(native.get("tools").is_none());
}

#[test]
fn bad_chat_requests_are_refused_with_the_param() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": "hi"}), "messages"),
        (
            json!({"model": "m", "messages": [{"content": "no role"}]}),
            "messages",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            "messages",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c", "function": {"name": "f", "arguments": "not json"}}]}]}),
            "messages",
        ),
        (json!({"model": "m", "messages": [], "stop": 3}), "stop"),
        (
            json!({"model": "m", "messages": [], "response_format": {"type": "xml"}}),
            "response_format",
        ),
        (
            json!({"model": "m", "messages": [], "tools": [{"function": {}}]}),
            "tools",
        ),
    ];
    for (body, param) in cases {
        assert_eq!(
            chat(body.clone()).map(|_| ()).unwrap_err().param,
            param,
            "{body}"
        );
    }
}

#[test]
fn chat_answers_translate() {
    let native = json!({"model": "llama3.2:latest", "created_at": "2024-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "Hi!"}, "done": true, "done_reason": "stop",
        "total_duration": 5, "prompt_eval_count": 26, "eval_count": 4});
    let t = chat_response(
        native.to_string().as_bytes(),
        "x",
        1_700_000_000,
        &mut Ids::new(1),
    )
    .unwrap();
    assert_eq!(
        t.usage,
        Usage {
            prompt_tokens: 26,
            completion_tokens: 4
        }
    );
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id.len() > 20, "{id}");
    assert_eq!(
        v,
        json!({"id": id, "object": "chat.completion", "created": 1_700_000_000,
               "model": "llama3.2:latest", "system_fingerprint": "fp_ollama",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
                            "logprobs": null, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 26, "completion_tokens": 4, "total_tokens": 30}})
    );
    let text = String::from_utf8(t.body.to_vec()).unwrap();
    assert!(
        text.starts_with("{\"id\":\"chatcmpl-"),
        "OpenAI's field order: {text}"
    );

    // tool calls: arguments become a string, ids are generated, finish_reason tool_calls
    let native = json!({"model": "m", "message": {"role": "assistant", "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                       {"function": {"name": "now", "arguments": {}}}]},
        "done": true, "done_reason": "stop"});
    let t = chat_response(native.to_string().as_bytes(), "x", 1, &mut Ids::new(2)).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(calls[1]["function"]["arguments"], "{}");
    assert!(calls[0].get("index").is_none());
    let (a, b) = (
        calls[0]["id"].as_str().unwrap(),
        calls[1]["id"].as_str().unwrap(),
    );
    assert!(a.starts_with("call_") && a != b);
    assert_eq!(t.usage, Usage::default(), "omitted counts are zero");

    // length, and the model from the request when the answer names none
    let native = json!({"message": {"content": "cut"}, "done": true, "done_reason": "length",
                        "eval_count": 10});
    let t = chat_response(native.to_string().as_bytes(), "asked", 1, &mut Ids::new(3)).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["model"], "asked");
    assert_eq!(v["usage"]["total_tokens"], 10);

    for bad in ["not json", "{\"error\":\"boom\"}", "{\"done\":true}", "[]"] {
        assert!(
            chat_response(bad.as_bytes(), "m", 1, &mut Ids::new(4)).is_none(),
            "{bad}"
        );
    }
}

fn events(sse: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(sse).unwrap();
    assert!(text.ends_with("\n\n"), "{text}");
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

fn stream(lines: &[Value]) -> Vec<Value> {
    let mut s = NativeStream::chat("asked", 1_700_000_000, Ids::new(9));
    let mut out = Vec::new();
    for line in lines {
        s.line(line.to_string().as_bytes(), &mut out);
    }
    assert!(s.finished());
    events(&out)
}

#[test]
fn stream_lines_translate_to_chunks() {
    let got = stream(&[
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": false}),
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": "Hel"}, "done": false}),
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": "lo"}, "done": false}),
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": true,
               "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 2}),
        json!({"model": "ignored after the end", "done": true}),
    ]);
    let deltas: Vec<Value> = got
        .iter()
        .map(|e| e["choices"][0]["delta"].clone())
        .collect();
    assert_eq!(
        deltas,
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Hel"}),
            json!({"content": "lo"}),
            json!({}),
            Value::Null,
            Value::Null,
        ]
    );
    let id = got[0]["id"].as_str().unwrap();
    for e in &got[..5] {
        assert_eq!(e["id"], id);
        assert_eq!(e["model"], "llama3.2");
        assert_eq!(e["created"], 1_700_000_000);
    }
    assert_eq!(got[0]["object"], "chat.completion.chunk");
    assert_eq!(got[2]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(got[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(got[3].get("usage"), None);
    assert_eq!(got[4]["choices"], json!([]));
    assert_eq!(
        got[4]["usage"],
        json!({"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11})
    );
    assert_eq!(got[5], json!("[DONE]"));
    // the usage chunk is the one the relay meters (and strips when unasked)
    let usage_event = format!("data: {}\n\n", got[4]);
    assert!(matches!(
        sse::classify(usage_event.as_bytes()),
        sse::EventKind::Usage {
            only_usage: true,
            usage: Usage {
                prompt_tokens: 9,
                completion_tokens: 2
            }
        }
    ));
}

#[test]
fn streamed_tool_calls_get_indexes_and_ids() {
    let got = stream(&[
        json!({"message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "a", "arguments": {"x": 1}}}]}, "done": false}),
        json!({"message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "b", "arguments": {}}}]}, "done": false}),
        json!({"message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"}),
    ]);
    let first = &got[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert!(first.get("content").is_none());
    assert_eq!(first["tool_calls"][0]["index"], 0);
    assert_eq!(first["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
    let second = &got[1]["choices"][0]["delta"];
    assert!(second.get("role").is_none());
    assert_eq!(second["tool_calls"][0]["index"], 1);
    assert_eq!(second["tool_calls"][0]["function"]["name"], "b");
    assert_ne!(first["tool_calls"][0]["id"], second["tool_calls"][0]["id"]);
    assert_eq!(got[2]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(got[2]["model"], "asked", "no model named upstream");
}

#[test]
fn stream_errors_end_with_an_error_event_and_done() {
    // (lines, expected code, expected message)
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec![
                r#"{"message":{"content":"a"},"done":false}"#,
                r#"{"error":"out of memory"}"#,
            ],
            "upstream_error",
            "out of memory",
        ),
        (
            vec!["{not json"],
            "upstream_malformed_stream",
            "the upstream sent a malformed stream line",
        ),
    ];
    for (lines, code, message) in cases {
        let mut s = NativeStream::chat("m", 1, Ids::new(1));
        let mut out = Vec::new();
        for line in &lines {
            s.line(line.as_bytes(), &mut out);
        }
        s.line(br#"{"message":{"content":"late"},"done":false}"#, &mut out);
        assert!(s.finished());
        let got = events(&out);
        let error = &got[got.len() - 2]["error"];
        assert_eq!(error["code"], code);
        assert_eq!(error["message"], message);
        assert_eq!(got[got.len() - 1], json!("[DONE]"));
        assert!(!String::from_utf8_lossy(&out).contains("late"));
    }
}

fn ok(s: &str) -> Result<Bytes, hyper::Error> {
    Ok(Bytes::copy_from_slice(s.as_bytes()))
}

#[tokio::test]
async fn ndjson_becomes_sse_as_it_arrives_across_any_split() {
    let body = concat!(
        r#"{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}"#,
        "\n",
        r#"{"model":"m","message":{"role":"assistant","content":"lo"},"done":false}"#,
        "\r\n",
        r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":1,"eval_count":2}"#,
    );
    let want = {
        let mut s = NativeStream::chat("m", 5, Ids::new(1));
        let mut out = Vec::new();
        for line in body.split('\n') {
            s.line(line.as_bytes(), &mut out);
        }
        out
    };
    for cut in 0..body.len() {
        let chunks = vec![ok(&body[..cut]), ok(&body[cut..])];
        let upstream: ByteStream = Box::pin(futures::stream::iter(chunks));
        let sse = sse_from_ndjson(upstream, NativeStream::chat("m", 5, Ids::new(1)), 1 << 20);
        let parts: Vec<Bytes> = sse.map(|c| c.unwrap()).collect().await;
        assert!(parts.iter().all(|p| !p.is_empty()), "no empty writes");
        assert_eq!(parts.concat(), want, "cut at {cut}");
    }
    // one line per chunk: one client write per line, nothing held back
    let lines: Vec<_> = body.split_inclusive('\n').map(ok).collect();
    let upstream: ByteStream = Box::pin(futures::stream::iter(lines));
    let sse = sse_from_ndjson(upstream, NativeStream::chat("m", 5, Ids::new(1)), 1 << 20);
    let parts: Vec<Bytes> = sse.map(|c| c.unwrap()).collect().await;
    assert_eq!(parts.len(), 3);
    assert!(String::from_utf8_lossy(&parts[0]).contains("Hel"));
}

#[tokio::test]
async fn an_overlong_line_ends_the_stream() {
    let upstream: ByteStream = Box::pin(futures::stream::iter(vec![
        ok("{\"message\":{\"content\":\""),
        ok(&"x".repeat(100)),
        ok("never read"),
    ]));
    let sse = sse_from_ndjson(upstream, NativeStream::chat("m", 5, Ids::new(1)), 64);
    let parts: Vec<Bytes> = sse.map(|c| c.unwrap()).collect().await;
    let text = String::from_utf8(parts.concat()).unwrap();
    assert!(text.contains("upstream_response_too_large"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn text_completions_translate() {
    // (OpenAI request, expected native request or refused param)
    let cases: Vec<(Value, Result<Value, &str>)> = vec![
        (
            json!({"model": "m", "prompt": "Once", "max_tokens": 5, "stop": "\n", "suffix": "end",
                   "echo": false, "logprobs": null, "stream": true}),
            Ok(
                json!({"model": "m", "prompt": "Once", "suffix": "end", "stream": true,
                      "options": {"num_predict": 5, "stop": ["\n"]}}),
            ),
        ),
        (
            json!({"model": "m", "prompt": ["only one"]}),
            Ok(json!({"model": "m", "prompt": "only one", "stream": false})),
        ),
        (json!({"model": "m", "prompt": ["a", "b"]}), Err("prompt")),
        (json!({"model": "m", "prompt": [1, 2, 3]}), Err("prompt")),
        (json!({"model": "m"}), Err("prompt")),
    ];
    for (openai, want) in cases {
        let got = completion_request(openai.to_string().as_bytes())
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .map_err(|e| e.param);
        assert_eq!(got, want, "{openai}");
    }

    let native = json!({"model": "m", "created_at": "2024-01-01T00:00:00Z", "response": "upon a time",
                        "done": true, "done_reason": "length", "context": [1, 2],
                        "prompt_eval_count": 2, "eval_count": 5});
    let t = completion_response(native.to_string().as_bytes(), "x", 7, &mut Ids::new(1)).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("cmpl-"), "{id}");
    assert_eq!(
        v,
        json!({"id": id, "object": "text_completion", "created": 7, "model": "m",
               "system_fingerprint": "fp_ollama",
               "choices": [{"text": "upon a time", "index": 0, "logprobs": null, "finish_reason": "length"}],
               "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}})
    );
    assert!(completion_response(b"{\"message\":{}}", "x", 7, &mut Ids::new(1)).is_none());

    let mut s = NativeStream::completion("asked", 7, Ids::new(2));
    let mut out = Vec::new();
    for line in [
        json!({"model": "m", "response": "up", "done": false}),
        json!({"model": "m", "response": "", "done": false}),
        json!({"model": "m", "response": "on", "done": false}),
        json!({"model": "m", "response": "", "done": true, "done_reason": "stop",
               "prompt_eval_count": 2, "eval_count": 2}),
    ] {
        s.line(line.to_string().as_bytes(), &mut out);
    }
    let got = events(&out);
    let texts: Vec<Value> = got
        .iter()
        .map(|e| e["choices"][0]["text"].clone())
        .collect();
    assert_eq!(
        texts,
        vec![
            json!("up"),
            json!("on"),
            json!(""),
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(got[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(got[3]["choices"], json!([]));
    assert_eq!(got[3]["usage"]["total_tokens"], 4);
    for e in &got[..4] {
        assert_eq!(e["object"], "text_completion");
        assert!(e["id"].as_str().unwrap().starts_with("cmpl-"));
    }
}

#[test]
fn embeddings_translate_both_ways() {
    let r = embed_request(
        json!({"model": "nomic", "input": ["a", "b"], "encoding_format": "base64", "user": "u", "dimensions": 2})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(r.base64);
    assert_eq!(r.dropped, vec!["user"]);
    let native: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        native,
        json!({"model": "nomic", "input": ["a", "b"], "dimensions": 2})
    );
    for (input, ok) in [
        (json!("one"), true),
        (json!([]), false),
        (json!([1, 2, 3]), false),
        (json!([[1, 2]]), false),
    ] {
        let got = embed_request(json!({"model": "m", "input": input}).to_string().as_bytes());
        assert_eq!(got.is_ok(), ok, "{input}");
        if let Err(e) = got {
            assert_eq!(e.param, "input");
        }
    }

    let answer = json!({"model": "nomic", "embeddings": [[0.5, -1.0], [0.25, 2.0]],
                        "total_duration": 1, "prompt_eval_count": 8});
    let t = embed_response(answer.to_string().as_bytes(), "x", false).unwrap();
    assert_eq!(
        t.usage,
        Usage {
            prompt_tokens: 8,
            completion_tokens: 0
        }
    );
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        v,
        json!({"object": "list", "model": "nomic",
               "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
                        {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]}],
               "usage": {"prompt_tokens": 8, "total_tokens": 8}})
    );
    let t = embed_response(answer.to_string().as_bytes(), "x", true).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    // 0.5f32 = 00 00 00 3f, -1.0f32 = 00 00 80 bf
    assert_eq!(v["data"][0]["embedding"], "AAAAPwAAgL8=");
    assert!(embed_response(b"{\"error\":\"x\"}", "m", false).is_none());
}

#[test]
fn errors_become_openai_errors() {
    // (status, native body, type, code, message)
    let cases: Vec<(u16, &str, &str, Value, &str)> = vec![
        (
            404,
            r#"{"error":"model 'nope' not found"}"#,
            "invalid_request_error",
            json!("model_not_found"),
            "model 'nope' not found",
        ),
        (
            400,
            r#"{"error":"invalid options"}"#,
            "invalid_request_error",
            Value::Null,
            "invalid options",
        ),
        (
            500,
            "",
            "api_error",
            Value::Null,
            "the upstream answered 500",
        ),
        (
            502,
            "bad gateway\n",
            "api_error",
            Value::Null,
            "bad gateway",
        ),
        (
            429,
            r#"{"error":{"message":"slow down"}}"#,
            "rate_limit_error",
            json!("rate_limit_exceeded"),
            "slow down",
        ),
    ];
    for (status, body, kind, code, message) in cases {
        let v: Value = serde_json::from_slice(&error_body(status, body.as_bytes())).unwrap();
        assert_eq!(v["error"]["type"], kind, "{status}");
        assert_eq!(v["error"]["code"], code, "{status}");
        assert_eq!(v["error"]["message"], message, "{status}");
        assert!(v["error"].get("param").is_some());
    }
}

#[test]
fn a_missing_surface_is_told_from_a_missing_model() {
    let cases: [(&str, bool); 5] = [
        ("404 page not found", true),
        ("<html><body>Not Found</body></html>", true),
        ("", true),
        (r#"{"error":"not found"}"#, true),
        (
            r#"{"error":{"message":"model \"x\" not found, try pulling it first","type":"api_error","param":null,"code":null}}"#,
            false,
        ),
    ];
    for (body, absent) in cases {
        assert_eq!(surface_absent(body.as_bytes()), absent, "{body}");
    }
}

#[test]
fn native_uris_and_surface_memory() {
    let cases = [
        (
            "http://h:11434/v1",
            NativeOp::Chat,
            "http://h:11434/api/chat",
        ),
        (
            "http://h:11434/v1/",
            NativeOp::Embed,
            "http://h:11434/api/embed",
        ),
        ("http://h:11434", NativeOp::Chat, "http://h:11434/api/chat"),
        (
            "https://p.example/ollama/v1",
            NativeOp::Chat,
            "https://p.example/ollama/api/chat",
        ),
    ];
    for (base, op, want) in cases {
        assert_eq!(native_uri(base, op).unwrap().to_string(), want);
    }
    assert_eq!(
        NativeOp::of(Operation::Completions),
        Some(NativeOp::Generate)
    );

    let s = Surfaces::default();
    let base: Arc<str> = Arc::from("http://h:11434/v1");
    assert!(!s.go_native(&base, NativeOp::Chat, 0));
    s.mark_absent(&base, NativeOp::Chat, 1_000);
    // (op, now, native?)
    let steps = [
        (NativeOp::Chat, 1_000, true),
        (NativeOp::Chat, 1_000 + REPROBE_AFTER_MS - 1, true),
        (NativeOp::Chat, 1_000 + REPROBE_AFTER_MS, false),
        (NativeOp::Embed, 1_000, false),
    ];
    for (op, now, native) in steps {
        assert_eq!(s.go_native(&base, op, now), native, "{op:?} at {now}");
    }
    assert!(!s.go_native("http://other/v1", NativeOp::Chat, 1_000));
}
