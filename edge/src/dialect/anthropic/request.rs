//! Anthropic Messages requests as canonical requests, and back.

use serde_json::{Map, Value, json};

use crate::dialect::canonical::{Message, Part, Request, Role, Tool, ToolChoice};

/// `max_tokens` sent to an Anthropic upstream when the client gave none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The canonical request of a Messages body; `Err` says what is wrong, naming the field.
pub fn decode(body: &Value) -> Result<Request, String> {
    let object = body.as_object().ok_or("the body must be a JSON object")?;
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .ok_or("model: Field required")?;
    let mut request = Request {
        model: model.to_owned(),
        max_tokens: object.get("max_tokens").and_then(Value::as_u64),
        temperature: object.get("temperature").and_then(Value::as_f64),
        top_p: object.get("top_p").and_then(Value::as_f64),
        top_k: object.get("top_k").and_then(Value::as_u64),
        stream: object.get("stream").and_then(Value::as_bool) == Some(true),
        user: body["metadata"]["user_id"].as_str().map(str::to_owned),
        ..Request::default()
    };
    match object.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => request.system.push(s.clone()),
        Some(Value::Array(blocks)) => {
            let text: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            request.system.push(text);
        }
        Some(_) => return Err("system: must be a string or a list of text blocks".into()),
    }
    if let Some(stops) = object.get("stop_sequences").and_then(Value::as_array) {
        request.stop = stops
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    for (i, tool) in object
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = tool["name"]
            .as_str()
            .ok_or_else(|| format!("tools.{i}.name: Field required"))?;
        // Server tools (web search, code execution, …) run at Anthropic, not here.
        let Some(schema) = tool.get("input_schema") else {
            return Err(format!(
                "tools.{i}: tool '{name}' has no input_schema; server tools are not supported"
            ));
        };
        request.tools.push(Tool {
            name: name.to_owned(),
            description: tool["description"].as_str().map(str::to_owned),
            parameters: schema.clone(),
        });
    }
    if let Some(choice) = object.get("tool_choice") {
        request.tool_choice = Some(match choice["type"].as_str() {
            Some("auto") => ToolChoice::Auto,
            Some("any") => ToolChoice::Any,
            Some("none") => ToolChoice::None,
            Some("tool") => ToolChoice::Tool(
                choice["name"]
                    .as_str()
                    .ok_or("tool_choice.name: Field required")?
                    .to_owned(),
            ),
            _ => return Err("tool_choice.type: must be auto, any, none or tool".into()),
        });
    }
    let messages = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    for (i, m) in messages.iter().enumerate() {
        let role = match m["role"].as_str() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => return Err(format!("messages.{i}.role: must be user or assistant")),
        };
        let parts = match &m["content"] {
            Value::String(s) => vec![Part::Text(s.clone())],
            Value::Array(blocks) => blocks
                .iter()
                .enumerate()
                .filter_map(|(j, b)| decode_block(b).transpose().map(|r| (j, r)))
                .map(|(j, r)| r.map_err(|e| format!("messages.{i}.content.{j}: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(format!("messages.{i}.content: Field required")),
        };
        request.messages.push(Message { role, parts });
    }
    Ok(request)
}

/// One content block; `Ok(None)` for blocks with nothing to carry (redacted thinking).
fn decode_block(b: &Value) -> Result<Option<Part>, String> {
    let text = |field: &str| b[field].as_str().unwrap_or_default().to_owned();
    Ok(Some(match b["type"].as_str() {
        Some("text") => Part::Text(text("text")),
        Some("image") => {
            let source = &b["source"];
            match source["type"].as_str() {
                Some("base64") => Part::Image {
                    media_type: source["media_type"].as_str().unwrap_or_default().to_owned(),
                    data: source["data"].as_str().unwrap_or_default().to_owned(),
                },
                Some("url") => Part::Image {
                    media_type: String::new(),
                    data: source["url"].as_str().unwrap_or_default().to_owned(),
                },
                _ => return Err("image source must be base64 or url".into()),
            }
        }
        Some("tool_use") => Part::ToolCall {
            id: text("id"),
            name: text("name"),
            arguments: b.get("input").cloned().unwrap_or_else(|| json!({})),
        },
        Some("tool_result") => Part::ToolResult {
            call_id: text("tool_use_id"),
            content: match &b["content"] {
                Value::String(s) => s.clone(),
                Value::Array(blocks) => blocks.iter().filter_map(|c| c["text"].as_str()).collect(),
                _ => String::new(),
            },
            is_error: b["is_error"].as_bool() == Some(true),
        },
        Some("thinking") => Part::Thinking {
            text: text("thinking"),
            signature: text("signature"),
        },
        Some("redacted_thinking") => return Ok(None),
        Some(other) => return Err(format!("block type '{other}' is not supported")),
        None => return Err("type: Field required".into()),
    }))
}

/// The Messages body of a canonical request (`max_tokens` defaulted when absent).
pub fn encode(request: &Request) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert(
        "max_tokens".into(),
        json!(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if !request.system.is_empty() {
        body.insert("system".into(), json!(request.system.join("\n\n")));
    }
    let messages: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| !m.parts.is_empty())
        .map(|m| {
            json!({
                "role": if m.role == Role::User { "user" } else { "assistant" },
                "content": m.parts.iter().map(encode_part).collect::<Vec<_>>(),
            })
        })
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::Any => json!({"type": "any"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    for (key, value) in [
        ("temperature", request.temperature.map(|v| json!(v))),
        ("top_p", request.top_p.map(|v| json!(v))),
        ("top_k", request.top_k.map(|v| json!(v))),
    ] {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
}

/// One canonical part as a content block.
pub fn encode_part(part: &Part) -> Value {
    match part {
        Part::Text(t) => json!({"type": "text", "text": t}),
        Part::Image { media_type, data } if media_type.is_empty() => {
            json!({"type": "image", "source": {"type": "url", "url": data}})
        }
        Part::Image { media_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => json!({"type": "tool_use", "id": id, "name": name, "input": arguments}),
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            let mut block =
                json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
            if *is_error {
                block["is_error"] = json!(true);
            }
            block
        }
        Part::Thinking { text, signature } => {
            json!({"type": "thinking", "thinking": text, "signature": signature})
        }
    }
}
