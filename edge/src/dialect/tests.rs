//! Round trips over random canonical conversations: every request written in a dialect and
//! read back is the same conversation, and every answer and stream rendered in a dialect and
//! decoded again keeps its content, tool names and arguments, stop reason and usage.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::Render;
use super::canonical::{
    Answer, Collector, Message, Part, Request, Role, StopReason, Tool, ToolChoice, Usage,
};
use super::upstream::Decode;
use super::{anthropic, gemini, openai, responses};
use crate::upstream::sse::{self, Splitter};

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?\"\\\\é漢]{1,24}"
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,15}"
}

fn arguments() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        name(),
        prop_oneof![
            text().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ],
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn image() -> impl Strategy<Value = Part> {
    prop_oneof![
        "[A-Za-z0-9+/]{4,40}={0,2}".prop_map(|data| Part::Image {
            media_type: "image/png".into(),
            data
        }),
        "[a-z]{3,10}".prop_map(|host| Part::Image {
            media_type: String::new(),
            data: format!("https://{host}.example/cat.png")
        }),
    ]
}

/// One exchange: a user turn (answering the previous calls first), then an assistant turn that
/// may call tools.
fn exchange(turn: usize) -> impl Strategy<Value = (Vec<Part>, Vec<Part>)> {
    (
        prop::option::of(image()),
        text(),
        prop::option::of(text()),
        prop::collection::vec((name(), arguments()), 0..3),
    )
        .prop_map(move |(image, user_text, reply, calls)| {
            let mut user: Vec<Part> = image.into_iter().collect();
            user.push(Part::Text(user_text));
            let mut assistant: Vec<Part> = reply.into_iter().map(Part::Text).collect();
            for (i, (name, arguments)) in calls.into_iter().enumerate() {
                assistant.push(Part::ToolCall {
                    id: format!("call_{turn}_{i}"),
                    name,
                    arguments,
                });
            }
            if assistant.is_empty() {
                assistant.push(Part::Text("ok".into()));
            }
            (user, assistant)
        })
}

fn conversation() -> impl Strategy<Value = Request> {
    (
        prop::option::of(text()),
        prop::collection::vec(exchange(0), 1..4),
        prop::collection::vec((name(), prop::option::of(text())), 0..3),
        prop_oneof![
            Just(None),
            Just(Some(ToolChoice::Auto)),
            Just(Some(ToolChoice::Any)),
            Just(Some(ToolChoice::None)),
            name().prop_map(|n| Some(ToolChoice::Tool(n))),
        ],
        (1u64..100_000, prop::option::of(0.0f64..2.0), any::<bool>()),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(
            |(system, exchanges, tools, tool_choice, (max, temperature, stream), stop)| {
                let mut messages = Vec::new();
                let mut pending: Vec<String> = Vec::new();
                for (turn, (user, assistant)) in exchanges.into_iter().enumerate() {
                    // Results of the previous turn's calls open this user turn, in call order.
                    let mut parts: Vec<Part> = pending
                        .drain(..)
                        .map(|call_id| Part::ToolResult {
                            content: format!("result of {call_id}"),
                            call_id,
                            is_error: false,
                        })
                        .collect();
                    parts.extend(user);
                    messages.push(Message {
                        role: Role::User,
                        parts,
                    });
                    let assistant: Vec<Part> = assistant
                        .into_iter()
                        .map(|p| match p {
                            Part::ToolCall {
                                id,
                                name,
                                arguments,
                            } => {
                                let id = id.replacen("call_0", &format!("call_{turn}"), 1);
                                pending.push(id.clone());
                                Part::ToolCall {
                                    id,
                                    name,
                                    arguments,
                                }
                            }
                            p => p,
                        })
                        .collect();
                    messages.push(Message {
                        role: Role::Assistant,
                        parts: assistant,
                    });
                }
                Request {
                    model: "m".into(),
                    system: system.into_iter().collect(),
                    messages,
                    tools: tools
                        .into_iter()
                        .map(|(name, description)| Tool {
                            name,
                            description,
                            parameters: json!({"type": "object", "properties": {}}),
                        })
                        .collect(),
                    tool_choice,
                    max_tokens: Some(max),
                    temperature,
                    top_p: None,
                    top_k: None,
                    stop,
                    stream,
                    user: None,
                    json: None,
                }
            },
        )
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        prop::option::of(text()),
        prop::collection::vec((name(), arguments()), 0..3),
        prop_oneof![
            Just(StopReason::EndTurn),
            Just(StopReason::MaxTokens),
            Just(StopReason::ContentFilter),
        ],
        (0u64..10_000, 0u64..10_000, 0u64..100),
    )
        .prop_map(|(reply, calls, stop, (input, output, cached))| {
            let mut parts: Vec<Part> = reply.into_iter().map(Part::Text).collect();
            let has_calls = !calls.is_empty();
            for (i, (name, arguments)) in calls.into_iter().enumerate() {
                parts.push(Part::ToolCall {
                    id: format!("call_{i}"),
                    name,
                    arguments,
                });
            }
            Answer {
                id: "msg_test".into(),
                model: "m-up".into(),
                parts,
                // An answer that called tools stops to wait for their results.
                stop: if has_calls { StopReason::ToolUse } else { stop },
                usage: Usage {
                    input: input + cached,
                    output,
                    cached,
                },
            }
        })
}

/// The SSE `data:` payloads of a rendered stream.
fn payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut splitter = Splitter::default();
    splitter.feed(bytes::Bytes::copy_from_slice(bytes), &mut frames);
    frames
        .iter()
        .filter_map(|f| sse::data_of(f).map(<[u8]>::to_vec))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn requests_round_trip_through_every_dialect(request in conversation()) {
        // OpenAI chat bodies (inbound as sent by OpenAI clients, outbound to OpenAI upstreams).
        let back = openai::request::decode(&openai::request::encode(&request)).unwrap();
        prop_assert_eq!(&back, &request);
        // Anthropic Messages bodies (inbound from Anthropic clients, outbound to Anthropic).
        let back = anthropic::request::decode(&anthropic::request::encode(&request)).unwrap();
        prop_assert_eq!(&back, &request);
        // Anthropic in, OpenAI out, read back as the upstream would see it.
        let via = anthropic::request::decode(&anthropic::request::encode(&request)).unwrap();
        let back = openai::request::decode(&openai::request::encode(&via)).unwrap();
        prop_assert_eq!(&back, &request);
        // Gemini bodies (outbound), read back as a Gemini upstream would.
        let back = gemini::request::decode(&gemini::request::encode(&request), "m", request.stream)
            .unwrap();
        prop_assert_eq!(&back, &request);
        // Responses bodies (inbound from Codex and `client.responses`): Responses has no stop
        // sequences, so they are not carried.
        let responses_body = responses::request::encode(&request);
        let via = responses::request::decode(&responses_body).unwrap();
        let without_stop = Request { stop: Vec::new(), ..request.clone() };
        prop_assert_eq!(&via, &without_stop);
        // Responses in, every outbound out, read back as each upstream would.
        let back = openai::request::decode(&openai::request::encode(&via)).unwrap();
        prop_assert_eq!(&back, &without_stop);
        let back = anthropic::request::decode(&anthropic::request::encode(&via)).unwrap();
        prop_assert_eq!(&back, &without_stop);
        let back = gemini::request::decode(&gemini::request::encode(&via), "m", via.stream).unwrap();
        prop_assert_eq!(&back, &without_stop);
    }

    #[test]
    fn answers_round_trip_through_every_dialect(answer in answer()) {
        let back = openai::response::decode(
            openai::response::encode(&answer, 0).to_string().as_bytes(),
        )
        .unwrap();
        prop_assert_eq!(&back, &answer);
        let back =
            anthropic::response::decode(anthropic::response::encode(&answer).to_string().as_bytes())
                .unwrap();
        prop_assert_eq!(&back, &answer);
        let back =
            gemini::response::decode(gemini::response::encode(&answer).to_string().as_bytes())
                .unwrap();
        prop_assert_eq!(&back, &answer);
        let back = responses::response::decode(
            responses::response::encode(&answer, 0).to_string().as_bytes(),
        )
        .unwrap();
        prop_assert_eq!(&back, &Answer { id: format!("resp_{}", answer.id), ..answer.clone() });
    }

    #[test]
    fn streams_round_trip_through_every_dialect(answer in answer()) {
        // Anthropic's event sequence, as the edge writes it for Anthropic clients, read back as
        // the edge reads an Anthropic upstream.
        let mut encoder = anthropic::stream::Encoder::new("m-up".into());
        let mut out = Vec::new();
        for event in answer.events() {
            encoder.event(event, &mut out);
        }
        encoder.end(&mut out);
        let mut decoder = anthropic::stream::Decoder::default();
        let mut collector = Collector::default();
        let mut events = Vec::new();
        for data in payloads(&out) {
            decoder.decode(&data, &mut events);
        }
        events.drain(..).for_each(|e| collector.push(e));
        prop_assert_eq!(&collector.finish(), &answer);
        // OpenAI chunks, as the edge writes them for translated upstreams, read back as the
        // edge reads an OpenAI upstream.
        let mut encoder = openai::stream::Encoder::new("msg_test".into(), "m-up".into(), 0);
        let mut out = Vec::new();
        for event in answer.events() {
            encoder.encode(&event, &mut out);
        }
        let mut decoder = openai::stream::Decoder::default();
        let mut collector = Collector::default();
        for data in payloads(&out) {
            decoder.decode(&data, &mut events);
        }
        events.drain(..).for_each(|e| collector.push(e));
        prop_assert_eq!(&collector.finish(), &answer);
        // Gemini chunks, read as the edge reads a Gemini upstream (no end event: the close).
        let mut decoder = gemini::stream::Decoder::default();
        let mut collector = Collector::default();
        for chunk in gemini_chunks(&answer) {
            decoder.decode(chunk.to_string().as_bytes(), &mut events);
        }
        prop_assert!(decoder.ends_at_close());
        decoder.close(&mut events);
        events.drain(..).for_each(|e| collector.push(e));
        prop_assert_eq!(&collector.finish(), &answer);
        // The Responses event sequence, as the edge writes it for Responses clients.
        let streamed = responses_stream(&answer);
        prop_assert_eq!(&streamed, &Answer { id: streamed.id.clone(), model: "m-up".into(), ..answer.clone() });
    }

    #[test]
    fn no_dialect_panics_on_arbitrary_json(value in arbitrary_json()) {
        let _ = openai::request::decode(&value);
        let _ = anthropic::request::decode(&value);
        let _ = responses::request::decode(&value);
        let _ = gemini::request::decode(&value, "m", false);
        for op in [super::ollama::inbound::ApiOp::Chat, super::ollama::inbound::ApiOp::Generate,
                   super::ollama::inbound::ApiOp::Embed] {
            let _ = super::ollama::inbound::request(op, &value);
        }
        let bytes = value.to_string();
        let _ = openai::response::decode(bytes.as_bytes());
        let _ = anthropic::response::decode(bytes.as_bytes());
        let _ = responses::response::decode(bytes.as_bytes());
        let _ = gemini::response::decode(bytes.as_bytes());
        let mut events = Vec::new();
        gemini::stream::Decoder::default().decode(bytes.as_bytes(), &mut events);
        openai::stream::Decoder::default().decode(bytes.as_bytes(), &mut events);
        anthropic::stream::Decoder::default().decode(bytes.as_bytes(), &mut events);
        let mut out = Vec::new();
        let mut encoder = anthropic::stream::Encoder::new("m".into());
        for e in events.iter().cloned() {
            encoder.event(e, &mut out);
        }
        encoder.end(&mut out);
        let mut encoder = responses::stream::Encoder::new("m".into(), 0);
        for e in events {
            encoder.event(e, &mut out);
        }
        encoder.end(&mut out);
    }
}

/// `answer` as a Gemini upstream streams it: a chunk per part (text in two halves), then one
/// with the finish reason and the usage.
fn gemini_chunks(answer: &Answer) -> Vec<Value> {
    let whole = gemini::response::encode(answer);
    let mut chunks = Vec::new();
    for part in whole["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
    {
        let pieces = match part["text"].as_str() {
            Some(text) => {
                let mid = text
                    .char_indices()
                    .nth(text.chars().count() / 2)
                    .map_or(0, |(i, _)| i);
                vec![json!({"text": &text[..mid]}), json!({"text": &text[mid..]})]
            }
            None => vec![part.clone()],
        };
        for piece in pieces {
            chunks.push(
                json!({"candidates": [{"content": {"role": "model", "parts": [piece]}}],
                               "responseId": answer.id, "modelVersion": answer.model}),
            );
        }
    }
    chunks.push(json!({
        "candidates": [{"content": {"role": "model", "parts": []},
                        "finishReason": whole["candidates"][0]["finishReason"]}],
        "usageMetadata": whole["usageMetadata"], "responseId": answer.id,
        "modelVersion": answer.model,
    }));
    chunks
}

/// `answer` streamed as Responses events, read back: the final event's response object, after
/// checking the numbering and that the deltas add up to the `.done` texts.
fn responses_stream(answer: &Answer) -> Answer {
    let mut encoder = responses::stream::Encoder::new("m-up".into(), 0);
    let mut out = Vec::new();
    for event in answer.events() {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    let events: Vec<Value> = payloads(&out)
        .iter()
        .map(|d| serde_json::from_slice(d).unwrap())
        .collect();
    let mut deltas = String::new();
    let mut done = String::new();
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], n, "{e}");
        match e["type"].as_str().unwrap() {
            "response.output_text.delta" | "response.function_call_arguments.delta" => {
                deltas.push_str(e["delta"].as_str().unwrap());
            }
            "response.output_text.done" => done.push_str(e["text"].as_str().unwrap()),
            "response.function_call_arguments.done" => {
                done.push_str(e["arguments"].as_str().unwrap());
            }
            _ => {}
        }
    }
    assert_eq!(deltas, done);
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events[1]["type"], "response.in_progress");
    let last = events.last().unwrap();
    assert!(
        last["type"] == "response.completed" || last["type"] == "response.incomplete",
        "{last}"
    );
    responses::response::decode_value(&last["response"]).unwrap()
}

/// JSON of any shape, biased towards the keys dialects read.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("model".to_owned()),
        Just("messages".to_owned()),
        Just("content".to_owned()),
        Just("role".to_owned()),
        Just("type".to_owned()),
        Just("tools".to_owned()),
        Just("choices".to_owned()),
        Just("delta".to_owned()),
        Just("tool_calls".to_owned()),
        Just("system".to_owned()),
        name(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just("user".to_owned()), Just("tool_use".to_owned()), text()]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn an_anthropic_stream_has_the_documented_sequence() {
    let answer = Answer {
        id: "x".into(),
        model: "m".into(),
        parts: vec![
            Part::Text("I".into()),
            Part::ToolCall {
                id: "toolu_1".into(),
                name: "f".into(),
                arguments: json!({"a": 1}),
            },
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input: 3,
            output: 4,
            cached: 0,
        },
    };
    let mut encoder = anthropic::stream::Encoder::new("m".into());
    let mut out = Vec::new();
    for event in answer.events() {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    let text = String::from_utf8(out).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(text.contains(r#""stop_reason":"tool_use""#), "{text}");
    assert!(text.contains(r#""type":"input_json_delta""#), "{text}");
    // Every data line names the event it belongs to.
    for pair in text.split("\n\n").filter(|f| !f.is_empty()) {
        let mut lines = pair.lines();
        let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
        let data: Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], event);
    }
}

#[test]
fn gemini_endpoints_speak_generate_content_unless_based_on_its_openai_surface() {
    use super::Outbound;
    let native = "https://generativelanguage.googleapis.com/v1beta";
    assert_eq!(Outbound::gemini(native), Outbound::Gemini);
    assert_eq!(
        Outbound::gemini(&format!("{native}/openai/")),
        Outbound::OpenAi
    );
    let uri = gemini::request::uri(native, "models/gemini-2.5-flash", true).unwrap();
    assert_eq!(
        uri.to_string(),
        format!("{native}/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    );
}

#[test]
fn codex_freeform_tools_become_function_tools_taking_their_input() {
    let body = json!({
        "model": "m", "store": false, "stream": true, "parallel_tool_calls": false,
        "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "medium"},
        "tools": [{"type": "custom", "name": "apply_patch", "description": "Edit files",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: patch"}}],
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"type": "custom_tool_call", "call_id": "call_1", "name": "apply_patch",
             "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_1", "output": "done"},
        ],
    });
    let request = responses::request::decode(&body).unwrap();
    let tool = &request.tools[0];
    assert_eq!(tool.name, "apply_patch");
    assert_eq!(tool.parameters["properties"]["input"]["type"], "string");
    assert!(
        tool.description
            .as_deref()
            .unwrap()
            .contains("start: patch")
    );
    assert_eq!(
        request.messages[1].parts,
        [Part::ToolCall {
            id: "call_1".into(),
            name: "apply_patch".into(),
            arguments: json!({"input": "*** Begin Patch"}),
        }]
    );
    assert!(matches!(&request.messages[2].parts[0],
                     Part::ToolResult { call_id, content, .. } if call_id == "call_1" && content == "done"));
}

#[test]
fn rfc3339_formats_utc() {
    assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(super::rfc3339(1_709_209_845), "2024-02-29T12:30:45Z");
}
